/*
 * sampler.c — the engine's sampler, draw for draw the same as
 * python/pocketlm/sampling.py over NumPy's PCG64 Generator.
 *
 * Seeding follows NumPy's SeedSequence (the seed as 32-bit words, hashed
 * into a pool of four, expanded into four 64-bit words: state and stream of
 * PCG64), and each draw is PCG64's step then XSL-RR output; a uniform double
 * takes its top 53 bits, as Generator.random() does. Sums of probabilities
 * use NumPy's pairwise summation, so the normalization rounds as there.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>

typedef unsigned __int128 u128;

#define SS_INIT_A 0x43b0d7e5u
#define SS_MULT_A 0x931e8875u
#define SS_INIT_B 0x8b51f9ddu
#define SS_MULT_B 0x58f38dedu
#define SS_MIX_L 0xca01f9ddu
#define SS_MIX_R 0x4973f715u
#define SS_POOL 4

static uint32_t hashmix(uint32_t value, uint32_t *hash_const) {
    value ^= *hash_const;
    *hash_const *= SS_MULT_A;
    value *= *hash_const;
    return value ^ (value >> 16);
}

static uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t r = SS_MIX_L * x - SS_MIX_R * y;
    return r ^ (r >> 16);
}

static u128 u128_of(uint64_t hi, uint64_t lo) { return ((u128)hi << 64) | lo; }

/* PCG64's 128-bit multiplier */
static inline u128 pcg_mult(void) { return u128_of(0x2360ed051fc65da4ull, 0x4385df649fccf645ull); }

static void rng_store(plm_rng *r, u128 state, u128 inc) {
    r->state_hi = (uint64_t)(state >> 64); r->state_lo = (uint64_t)state;
    r->inc_hi = (uint64_t)(inc >> 64); r->inc_lo = (uint64_t)inc;
}

void plm_rng_seed(plm_rng *rng, uint64_t seed) {
    /* SeedSequence(seed): entropy words, little-endian; 0 is one word 0 */
    uint32_t entropy[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const int n_entropy = (seed >> 32) ? 2 : 1;
    uint32_t pool[SS_POOL], hc = SS_INIT_A;
    for (int i = 0; i < SS_POOL; i++) pool[i] = hashmix(i < n_entropy ? entropy[i] : 0u, &hc);
    for (int s = 0; s < SS_POOL; s++)
        for (int d = 0; d < SS_POOL; d++)
            if (s != d) pool[d] = mix(pool[d], hashmix(pool[s], &hc));
    /* generate_state(4, uint64): eight 32-bit words */
    uint32_t w[8];
    uint32_t hb = SS_INIT_B;
    for (int i = 0; i < 8; i++) {
        uint32_t v = pool[i % SS_POOL];
        v ^= hb;
        hb *= SS_MULT_B;
        v *= hb;
        w[i] = v ^ (v >> 16);
    }
    uint64_t v64[4];
    for (int i = 0; i < 4; i++) v64[i] = (uint64_t)w[2 * i] | ((uint64_t)w[2 * i + 1] << 32);
    /* PCG64: seed = v64[0]:v64[1], stream = v64[2]:v64[3] (high word first) */
    const u128 initstate = u128_of(v64[0], v64[1]), initseq = u128_of(v64[2], v64[3]);
    const u128 inc = (initseq << 1) | 1u;
    u128 state = 0;
    state = state * pcg_mult() + inc;
    state += initstate;
    state = state * pcg_mult() + inc;
    rng_store(rng, state, inc);
}

uint64_t plm_rng_next_u64(plm_rng *rng) {
    const u128 inc = u128_of(rng->inc_hi, rng->inc_lo);
    const u128 state = u128_of(rng->state_hi, rng->state_lo) * pcg_mult() + inc;
    rng_store(rng, state, inc);
    const uint64_t hi = (uint64_t)(state >> 64), lo = (uint64_t)state;
    const unsigned rot = (unsigned)(hi >> 58);
    const uint64_t x = hi ^ lo;
    return (x >> rot) | (x << ((64u - rot) & 63u));
}

double plm_rng_uniform(plm_rng *rng) { return (double)(plm_rng_next_u64(rng) >> 11) * (1.0 / 9007199254740992.0); }

/* NumPy's pairwise sum of doubles (8 partial sums for blocks up to 128, halves above) */
static double pairwise_sum(const double *a, int64_t n) {
    if (n < 8) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) s += a[i];
        return s;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        int64_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) s += a[i];
        return s;
    }
    int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

typedef struct { float logit; int32_t id; } cand;

static int by_logit_then_id(const void *pa, const void *pb) {
    const cand *a = (const cand *)pa, *b = (const cand *)pb;
    if (a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

int plm_sample(const float *logits, int64_t n, int64_t top_k, double top_p, double temperature, plm_rng *rng,
               int32_t *token) {
    PLM_CHECK(logits != NULL && token != NULL && n > 0 && n <= INT32_MAX, PLM_ERR_INVALID_ARG);
    PLM_CHECK(top_k >= 1 && top_p > 0.0 && top_p <= 1.0 && temperature >= 0.0, PLM_ERR_INVALID_ARG);
    if (top_k == 1 || temperature == 0.0) {
        int64_t best = 0;
        for (int64_t i = 1; i < n; i++)
            if (logits[i] > logits[best]) best = i;
        *token = (int32_t)best;
        return PLM_OK;
    }
    PLM_CHECK(rng != NULL, PLM_ERR_INVALID_ARG);
    const int64_t k = top_k < n ? top_k : n;
    cand *c = (cand *)malloc((size_t)n * sizeof(cand));
    double *p = (double *)malloc((size_t)k * sizeof(double));
    if (!c || !p) { free(c); free(p); return PLM_ERR_NOMEM; }
    for (int64_t i = 0; i < n; i++) { c[i].logit = logits[i]; c[i].id = (int32_t)i; }
    qsort(c, (size_t)n, sizeof(cand), by_logit_then_id);
    double zmax = -INFINITY;
    for (int64_t i = 0; i < k; i++) {
        p[i] = (double)c[i].logit / temperature;
        if (p[i] > zmax) zmax = p[i];
    }
    for (int64_t i = 0; i < k; i++) p[i] = exp(p[i] - zmax);
    double total = pairwise_sum(p, k);
    for (int64_t i = 0; i < k; i++) p[i] /= total;
    int64_t keep = k;
    if (top_p < 1.0) { /* the first prefix whose cumulative mass reaches top_p (searchsorted, left) */
        double s = 0.0;
        keep = k;
        for (int64_t i = 0; i < k; i++) {
            s += p[i];
            if (s >= top_p) { keep = i + 1; break; }
        }
        if (keep > k) keep = k;
        total = pairwise_sum(p, keep);
        for (int64_t i = 0; i < keep; i++) p[i] /= total;
    }
    const double u = plm_rng_uniform(rng);
    double s = 0.0;
    int64_t pick = keep - 1;
    for (int64_t i = 0; i < keep; i++) {
        s += p[i];
        if (s > u) { pick = i; break; }
    }
    *token = c[pick].id;
    free(c);
    free(p);
    return PLM_OK;
}

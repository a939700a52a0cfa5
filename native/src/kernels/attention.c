/*
 * attention.c — causal attention of one or many query positions over a KV
 * cache, with grouped-query heads, an optional tanh soft-cap (Gemma-2), an
 * optional sliding window (Gemma-2's local layers, Mistral) and optional
 * ALiBi slopes (Falcon-RW). Work is split over (query, head) pairs; each
 * thread gets its own score buffer, allocated before the threads start.
 *
 * Then the attention tiles (plm_att_scores, plm_att_values), which the
 * engine's attention (engine/forward.c) and plm_attention are built on:
 * register tiles of several keys x query vectors for the scores (each score
 * eight chains of fused multiply-adds in one register, joined in a fixed
 * tree: att_score1), and of query vectors x 32 or 64 output values over a
 * run of keys for the weighted sum (each value one chain over the keys).
 * The order is fixed, whatever the tile, so the scalar twin (fmaf), AVX2,
 * AVX-512 and NEON (arch/neon.c) give the same bits.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    const float *q, *k, *v;
    float *out;
    int64_t n_q, n_kv, q_pos0, n_heads, n_kv_heads, head_dim;
    float scale, softcap;
    int64_t window;
    const float *alibi;
    float *scores;          /* n_threads x n_kv */
    int level;              /* the attention tiles' and the exp's (kernels.h) */
} plm_attn_ctx;

/* keys a block of plm_att_scores / plm_att_values takes in plm_attention */
#define PLM_ATTN_KB 64

static void attn_task(void *vctx, int64_t begin, int64_t end, int tid) {
    const plm_attn_ctx *c = (const plm_attn_ctx *)vctx;
    const int64_t hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    const int64_t kv_stride = c->n_kv_heads * hd;
    float *scores = c->scores + (int64_t)tid * c->n_kv;
    const float *rows[PLM_ATTN_KB];
    for (int64_t idx = begin; idx < end; idx++) {
        const int64_t i = idx / c->n_heads, h = idx % c->n_heads, kvh = h / group;
        const int64_t pos = c->q_pos0 + i;
        const int64_t j0 = c->window > 0 && pos - c->window + 1 > 0 ? pos - c->window + 1 : 0;
        const float *qv = c->q + idx * hd;
        float *o = c->out + idx * hd;

        for (int64_t b = j0; b <= pos; b += PLM_ATTN_KB) {
            const int64_t nb = pos + 1 - b < PLM_ATTN_KB ? pos + 1 - b : PLM_ATTN_KB;
            for (int64_t j = 0; j < nb; j++) rows[j] = c->k + (b + j) * kv_stride + kvh * hd;
            plm_att_scores(hd, &qv, 1, rows, nb, scores + b, 1, c->level);
        }
        float max = -INFINITY;
        for (int64_t j = j0; j <= pos; j++) {
            float s = scores[j] * c->scale;
            if (c->softcap > 0.0f) s = c->softcap * tanhf(s / c->softcap);
            if (c->alibi) s += c->alibi[h] * (float)(j - pos);
            scores[j] = s;
            max = s > max ? s : max;
        }
        for (int64_t j = j0; j <= pos; j++) scores[j] -= max;
        plm_exp_rows(scores + j0, scores + j0, pos - j0 + 1, c->level);
        float sum = 0.0f;
        for (int64_t j = j0; j <= pos; j++) sum += scores[j];
        const float inv = 1.0f / sum;
        for (int64_t j = j0; j <= pos; j++) scores[j] *= inv;
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int64_t b = j0; b <= pos; b += PLM_ATTN_KB) {
            const int64_t nb = pos + 1 - b < PLM_ATTN_KB ? pos + 1 - b : PLM_ATTN_KB;
            for (int64_t j = 0; j < nb; j++) rows[j] = c->v + (b + j) * kv_stride + kvh * hd;
            plm_att_values(hd, scores + b, 1, 1, rows, nb, &o, c->level);
        }
    }
}

int plm_attention(const float *q, const float *k_cache, const float *v_cache, float *out, int64_t n_q,
                  int64_t n_kv, int64_t q_pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                  float scale, float softcap, int64_t window, const float *alibi_slopes, int n_threads) {
    PLM_CHECK(n_q >= 0 && n_kv >= 0 && q_pos0 >= 0 && head_dim >= 0 && window >= 0, PLM_ERR_INVALID_ARG);
    PLM_CHECK(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, PLM_ERR_SHAPE);
    PLM_CHECK(q_pos0 + n_q <= n_kv, PLM_ERR_SHAPE);
    PLM_CHECK(!isnan(scale) && !isnan(softcap), PLM_ERR_INVALID_ARG);
    if (n_q == 0 || head_dim == 0) return PLM_OK;
    PLM_CHECK(q != NULL && k_cache != NULL && v_cache != NULL && out != NULL, PLM_ERR_INVALID_ARG);

    plm_attn_ctx c = {q, k_cache, v_cache, out, n_q, n_kv, q_pos0, n_heads, n_kv_heads, head_dim,
                      scale, softcap, window, alibi_slopes, NULL, plm_exp_level()};
    const int nt = plm_effective_threads(n_threads);
    c.scores = (float *)malloc((size_t)nt * (size_t)n_kv * sizeof(float));
    PLM_CHECK(c.scores != NULL, PLM_ERR_NOMEM);
    /* a (query, head) pair costs about 2 * n_kv * head_dim flops */
    int64_t grain = 16384 / (n_kv * head_dim + 1);
    plm_parallel_for(n_q * n_heads, grain < 1 ? 1 : grain, attn_task, &c, nt);
    free(c.scores);
    return PLM_OK;
}

/* ---- the engine's attention tiles --------------------------------------------------- */

#define PLM_INLINE inline __attribute__((always_inline))

/* A score: eight chains over d = c, c + 8, ... (c = 0 .. 7, the lanes of one AVX2 register),
 * joined as ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)), then the values past the last
 * multiple of 8 added in turn: as good as a sum in pairs, and one register a score for SIMD. */
static float att_score1(int64_t hd, const float *k, const float *q) {
    float c[8] = {0};
    const int64_t h8 = hd & ~(int64_t)7;
    for (int64_t d = 0; d < h8; d += 8)
        for (int l = 0; l < 8; l++) c[l] = fmaf(k[d + l], q[d + l], c[l]);
    float sum = ((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7]));
    for (int64_t d = h8; d < hd; d++) sum = fmaf(k[d], q[d], sum);
    return sum;
}

static void att_scores_scalar(int64_t hd, const float *const *q, int64_t nv, const float *const *k, int64_t nk,
                              float *s, int64_t ld) {
    for (int64_t j = 0; j < nk; j++)
        for (int64_t v = 0; v < nv; v++) s[j * ld + v] = att_score1(hd, k[j], q[v]);
}

static void att_values_scalar(int64_t hd, const float *p, int64_t ld, int64_t nv, const float *const *vr, int64_t nk,
                              float *const *o, int64_t d0) {
    for (int64_t v = 0; v < nv; v++)
        for (int64_t d = d0; d < hd; d++) {
            float acc = o[v][d];
            for (int64_t j = 0; j < nk; j++) acc = fmaf(p[j * ld + v], vr[j][d], acc);
            o[v][d] = acc;
        }
}

#if PLM_X86
/* the sums of 8 registers of chains, each joined as att_score1 joins them: r[i] for a[i] */
PLM_AVX2_FN static PLM_INLINE __m256 att_join8(const __m256 *a) {
    const __m256 r0 = _mm256_hadd_ps(a[0], a[1]), r1 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 r2 = _mm256_hadd_ps(a[4], a[5]), r3 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 u0 = _mm256_hadd_ps(r0, r1), u1 = _mm256_hadd_ps(r2, r3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* scores of V query vectors (1, 2) x K keys (8, 4), V * K = 8; keys past nk repeat key 0 and are not stored */
PLM_AVX2_FN static PLM_INLINE void att_scores_tile_avx2(const int V, const int K, int64_t hd, const float *const *q,
                                                        const float *const *k, int64_t nk, float *s, int64_t ld) {
    const float *kk[8];
    for (int a = 0; a < K; a++) kk[a] = k[a < nk ? a : 0];
    __m256 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
    const int64_t h8 = hd & ~(int64_t)7;
    for (int64_t d = 0; d < h8; d += 8) {
        __m256 qv[2];
        for (int v = 0; v < V; v++) qv[v] = _mm256_loadu_ps(q[v] + d);
        for (int a = 0; a < K; a++) {
            const __m256 kv = _mm256_loadu_ps(kk[a] + d);
            for (int v = 0; v < V; v++) acc[a * V + v] = _mm256_fmadd_ps(kv, qv[v], acc[a * V + v]);
        }
    }
    float r[8];
    _mm256_storeu_ps(r, att_join8(acc));
    for (int a = 0; a < K && a < nk; a++)
        for (int v = 0; v < V; v++) {
            float sum = r[a * V + v];
            for (int64_t d = h8; d < hd; d++) sum = fmaf(kk[a][d], q[v][d], sum);
            s[a * ld + v] = sum;
        }
}

PLM_AVX2_FN static void att_scores_avx2(int64_t hd, const float *const *q, int64_t nv, const float *const *k,
                                        int64_t nk, float *s, int64_t ld) {
    int64_t v = 0;
    for (; v + 2 <= nv; v += 2)
        for (int64_t j = 0; j < nk; j += 4) att_scores_tile_avx2(2, 4, hd, q + v, k + j, nk - j, s + j * ld + v, ld);
    for (; v < nv; v++)
        for (int64_t j = 0; j < nk; j += 8) att_scores_tile_avx2(1, 8, hd, q + v, k + j, nk - j, s + j * ld + v, ld);
}

/* outputs of V lanes (1, 2) over D registers of 8 values (1, 4) at d */
PLM_AVX2_FN static PLM_INLINE void att_values_tile_avx2(const int V, const int D, int64_t d, const float *p, int64_t ld,
                                                        const float *const *vr, int64_t nk, float *const *o) {
    __m256 acc[2][4];
    for (int v = 0; v < V; v++)
        for (int e = 0; e < D; e++) acc[v][e] = _mm256_loadu_ps(o[v] + d + 8 * e);
    for (int64_t j = 0; j < nk; j++) {
        __m256 x[4];
        for (int e = 0; e < D; e++) x[e] = _mm256_loadu_ps(vr[j] + d + 8 * e);
        for (int v = 0; v < V; v++) {
            const __m256 b = _mm256_broadcast_ss(p + j * ld + v);
            for (int e = 0; e < D; e++) acc[v][e] = _mm256_fmadd_ps(b, x[e], acc[v][e]);
        }
    }
    for (int v = 0; v < V; v++)
        for (int e = 0; e < D; e++) _mm256_storeu_ps(o[v] + d + 8 * e, acc[v][e]);
}

/* values d0 <= d of lanes v < nv, in the widest tiles that fit; returns where it stopped in d */
PLM_AVX2_FN static int64_t att_values_avx2(int64_t hd, const float *p, int64_t ld, int64_t nv, const float *const *vr,
                                           int64_t nk, float *const *o, int64_t d0) {
    int64_t d = d0;
    for (int64_t v = 0; v < nv; v += 2) {
        const int V = nv - v >= 2 ? 2 : 1;
        for (d = d0; d + 32 <= hd; d += 32)
            V == 2 ? att_values_tile_avx2(2, 4, d, p + v, ld, vr, nk, o + v)
                   : att_values_tile_avx2(1, 4, d, p + v, ld, vr, nk, o + v);
        for (; d + 8 <= hd; d += 8)
            V == 2 ? att_values_tile_avx2(2, 1, d, p + v, ld, vr, nk, o + v)
                   : att_values_tile_avx2(1, 1, d, p + v, ld, vr, nk, o + v);
    }
    return d;
}

PLM_VNNI_FN static PLM_INLINE void att_values_tile_512(const int V, const int D, int64_t d, const float *p, int64_t ld,
                                                       const float *const *vr, int64_t nk, float *const *o) {
    __m512 acc[4][4];
    for (int v = 0; v < V; v++)
        for (int e = 0; e < D; e++) acc[v][e] = _mm512_loadu_ps(o[v] + d + 16 * e);
    for (int64_t j = 0; j < nk; j++) {
        __m512 x[4];
        for (int e = 0; e < D; e++) x[e] = _mm512_loadu_ps(vr[j] + d + 16 * e);
        for (int v = 0; v < V; v++) {
            const __m512 b = _mm512_set1_ps(p[j * ld + v]);
            for (int e = 0; e < D; e++) acc[v][e] = _mm512_fmadd_ps(b, x[e], acc[v][e]);
        }
    }
    for (int v = 0; v < V; v++)
        for (int e = 0; e < D; e++) _mm512_storeu_ps(o[v] + d + 16 * e, acc[v][e]);
}

#define PLM_ATT_V512(V)                                                                    \
    do {                                                                                   \
        for (d = 0; d + 64 <= hd; d += 64) att_values_tile_512(V, 4, d, p + v, ld, vr, nk, o + v); \
        for (; d + 16 <= hd; d += 16) att_values_tile_512(V, 1, d, p + v, ld, vr, nk, o + v);      \
    } while (0)

/* values d < hd of lanes v < nv in 16-value registers; returns where it stopped in d */
PLM_VNNI_FN static int64_t att_values_512(int64_t hd, const float *p, int64_t ld, int64_t nv, const float *const *vr,
                                          int64_t nk, float *const *o) {
    int64_t d = 0;
    for (int64_t v = 0; v < nv;) {
        const int64_t left = nv - v;
        if (left >= 4) PLM_ATT_V512(4);
        else if (left == 3) PLM_ATT_V512(3);
        else if (left == 2) PLM_ATT_V512(2);
        else PLM_ATT_V512(1);
        v += left >= 4 ? 4 : left;
    }
    return d;
}
#undef PLM_ATT_V512
#endif

void plm_att_scores(int64_t hd, const float *const *q, int64_t nv, const float *const *k, int64_t nk, float *s,
                    int64_t ld, int level) {
#if PLM_X86
    if (level >= 1) { /* level 2 too: a score is one 8-lane register */
        att_scores_avx2(hd, q, nv, k, nk, s, ld);
        return;
    }
#elif PLM_ARM
    if (level >= 1) {
        plm_att_scores_neon(hd, q, nv, k, nk, s, ld);
        return;
    }
#endif
    (void)level;
    att_scores_scalar(hd, q, nv, k, nk, s, ld);
}

void plm_att_values(int64_t hd, const float *p, int64_t ld, int64_t nv, const float *const *vr, int64_t nk,
                    float *const *o, int level) {
    int64_t d = 0;
#if PLM_X86
    if (level >= 2) d = att_values_512(hd, p, ld, nv, vr, nk, o);
    if (level >= 1) d = att_values_avx2(hd, p, ld, nv, vr, nk, o, d);
#elif PLM_ARM
    if (level >= 1) {
        plm_att_values_neon(hd, p, ld, nv, vr, nk, o);
        return;
    }
#endif
    (void)level;
    att_values_scalar(hd, p, ld, nv, vr, nk, o, d);
}

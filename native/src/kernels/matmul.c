/*
 * matmul.c — y[m][n] = x[m][k] . W[n][k] for every weight type, and the
 * F32 / F16 row dot products. The driver looks the weight type up in the
 * traits table, converts the activations once into the type's activation
 * format (Q8_0 blocks for block-quantized weights), and splits the weight
 * rows over threads in contiguous slices so each thread streams its own
 * part of the matrix exactly once, whatever m is.
 */
#include "kernels/kernels.h"

#include <stdlib.h>

float plm_vec_dot_f32_scalar(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    const float *w = (const float *)vw, *x = (const float *)vx;
    float sum = 0.0f;
    for (int64_t i = 0; i < k; i++) sum += w[i] * x[i];
    return sum;
}

float plm_vec_dot_f16_scalar(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    const uint16_t *w = (const uint16_t *)vw;
    const float *x = (const float *)vx;
    float sum = 0.0f;
    for (int64_t i = 0; i < k; i++) sum += plm_h2f(w[i]) * x[i];
    return sum;
}

#if PLM_X86
PLM_AVX2_FN float plm_vec_dot_f32_avx2(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    const float *w = (const float *)vw, *x = (const float *)vx;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= k; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float sum = plm_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < k; i++) sum += w[i] * x[i];
    return sum;
}

PLM_AVX2_FN float plm_vec_dot_f16_avx2(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    const uint16_t *w = (const uint16_t *)vw;
    const float *x = (const float *)vx;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        const __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
        const __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
    }
    float sum = plm_hsum8(_mm256_add_ps(a0, a1));
    for (; i < k; i++) sum += _cvtsh_ss(w[i]) * x[i];
    return sum;
}
#endif

/* ---- activations in the forms the weight types read ---------------------- */

int plm_act_need(int w_type, int simd) {
    switch (w_type) {
    case PLM_TYPE_F32:
    case PLM_TYPE_F16: return PLM_ACTS_F32;
    case PLM_TYPE_Q8_0: return PLM_ACTS_Q8;
    case PLM_TYPE_Q4_0:
    case PLM_TYPE_Q4_1: return PLM_X86 && simd ? PLM_ACTS_Q8 | PLM_ACTS_P4 : PLM_ACTS_Q8 | PLM_ACTS_SUM;
    default: return 0;
    }
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* pairs of blocks, an odd last block counting as one */
static int64_t n_pairs(int64_t k) { return (k / PLM_QK + 1) / 2; }

size_t plm_acts_size(int need, int64_t m, int64_t k) {
    if (k % PLM_QK != 0) need &= PLM_ACTS_F32;
    const int64_t nb = k / PLM_QK, np = n_pairs(k);
    size_t n = 0;
    if (need & (PLM_ACTS_Q8 | PLM_ACTS_P4 | PLM_ACTS_SUM))
        n += align64((size_t)(m * plm_row_bytes(PLM_TYPE_Q8_0, k))) + 3 * align64((size_t)(m * nb) * sizeof(float));
    if (need & PLM_ACTS_P4) n += align64((size_t)(m * np * 64)) + align64((size_t)(m * np * 32) * sizeof(float));
    return n + 64;
}

void plm_acts_init(plm_acts *a, int need, void *buf, int64_t m, int64_t k) {
    memset(a, 0, sizeof(*a));
    a->m = m;
    a->k = k;
    if (k % PLM_QK != 0) need &= PLM_ACTS_F32;
    a->need = need;
    a->n_blocks = k / PLM_QK;
    uint8_t *p = (uint8_t *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
    if (need & (PLM_ACTS_Q8 | PLM_ACTS_P4 | PLM_ACTS_SUM)) {
        a->q8_rb = plm_row_bytes(PLM_TYPE_Q8_0, k);
        a->q8 = p;
        p += align64((size_t)(m * a->q8_rb));
        a->xd = (float *)p;
        p += align64((size_t)(m * a->n_blocks) * sizeof(float));
        a->xsum = (float *)p;
        p += align64((size_t)(m * a->n_blocks) * sizeof(float));
        a->xisum = (int32_t *)p;
        p += align64((size_t)(m * a->n_blocks) * sizeof(int32_t));
    }
    if (need & PLM_ACTS_P4) {
        a->n_pairs = n_pairs(k);
        a->p4_rb = a->n_pairs * 64;
        a->p4 = p;
        p += align64((size_t)(m * a->p4_rb));
        a->dxs = (float *)p;
        a->xsm40 = a->dxs + m * a->n_pairs * 8;
        a->xsm41 = a->xsm40 + m * a->n_pairs * 4;
        a->xs840 = a->xsm41 + m * a->n_pairs * 4;
        a->xs841 = a->xs840 + m * a->n_pairs * 8;
    }
}

void plm_acts_fill(plm_acts *a, const float *x, int64_t ldx, int64_t r0, int64_t r1, int simd) {
    a->f32 = x;
    a->f32_ld = ldx;
    if (!a->q8) return;
    const int64_t k = a->k, nb = a->n_blocks, np = a->n_pairs;
    for (int64_t i = r0; i < r1; i++) {
        uint8_t *q = a->q8 + i * a->q8_rb;
#if PLM_X86
        if (simd) plm_quantize_row_q8_0_avx2(x + i * ldx, q, k);
        else
#elif PLM_ARM
        if (simd) plm_quantize_row_q8_0_neon(x + i * ldx, q, k);
        else
#endif
            plm_quantize_row_q8_0(x + i * ldx, q, k);
        const plm_block_q8_0 *blk = (const plm_block_q8_0 *)q;
        for (int64_t b = 0; b < nb; b++) {
            int32_t s = 0;
            for (int j = 0; j < PLM_QK; j++) s += blk[b].qs[j];
            a->xisum[i * nb + b] = s;
            a->xd[i * nb + b] = plm_h2f(blk[b].d);
            a->xsum[i * nb + b] = a->xd[i * nb + b] * (float)s;
        }
        if (a->p4)
            plm_pair_q8_0_for_q4(q, k, a->p4 + i * a->p4_rb, a->dxs + i * np * 8, a->xsm40 + i * np * 4,
                                 a->xsm41 + i * np * 4, a->xs840 + i * np * 8, a->xs841 + i * np * 8);
    }
}

/* Weight rows handled together across all m activation rows: small enough
 * that the tile stays in L1/L2 while each activation row passes over it. */
#define PLM_MM_TILE 16

void plm_mm_rows(int w_type, const void *w, int64_t w_rb, const plm_acts *a, int64_t j0, int64_t j1, float *y,
                 int64_t ldy, int simd) {
    const plm_type_traits *t = plm_traits(w_type);
    const plm_vec_dot_fn dot = simd && t->vec_dot_simd ? t->vec_dot_simd : t->vec_dot_scalar;
    const uint8_t *wb = (const uint8_t *)w;
    const int64_t k = a->k, nb = a->n_blocks, np = a->n_pairs;
    (void)np; /* read by the x86 paths only */
#if PLM_X86
    if (plm_gemm_takes(w_type, a)) { /* a prefill: the int8 GEMM */
        plm_gemm_rows(w_type, wb, w_rb, a, j0, j1, y, ldy, !simd ? 0 : plm_use_vnni() ? 2 : 1);
        return;
    }
    if (simd && plm_gemm_f_takes(w_type, a)) { /* a prefill on float weights: the FMA tiles */
        plm_gemm_f_rows(w_type, wb, w_rb, a, j0, j1, y, ldy, plm_use_vnni() ? 2 : 1);
        return;
    }
#endif
    for (int64_t t0 = j0; t0 < j1; t0 += PLM_MM_TILE) {
        const int64_t t1 = t0 + PLM_MM_TILE < j1 ? t0 + PLM_MM_TILE : j1;
        int64_t i = 0;
#if PLM_X86
        if (simd && (w_type == PLM_TYPE_Q4_0 || w_type == PLM_TYPE_Q4_1) && a->p4)
            for (; i + 4 <= a->m; i += 4)
                if (!plm_q4_tile_avx2(w_type == PLM_TYPE_Q4_1, k, wb + t0 * w_rb, w_rb, t1 - t0, a, i, 4,
                                      y + i * ldy + t0, ldy))
                    break;
        if (simd && w_type == PLM_TYPE_Q8_0)
            for (; i + 4 <= a->m; i += 4)
                plm_q8_tile_avx2(k, wb + t0 * w_rb, w_rb, t1 - t0, a->q8 + i * a->q8_rb, a->q8_rb, a->xd + i * nb,
                                 y + i * ldy + t0, ldy);
#elif PLM_ARM
        if (simd && (w_type == PLM_TYPE_Q8_0 || w_type == PLM_TYPE_Q4_0 || w_type == PLM_TYPE_Q4_1))
            for (; i + 4 <= a->m; i += 4)
                plm_quant_tile_neon(w_type, k, wb + t0 * w_rb, w_rb, t1 - t0, a->q8 + i * a->q8_rb, a->q8_rb,
                                    a->xsum ? a->xsum + i * nb : NULL, nb, y + i * ldy + t0, ldy);
#endif
        for (; i < a->m; i++) {
            float *yr = y + i * ldy;
#if PLM_X86
            if (simd && (w_type == PLM_TYPE_Q4_0 || w_type == PLM_TYPE_Q4_1) && a->p4) {
                const int is41 = w_type == PLM_TYPE_Q4_1;
                plm_q4_rows_avx2(is41, k, wb + t0 * w_rb, w_rb, t1 - t0, a->p4 + i * a->p4_rb, a->dxs + i * np * 8,
                                 (is41 ? a->xsm41 : a->xsm40) + i * np * 4, yr + t0);
                continue;
            }
            if (simd && w_type == PLM_TYPE_Q8_0) {
                plm_q8_rows_avx2(k, wb + t0 * w_rb, w_rb, t1 - t0, a->q8 + i * a->q8_rb, a->xd + i * nb, yr + t0);
                continue;
            }
#endif
            const void *xr = t->act_type == PLM_TYPE_Q8_0 ? (const void *)(a->q8 + i * a->q8_rb)
                                                          : (const void *)(a->f32 + i * a->f32_ld);
            const float *xs = a->xsum ? a->xsum + i * nb : NULL;
            for (int64_t j = t0; j < t1; j++) yr[j] = dot(k, wb + j * w_rb, xr, xs);
        }
    }
}

typedef struct {
    int w_type, simd;
    const void *w;
    int64_t w_rb;
    const plm_acts *a;
    float *y;
    int64_t n;
} plm_mm_ctx;

static void mm_task(void *vctx, int64_t n0, int64_t n1, int tid) {
    (void)tid;
    const plm_mm_ctx *c = (const plm_mm_ctx *)vctx;
    plm_mm_rows(c->w_type, c->w, c->w_rb, c->a, n0, n1, c->y, c->n, c->simd);
}

/* Fewer multiply-adds than this per thread is not worth waking a thread. */
#define PLM_MM_MIN_WORK 32768

int plm_matmul(int w_type, const void *w, const float *x, float *y, int64_t m, int64_t n, int64_t k,
               int n_threads) {
    const plm_type_traits *t = plm_traits(w_type);
    PLM_CHECK(t != NULL, PLM_ERR_TYPE);
    PLM_CHECK(m >= 0 && n >= 0 && k >= 0, PLM_ERR_INVALID_ARG);
    const int64_t w_rb = plm_row_bytes(w_type, k);
    PLM_CHECK(w_rb >= 0, PLM_ERR_SHAPE);
    if (m == 0 || n == 0) return PLM_OK;
    PLM_CHECK(w != NULL && x != NULL && y != NULL, PLM_ERR_INVALID_ARG);

    const int simd = plm_use_simd();
    const int need = plm_act_need(w_type, simd);
    void *scratch = malloc(plm_acts_size(need, m, k));
    PLM_CHECK(scratch != NULL, PLM_ERR_NOMEM);
    plm_acts a;
    plm_acts_init(&a, need, scratch, m, k);
    plm_acts_fill(&a, x, k, 0, m, simd);
    plm_mm_ctx c = {w_type, simd, w, w_rb, &a, y, n};
    const int64_t work_per_row = m * (k > 0 ? k : 1);
    int64_t grain = PLM_MM_MIN_WORK / work_per_row;
    plm_parallel_for(n, grain < 1 ? 1 : grain, mm_task, &c, n_threads);
    free(scratch);
    return PLM_OK;
}

int plm_gemv(int w_type, const void *w, const float *x, float *y, int64_t n, int64_t k, int n_threads) {
    return plm_matmul(w_type, w, x, y, 1, n, k, n_threads);
}

/*
 * matmul.c — y[m][n] = x[m][k] . W[n][k] for every weight type, and the
 * F32 / F16 row dot products. The driver looks the weight type up in the
 * traits table, converts the activations once into the type's activation
 * format (Q8_0 blocks for block-quantized weights), and splits the weight
 * rows over threads in contiguous slices so each thread streams its own
 * part of the matrix exactly once, whatever m is.
 */
#include "plm_internal.h"

#include <stdlib.h>

/* Weight rows handled together across all m activation rows: small enough
 * that the tile stays in L2 while each activation row passes over it. */
#define PLM_MM_TILE 16
/* Fewer multiply-adds than this per thread is not worth waking a thread. */
#define PLM_MM_MIN_WORK 32768

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

typedef struct {
    plm_vec_dot_fn dot;
    const uint8_t *w;       /* weight rows */
    int64_t w_row_bytes;
    const uint8_t *xa;      /* activations in the type's activation format */
    int64_t xa_row_bytes;
    const float *xsum;      /* per activation block d * sum(q) (Q4 weights), or NULL */
    const float *xd;        /* per activation block d as float (Q4 weights), or NULL */
    int q4_paired;          /* 0: none, 1: Q4_0, 2: Q4_1 through plm_dot_q4_paired_avx2 */
    const uint8_t *xp;      /* activations paired for it, or NULL */
    int64_t xp_row_bytes;
    int64_t n_blocks;       /* blocks per activation row */
    float *y;
    int64_t m, n, k;
} plm_mm_ctx;

static void mm_task(void *vctx, int64_t n0, int64_t n1, int tid) {
    (void)tid;
    const plm_mm_ctx *c = (const plm_mm_ctx *)vctx;
    for (int64_t t0 = n0; t0 < n1; t0 += PLM_MM_TILE) {
        const int64_t t1 = t0 + PLM_MM_TILE < n1 ? t0 + PLM_MM_TILE : n1;
        for (int64_t i = 0; i < c->m; i++) {
            const void *xr = c->xa + i * c->xa_row_bytes;
            const float *xs = c->xsum ? c->xsum + i * c->n_blocks : NULL;
            float *yr = c->y + i * c->n;
#if PLM_X86
            if (c->q4_paired) {
                const float *xd = c->xd + i * c->n_blocks;
                const uint8_t *xp = c->xp + i * c->xp_row_bytes;
                for (int64_t j = t0; j < t1; j++)
                    yr[j] = plm_dot_q4_paired_avx2(c->q4_paired == 2, c->k, c->w + j * c->w_row_bytes, xp, xd, xs);
                continue;
            }
#endif
            for (int64_t j = t0; j < t1; j++) yr[j] = c->dot(c->k, c->w + j * c->w_row_bytes, xr, xs);
        }
    }
}

int plm_matmul(int w_type, const void *w, const float *x, float *y, int64_t m, int64_t n, int64_t k,
               int n_threads) {
    const plm_type_traits *t = plm_traits(w_type);
    PLM_CHECK(t != NULL, PLM_ERR_TYPE);
    PLM_CHECK(m >= 0 && n >= 0 && k >= 0, PLM_ERR_INVALID_ARG);
    const int64_t w_rb = plm_row_bytes(w_type, k);
    PLM_CHECK(w_rb >= 0, PLM_ERR_SHAPE);
    if (m == 0 || n == 0) return PLM_OK;
    PLM_CHECK(w != NULL && x != NULL && y != NULL, PLM_ERR_INVALID_ARG);

    const int simd = plm_use_avx2();
    plm_mm_ctx c = {0};
    c.dot = simd && t->vec_dot_simd ? t->vec_dot_simd : t->vec_dot_scalar;
    c.w = (const uint8_t *)w;
    c.w_row_bytes = w_rb;
    c.y = y;
    c.m = m;
    c.n = n;
    c.k = k;

    void *scratch = NULL;
    if (t->act_type == PLM_TYPE_Q8_0) {
        c.n_blocks = k / PLM_QK;
        c.xa_row_bytes = plm_row_bytes(PLM_TYPE_Q8_0, k);
        const int is_q4 = w_type == PLM_TYPE_Q4_0 || w_type == PLM_TYPE_Q4_1;
        c.q4_paired = PLM_X86 && simd && is_q4 ? (w_type == PLM_TYPE_Q4_1 ? 2 : 1) : 0;
        const int need_sum = w_type == PLM_TYPE_Q4_1 || c.q4_paired;
        /* activations, then xsum and xd (m * n_blocks floats each), then the paired copy */
        scratch = malloc((size_t)(m * c.xa_row_bytes) + (need_sum ? 2 * (size_t)(m * c.n_blocks) * sizeof(float) : 0) +
                         (c.q4_paired ? (size_t)(m * (k / 64 + 1) * 96) : 0) + 1);
        PLM_CHECK(scratch != NULL, PLM_ERR_NOMEM);
        uint8_t *xa = (uint8_t *)scratch;
        for (int64_t i = 0; i < m; i++) {
#if PLM_X86
            if (simd) plm_quantize_row_q8_0_avx2(x + i * k, xa + i * c.xa_row_bytes, k);
            else
#endif
                plm_quantize_row_q8_0(x + i * k, xa + i * c.xa_row_bytes, k);
        }
        if (need_sum) {
            float *xsum = (float *)(xa + m * c.xa_row_bytes), *xd = xsum + m * c.n_blocks;
            const plm_block_q8_0 *blk = (const plm_block_q8_0 *)xa;
            for (int64_t b = 0; b < m * c.n_blocks; b++) {
                int32_t s = 0;
                for (int j = 0; j < PLM_QK; j++) s += blk[b].qs[j];
                xd[b] = plm_h2f(blk[b].d);
                xsum[b] = xd[b] * (float)s;
            }
            c.xsum = xsum;
            c.xd = xd;
#if PLM_X86
            if (c.q4_paired) {
                uint8_t *xp = (uint8_t *)(xd + m * c.n_blocks);
                const int with_offset = w_type == PLM_TYPE_Q4_0;
                c.xp_row_bytes = (k / 64) * plm_q4_pair_stride(with_offset) + (c.n_blocks % 2 ? PLM_QK : 0);
                for (int64_t i = 0; i < m; i++)
                    plm_pair_q8_0_for_q4(xa + i * c.xa_row_bytes, k, with_offset, xp + i * c.xp_row_bytes);
                c.xp = xp;
            }
#endif
        }
        c.xa = xa;
    } else {
        c.xa = (const uint8_t *)x;
        c.xa_row_bytes = k * (int64_t)sizeof(float);
    }

    const int64_t work_per_row = m * (k > 0 ? k : 1);
    int64_t grain = PLM_MM_MIN_WORK / work_per_row;
    if (grain < 1) grain = 1;
    plm_parallel_for(n, grain, mm_task, &c, n_threads);
    free(scratch);
    return PLM_OK;
}

int plm_gemv(int w_type, const void *w, const float *x, float *y, int64_t n, int64_t k, int n_threads) {
    return plm_matmul(w_type, w, x, y, 1, n, k, n_threads);
}

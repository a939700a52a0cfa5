/*
 * gemv_q8.c — the dot product of a Q8_0 weight row with a Q8_0 activation
 * row: per block an exact int32 sum of 32 int8 products, scaled by both fp16
 * scales. plm_matmul (matmul.c) drives it over rows and threads.
 */
#include "kernels/kernels.h"

float plm_vec_dot_q8_0_scalar(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    const plm_block_q8_0 *w = (const plm_block_q8_0 *)vw;
    const plm_block_q8_0 *x = (const plm_block_q8_0 *)vx;
    float sum = 0.0f;
    for (int64_t b = 0; b < k / PLM_QK; b++) {
        int32_t sumi = 0;
        for (int j = 0; j < PLM_QK; j++) sumi += (int32_t)w[b].qs[j] * (int32_t)x[b].qs[j];
        sum += (float)sumi * (plm_h2f(w[b].d) * plm_h2f(x[b].d));
    }
    return sum;
}

#if PLM_X86
/* 32 signed bytes times 32 signed bytes -> 8 int32 partial sums, via the
 * sign trick that lets maddubs (unsigned x signed) take two signed inputs. */
PLM_AVX2_FN static inline __m256 dot_i8x32(__m256i a, __m256i b) {
    const __m256i ua = _mm256_sign_epi8(a, a);
    const __m256i sb = _mm256_sign_epi8(b, a);
    const __m256i p16 = _mm256_maddubs_epi16(ua, sb);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

PLM_AVX2_FN float plm_vec_dot_q8_0_avx2(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    const plm_block_q8_0 *w = (const plm_block_q8_0 *)vw;
    const plm_block_q8_0 *x = (const plm_block_q8_0 *)vx;
    const int64_t nb = k / PLM_QK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) { /* two independent chains keep both FMA ports busy */
        const __m256 d0 = _mm256_set1_ps(_cvtsh_ss(w[b].d) * _cvtsh_ss(x[b].d));
        const __m256 d1 = _mm256_set1_ps(_cvtsh_ss(w[b + 1].d) * _cvtsh_ss(x[b + 1].d));
        const __m256 p0 = dot_i8x32(_mm256_loadu_si256((const __m256i *)w[b].qs),
                                    _mm256_loadu_si256((const __m256i *)x[b].qs));
        const __m256 p1 = dot_i8x32(_mm256_loadu_si256((const __m256i *)w[b + 1].qs),
                                    _mm256_loadu_si256((const __m256i *)x[b + 1].qs));
        acc0 = _mm256_fmadd_ps(d0, p0, acc0);
        acc1 = _mm256_fmadd_ps(d1, p1, acc1);
    }
    for (; b < nb; b++) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(w[b].d) * _cvtsh_ss(x[b].d));
        const __m256 p = dot_i8x32(_mm256_loadu_si256((const __m256i *)w[b].qs),
                                   _mm256_loadu_si256((const __m256i *)x[b].qs));
        acc0 = _mm256_fmadd_ps(d, p, acc0);
    }
    return plm_hsum8(_mm256_add_ps(acc0, acc1));
}

/* R Q8_0 weight rows (rb bytes apart) against one Q8_0 activation row whose
 * block scales are given as floats (xd): the rows share each activation
 * block's load and its absolute value. */
#define PLM_Q8_ROWS(R, I)                                                                                          \
    PLM_FN_##I static void q8_rows##R##_##I(int64_t nb, const uint8_t *w, int64_t rb, const plm_block_q8_0 *x,         \
                                       const float *xd, float *y) {                                                \
        const __m256i ones = _mm256_set1_epi16(1);                                                                 \
        __m256 acc[R];                                                                                             \
        for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();                                                  \
        const uint8_t *pf = plm_prefetch_base(w, R * rb); /* the R rows are one slab of R * rb bytes */          \
        int64_t pf_done = 0;                                                                                       \
        for (int64_t b = 0; b < nb; b++) {                                                                         \
            plm_prefetch_upto(pf, &pf_done, (b + 1) * R * (int64_t)sizeof(plm_block_q8_0));                       \
            const __m256i xq = _mm256_loadu_si256((const __m256i *)x[b].qs);                                       \
            const __m256i ax = _mm256_sign_epi8(xq, xq);                                                           \
            for (int r = 0; r < R; r++) {                                                                          \
                const plm_block_q8_0 *wb = (const plm_block_q8_0 *)(w + r * rb) + b;                               \
                const __m256i sw = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)wb->qs), xq);             \
                const __m256 p = _mm256_cvtepi32_ps(PLM_IDOT_##I(ax, sw, ones));                                  \
                const __m256 d = _mm256_set1_ps(_cvtsh_ss(wb->d) * xd[b]);                                         \
                acc[r] = _mm256_fmadd_ps(d, p, acc[r]);                                                            \
            }                                                                                                      \
        }                                                                                                          \
        for (int r = 0; r < R; r++) y[r] = plm_hsum8(acc[r]);                                                      \
    }
PLM_Q8_ROWS(1, avx2)
PLM_Q8_ROWS(4, avx2)
PLM_Q8_ROWS(1, vnni)
PLM_Q8_ROWS(4, vnni)

void plm_q8_rows_avx2(int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const void *x, const float *xd,
                      float *y) {
    const int64_t nb = k / PLM_QK;
    const plm_block_q8_0 *xb = (const plm_block_q8_0 *)x;
    int64_t j = 0;
    if (plm_use_vnni()) {
        for (; j + 4 <= n_rows; j += 4) q8_rows4_vnni(nb, w + j * rb, rb, xb, xd, y + j);
        for (; j < n_rows; j++) q8_rows1_vnni(nb, w + j * rb, rb, xb, xd, y + j);
    } else {
        for (; j + 4 <= n_rows; j += 4) q8_rows4_avx2(nb, w + j * rb, rb, xb, xd, y + j);
        for (; j < n_rows; j++) q8_rows1_avx2(nb, w + j * rb, rb, xb, xd, y + j);
    }
}

/* The prefill's tile: R Q8_0 weight rows x C activation rows. |w| and the
 * row's scale are taken once for the C activation rows; sign(x, w) moves
 * the weight's sign onto the activation, so maddubs sees |w| unsigned. */
#define PLM_Q8_TILE(R, C, I)                                                                                       \
    PLM_FN_##I static void q8_tile##R##x##C##_##I(int64_t nb, const uint8_t *w, int64_t rb, const uint8_t *xq,        \
                                             int64_t xrb, const float *xd, int64_t ldxd, float *y, int64_t ldy) {  \
        const __m256i ones = _mm256_set1_epi16(1);                                                                 \
        __m256 acc[R][C];                                                                                          \
        for (int r = 0; r < R; r++)                                                                                \
            for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();                                           \
        for (int64_t b = 0; b < nb; b++) {                                                                         \
            for (int r = 0; r < R; r++) {                                                                          \
                const plm_block_q8_0 *wb = (const plm_block_q8_0 *)(w + r * rb) + b;                               \
                const __m256i wq = _mm256_loadu_si256((const __m256i *)wb->qs);                                    \
                const __m256i aw = _mm256_sign_epi8(wq, wq);                                                       \
                const __m256 dw = _mm256_cvtph_ps(_mm_set1_epi16((short)wb->d));                                  \
                for (int c = 0; c < C; c++) {                                                                      \
                    const plm_block_q8_0 *xb = (const plm_block_q8_0 *)(xq + c * xrb) + b;                        \
                    const __m256i sx = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)xb->qs), wq);         \
                    const __m256 p = _mm256_cvtepi32_ps(PLM_IDOT_##I(aw, sx, ones));                              \
                    const __m256 d = _mm256_mul_ps(dw, _mm256_broadcast_ss(xd + c * ldxd + b));                   \
                    acc[r][c] = _mm256_fmadd_ps(d, p, acc[r][c]);                                                  \
                }                                                                                                  \
            }                                                                                                      \
        }                                                                                                          \
        for (int r = 0; r < R; r++)                                                                                \
            for (int c = 0; c < C; c++) y[c * ldy + r] = plm_hsum8(acc[r][c]);                                    \
    }
PLM_Q8_TILE(2, 4, avx2)
PLM_Q8_TILE(1, 4, avx2)
PLM_Q8_TILE(2, 4, vnni)
PLM_Q8_TILE(1, 4, vnni)

void plm_q8_tile_avx2(int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const uint8_t *xq, int64_t xrb,
                      const float *xd, float *y, int64_t ldy) {
    const int64_t nb = k / PLM_QK;
    int64_t j = 0;
    if (plm_use_vnni()) {
        for (; j + 2 <= n_rows; j += 2) q8_tile2x4_vnni(nb, w + j * rb, rb, xq, xrb, xd, nb, y + j, ldy);
        for (; j < n_rows; j++) q8_tile1x4_vnni(nb, w + j * rb, rb, xq, xrb, xd, nb, y + j, ldy);
    } else {
        for (; j + 2 <= n_rows; j += 2) q8_tile2x4_avx2(nb, w + j * rb, rb, xq, xrb, xd, nb, y + j, ldy);
        for (; j < n_rows; j++) q8_tile1x4_avx2(nb, w + j * rb, rb, xq, xrb, xd, nb, y + j, ldy);
    }
}
#endif


/*
 * gemm_f.c — the prefill's product for F32 and F16 weights on x86: many F32
 * activation rows against weight rows, in register tiles of weight rows x
 * activation rows, so each weight vector loaded (and, for F16, converted with
 * F16C) serves several activation rows.
 *
 * Each output is summed exactly as the decode step's row kernel sums it
 * (plm_vec_dot_f32_avx2 / plm_vec_dot_f16_avx2 in matmul.c): F32 in 4
 * accumulators of 8 lanes over steps of 32 values, then steps of 8 into the
 * first, the accumulators added ((a0 + a1) + (a2 + a3)) and reduced by
 * plm_hsum8, the last k % 8 values multiplied and added one by one; F16 in 2
 * accumulators over steps of 16, (a0 + a1), plm_hsum8, then the last k % 16.
 * So the tiles give the row kernels' floats bit for bit, and a prompt's
 * prefill rounds as the decode steps that could have fed it one token at a
 * time. The scalar kernels (SIMD level 0) keep their own order, which the
 * arm64 build shares; they are within float rounding of these.
 *
 * Tiles: AVX2 1 x 3 (F32) and 2 x 3 (F16) weight rows x activation rows, 12
 * accumulators; AVX-512F 2 x 4 (F32) and 4 x 4 (F16), a zmm holding the same
 * accumulator of two activation rows side by side (a weight vector is
 * broadcast to both halves), 16 accumulators. A tile's weight rows stay in
 * L1 while every activation row of the batch passes over them; the weights
 * are read in place, nothing is packed or kept.
 */
#include "kernels/kernels.h"

int plm_gemm_f_takes(int w_type, const plm_acts *a) {
    return PLM_X86 && (w_type == PLM_TYPE_F32 || w_type == PLM_TYPE_F16) && a->f32 != NULL && a->m >= 2;
}

#if PLM_X86
#define PLM_INLINE inline __attribute__((always_inline))

/* the tail of the row kernels: value by value, a product then a sum (no contraction) */
static inline float tail_f(int is16, const uint8_t *w, const float *x, int64_t q, int64_t k, float sum) {
    for (; q < k; q++) {
        float wv;
        if (is16) {
            uint16_t h;
            memcpy(&h, w + 2 * q, 2);
            wv = plm_h2f(h);
        } else {
            memcpy(&wv, w + 4 * q, 4);
        }
        sum += wv * x[q];
    }
    return sum;
}

PLM_AVX2_FN static PLM_INLINE __m256 load8_avx2(int is16, const uint8_t *w, int64_t q) {
    return is16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * q))) : _mm256_loadu_ps((const float *)w + q);
}

/* The AVX2 tile: R weight rows x C activation rows, NA (4 for F32, 2 for F16) accumulators each. */
PLM_AVX2_FN static PLM_INLINE void tile_avx2(int is16, int R, int C, int64_t k, const uint8_t *w, int64_t rb,
                                               const float *x, int64_t ldx, float *y, int64_t ldy) {
    const int NA = is16 ? 2 : 4, V = 8 * NA;
    __m256 acc[2][3][4];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            for (int a = 0; a < NA; a++) acc[r][c][a] = _mm256_setzero_ps();
    int64_t q = 0;
    for (; q + V <= k; q += V)
        for (int r = 0; r < R; r++)
            for (int a = 0; a < NA; a++) {
                const __m256 wv = load8_avx2(is16, w + r * rb, q + 8 * a);
                for (int c = 0; c < C; c++)
                    acc[r][c][a] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + c * ldx + q + 8 * a), acc[r][c][a]);
            }
    if (!is16)
        for (; q + 8 <= k; q += 8)
            for (int r = 0; r < R; r++) {
                const __m256 wv = load8_avx2(is16, w + r * rb, q);
                for (int c = 0; c < C; c++)
                    acc[r][c][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + c * ldx + q), acc[r][c][0]);
            }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            const __m256 s = is16 ? _mm256_add_ps(acc[r][c][0], acc[r][c][1])
                                  : _mm256_add_ps(_mm256_add_ps(acc[r][c][0], acc[r][c][1]),
                                                  _mm256_add_ps(acc[r][c][2], acc[r][c][3]));
            y[c * ldy + r] = tail_f(is16, w + r * rb, x + c * ldx, q, k, plm_hsum8(s));
        }
}

#define PLM_TILE_CASE(R, C) \
    case (R) * 4 + (C): tile_avx2(is16, R, C, k, w, rb, x, ldx, y, ldy); break;
PLM_AVX2_FN static void tile_avx2_f32(int R, int C, int64_t k, const uint8_t *w, int64_t rb, const float *x,
                                      int64_t ldx, float *y, int64_t ldy) {
    const int is16 = 0;
    switch (R * 4 + C) { PLM_TILE_CASE(1, 3) PLM_TILE_CASE(1, 2) PLM_TILE_CASE(1, 1) default: break; }
}
PLM_AVX2_FN static void tile_avx2_f16(int R, int C, int64_t k, const uint8_t *w, int64_t rb, const float *x,
                                      int64_t ldx, float *y, int64_t ldy) {
    const int is16 = 1;
    switch (R * 4 + C) {
        PLM_TILE_CASE(2, 3) PLM_TILE_CASE(2, 2) PLM_TILE_CASE(2, 1)
        PLM_TILE_CASE(1, 3) PLM_TILE_CASE(1, 2) PLM_TILE_CASE(1, 1)
    default: break;
    }
}
#undef PLM_TILE_CASE

PLM_AVX2_FN static void gemm_f_avx2(int is16, int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows,
                                    const float *x, int64_t ldx, int64_t m, float *y, int64_t ldy) {
    const int RT = is16 ? 2 : 1;
    for (int64_t j = 0; j < n_rows; j += RT) {
        const int R = n_rows - j < RT ? (int)(n_rows - j) : RT;
        for (int64_t i = 0; i < m; i += 3) {
            const int C = m - i < 3 ? (int)(m - i) : 3;
            (is16 ? tile_avx2_f16 : tile_avx2_f32)(R, C, k, w + j * rb, rb, x + i * ldx, ldx, y + i * ldy + j, ldy);
        }
    }
}

/* AVX-512F: a zmm holds one accumulator of two outputs (a weight row against activation rows
 * c and c + 1), the weight's 8 values broadcast to both halves: lane for lane the AVX2 sums. */
#define PLM_AVX512F_FN __attribute__((target("avx2,fma,f16c,avx512f")))

PLM_AVX512F_FN static PLM_INLINE __m512 load8x2_512(int is16, const uint8_t *w, int64_t q) {
    const __m256d h = _mm256_castps_pd(load8_avx2(is16, w, q));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(h), h, 1));
}
PLM_AVX512F_FN static PLM_INLINE __m512 pair_512(const float *x0, const float *x1) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(x0))),
                                               _mm256_castps_pd(_mm256_loadu_ps(x1)), 1));
}

/* R weight rows x 4 activation rows (2 pairs) */
PLM_AVX512F_FN static PLM_INLINE void tile_512(int is16, int R, int64_t k, const uint8_t *w, int64_t rb,
                                                 const float *x, int64_t ldx, float *y, int64_t ldy) {
    const int NA = is16 ? 2 : 4, V = 8 * NA;
    __m512 acc[4][2][4];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < 2; c++)
            for (int a = 0; a < NA; a++) acc[r][c][a] = _mm512_setzero_ps();
    int64_t q = 0;
    for (; q + V <= k; q += V) {
        __m512 xv[2][4];
        for (int c = 0; c < 2; c++)
            for (int a = 0; a < NA; a++) xv[c][a] = pair_512(x + 2 * c * ldx + q + 8 * a, x + (2 * c + 1) * ldx + q + 8 * a);
        for (int r = 0; r < R; r++)
            for (int a = 0; a < NA; a++) {
                const __m512 wv = load8x2_512(is16, w + r * rb, q + 8 * a);
                for (int c = 0; c < 2; c++) acc[r][c][a] = _mm512_fmadd_ps(wv, xv[c][a], acc[r][c][a]);
            }
    }
    if (!is16)
        for (; q + 8 <= k; q += 8) {
            const __m512 x0 = pair_512(x + q, x + ldx + q), x1 = pair_512(x + 2 * ldx + q, x + 3 * ldx + q);
            for (int r = 0; r < R; r++) {
                const __m512 wv = load8x2_512(is16, w + r * rb, q);
                acc[r][0][0] = _mm512_fmadd_ps(wv, x0, acc[r][0][0]);
                acc[r][1][0] = _mm512_fmadd_ps(wv, x1, acc[r][1][0]);
            }
        }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < 2; c++) {
            const __m512 s = is16 ? _mm512_add_ps(acc[r][c][0], acc[r][c][1])
                                  : _mm512_add_ps(_mm512_add_ps(acc[r][c][0], acc[r][c][1]),
                                                  _mm512_add_ps(acc[r][c][2], acc[r][c][3]));
            const float lo = plm_hsum8(_mm512_castps512_ps256(s));
            const float hi = plm_hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
            y[2 * c * ldy + r] = tail_f(is16, w + r * rb, x + 2 * c * ldx, q, k, lo);
            y[(2 * c + 1) * ldy + r] = tail_f(is16, w + r * rb, x + (2 * c + 1) * ldx, q, k, hi);
        }
}

PLM_AVX512F_FN static void tile_512_f32(int64_t k, const uint8_t *w, int64_t rb, const float *x, int64_t ldx,
                                        float *y, int64_t ldy) {
    tile_512(0, 2, k, w, rb, x, ldx, y, ldy);
}
PLM_AVX512F_FN static void tile_512_f16(int64_t k, const uint8_t *w, int64_t rb, const float *x, int64_t ldx,
                                        float *y, int64_t ldy) {
    tile_512(1, 4, k, w, rb, x, ldx, y, ldy);
}

PLM_AVX512F_FN static void gemm_f_512(int is16, int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows,
                                      const float *x, int64_t ldx, int64_t m, float *y, int64_t ldy) {
    const int64_t RT = is16 ? 4 : 2;
    int64_t j = 0;
    for (; j + RT <= n_rows; j += RT) {
        int64_t i = 0;
        for (; i + 4 <= m; i += 4)
            (is16 ? tile_512_f16 : tile_512_f32)(k, w + j * rb, rb, x + i * ldx, ldx, y + i * ldy + j, ldy);
        if (i < m) gemm_f_avx2(is16, k, w + j * rb, rb, RT, x + i * ldx, ldx, m - i, y + i * ldy + j, ldy);
    }
    if (j < n_rows) gemm_f_avx2(is16, k, w + j * rb, rb, n_rows - j, x, ldx, m, y + j, ldy);
}
#endif

void plm_gemm_f_rows(int w_type, const uint8_t *w, int64_t rb, const plm_acts *a, int64_t j0, int64_t j1, float *y,
                     int64_t ldy, int level) {
#if PLM_X86
    if (j1 <= j0 || a->m == 0) return;
    const int is16 = w_type == PLM_TYPE_F16;
    const uint8_t *wj = w + j0 * rb;
    if (level >= 2) gemm_f_512(is16, a->k, wj, rb, j1 - j0, a->f32, a->f32_ld, a->m, y + j0, ldy);
    else gemm_f_avx2(is16, a->k, wj, rb, j1 - j0, a->f32, a->f32_ld, a->m, y + j0, ldy);
#else
    (void)w_type, (void)w, (void)rb, (void)a, (void)j0, (void)j1, (void)y, (void)ldy, (void)level;
#endif
}

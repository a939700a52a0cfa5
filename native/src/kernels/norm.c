/*
 * norm.c — RMSNorm (with Gemma's optional +1 weight offset) and LayerNorm
 * (with optional weight and bias), row by row. The sum of squares is the
 * part worth vectorizing; the scalar version is the reference twin.
 */
#include "kernels/kernels.h"

#include <math.h>

static float sum_squares_scalar(const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

#if PLM_X86
PLM_AVX2_FN static float sum_squares_avx2(const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    float s = plm_hsum8(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += x[i] * x[i];
    return s;
}
#endif

int plm_rms_norm(const float *x, const float *w, float *y, int64_t n_rows, int64_t n, float eps,
                 float w_offset) {
    PLM_CHECK(n_rows >= 0 && n >= 0, PLM_ERR_INVALID_ARG);
    if (n_rows == 0 || n == 0) return PLM_OK;
    PLM_CHECK(x != NULL && y != NULL, PLM_ERR_INVALID_ARG);
    const int simd = plm_use_simd();
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
#if PLM_X86
        const float ss = simd ? sum_squares_avx2(xr, n) : sum_squares_scalar(xr, n);
#elif PLM_ARM
        const float ss = simd ? plm_sum_squares_neon(xr, n) : sum_squares_scalar(xr, n);
#else
        (void)simd;
        const float ss = sum_squares_scalar(xr, n);
#endif
        const float inv = 1.0f / sqrtf(ss / (float)n + eps);
        if (w)
            for (int64_t i = 0; i < n; i++) yr[i] = xr[i] * inv * (w[i] + w_offset);
        else
            for (int64_t i = 0; i < n; i++) yr[i] = xr[i] * inv;
    }
    return PLM_OK;
}

int plm_layer_norm(const float *x, const float *w, const float *b, float *y, int64_t n_rows, int64_t n,
                   float eps) {
    PLM_CHECK(n_rows >= 0 && n >= 0, PLM_ERR_INVALID_ARG);
    if (n_rows == 0 || n == 0) return PLM_OK;
    PLM_CHECK(x != NULL && y != NULL, PLM_ERR_INVALID_ARG);
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float mean = 0.0f;
        for (int64_t i = 0; i < n; i++) mean += xr[i];
        mean /= (float)n;
        float var = 0.0f;
        for (int64_t i = 0; i < n; i++) var += (xr[i] - mean) * (xr[i] - mean);
        var /= (float)n;
        const float inv = 1.0f / sqrtf(var + eps);
        for (int64_t i = 0; i < n; i++) {
            float v = (xr[i] - mean) * inv;
            if (w) v *= w[i];
            if (b) v += b[i];
            yr[i] = v;
        }
    }
    return PLM_OK;
}

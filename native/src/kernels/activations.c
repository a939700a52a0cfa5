/*
 * activations.c — softmax, SiLU, GELU (tanh and erf forms), the gated
 * products of GLU MLPs and the residual add. Elementwise and memory-bound:
 * the compiler's vectorization of these loops is all they need, except the
 * add, which has an explicit AVX2 twin.
 */
#include "kernels/kernels.h"

#include <math.h>

#define PLM_SQRT_2_OVER_PI 0.7978845608028654f
#define PLM_INV_SQRT_2 0.7071067811865476f

static inline float silu1(float v) { return v / (1.0f + expf(-v)); }
static inline float gelu1(float v, int approximate) {
    if (approximate) return 0.5f * v * (1.0f + tanhf(PLM_SQRT_2_OVER_PI * (v + 0.044715f * v * v * v)));
    return 0.5f * v * (1.0f + erff(v * PLM_INV_SQRT_2));
}

int plm_softmax(const float *x, float *y, int64_t n_rows, int64_t n) {
    PLM_CHECK(n_rows >= 0 && n >= 0, PLM_ERR_INVALID_ARG);
    if (n_rows == 0 || n == 0) return PLM_OK;
    PLM_CHECK(x != NULL && y != NULL, PLM_ERR_INVALID_ARG);
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float max = xr[0];
        for (int64_t i = 1; i < n; i++) max = xr[i] > max ? xr[i] : max;
        float sum = 0.0f;
        for (int64_t i = 0; i < n; i++) {
            yr[i] = expf(xr[i] - max);
            sum += yr[i];
        }
        const float inv = 1.0f / sum;
        for (int64_t i = 0; i < n; i++) yr[i] *= inv;
    }
    return PLM_OK;
}

int plm_silu(const float *x, float *y, int64_t n) {
    PLM_CHECK(n >= 0, PLM_ERR_INVALID_ARG);
    if (n == 0) return PLM_OK;
    PLM_CHECK(x != NULL && y != NULL, PLM_ERR_INVALID_ARG);
    for (int64_t i = 0; i < n; i++) y[i] = silu1(x[i]);
    return PLM_OK;
}

int plm_gelu(const float *x, float *y, int64_t n, int approximate) {
    PLM_CHECK(n >= 0, PLM_ERR_INVALID_ARG);
    if (n == 0) return PLM_OK;
    PLM_CHECK(x != NULL && y != NULL, PLM_ERR_INVALID_ARG);
    for (int64_t i = 0; i < n; i++) y[i] = gelu1(x[i], approximate);
    return PLM_OK;
}

int plm_silu_mul(const float *gate, const float *up, float *y, int64_t n) {
    PLM_CHECK(n >= 0, PLM_ERR_INVALID_ARG);
    if (n == 0) return PLM_OK;
    PLM_CHECK(gate != NULL && up != NULL && y != NULL, PLM_ERR_INVALID_ARG);
    for (int64_t i = 0; i < n; i++) y[i] = silu1(gate[i]) * up[i];
    return PLM_OK;
}

int plm_gelu_mul(const float *gate, const float *up, float *y, int64_t n, int approximate) {
    PLM_CHECK(n >= 0, PLM_ERR_INVALID_ARG);
    if (n == 0) return PLM_OK;
    PLM_CHECK(gate != NULL && up != NULL && y != NULL, PLM_ERR_INVALID_ARG);
    for (int64_t i = 0; i < n; i++) y[i] = gelu1(gate[i], approximate) * up[i];
    return PLM_OK;
}

#if PLM_X86
PLM_AVX2_FN static void add_avx2(const float *a, const float *b, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) y[i] = a[i] + b[i];
}
#endif

int plm_add(const float *a, const float *b, float *y, int64_t n) {
    PLM_CHECK(n >= 0, PLM_ERR_INVALID_ARG);
    if (n == 0) return PLM_OK;
    PLM_CHECK(a != NULL && b != NULL && y != NULL, PLM_ERR_INVALID_ARG);
#if PLM_X86
    if (plm_use_avx2()) {
        add_avx2(a, b, y, n);
        return PLM_OK;
    }
#elif PLM_ARM
    if (plm_use_neon()) {
        plm_add_neon(a, b, y, n);
        return PLM_OK;
    }
#endif
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    return PLM_OK;
}

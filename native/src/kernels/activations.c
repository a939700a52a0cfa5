/*
 * activations.c — the vector exp, softmax, SiLU, GELU (tanh and erf forms),
 * the gated products of GLU MLPs and the residual add. Elementwise: the
 * compiler's vectorization of these loops is all they need, except the add
 * (an explicit AVX2 twin) and the exp, which libm's expf would keep scalar.
 *
 * The exp (plm_exp_rows) is one sequence of IEEE operations, written four
 * times: scalar (fmaf), AVX2, AVX-512 and NEON (arch/neon.c). Each step is
 * one correctly rounded operation on every path, so all four give the same
 * bits for the same input, and so do the scalar builds of x86 and arm64:
 *   n = round(x log2 e) by adding 1.5 * 2^23 (+127, the exponent bias),
 *   s = 2^n from n's bits shifted into the exponent field,
 *   t = x - n ln2 in two fused steps (ln2 split in a short high part and the rest),
 *   exp(x) = s + (t s) p(t), p a degree-6 polynomial for (e^t - 1) / t on
 *   |t| <= ln2 / 2 (a weighted least-squares fit at Chebyshev nodes: its own
 *   error is 0.3 ulp; the rounding of the steps brings the whole to 2 ulp).
 * x < ln(2^-126) (results that would be subnormal) gives 0, x above
 * 127.5 ln2 = 88.376 (where 2^n would not fit) +inf, -inf 0 and NaN NaN.
 * expf is finite up to 88.72; on (88.376, 88.72] this exp overflows early,
 * which SiLU's 1 / (1 + exp(-x)) turns into -0 instead of a value below 4e-37.
 */
#include "kernels/kernels.h"

#include <math.h>

#define PLM_SQRT_2_OVER_PI 0.7978845608028654f
#define PLM_INV_SQRT_2 0.7071067811865476f

/* ---- the vector exp ------------------------------------------------------------ */

static inline float exp1(float x) {
    const float vn = fmaf(x, PLM_EXP_LOG2E, PLM_EXP_MAGIC);
    uint32_t bits;
    memcpy(&bits, &vn, 4);
    bits <<= 23;
    float s;
    memcpy(&s, &bits, 4);
    const float n = vn - PLM_EXP_MAGIC;
    float t = fmaf(n, -PLM_EXP_LN2_HI, x);
    t = fmaf(n, -PLM_EXP_LN2_LO, t);
    float p = fmaf(PLM_EXP_C6, t, PLM_EXP_C5);
    p = fmaf(p, t, PLM_EXP_C4);
    p = fmaf(p, t, PLM_EXP_C3);
    p = fmaf(p, t, PLM_EXP_C2);
    p = fmaf(p, t, 1.0f);
    float f = fmaf(t * s, p, s);
    if (x < PLM_EXP_LO) f = 0.0f;
    if (x > PLM_EXP_HI) f = INFINITY;
    return f;
}

#if PLM_X86
PLM_AVX2_FN static int64_t exp_avx2(const float *x, float *y, int64_t n) {
    const __m256 log2e = _mm256_set1_ps(PLM_EXP_LOG2E), magic = _mm256_set1_ps(PLM_EXP_MAGIC);
    const __m256 mhi = _mm256_set1_ps(-PLM_EXP_LN2_HI), mlo = _mm256_set1_ps(-PLM_EXP_LN2_LO);
    const __m256 c6 = _mm256_set1_ps(PLM_EXP_C6), c5 = _mm256_set1_ps(PLM_EXP_C5), c4 = _mm256_set1_ps(PLM_EXP_C4);
    const __m256 c3 = _mm256_set1_ps(PLM_EXP_C3), c2 = _mm256_set1_ps(PLM_EXP_C2), one = _mm256_set1_ps(1.0f);
    const __m256 lo = _mm256_set1_ps(PLM_EXP_LO), hi = _mm256_set1_ps(PLM_EXP_HI), inf = _mm256_set1_ps(INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 vx = _mm256_loadu_ps(x + i);
        const __m256 vn = _mm256_fmadd_ps(vx, log2e, magic);
        const __m256 s = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(vn), 23));
        const __m256 nn = _mm256_sub_ps(vn, magic);
        __m256 t = _mm256_fmadd_ps(nn, mhi, vx);
        t = _mm256_fmadd_ps(nn, mlo, t);
        __m256 p = _mm256_fmadd_ps(c6, t, c5);
        p = _mm256_fmadd_ps(p, t, c4);
        p = _mm256_fmadd_ps(p, t, c3);
        p = _mm256_fmadd_ps(p, t, c2);
        p = _mm256_fmadd_ps(p, t, one);
        __m256 f = _mm256_fmadd_ps(_mm256_mul_ps(t, s), p, s);
        f = _mm256_andnot_ps(_mm256_cmp_ps(vx, lo, _CMP_LT_OQ), f);
        f = _mm256_blendv_ps(f, inf, _mm256_cmp_ps(vx, hi, _CMP_GT_OQ));
        _mm256_storeu_ps(y + i, f);
    }
    return i;
}

PLM_VNNI_FN static int64_t exp_512(const float *x, float *y, int64_t n) {
    const __m512 log2e = _mm512_set1_ps(PLM_EXP_LOG2E), magic = _mm512_set1_ps(PLM_EXP_MAGIC);
    const __m512 mhi = _mm512_set1_ps(-PLM_EXP_LN2_HI), mlo = _mm512_set1_ps(-PLM_EXP_LN2_LO);
    const __m512 c6 = _mm512_set1_ps(PLM_EXP_C6), c5 = _mm512_set1_ps(PLM_EXP_C5), c4 = _mm512_set1_ps(PLM_EXP_C4);
    const __m512 c3 = _mm512_set1_ps(PLM_EXP_C3), c2 = _mm512_set1_ps(PLM_EXP_C2), one = _mm512_set1_ps(1.0f);
    const __m512 lo = _mm512_set1_ps(PLM_EXP_LO), hi = _mm512_set1_ps(PLM_EXP_HI), inf = _mm512_set1_ps(INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 vx = _mm512_loadu_ps(x + i);
        const __m512 vn = _mm512_fmadd_ps(vx, log2e, magic);
        const __m512 s = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(vn), 23));
        const __m512 nn = _mm512_sub_ps(vn, magic);
        __m512 t = _mm512_fmadd_ps(nn, mhi, vx);
        t = _mm512_fmadd_ps(nn, mlo, t);
        __m512 p = _mm512_fmadd_ps(c6, t, c5);
        p = _mm512_fmadd_ps(p, t, c4);
        p = _mm512_fmadd_ps(p, t, c3);
        p = _mm512_fmadd_ps(p, t, c2);
        p = _mm512_fmadd_ps(p, t, one);
        __m512 f = _mm512_fmadd_ps(_mm512_mul_ps(t, s), p, s);
        f = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(vx, lo, _CMP_NLT_UQ), f);
        f = _mm512_mask_mov_ps(f, _mm512_cmp_ps_mask(vx, hi, _CMP_GT_OQ), inf);
        _mm512_storeu_ps(y + i, f);
    }
    return i;
}
#endif

void plm_exp_rows(const float *x, float *y, int64_t n, int level) {
    int64_t i = 0;
#if PLM_X86
    if (level >= 2) i = exp_512(x, y, n);
    if (level >= 1) i += exp_avx2(x + i, y + i, n - i);
#elif PLM_ARM
    if (level >= 1) i = plm_exp_neon(x, y, n);
#else
    (void)level;
#endif
    for (; i < n; i++) y[i] = exp1(x[i]);
}

int plm_exp_level(void) { return plm_use_vnni() ? 2 : plm_use_simd(); }

int plm_exp(const float *x, float *y, int64_t n) {
    PLM_CHECK(n >= 0, PLM_ERR_INVALID_ARG);
    if (n == 0) return PLM_OK;
    PLM_CHECK(x != NULL && y != NULL, PLM_ERR_INVALID_ARG);
    plm_exp_rows(x, y, n, plm_exp_level());
    return PLM_OK;
}

/* SiLU through the vector exp, a chunk at a time: y = g / (1 + exp(-g)) (* u) */
#define PLM_SILU_CHUNK 256
static void silu_rows(const float *g, const float *u, float *y, int64_t n) {
    const int level = plm_exp_level();
    float e[PLM_SILU_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += PLM_SILU_CHUNK) {
        const int64_t m = n - i0 < PLM_SILU_CHUNK ? n - i0 : PLM_SILU_CHUNK;
        for (int64_t i = 0; i < m; i++) e[i] = -g[i0 + i];
        plm_exp_rows(e, e, m, level);
        if (u)
            for (int64_t i = 0; i < m; i++) y[i0 + i] = g[i0 + i] / (1.0f + e[i]) * u[i0 + i];
        else
            for (int64_t i = 0; i < m; i++) y[i0 + i] = g[i0 + i] / (1.0f + e[i]);
    }
}

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
        for (int64_t i = 0; i < n; i++) yr[i] = xr[i] - max;
        plm_exp_rows(yr, yr, n, plm_exp_level());
        float sum = 0.0f;
        for (int64_t i = 0; i < n; i++) sum += yr[i];
        const float inv = 1.0f / sum;
        for (int64_t i = 0; i < n; i++) yr[i] *= inv;
    }
    return PLM_OK;
}

int plm_silu(const float *x, float *y, int64_t n) {
    PLM_CHECK(n >= 0, PLM_ERR_INVALID_ARG);
    if (n == 0) return PLM_OK;
    PLM_CHECK(x != NULL && y != NULL, PLM_ERR_INVALID_ARG);
    silu_rows(x, NULL, y, n);
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
    silu_rows(gate, up, y, n);
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

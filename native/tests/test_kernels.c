/*
 * test_kernels.c — C-level checks that need no Python: fp16 conversion over
 * every half value, the SIMD kernels against their scalar twins, the error
 * statuses of bad shapes and ids, and the thread pool's thread cap.
 */
#include "pocketlm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plm_test.h"

static uint64_t g_rng = 88172645463325252ull;
static float frand(void) { /* xorshift64 -> [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void test_fp16_roundtrip(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = plm_fp16_to_fp32((uint16_t)h);
        if (isnan(f)) continue;
        const uint16_t back = plm_fp32_to_fp16(f);
        EXPECT(back == h, "fp16 0x%04x -> %g -> 0x%04x", h, f, back);
    }
    EXPECT(plm_fp32_to_fp16(65520.0f) == 0x7c00, "65520 must round to inf");
    EXPECT(plm_fp32_to_fp16(65519.0f) == 0x7bff, "65519 must round to 65504");
    EXPECT(plm_fp32_to_fp16(1.0f + 1.0f / 2048.0f) == 0x3c00, "tie rounds to even");
}

static void test_simd_matches_scalar(void) {
    const int types[] = {PLM_TYPE_F32, PLM_TYPE_F16, PLM_TYPE_Q8_0, PLM_TYPE_Q4_0, PLM_TYPE_Q4_1};
    const int64_t m = 5, n = 37, k = 256; /* 4 rows through the prefill tiles, 1 through the row kernels */
    float *w = malloc(sizeof(float) * n * k), *x = malloc(sizeof(float) * m * k);
    float *y0 = malloc(sizeof(float) * m * n), *y1 = malloc(sizeof(float) * m * n);
    void *wq = malloc((size_t)n * k * 4);
    for (int64_t i = 0; i < n * k; i++) w[i] = frand();
    for (int64_t i = 0; i < m * k; i++) x[i] = frand();
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        EXPECT(plm_quantize(types[t], w, wq, n, k) == PLM_OK, "quantize type %d", types[t]);
        const int prev = plm_set_simd(0);
        EXPECT(plm_matmul(types[t], wq, x, y0, m, n, k, 2) == PLM_OK, "scalar matmul");
        plm_set_simd(2);
        EXPECT(plm_matmul(types[t], wq, x, y1, m, n, k, 2) == PLM_OK, "simd matmul");
        plm_set_simd(prev);
        for (int64_t i = 0; i < m * n; i++)
            EXPECT(fabsf(y0[i] - y1[i]) <= 1e-4f * (1.0f + fabsf(y0[i])), "type %d [%ld]: %g vs %g",
                   types[t], (long)i, y0[i], y1[i]);
#if defined(__aarch64__)
        /* NEON's quantized products sum blocks exactly and in the scalar order: equal bit for bit */
        if (types[t] != PLM_TYPE_F32 && types[t] != PLM_TYPE_F16)
            EXPECT(memcmp(y0, y1, sizeof(float) * (size_t)(m * n)) == 0, "type %d: NEON differs from scalar",
                   types[t]);
#endif
    }
    free(w); free(x); free(y0); free(y1); free(wq);
}

/* Level 2 (AVX512-VNNI on x86, sdot on arm64, where the CPU has it) gives level
 * 1's (AVX2, NEON) products bit for bit: decode rows (m = 1) and prefill tiles
 * (m = 9), odd and even block counts. */
static void test_level2_matches_level1(void) {
    const int types[] = {PLM_TYPE_Q8_0, PLM_TYPE_Q4_0, PLM_TYPE_Q4_1};
    const int64_t ms[] = {1, 9}, ks[] = {96, 576};
    const int64_t n = 45;
#if defined(__aarch64__)
    printf("sdot kernels %s\n", (plm_cpu_features() & PLM_CPU_DOTPROD) ? "in use" : "not on this CPU");
    printf("smmla (i8mm) prefill tile %s\n", (plm_cpu_features() & PLM_CPU_I8MM) ? "in use" : "not on this CPU");
#else
    printf("AVX512-VNNI kernels %s\n", (plm_cpu_features() & PLM_CPU_AVX512VNNI) ? "in use" : "not on this CPU");
#endif
    for (size_t ki = 0; ki < 2; ki++)
        for (size_t mi = 0; mi < 2; mi++) {
            const int64_t m = ms[mi], k = ks[ki];
            float *w = malloc(sizeof(float) * n * k), *x = malloc(sizeof(float) * m * k);
            float *y1 = malloc(sizeof(float) * m * n), *y2 = malloc(sizeof(float) * m * n);
            void *wq = malloc((size_t)n * k * 4);
            for (int64_t i = 0; i < n * k; i++) w[i] = frand();
            for (int64_t i = 0; i < m * k; i++) x[i] = frand();
            for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
                plm_quantize(types[t], w, wq, n, k);
                const int prev = plm_set_simd(1);
                plm_matmul(types[t], wq, x, y1, m, n, k, 2);
                plm_set_simd(2);
                plm_matmul(types[t], wq, x, y2, m, n, k, 2);
                plm_set_simd(prev);
                EXPECT(memcmp(y1, y2, sizeof(float) * (size_t)(m * n)) == 0, "type %d m %ld k %ld: level 2 differs",
                       types[t], (long)m, (long)k);
            }
            free(w); free(x); free(y1); free(y2); free(wq);
        }
}

/* The prefill GEMM (gemm.c, from 8 activation rows on): the AVX512-VNNI tile, the AVX2
 * tile, their scalar twin and the scalar row kernels give the same floats bit for bit (the
 * exact int32 block sums and one order of unfused products and sums), at ragged batch sizes, row counts that are not a multiple of the
 * 16-row panel and block counts over one panel chunk (34 blocks); and every level is
 * the product of the dequantized values to float rounding. */
/* level 2 runs AMX's tiles here: the OS granted them and POCKETLM_AMX=0 did not turn them off */
static int amx_here(void) {
    const int on = plm_set_amx(1);
    plm_set_amx(on);
    return on && (plm_cpu_features() & PLM_CPU_AMX);
}

static void test_gemm_levels(void) {
    const int types[] = {PLM_TYPE_Q8_0, PLM_TYPE_Q4_0, PLM_TYPE_Q4_1};
    const int64_t ms[] = {1, 3, 8, 17, 129, 512}, ks[] = {96, 576, 1088}, ns[] = {37, 16, 5};
    for (size_t ki = 0; ki < 3; ki++)
        for (size_t mi = 0; mi < sizeof(ms) / sizeof(ms[0]); mi++) {
            const int64_t m = ms[mi], k = ks[ki], n = ns[(ki + mi) % 3];
            if (m == 512 && k != 576) continue; /* the largest batch once is enough */
            float *w = malloc(sizeof(float) * n * k), *x = malloc(sizeof(float) * m * k);
            float *wd = malloc(sizeof(float) * n * k), *xd = malloc(sizeof(float) * m * k);
            float *y[3];
            for (int l = 0; l < 3; l++) y[l] = malloc(sizeof(float) * m * n);
            void *wq = malloc((size_t)n * k * 4), *xq = malloc((size_t)m * k * 2);
            for (int64_t i = 0; i < n * k; i++) w[i] = frand();
            for (int64_t i = 0; i < m * k; i++) x[i] = frand() * (i % 7 == 0 ? 4.0f : 1.0f);
            plm_quantize(PLM_TYPE_Q8_0, x, xq, m, k);
            plm_dequantize(PLM_TYPE_Q8_0, xq, xd, m, k);
            for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
                plm_quantize(types[t], w, wq, n, k);
                plm_dequantize(types[t], wq, wd, n, k);
                const int prev = plm_set_simd(0);
                for (int l = 0; l < 3; l++) {
                    plm_set_simd(l);
                    EXPECT(plm_matmul(types[t], wq, x, y[l], m, n, k, 2) == PLM_OK, "matmul level %d", l);
                }
                /* the scalar row kernels, one activation row at a time: what arm64's scalar and NEON
                 * products give, so a prefill rounds alike on both CPUs */
                plm_set_simd(0);
                float *rows = malloc(sizeof(float) * m * n);
                for (int64_t i = 0; i < m; i++) plm_matmul(types[t], wq, x + i * k, rows + i * n, 1, n, k, 1);
                plm_set_simd(prev);
                EXPECT(memcmp(rows, y[0], sizeof(float) * (size_t)(m * n)) == 0,
                       "type %d m %ld n %ld k %ld: the GEMM differs from the scalar row kernels", types[t], (long)m,
                       (long)n, (long)k);
                free(rows);
                if (m >= 8) {
                    EXPECT(memcmp(y[0], y[1], sizeof(float) * (size_t)(m * n)) == 0,
                           "type %d m %ld n %ld k %ld: the AVX2 GEMM differs from its scalar twin", types[t], (long)m,
                           (long)n, (long)k);
                    EXPECT(memcmp(y[0], y[2], sizeof(float) * (size_t)(m * n)) == 0,
                           "type %d m %ld n %ld k %ld: the %s GEMM differs from its scalar twin", types[t], (long)m,
                           (long)n, (long)k, amx_here() ? "AMX" : "VNNI");
                    if (amx_here()) { /* where the OS grants AMX, level 2 ran its tiles: the VNNI tile too */
                        const int amx = plm_set_amx(0);
                        float *vnni = malloc(sizeof(float) * m * n);
                        EXPECT(plm_matmul(types[t], wq, x, vnni, m, n, k, 2) == PLM_OK, "matmul without AMX");
                        plm_set_amx(amx);
                        EXPECT(memcmp(y[0], vnni, sizeof(float) * (size_t)(m * n)) == 0,
                               "type %d m %ld n %ld k %ld: the VNNI GEMM differs from its scalar twin", types[t],
                               (long)m, (long)n, (long)k);
                        free(vnni);
                    }
                }
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double ref = 0.0, mag = 0.0;
                        for (int64_t q = 0; q < k; q++) {
                            ref += (double)wd[j * k + q] * xd[i * k + q];
                            mag += fabs((double)wd[j * k + q] * xd[i * k + q]);
                        }
                        for (int l = 0; l < 3; l++)
                            EXPECT(fabs(y[l][i * n + j] - ref) <= 2e-5 * mag + 1e-6,
                                   "type %d level %d m %ld k %ld [%ld, %ld]: %g vs %g", types[t], l, (long)m, (long)k,
                                   (long)i, (long)j, y[l][i * n + j], ref);
                    }
            }
            free(w); free(x); free(wd); free(xd); free(wq); free(xq);
            for (int l = 0; l < 3; l++) free(y[l]);
        }
}

/* The prefill's F32 / F16 product on x86 (gemm_f.c, from 2 activation rows on): the AVX-512
 * tile and the AVX2 tile sum each output as the AVX2 row kernel (a decode step's) does, so
 * both give, bit for bit, what the rows one at a time give, at ragged batch sizes, row counts
 * that are not a multiple of any tile and row lengths with tails past the 32- and 16-value
 * steps (k % 8 != 0 included); the scalar twin (level 0) and every level are the
 * double-precision product to float rounding. */
#if defined(__x86_64__)
#define PLM_TEST_X86 1
#else
#define PLM_TEST_X86 0 /* arm64 keeps its NEON row dots for float weights */
#endif
static void test_gemm_f_levels(void) {
    const int types[] = {PLM_TYPE_F32, PLM_TYPE_F16};
    const int64_t ms[] = {2, 3, 8, 17, 129, 512}, ks[] = {96, 100, 584}, ns[] = {37, 16, 5, 9};
    for (size_t ki = 0; ki < 3; ki++)
        for (size_t mi = 0; mi < sizeof(ms) / sizeof(ms[0]); mi++) {
            const int64_t m = ms[mi], k = ks[ki], n = ns[(ki + mi) % 4];
            if (m == 512 && k != 584) continue;
            float *w = malloc(sizeof(float) * n * k), *x = malloc(sizeof(float) * m * k);
            float *wd = malloc(sizeof(float) * n * k), *rows = malloc(sizeof(float) * m * n);
            uint16_t *wh = malloc(sizeof(uint16_t) * n * k);
            float *y[3];
            for (int l = 0; l < 3; l++) y[l] = malloc(sizeof(float) * m * n);
            for (int64_t i = 0; i < n * k; i++) w[i] = frand();
            for (int64_t i = 0; i < m * k; i++) x[i] = frand() * (i % 7 == 0 ? 4.0f : 1.0f);
            for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
                const void *wq = w;
                if (types[t] == PLM_TYPE_F16) {
                    for (int64_t i = 0; i < n * k; i++) wh[i] = plm_fp32_to_fp16(w[i]);
                    for (int64_t i = 0; i < n * k; i++) wd[i] = plm_fp16_to_fp32(wh[i]);
                    wq = wh;
                } else {
                    memcpy(wd, w, sizeof(float) * n * k);
                }
                const int prev = plm_set_simd(0);
                for (int l = 0; l < 3; l++) {
                    plm_set_simd(l);
                    EXPECT(plm_matmul(types[t], wq, x, y[l], m, n, k, 2) == PLM_OK, "matmul level %d", l);
                }
                plm_set_simd(1); /* the row kernels, one activation row at a time */
                float *yr = malloc(sizeof(float) * n);
                for (int64_t i = 0; i < m; i++) {
                    plm_matmul(types[t], wq, x + i * k, yr, 1, n, k, 1);
                    memcpy(rows + i * n, yr, sizeof(float) * n);
                }
                free(yr);
                plm_set_simd(prev);
                if (PLM_TEST_X86)
                    for (int l = 1; l < 3; l++)
                        EXPECT(memcmp(rows, y[l], sizeof(float) * (size_t)(m * n)) == 0,
                               "type %d m %ld n %ld k %ld: the level-%d float GEMM differs from the row kernels",
                               types[t], (long)m, (long)n, (long)k, l);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double ref = 0.0, mag = 0.0;
                        for (int64_t q = 0; q < k; q++) {
                            ref += (double)wd[j * k + q] * x[i * k + q];
                            mag += fabs((double)wd[j * k + q] * x[i * k + q]);
                        }
                        for (int l = 0; l < 3; l++)
                            EXPECT(fabs(y[l][i * n + j] - ref) <= 1e-5 * mag + 1e-6,
                                   "type %d level %d m %ld k %ld [%ld, %ld]: %g vs %g", types[t], l, (long)m, (long)k,
                                   (long)i, (long)j, y[l][i * n + j], ref);
                    }
            }
            free(w); free(x); free(wd); free(wh); free(rows);
            for (int l = 0; l < 3; l++) free(y[l]);
        }
}

static void test_errors(void) {
    float x[64] = {0}, y[64];
    uint8_t q[128];
    int32_t ids[2] = {0, 5};
    EXPECT(plm_quantize(PLM_TYPE_Q8_0, x, q, 1, 33) == PLM_ERR_SHAPE, "k %% 32 != 0 must be a shape error");
    EXPECT(plm_quantize(99, x, q, 1, 32) == PLM_ERR_TYPE, "unknown type");
    EXPECT(plm_matmul(PLM_TYPE_Q4_0, q, x, y, 1, 1, 48, 1) == PLM_ERR_SHAPE, "matmul bad k");
    EXPECT(plm_matmul(PLM_TYPE_F32, NULL, x, y, 1, 1, 4, 1) == PLM_ERR_INVALID_ARG, "NULL weight");
    y[0] = 123.0f;
    EXPECT(plm_get_rows(PLM_TYPE_F32, x, 4, 8, ids, 2, y) == PLM_ERR_INVALID_ARG, "id out of range");
    EXPECT(y[0] == 123.0f, "nothing written on a bad id");
    EXPECT(plm_attention(x, x, x, y, 2, 1, 0, 1, 1, 4, 1.0f, 0.0f, 0, NULL, 1) == PLM_ERR_SHAPE,
           "queries past the cache");
    EXPECT(plm_attention(x, x, x, y, 1, 1, 0, 3, 2, 4, 1.0f, 0.0f, 0, NULL, 1) == PLM_ERR_SHAPE,
           "heads not a multiple of kv heads");
    EXPECT(plm_rope(x, 1, 1, 8, 9, ids, 10000.0f, 1.0f, NULL, PLM_ROPE_NEOX) == PLM_ERR_SHAPE, "odd rot_dim");
}

static void test_thread_cap(void) {
    const int64_t n = 4096, k = 1024;
    float *w = calloc((size_t)n * k, sizeof(float)), *x = calloc(k, sizeof(float)), *y = malloc(n * sizeof(float));
    plm_set_max_threads(2);
    plm_pool_reset_peak();
    plm_matmul(PLM_TYPE_F32, w, x, y, 1, n, k, 8);
    EXPECT(plm_pool_peak_threads() == 2, "cap 2, asked 8: peak %d", plm_pool_peak_threads());
    plm_set_max_threads(1);
    plm_pool_reset_peak();
    plm_matmul(PLM_TYPE_F32, w, x, y, 1, n, k, 8);
    EXPECT(plm_pool_peak_threads() == 1, "cap 1: peak %d", plm_pool_peak_threads());
    plm_set_max_threads(0);
    free(w); free(x); free(y);
}

/* ulps between two finite floats of the same sign */
static int64_t ulps(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    return ia > ib ? (int64_t)ia - ib : (int64_t)ib - ia;
}

/* plm_exp: within 2 ulp of the correctly rounded exp over its range, the same bits at every
 * SIMD level (and so in every build), its ends as pocketlm.h says */
static void test_exp(void) {
    enum { N = 200003 };
    float *x = malloc(sizeof(float) * N), *y[3];
    const float lo = -87.3365f, hi = 88.376f;
    for (int i = 0; i < N; i++) x[i] = lo + (hi - lo) * (float)i / (float)(N - 1);
    for (int l = 0; l < 3; l++) {
        y[l] = malloc(sizeof(float) * N);
        const int prev = plm_set_simd(l);
        EXPECT(plm_exp(x, y[l], N) == PLM_OK, "plm_exp");
        plm_set_simd(prev);
    }
    int64_t worst = 0;
    for (int i = 0; i < N; i++) {
        const float want = (float)exp((double)x[i]);
        const int64_t u = ulps(y[0][i], want);
        worst = u > worst ? u : worst;
        EXPECT(memcmp(&y[0][i], &y[1][i], 4) == 0 && memcmp(&y[0][i], &y[2][i], 4) == 0,
               "exp(%a): levels differ: %a %a %a", x[i], y[0][i], y[1][i], y[2][i]);
    }
    EXPECT(worst <= 2, "exp is %lld ulp off", (long long)worst);
    const float ends[] = {-INFINITY, -1000.0f, -87.4f, 88.4f, 1000.0f, INFINITY, NAN, 0.0f, -0.0f};
    for (int l = 0; l < 3; l++) {
        float e[9];
        const int prev = plm_set_simd(l);
        plm_exp(ends, e, 9);
        plm_set_simd(prev);
        EXPECT(e[0] == 0.0f && e[1] == 0.0f && e[2] == 0.0f, "exp of -inf, -1000, -87.4: %g %g %g", e[0], e[1], e[2]);
        EXPECT(isinf(e[3]) && isinf(e[4]) && isinf(e[5]) && e[3] > 0, "exp of 88.4, 1000, inf: %g %g %g", e[3], e[4], e[5]);
        EXPECT(isnan(e[6]) && e[7] == 1.0f && e[8] == 1.0f, "exp of NaN, 0, -0: %g %g %g", e[6], e[7], e[8]);
    }
    EXPECT(plm_exp(x, y[0], -1) == PLM_ERR_INVALID_ARG, "negative n");
    for (int l = 0; l < 3; l++) free(y[l]);
    free(x);
}

/* plm_attention (the engine's attention tiles under it) gives the same bits at every SIMD
 * level, over head sizes that are not a multiple of 8 and GQA groups of odd size */
static void test_attention_levels(void) {
    const int64_t cases[][4] = {{37, 6, 3, 64}, {19, 4, 4, 20}, {9, 5, 1, 8}, {70, 2, 2, 130}}; /* n, heads, kv heads, hd */
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const int64_t n = cases[c][0], nh = cases[c][1], nkv = cases[c][2], hd = cases[c][3];
        float *q = malloc(sizeof(float) * n * nh * hd), *k = malloc(sizeof(float) * n * nkv * hd);
        float *v = malloc(sizeof(float) * n * nkv * hd), *o[3];
        for (int64_t i = 0; i < n * nh * hd; i++) q[i] = frand();
        for (int64_t i = 0; i < n * nkv * hd; i++) k[i] = frand(), v[i] = frand();
        for (int l = 0; l < 3; l++) {
            o[l] = malloc(sizeof(float) * n * nh * hd);
            const int prev = plm_set_simd(l);
            EXPECT(plm_attention(q, k, v, o[l], n, n, 0, nh, nkv, hd, 0.3f, 0.0f, 0, NULL, 1) == PLM_OK, "attention");
            plm_set_simd(prev);
        }
        EXPECT(memcmp(o[0], o[1], sizeof(float) * n * nh * hd) == 0, "attention case %zu: level 1 != scalar", c);
        EXPECT(memcmp(o[0], o[2], sizeof(float) * n * nh * hd) == 0, "attention case %zu: level 2 != scalar", c);
        for (int l = 0; l < 3; l++) free(o[l]);
        free(q), free(k), free(v);
    }
}

int main(void) {
    test_fp16_roundtrip();
    test_simd_matches_scalar();
    test_level2_matches_level1();
    printf("prefill GEMM tiles: %s\n", amx_here() ? "AMX (the OS grants it) and AVX512-VNNI"
                                       : (plm_cpu_features() & PLM_CPU_AMX) ? "AVX512-VNNI (AMX off: POCKETLM_AMX=0)"
                                       : (plm_cpu_features() & PLM_CPU_AVX512VNNI) ? "AVX512-VNNI (AMX not granted here)"
                                                                                 : "AVX2 or none");
    test_gemm_levels();
    test_gemm_f_levels();
    test_exp();
    test_attention_levels();
    test_errors();
    test_thread_cap();
    printf("%s (features 0x%x)\n", g_failures ? "FAILED" : "all C kernel tests passed", plm_cpu_features());
    return g_failures ? 1 : 0;
}

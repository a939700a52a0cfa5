/*
 * bench_gemm.c — the prefill GEMM's speed from C alone: ROWS activation rows
 * times a Q8_0, Q4_0 and Q4_1 weight matrix of N x K (random values) through
 * plm_matmul, on each x86 tile this CPU runs (AMX where the OS grants it, the
 * AVX512-VNNI tile, the AVX2 tile), alternating, best of 7, with the int8
 * multiply-adds a second and whether every tile gave the same floats. For
 * machines without Python (tools/bench_gemm.py is the same from Python).
 * Usage: bench_gemm [ROWS [N [K [THREADS]]]]   (default 512 1536 576 1)
 */
#include "pocketlm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const long m = argc > 1 ? atol(argv[1]) : 512, n = argc > 2 ? atol(argv[2]) : 1536;
    const long k = argc > 3 ? atol(argv[3]) : 576;
    const int threads = argc > 4 ? atoi(argv[4]) : 1;
    if (m < 1 || n < 1 || k < 32 || k % 32 != 0 || threads < 1) {
        fprintf(stderr, "usage: bench_gemm [ROWS [N [K (a multiple of 32) [THREADS]]]]\n");
        return 2;
    }
    const int features = plm_cpu_features();
    struct { const char *name; int level, amx; } tiles[3];
    int nt = 0;
    if (features & PLM_CPU_AMX) tiles[nt++] = (typeof(tiles[0])){"AMX", 2, 1};
    if (features & PLM_CPU_AVX512VNNI) tiles[nt++] = (typeof(tiles[0])){"AVX512-VNNI", 2, 0};
    if (features & PLM_CPU_AVX2) tiles[nt++] = (typeof(tiles[0])){"AVX2", 1, 0};
    if (nt == 0) {
        printf("no x86 tile on this CPU\n");
        return 0;
    }
    float *w = malloc(sizeof(float) * (size_t)(n * k)), *x = malloc(sizeof(float) * (size_t)(m * k));
    void *wq = malloc((size_t)(n * k) * 2);
    float *y[3];
    for (int t = 0; t < nt; t++) y[t] = malloc(sizeof(float) * (size_t)(m * n));
    srand(1);
    for (long i = 0; i < n * k; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
    for (long i = 0; i < m * k; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    const int types[] = {PLM_TYPE_Q8_0, PLM_TYPE_Q4_0, PLM_TYPE_Q4_1};
    const char *type_names[] = {"Q8_0", "Q4_0", "Q4_1"};
    printf("%ld activation rows x %ld x %ld, %d thread(s), best of 7 (G int8 multiply-adds a second)\n", m, n, k,
           threads);
    for (int ti = 0; ti < 3; ti++) {
        plm_quantize(types[ti], w, wq, n, k);
        double best[3] = {1e30, 1e30, 1e30};
        for (int r = 0; r < 7; r++)
            for (int t = 0; t < nt; t++) {
                const int prev = plm_set_simd(tiles[t].level), prev_amx = plm_set_amx(tiles[t].amx);
                const double t0 = now();
                if (plm_matmul(types[ti], wq, x, y[t], m, n, k, threads) != PLM_OK) return 1;
                const double dt = now() - t0;
                best[t] = dt < best[t] ? dt : best[t];
                plm_set_simd(prev);
                plm_set_amx(prev_amx);
            }
        int same = 1;
        for (int t = 1; t < nt; t++) same &= memcmp(y[0], y[t], sizeof(float) * (size_t)(m * n)) == 0;
        printf("  %s", type_names[ti]);
        for (int t = 0; t < nt; t++) printf("  %s %7.1f G", tiles[t].name, (double)m * n * k / best[t] / 1e9);
        printf("  %s\n", same ? "same floats" : "FLOATS DIFFER");
    }
    return 0;
}

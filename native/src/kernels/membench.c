/*
 * membench.c — a streaming read of a large buffer split over threads, the
 * access pattern of a GEMV, so tools/membw.py can measure the bandwidth a
 * GEMV could at best reach on this machine.
 */
#include "kernels/kernels.h"

typedef struct {
    const uint8_t *buf;
    int64_t bytes;
    double partial[256];
} plm_read_ctx;

#if PLM_X86
PLM_AVX2_FN static double read_avx2(const uint8_t *p, int64_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    const __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    int64_t s = _mm256_extract_epi64(a, 0) ^ _mm256_extract_epi64(a, 1) ^ _mm256_extract_epi64(a, 2) ^
                _mm256_extract_epi64(a, 3);
    for (; i < n; i++) s ^= p[i];
    return (double)(s & 0xffff);
}
#endif

static double read_scalar(const uint8_t *p, int64_t n) {
    uint64_t s = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        s ^= v;
    }
    for (; i < n; i++) s ^= p[i];
    return (double)(s & 0xffff);
}

static void read_task(void *vctx, int64_t begin, int64_t end, int tid) {
    plm_read_ctx *c = (plm_read_ctx *)vctx;
    /* [begin, end) counts 4 KiB pages */
    const int64_t b0 = begin * 4096, b1 = end * 4096 < c->bytes ? end * 4096 : c->bytes;
#if PLM_X86
    if (plm_use_avx2()) {
        c->partial[tid] = read_avx2(c->buf + b0, b1 - b0);
        return;
    }
#endif
    c->partial[tid] = read_scalar(c->buf + b0, b1 - b0);
}

double plm_bench_read(const void *buf, int64_t bytes, int n_threads) {
    if (buf == NULL || bytes <= 0) return 0.0;
    plm_read_ctx c = {(const uint8_t *)buf, bytes, {0}};
    plm_parallel_for((bytes + 4095) / 4096, 64, read_task, &c, n_threads);
    double s = 0.0;
    for (int i = 0; i < 256; i++) s += c.partial[i];
    return s;
}

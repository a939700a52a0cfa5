/*
 * gemv_q4.c — dot products of Q4_0 and Q4_1 weight rows with a Q8_0
 * activation row. Byte j of a block holds value j (low nibble) and value
 * j+16 (high nibble), GGUF's order. Q4_1's minimum m adds m * d_x * sum(q_x)
 * per block; xsum carries d_x * sum(q_x), computed once per activation row.
 */
#include "plm_internal.h"

float plm_vec_dot_q4_0_scalar(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    const plm_block_q4_0 *w = (const plm_block_q4_0 *)vw;
    const plm_block_q8_0 *x = (const plm_block_q8_0 *)vx;
    float sum = 0.0f;
    for (int64_t b = 0; b < k / PLM_QK; b++) {
        int32_t sumi = 0;
        for (int j = 0; j < PLM_QK / 2; j++) {
            sumi += ((w[b].qs[j] & 0x0F) - 8) * (int32_t)x[b].qs[j];
            sumi += ((w[b].qs[j] >> 4) - 8) * (int32_t)x[b].qs[j + PLM_QK / 2];
        }
        sum += (float)sumi * (plm_h2f(w[b].d) * plm_h2f(x[b].d));
    }
    return sum;
}

float plm_vec_dot_q4_1_scalar(int64_t k, const void *vw, const void *vx, const float *xsum) {
    const plm_block_q4_1 *w = (const plm_block_q4_1 *)vw;
    const plm_block_q8_0 *x = (const plm_block_q8_0 *)vx;
    float sum = 0.0f;
    for (int64_t b = 0; b < k / PLM_QK; b++) {
        int32_t sumi = 0;
        for (int j = 0; j < PLM_QK / 2; j++) {
            sumi += (w[b].qs[j] & 0x0F) * (int32_t)x[b].qs[j];
            sumi += (w[b].qs[j] >> 4) * (int32_t)x[b].qs[j + PLM_QK / 2];
        }
        sum += (float)sumi * (plm_h2f(w[b].d) * plm_h2f(x[b].d)) + plm_h2f(w[b].m) * xsum[b];
    }
    return sum;
}

#if PLM_X86
/* 16 bytes of nibbles -> 32 bytes in value order, each in [0, 15]. */
PLM_AVX2_FN static inline __m256i unpack_nibbles(const uint8_t *qs) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* unsigned bytes (<= 15 here) times signed bytes -> 8 float partial sums */
PLM_AVX2_FN static inline __m256 dot_u8_i8(__m256i u, __m256i s) {
    const __m256i p16 = _mm256_maddubs_epi16(u, s);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

PLM_AVX2_FN float plm_vec_dot_q4_0_avx2(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    const plm_block_q4_0 *w = (const plm_block_q4_0 *)vw;
    const plm_block_q8_0 *x = (const plm_block_q8_0 *)vx;
    const int64_t nb = k / PLM_QK;
    const __m256i eight = _mm256_set1_epi8(8);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        for (int u = 0; u < 2; u++) {
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(w[b + u].d) * _cvtsh_ss(x[b + u].d));
            const __m256i qw = _mm256_sub_epi8(unpack_nibbles(w[b + u].qs), eight);
            const __m256i qx = _mm256_loadu_si256((const __m256i *)x[b + u].qs);
            /* |qw| * (qx * sign(qw)) keeps maddubs' unsigned operand unsigned */
            const __m256 p = dot_u8_i8(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qx, qw));
            if (u == 0) acc0 = _mm256_fmadd_ps(d, p, acc0);
            else acc1 = _mm256_fmadd_ps(d, p, acc1);
        }
    }
    for (; b < nb; b++) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(w[b].d) * _cvtsh_ss(x[b].d));
        const __m256i qw = _mm256_sub_epi8(unpack_nibbles(w[b].qs), eight);
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[b].qs);
        acc0 = _mm256_fmadd_ps(d, dot_u8_i8(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qx, qw)), acc0);
    }
    return plm_hsum8(_mm256_add_ps(acc0, acc1));
}

PLM_AVX2_FN float plm_vec_dot_q4_1_avx2(int64_t k, const void *vw, const void *vx, const float *xsum) {
    const plm_block_q4_1 *w = (const plm_block_q4_1 *)vw;
    const plm_block_q8_0 *x = (const plm_block_q8_0 *)vx;
    const int64_t nb = k / PLM_QK;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(w[b].d) * _cvtsh_ss(x[b].d));
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[b].qs);
        acc = _mm256_fmadd_ps(d, dot_u8_i8(unpack_nibbles(w[b].qs), qx), acc);
        summ += _cvtsh_ss(w[b].m) * xsum[b];
    }
    return plm_hsum8(acc) + summ;
}
#endif

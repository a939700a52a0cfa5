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

/* Activations for plm_dot_q4_paired_avx2: per pair of Q8_0 blocks a, b the
 * values reordered as [a0..15, b0..15, a16..31, b16..31] (64 bytes), so one
 * 256-bit register of low nibbles (or high nibbles) of two weight blocks
 * meets its activations in one maddubs. For Q4_0 (with_offset) 32 more
 * bytes follow: the 16 int16 lanes maddubs(8, x) would give, so the kernel
 * subtracts Q4_0's offset of 8 exactly, in integers. An odd last block stays
 * as a plain Q8_0 block's 32 values. */
int64_t plm_q4_pair_stride(int with_offset) { return with_offset ? 96 : 64; }

void plm_pair_q8_0_for_q4(const void *vx, int64_t k, int with_offset, uint8_t *out) {
    const plm_block_q8_0 *x = (const plm_block_q8_0 *)vx;
    const int64_t nb = k / PLM_QK;
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        memcpy(out, x[b].qs, 16);
        memcpy(out + 16, x[b + 1].qs, 16);
        memcpy(out + 32, x[b].qs + 16, 16);
        memcpy(out + 48, x[b + 1].qs + 16, 16);
        if (with_offset) {
            const int8_t *lo = (const int8_t *)out, *hi = (const int8_t *)out + 32;
            for (int l = 0; l < 16; l++) {
                const int16_t v = (int16_t)(8 * (lo[2 * l] + lo[2 * l + 1] + hi[2 * l] + hi[2 * l + 1]));
                memcpy(out + 64 + 2 * l, &v, 2);
            }
        }
        out += plm_q4_pair_stride(with_offset);
    }
    if (b < nb) memcpy(out, x[b].qs, 32);
}

/* One Q4_0 or Q4_1 weight row against a paired activation row, two blocks
 * per step. Nibbles are used unsigned, so maddubs needs no sign trick:
 * Q4_0's (q - 8) * d becomes q * d + m with m = -8 d, and both types share
 * Q4_0's offset of 8 is taken off in integers with the pair's precomputed
 * lanes; Q4_1's minimum term m * d_x * sum(q_x) comes from xsum. xd[b] is
 * the activation block's scale as float. (Walking several weight rows at
 * once was tried: the interleaved streams ran slower out of DRAM.) */
PLM_AVX2_FN static inline __m256 pair_dot(const uint8_t *qa, const uint8_t *qb, const uint8_t *xp, int with_offset) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i raw = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)qb), _mm_loadu_si128((const __m128i *)qa));
    const __m256i lo = _mm256_and_si256(raw, low4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
    /* each int16 lane is at most 2 * 15 * 128 per maddubs, so their sum fits */
    __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)xp)),
                                   _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xp + 32))));
    if (with_offset) s16 = _mm256_sub_epi16(s16, _mm256_loadu_si256((const __m256i *)(xp + 64)));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, _mm256_set1_epi16(1))); /* lanes 0-3: block a, 4-7: b */
}

PLM_AVX2_FN float plm_dot_q4_paired_avx2(int is_q4_1, int64_t k, const void *vw, const uint8_t *xp, const float *xd,
                                         const float *xsum) {
    const uint8_t *w = (const uint8_t *)vw;
    const int64_t nb = k / PLM_QK, bb = is_q4_1 ? (int64_t)sizeof(plm_block_q4_1) : (int64_t)sizeof(plm_block_q4_0);
    const int64_t qoff = is_q4_1 ? 4 : 2;
    const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m128 msum = _mm_setzero_ps(); /* lanes 0, 1: minimum terms of blocks a, b */
    int64_t b = 0;
    const int64_t stride = plm_q4_pair_stride(!is_q4_1);
    for (; b + 1 < nb; b += 2, xp += stride) {
        const uint8_t *ba = w + b * bb, *bn = ba + bb;
        uint16_t h[2];
        memcpy(&h[0], ba, 2);
        memcpy(&h[1], bn, 2);
        const __m128 dw = _mm_cvtph_ps(_mm_cvtsi32_si128((int)h[0] | ((int)h[1] << 16)));
        if (is_q4_1) {
            memcpy(&h[0], ba + 2, 2);
            memcpy(&h[1], bn + 2, 2);
            const __m128 m = _mm_cvtph_ps(_mm_cvtsi32_si128((int)h[0] | ((int)h[1] << 16)));
            msum = _mm_fmadd_ps(m, _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(xsum + b))), msum);
        }
        const __m128 dx = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(xd + b)));
        const __m256 d = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_mul_ps(dw, dx)), spread);
        const __m256 p = pair_dot(ba + qoff, bn + qoff, xp, !is_q4_1);
        if ((b & 2) == 0) acc0 = _mm256_fmadd_ps(d, p, acc0);
        else acc1 = _mm256_fmadd_ps(d, p, acc1);
    }
    float sum = plm_hsum8(_mm256_add_ps(acc0, acc1));
    msum = _mm_add_ss(msum, _mm_movehdup_ps(msum));
    sum += _mm_cvtss_f32(msum);
    if (b < nb) { /* odd last block, laid out as a plain Q8_0 block */
        const uint8_t *blk = w + b * bb;
        uint16_t dh;
        memcpy(&dh, blk, 2);
        const float d = _cvtsh_ss(dh);
        const __m256 p = dot_u8_i8(unpack_nibbles(blk + qoff), _mm256_loadu_si256((const __m256i *)xp));
        float m = -8.0f * d;
        if (is_q4_1) {
            memcpy(&dh, blk + 2, 2);
            m = _cvtsh_ss(dh);
        }
        sum += d * xd[b] * plm_hsum8(p) + m * xsum[b];
    }
    return sum;
}
#endif

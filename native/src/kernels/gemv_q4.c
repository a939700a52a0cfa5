/*
 * gemv_q4.c — dot products of Q4_0 and Q4_1 weight rows with a Q8_0
 * activation row. Byte j of a block holds value j (low nibble) and value
 * j+16 (high nibble), GGUF's order. Q4_1's minimum m adds m * d_x * sum(q_x)
 * per block; xsum carries d_x * sum(q_x), computed once per activation row.
 */
#include "kernels/kernels.h"

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

/* Activations for the AVX2 Q4 row kernels: per pair of Q8_0 blocks a, b
 * the values reordered as [a0..15, b0..15, a16..31, b16..31] (64 bytes), so
 * one 256-bit register of the low nibbles (or the high nibbles) of two
 * weight blocks meets its activations in one maddubs; an odd last block
 * stays as its 32 values. Per pair, dxs holds the blocks' scales spread
 * over 8 lanes [da x4, db x4] (one more 8 for the odd block), and the
 * minimum terms' factors: xsm41 = [0, sa, 0, sb] (Q4_1: m * d_x * sum(q_x),
 * lanes meeting [d, m] of two blocks) and xsm40 = [-8 sa, 0, -8 sb, 0]
 * (Q4_0's offset of 8 as a minimum of -8 d), sa = d_x * sum(q_x) of a; for
 * the tile kernel, the same spread over 8 lanes: xs841 = [sa/4 x4, sb/4 x4]
 * (meeting [m_a x4, m_b x4]) and xs840 = [-2 sa x4, -2 sb x4] (meeting d). */
void plm_pair_q8_0_for_q4(const void *vx, int64_t k, uint8_t *out, float *dxs, float *xsm40, float *xsm41,
                          float *xs840, float *xs841) {
    const plm_block_q8_0 *x = (const plm_block_q8_0 *)vx;
    const int64_t nb = k / PLM_QK;
    float s[2], d[2];
    int64_t b = 0;
    for (; b + 1 < nb; b += 2, out += 64, dxs += 8, xsm40 += 4, xsm41 += 4, xs840 += 8, xs841 += 8) {
        memcpy(out, x[b].qs, 16);
        memcpy(out + 16, x[b + 1].qs, 16);
        memcpy(out + 32, x[b].qs + 16, 16);
        memcpy(out + 48, x[b + 1].qs + 16, 16);
        for (int u = 0; u < 2; u++) {
            int32_t sum = 0;
            for (int j = 0; j < PLM_QK; j++) sum += x[b + u].qs[j];
            d[u] = plm_h2f(x[b + u].d);
            s[u] = d[u] * (float)sum;
            for (int l = 0; l < 4; l++) {
                dxs[4 * u + l] = d[u];
                xs841[4 * u + l] = 0.25f * s[u]; /* four lanes of m * s / 4: exact, a power of two */
                xs840[4 * u + l] = -2.0f * s[u]; /* four lanes of d * (-8 s) / 4 */
            }
        }
        xsm41[0] = 0.0f, xsm41[1] = s[0], xsm41[2] = 0.0f, xsm41[3] = s[1];
        xsm40[0] = -8.0f * s[0], xsm40[1] = 0.0f, xsm40[2] = -8.0f * s[1], xsm40[3] = 0.0f;
    }
    if (b < nb) {
        memcpy(out, x[b].qs, 32);
        int32_t sum = 0;
        for (int j = 0; j < PLM_QK; j++) sum += x[b].qs[j];
        const float dd = plm_h2f(x[b].d);
        for (int l = 0; l < 8; l++) {
            dxs[l] = dd;
            xs841[l] = l < 4 ? 0.25f * dd * (float)sum : 0.0f;
            xs840[l] = l < 4 ? -2.0f * dd * (float)sum : 0.0f;
        }
        xsm41[0] = 0.0f, xsm41[1] = dd * (float)sum, xsm41[2] = xsm41[3] = 0.0f;
        xsm40[0] = -8.0f * dd * (float)sum, xsm40[1] = xsm40[2] = xsm40[3] = 0.0f;
    }
}

#if PLM_X86
/* R weight rows (Q4_0 or Q4_1, rb bytes apart) against one paired
 * activation row, two blocks a step: the rows share every activation load,
 * the nibbles are used unsigned (so maddubs needs no sign trick), and the
 * scale and minimum of a row's two blocks come from one 4-lane fp16
 * conversion of [d_a, m_a, d_b, m_b] (Q4_1) or [d_a, 0, d_b, 0] (Q4_0). */
#define PLM_Q4_ROWS(R, is41, NAME, I)                                                                               \
    PLM_FN_##I static void NAME##_##I(int64_t nb, const uint8_t *w, int64_t rb, const uint8_t *xp,      \
                                       const float *dxs, const float *xsm, float *y) {                              \
        const int64_t bb = is41 ? 20 : 18, qoff = is41 ? 4 : 2;                                                     \
        const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);                                     \
        const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);                                           \
        const __m128i keep_d = is41 ? _mm_set1_epi32(-1) : _mm_setr_epi16(-1, 0, -1, 0, 0, 0, 0, 0);              \
        __m256 acc[R];                                                                                              \
        __m128 macc[R];                                                                                             \
        for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps(), macc[r] = _mm_setzero_ps();                      \
        int64_t b = 0;                                                                                              \
        const uint8_t *pf = plm_prefetch_base(w, R * rb); /* the R rows are one slab of R * rb bytes */           \
        int64_t pf_done = 0;                                                                                        \
        for (; b + 1 < nb; b += 2, xp += 64, dxs += 8, xsm += 4) {                                                  \
            plm_prefetch_upto(pf, &pf_done, (b + 2) * R * bb);                                                      \
            const __m256i xl = _mm256_loadu_si256((const __m256i *)xp);                                             \
            const __m256i xh = _mm256_loadu_si256((const __m256i *)(xp + 32));                                      \
            const __m256 dx = _mm256_loadu_ps(dxs);                                                                 \
            const __m128 xs = _mm_loadu_ps(xsm);                                                                    \
            for (int r = 0; r < R; r++) {                                                                           \
                const uint8_t *blk = w + r * rb + b * bb;                                                           \
                const __m256i raw = _mm256_loadu2_m128i((const __m128i *)(blk + bb + qoff),                       \
                                                        (const __m128i *)(blk + qoff));                            \
                const __m256i lo = _mm256_and_si256(raw, m4);                                                       \
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);                                \
                const __m256 p = _mm256_cvtepi32_ps(PLM_IDOT2_##I(lo, xl, hi, xh, ones));                        \
                uint32_t ha, hb;                                                                                    \
                memcpy(&ha, blk, 4);                                                                                \
                memcpy(&hb, blk + bb, 4);                                                                           \
                const __m128i h = _mm_and_si128(_mm_unpacklo_epi32(_mm_cvtsi32_si128((int)ha),                    \
                                                                   _mm_cvtsi32_si128((int)hb)), keep_d);          \
                const __m128 dw = _mm_cvtph_ps(h);                                                                  \
                const __m256 d8 = _mm256_mul_ps(_mm256_permutevar8x32_ps(_mm256_castps128_ps256(dw), spread), dx); \
                acc[r] = _mm256_fmadd_ps(d8, p, acc[r]);                                                            \
                macc[r] = _mm_fmadd_ps(dw, xs, macc[r]);                                                            \
            }                                                                                                       \
        }                                                                                                           \
        for (int r = 0; r < R; r++) {                                                                               \
            float sum = plm_hsum8(acc[r]);                                                                          \
            __m128 m = _mm_add_ps(macc[r], _mm_movehl_ps(macc[r], macc[r]));                                        \
            sum += _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)));                                                \
            if (b < nb) { /* an odd last block, laid out as its 32 values */                                        \
                const uint8_t *blk = w + r * rb + b * bb;                                                           \
                const __m256i q = unpack_nibbles(blk + qoff);                                                       \
                uint16_t dh, mh = 0;                                                                                \
                memcpy(&dh, blk, 2);                                                                                \
                if (is41) memcpy(&mh, blk + 2, 2);                                                                  \
                const float d = _cvtsh_ss(dh);                                                                      \
                sum += d * dxs[0] * plm_hsum8(dot_u8_i8(q, _mm256_loadu_si256((const __m256i *)xp)));              \
                sum += is41 ? _cvtsh_ss(mh) * xsm[1] : d * xsm[0];                                                  \
            }                                                                                                       \
            y[r] = sum;                                                                                             \
        }                                                                                                           \
    }
/* one function per type, so the type's block size and header layout are constants */
#define PLM_Q4_ROWS_ALL(I)         \
    PLM_Q4_ROWS(1, 0, q4_0_rows1, I) \
    PLM_Q4_ROWS(4, 0, q4_0_rows4, I) \
    PLM_Q4_ROWS(1, 1, q4_1_rows1, I) \
    PLM_Q4_ROWS(4, 1, q4_1_rows4, I)
PLM_Q4_ROWS_ALL(avx2)
PLM_Q4_ROWS_ALL(vnni)

void plm_q4_rows_avx2(int is41, int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const uint8_t *xp,
                      const float *dxs, const float *xsm, float *y) {
    const int64_t nb = k / PLM_QK;
    int64_t j = 0;
#define PLM_Q4_RUN(I)                                                                         \
    if (is41) {                                                                                \
        for (; j + 4 <= n_rows; j += 4) q4_1_rows4_##I(nb, w + j * rb, rb, xp, dxs, xsm, y + j); \
        for (; j < n_rows; j++) q4_1_rows1_##I(nb, w + j * rb, rb, xp, dxs, xsm, y + j);        \
    } else {                                                                                   \
        for (; j + 4 <= n_rows; j += 4) q4_0_rows4_##I(nb, w + j * rb, rb, xp, dxs, xsm, y + j); \
        for (; j < n_rows; j++) q4_0_rows1_##I(nb, w + j * rb, rb, xp, dxs, xsm, y + j);        \
    }
    if (plm_use_vnni()) {
        PLM_Q4_RUN(vnni)
    } else {
        PLM_Q4_RUN(avx2)
    }
#undef PLM_Q4_RUN
}
/* The prefill's tile: R weight rows x C activation rows, two blocks a step.
 * A weight row's nibbles are unpacked and its scales spread once for the C
 * activation rows, an activation row's blocks loaded once for the R weight
 * rows; the minimum term rides in the same accumulator (xs8 lanes hold a
 * quarter of it each). y[c * ldy + r]. Even block counts only. */
#define PLM_Q4_TILE(R, C, is41, NAME, I)                                                                             \
    PLM_FN_##I static void NAME##_##I(int64_t nb, const uint8_t *w, int64_t rb,                   \
                                             const plm_acts *a, int64_t i0, float *y, int64_t ldy) {               \
        const int64_t bb = is41 ? 20 : 18, qoff = is41 ? 4 : 2, np = a->n_pairs;                                    \
        const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);                                     \
        const __m256i dsel = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2), msel = _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3); \
        const __m128i keep_d = is41 ? _mm_set1_epi32(-1) : _mm_setr_epi16(-1, 0, -1, 0, 0, 0, 0, 0);              \
        const float *xs8 = is41 ? a->xs841 : a->xs840;                                                              \
        __m256 acc[R][C];                                                                                           \
        for (int r = 0; r < R; r++)                                                                                 \
            for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();                                            \
        for (int64_t b = 0; b < nb; b += 2) {                                                                       \
            const int64_t pi = b / 2;                                                                               \
            for (int r = 0; r < R; r++) {                                                                           \
                const uint8_t *blk = w + r * rb + b * bb;                                                           \
                const __m256i raw = _mm256_loadu2_m128i((const __m128i *)(blk + bb + qoff),                       \
                                                        (const __m128i *)(blk + qoff));                            \
                const __m256i lo = _mm256_and_si256(raw, m4);                                                       \
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);                                \
                uint32_t ha, hb;                                                                                    \
                memcpy(&ha, blk, 4);                                                                                \
                memcpy(&hb, blk + bb, 4);                                                                           \
                const __m256 f = _mm256_castps128_ps256(_mm_cvtph_ps(_mm_and_si128(                                \
                    _mm_unpacklo_epi32(_mm_cvtsi32_si128((int)ha), _mm_cvtsi32_si128((int)hb)), keep_d)));         \
                const __m256 d8 = _mm256_permutevar8x32_ps(f, dsel);                                                \
                const __m256 m8 = is41 ? _mm256_permutevar8x32_ps(f, msel) : d8;                                    \
                for (int c = 0; c < C; c++) {                                                                       \
                    const int64_t i = i0 + c;                                                                       \
                    const uint8_t *xp = a->p4 + i * a->p4_rb + pi * 64;                                             \
                    const __m256 p = _mm256_cvtepi32_ps(PLM_IDOT2_##I(lo, _mm256_loadu_si256((const __m256i *)xp), hi, \
                                                                      _mm256_loadu_si256((const __m256i *)(xp + 32)), ones)); \
                    const __m256 d = _mm256_mul_ps(d8, _mm256_loadu_ps(a->dxs + (i * np + pi) * 8));               \
                    acc[r][c] = _mm256_fmadd_ps(d, p, acc[r][c]);                                                   \
                    acc[r][c] = _mm256_fmadd_ps(m8, _mm256_loadu_ps(xs8 + (i * np + pi) * 8), acc[r][c]);          \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        for (int r = 0; r < R; r++)                                                                                 \
            for (int c = 0; c < C; c++) y[c * ldy + r] = plm_hsum8(acc[r][c]);                                     \
    }
#define PLM_Q4_TILE_ALL(I)                \
    PLM_Q4_TILE(2, 4, 0, q4_0_tile2x4, I) \
    PLM_Q4_TILE(1, 4, 0, q4_0_tile1x4, I) \
    PLM_Q4_TILE(2, 4, 1, q4_1_tile2x4, I) \
    PLM_Q4_TILE(1, 4, 1, q4_1_tile1x4, I)
PLM_Q4_TILE_ALL(avx2)
PLM_Q4_TILE_ALL(vnni)

int plm_q4_tile_avx2(int is41, int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const plm_acts *a,
                     int64_t i0, int64_t n_act, float *y, int64_t ldy) {
    const int64_t nb = k / PLM_QK;
    if (nb % 2 != 0 || n_act != 4) return 0;
    int64_t j = 0;
#define PLM_Q4_RUN(I)                                                                           \
    if (is41) {                                                                                  \
        for (; j + 2 <= n_rows; j += 2) q4_1_tile2x4_##I(nb, w + j * rb, rb, a, i0, y + j, ldy); \
        for (; j < n_rows; j++) q4_1_tile1x4_##I(nb, w + j * rb, rb, a, i0, y + j, ldy);         \
    } else {                                                                                     \
        for (; j + 2 <= n_rows; j += 2) q4_0_tile2x4_##I(nb, w + j * rb, rb, a, i0, y + j, ldy); \
        for (; j < n_rows; j++) q4_0_tile1x4_##I(nb, w + j * rb, rb, a, i0, y + j, ldy);         \
    }
    if (plm_use_vnni()) {
        PLM_Q4_RUN(vnni)
    } else {
        PLM_Q4_RUN(avx2)
    }
#undef PLM_Q4_RUN
    return 1;
}
#endif

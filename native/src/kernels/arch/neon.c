/*
 * neon.c — the arm64 twins of the AVX2 kernels: F32/F16/Q8_0/Q4_0/Q4_1 dot
 * products, Q8_0 activation quantization, the sum of squares of the norms,
 * the element-wise add, attention's axpy and the F16 cache-row conversion,
 * the vector exp and the engine's attention tiles (their steps and order are
 * those of the scalar twins in activations.c and attention.c, so they equal
 * them bit for bit).
 *
 * The quantized dot products sum each block's int8 products exactly (NEON's
 * widening multiplies, or the dot-product extension's sdot where the CPU has
 * it: plm_use_sdot(), from getauxval's HWCAP_ASIMDDP) and then scale and add
 * the blocks in the scalar twin's order, so their results equal the scalar
 * kernels' bit for bit; where HWCAP2_I8MM says so (plm_use_i8mm()), the prefill tile
 * makes its block sums with smmla, 2 x 2 outputs at a time. The F32 sums use four lanes and so differ from the
 * scalar order by rounding only. Activation quantization rounds with vrndaq
 * (ties away from zero, as roundf), so its bytes equal the scalar version's.
 */
#include "kernels/kernels.h"

#include <math.h>

#if PLM_ARM

/* ---- integer sums of one block ------------------------------------------------ */

static inline int32_t sum_i8x16x2(int8x16_t a0, int8x16_t b0, int8x16_t a1, int8x16_t b1) {
    int32x4_t acc = vdupq_n_s32(0);
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a0), vget_low_s8(b0)));
    acc = vpadalq_s16(acc, vmull_high_s8(a0, b0));
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a1), vget_low_s8(b1)));
    acc = vpadalq_s16(acc, vmull_high_s8(a1, b1));
    return vaddvq_s32(acc);
}

PLM_DOTPROD_FN static inline int32_t sum_i8x16x2_sdot(int8x16_t a0, int8x16_t b0, int8x16_t a1, int8x16_t b1) {
    return vaddvq_s32(vdotq_s32(vdotq_s32(vdupq_n_s32(0), a0, b0), a1, b1));
}

/* a Q4 block's 16 bytes of nibbles as values 0..31 in order (low nibbles are values 0..15) */
static inline void nibbles(const uint8_t *qs, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t v = vld1q_u8(qs);
    *lo = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F)));
    *hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
}

/* ---- dot products ------------------------------------------------------------- */

float plm_vec_dot_f32_neon(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    const float *w = (const float *)vw, *x = (const float *)vx;
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, vld1q_f32(w + i + 4), vld1q_f32(x + i + 4));
        a2 = vfmaq_f32(a2, vld1q_f32(w + i + 8), vld1q_f32(x + i + 8));
        a3 = vfmaq_f32(a3, vld1q_f32(w + i + 12), vld1q_f32(x + i + 12));
    }
    for (; i + 4 <= k; i += 4) a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < k; i++) sum += w[i] * x[i];
    return sum;
}

float plm_vec_dot_f16_neon(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    const uint16_t *w = (const uint16_t *)vw;
    const float *x = (const float *)vx;
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(w + i));
        a0 = vfmaq_f32(a0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, vcvt_high_f32_f16(h), vld1q_f32(x + i + 4));
    }
    float sum = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < k; i++) sum += plm_h2f(w[i]) * x[i];
    return sum;
}

#define Q8_BODY(SUM)                                                                                  \
    const plm_block_q8_0 *w = (const plm_block_q8_0 *)vw;                                           \
    const plm_block_q8_0 *x = (const plm_block_q8_0 *)vx;                                           \
    float sum = 0.0f;                                                                                \
    for (int64_t b = 0; b < k / PLM_QK; b++) {                                                       \
        const int32_t sumi = SUM(vld1q_s8(w[b].qs), vld1q_s8(x[b].qs), vld1q_s8(w[b].qs + 16),       \
                                 vld1q_s8(x[b].qs + 16));                                             \
        sum += (float)sumi * (plm_h2f(w[b].d) * plm_h2f(x[b].d));                                     \
    }                                                                                                \
    return sum;

static float vec_dot_q8_0_neon(int64_t k, const void *vw, const void *vx) { Q8_BODY(sum_i8x16x2) }
PLM_DOTPROD_FN static float vec_dot_q8_0_sdot(int64_t k, const void *vw, const void *vx) { Q8_BODY(sum_i8x16x2_sdot) }

float plm_vec_dot_q8_0_neon(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    return plm_use_sdot() ? vec_dot_q8_0_sdot(k, vw, vx) : vec_dot_q8_0_neon(k, vw, vx);
}

/* Q4_0: (q - 8) against the activations; Q4_1: q against them, plus the minimum times the block's sum */
#define Q4_BODY(BLOCK, SUM, IS41)                                                                     \
    const BLOCK *w = (const BLOCK *)vw;                                                              \
    const plm_block_q8_0 *x = (const plm_block_q8_0 *)vx;                                           \
    float sum = 0.0f;                                                                                \
    for (int64_t b = 0; b < k / PLM_QK; b++) {                                                       \
        int8x16_t lo, hi;                                                                            \
        nibbles(w[b].qs, &lo, &hi);                                                                  \
        if (!(IS41)) lo = vsubq_s8(lo, vdupq_n_s8(8)), hi = vsubq_s8(hi, vdupq_n_s8(8));             \
        const int32_t sumi = SUM(lo, vld1q_s8(x[b].qs), hi, vld1q_s8(x[b].qs + 16));                 \
        if (IS41)                                                                                    \
            sum += (float)sumi * (plm_h2f(w[b].d) * plm_h2f(x[b].d)) + plm_h2f(((const plm_block_q4_1 *)(const void *)&w[b])->m) * xsum[b]; \
        else                                                                                         \
            sum += (float)sumi * (plm_h2f(w[b].d) * plm_h2f(x[b].d));                                 \
    }                                                                                                \
    return sum;

static float vec_dot_q4_0_neon(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    Q4_BODY(plm_block_q4_0, sum_i8x16x2, 0)
}
PLM_DOTPROD_FN static float vec_dot_q4_0_sdot(int64_t k, const void *vw, const void *vx, const float *xsum) {
    (void)xsum;
    Q4_BODY(plm_block_q4_0, sum_i8x16x2_sdot, 0)
}
static float vec_dot_q4_1_neon(int64_t k, const void *vw, const void *vx, const float *xsum) {
    Q4_BODY(plm_block_q4_1, sum_i8x16x2, 1)
}
PLM_DOTPROD_FN static float vec_dot_q4_1_sdot(int64_t k, const void *vw, const void *vx, const float *xsum) {
    Q4_BODY(plm_block_q4_1, sum_i8x16x2_sdot, 1)
}

float plm_vec_dot_q4_0_neon(int64_t k, const void *vw, const void *vx, const float *xsum) {
    return plm_use_sdot() ? vec_dot_q4_0_sdot(k, vw, vx, xsum) : vec_dot_q4_0_neon(k, vw, vx, xsum);
}

float plm_vec_dot_q4_1_neon(int64_t k, const void *vw, const void *vx, const float *xsum) {
    return plm_use_sdot() ? vec_dot_q4_1_sdot(k, vw, vx, xsum) : vec_dot_q4_1_neon(k, vw, vx, xsum);
}

/* ---- prefill tiles: 4 activation rows against each weight row --------------------- */

/* Each weight block is loaded (and its nibbles expanded) once for the four
 * activation rows; every row still adds its blocks in the scalar order, so
 * the results equal plm_vec_dot_*_scalar's bit for bit. */
#define TILE_BODY(SUM)                                                                                     \
    const int64_t nb = k / PLM_QK;                                                                        \
    for (int64_t j = 0; j < n_rows; j++) {                                                                \
        const uint8_t *wr = w + j * rb;                                                                   \
        float acc[4] = {0, 0, 0, 0};                                                                      \
        for (int64_t b = 0; b < nb; b++) {                                                                \
            int8x16_t lo, hi;                                                                             \
            float dw, mw = 0;                                                                             \
            if (w_type == PLM_TYPE_Q8_0) {                                                                \
                const plm_block_q8_0 *blk = (const plm_block_q8_0 *)wr + b;                               \
                lo = vld1q_s8(blk->qs), hi = vld1q_s8(blk->qs + 16), dw = plm_h2f(blk->d);                \
            } else if (w_type == PLM_TYPE_Q4_0) {                                                         \
                const plm_block_q4_0 *blk = (const plm_block_q4_0 *)wr + b;                               \
                nibbles(blk->qs, &lo, &hi);                                                               \
                lo = vsubq_s8(lo, vdupq_n_s8(8)), hi = vsubq_s8(hi, vdupq_n_s8(8)), dw = plm_h2f(blk->d); \
            } else {                                                                                      \
                const plm_block_q4_1 *blk = (const plm_block_q4_1 *)wr + b;                               \
                nibbles(blk->qs, &lo, &hi);                                                               \
                dw = plm_h2f(blk->d), mw = plm_h2f(blk->m);                                               \
            }                                                                                             \
            for (int i = 0; i < 4; i++) {                                                                 \
                const plm_block_q8_0 *xb = (const plm_block_q8_0 *)(xq + i * xrb) + b;                    \
                const int32_t sumi = SUM(lo, vld1q_s8(xb->qs), hi, vld1q_s8(xb->qs + 16));                \
                if (w_type == PLM_TYPE_Q4_1)                                                              \
                    acc[i] += (float)sumi * (dw * plm_h2f(xb->d)) + mw * xsum[i * xsum_ld + b];           \
                else                                                                                      \
                    acc[i] += (float)sumi * (dw * plm_h2f(xb->d));                                        \
            }                                                                                             \
        }                                                                                                 \
        for (int i = 0; i < 4; i++) y[i * ldy + j] = acc[i];                                              \
    }

static void quant_tile_neon(int w_type, int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const uint8_t *xq,
                            int64_t xrb, const float *xsum, int64_t xsum_ld, float *y, int64_t ldy) {
    TILE_BODY(sum_i8x16x2)
}
PLM_DOTPROD_FN static void quant_tile_sdot(int w_type, int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows,
                                           const uint8_t *xq, int64_t xrb, const float *xsum, int64_t xsum_ld,
                                           float *y, int64_t ldy) {
    TILE_BODY(sum_i8x16x2_sdot)
}

/* ---- the i8mm tile: smmla, 4 weight rows x 4 activation rows ------------------------
 * smmla multiplies a 2x8 int8 matrix by the transpose of another and adds the 2x2 int32
 * result: with two weight rows' 8 values in one register and two activation rows' in the
 * other, 4 of them make the exact int32 sums of a block for 2 x 2 outputs, [w0.x0, w0.x1,
 * w1.x0, w1.x1], with no horizontal sum. Those sums are the scalar twin's; the lanes then
 * meet their scales in its order, (float)sumi * (d_w * d_x) (+ m_w * xsum for Q4_1) added
 * to the accumulator without contraction, so the tile equals the scalar products bit for bit. */

/* a block of 32 values as 4 registers of two rows' 8 values: [a 0-7, b 0-7], [a 8-15, b 8-15], ... */
static inline void pair_rows(int8x16_t alo, int8x16_t ahi, int8x16_t blo, int8x16_t bhi, int8x16_t out[4]) {
    const int64x2_t al = vreinterpretq_s64_s8(alo), ah = vreinterpretq_s64_s8(ahi);
    const int64x2_t bl = vreinterpretq_s64_s8(blo), bh = vreinterpretq_s64_s8(bhi);
    out[0] = vreinterpretq_s8_s64(vzip1q_s64(al, bl));
    out[1] = vreinterpretq_s8_s64(vzip2q_s64(al, bl));
    out[2] = vreinterpretq_s8_s64(vzip1q_s64(ah, bh));
    out[3] = vreinterpretq_s8_s64(vzip2q_s64(ah, bh));
}

/* weight row r's block b: its 32 values as signed bytes (Q4_0 less its 8), scale and minimum */
static inline void weight_block(int w_type, const uint8_t *wr, int64_t b, int8x16_t *lo, int8x16_t *hi, float *d,
                                float *m) {
    if (w_type == PLM_TYPE_Q8_0) {
        const plm_block_q8_0 *blk = (const plm_block_q8_0 *)wr + b;
        *lo = vld1q_s8(blk->qs), *hi = vld1q_s8(blk->qs + 16), *d = plm_h2f(blk->d), *m = 0.0f;
    } else if (w_type == PLM_TYPE_Q4_0) {
        const plm_block_q4_0 *blk = (const plm_block_q4_0 *)wr + b;
        nibbles(blk->qs, lo, hi);
        *lo = vsubq_s8(*lo, vdupq_n_s8(8)), *hi = vsubq_s8(*hi, vdupq_n_s8(8)), *d = plm_h2f(blk->d), *m = 0.0f;
    } else {
        const plm_block_q4_1 *blk = (const plm_block_q4_1 *)wr + b;
        nibbles(blk->qs, lo, hi);
        *d = plm_h2f(blk->d), *m = plm_h2f(blk->m);
    }
}

PLM_I8MM_FN static inline int32x4_t mmla_block(const int8x16_t wp[4], const int8x16_t xp[4]) {
    int32x4_t s = vmmlaq_s32(vdupq_n_s32(0), wp[0], xp[0]);
    s = vmmlaq_s32(s, wp[1], xp[1]);
    s = vmmlaq_s32(s, wp[2], xp[2]);
    return vmmlaq_s32(s, wp[3], xp[3]);
}

/* weight rows j, j + 1 (and j + 2, j + 3 when R is 4) against activation rows 0..3; acc[2 * pr + pc]
 * holds weight pair pr, activation pair pc, lanes [w0.x0, w0.x1, w1.x0, w1.x1] */
#define I8MM_TILE(R)                                                                                          \
    PLM_I8MM_FN static void i8mm_rows##R(int w_type, int64_t nb, const uint8_t *w, int64_t rb, const uint8_t *xq, \
                                         int64_t xrb, const float *xsum, int64_t xsum_ld, float *y, int64_t ldy) { \
        float32x4_t acc[R]; /* R / 2 weight pairs x 2 activation pairs */                                     \
        for (int t = 0; t < R; t++) acc[t] = vdupq_n_f32(0);                                                  \
        for (int64_t b = 0; b < nb; b++) {                                                                    \
            int8x16_t xp[2][4];                                                                               \
            float dx[4], xs[4] = {0, 0, 0, 0};                                                                \
            for (int pc = 0; pc < 2; pc++) {                                                                  \
                const plm_block_q8_0 *x0 = (const plm_block_q8_0 *)(xq + 2 * pc * xrb) + b;                  \
                const plm_block_q8_0 *x1 = (const plm_block_q8_0 *)(xq + (2 * pc + 1) * xrb) + b;            \
                pair_rows(vld1q_s8(x0->qs), vld1q_s8(x0->qs + 16), vld1q_s8(x1->qs), vld1q_s8(x1->qs + 16),   \
                          xp[pc]);                                                                            \
                dx[2 * pc] = plm_h2f(x0->d), dx[2 * pc + 1] = plm_h2f(x1->d);                                \
                if (w_type == PLM_TYPE_Q4_1)                                                                  \
                    xs[2 * pc] = xsum[2 * pc * xsum_ld + b], xs[2 * pc + 1] = xsum[(2 * pc + 1) * xsum_ld + b]; \
            }                                                                                                 \
            for (int pr = 0; pr < R / 2; pr++) {                                                              \
                int8x16_t alo, ahi, blo, bhi, wp[4];                                                          \
                float da, ma, db, mb;                                                                         \
                weight_block(w_type, w + 2 * pr * rb, b, &alo, &ahi, &da, &ma);                               \
                weight_block(w_type, w + (2 * pr + 1) * rb, b, &blo, &bhi, &db, &mb);                         \
                pair_rows(alo, ahi, blo, bhi, wp);                                                            \
                const float dwl[4] = {da, da, db, db}, mwl[4] = {ma, ma, mb, mb};                             \
                const float32x4_t dw = vld1q_f32(dwl), mw = vld1q_f32(mwl);                                   \
                for (int pc = 0; pc < 2; pc++) {                                                              \
                    const float dxl[4] = {dx[2 * pc], dx[2 * pc + 1], dx[2 * pc], dx[2 * pc + 1]};            \
                    const float xsl[4] = {xs[2 * pc], xs[2 * pc + 1], xs[2 * pc], xs[2 * pc + 1]};            \
                    float32x4_t t = vmulq_f32(vcvtq_f32_s32(mmla_block(wp, xp[pc])), vmulq_f32(dw, vld1q_f32(dxl))); \
                    if (w_type == PLM_TYPE_Q4_1) t = vaddq_f32(t, vmulq_f32(mw, vld1q_f32(xsl)));             \
                    acc[2 * pr + pc] = vaddq_f32(acc[2 * pr + pc], t);                                        \
                }                                                                                             \
            }                                                                                                 \
        }                                                                                                     \
        for (int pr = 0; pr < R / 2; pr++)                                                                    \
            for (int pc = 0; pc < 2; pc++) {                                                                  \
                float o[4];                                                                                   \
                vst1q_f32(o, acc[2 * pr + pc]);                                                               \
                for (int l = 0; l < 4; l++) y[(2 * pc + (l & 1)) * ldy + 2 * pr + (l >> 1)] = o[l];           \
            }                                                                                                 \
    }
I8MM_TILE(4)
I8MM_TILE(2)

static void quant_tile_i8mm(int w_type, int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const uint8_t *xq,
                            int64_t xrb, const float *xsum, int64_t xsum_ld, float *y, int64_t ldy) {
    const int64_t nb = k / PLM_QK;
    int64_t j = 0;
    for (; j + 4 <= n_rows; j += 4) i8mm_rows4(w_type, nb, w + j * rb, rb, xq, xrb, xsum, xsum_ld, y + j, ldy);
    for (; j + 2 <= n_rows; j += 2) i8mm_rows2(w_type, nb, w + j * rb, rb, xq, xrb, xsum, xsum_ld, y + j, ldy);
    if (j < n_rows) /* an odd last row: the sdot tile, which gives the same floats */
        quant_tile_sdot(w_type, k, w + j * rb, rb, n_rows - j, xq, xrb, xsum, xsum_ld, y + j, ldy);
}

void plm_quant_tile_neon(int w_type, int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const uint8_t *xq,
                         int64_t xrb, const float *xsum, int64_t xsum_ld, float *y, int64_t ldy) {
    (plm_use_i8mm() ? quant_tile_i8mm : plm_use_sdot() ? quant_tile_sdot : quant_tile_neon)(
        w_type, k, w, rb, n_rows, xq, xrb, xsum, xsum_ld, y, ldy);
}

/* ---- activations --------------------------------------------------------------- */

void plm_quantize_row_q8_0_neon(const float *x, void *vy, int64_t k) {
    plm_block_q8_0 *y = (plm_block_q8_0 *)vy;
    for (int64_t b = 0; b < k / PLM_QK; b++, x += PLM_QK) {
        float32x4_t v[8];
        float32x4_t amax = vdupq_n_f32(0);
        for (int i = 0; i < 8; i++) {
            v[i] = vld1q_f32(x + 4 * i);
            amax = vmaxq_f32(amax, vabsq_f32(v[i]));
        }
        const float d = vmaxvq_f32(amax) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = plm_f2h(d);
        int16x8_t h[4];
        for (int i = 0; i < 4; i++) {
            const int32x4_t q0 = vcvtq_s32_f32(vrndaq_f32(vmulq_n_f32(v[2 * i], id)));
            const int32x4_t q1 = vcvtq_s32_f32(vrndaq_f32(vmulq_n_f32(v[2 * i + 1], id)));
            h[i] = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
        }
        vst1q_s8(y[b].qs, vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
        vst1q_s8(y[b].qs + 16, vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3])));
    }
}

float plm_sum_squares_neon(const float *x, int64_t n) {
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
        a0 = vfmaq_f32(a0, v0, v0);
        a1 = vfmaq_f32(a1, v1, v1);
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) s += x[i] * x[i];
    return s;
}

void plm_add_neon(const float *a, const float *b, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i)));
    for (; i < n; i++) y[i] = a[i] + b[i];
}

void plm_axpy_neon(float a, const float *x, float *y, int64_t n) {
    const float32x4_t va = vdupq_n_f32(a);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), va, vld1q_f32(x + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

void plm_f16_row_neon(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))));
    for (; i < n; i++) y[i] = plm_h2f(x[i]);
}

/* ---- the vector exp and the attention tiles ------------------------------------------- */

int64_t plm_exp_neon(const float *x, float *y, int64_t n) {
    const float32x4_t magic = vdupq_n_f32(PLM_EXP_MAGIC), mhi = vdupq_n_f32(-PLM_EXP_LN2_HI);
    const float32x4_t mlo = vdupq_n_f32(-PLM_EXP_LN2_LO), c5 = vdupq_n_f32(PLM_EXP_C5), c4 = vdupq_n_f32(PLM_EXP_C4);
    const float32x4_t c3 = vdupq_n_f32(PLM_EXP_C3), c2 = vdupq_n_f32(PLM_EXP_C2), one = vdupq_n_f32(1.0f);
    const float32x4_t lo = vdupq_n_f32(PLM_EXP_LO), hi = vdupq_n_f32(PLM_EXP_HI), inf = vdupq_n_f32(INFINITY);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t vx = vld1q_f32(x + i);
        const float32x4_t vn = vfmaq_n_f32(magic, vx, PLM_EXP_LOG2E);
        const float32x4_t s = vreinterpretq_f32_u32(vshlq_n_u32(vreinterpretq_u32_f32(vn), 23));
        const float32x4_t nn = vsubq_f32(vn, magic);
        float32x4_t t = vfmaq_f32(vx, nn, mhi);
        t = vfmaq_f32(t, nn, mlo);
        float32x4_t p = vfmaq_n_f32(c5, t, PLM_EXP_C6);
        p = vfmaq_f32(c4, p, t);
        p = vfmaq_f32(c3, p, t);
        p = vfmaq_f32(c2, p, t);
        p = vfmaq_f32(one, p, t);
        float32x4_t f = vfmaq_f32(s, vmulq_f32(t, s), p);
        f = vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(f), vcltq_f32(vx, lo)));
        f = vbslq_f32(vcgtq_f32(vx, hi), inf, f);
        vst1q_f32(y + i, f);
    }
    return i;
}

/* scores of V query vectors (1, 2) x K keys (8, 4), each in two registers (lanes d mod 8 = 0..3,
 * 4..7) joined as att_score1 (attention.c) joins them; keys past nk repeat key 0 and are not stored */
static inline void att_scores_tile_neon(const int V, const int K, int64_t hd, const float *const *q,
                                        const float *const *k, int64_t nk, float *s, int64_t ld) {
    const float *kk[8];
    for (int a = 0; a < K; a++) kk[a] = k[a < nk ? a : 0];
    float32x4_t lo[8], hi[8];
    for (int i = 0; i < 8; i++) lo[i] = hi[i] = vdupq_n_f32(0.0f);
    const int64_t h8 = hd & ~(int64_t)7;
    for (int64_t d = 0; d < h8; d += 8) {
        float32x4_t ql[2], qh[2];
        for (int v = 0; v < V; v++) ql[v] = vld1q_f32(q[v] + d), qh[v] = vld1q_f32(q[v] + d + 4);
        for (int a = 0; a < K; a++) {
            const float32x4_t kl = vld1q_f32(kk[a] + d), kh = vld1q_f32(kk[a] + d + 4);
            for (int v = 0; v < V; v++) {
                lo[a * V + v] = vfmaq_f32(lo[a * V + v], kl, ql[v]);
                hi[a * V + v] = vfmaq_f32(hi[a * V + v], kh, qh[v]);
            }
        }
    }
    for (int a = 0; a < K && a < nk; a++)
        for (int v = 0; v < V; v++) {
            const float32x4_t p = vpaddq_f32(lo[a * V + v], hi[a * V + v]); /* c0+c1, c2+c3, c4+c5, c6+c7 */
            const float32x4_t p2 = vpaddq_f32(p, p);                         /* (c0+c1)+(c2+c3), (c4+c5)+(c6+c7) */
            float sum = vgetq_lane_f32(p2, 0) + vgetq_lane_f32(p2, 1);
            for (int64_t d = h8; d < hd; d++) sum = fmaf(kk[a][d], q[v][d], sum);
            s[a * ld + v] = sum;
        }
}

void plm_att_scores_neon(int64_t hd, const float *const *q, int64_t nv, const float *const *k, int64_t nk, float *s,
                         int64_t ld) {
    int64_t v = 0;
    for (; v + 2 <= nv; v += 2)
        for (int64_t j = 0; j < nk; j += 4) att_scores_tile_neon(2, 4, hd, q + v, k + j, nk - j, s + j * ld + v, ld);
    for (; v < nv; v++)
        for (int64_t j = 0; j < nk; j += 8) att_scores_tile_neon(1, 8, hd, q + v, k + j, nk - j, s + j * ld + v, ld);
}

/* outputs of V lanes (1, 2) over D registers of 4 values (1, 4) at d */
static inline void att_values_tile_neon(const int V, const int D, int64_t d, const float *p, int64_t ld,
                                        const float *const *vr, int64_t nk, float *const *o) {
    float32x4_t acc[2][4];
    for (int v = 0; v < V; v++)
        for (int e = 0; e < D; e++) acc[v][e] = vld1q_f32(o[v] + d + 4 * e);
    for (int64_t j = 0; j < nk; j++) {
        float32x4_t x[4];
        for (int e = 0; e < D; e++) x[e] = vld1q_f32(vr[j] + d + 4 * e);
        for (int v = 0; v < V; v++)
            for (int e = 0; e < D; e++) acc[v][e] = vfmaq_n_f32(acc[v][e], x[e], p[j * ld + v]);
    }
    for (int v = 0; v < V; v++)
        for (int e = 0; e < D; e++) vst1q_f32(o[v] + d + 4 * e, acc[v][e]);
}

void plm_att_values_neon(int64_t hd, const float *p, int64_t ld, int64_t nv, const float *const *vr, int64_t nk,
                         float *const *o) {
    int64_t v = 0;
    for (; v < nv; v += 2) {
        const int V = nv - v >= 2 ? 2 : 1;
        int64_t d = 0;
        for (; d + 16 <= hd; d += 16)
            V == 2 ? att_values_tile_neon(2, 4, d, p + v, ld, vr, nk, o + v)
                   : att_values_tile_neon(1, 4, d, p + v, ld, vr, nk, o + v);
        for (; d + 4 <= hd; d += 4)
            V == 2 ? att_values_tile_neon(2, 1, d, p + v, ld, vr, nk, o + v)
                   : att_values_tile_neon(1, 1, d, p + v, ld, vr, nk, o + v);
        for (; d < hd; d++)
            for (int u = 0; u < V; u++) {
                float acc = o[v + u][d];
                for (int64_t j = 0; j < nk; j++) acc = fmaf(p[j * ld + v + u], vr[j][d], acc);
                o[v + u][d] = acc;
            }
    }
}

#endif /* PLM_ARM */

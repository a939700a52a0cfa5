/*
 * gemm.c — the prefill's product: many activation rows (Q8_0 blocks, quantized
 * once per batch by plm_acts_fill) against Q8_0, Q4_0 or Q4_1 weight rows, as
 * an int8 GEMM.
 *
 * The weight rows are taken 16 at a time and repacked, as they are read, into
 * a panel that the register tile reads with whole-vector loads: per block, 8
 * groups of 4 consecutive values, each group holding those 4 values of all 16
 * rows side by side (64 bytes), the values as unsigned bytes (Q8_0's q + 128;
 * the Q4 nibbles as they are), and the blocks' scales (and Q4_1's minimums) as
 * 16 floats. One vpdpbusd then multiplies 4 values of 16 weight rows by the
 * same 4 activation values, broadcast, and adds them into 16 int32 lanes: one
 * lane per weight row, so no horizontal sum is ever needed. The offsets the
 * unsigned bytes carry (128 for Q8_0, Q4_0's 8) come off as a start value of
 * -offset * sum(q_x) per activation block, which plm_acts_fill counted. Each
 * block's exact int32 sum then meets its scales as in the scalar row kernels
 * (plm_vec_dot_*_scalar):
 *
 *     acc += (float)sumi * (d_w * d_x)          (+ m_w * (d_x * sum(q_x)) inside the sum, for Q4_1)
 *
 * products and sums rounded apart (no fma), in block order, one lane per
 * output, so the AVX512-VNNI tile (16 rows x 8 activation rows), the AVX2
 * tile (8 rows x 4, maddubs where vpdpbusd is missing), the scalar twin and
 * the scalar row kernels give the same floats bit for bit; and so do arm64's
 * scalar and NEON products, which a prefill there runs: a prompt's logits are
 * the same on both CPUs with the scalar kernels.
 *
 * Cache blocking: a panel holds at most PLM_GEMM_KB blocks of its 16 rows
 * (about 20 KB with the scales, in L1), and every activation row of the batch
 * passes over it before the next chunk of blocks is packed; the outputs
 * carry the accumulators from one chunk to the next, so chunking does not
 * change the order of the sums. Packing reads each weight byte once per
 * product: a small cost next to the m activation rows that use it (the
 * engine sends a product here from PLM_GEMM_MIN_ROWS rows on). The weights
 * stay mapped in place; nothing is kept between calls.
 *
 * Where the OS grants AMX (plm_use_amx: CPUID, XCR0 and the kernel's
 * ARCH_REQ_XCOMP_PERM), the same panel feeds AMX's tiles instead of the VNNI
 * tile: a panel block is exactly a B tile (8 rows of 4 values x 16 weight
 * rows), 16 activation rows' 32 quants of the block an A tile (loaded with
 * their row stride), and one tdpbsud (signed activations x unsigned panel
 * bytes) gives the 16 x 16 exact int32 block sums the VNNI tile gets from 8
 * vpdpbusd per activation row. They meet the scales in the same unfused
 * products and sums, in block order, so AMX gives the VNNI tile's floats bit
 * for bit. Each thread loads its tile config once per product (the batch's
 * last group of fewer than 16 rows on tiles of its own) and releases it after.
 */
#include "kernels/kernels.h"

#include <math.h>

enum { K_Q8 = 0, K_Q40 = 1, K_Q41 = 2 };

/* weight rows of a panel, and the most blocks one panel chunk holds */
#define PLM_GEMM_PR 16
#define PLM_GEMM_KB 32

typedef struct {
    uint8_t q[PLM_GEMM_KB * 8 * PLM_GEMM_PR * 4]; /* [block][group][row][4] */
    float d[PLM_GEMM_KB * PLM_GEMM_PR];           /* [block][row] */
    float m[PLM_GEMM_KB * PLM_GEMM_PR];           /* Q4_1's minimums */
} __attribute__((aligned(64))) plm_panel;

static int kind_of(int w_type) { return w_type == PLM_TYPE_Q8_0 ? K_Q8 : w_type == PLM_TYPE_Q4_0 ? K_Q40 : K_Q41; }
static int64_t block_bytes(int kind) { return kind == K_Q8 ? 34 : kind == K_Q40 ? 18 : 20; }
static int64_t qs_offset(int kind) { return kind == K_Q41 ? 4 : 2; }
/* what the unsigned panel bytes add to sum(q_w q_x), per unit of sum(q_x) */
static int32_t offset_of(int kind, int q8_signed) { return kind == K_Q8 ? (q8_signed ? 0 : 128) : kind == K_Q40 ? 8 : 0; }

/* Rows [0, nr) (rb bytes apart) of blocks [b0, b0 + nbc) into the panel, 4 bytes at a
 * time; rows nr..15 are zero (scale 0). q8_signed keeps Q8_0's bytes signed (the AVX2
 * tile's sign trick needs them so). */
static void pack_portable(int kind, int q8_signed, const uint8_t *w, int64_t rb, int64_t nr, int64_t b0,
                          int64_t nbc, plm_panel *p) {
    const int64_t bb = block_bytes(kind), qoff = qs_offset(kind);
    const uint32_t flip = kind == K_Q8 && !q8_signed ? 0x80808080u : 0u;
    for (int64_t r = 0; r < PLM_GEMM_PR; r++)
        for (int64_t b = 0; b < nbc; b++) {
            uint8_t *dst = p->q + b * 512 + r * 4;
            if (r >= nr) {
                for (int g = 0; g < 8; g++) memset(dst + g * 64, 0, 4);
                p->d[b * PLM_GEMM_PR + r] = p->m[b * PLM_GEMM_PR + r] = 0.0f;
                continue;
            }
            const uint8_t *blk = w + r * rb + (b0 + b) * bb;
            uint16_t h;
            memcpy(&h, blk, 2);
            p->d[b * PLM_GEMM_PR + r] = plm_h2f(h);
            if (kind == K_Q41) memcpy(&h, blk + 2, 2);
            p->m[b * PLM_GEMM_PR + r] = kind == K_Q41 ? plm_h2f(h) : 0.0f;
            for (int g = 0; g < (kind == K_Q8 ? 8 : 4); g++) {
                uint32_t v;
                memcpy(&v, blk + qoff + 4 * g, 4);
                if (kind == K_Q8) {
                    v ^= flip;
                    memcpy(dst + g * 64, &v, 4);
                } else { /* bytes 4g..4g+3: values 4g.. in the low nibbles, 16 + 4g.. in the high ones */
                    const uint32_t lo = v & 0x0F0F0F0Fu, hi = (v >> 4) & 0x0F0F0F0Fu;
                    memcpy(dst + g * 64, &lo, 4);
                    memcpy(dst + (g + 4) * 64, &hi, 4);
                }
            }
        }
}

/* The scalar twin of the tiles: nc activation rows from i0 against panel rows [0, nr),
 * blocks [b0, b0 + nbc); y[c * ldy + r], adding to what y holds when acc_in. */
static void tile_scalar(int kind, int q8_signed, const plm_panel *p, int64_t nbc, int64_t nr, const plm_acts *a,
                        int64_t i0, int64_t nc, int64_t b0, float *y, int64_t ldy, int acc_in) {
    const int64_t nb = a->n_blocks;
    const int32_t off = offset_of(kind, q8_signed);
    for (int64_t c = 0; c < nc; c++) {
        const int64_t i = i0 + c;
        for (int64_t r = 0; r < nr; r++) {
            float acc = acc_in ? y[c * ldy + r] : 0.0f;
            for (int64_t b = 0; b < nbc; b++) {
                const int64_t xb = i * nb + b0 + b;
                const int8_t *x = (const int8_t *)(a->q8 + i * a->q8_rb + (b0 + b) * 34 + 2);
                int32_t s = -off * a->xisum[xb];
                for (int v = 0; v < PLM_QK; v++) {
                    const uint8_t q = p->q[b * 512 + (v >> 2) * 64 + r * 4 + (v & 3)];
                    s += (kind == K_Q8 && q8_signed ? (int32_t)(int8_t)q : (int32_t)q) * (int32_t)x[v];
                }
                const float t = (float)s * (p->d[b * PLM_GEMM_PR + r] * a->xd[xb]);
                acc += kind == K_Q41 ? t + p->m[b * PLM_GEMM_PR + r] * a->xsum[xb] : t;
            }
            y[c * ldy + r] = acc;
        }
    }
}

#if PLM_X86
#define PLM_INLINE inline __attribute__((always_inline))

/* The level-2 packer: one gather of 4 bytes from each of the 16 rows per group. */
PLM_VNNI_FN static void pack_vnni(int kind, const uint8_t *w, int64_t rb, int64_t nr, int64_t b0, int64_t nbc,
                                  plm_panel *p, const uint8_t *next, int64_t next_rows) {
    const int64_t bb = block_bytes(kind), qoff = qs_offset(kind);
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)rb));
    const __mmask16 mk = nr >= PLM_GEMM_PR ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    const __m512i flip = _mm512_set1_epi32((int)0x80808080u), m4 = _mm512_set1_epi8(0x0F), z = _mm512_setzero_si512();
    for (int64_t b = 0; b < nbc; b++) {
        const uint8_t *base = w + (b0 + b) * bb;
        __m512i *dst = (__m512i *)(p->q + b * 512);
        /* the rows of the next panel (or chunk), streamed from memory while this one is packed:
         * 16 rows side by side are more streams than the hardware prefetcher follows */
        if (next && (b & 1) == 0)
            for (int64_t r = 0; r < next_rows; r++) _mm_prefetch((const char *)next + r * rb + b * bb, _MM_HINT_T0);
        const __m512i hdr = _mm512_mask_i32gather_epi32(z, mk, idx, base, 1);
        _mm512_store_ps(p->d + b * PLM_GEMM_PR, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(hdr)));
        _mm512_store_ps(p->m + b * PLM_GEMM_PR, kind == K_Q41 ? _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(hdr, 16)))
                                                              : _mm512_setzero_ps());
        if (kind == K_Q8) {
            for (int g = 0; g < 8; g++) {
                const __m512i v = _mm512_mask_i32gather_epi32(z, mk, idx, base + qoff + 4 * g, 1);
                _mm512_store_si512(dst + g, _mm512_mask_xor_epi32(v, mk, v, flip));
            }
        } else {
            for (int g = 0; g < 4; g++) {
                const __m512i v = _mm512_mask_i32gather_epi32(z, mk, idx, base + qoff + 4 * g, 1);
                _mm512_store_si512(dst + g, _mm512_and_si512(v, m4));
                _mm512_store_si512(dst + g + 4, _mm512_and_si512(_mm512_srli_epi32(v, 4), m4));
            }
        }
    }
}

/* A block's 16 exact int32 sums s (one lane per weight row) met with their scales d (and Q4_1's
 * minimums mm) and the activation row's *xd (and, Q4_1 only, *xs), products and sums rounded apart:
 * the term the VNNI and AMX tiles add to their accumulators, in block order. */
PLM_VNNI_FN static PLM_INLINE __m512 block_term(const int kind, __m512i s, __m512 d, __m512 mm, const float *xd,
                                                const float *xs) {
    __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(d, _mm512_set1_ps(*xd)));
    if (kind == K_Q41) t = _mm512_add_ps(t, _mm512_mul_ps(mm, _mm512_set1_ps(*xs)));
    return t;
}

/* 16 panel rows x C activation rows (xq, xd, xs, xi at activation row 0, block b0 of the
 * chunk; nb the activation rows' stride in blocks). */
PLM_VNNI_FN static PLM_INLINE void tile_vnni(const int kind, const int C, const plm_panel *p, int64_t nbc,
                                             __mmask16 mask, const uint8_t *xq, int64_t xrb, const float *xd,
                                             const float *xs, const int32_t *xi, int64_t nb, float *y, int64_t ldy,
                                             int acc_in) {
    __m512 acc[8];
    for (int c = 0; c < C; c++) acc[c] = acc_in ? _mm512_maskz_loadu_ps(mask, y + c * ldy) : _mm512_setzero_ps();
    const int32_t off = offset_of(kind, 0);
    for (int64_t b = 0; b < nbc; b++) {
        const __m512i *wq = (const __m512i *)(p->q + b * 512);
        __m512i w[8];
        for (int g = 0; g < 8; g++) w[g] = _mm512_load_si512(wq + g);
        const __m512 d = _mm512_load_ps(p->d + b * PLM_GEMM_PR);
        const __m512 mm = kind == K_Q41 ? _mm512_load_ps(p->m + b * PLM_GEMM_PR) : _mm512_setzero_ps();
        for (int c = 0; c < C; c++) {
            const uint8_t *x = xq + c * xrb + b * 34 + 2;
            __m512i s = kind == K_Q41 ? _mm512_setzero_si512() : _mm512_set1_epi32(-off * xi[c * nb + b]);
            for (int g = 0; g < 8; g++) {
                int32_t v;
                memcpy(&v, x + 4 * g, 4);
                s = _mm512_dpbusd_epi32(s, w[g], _mm512_set1_epi32(v));
            }
            acc[c] = _mm512_add_ps(acc[c], block_term(kind, s, d, mm, xd + c * nb + b, xs + c * nb + b));
        }
    }
    for (int c = 0; c < C; c++) _mm512_mask_storeu_ps(y + c * ldy, mask, acc[c]);
}

#define PLM_TILE_ARGS const plm_panel *p, int64_t nbc, __mmask16 mask, const uint8_t *xq, int64_t xrb, \
    const float *xd, const float *xs, const int32_t *xi, int64_t nb, float *y, int64_t ldy, int acc_in
#define PLM_TILE_PASS p, nbc, mask, xq, xrb, xd, xs, xi, nb, y, ldy, acc_in
#define PLM_TILE_VNNI(KIND, NAME)                                          \
    PLM_VNNI_FN static void NAME(int64_t C, PLM_TILE_ARGS) {               \
        switch (C) {                                                       \
        case 8: tile_vnni(KIND, 8, PLM_TILE_PASS); break;                  \
        case 7: tile_vnni(KIND, 7, PLM_TILE_PASS); break;                  \
        case 6: tile_vnni(KIND, 6, PLM_TILE_PASS); break;                  \
        case 5: tile_vnni(KIND, 5, PLM_TILE_PASS); break;                  \
        case 4: tile_vnni(KIND, 4, PLM_TILE_PASS); break;                  \
        case 3: tile_vnni(KIND, 3, PLM_TILE_PASS); break;                  \
        case 2: tile_vnni(KIND, 2, PLM_TILE_PASS); break;                  \
        default: tile_vnni(KIND, 1, PLM_TILE_PASS); break;                 \
        }                                                                  \
    }
PLM_TILE_VNNI(K_Q8, tile_q8_vnni)
PLM_TILE_VNNI(K_Q40, tile_q40_vnni)
PLM_TILE_VNNI(K_Q41, tile_q41_vnni)

/* 8 panel rows (half h of the 16) x C activation rows with AVX2 alone: Q4 nibbles
 * through maddubs, 8 groups summed in int16 (at most 8 * 2 * 15 * 127 = 30480) before
 * one madd; Q8_0's signed bytes through the sign trick (|x| times sign(x) * w). */
PLM_AVX2_FN static PLM_INLINE void tile_avx2(const int kind, const int C, const plm_panel *p, int64_t nbc, int h,
                                             __m256i mask, const uint8_t *xq, int64_t xrb, const float *xd,
                                             const float *xs, const int32_t *xi, int64_t nb, float *y, int64_t ldy,
                                             int acc_in) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
    for (int c = 0; c < C; c++) acc[c] = acc_in ? _mm256_maskload_ps(y + c * ldy, mask) : _mm256_setzero_ps();
    for (int64_t b = 0; b < nbc; b++) {
        const uint8_t *wq = p->q + b * 512 + h * 32;
        __m256i w[8];
        for (int g = 0; g < 8; g++) w[g] = _mm256_load_si256((const __m256i *)(wq + g * 64));
        const __m256 d = _mm256_load_ps(p->d + b * PLM_GEMM_PR + h * 8);
        const __m256 mm = kind == K_Q41 ? _mm256_load_ps(p->m + b * PLM_GEMM_PR + h * 8) : _mm256_setzero_ps();
        for (int c = 0; c < C; c++) {
            const uint8_t *x = xq + c * xrb + b * 34 + 2;
            __m256i s;
            if (kind == K_Q8) {
                s = _mm256_setzero_si256();
                for (int g = 0; g < 8; g++) {
                    int32_t v;
                    memcpy(&v, x + 4 * g, 4);
                    const __m256i xb = _mm256_set1_epi32(v);
                    const __m256i p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(xb), _mm256_sign_epi8(w[g], xb));
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(p16, ones));
                }
            } else {
                __m256i s16 = _mm256_setzero_si256();
                for (int g = 0; g < 8; g++) {
                    int32_t v;
                    memcpy(&v, x + 4 * g, 4);
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(w[g], _mm256_set1_epi32(v)));
                }
                s = _mm256_madd_epi16(s16, ones);
                if (kind == K_Q40) s = _mm256_add_epi32(s, _mm256_set1_epi32(-8 * xi[c * nb + b]));
            }
            __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(d, _mm256_set1_ps(xd[c * nb + b])));
            if (kind == K_Q41) t = _mm256_add_ps(t, _mm256_mul_ps(mm, _mm256_set1_ps(xs[c * nb + b])));
            acc[c] = _mm256_add_ps(acc[c], t);
        }
    }
    for (int c = 0; c < C; c++) _mm256_maskstore_ps(y + c * ldy, mask, acc[c]);
}

#define PLM_TILE2_ARGS const plm_panel *p, int64_t nbc, int h, __m256i mask, const uint8_t *xq, int64_t xrb, \
    const float *xd, const float *xs, const int32_t *xi, int64_t nb, float *y, int64_t ldy, int acc_in
#define PLM_TILE2_PASS p, nbc, h, mask, xq, xrb, xd, xs, xi, nb, y, ldy, acc_in
#define PLM_TILE_AVX2(KIND, NAME)                                          \
    PLM_AVX2_FN static void NAME(int64_t C, PLM_TILE2_ARGS) {              \
        switch (C) {                                                       \
        case 4: tile_avx2(KIND, 4, PLM_TILE2_PASS); break;                 \
        case 3: tile_avx2(KIND, 3, PLM_TILE2_PASS); break;                 \
        case 2: tile_avx2(KIND, 2, PLM_TILE2_PASS); break;                 \
        default: tile_avx2(KIND, 1, PLM_TILE2_PASS); break;                \
        }                                                                  \
    }
PLM_TILE_AVX2(K_Q8, tile_q8_avx2)
PLM_TILE_AVX2(K_Q40, tile_q40_avx2)
PLM_TILE_AVX2(K_Q41, tile_q41_avx2)

#if defined(__linux__) && (defined(__clang__) || __GNUC__ >= 11)
#define PLM_HAVE_AMX 1
#define PLM_AMX_FN __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")))

/* palette 1's tile config: tmm0 the int32 block sums (16 activation rows x 16 weight rows), tmm1 the
 * activations' quants of one block (16 rows x 32 bytes), tmm2 the panel's block (8 groups x 64 bytes);
 * tmm3-5 the same for the batch's last group of fewer than 16 activation rows, if it has one */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed, aligned(64))) plm_tilecfg;

/* Loads this thread's tile config for a product of m activation rows (once per plm_gemm_rows call;
 * amx_end releases the tiles, so a context switch does not carry them). */
PLM_AMX_FN static void amx_begin(int64_t m) {
    plm_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int set = 0; set < 2; set++) {
        const int rows = set == 0 ? 16 : (int)(m % 16), t = 3 * set;
        if (rows == 0) continue;
        cfg.rows[t] = (uint8_t)rows;
        cfg.colsb[t] = PLM_GEMM_PR * 4;
        cfg.rows[t + 1] = (uint8_t)rows;
        cfg.colsb[t + 1] = 32;
        cfg.rows[t + 2] = 8;
        cfg.colsb[t + 2] = PLM_GEMM_PR * 4;
    }
    _tile_loadconfig(&cfg);
}

PLM_AMX_FN static void amx_end(void) { _tile_release(); }

/* 16 panel rows x C activation rows through the tiles (C 16, or the last group's count on tmm3-5);
 * the sums, scales and their order are tile_vnni's. */
PLM_AMX_FN static void tile_amx(const int kind, const int C, const plm_panel *p, int64_t nbc, __mmask16 mask,
                                const uint8_t *xq, int64_t xrb, const float *xd, const float *xs, const int32_t *xi,
                                int64_t nb, float *y, int64_t ldy, int acc_in) {
    int32_t sums[16 * PLM_GEMM_PR] __attribute__((aligned(64)));
    float acc[16 * PLM_GEMM_PR] __attribute__((aligned(64)));
    for (int c = 0; c < C; c++)
        _mm512_store_ps(acc + c * PLM_GEMM_PR, acc_in ? _mm512_maskz_loadu_ps(mask, y + c * ldy) : _mm512_setzero_ps());
    const int32_t off = offset_of(kind, 0);
    for (int64_t b = 0; b < nbc; b++) {
        if (C == 16) {
            _tile_zero(0);
            _tile_loadd(1, xq + b * 34 + 2, xrb);
            _tile_loadd(2, p->q + b * 512, PLM_GEMM_PR * 4);
            _tile_dpbsud(0, 1, 2);
            _tile_stored(0, sums, PLM_GEMM_PR * 4);
        } else {
            _tile_zero(3);
            _tile_loadd(4, xq + b * 34 + 2, xrb);
            _tile_loadd(5, p->q + b * 512, PLM_GEMM_PR * 4);
            _tile_dpbsud(3, 4, 5);
            _tile_stored(3, sums, PLM_GEMM_PR * 4);
        }
        const __m512 d = _mm512_load_ps(p->d + b * PLM_GEMM_PR);
        const __m512 mm = kind == K_Q41 ? _mm512_load_ps(p->m + b * PLM_GEMM_PR) : _mm512_setzero_ps();
        for (int c = 0; c < C; c++) {
            __m512i s = _mm512_load_si512((const __m512i *)(sums + c * PLM_GEMM_PR));
            if (kind != K_Q41) s = _mm512_add_epi32(s, _mm512_set1_epi32(-off * xi[c * nb + b]));
            const __m512 t = block_term(kind, s, d, mm, xd + c * nb + b, xs + c * nb + b);
            _mm512_store_ps(acc + c * PLM_GEMM_PR, _mm512_add_ps(_mm512_load_ps(acc + c * PLM_GEMM_PR), t));
        }
    }
    for (int c = 0; c < C; c++) _mm512_mask_storeu_ps(y + c * ldy, mask, _mm512_load_ps(acc + c * PLM_GEMM_PR));
}

/* The activation rows of one panel chunk through the tiles, 16 at a time (amx_begin configured them). */
PLM_AMX_FN static void rows_amx(int kind, const plm_panel *p, int64_t nbc, __mmask16 mask, const plm_acts *a,
                                int64_t b0, float *y, int64_t ldy, int acc_in) {
    const int64_t nb = a->n_blocks, m = a->m;
    for (int64_t i = 0; i < m; i += 16) {
        const int nc = m - i < 16 ? (int)(m - i) : 16;
        const uint8_t *xq = a->q8 + i * a->q8_rb + b0 * 34;
        const float *xd = a->xd + i * nb + b0, *xs = a->xsum + i * nb + b0;
        const int32_t *xi = a->xisum + i * nb + b0;
        float *yt = y + i * ldy;
        tile_amx(kind, nc, p, nbc, mask, xq, a->q8_rb, xd, xs, xi, nb, yt, ldy, acc_in);
    }
}
#endif

/* One panel chunk (rows [0, nr) of w, blocks [b0, b0 + nbc)) against every activation row: the VNNI
 * tile's 8 at a time, or AMX's tiles where amx says so. */
PLM_VNNI_FN static void chunk_vnni(int kind, const uint8_t *w, int64_t rb, int64_t nr, int64_t b0, int64_t nbc,
                                   const plm_acts *a, float *y, int64_t ldy, int acc_in, plm_panel *p,
                                   const uint8_t *next_panel, int64_t next_rows, int amx) {
    const int64_t nb = a->n_blocks, m = a->m;
    /* what comes next: this panel's next chunk, else the next panel's first */
    const uint8_t *next = b0 + nbc < nb ? w + (b0 + nbc) * block_bytes(kind) : next_panel;
    pack_vnni(kind, w, rb, nr, b0, nbc, p, next, next == next_panel ? next_rows : nr);
    const __mmask16 mask = nr >= PLM_GEMM_PR ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
#ifdef PLM_HAVE_AMX
    if (amx) {
        rows_amx(kind, p, nbc, mask, a, b0, y, ldy, acc_in);
        return;
    }
#else
    (void)amx;
#endif
    for (int64_t i = 0; i < m; i += 8) {
        const int64_t nc = m - i < 8 ? m - i : 8;
        const uint8_t *xq = a->q8 + i * a->q8_rb + b0 * 34;
        const float *xd = a->xd + i * nb + b0, *xs = a->xsum + i * nb + b0;
        const int32_t *xi = a->xisum + i * nb + b0;
        float *yt = y + i * ldy;
        if (kind == K_Q8) tile_q8_vnni(nc, p, nbc, mask, xq, a->q8_rb, xd, xs, xi, nb, yt, ldy, acc_in);
        else if (kind == K_Q40) tile_q40_vnni(nc, p, nbc, mask, xq, a->q8_rb, xd, xs, xi, nb, yt, ldy, acc_in);
        else tile_q41_vnni(nc, p, nbc, mask, xq, a->q8_rb, xd, xs, xi, nb, yt, ldy, acc_in);
    }
}

PLM_AVX2_FN static void chunk_avx2(int kind, const uint8_t *w, int64_t rb, int64_t nr, int64_t b0, int64_t nbc,
                                   const plm_acts *a, float *y, int64_t ldy, int acc_in, plm_panel *p) {
    const int64_t nb = a->n_blocks, m = a->m;
    pack_portable(kind, 1, w, rb, nr, b0, nbc, p);
    for (int h = 0; h * 8 < nr; h++) {
        const int64_t rows = nr - h * 8 < 8 ? nr - h * 8 : 8;
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rows), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        for (int64_t i = 0; i < m; i += 4) {
            const int64_t nc = m - i < 4 ? m - i : 4;
            const uint8_t *xq = a->q8 + i * a->q8_rb + b0 * 34;
            const float *xd = a->xd + i * nb + b0, *xs = a->xsum + i * nb + b0;
            const int32_t *xi = a->xisum + i * nb + b0;
            float *yt = y + i * ldy + h * 8;
            if (kind == K_Q8) tile_q8_avx2(nc, p, nbc, h, mask, xq, a->q8_rb, xd, xs, xi, nb, yt, ldy, acc_in);
            else if (kind == K_Q40) tile_q40_avx2(nc, p, nbc, h, mask, xq, a->q8_rb, xd, xs, xi, nb, yt, ldy, acc_in);
            else tile_q41_avx2(nc, p, nbc, h, mask, xq, a->q8_rb, xd, xs, xi, nb, yt, ldy, acc_in);
        }
    }
}
#endif

int plm_gemm_takes(int w_type, const plm_acts *a) {
    return (w_type == PLM_TYPE_Q8_0 || w_type == PLM_TYPE_Q4_0 || w_type == PLM_TYPE_Q4_1) && a->xisum != NULL &&
           a->m >= PLM_GEMM_MIN_ROWS;
}

void plm_gemm_rows(int w_type, const uint8_t *w, int64_t rb, const plm_acts *a, int64_t j0, int64_t j1, float *y,
                   int64_t ldy, int level) {
    const int kind = kind_of(w_type);
    const int64_t nb = a->n_blocks, m = a->m;
    if (nb == 0 || m == 0 || j1 <= j0) return;
    const int64_t n_chunks = (nb + PLM_GEMM_KB - 1) / PLM_GEMM_KB, chunk = (nb + n_chunks - 1) / n_chunks;
#if !PLM_X86
    (void)level; /* the tiles are x86's; elsewhere the scalar twin runs */
#endif
    plm_panel p;
#if PLM_X86
    const int amx = level >= 2 && plm_use_amx();
#ifdef PLM_HAVE_AMX
    if (amx) amx_begin(m);
#endif
#endif
    for (int64_t p0 = j0; p0 < j1; p0 += PLM_GEMM_PR) {
        const int64_t nr = j1 - p0 < PLM_GEMM_PR ? j1 - p0 : PLM_GEMM_PR;
        for (int64_t b0 = 0; b0 < nb; b0 += chunk) {
            const int64_t nbc = nb - b0 < chunk ? nb - b0 : chunk;
            const int acc_in = b0 > 0;
#if PLM_X86
            if (level >= 2) {
                const int64_t nxt = j1 - p0 - PLM_GEMM_PR;
                chunk_vnni(kind, w + p0 * rb, rb, nr, b0, nbc, a, y + p0, ldy, acc_in, &p,
                           nxt > 0 ? w + (p0 + PLM_GEMM_PR) * rb : NULL, nxt < PLM_GEMM_PR ? nxt : PLM_GEMM_PR, amx);
                continue;
            }
            if (level == 1) {
                chunk_avx2(kind, w + p0 * rb, rb, nr, b0, nbc, a, y + p0, ldy, acc_in, &p);
                continue;
            }
#endif
            pack_portable(kind, 0, w + p0 * rb, rb, nr, b0, nbc, &p);
            tile_scalar(kind, 0, &p, nbc, nr, a, 0, m, b0, y + p0, ldy, acc_in);
        }
    }
#ifdef PLM_HAVE_AMX
    if (amx) amx_end();
#endif
}

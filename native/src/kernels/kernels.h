/*
 * kernels.h — what the kernel files share and the public header does
 * not show: the GGUF block structs, the type-traits table, fp16 helpers,
 * the thread pool's parallel-for and the run-time SIMD switch.
 */
#ifndef PLM_KERNELS_H
#define PLM_KERNELS_H

#include "pocketlm.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && !defined(PLM_NO_X86_SIMD)
#define PLM_X86 1
#include <immintrin.h>
/* SIMD functions are compiled for AVX2+FMA+F16C whatever the build flags,
 * and only called after plm_cpu_features() said the CPU has them. */
#define PLM_AVX2_FN __attribute__((target("avx2,fma,f16c")))
/* The same kernels with AVX512-VNNI's vpdpbusd (on 256-bit registers, AVX512VL)
 * taking the place of maddubs + madd: u8 x s8 products summed straight into
 * int32, bit for bit what the AVX2 pair gives. */
#define PLM_VNNI_FN __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define PLM_FN_avx2 PLM_AVX2_FN
#define PLM_FN_vnni PLM_VNNI_FN
/* int32 sums of u8 x s8 products, 4 lanes of products to one int32 lane (ones: int16 1s) */
#define PLM_IDOT_avx2(u, s, ones) _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones)
#define PLM_IDOT_vnni(u, s, ones) ((void)(ones), _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s))
/* the same over two pairs (u1.s1 + u2.s2) */
#define PLM_IDOT2_avx2(u1, s1, u2, s2, ones) \
    _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(u1, s1), _mm256_maddubs_epi16(u2, s2)), ones)
#define PLM_IDOT2_vnni(u1, s1, u2, s2, ones) \
    ((void)(ones), _mm256_add_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u1, s1), \
                                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u2, s2)))
#else
#define PLM_X86 0
#endif

#if defined(__aarch64__) && !defined(PLM_NO_ARM_SIMD)
#define PLM_ARM 1
#include <arm_neon.h>
/* The dot-product extension's sdot (ARMv8.2 DotProd): compiled for it whatever
 * the build flags, called only when plm_use_sdot() says the CPU has it. */
#define PLM_DOTPROD_FN __attribute__((target("arch=armv8.2-a+dotprod")))
/* The int8 matrix multiply extension's smmla (ARMv8.6 I8MM, optional from 8.2): the
 * prefill tile, called only when plm_use_i8mm() says the CPU has it. */
#define PLM_I8MM_FN __attribute__((target("arch=armv8.2-a+dotprod+i8mm")))
#else
#define PLM_ARM 0
#endif

#define PLM_QK 32 /* values per quantization block, as GGUF's QK8_0 / QK4_0 / QK4_1 */

/* GGUF's block layouts, byte for byte (ggml-common.h). */
typedef struct {
    uint16_t d;             /* scale, fp16 */
    int8_t qs[PLM_QK];      /* x = qs * d */
} plm_block_q8_0;
typedef struct {
    uint16_t d;             /* scale, fp16 */
    uint8_t qs[PLM_QK / 2]; /* byte j: value j in the low nibble, value j+16 in the high one; x = (q - 8) * d */
} plm_block_q4_0;
typedef struct {
    uint16_t d;             /* scale, fp16 */
    uint16_t m;             /* minimum, fp16 */
    uint8_t qs[PLM_QK / 2]; /* as Q4_0; x = q * d + m */
} plm_block_q4_1;

_Static_assert(sizeof(plm_block_q8_0) == 34, "Q8_0 block must be 34 bytes as in GGUF");
_Static_assert(sizeof(plm_block_q4_0) == 18, "Q4_0 block must be 18 bytes as in GGUF");
_Static_assert(sizeof(plm_block_q4_1) == 20, "Q4_1 block must be 20 bytes as in GGUF");

/* Dot product of one weight row of k values with the activation row in the
 * type's activation format (F32 for F32/F16 weights, Q8_0 blocks for the
 * block types). xsum[b] = d_x * sum(q_x) of activation block b, used by
 * Q4_1's minimum term (NULL for the other types). */
typedef float (*plm_vec_dot_fn)(int64_t k, const void *w_row, const void *x_row, const float *xsum);

/* One row of a type, per ggml's type-traits table: generic code looks the
 * type up here instead of switching on it. */
typedef struct {
    int type;
    const char *name;
    int64_t block_size;                                   /* values per block */
    int64_t block_bytes;                                  /* bytes per block  */
    void (*to_float)(const void *x, float *y, int64_t k); /* one row          */
    void (*from_float)(const float *x, void *y, int64_t k);
    int act_type;                                         /* activation format of vec_dot */
    plm_vec_dot_fn vec_dot_scalar;                        /* portable reference twin */
    plm_vec_dot_fn vec_dot_simd;                          /* NULL where there is none */
} plm_type_traits;

/* NULL for an unknown type id. */
const plm_type_traits *plm_traits(int type);

/* Per-type row functions, defined in quant.c / gemv_*.c / matmul.c. */
/* Q8_0 activation blocks rearranged for the SIMD Q4 kernels (see gemv_q4.c):
 * 64 bytes and 8 + 4 + 4 floats per pair of blocks, 32 bytes and 16 floats
 * for an odd last block. */
void plm_pair_q8_0_for_q4(const void *x, int64_t k, uint8_t *out, float *dxs, float *xsm40, float *xsm41,
                          float *xs840, float *xs841);
void plm_quantize_row_q8_0(const float *x, void *y, int64_t k);
void plm_quantize_row_q4_0(const float *x, void *y, int64_t k);
void plm_quantize_row_q4_1(const float *x, void *y, int64_t k);
void plm_dequantize_row_q8_0(const void *x, float *y, int64_t k);
void plm_dequantize_row_q4_0(const void *x, float *y, int64_t k);
void plm_dequantize_row_q4_1(const void *x, float *y, int64_t k);
float plm_vec_dot_f32_scalar(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_f16_scalar(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_q8_0_scalar(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_q4_0_scalar(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_q4_1_scalar(int64_t k, const void *w, const void *x, const float *xsum);
#if PLM_X86
float plm_vec_dot_f32_avx2(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_f16_avx2(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_q8_0_avx2(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_q4_0_avx2(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_q4_1_avx2(int64_t k, const void *w, const void *x, const float *xsum);
void plm_quantize_row_q8_0_avx2(const float *x, void *y, int64_t k);
/* How far ahead of the bytes being read the row kernels prefetch. A decode
 * step streams its matrices from DRAM once, and the hardware prefetcher alone
 * does not keep up with 4 rows read side by side; the rows a kernel reads
 * together are contiguous, so it prefetches that slab as one linear stream,
 * one prefetch per cache line, at least this far ahead of its position in
 * the slab, and at least a whole slab ahead (the next slab's last row is read
 * as soon as its first). A prefetch per block and row, 16 rows ahead (the
 * first scheme), issued twice as many prefetches as there are lines and
 * reached a third of the bandwidth (docs/performance.md). */
#ifndef PLM_PREFETCH_BYTES
#define PLM_PREFETCH_BYTES 4096
#endif
/* where the prefetch stream of a slab of slab_bytes starting at w starts */
static inline const uint8_t *plm_prefetch_base(const uint8_t *w, int64_t slab_bytes) {
    return w + (slab_bytes > PLM_PREFETCH_BYTES ? slab_bytes : PLM_PREFETCH_BYTES);
}
/* Prefetches the lines of [pf + *done, pf + upto) and advances *done. */
static inline void plm_prefetch_upto(const uint8_t *pf, int64_t *done, int64_t upto) {
    for (; *done < upto; *done += 64) _mm_prefetch((const char *)pf + *done, _MM_HINT_T0);
}
/* n_rows weight rows (rb bytes apart) against one activation row, 4 rows at
 * a time; Q4 rows read the paired activations of plm_pair_q8_0_for_q4. */
void plm_q8_rows_avx2(int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const void *x, const float *xd,
                      float *y);
void plm_q4_rows_avx2(int is41, int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const uint8_t *xp,
                      const float *dxs, const float *xsm, float *y);

#endif
#if PLM_ARM
/* The NEON twins (neon.c); the Q8_0/Q4 dot products use sdot where the CPU has it. */
float plm_vec_dot_f32_neon(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_f16_neon(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_q8_0_neon(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_q4_0_neon(int64_t k, const void *w, const void *x, const float *xsum);
float plm_vec_dot_q4_1_neon(int64_t k, const void *w, const void *x, const float *xsum);
void plm_quantize_row_q8_0_neon(const float *x, void *y, int64_t k);
float plm_sum_squares_neon(const float *x, int64_t n);
void plm_add_neon(const float *a, const float *b, float *y, int64_t n);
void plm_axpy_neon(float a, const float *x, float *y, int64_t n);
void plm_f16_row_neon(const uint16_t *x, float *y, int64_t n);
/* the NEON twins of the vector exp and the attention tiles: they return how far they got */
int64_t plm_exp_neon(const float *x, float *y, int64_t n);
void plm_att_scores_neon(int64_t hd, const float *const *q, int64_t nv, const float *const *k, int64_t nk, float *s,
                         int64_t ld);
void plm_att_values_neon(int64_t hd, const float *p, int64_t ld, int64_t nv, const float *const *vr, int64_t nk,
                         float *const *o);
/* Q8_0/Q4_0/Q4_1 weight rows j < n_rows (rb bytes apart) against 4 activation rows of Q8_0
 * blocks (xrb bytes apart; Q4_1 reads their scaled sums xsum, xsum_ld floats a row):
 * y[i * ldy + j], equal to the scalar dot products bit for bit. */
void plm_quant_tile_neon(int w_type, int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const uint8_t *xq,
                         int64_t xrb, const float *xsum, int64_t xsum_ld, float *y, int64_t ldy);
#endif
#if PLM_X86
/* Horizontal sum of 8 floats. */
PLM_AVX2_FN static inline float plm_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

/* RoPE, shared by plm_rope and the engine: the cos/sin pairs of one position
 * (rot_dim / 2 of them, computed in double) and their rotation of one head. */
void plm_rope_angles(float *cs, int64_t pos, int64_t half, int64_t rot_dim, float theta, float freq_scale,
                     const float *freq_factors);
static inline void plm_rope_head(float *v, const float *cs, int64_t half, int mode) {
    for (int64_t i = 0; i < half; i++) {
        const int64_t a = mode == PLM_ROPE_NEOX ? i : 2 * i;
        const int64_t b = mode == PLM_ROPE_NEOX ? i + half : 2 * i + 1;
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * c - x1 * s;
        v[b] = x1 * c + x0 * s;
    }
}

/* y += a * x over n values: attention's weighted sum of values. */
static inline void plm_axpy_scalar(float a, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}
#if PLM_X86
PLM_AVX2_FN static inline void plm_axpy_avx2(float a, const float *x, float *y, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
#endif

/* The vector exp (activations.c, its steps described there): y[i] = exp(x[i]), y may be x;
 * level 0 scalar, 1 AVX2 / NEON, 2 AVX-512, all equal bit for bit. plm_exp_level: the level
 * the kernels use now. */
#define PLM_EXP_LOG2E 0x1.715476p+0f
#define PLM_EXP_MAGIC 0x1.8000FEp23f /* 1.5 * 2^23 + 127 */
#define PLM_EXP_LN2_HI 0x1.62E4p-1f  /* 15 bits: n * LN2_HI is exact */
#define PLM_EXP_LN2_LO 0x1.7F7D1Cp-20f
#define PLM_EXP_C6 0x1.6B502p-10f
#define PLM_EXP_C5 0x1.126C9Cp-7f
#define PLM_EXP_C4 0x1.55578Ep-5f
#define PLM_EXP_C3 0x1.55540Cp-3f
#define PLM_EXP_C2 0x1.FFFFFCp-2f
#define PLM_EXP_LO -0x1.5D58A0p+6f /* ln(2^-126): below, 0 */
#define PLM_EXP_HI 0x1.61814Ap+6f  /* the float below 127.5 ln2: above, +inf */

void plm_exp_rows(const float *x, float *y, int64_t n, int level);
int plm_exp_level(void);

/* The engine's attention tiles (attention.c), level 0 scalar, 1 AVX2 / NEON, 2 AVX-512, all
 * equal bit for bit: a score is eight chains of fused multiply-adds (d mod 8) joined in a fixed
 * tree, an output value one chain over the keys in their order, whatever the tile shape.
 *   plm_att_scores: s[j * ld + v] = k[j] . q[v] for keys j < nk and query vectors v < nv;
 *   plm_att_values: o[v][d] += p[j * ld + v] * vr[j][d], j = 0 .. nk-1 in turn, for v < nv, d < hd. */
void plm_att_scores(int64_t hd, const float *const *q, int64_t nv, const float *const *k, int64_t nk, float *s,
                    int64_t ld, int level);
void plm_att_values(int64_t hd, const float *p, int64_t ld, int64_t nv, const float *const *vr, int64_t nk,
                    float *const *o, int level);

/* fp16 <-> fp32, scalar (bit exact with F16C's round-to-nearest-even). */
static inline float plm_h2f(uint16_t h) { return plm_fp16_to_fp32(h); }
static inline uint16_t plm_f2h(float f) { return plm_fp32_to_fp16(f); }

/* ---- products over row ranges (inside a parallel region) --------------
 * A weight type reads its activations in one or more forms, prepared once
 * per activation row: the F32 row itself (F32/F16 weights), Q8_0 blocks
 * with each block's scale and scaled sum, and, for the SIMD Q4 kernels, the
 * blocks paired with their scales spread (P4, plm_pair_q8_0_for_q4). plm_mm_rows then computes
 * y[i][j] = x[i] . W[j] for rows j0 <= j < j1, so threads can split one
 * product without a region of its own. */
enum { PLM_ACTS_F32 = 1, PLM_ACTS_Q8 = 2, PLM_ACTS_SUM = 4, PLM_ACTS_P4 = 8 };
typedef struct {
    int need;
    int64_t m, k, n_blocks;
    const float *f32;
    int64_t f32_ld;
    uint8_t *q8;
    int64_t q8_rb;
    float *xd, *xsum;
    int32_t *xisum;     /* sum(q_x) of each block, as an integer (the GEMM's offsets) */
    uint8_t *p4;        /* paired blocks, p4_rb bytes a row */
    int64_t p4_rb, n_pairs;
    float *dxs, *xsm40, *xsm41; /* per row: 8 * n_pairs, 4 * n_pairs, 4 * n_pairs floats */
    float *xs840, *xs841;       /* per row: 8 * n_pairs floats each */
} plm_acts;
/* the forms a weight type reads (0 for an unknown type) */
int plm_act_need(int w_type, int simd);
/* bytes of buffer plm_acts_init lays m rows of k values out in */
size_t plm_acts_size(int need, int64_t m, int64_t k);
void plm_acts_init(plm_acts *a, int need, void *buf, int64_t m, int64_t k);
/* prepares rows r0 <= i < r1 of x (row stride ldx); x must outlive the products */
void plm_acts_fill(plm_acts *a, const float *x, int64_t ldx, int64_t r0, int64_t r1, int simd);
void plm_mm_rows(int w_type, const void *w, int64_t w_rb, const plm_acts *a, int64_t j0, int64_t j1, float *y,
                 int64_t ldy, int simd);
/* The prefill GEMM (gemm.c): weight rows j0 <= j < j1 of a Q8_0 / Q4_0 / Q4_1 matrix
 * against every activation row of a, through 16-row panels packed as they are read;
 * level 2 the AVX512-VNNI tile, 1 the AVX2 one, 0 their scalar twin, all three equal bit
 * for bit. plm_gemm_takes says whether a product goes there (a block type, at least
 * PLM_GEMM_MIN_ROWS activation rows). */
#ifndef PLM_GEMM_MIN_ROWS
#define PLM_GEMM_MIN_ROWS 8
#endif
int plm_gemm_takes(int w_type, const plm_acts *a);
void plm_gemm_rows(int w_type, const uint8_t *w, int64_t rb, const plm_acts *a, int64_t j0, int64_t j1, float *y,
                   int64_t ldy, int level);
/* The prefill's F32 / F16 product on x86 (gemm_f.c): weight rows j0 <= j < j1 against
 * every activation row of a (its F32 rows) in register tiles, level 2 the AVX-512F tile, 1
 * the AVX2 one, both equal bit for bit to the AVX2 row kernels (a decode step's). The SIMD
 * paths only; plm_gemm_f_takes says whether a product goes there (x86, F32 or F16 weights,
 * at least 2 activation rows as F32). */
int plm_gemm_f_takes(int w_type, const plm_acts *a);
void plm_gemm_f_rows(int w_type, const uint8_t *w, int64_t rb, const plm_acts *a, int64_t j0, int64_t j1, float *y,
                     int64_t ldy, int level);
#if PLM_X86
/* Q4 rows j < n_rows against activation rows i0 .. i0 + n_act - 1 of a, a
 * register tile at a time (gemv_q4.c); 0 when the shape is not one it takes. */
/* Q8_0 rows against 4 activation rows (Q8_0 blocks xrb bytes apart, block scales xd, nb floats a row). */
void plm_q8_tile_avx2(int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const uint8_t *xq, int64_t xrb,
                      const float *xd, float *y, int64_t ldy);
int plm_q4_tile_avx2(int is41, int64_t k, const uint8_t *w, int64_t rb, int64_t n_rows, const plm_acts *a,
                     int64_t i0, int64_t n_act, float *y, int64_t ldy);
#endif

/* 1 when the SIMD kernels are to be used now (CPU has them and not disabled). */
int plm_use_avx2(void);
/* 1 when the NEON kernels are to be used (arm64, SIMD level >= 1), and when
 * their sdot variants are (SIMD level 2 and the CPU has DotProd). */
int plm_use_neon(void);
int plm_use_sdot(void);
/* 1 when the smmla prefill tile is to be used (SIMD level 2 and the CPU has I8MM). */
int plm_use_i8mm(void);
/* the SIMD kernels of this machine, whichever they are: AVX2 or NEON */
int plm_use_simd(void);
/* 1 when the AVX512-VNNI variants are to be used (CPU has them, SIMD level 2). */
int plm_use_vnni(void);
/* 1 when the prefill GEMM's AMX tiles are to be used: plm_use_vnni(), the OS grants AMX (PLM_CPU_AMX),
 * and neither POCKETLM_AMX=0 nor plm_set_amx(0) turned them off. */
int plm_use_amx(void);

/* ---- thread pool ------------------------------------------------------ */
/* fn runs on [begin, end) of [0, n); thread 0 is the caller. */
typedef void (*plm_task_fn)(void *ctx, int64_t begin, int64_t end, int thread_idx);
/* Splits [0, n) into contiguous chunks of at least `grain` items over the
 * effective thread count (request, default and cap applied) and runs them;
 * returns when all are done. Regions from different caller threads are
 * serialized. */
void plm_parallel_for(int64_t n, int64_t grain, plm_task_fn fn, void *ctx, int n_threads);
/* The thread count a call asking for n_threads gets. */
int plm_effective_threads(int n_threads);
/* Runs fn(ctx, ith, nth) once on each of nth threads (caller is ith 0), nth
 * being what the pool gave for n_threads; returns nth. The threads stay in
 * step with plm_barrier_wait: the engine's forward pass is one region. */
typedef void (*plm_region_fn)(void *ctx, int ith, int nth);
int plm_parallel_region(plm_region_fn fn, void *ctx, int n_threads);
typedef struct {
    int count; /* threads arrived in this phase */
    int phase;
} plm_barrier;
/* All nth threads of the region meet here; spins, then yields. */
void plm_barrier_wait(plm_barrier *b, int nth);

/* Reject NULL pointers / negative sizes uniformly. */
#define PLM_CHECK(cond, status) \
    do {                        \
        if (!(cond)) return (status); \
    } while (0)

#endif /* PLM_KERNELS_H */

/*
 * common.c — status strings, fp16 conversion, the quant type-traits table
 * and run-time CPU feature selection. Everything here is pure and cheap;
 * no allocation, no printing.
 */
#include "kernels/kernels.h"

#if PLM_X86
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
/* asm/prctl.h's request for an extended state the kernel enables on demand, and AMX's tile data */
#define PLM_ARCH_REQ_XCOMP_PERM 0x1023
#define PLM_XFEATURE_XTILEDATA 18
#endif
#endif
#if PLM_ARM
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#endif

#include <math.h>
#include <stdlib.h>

const char *plm_version(void) { return "0.1.0"; }

const char *plm_status_string(int status) {
    switch (status) {
    case PLM_OK: return "ok";
    case PLM_ERR_INVALID_ARG: return "invalid argument (NULL pointer, negative size or index out of range)";
    case PLM_ERR_SHAPE: return "shapes do not fit together";
    case PLM_ERR_TYPE: return "unsupported tensor type";
    case PLM_ERR_NOMEM: return "out of memory";
    case PLM_ERR_FORMAT: return "malformed or unsupported file";
    case PLM_ERR_IO: return "file could not be opened or mapped";
    case PLM_ERR_NOT_FOUND: return "no such key or tensor";
    default: return "unknown status";
    }
}

/* ---- fp16 ------------------------------------------------------------ */

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t plm_fp32_to_fp16(float f) {
    const uint32_t x = f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf stays inf, NaN stays a quiet NaN */
        return sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u);
    if (ax >= 0x477ff000u) /* >= 65520 rounds past the largest half, 65504 */
        return sign | 0x7c00u;
    if (ax < 0x38800000u) { /* below 2^-14: a subnormal half (units of 2^-24) or zero */
        const float units = bits_f32(ax) * 16777216.0f; /* exact: scaling by a power of two */
        return sign | (uint16_t)nearbyintf(units);      /* default rounding: nearest even */
    }
    /* normal: rebias the exponent (127 -> 15), keep 10 mantissa bits, round to nearest even;
     * a carry out of the mantissa correctly bumps the exponent. */
    uint32_t h = ((ax >> 23) - 112u) << 10 | ((ax & 0x7fffffu) >> 13);
    const uint32_t rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return sign | (uint16_t)h;
}

float plm_fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu;
    const uint32_t m = h & 0x3ffu;
    if (e == 0) {
        const float v = (float)m * 5.9604644775390625e-08f; /* m * 2^-24, exact */
        return sign ? -v : v;
    }
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

/* ---- type traits -------------------------------------------------------- */

static void f32_to_float(const void *x, float *y, int64_t k) { memcpy(y, x, (size_t)k * sizeof(float)); }
static void f32_from_float(const float *x, void *y, int64_t k) { memcpy(y, x, (size_t)k * sizeof(float)); }
static void f16_to_float(const void *x, float *y, int64_t k) {
    const uint16_t *h = (const uint16_t *)x;
    for (int64_t i = 0; i < k; i++) y[i] = plm_fp16_to_fp32(h[i]);
}
static void f16_from_float(const float *x, void *y, int64_t k) {
    uint16_t *h = (uint16_t *)y;
    for (int64_t i = 0; i < k; i++) h[i] = plm_fp32_to_fp16(x[i]);
}

#if PLM_X86
#define SIMD(fn) fn
#elif PLM_ARM /* plm_vec_dot_X_avx2 -> plm_vec_dot_X_neon */
#define SIMD(fn) fn##_neon_twin
#define plm_vec_dot_f32_avx2_neon_twin plm_vec_dot_f32_neon
#define plm_vec_dot_f16_avx2_neon_twin plm_vec_dot_f16_neon
#define plm_vec_dot_q4_0_avx2_neon_twin plm_vec_dot_q4_0_neon
#define plm_vec_dot_q4_1_avx2_neon_twin plm_vec_dot_q4_1_neon
#define plm_vec_dot_q8_0_avx2_neon_twin plm_vec_dot_q8_0_neon
#else
#define SIMD(fn) NULL
#endif

static const plm_type_traits k_traits[] = {
    {PLM_TYPE_F32, "F32", 1, 4, f32_to_float, f32_from_float, PLM_TYPE_F32,
     plm_vec_dot_f32_scalar, SIMD(plm_vec_dot_f32_avx2)},
    {PLM_TYPE_F16, "F16", 1, 2, f16_to_float, f16_from_float, PLM_TYPE_F32,
     plm_vec_dot_f16_scalar, SIMD(plm_vec_dot_f16_avx2)},
    {PLM_TYPE_Q4_0, "Q4_0", PLM_QK, sizeof(plm_block_q4_0), plm_dequantize_row_q4_0,
     plm_quantize_row_q4_0, PLM_TYPE_Q8_0, plm_vec_dot_q4_0_scalar, SIMD(plm_vec_dot_q4_0_avx2)},
    {PLM_TYPE_Q4_1, "Q4_1", PLM_QK, sizeof(plm_block_q4_1), plm_dequantize_row_q4_1,
     plm_quantize_row_q4_1, PLM_TYPE_Q8_0, plm_vec_dot_q4_1_scalar, SIMD(plm_vec_dot_q4_1_avx2)},
    {PLM_TYPE_Q8_0, "Q8_0", PLM_QK, sizeof(plm_block_q8_0), plm_dequantize_row_q8_0,
     plm_quantize_row_q8_0, PLM_TYPE_Q8_0, plm_vec_dot_q8_0_scalar, SIMD(plm_vec_dot_q8_0_avx2)},
};

const plm_type_traits *plm_traits(int type) {
    for (size_t i = 0; i < sizeof(k_traits) / sizeof(k_traits[0]); i++)
        if (k_traits[i].type == type) return &k_traits[i];
    return NULL;
}

int64_t plm_type_block_size(int type) {
    const plm_type_traits *t = plm_traits(type);
    return t ? t->block_size : 0;
}

int64_t plm_type_block_bytes(int type) {
    const plm_type_traits *t = plm_traits(type);
    return t ? t->block_bytes : 0;
}

int64_t plm_row_bytes(int type, int64_t n) {
    const plm_type_traits *t = plm_traits(type);
    if (!t || n < 0 || n % t->block_size != 0) return -1;
    return n / t->block_size * t->block_bytes;
}

/* ---- CPU features ------------------------------------------------------ */

static int g_features = -1;
static int g_simd_enabled = -1;

int plm_cpu_features(void) {
    int f = __atomic_load_n(&g_features, __ATOMIC_RELAXED);
    if (f >= 0) return f;
    f = 0;
#if PLM_X86
    __builtin_cpu_init();
    unsigned a = 0, b = 0, c = 0, d = 0;
    /* F16C is CPUID leaf 1 ECX bit 29 (not every compiler's __builtin_cpu_supports names it) */
    const int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    /* what the OS saves on a context switch (XCR0), not only what CPUID lists: YMM state (bits 1-2)
     * for AVX2, opmask and ZMM state (bits 5-7) for AVX-512 */
    uint64_t xcr0 = 0;
    if ((c & (1u << 27)) != 0) { /* OSXSAVE */
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t)hi << 32) | lo;
    }
    const int os_ymm = (xcr0 & 0x6) == 0x6, os_zmm = (xcr0 & 0xe6) == 0xe6;
    if (os_ymm && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) f |= PLM_CPU_AVX2;
    if ((f & PLM_CPU_AVX2) && os_zmm && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        f |= PLM_CPU_AVX512VNNI;
#if defined(__linux__)
    /* AMX only where the OS has granted it, not where CPUID alone lists it (a VM can list AMX and fault on
     * its first tile instruction): AMX-TILE and AMX-INT8 (leaf 7 EDX bits 24, 25), the tile config and
     * data state in XCR0 (bits 17, 18), and the process's permission for the tile data, asked of the
     * kernel (Linux 5.16 on; the first tile instruction without it is a SIGILL) */
    unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0;
    if ((f & PLM_CPU_AVX512VNNI) && __get_cpuid_count(7, 0, &a7, &b7, &c7, &d7) && (d7 & (1u << 24)) &&
        (d7 & (1u << 25)) && (xcr0 & 0x60000) == 0x60000 &&
        syscall(SYS_arch_prctl, PLM_ARCH_REQ_XCOMP_PERM, PLM_XFEATURE_XTILEDATA) == 0)
        f |= PLM_CPU_AMX;
#endif
#endif
#if defined(__ARM_NEON)
    f |= PLM_CPU_NEON;
#endif
#if PLM_ARM
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) f |= PLM_CPU_DOTPROD; /* sdot / udot */
    if ((f & PLM_CPU_DOTPROD) && (getauxval(AT_HWCAP2) & HWCAP2_I8MM)) f |= PLM_CPU_I8MM; /* smmla */
#endif
    __atomic_store_n(&g_features, f, __ATOMIC_RELAXED);
    return f;
}

/* the SIMD level in force: 0 scalar, 1 AVX2 (or NEON) only, 2 everything the CPU has */
static int simd_enabled(void) {
    int e = __atomic_load_n(&g_simd_enabled, __ATOMIC_RELAXED);
    if (e < 0) { /* POCKETLM_SIMD=0 starts with the scalar kernels, =1 with AVX2 without its extensions */
        const char *env = getenv("POCKETLM_SIMD");
        e = env && env[0] == '0' ? 0 : env && env[0] == '1' ? 1 : 2;
        __atomic_store_n(&g_simd_enabled, e, __ATOMIC_RELAXED);
    }
    return e;
}

int plm_set_simd(int enable) {
    const int prev = simd_enabled();
    __atomic_store_n(&g_simd_enabled, enable < 0 ? 0 : enable > 2 ? 2 : enable, __ATOMIC_RELAXED);
    return prev;
}

int plm_use_avx2(void) { return PLM_X86 && simd_enabled() >= 1 && (plm_cpu_features() & PLM_CPU_AVX2); }
int plm_use_vnni(void) { return PLM_X86 && simd_enabled() >= 2 && (plm_cpu_features() & PLM_CPU_AVX512VNNI); }

/* AMX's tiles in the prefill GEMM: on unless POCKETLM_AMX=0 or plm_set_amx(0) (the VNNI tile then runs) */
static int g_amx_enabled = -1;

static int amx_enabled(void) {
    int e = __atomic_load_n(&g_amx_enabled, __ATOMIC_RELAXED);
    if (e < 0) {
        const char *env = getenv("POCKETLM_AMX");
        e = !(env && env[0] == '0');
        __atomic_store_n(&g_amx_enabled, e, __ATOMIC_RELAXED);
    }
    return e;
}

int plm_set_amx(int enable) {
    const int prev = amx_enabled();
    __atomic_store_n(&g_amx_enabled, enable ? 1 : 0, __ATOMIC_RELAXED);
    return prev;
}

int plm_use_amx(void) { return plm_use_vnni() && amx_enabled() && (plm_cpu_features() & PLM_CPU_AMX); }
int plm_use_neon(void) { return PLM_ARM && simd_enabled() >= 1 && (plm_cpu_features() & PLM_CPU_NEON); }
int plm_use_sdot(void) { return PLM_ARM && simd_enabled() >= 2 && (plm_cpu_features() & PLM_CPU_DOTPROD); }
int plm_use_i8mm(void) { return PLM_ARM && simd_enabled() >= 2 && (plm_cpu_features() & PLM_CPU_I8MM); }
int plm_use_simd(void) { return plm_use_avx2() || plm_use_neon(); }

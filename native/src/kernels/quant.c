/*
 * quant.c — F32 rows to and from GGUF's Q8_0, Q4_0 and Q4_1 blocks, and the
 * typed embedding-row lookup. Quantization follows ggml's *_ref functions
 * step for step (same float operations, same rounding) so the bytes we write
 * equal the bytes llama.cpp's converter writes for the same floats.
 */
#include "kernels/kernels.h"

#include <float.h>
#include <math.h>

/* ---- Q8_0: d = max|x| / 127, q = round(x / d) ---------------------------- */

void plm_quantize_row_q8_0(const float *x, void *vy, int64_t k) {
    plm_block_q8_0 *y = (plm_block_q8_0 *)vy;
    for (int64_t b = 0; b < k / PLM_QK; b++, x += PLM_QK) {
        float amax = 0.0f;
        for (int j = 0; j < PLM_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = plm_f2h(d);
        for (int j = 0; j < PLM_QK; j++) y[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void plm_dequantize_row_q8_0(const void *vx, float *y, int64_t k) {
    const plm_block_q8_0 *x = (const plm_block_q8_0 *)vx;
    for (int64_t b = 0; b < k / PLM_QK; b++) {
        const float d = plm_h2f(x[b].d);
        for (int j = 0; j < PLM_QK; j++) y[b * PLM_QK + j] = (float)x[b].qs[j] * d;
    }
}

#if PLM_X86
/* The SIMD twin of plm_quantize_row_q8_0, used for activations. roundf
 * (half away from zero) is trunc(v + copysign(0.49999997, v)), so the bytes
 * equal the scalar version's. */
PLM_AVX2_FN void plm_quantize_row_q8_0_avx2(const float *x, void *vy, int64_t k) {
    plm_block_q8_0 *y = (plm_block_q8_0 *)vy;
    const __m256 sign_mask = _mm256_set1_ps(-0.0f);
    const __m256 half = _mm256_set1_ps(0.49999997f);
    for (int64_t b = 0; b < k / PLM_QK; b++, x += PLM_QK) {
        __m256 v[4];
        __m256 amax = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 8 * i);
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_mask, v[i]));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float d = _mm_cvtss_f32(m4) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = plm_f2h(d);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; i++) {
            const __m256 s = _mm256_mul_ps(v[i], vid);
            const __m256 r = _mm256_add_ps(s, _mm256_or_ps(_mm256_and_ps(s, sign_mask), half));
            q[i] = _mm256_cvttps_epi32(r);
        }
        /* pack 32 int32 -> 32 int8 in order */
        const __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
        const __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[b].qs, p);
    }
}
#endif

/* ---- Q4_0: d = (value of largest magnitude) / -8, q = x / d + 8 in [0, 15] --- */

void plm_quantize_row_q4_0(const float *x, void *vy, int64_t k) {
    plm_block_q4_0 *y = (plm_block_q4_0 *)vy;
    for (int64_t b = 0; b < k / PLM_QK; b++, x += PLM_QK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < PLM_QK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = plm_f2h(d);
        for (int j = 0; j < PLM_QK / 2; j++) {
            const int8_t lo = (int8_t)(x[j] * id + 8.5f);
            const int8_t hi = (int8_t)(x[j + PLM_QK / 2] * id + 8.5f);
            const uint8_t q0 = (uint8_t)(lo < 15 ? lo : 15);
            const uint8_t q1 = (uint8_t)(hi < 15 ? hi : 15);
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void plm_dequantize_row_q4_0(const void *vx, float *y, int64_t k) {
    const plm_block_q4_0 *x = (const plm_block_q4_0 *)vx;
    for (int64_t b = 0; b < k / PLM_QK; b++, y += PLM_QK) {
        const float d = plm_h2f(x[b].d);
        for (int j = 0; j < PLM_QK / 2; j++) {
            y[j] = (float)((x[b].qs[j] & 0x0F) - 8) * d;
            y[j + PLM_QK / 2] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

/* ---- Q4_1: d = (max - min) / 15, m = min, q = (x - m) / d in [0, 15] ------- */

void plm_quantize_row_q4_1(const float *x, void *vy, int64_t k) {
    plm_block_q4_1 *y = (plm_block_q4_1 *)vy;
    for (int64_t b = 0; b < k / PLM_QK; b++, x += PLM_QK) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < PLM_QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = plm_f2h(d);
        y[b].m = plm_f2h(min);
        for (int j = 0; j < PLM_QK / 2; j++) {
            const int8_t lo = (int8_t)((x[j] - min) * id + 0.5f);
            const int8_t hi = (int8_t)((x[j + PLM_QK / 2] - min) * id + 0.5f);
            const uint8_t q0 = (uint8_t)(lo < 15 ? lo : 15);
            const uint8_t q1 = (uint8_t)(hi < 15 ? hi : 15);
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void plm_dequantize_row_q4_1(const void *vx, float *y, int64_t k) {
    const plm_block_q4_1 *x = (const plm_block_q4_1 *)vx;
    for (int64_t b = 0; b < k / PLM_QK; b++, y += PLM_QK) {
        const float d = plm_h2f(x[b].d), m = plm_h2f(x[b].m);
        for (int j = 0; j < PLM_QK / 2; j++) {
            y[j] = (float)(x[b].qs[j] & 0x0F) * d + m;
            y[j + PLM_QK / 2] = (float)(x[b].qs[j] >> 4) * d + m;
        }
    }
}

/* ---- public entry points -------------------------------------------------- */

int plm_quantize(int type, const float *x, void *y, int64_t n_rows, int64_t k) {
    const plm_type_traits *t = plm_traits(type);
    PLM_CHECK(t != NULL, PLM_ERR_TYPE);
    PLM_CHECK(n_rows >= 0 && k >= 0, PLM_ERR_INVALID_ARG);
    const int64_t rb = plm_row_bytes(type, k);
    PLM_CHECK(rb >= 0, PLM_ERR_SHAPE);
    if (n_rows == 0 || k == 0) return PLM_OK;
    PLM_CHECK(x != NULL && y != NULL, PLM_ERR_INVALID_ARG);
    for (int64_t r = 0; r < n_rows; r++) t->from_float(x + r * k, (uint8_t *)y + r * rb, k);
    return PLM_OK;
}

int plm_dequantize(int type, const void *x, float *y, int64_t n_rows, int64_t k) {
    const plm_type_traits *t = plm_traits(type);
    PLM_CHECK(t != NULL, PLM_ERR_TYPE);
    PLM_CHECK(n_rows >= 0 && k >= 0, PLM_ERR_INVALID_ARG);
    const int64_t rb = plm_row_bytes(type, k);
    PLM_CHECK(rb >= 0, PLM_ERR_SHAPE);
    if (n_rows == 0 || k == 0) return PLM_OK;
    PLM_CHECK(x != NULL && y != NULL, PLM_ERR_INVALID_ARG);
    for (int64_t r = 0; r < n_rows; r++) t->to_float((const uint8_t *)x + r * rb, y + r * k, k);
    return PLM_OK;
}

int plm_get_rows(int type, const void *w, int64_t n_rows, int64_t k, const int32_t *ids,
                 int64_t n_ids, float *out) {
    const plm_type_traits *t = plm_traits(type);
    PLM_CHECK(t != NULL, PLM_ERR_TYPE);
    PLM_CHECK(n_rows >= 0 && k >= 0 && n_ids >= 0, PLM_ERR_INVALID_ARG);
    const int64_t rb = plm_row_bytes(type, k);
    PLM_CHECK(rb >= 0, PLM_ERR_SHAPE);
    if (n_ids == 0 || k == 0) return PLM_OK;
    PLM_CHECK(w != NULL && ids != NULL && out != NULL, PLM_ERR_INVALID_ARG);
    for (int64_t i = 0; i < n_ids; i++) /* check every id before writing anything */
        PLM_CHECK(ids[i] >= 0 && ids[i] < n_rows, PLM_ERR_INVALID_ARG);
    for (int64_t i = 0; i < n_ids; i++) t->to_float((const uint8_t *)w + ids[i] * rb, out + i * k, k);
    return PLM_OK;
}

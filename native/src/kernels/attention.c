/*
 * attention.c — causal attention of one or many query positions over a KV
 * cache, with grouped-query heads, an optional tanh soft-cap (Gemma-2), an
 * optional sliding window (Gemma-2's local layers, Mistral) and optional
 * ALiBi slopes (Falcon-RW). Work is split over (query, head) pairs; each
 * thread gets its own score buffer, allocated before the threads start.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    const float *q, *k, *v;
    float *out;
    int64_t n_q, n_kv, q_pos0, n_heads, n_kv_heads, head_dim;
    float scale, softcap;
    int64_t window;
    const float *alibi;
    float *scores;          /* n_threads x n_kv */
    int simd;
} plm_attn_ctx;

static void attn_task(void *vctx, int64_t begin, int64_t end, int tid) {
    const plm_attn_ctx *c = (const plm_attn_ctx *)vctx;
    const int64_t hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    const int64_t kv_stride = c->n_kv_heads * hd;
    float *scores = c->scores + (int64_t)tid * c->n_kv;
#if PLM_X86
    const plm_vec_dot_fn dot = c->simd ? plm_vec_dot_f32_avx2 : plm_vec_dot_f32_scalar;
    void (*axpy)(float, const float *, float *, int64_t) = c->simd ? plm_axpy_avx2 : plm_axpy_scalar;
#elif PLM_ARM
    const plm_vec_dot_fn dot = c->simd ? plm_vec_dot_f32_neon : plm_vec_dot_f32_scalar;
    void (*axpy)(float, const float *, float *, int64_t) = c->simd ? plm_axpy_neon : plm_axpy_scalar;
#else
    const plm_vec_dot_fn dot = plm_vec_dot_f32_scalar;
    void (*axpy)(float, const float *, float *, int64_t) = plm_axpy_scalar;
#endif
    for (int64_t idx = begin; idx < end; idx++) {
        const int64_t i = idx / c->n_heads, h = idx % c->n_heads, kvh = h / group;
        const int64_t pos = c->q_pos0 + i;
        const int64_t j0 = c->window > 0 && pos - c->window + 1 > 0 ? pos - c->window + 1 : 0;
        const float *qv = c->q + idx * hd;
        float *o = c->out + idx * hd;

        float max = -INFINITY;
        for (int64_t j = j0; j <= pos; j++) {
            float s = c->scale * dot(hd, c->k + j * kv_stride + kvh * hd, qv, NULL);
            if (c->softcap > 0.0f) s = c->softcap * tanhf(s / c->softcap);
            if (c->alibi) s += c->alibi[h] * (float)(j - pos);
            scores[j] = s;
            max = s > max ? s : max;
        }
        float sum = 0.0f;
        for (int64_t j = j0; j <= pos; j++) {
            scores[j] = expf(scores[j] - max);
            sum += scores[j];
        }
        const float inv = 1.0f / sum;
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int64_t j = j0; j <= pos; j++) axpy(scores[j] * inv, c->v + j * kv_stride + kvh * hd, o, hd);
    }
}

int plm_attention(const float *q, const float *k_cache, const float *v_cache, float *out, int64_t n_q,
                  int64_t n_kv, int64_t q_pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                  float scale, float softcap, int64_t window, const float *alibi_slopes, int n_threads) {
    PLM_CHECK(n_q >= 0 && n_kv >= 0 && q_pos0 >= 0 && head_dim >= 0 && window >= 0, PLM_ERR_INVALID_ARG);
    PLM_CHECK(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, PLM_ERR_SHAPE);
    PLM_CHECK(q_pos0 + n_q <= n_kv, PLM_ERR_SHAPE);
    PLM_CHECK(!isnan(scale) && !isnan(softcap), PLM_ERR_INVALID_ARG);
    if (n_q == 0 || head_dim == 0) return PLM_OK;
    PLM_CHECK(q != NULL && k_cache != NULL && v_cache != NULL && out != NULL, PLM_ERR_INVALID_ARG);

    plm_attn_ctx c = {q, k_cache, v_cache, out, n_q, n_kv, q_pos0, n_heads, n_kv_heads, head_dim,
                      scale, softcap, window, alibi_slopes, NULL, plm_use_simd()};
    const int nt = plm_effective_threads(n_threads);
    c.scores = (float *)malloc((size_t)nt * (size_t)n_kv * sizeof(float));
    PLM_CHECK(c.scores != NULL, PLM_ERR_NOMEM);
    /* a (query, head) pair costs about 2 * n_kv * head_dim flops */
    int64_t grain = 16384 / (n_kv * head_dim + 1);
    plm_parallel_for(n_q * n_heads, grain < 1 ? 1 : grain, attn_task, &c, nt);
    free(c.scores);
    return PLM_OK;
}

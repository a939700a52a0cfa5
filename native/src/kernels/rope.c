/*
 * rope.c — rotary position embedding, in place, in both pairings:
 * NEOX (rotate_half: value i with value i + rot_dim/2, as Hugging Face's
 * Llama/Gemma/Phi/StableLM) and GPT-J (value 2i with 2i+1). Angles are
 * computed in double so long positions lose no precision. Per-frequency
 * factors (llama.cpp's rope_freqs) divide the angles: Llama-3 scaling.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>

void plm_rope_angles(float *cs, int64_t pos, int64_t half, int64_t rot_dim, float theta, float freq_scale,
                     const float *freq_factors) {
    const double p = (double)pos * (double)freq_scale;
    for (int64_t i = 0; i < half; i++) {
        double ang = p * pow((double)theta, -2.0 * (double)i / (double)rot_dim);
        if (freq_factors) ang /= (double)freq_factors[i];
        cs[2 * i] = (float)cos(ang);
        cs[2 * i + 1] = (float)sin(ang);
    }
}

int plm_rope(float *x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t rot_dim,
             const int32_t *positions, float theta, float freq_scale, const float *freq_factors, int mode) {
    PLM_CHECK(n_tokens >= 0 && n_heads >= 0 && head_dim >= 0, PLM_ERR_INVALID_ARG);
    PLM_CHECK(rot_dim >= 0 && rot_dim <= head_dim && rot_dim % 2 == 0, PLM_ERR_SHAPE);
    PLM_CHECK(mode == PLM_ROPE_NEOX || mode == PLM_ROPE_GPTJ, PLM_ERR_INVALID_ARG);
    PLM_CHECK(theta > 0.0f, PLM_ERR_INVALID_ARG);
    if (n_tokens == 0 || n_heads == 0 || rot_dim == 0) return PLM_OK;
    PLM_CHECK(x != NULL && positions != NULL, PLM_ERR_INVALID_ARG);

    const int64_t half = rot_dim / 2;
    float *cs = (float *)malloc((size_t)half * 2 * sizeof(float));
    PLM_CHECK(cs != NULL, PLM_ERR_NOMEM);
    for (int64_t t = 0; t < n_tokens; t++) {
        plm_rope_angles(cs, positions[t], half, rot_dim, theta, freq_scale, freq_factors);
        for (int64_t h = 0; h < n_heads; h++) plm_rope_head(x + (t * n_heads + h) * head_dim, cs, half, mode);
    }
    free(cs);
    return PLM_OK;
}

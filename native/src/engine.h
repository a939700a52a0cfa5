/*
 * engine.h — what model.c, forward.c and session.c share: the bound model
 * (a matrix or vector per canonical tensor of forward.py), the session's
 * buffers and the forward pass.
 */
#ifndef PLM_ENGINE_H
#define PLM_ENGINE_H

#include "plm_internal.h"

/* A weight matrix: rows of cols values of `type`, row_bytes apart. data NULL: absent. */
typedef struct {
    int type;
    const uint8_t *data;
    int64_t rows, cols, row_bytes;
} plm_mat;

typedef struct {
    const float *attn_norm_w, *attn_norm_b, *ffn_norm_w, *ffn_norm_b, *post_attn_norm_w, *post_ffw_norm_w;
    plm_mat wq, wk, wv, wo, wgate, wup, wdown;
    const float *bq, *bk, *bv, *bo, *bgate, *bup, *bdown;
} plm_layer;

struct plm_model {
    plm_model_config cfg;
    char *what;                 /* the file (or source) named in messages */
    plm_gguf *gguf;             /* owned when opened from a file */
    plm_mat tok_embd, output;   /* output.data NULL: tied to tok_embd */
    const float *pos_embd;      /* [max_position_embeddings][hidden] or NULL */
    const float *output_norm_w, *output_norm_b, *output_b;
    plm_layer *layers;
    float *alibi;               /* per-head slopes times query_scale, or NULL */
    void **owned;               /* F32 copies of F16 vectors */
    int64_t n_owned;
    uint64_t weight_bytes, owned_bytes;
};

/* LoRA (lora.c): per layer and target, A [r][k] and B [n][r] (scale folded in), F32; a NULL: not adapted */
enum { PLM_LQ = 0, PLM_LK, PLM_LV, PLM_LO, PLM_LGATE, PLM_LUP, PLM_LDOWN, PLM_LORA_TARGETS };
typedef struct {
    const float *a, *b;
    int64_t r, k, n;
} plm_lora_mat;

struct plm_lora {
    int refs;                   /* the creator's and each session's */
    char *what;
    int64_t n_layers, max_rank, n_pairs;
    plm_lora_mat *mats;         /* [n_layers][PLM_LORA_TARGETS] */
    float **owned;
    int64_t n_owned;
    uint64_t bytes;
};
plm_lora *plm_lora_retain(plm_lora *a);

struct plm_session {
    plm_model *m;
    plm_session_params p;
    int64_t kv_dim, kv_row_bytes;   /* one position of one layer */
    uint8_t *k_cache, *v_cache;     /* [n_layers][max_tokens][kv_dim] of p.kv_type */
    int32_t *tokens;                /* ids in the cache */
    int64_t n_past;
    int32_t *pending;               /* ids to run next */
    int64_t n_pending;
    plm_rng rng;
    float *logits;                  /* last position's logits */
    int has_logits;
    uint8_t *scratch;               /* forward pass buffers, for n_batch rows and the pool's threads */
    size_t scratch_bytes;
    int scratch_threads;
    volatile int cancel;
    plm_traffic traffic;
    uint64_t bytes;                 /* what create allocated */
};

/* Runs ids (n <= p.n_batch) at positions s->n_past.., appends them to
 * s->tokens, and writes logits: of the last position to `logits`
 * (vocab_size floats) when want == 1, of every position (n x vocab_size)
 * when want == 2, none when 0. */
int plm_forward(plm_session *s, const int32_t *ids, int64_t n, float *logits, int want);
/* scratch bytes the forward pass needs for this many threads */
size_t plm_forward_scratch_bytes(const plm_model *m, int64_t n_batch, int64_t max_tokens, int n_threads,
                                 int64_t lora_rank);

/* malloc'd printf, for error messages; NULL when out is NULL */
int plm_errorf(char **out, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* PLM_ENGINE_H */

/*
 * model.h — what the model-file layer's files share: the bound model (a
 * matrix or vector per canonical tensor of forward.py, pointing into the
 * mapped GGUF file) and LoRA adapters bound to it. GGUF, config and .task
 * readers are declared in pocketlm.h.
 */
#ifndef PLM_MODEL_H
#define PLM_MODEL_H

#include "kernels/kernels.h"
#include "util/util.h"

/* A weight matrix: rows of cols values of `type`, row_bytes apart. data NULL: absent. */
typedef struct {
    int type;
    const uint8_t *data;
    int64_t rows, cols, row_bytes;
} plm_mat;

typedef struct {
    const float *attn_norm_w, *attn_norm_b, *ffn_norm_w, *ffn_norm_b, *post_attn_norm_w, *post_ffw_norm_w;
    const float *q_norm_w, *k_norm_w; /* per-head q/k RMSNorm weights (head_dim values), or NULL */
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
    struct plm_lrt_model *lrt;  /* a TFLite graph that runs this model (litert/litert.h), or NULL */
    void (*lrt_free)(struct plm_lrt_model *lrt); /* how plm_model_free releases it: that layer sits above this one */
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

/* 1 when the file ends in a zip end-of-central-directory record (a .task bundle, whatever its first bytes) */
int plm_task_probe(const char *path);

#endif /* PLM_MODEL_H */

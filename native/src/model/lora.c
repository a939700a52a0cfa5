/*
 * lora.c — LoRA adapters for the forward pass: python/pocketlm/model/lora.py's
 * LoraAdapter in C. An adapter is, per layer and per adapted projection
 * (q, k, v, output, gate, up, down), an F32 pair A [r][k] and B [n][r] with
 * the scale folded into B; engine/forward.c adds B (A x) to the projection's
 * output (unmerged: the base weights stay as they are, shared by sessions
 * with other adapters or none).
 *
 * Sources: a GGUF LoRA adapter as llama.cpp's convert_lora_to_gguf.py and
 * pocketlm's converter write it (plm_lora_open), or tensors the caller
 * holds (plm_lora_create; Python reads PEFT adapters and hands them over).
 * Both are copied into F32 here: adapters are small next to the model, and
 * the pairs need F32 anyway. The scale is llama.cpp's: alpha / rank of
 * each pair, or 1 when alpha is 0.
 */
#include "model/model.h"

#include <stdlib.h>

static const char *const TARGET_NAMES[PLM_LORA_TARGETS] = {"attn_q",      "attn_k",   "attn_v", "attn_output",
                                                           "ffn_gate",    "ffn_up",   "ffn_down"};

static const plm_mat *target_mat(const plm_layer *L, int t) {
    switch (t) {
    case PLM_LQ: return &L->wq;
    case PLM_LK: return &L->wk;
    case PLM_LV: return &L->wv;
    case PLM_LO: return &L->wo;
    case PLM_LGATE: return &L->wgate;
    case PLM_LUP: return &L->wup;
    default: return &L->wdown;
    }
}

static const char *gguf_arch(const char *arch) {
    if (strcmp(arch, "mistral") == 0) return "llama";
    if (strcmp(arch, "phi") == 0) return "phi2";
    return arch;
}

void plm_lora_free(plm_lora *a) {
    if (!a) return;
    if (__atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    for (int64_t i = 0; i < a->n_owned; i++) free(a->owned[i]);
    free(a->owned);
    free(a->mats);
    free(a->what);
    free(a);
}

plm_lora *plm_lora_retain(plm_lora *a) {
    if (a) __atomic_add_fetch(&a->refs, 1, __ATOMIC_ACQ_REL);
    return a;
}

int64_t plm_lora_rank(const plm_lora *a) { return a ? a->max_rank : 0; }
uint64_t plm_lora_bytes(const plm_lora *a) { return a ? a->bytes : 0; }
int64_t plm_lora_n_weights(const plm_lora *a) { return a ? a->n_pairs : 0; }

static float *own(plm_lora *a, size_t n_floats) {
    float *p = (float *)malloc(n_floats ? n_floats * sizeof(float) : 1);
    if (!p) return NULL;
    a->owned[a->n_owned++] = p;
    a->bytes += n_floats * sizeof(float);
    return p;
}

/* rows of a tensor as F32: n rows of k values of `type` */
static int rows_to_f32(const plm_tensor_ref *t, int64_t rows, int64_t k, float *out) {
    const plm_type_traits *tr = plm_traits(t->type);
    if (!tr || !tr->to_float || k % tr->block_size) return 0;
    const uint64_t row_bytes = (uint64_t)(k / tr->block_size) * (uint64_t)tr->block_bytes;
    if (row_bytes * (uint64_t)rows > t->nbytes) return 0;
    for (int64_t i = 0; i < rows; i++) tr->to_float((const uint8_t *)t->data + i * row_bytes, out + i * k, k);
    return 1;
}

typedef struct {
    const plm_tensor_ref *a, *b;
    int64_t layer;
    int target; /* PLM_L*, or -1 for a fused attn_qkv */
} half_pair;

/* "blk.N.NAME.weight.lora_a" -> layer, target, which half; 0 when the name is not of that form */
static int parse_name(const char *name, int64_t *layer, char *kind, size_t kind_len, int *is_b) {
    const size_t n = strlen(name);
    if (n < 8 || strncmp(name, "blk.", 4) != 0) return 0;
    if (strcmp(name + n - 7, ".lora_a") == 0) *is_b = 0;
    else if (strcmp(name + n - 7, ".lora_b") == 0) *is_b = 1;
    else return 0;
    const char *p = name + 4;
    int64_t l = 0;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') {
        l = l * 10 + (*p - '0');
        if (l > 1000000) return 0;
        p++;
    }
    if (*p++ != '.') return 0;
    const char *dot = strstr(p, ".weight.lora_");
    if (!dot || dot + 14 != name + n || (size_t)(dot - p) >= kind_len) return 0;
    memcpy(kind, p, (size_t)(dot - p));
    kind[dot - p] = 0;
    *layer = l;
    return 1;
}

/* the pair (a, b) bound as target t of layer l; b rows [row0, row0 + n) of a fused tensor */
static int bind(plm_lora *ad, const plm_model *m, int64_t l, int t, const plm_tensor_ref *a, const plm_tensor_ref *b,
                int64_t row0, float scale, float *shared_a, float **a_out, char **error) {
    const plm_mat *w = target_mat(&m->layers[l], t);
    const int64_t k = a->dims[0], r = a->dims[1];
    if (!w->data)
        return plm_errorf(error, PLM_ERR_SHAPE, "%s: blk.%lld.%s.weight is not a weight of the base model: the adapter "
                          "was made for another base model", ad->what, (long long)l, TARGET_NAMES[t]);
    const int64_t n = w->rows;
    if (k != w->cols || b->dims[1] < row0 + n)
        return plm_errorf(error, PLM_ERR_SHAPE,
                          "%s: blk.%lld.%s.weight.lora_a [%lld x %lld] / .lora_b [%lld x %lld] does not fit the base "
                          "model's blk.%lld.%s.weight of shape (%lld, %lld) ([out, in]): the adapter was made for "
                          "another base model",
                          ad->what, (long long)l, TARGET_NAMES[t], (long long)r, (long long)k, (long long)b->dims[1],
                          (long long)b->dims[0], (long long)l, TARGET_NAMES[t], (long long)n, (long long)w->cols);
    float *A = shared_a;
    if (!A) {
        A = own(ad, (size_t)(r * k));
        if (!A) return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", ad->what);
        if (!rows_to_f32(a, r, k, A))
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: %s: type %d cannot be read as F32 rows of %lld", ad->what,
                              a->name, a->type, (long long)k);
    }
    float *B = own(ad, (size_t)(b->dims[1] > 0 ? n * r : 1));
    float *Bfull = (float *)malloc((size_t)(b->dims[1] * r) * sizeof(float) + 1);
    if (!B || !Bfull) {
        free(Bfull);
        return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", ad->what);
    }
    if (!rows_to_f32(b, b->dims[1], r, Bfull)) {
        free(Bfull);
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: %s: type %d cannot be read as F32 rows of %lld", ad->what,
                          b->name, b->type, (long long)r);
    }
    for (int64_t i = 0; i < n * r; i++) B[i] = Bfull[row0 * r + i] * scale;
    free(Bfull);
    plm_lora_mat *lm = &ad->mats[l * PLM_LORA_TARGETS + t];
    if (lm->a) return plm_errorf(error, PLM_ERR_FORMAT, "%s: blk.%lld.%s is adapted twice", ad->what, (long long)l,
                                 TARGET_NAMES[t]);
    lm->a = A;
    lm->b = B;
    lm->r = r;
    lm->k = k;
    lm->n = n;
    if (r > ad->max_rank) ad->max_rank = r;
    ad->n_pairs++;
    if (a_out) *a_out = A;
    return PLM_OK;
}

static int build(const plm_model *m, const plm_tensor_ref *t, int64_t n, double alpha, const char *what,
                 plm_lora **out, char **error) {
    const plm_model_config *c = &m->cfg;
    plm_lora *ad = (plm_lora *)calloc(1, sizeof(plm_lora));
    half_pair *pairs = (half_pair *)calloc((size_t)(n > 0 ? n : 1), sizeof(half_pair));
    if (ad) {
        ad->refs = 1;
        ad->what = strdup(what);
        ad->n_layers = c->n_layers;
        ad->mats = (plm_lora_mat *)calloc((size_t)c->n_layers * PLM_LORA_TARGETS, sizeof(plm_lora_mat));
        ad->owned = (float **)calloc((size_t)(2 * n + 1), sizeof(float *));
    }
    if (!ad || !pairs || !ad->what || !ad->mats || !ad->owned) {
        plm_lora_free(ad);
        free(pairs);
        return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", what);
    }
    int64_t np = 0;
    int st = PLM_OK;
    for (int64_t i = 0; i < n && !st; i++) {
        int64_t layer;
        char kind[64];
        int is_b, target = -2;
        if (!parse_name(t[i].name, &layer, kind, sizeof kind, &is_b)) {
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: tensor %s is not a LoRA weight (blk.N.NAME.weight.lora_a / .lora_b)",
                            what, t[i].name);
            break;
        }
        for (int k = 0; k < PLM_LORA_TARGETS; k++)
            if (strcmp(kind, TARGET_NAMES[k]) == 0) target = k;
        if (strcmp(kind, "attn_qkv") == 0) target = -1;
        if (target == -2) {
            st = plm_errorf(error, PLM_ERR_FORMAT,
                            "%s: target %s is not supported: pocketlm applies LoRA to the attention and MLP projections "
                            "(attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down)", what, t[i].name);
            break;
        }
        if (layer >= c->n_layers) {
            st = plm_errorf(error, PLM_ERR_SHAPE, "%s: %s is for layer %lld, the base model has %lld layers: the adapter "
                            "was made for another base model", what, t[i].name, (long long)layer, (long long)c->n_layers);
            break;
        }
        if (t[i].n_dims != 2) {
            st = plm_errorf(error, PLM_ERR_SHAPE, "%s: %s has %d dims, a LoRA weight has 2", what, t[i].name, t[i].n_dims);
            break;
        }
        int64_t j = 0;
        while (j < np && !(pairs[j].layer == layer && pairs[j].target == target)) j++;
        if (j == np) {
            pairs[np].layer = layer;
            pairs[np].target = target;
            np++;
        }
        const plm_tensor_ref **slot = is_b ? &pairs[j].b : &pairs[j].a;
        if (*slot) {
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: tensor %s appears twice", what, t[i].name);
            break;
        }
        *slot = &t[i];
    }
    for (int64_t j = 0; j < np && !st; j++) {
        const half_pair *p = &pairs[j];
        if (!p->a || !p->b) {
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: %s has no lora_%c partner", what, (p->a ? p->a : p->b)->name,
                            p->a ? 'b' : 'a');
            break;
        }
        if (p->a->dims[1] != p->b->dims[0] || p->a->dims[1] < 1) {
            st = plm_errorf(error, PLM_ERR_SHAPE, "%s: %s [%lld x %lld] and %s [%lld x %lld] do not share a rank", what,
                            p->a->name, (long long)p->a->dims[1], (long long)p->a->dims[0], p->b->name,
                            (long long)p->b->dims[1], (long long)p->b->dims[0]);
            break;
        }
        const float scale = alpha != 0.0 ? (float)(alpha / (double)p->a->dims[1]) : 1.0f;
        const plm_layer *L = &m->layers[p->layer];
        if (p->target == PLM_LUP && c->gated_mlp && L->wgate.rows == L->wup.rows &&
            p->b->dims[1] == 2 * L->wup.rows) {
            /* llama.cpp's fused ffn_up (Phi-3): B's rows are gate; up, A is shared */
            float *A = NULL;
            st = bind(ad, m, p->layer, PLM_LGATE, p->a, p->b, 0, scale, NULL, &A, error);
            if (!st) st = bind(ad, m, p->layer, PLM_LUP, p->a, p->b, L->wup.rows, scale, A, NULL, error);
        } else if (p->target >= 0) {
            if (p->b->dims[1] != target_mat(&m->layers[p->layer], p->target)->rows) {
                const plm_mat *w = target_mat(&m->layers[p->layer], p->target);
                st = plm_errorf(error, PLM_ERR_SHAPE,
                                "%s: %s [%lld x %lld] / %s [%lld x %lld] does not fit the base model's "
                                "blk.%lld.%s.weight of shape (%lld, %lld) ([out, in]): the adapter was made for another "
                                "base model", what, p->a->name, (long long)p->a->dims[1], (long long)p->a->dims[0],
                                p->b->name, (long long)p->b->dims[1], (long long)p->b->dims[0], (long long)p->layer,
                                TARGET_NAMES[p->target], (long long)w->rows, (long long)w->cols);
                break;
            }
            st = bind(ad, m, p->layer, p->target, p->a, p->b, 0, scale, NULL, NULL, error);
        } else { /* llama.cpp's fused attn_qkv: B's rows are q; k; v, A is shared */
            const int64_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
            if (p->b->dims[1] != qd + 2 * kvd) {
                st = plm_errorf(error, PLM_ERR_SHAPE,
                                "%s: %s has %lld rows, the base model's q, k and v have %lld together: the adapter was "
                                "made for another base model", what, p->b->name, (long long)p->b->dims[1],
                                (long long)(qd + 2 * kvd));
                break;
            }
            float *A = NULL;
            st = bind(ad, m, p->layer, PLM_LQ, p->a, p->b, 0, scale, NULL, &A, error);
            if (!st) st = bind(ad, m, p->layer, PLM_LK, p->a, p->b, qd, scale, A, NULL, error);
            if (!st) st = bind(ad, m, p->layer, PLM_LV, p->a, p->b, qd + kvd, scale, A, NULL, error);
        }
    }
    free(pairs);
    if (!st && ad->n_pairs == 0) st = plm_errorf(error, PLM_ERR_FORMAT, "%s: the adapter holds no LoRA weights", what);
    if (st) {
        plm_lora_free(ad);
        return st;
    }
    *out = ad;
    return PLM_OK;
}

int plm_lora_create(const plm_model *m, const plm_tensor_ref *tensors, int64_t n, double alpha, const char *what,
                    plm_lora **out, char **error) {
    if (error) *error = NULL;
    if (!m || !out || n < 0 || (n > 0 && !tensors))
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_lora_create: NULL argument");
    *out = NULL;
    for (int64_t i = 0; i < n; i++)
        if (!tensors[i].name || !tensors[i].data || tensors[i].n_dims < 1 || tensors[i].n_dims > 4)
            return plm_errorf(error, PLM_ERR_INVALID_ARG, "%s: tensor %lld has no name, data or dims",
                              what ? what : "adapter", (long long)i);
    return build(m, tensors, n, alpha, what ? what : "adapter", out, error);
}

static int key_str(const plm_gguf *g, const char *key, char *buf, size_t len) {
    const int64_t i = plm_gguf_find_key(g, key);
    const char *s;
    uint64_t n;
    if (i < 0 || plm_gguf_get_str(g, i, &s, &n) != PLM_OK || n >= len) return 0;
    memcpy(buf, s, (size_t)n);
    buf[n] = 0;
    return 1;
}

int plm_lora_open(const plm_model *m, const char *path, uint64_t offset, uint64_t length, plm_lora **out,
                  char **error) {
    if (error) *error = NULL;
    if (!m || !path || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_lora_open: NULL argument");
    *out = NULL;
    plm_gguf *g = NULL;
    int st = plm_gguf_open(path, offset, length, &g, error);
    if (st) return st;
    char type[64], kind[64], arch[64];
    if (!key_str(g, "general.type", type, sizeof type) || strcmp(type, "adapter") != 0) {
        const int model = plm_gguf_find_key(g, "general.type") < 0 || strcmp(type, "model") == 0;
        st = plm_errorf(error, PLM_ERR_FORMAT, "%s: general.type is not 'adapter': this GGUF file is not a LoRA adapter%s",
                        path, model ? " (it is a model file)" : "");
    } else if (!key_str(g, "adapter.type", kind, sizeof kind) || strcmp(kind, "lora") != 0) {
        st = plm_errorf(error, PLM_ERR_FORMAT, "%s: adapter.type is not 'lora'; pocketlm runs LoRA adapters", path);
    } else if (!key_str(g, "general.architecture", arch, sizeof arch) || strcmp(arch, gguf_arch(m->cfg.arch)) != 0) {
        st = plm_errorf(error, PLM_ERR_FORMAT, "%s: the adapter is for a '%s' model, the base model is '%s'", path,
                        plm_gguf_find_key(g, "general.architecture") < 0 ? "(no general.architecture)" : arch,
                        gguf_arch(m->cfg.arch));
    }
    double alpha = 0.0;
    const int64_t ai = plm_gguf_find_key(g, "adapter.lora.alpha");
    if (!st && ai >= 0 && (plm_gguf_get_float(g, ai, &alpha) != PLM_OK || !(alpha >= 0.0) || alpha > 1e30))
        st = plm_errorf(error, PLM_ERR_FORMAT, "%s: adapter.lora.alpha must be a number >= 0", path);
    const int64_t n = plm_gguf_n_tensors(g);
    plm_tensor_ref *refs = st ? NULL : (plm_tensor_ref *)calloc((size_t)(n > 0 ? n : 1), sizeof(plm_tensor_ref));
    if (!st && !refs) st = plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t i = 0; !st && i < n; i++) {
        plm_tensor_ref *r = &refs[i];
        plm_gguf_tensor_info(g, i, &r->name, &r->type, &r->n_dims, r->dims, &r->data, &r->nbytes);
    }
    if (!st) st = build(m, refs, n, alpha, path, out, error);
    free(refs);
    plm_gguf_close(g); /* everything was copied */
    return st;
}

/*
 * model.c — a model: its config and its tensors bound to forward.py's
 * canonical names, from a mapped GGUF file or from the caller's memory.
 *
 * The checks are python/pocketlm/model/gguf_file.py's read_gguf, in the
 * same order and with the same kinds of messages: llama.cpp's fused
 * attn_qkv and Phi-3's fused ffn_up (gate rows, then up rows) are split into
 * row views and its Falcon-40B attn_norm_2 renamed
 * (from_llama_cpp_layout), every tensor with a shape the config implies is
 * checked against it (checkpoint.expected_shape), and every tensor the
 * architecture needs must be there (checkpoint.required_tensors).
 */
#include "model/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const char *type_name(int type) {
    const plm_type_traits *t = plm_traits(type);
    return t ? t->name : "an unsupported type";
}

/* ---- binding ---------------------------------------------------------------- */

typedef struct {
    const plm_tensor_ref *refs;
    int64_t n;
    int qkv_fused; /* attn_qkv present */
    int norm2;     /* attn_norm_2 present: Falcon-40B-style layers */
} plm_binder;

static const plm_tensor_ref *find(const plm_binder *b, const char *name) {
    for (int64_t i = 0; i < b->n; i++)
        if (strcmp(b->refs[i].name, name) == 0) return &b->refs[i];
    return NULL;
}

static int64_t rows_of(const plm_tensor_ref *r) { return r->n_dims >= 2 ? r->dims[1] : 1; }

static int keep(plm_model *m, void *p, uint64_t bytes) {
    void **o = (void **)realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof(void *));
    if (!o) return PLM_ERR_NOMEM;
    m->owned = o;
    m->owned[m->n_owned++] = p;
    m->owned_bytes += bytes;
    return PLM_OK;
}

/* A vector of `want` floats (or a table of want = rows * cols): F32 in place, F16 converted. */
static int bind_floats(plm_model *m, const plm_tensor_ref *r, int64_t offset, int64_t want, const float **out,
                       char **error) {
    if (r->type != PLM_TYPE_F32 && r->type != PLM_TYPE_F16)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: tensor %s is %s; vectors are read as F32 or F16", m->what,
                          r->name, type_name(r->type));
    const int64_t es = r->type == PLM_TYPE_F32 ? 4 : 2;
    const uint8_t *src = (const uint8_t *)r->data + offset * es;
    if ((uint64_t)((offset + want) * es) > r->nbytes)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: tensor %s holds %llu bytes, fewer than its shape needs",
                          m->what, r->name, (unsigned long long)r->nbytes);
    m->weight_bytes += (uint64_t)(want * es);
    if (r->type == PLM_TYPE_F32 && ((uintptr_t)src % 4) == 0) {
        *out = (const float *)src;
        return PLM_OK;
    }
    float *f = (float *)malloc((size_t)(want > 0 ? want : 1) * sizeof(float));
    if (!f || keep(m, f, (uint64_t)want * 4) != PLM_OK) {
        free(f);
        return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory converting %s", m->what, r->name);
    }
    if (r->type == PLM_TYPE_F32) memcpy(f, src, (size_t)want * 4);
    else
        for (int64_t i = 0; i < want; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            f[i] = plm_h2f(h);
        }
    *out = f;
    return PLM_OK;
}

static int shape_error(plm_model *m, const char *name, const plm_tensor_ref *r, int64_t rows, int64_t cols,
                       char **error) {
    char have[96];
    if (r->n_dims == 1) snprintf(have, sizeof have, "(%lld,)", (long long)r->dims[0]);
    else snprintf(have, sizeof have, "(%lld, %lld)", (long long)rows_of(r), (long long)r->dims[0]);
    if (rows < 0)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: tensor %s has shape %s, but the file's config implies (%lld,)",
                          m->what, name, have, (long long)cols);
    return plm_errorf(error, PLM_ERR_FORMAT, "%s: tensor %s has shape %s, but the file's config implies (%lld, %lld)",
                      m->what, name, have, (long long)rows, (long long)cols);
}

/* A matrix [rows][cols], or the row slice [row0, row0 + rows) of a fused one (total_rows rows). */
static int bind_mat(plm_model *m, const plm_tensor_ref *r, const char *name, int64_t row0, int64_t rows,
                    int64_t total_rows, int64_t cols, plm_mat *out, char **error) {
    if (r->n_dims != 2 || r->dims[0] != cols || rows_of(r) != total_rows) {
        if (r->n_dims == 2 && total_rows != rows && r->dims[0] == cols)
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: tensor %s has %lld rows, but the config implies %lld (q %lld + k %lld + v %lld)",
                              m->what, r->name, (long long)rows_of(r), (long long)total_rows,
                              (long long)(m->cfg.n_heads * m->cfg.head_dim),
                              (long long)(m->cfg.n_kv_heads * m->cfg.head_dim),
                              (long long)(m->cfg.n_kv_heads * m->cfg.head_dim));
        return shape_error(m, name, r, rows, cols, error);
    }
    const int64_t rb = plm_row_bytes(r->type, cols);
    if (rb < 0 || plm_traits(r->type) == NULL)
        return plm_errorf(error, PLM_ERR_TYPE, "%s: tensor %s is %s; pocketlm runs F32, F16, Q8_0, Q4_0 and Q4_1 "
                          "weights", m->what, r->name, type_name(r->type));
    if ((uint64_t)(total_rows * rb) > r->nbytes)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: tensor %s holds %llu bytes, fewer than its shape needs",
                          m->what, r->name, (unsigned long long)r->nbytes);
    out->type = r->type;
    out->data = (const uint8_t *)r->data + row0 * rb;
    /* A file written with general.alignment 1 or 2 (or a GGUF at an odd offset
     * inside a .task) can place a tensor where its F32 values or F16 block
     * scales are not naturally aligned; the kernels load those as typed values,
     * so such a matrix is copied once into aligned memory instead of mapped. */
    const uintptr_t need = r->type == PLM_TYPE_F32 ? 4 : 2;
    if ((uintptr_t)out->data % need) {
        const size_t bytes = (size_t)(rows * rb);
        void *copy = malloc(bytes > 0 ? bytes : 1); /* 16-byte aligned */
        if (!copy || keep(m, copy, bytes) != PLM_OK) {
            free(copy);
            return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory copying %s", m->what, r->name);
        }
        memcpy(copy, out->data, bytes);
        out->data = (const uint8_t *)copy;
    }
    out->rows = rows;
    out->cols = cols;
    out->row_bytes = rb;
    m->weight_bytes += (uint64_t)(rows * rb);
    return PLM_OK;
}

typedef enum { VEC_W, VEC_B } vec_kind;

/* blk.{layer}.{kind}.weight / .bias, looked up under llama.cpp's names too */
static int layer_name(char *buf, size_t cap, int64_t layer, const char *kind, const char *wb) {
    return snprintf(buf, cap, "blk.%lld.%s.%s", (long long)layer, kind, wb) < (int)cap;
}

/* Binds the matrix `kind` of a layer (q/k/v from a fused attn_qkv when the file has one; a gated MLP's
 * gate and up from one ffn_up of 2 x rows rows, gate first, when the file has no ffn_gate: Phi-3's). */
static int layer_mat(plm_model *m, const plm_binder *b, int64_t l, const char *kind, int64_t rows, int64_t cols,
                     plm_mat *out, const float **bias, int need_bias, char **error) {
    char name[96], fused[96];
    layer_name(name, sizeof name, l, kind, "weight");
    const plm_tensor_ref *r = find(b, name);
    const int64_t q = m->cfg.n_heads * m->cfg.head_dim, kv = m->cfg.n_kv_heads * m->cfg.head_dim;
    int64_t row0 = 0, total = rows;
    const char which = kind[5];
    const int is_qkv = strncmp(kind, "attn_", 5) == 0 && kind[6] == '\0' && (which == 'q' || which == 'k' || which == 'v');
    const int is_gate = strcmp(kind, "ffn_gate") == 0, is_up = strcmp(kind, "ffn_up") == 0;
    const char *fused_kind = is_qkv ? "attn_qkv" : "ffn_up";
    if (r == NULL && is_qkv) {
        layer_name(fused, sizeof fused, l, "attn_qkv", "weight");
        r = find(b, fused);
        if (r) {
            row0 = which == 'q' ? 0 : which == 'k' ? q : q + kv;
            total = q + 2 * kv;
        }
    } else if (m->cfg.gated_mlp && (is_gate || is_up)) {
        layer_name(fused, sizeof fused, l, "ffn_gate", "weight");
        const int has_gate = find(b, fused) != NULL;
        layer_name(fused, sizeof fused, l, "ffn_up", "weight");
        const plm_tensor_ref *up = find(b, fused);
        if (!has_gate && up && up->n_dims == 2 && rows_of(up) == 2 * rows) {
            r = up;
            row0 = is_gate ? 0 : rows;
            total = 2 * rows;
        }
    }
    if (r == NULL) {
        out->data = NULL;
        return PLM_OK; /* the caller reports what is missing */
    }
    int st = bind_mat(m, r, name, row0, rows, total, cols, out, error);
    if (st) return st;
    if (!bias) return PLM_OK;
    layer_name(name, sizeof name, l, kind, "bias");
    const plm_tensor_ref *rb = find(b, name);
    int64_t off = 0, want_total = rows;
    if ((rb == NULL || is_up) && total != rows) {
        layer_name(fused, sizeof fused, l, fused_kind, "bias");
        rb = find(b, fused);
        off = row0;
        want_total = total;
    }
    *bias = NULL;
    if (rb == NULL) return PLM_OK;
    if (rb->n_dims != 1 || rb->dims[0] != want_total) return shape_error(m, name, rb, -1, want_total, error);
    (void)need_bias;
    return bind_floats(m, rb, off, rows, bias, error);
}

/* A norm vector of the layer (NULL when absent); kind as forward.py names it. */
static int layer_vec(plm_model *m, const plm_binder *b, int64_t l, const char *kind, const char *wb, const float **out,
                     char **error) {
    char name[96];
    const char *file_kind = kind;
    /* Falcon-40B-style files: attn_norm_2 feeds attention, attn_norm the MLP */
    if (b->norm2 && strcmp(kind, "attn_norm") == 0) file_kind = "attn_norm_2";
    else if (b->norm2 && strcmp(kind, "ffn_norm") == 0) file_kind = "attn_norm";
    layer_name(name, sizeof name, l, file_kind, wb);
    const plm_tensor_ref *r = find(b, name);
    *out = NULL;
    if (r == NULL) return PLM_OK;
    char canon[96];
    layer_name(canon, sizeof canon, l, kind, wb);
    if (r->n_dims != 1 || r->dims[0] != m->cfg.hidden_size) return shape_error(m, canon, r, -1, m->cfg.hidden_size, error);
    return bind_floats(m, r, 0, m->cfg.hidden_size, out, error);
}

/* A per-head vector of the layer (head_dim values), NULL when absent */
static int head_vec(plm_model *m, const plm_binder *b, int64_t l, const char *kind, const float **out, char **error) {
    char name[96];
    layer_name(name, sizeof name, l, kind, "weight");
    const plm_tensor_ref *r = find(b, name);
    *out = NULL;
    if (r == NULL) return PLM_OK;
    if (r->n_dims != 1 || r->dims[0] != m->cfg.head_dim) return shape_error(m, name, r, -1, m->cfg.head_dim, error);
    return bind_floats(m, r, 0, m->cfg.head_dim, out, error);
}

static int missing(plm_model *m, char **error, const char *name) {
    return plm_errorf(error, PLM_ERR_FORMAT, "%s: the file lacks tensors a %s model needs: %s", m->what, m->cfg.arch,
                      name);
}

static void alibi_slopes(plm_model *m) {
    const int64_t n = m->cfg.n_heads;
    const int64_t p2 = (int64_t)1 << (int64_t)floor(log2((double)n));
    const double base = pow(2.0, -pow(2.0, -(log2((double)p2) - 3.0)));
    for (int64_t i = 0; i < p2; i++) m->alibi[i] = (float)pow(base, (double)(i + 1));
    if (p2 != n) {
        const double extra = pow(2.0, -pow(2.0, -(log2((double)(2 * p2)) - 3.0)));
        for (int64_t i = 0; i < n - p2; i++) m->alibi[p2 + i] = (float)pow(extra, (double)(2 * i + 1));
    }
    for (int64_t i = 0; i < n; i++) m->alibi[i] *= (float)m->cfg.query_scale;
}

static int bind_all(plm_model *m, const plm_binder *b, char **error) {
    const plm_model_config *c = &m->cfg;
    const int64_t h = c->hidden_size, f = c->intermediate_size, q = c->n_heads * c->head_dim,
                  kv = c->n_kv_heads * c->head_dim, V = c->vocab_size;
    const int layer_norm = c->norm == PLM_NORM_LAYER;
    int st;
    const plm_tensor_ref *r;

    if ((r = find(b, "token_embd.weight")) == NULL) return missing(m, error, "token_embd.weight");
    if ((st = bind_mat(m, r, "token_embd.weight", 0, V, V, h, &m->tok_embd, error))) return st;
    m->output.data = NULL;
    if ((r = find(b, "output.weight")) != NULL) {
        const uint64_t before = m->weight_bytes;
        if ((st = bind_mat(m, r, "output.weight", 0, V, V, h, &m->output, error))) return st;
        if (c->tie_embeddings) { /* checked, but forward.py reads the embedding table when tied */
            m->output.data = NULL;
            m->weight_bytes = before;
        }
    } else if (!c->tie_embeddings) {
        return missing(m, error, "output.weight");
    }
    m->output_b = NULL;
    if ((r = find(b, "output.bias")) != NULL && m->output.data) {
        if (r->n_dims != 1 || r->dims[0] != V) return shape_error(m, "output.bias", r, -1, V, error);
        if ((st = bind_floats(m, r, 0, V, &m->output_b, error))) return st;
    }
    if (c->output_bias && !c->tie_embeddings && !m->output_b) return missing(m, error, "output.bias");
    if ((r = find(b, "output_norm.weight")) == NULL) return missing(m, error, "output_norm.weight");
    if (r->n_dims != 1 || r->dims[0] != h) return shape_error(m, "output_norm.weight", r, -1, h, error);
    if ((st = bind_floats(m, r, 0, h, &m->output_norm_w, error))) return st;
    m->output_norm_b = NULL;
    if ((r = find(b, "output_norm.bias")) != NULL) {
        if (r->n_dims != 1 || r->dims[0] != h) return shape_error(m, "output_norm.bias", r, -1, h, error);
        if ((st = bind_floats(m, r, 0, h, &m->output_norm_b, error))) return st;
    }
    if (layer_norm && !m->output_norm_b) return missing(m, error, "output_norm.bias");
    m->pos_embd = NULL;
    if (c->positions == PLM_POS_LEARNED) {
        if ((r = find(b, "position_embd.weight")) == NULL) return missing(m, error, "position_embd.weight");
        if (r->n_dims != 2 || r->dims[0] != h || rows_of(r) != c->max_position_embeddings)
            return shape_error(m, "position_embd.weight", r, c->max_position_embeddings, h, error);
        if ((st = bind_floats(m, r, 0, c->max_position_embeddings * h, &m->pos_embd, error))) return st;
    }

    m->layers = (plm_layer *)calloc((size_t)c->n_layers, sizeof(plm_layer));
    if (!m->layers) return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", m->what);
    m->owned_bytes += (uint64_t)c->n_layers * sizeof(plm_layer);
    char name[96];
#define NEED(ptr, kind, wb)                                                       \
    do {                                                                          \
        if (!(ptr)) {                                                             \
            layer_name(name, sizeof name, l, kind, wb);                           \
            return missing(m, error, name);                                       \
        }                                                                         \
    } while (0)
    for (int64_t l = 0; l < c->n_layers; l++) {
        plm_layer *L = &m->layers[l];
        if ((st = layer_vec(m, b, l, "attn_norm", "weight", &L->attn_norm_w, error))) return st;
        if ((st = layer_vec(m, b, l, "attn_norm", "bias", &L->attn_norm_b, error))) return st;
        if ((st = layer_vec(m, b, l, "ffn_norm", "weight", &L->ffn_norm_w, error))) return st;
        if ((st = layer_vec(m, b, l, "ffn_norm", "bias", &L->ffn_norm_b, error))) return st;
        if ((st = layer_vec(m, b, l, "post_attention_norm", "weight", &L->post_attn_norm_w, error))) return st;
        if ((st = layer_vec(m, b, l, "post_ffw_norm", "weight", &L->post_ffw_norm_w, error))) return st;
        NEED(L->attn_norm_w, "attn_norm", "weight");
        if (layer_norm) NEED(L->attn_norm_b, "attn_norm", "bias");
        if (!c->parallel_residual) {
            NEED(L->ffn_norm_w, "ffn_norm", "weight");
            if (layer_norm) NEED(L->ffn_norm_b, "ffn_norm", "bias");
        }
        if ((st = layer_mat(m, b, l, "attn_q", q, h, &L->wq, &L->bq, c->qkv_bias, error))) return st;
        if ((st = layer_mat(m, b, l, "attn_k", kv, h, &L->wk, &L->bk, c->qkv_bias, error))) return st;
        if ((st = layer_mat(m, b, l, "attn_v", kv, h, &L->wv, &L->bv, c->qkv_bias, error))) return st;
        if ((st = layer_mat(m, b, l, "attn_output", h, q, &L->wo, &L->bo, c->o_bias, error))) return st;
        if (c->qk_norm) {
            if ((st = head_vec(m, b, l, "attn_q_norm", &L->q_norm_w, error))) return st;
            if ((st = head_vec(m, b, l, "attn_k_norm", &L->k_norm_w, error))) return st;
            NEED(L->q_norm_w, "attn_q_norm", "weight");
            NEED(L->k_norm_w, "attn_k_norm", "weight");
        }
        NEED(L->wq.data, "attn_q", "weight");
        NEED(L->wk.data, "attn_k", "weight");
        NEED(L->wv.data, "attn_v", "weight");
        NEED(L->wo.data, "attn_output", "weight");
        if (c->gated_mlp) {
            if ((st = layer_mat(m, b, l, "ffn_gate", f, h, &L->wgate, &L->bgate, c->mlp_bias, error))) return st;
            NEED(L->wgate.data, "ffn_gate", "weight");
        }
        if ((st = layer_mat(m, b, l, "ffn_up", f, h, &L->wup, &L->bup, c->mlp_bias, error))) return st;
        if ((st = layer_mat(m, b, l, "ffn_down", h, f, &L->wdown, &L->bdown, c->mlp_bias, error))) return st;
        NEED(L->wup.data, "ffn_up", "weight");
        NEED(L->wdown.data, "ffn_down", "weight");
        if (c->qkv_bias) {
            NEED(L->bq, "attn_q", "bias");
            NEED(L->bk, "attn_k", "bias");
            NEED(L->bv, "attn_v", "bias");
        }
        if (c->o_bias) NEED(L->bo, "attn_output", "bias");
        if (c->mlp_bias) {
            if (c->gated_mlp) NEED(L->bgate, "ffn_gate", "bias");
            NEED(L->bup, "ffn_up", "bias");
            NEED(L->bdown, "ffn_down", "bias");
        }
        if (c->post_norms) {
            NEED(L->post_attn_norm_w, "post_attention_norm", "weight");
            NEED(L->post_ffw_norm_w, "post_ffw_norm", "weight");
        }
    }
#undef NEED
    if (c->positions == PLM_POS_ALIBI) {
        m->alibi = (float *)malloc((size_t)c->n_heads * sizeof(float));
        if (!m->alibi) return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", m->what);
        m->owned_bytes += (uint64_t)c->n_heads * sizeof(float);
        alibi_slopes(m);
    }
    return PLM_OK;
}

static int check_config(plm_model *m, char **error) {
    const plm_model_config *c = &m->cfg;
    if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->head_dim <= 0 || c->intermediate_size <= 0 || c->n_heads % c->n_kv_heads != 0)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: the model config's sizes do not fit together", m->what);
    if (c->n_heads / c->n_kv_heads > 256)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: %lld query heads share one KV head; pocketlm runs at most 256",
                          m->what, (long long)(c->n_heads / c->n_kv_heads));
    if (c->rot_dim < 0 || c->rot_dim > c->head_dim || c->rot_dim % 2)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: rot_dim %lld does not fit head_dim %lld", m->what,
                          (long long)c->rot_dim, (long long)c->head_dim);
    if (c->n_layers > (int64_t)sizeof c->sliding_window_layer)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: %lld layers is more than pocketlm runs", m->what,
                          (long long)c->n_layers);
    if (c->n_rope_freq_factors != 0 && c->n_rope_freq_factors != c->rot_dim / 2)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: %lld rope frequency factors for rot_dim %lld", m->what,
                          (long long)c->n_rope_freq_factors, (long long)c->rot_dim);
    if (c->n_rope_freq_factors_long != 0 && (c->n_rope_freq_factors_long != c->rot_dim / 2 || !c->n_rope_freq_factors))
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: %lld long rope frequency factors for rot_dim %lld (and %lld "
                          "short ones)", m->what, (long long)c->n_rope_freq_factors_long, (long long)c->rot_dim,
                          (long long)c->n_rope_freq_factors);
    if (c->rope_long_after < 0 || !(c->rope_attn_factor > 0) || !isfinite(c->rope_attn_factor) ||
        !(c->rope_local_theta >= 0) || !isfinite(c->rope_local_theta) ||
        (c->rope_local_theta > 0 && !(c->rope_local_freq_scale > 0 && isfinite(c->rope_local_freq_scale))))
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: rope settings out of range (rope_local_theta %g, "
                          "rope_local_freq_scale %g, rope_attn_factor %g, rope_long_after %lld)", m->what,
                          c->rope_local_theta, c->rope_local_freq_scale, c->rope_attn_factor,
                          (long long)c->rope_long_after);
    return PLM_OK;
}

static int make(const plm_model_config *cfg, const plm_tensor_ref *refs, int64_t n, const char *what, plm_gguf *g,
                plm_model **out, char **error) {
    plm_model *m = (plm_model *)calloc(1, sizeof(plm_model));
    if (!m) return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", what);
    m->cfg = *cfg;
    m->gguf = g;
    m->what = strdup(what);
    if (!m->what) {
        plm_model_free(m);
        return plm_errorf(error, PLM_ERR_NOMEM, "out of memory");
    }
    plm_binder b = {refs, n, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        if (strstr(refs[i].name, ".attn_qkv.")) b.qkv_fused = 1;
        if (strstr(refs[i].name, ".attn_norm_2.")) b.norm2 = 1;
    }
    int st = check_config(m, error);
    if (!st) st = bind_all(m, &b, error);
    if (st) {
        m->gguf = NULL; /* the caller closes it */
        plm_model_free(m);
        return st;
    }
    *out = m;
    return PLM_OK;
}

int plm_model_create(const plm_model_config *cfg, const plm_tensor_ref *tensors, int64_t n_tensors, const char *what,
                     plm_model **out, char **error) {
    if (error) *error = NULL;
    if (!out || !cfg || (n_tensors > 0 && !tensors) || n_tensors < 0)
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_model_create: NULL argument");
    *out = NULL;
    for (int64_t i = 0; i < n_tensors; i++)
        if (!tensors[i].name || !tensors[i].data || tensors[i].n_dims < 1 || tensors[i].n_dims > 4)
            return plm_errorf(error, PLM_ERR_INVALID_ARG, "%s: tensor %lld has no name, data or dims", what ? what : "model",
                              (long long)i);
    return make(cfg, tensors, n_tensors, what ? what : "model", NULL, out, error);
}

int plm_model_open(const char *path, uint64_t offset, uint64_t length, plm_model **out, char **error) {
    if (error) *error = NULL;
    if (!out || !path) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_model_open: NULL argument");
    *out = NULL;
    plm_gguf *g = NULL;
    int st = plm_gguf_open(path, offset, length, &g, error);
    if (st) return st;
    plm_model_config cfg;
    st = plm_gguf_model_config(g, &cfg, error);
    if (st) {
        plm_gguf_close(g);
        return st;
    }
    const int64_t n = plm_gguf_n_tensors(g);
    plm_tensor_ref *refs = (plm_tensor_ref *)calloc((size_t)(n > 0 ? n : 1), sizeof(plm_tensor_ref));
    if (!refs) {
        plm_gguf_close(g);
        return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int64_t i = 0; i < n; i++) {
        plm_tensor_ref *r = &refs[i];
        plm_gguf_tensor_info(g, i, &r->name, &r->type, &r->n_dims, r->dims, &r->data, &r->nbytes);
    }
    st = make(&cfg, refs, n, path, g, out, error);
    free(refs);
    if (st) plm_gguf_close(g);
    return st;
}

void plm_model_free(plm_model *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->alibi);
    free(m->what);
    if (m->gguf) plm_gguf_close(m->gguf);
    if (m->lrt && m->lrt_free) m->lrt_free(m->lrt);
    free(m);
}

const plm_model_config *plm_model_get_config(const plm_model *m) { return m ? &m->cfg : NULL; }
uint64_t plm_model_weight_bytes(const plm_model *m) { return m ? m->weight_bytes : 0; }
uint64_t plm_model_owned_bytes(const plm_model *m) { return m ? m->owned_bytes : 0; }

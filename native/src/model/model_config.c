/*
 * model_config.c — the ModelConfig of a GGUF file, read as
 * python/pocketlm/model/gguf_file.py reads it: pocketlm's files carry the
 * whole config as the pocketlm.config JSON object (flat: numbers, strings,
 * booleans, null and arrays of numbers, parsed here with bounds checks);
 * llama.cpp's files give it through {arch}.* keys and tensor names, read as
 * llama.cpp's own graph reads them.
 */
#define _GNU_SOURCE
#include "model/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int cfg_fail(const char *path, char **error, const char *fmt, ...) {
    if (error && !*error) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        const size_t n = strlen(path) + strlen(msg) + 3;
        if ((*error = (char *)malloc(n)) != NULL) snprintf(*error, n, "%s: %s", path, msg);
    }
    return PLM_ERR_FORMAT;
}

static void defaults(plm_model_config *c) {
    memset(c, 0, sizeof *c);
    c->norm = PLM_NORM_RMS;
    c->act = PLM_ACT_SILU;
    c->gated_mlp = 1;
    c->rope_theta = 10000.0;
    c->rope_mode = PLM_ROPE_NEOX;
    c->rope_freq_scale = 1.0;
    c->rope_local_freq_scale = 1.0;
    c->rope_attn_factor = 1.0;
    c->embed_scale = 1.0;
    c->positions = PLM_POS_ROPE;
    c->bos_token_id = -1;
}

/* ---- the pocketlm.config JSON ------------------------------------------ */

typedef struct {
    const char *s, *end;
    char **error;
} json;

static void ws(json *j) {
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\n' || *j->s == '\t' || *j->s == '\r')) j->s++;
}

static int lit(json *j, const char *word) {
    const size_t n = strlen(word);
    if ((size_t)(j->end - j->s) >= n && memcmp(j->s, word, n) == 0) { j->s += n; return 1; }
    return 0;
}

/* a string without escapes beyond \" and \\ (what the config's names hold); out gets up to cap-1 bytes */
static int jstr(json *j, char *out, size_t cap) {
    if (j->s >= j->end || *j->s != '"') return 0;
    j->s++;
    size_t n = 0;
    while (j->s < j->end && *j->s != '"') {
        char ch = *j->s++;
        if (ch == '\\') {
            if (j->s >= j->end) return 0;
            ch = *j->s++;
            if (ch != '"' && ch != '\\' && ch != '/') return 0;
        }
        if (n + 1 >= cap) return 0;
        out[n++] = ch;
    }
    if (j->s >= j->end) return 0;
    j->s++;
    out[n] = 0;
    return 1;
}

static int jnum(json *j, double *v) {
    char buf[64];
    size_t n = 0;
    while (j->s + n < j->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", j->s[n])) n++;
    if (n == 0 || n == sizeof buf - 1) return 0;
    memcpy(buf, j->s, n);
    buf[n] = 0;
    char *endp;
    *v = strtod(buf, &endp);
    if (endp != buf + n || !isfinite(*v)) return 0;
    j->s += n;
    return 1;
}

typedef enum { J_NUM, J_STR, J_BOOL, J_NULL, J_ARR } jkind;
typedef struct {
    jkind kind;
    double num;
    char str[64];
    int64_t n;
    double arr[1024];
} jvalue;

static int jval(json *j, jvalue *v) {
    ws(j);
    if (j->s >= j->end) return 0;
    if (*j->s == '"') { v->kind = J_STR; return jstr(j, v->str, sizeof v->str); }
    if (lit(j, "true")) { v->kind = J_BOOL; v->num = 1; return 1; }
    if (lit(j, "false")) { v->kind = J_BOOL; v->num = 0; return 1; }
    if (lit(j, "null")) { v->kind = J_NULL; return 1; }
    if (*j->s == '[') {
        j->s++;
        v->kind = J_ARR;
        v->n = 0;
        ws(j);
        if (j->s < j->end && *j->s == ']') { j->s++; return 1; }
        for (;;) {
            ws(j);
            if (v->n >= (int64_t)(sizeof v->arr / sizeof v->arr[0]) || !jnum(j, &v->arr[v->n])) return 0;
            v->n++;
            ws(j);
            if (j->s < j->end && *j->s == ',') { j->s++; continue; }
            if (j->s < j->end && *j->s == ']') { j->s++; return 1; }
            return 0;
        }
    }
    v->kind = J_NUM;
    return jnum(j, &v->num);
}

static int enum_of(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static int is_int(const jvalue *v) { return v->kind == J_NUM && v->num == floor(v->num) && fabs(v->num) < 9e15; }

static int set_key(const char *path, plm_model_config *c, const char *key, const jvalue *v, char **error,
                   unsigned *seen) {
    static const char *const sizes[] = {"vocab_size", "hidden_size", "n_layers", "n_heads", "n_kv_heads", "head_dim",
                                        "intermediate_size", "max_position_embeddings", "rot_dim", "sliding_window",
                                        "rope_long_after"};
    int64_t *size_fields[] = {&c->vocab_size, &c->hidden_size, &c->n_layers, &c->n_heads, &c->n_kv_heads,
                              &c->head_dim, &c->intermediate_size, &c->max_position_embeddings, &c->rot_dim,
                              &c->sliding_window, &c->rope_long_after};
    for (int i = 0; i < 11; i++)
        if (strcmp(key, sizes[i]) == 0) {
            if (!is_int(v) || v->num < 0) return cfg_fail(path, error, "%s must be a size", key);
            *size_fields[i] = (int64_t)v->num;
            if (i < 8) *seen |= 1u << i;
            return PLM_OK;
        }
    static const char *const reals[] = {"norm_eps", "norm_w_offset", "rope_theta", "rope_freq_scale", "embed_scale",
                                        "query_scale", "attn_softcap", "final_softcap", "rope_local_theta",
                                        "rope_local_freq_scale", "rope_attn_factor"};
    double *real_fields[] = {&c->norm_eps, &c->norm_w_offset, &c->rope_theta, &c->rope_freq_scale, &c->embed_scale,
                             &c->query_scale, &c->attn_softcap, &c->final_softcap, &c->rope_local_theta,
                             &c->rope_local_freq_scale, &c->rope_attn_factor};
    for (int i = 0; i < 11; i++)
        if (strcmp(key, reals[i]) == 0) {
            if (v->kind != J_NUM) return cfg_fail(path, error, "%s must be a number", key);
            *real_fields[i] = v->num;
            if (i == 0) *seen |= 1u << 8;
            return PLM_OK;
        }
    static const char *const flags[] = {"gated_mlp", "qkv_bias", "o_bias", "mlp_bias", "tie_embeddings", "post_norms",
                                        "parallel_residual", "output_bias", "qk_norm"};
    int *flag_fields[] = {&c->gated_mlp, &c->qkv_bias, &c->o_bias, &c->mlp_bias, &c->tie_embeddings, &c->post_norms,
                          &c->parallel_residual, &c->output_bias, &c->qk_norm};
    for (int i = 0; i < 9; i++)
        if (strcmp(key, flags[i]) == 0) {
            if (v->kind != J_BOOL) return cfg_fail(path, error, "%s must be true or false", key);
            *flag_fields[i] = (int)v->num;
            return PLM_OK;
        }
    if (strcmp(key, "arch") == 0) {
        if (v->kind != J_STR || strlen(v->str) >= sizeof c->arch) return cfg_fail(path, error, "arch must be a name");
        strcpy(c->arch, v->str);
        *seen |= 1u << 9;
        return PLM_OK;
    }
    static const char *const norms[] = {"rms", "layer"}, *const acts[] = {"silu", "gelu", "gelu_tanh"},
                             *const modes[] = {"neox", "gptj"}, *const pos[] = {"rope", "learned", "alibi"};
    struct { const char *key; const char *const *names; int n; int *field; } enums[] = {
        {"norm", norms, 2, &c->norm}, {"act", acts, 3, &c->act}, {"rope_mode", modes, 2, &c->rope_mode},
        {"positions", pos, 3, &c->positions}};
    for (int i = 0; i < 4; i++)
        if (strcmp(key, enums[i].key) == 0) {
            const int e = v->kind == J_STR ? enum_of(v->str, enums[i].names, enums[i].n) : -1;
            if (e < 0) return cfg_fail(path, error, "%s has an unknown value", key);
            *enums[i].field = e;
            return PLM_OK;
        }
    if (strcmp(key, "bos_token_id") == 0) {
        if (v->kind == J_NULL) { c->bos_token_id = -1; return PLM_OK; }
        if (!is_int(v) || v->num < 0) return cfg_fail(path, error, "bos_token_id must be a token id");
        c->bos_token_id = (int64_t)v->num;
        return PLM_OK;
    }
    if (v->kind != J_ARR && !(v->kind == J_NULL)) return cfg_fail(path, error, "%s has an unexpected value", key);
    const int64_t n = v->kind == J_ARR ? v->n : 0;
    if (strcmp(key, "eos_token_ids") == 0) {
        if (n > 8) return cfg_fail(path, error, "eos_token_ids: more than 8");
        for (int64_t i = 0; i < n; i++) {
            if (v->arr[i] < 0 || v->arr[i] != floor(v->arr[i])) return cfg_fail(path, error, "eos_token_ids: not ids");
            c->eos_token_ids[i] = (int64_t)v->arr[i];
        }
        c->n_eos = n;
        return PLM_OK;
    }
    if (strcmp(key, "sliding_window_layers") == 0) {
        for (int64_t i = 0; i < n; i++) {
            if (v->arr[i] < 0 || v->arr[i] >= 1024 || v->arr[i] != floor(v->arr[i]))
                return cfg_fail(path, error, "sliding_window_layers: not layer indices");
            c->sliding_window_layer[(int64_t)v->arr[i]] = 1;
        }
        return PLM_OK;
    }
    if (strcmp(key, "rope_freq_factors") == 0 || strcmp(key, "rope_freq_factors_long") == 0) {
        const int lng = key[17] != 0;
        if (n > 512) return cfg_fail(path, error, "%s: more than 512", key);
        float *dst = lng ? c->rope_freq_factors_long : c->rope_freq_factors;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)v->arr[i];
        *(lng ? &c->n_rope_freq_factors_long : &c->n_rope_freq_factors) = n;
        return PLM_OK;
    }
    return cfg_fail(path, error, "unknown key %s", key);
}

static int from_json(const char *path, const char *text, uint64_t len, plm_model_config *c, char **error) {
    json j = {text, text + len, error};
    jvalue *v = (jvalue *)malloc(sizeof *v);
    if (!v) return PLM_ERR_NOMEM;
    int st = PLM_OK;
    unsigned seen = 0;
    ws(&j);
    if (j.s >= j.end || *j.s++ != '{') { st = cfg_fail(path, error, "not a JSON object"); goto done; }
    for (;;) {
        ws(&j);
        char key[64];
        if (!jstr(&j, key, sizeof key)) { st = cfg_fail(path, error, "malformed JSON (a key expected)"); goto done; }
        ws(&j);
        if (j.s >= j.end || *j.s++ != ':' || !jval(&j, v)) {
            st = cfg_fail(path, error, "malformed JSON value of %s", key);
            goto done;
        }
        if ((st = set_key(path, c, key, v, error, &seen)) != PLM_OK) goto done;
        ws(&j);
        if (j.s < j.end && *j.s == ',') { j.s++; continue; }
        if (j.s < j.end && *j.s == '}') break;
        st = cfg_fail(path, error, "malformed JSON after %s", key);
        goto done;
    }
    if (seen != 0x3ffu) st = cfg_fail(path, error, "incomplete model metadata (a required key is missing)");
done:
    free(v);
    return st;
}

/* ---- llama.cpp's keys ----------------------------------------------------- */

static int key_int(const plm_gguf *g, const char *arch, const char *name, int64_t def, int64_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    const int64_t i = plm_gguf_find_key(g, key);
    if (i < 0) { *out = def; return PLM_OK; }
    return plm_gguf_get_int(g, i, out);
}

static int key_real(const plm_gguf *g, const char *key, double def, double *out, int *found) {
    const int64_t i = plm_gguf_find_key(g, key);
    if (found) *found = i >= 0;
    if (i < 0) { *out = def; return PLM_OK; }
    return plm_gguf_get_float(g, i, out);
}

static int has_tensor(const plm_gguf *g, const char *name) { return plm_gguf_find_tensor(g, name) >= 0; }

/* llama.cpp's load_swa_pattern: {arch}.attention.sliding_window_pattern as one flag per layer, or a period n
 * (default n_default) whose last layer is full: layer l slides when l % n < n - 1 (every layer when n is 0) */
static int swa_pattern(const plm_gguf *g, const char *arch, plm_model_config *c, int64_t n_default, const char *path,
                       char **error) {
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", arch);
    const int64_t i = plm_gguf_find_key(g, key);
    if (i >= 0 && plm_gguf_kv_type(g, i) == PLM_GGUF_ARRAY) {
        int et;
        uint64_t cnt;
        const void *data;
        if (plm_gguf_arr_info(g, i, &et, &cnt, &data) != PLM_OK || (et != PLM_GGUF_BOOL && et != PLM_GGUF_U8 &&
                                                                      et != PLM_GGUF_I8) ||
            (int64_t)cnt < c->n_layers)
            return cfg_fail(path, error, "%s must hold a flag for each of the %lld layers", key, (long long)c->n_layers);
        for (int64_t l = 0; l < c->n_layers && l < 1024; l++) c->sliding_window_layer[l] = ((const uint8_t *)data)[l] != 0;
        return PLM_OK;
    }
    int64_t n = n_default;
    if (i >= 0 && (plm_gguf_get_int(g, i, &n) != PLM_OK || n < 0))
        return cfg_fail(path, error, "%s must be a layer count or an array of flags", key);
    for (int64_t l = 0; l < c->n_layers && l < 1024; l++) c->sliding_window_layer[l] = n == 0 || l % n < n - 1;
    return PLM_OK;
}

/* an F32 tensor of rot_dim / 2 positive factors into dst; 0 when absent */
static int factors_tensor(const plm_gguf *g, const char *name, const plm_model_config *c, float *dst, int64_t *count,
                          const char *path, char **error) {
    const int64_t fi = plm_gguf_find_tensor(g, name);
    if (fi < 0) return PLM_OK;
    int type, nd;
    int64_t dims[4];
    const void *data;
    plm_gguf_tensor_info(g, fi, NULL, &type, &nd, dims, &data, NULL);
    if (type != PLM_TYPE_F32 || nd != 1 || dims[0] != c->rot_dim / 2 || dims[0] > 512)
        return cfg_fail(path, error, "tensor %s must hold rot_dim / 2 F32 factors", name);
    memcpy(dst, data, (size_t)dims[0] * sizeof(float));
    for (int64_t i = 0; i < dims[0]; i++)
        if (!(dst[i] > 0) || !isfinite(dst[i])) return cfg_fail(path, error, "tensor %s must hold positive factors", name);
    *count = dims[0];
    return PLM_OK;
}

static int from_llama_cpp(const plm_gguf *g, plm_model_config *c, char **error) {
    const char *path = plm_gguf_path(g);
    const int64_t ai = plm_gguf_find_key(g, "general.architecture");
    const char *a;
    uint64_t alen;
    if (ai < 0 || plm_gguf_get_str(g, ai, &a, &alen) != PLM_OK || alen >= 16)
        return cfg_fail(path, error, "general.architecture is missing");
    char arch[16];
    memcpy(arch, a, alen);
    arch[alen] = 0;
    static const char *const cpp[] = {"llama", "gemma", "gemma2", "phi2", "falcon", "stablelm", "gpt2",
                                      "gemma3", "qwen2", "qwen3", "phi3"};
    static const char *const ours[] = {"llama", "gemma", "gemma2", "phi", "falcon", "stablelm", "gpt2",
                                       "gemma3", "qwen2", "qwen3", "phi3"};
    int which = -1;
    for (int i = 0; i < 11; i++)
        if (strcmp(arch, cpp[i]) == 0) which = i;
    if (which < 0) return cfg_fail(path, error, "GGUF architecture '%s' is not supported", arch);
    strcpy(c->arch, ours[which]);
    int64_t n_heads, hidden, v;
    int st = 0, found;
    st |= key_int(g, arch, "attention.head_count", 0, &n_heads);
    st |= key_int(g, arch, "embedding_length", 0, &hidden);
    if (st || n_heads <= 0 || hidden <= 0) return cfg_fail(path, error, "%s.attention.head_count / embedding_length", arch);
    c->n_heads = n_heads;
    c->hidden_size = hidden;
    st |= key_int(g, arch, "attention.key_length", hidden / n_heads, &c->head_dim);
    st |= key_int(g, arch, "block_count", 0, &c->n_layers);
    st |= key_int(g, arch, "attention.head_count_kv", n_heads, &c->n_kv_heads);
    st |= key_int(g, arch, "feed_forward_length", 0, &c->intermediate_size);
    st |= key_int(g, arch, "context_length", 2048, &c->max_position_embeddings);
    st |= key_int(g, arch, "rope.dimension_count", c->head_dim, &c->rot_dim);
    int64_t value_length;
    st |= key_int(g, arch, "attention.value_length", c->head_dim, &value_length);
    if (!st && value_length != c->head_dim)
        return cfg_fail(path, error, "%s.attention.value_length %lld differs from the key length %lld: not supported",
                        arch, (long long)value_length, (long long)c->head_dim);
    char key[128];
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    double eps;
    st |= key_real(g, key, 0.0, &eps, &found);
    if (found) { c->norm = PLM_NORM_RMS; c->norm_eps = eps; }
    else {
        c->norm = PLM_NORM_LAYER;
        snprintf(key, sizeof key, "%s.attention.layer_norm_epsilon", arch);
        st |= key_real(g, key, 1e-5, &c->norm_eps, NULL);
    }
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    st |= key_real(g, key, 10000.0, &c->rope_theta, NULL);
    if (st) return cfg_fail(path, error, "%s.* metadata has a value of the wrong type", arch);
    const int64_t te = plm_gguf_find_tensor(g, "token_embd.weight");
    int64_t dims[4];
    if (te >= 0) {
        plm_gguf_tensor_info(g, te, NULL, NULL, NULL, dims, NULL, NULL);
        c->vocab_size = dims[1];
    } else {
        const int64_t tk = plm_gguf_find_key(g, "tokenizer.ggml.tokens");
        uint64_t cnt = 0;
        if (tk < 0 || plm_gguf_arr_info(g, tk, NULL, &cnt, NULL) != PLM_OK) return cfg_fail(path, error, "no vocabulary");
        c->vocab_size = (int64_t)cnt;
    }
    c->rope_mode = PLM_ROPE_NEOX;
    c->query_scale = 1.0 / sqrt((double)c->head_dim);
    c->tie_embeddings = !has_tensor(g, "output.weight");
    c->qkv_bias = has_tensor(g, "blk.0.attn_q.bias") || has_tensor(g, "blk.0.attn_qkv.bias");
    c->o_bias = has_tensor(g, "blk.0.attn_output.bias");
    c->mlp_bias = has_tensor(g, "blk.0.ffn_up.bias");
    c->output_bias = has_tensor(g, "output.bias");
    c->gated_mlp = has_tensor(g, "blk.0.ffn_gate.weight");
    int64_t bi = plm_gguf_find_key(g, "tokenizer.ggml.bos_token_id");
    if (bi >= 0 && plm_gguf_get_int(g, bi, &v) == PLM_OK) c->bos_token_id = v;
    int64_t ei = plm_gguf_find_key(g, "tokenizer.ggml.eos_token_id");
    if (ei >= 0 && plm_gguf_get_int(g, ei, &v) == PLM_OK) { c->eos_token_ids[0] = v; c->n_eos = 1; }
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const int64_t si = plm_gguf_find_key(g, key);
    if (si >= 0) {
        const char *s;
        uint64_t n;
        if (plm_gguf_get_str(g, si, &s, &n) != PLM_OK) return cfg_fail(path, error, "%s must be a string", key);
        if (n == 6 && memcmp(s, "linear", 6) == 0) {
            double factor;
            snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
            if (key_real(g, key, 0.0, &factor, NULL) != PLM_OK || !(factor > 0))
                return cfg_fail(path, error, "%s must be a positive number", key);
            c->rope_freq_scale = 1.0 / factor;
        } else if (!(n == 4 && memcmp(s, "none", 4) == 0)) {
            return cfg_fail(path, error, "%s '%.*s' is not supported; supported: none, linear", key, (int)(n < 32 ? n : 32), s);
        }
    }
    /* every llama.cpp graph's RoPE multiplies by it (Phi-3's longrope attention factor) */
    snprintf(key, sizeof key, "%s.rope.scaling.attn_factor", arch);
    if (key_real(g, key, 1.0, &c->rope_attn_factor, NULL) || !(c->rope_attn_factor > 0))
        return cfg_fail(path, error, "%s must be a positive number", key);
    switch (which) {
    case 0: c->act = PLM_ACT_SILU; c->rope_mode = PLM_ROPE_GPTJ; break;
    case 1: case 2:
        c->act = PLM_ACT_GELU_TANH;
        c->embed_scale = sqrt((double)hidden);
        if (which == 2) {
            int64_t window;
            if (key_int(g, arch, "attention.sliding_window", 0, &window)) return cfg_fail(path, error, "sliding_window");
            c->query_scale = c->n_layers == 46 ? 1.0 / sqrt((double)hidden / (double)n_heads) : c->query_scale;
            snprintf(key, sizeof key, "%s.attn_logit_softcapping", arch);
            key_real(g, key, 0.0, &c->attn_softcap, NULL);
            snprintf(key, sizeof key, "%s.final_logit_softcapping", arch);
            key_real(g, key, 0.0, &c->final_softcap, NULL);
            c->sliding_window = window;
            if (window)
                for (int64_t l = 0; l < c->n_layers && l < 1024; l += 2) c->sliding_window_layer[l] = 1;
            c->post_norms = 1;
        }
        break;
    case 3: c->act = PLM_ACT_GELU_TANH; c->parallel_residual = 1; break;
    case 4: c->act = PLM_ACT_GELU; c->parallel_residual = 1; break;
    case 5: {
        int64_t par;
        if (key_int(g, arch, "use_parallel_residual", !has_tensor(g, "blk.0.ffn_norm.weight"), &par))
            return cfg_fail(path, error, "use_parallel_residual");
        c->act = PLM_ACT_SILU;
        c->parallel_residual = par != 0;
        break;
    }
    case 7: { /* gemma3: norms stored as 1 + w (q/k norms too), llama.cpp's swa pattern and local base */
        int64_t window;
        if (key_int(g, arch, "attention.sliding_window", 0, &window)) return cfg_fail(path, error, "sliding_window");
        c->act = PLM_ACT_GELU_TANH;
        c->embed_scale = sqrt((double)hidden);
        c->qk_norm = 1;
        c->post_norms = 1;
        /* llama.cpp scales queries by 1/sqrt(head_dim), by 1/sqrt(hidden / heads) for the 62-layer 27B */
        if (c->n_layers == 62) c->query_scale = 1.0 / sqrt((double)hidden / (double)n_heads);
        snprintf(key, sizeof key, "%s.final_logit_softcapping", arch);
        if (key_real(g, key, 0.0, &c->final_softcap, NULL)) return cfg_fail(path, error, "%s must be a number", key);
        int any = 0;
        if (window > 0) {
            int st2 = swa_pattern(g, arch, c, 6, path, error);
            if (st2) return st2;
            for (int64_t l = 0; l < c->n_layers && l < 1024; l++) any |= c->sliding_window_layer[l];
        }
        if (any) { /* the sliding layers rotate on the local base, unscaled */
            c->sliding_window = window;
            snprintf(key, sizeof key, "%s.rope.freq_base_swa", arch);
            if (key_real(g, key, 10000.0, &c->rope_local_theta, NULL) || !(c->rope_local_theta > 0))
                return cfg_fail(path, error, "%s must be a positive number", key);
            c->rope_local_freq_scale = 1.0;
        }
        break;
    }
    case 8: case 9: /* qwen2 / qwen3: no window in llama.cpp's graphs; biases and q/k norms where their tensors are */
        c->act = PLM_ACT_SILU;
        c->qk_norm = has_tensor(g, "blk.0.attn_q_norm.weight");
        break;
    case 10: { /* phi3: fused attn_qkv and ffn_up = [gate; up]; llama.cpp's graph turns its sliding window off;
                * longrope's factors are tensors (read below), switching past original_context_length */
        c->act = PLM_ACT_SILU;
        c->gated_mlp = 1;
        if (key_int(g, arch, "rope.scaling.original_context_length", 0, &c->rope_long_after) || c->rope_long_after < 0)
            return cfg_fail(path, error, "%s.rope.scaling.original_context_length must be a size", arch);
        break;
    }
    case 6: {
        const int64_t pe = plm_gguf_find_tensor(g, "position_embd.weight");
        if (pe < 0) return cfg_fail(path, error, "gpt2 file lacks position_embd.weight");
        plm_gguf_tensor_info(g, pe, NULL, NULL, NULL, dims, NULL, NULL);
        c->act = PLM_ACT_GELU_TANH;
        c->rot_dim = 0;
        c->positions = PLM_POS_LEARNED;
        c->max_position_embeddings = dims[1];
        break;
    }
    }
    return PLM_OK;
}

int plm_gguf_model_config(const plm_gguf *g, plm_model_config *cfg, char **error) {
    if (error) *error = NULL;
    PLM_CHECK(g != NULL && cfg != NULL, PLM_ERR_INVALID_ARG);
    defaults(cfg);
    const char *path = plm_gguf_path(g);
    const int64_t ji = plm_gguf_find_key(g, "pocketlm.config");
    int st;
    if (ji >= 0) {
        const char *s;
        uint64_t n;
        st = plm_gguf_get_str(g, ji, &s, &n) == PLM_OK ? from_json(path, s, n, cfg, error)
                                                        : cfg_fail(path, error, "pocketlm.config must be a string");
    } else {
        st = from_llama_cpp(g, cfg, error);
    }
    if (st != PLM_OK) return st;
    /* llama3 scaling travels as the rope_freqs tensor in llama.cpp's files, Phi-3's longrope as
     * rope_factors_short (rope_freq_factors) and rope_factors_long */
    if (ji < 0) {
        const int short_f = plm_gguf_find_tensor(g, "rope_factors_short.weight") >= 0;
        if (plm_gguf_find_tensor(g, "rope_freqs.weight") >= 0 &&
            (short_f || plm_gguf_find_tensor(g, "rope_factors_long.weight") >= 0))
            return cfg_fail(path, error, "tensor rope_freqs.weight beside rope_factors_long / _short: not supported");
        if ((st = factors_tensor(g, "rope_freqs.weight", cfg, cfg->rope_freq_factors, &cfg->n_rope_freq_factors, path,
                                 error)) ||
            (st = factors_tensor(g, "rope_factors_short.weight", cfg, cfg->rope_freq_factors, &cfg->n_rope_freq_factors,
                                 path, error)) ||
            (st = factors_tensor(g, "rope_factors_long.weight", cfg, cfg->rope_freq_factors_long,
                                 &cfg->n_rope_freq_factors_long, path, error)))
            return st;
        if (cfg->n_rope_freq_factors_long && !short_f)
            return cfg_fail(path, error, "tensor rope_factors_long.weight without rope_factors_short.weight");
    }
    if (cfg->n_layers <= 0 || cfg->n_layers > 1024 || cfg->n_heads <= 0 || cfg->n_kv_heads <= 0 ||
        cfg->n_heads % cfg->n_kv_heads || cfg->head_dim <= 0 || cfg->hidden_size <= 0 || cfg->vocab_size <= 0 ||
        cfg->rot_dim < 0 || cfg->rot_dim > cfg->head_dim || cfg->rot_dim % 2 || cfg->rot_dim / 2 > 512 ||
        (cfg->n_rope_freq_factors && cfg->n_rope_freq_factors != cfg->rot_dim / 2) ||
        (cfg->n_rope_freq_factors_long && cfg->n_rope_freq_factors_long != cfg->rot_dim / 2))
        return cfg_fail(path, error, "the model config is inconsistent (layers %lld, heads %lld/%lld, head_dim %lld, "
                        "rot_dim %lld)", (long long)cfg->n_layers, (long long)cfg->n_heads, (long long)cfg->n_kv_heads,
                        (long long)cfg->head_dim, (long long)cfg->rot_dim);
    return PLM_OK;
}

/*
 * test_arch.c — Gemma 3, Qwen2, Qwen3 and Phi-3 from C, on the files
 * llama.cpp's converter wrote (tests/fixtures/llama_cpp): what the config
 * reader takes from llama.cpp's keys and tensors; sliding-window layers'
 * rings (prompts in batches small enough to wrap them, one token at a time,
 * a clone taken mid-wrap, the bytes they hold); longrope's factors chosen by
 * a call's whole input; configs and tensor sets the binder refuses.
 * tests/model/test_native_architectures.py holds these against transformers.
 * Usage: test_arch FIXTURES_DIR
 */
#include "pocketlm.h"
#include "plm_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const int32_t PROMPT[] = {1, 17, 200, 33, 5, 99, 250, 7, 64, 128, 3, 77, 12,
                                 190, 45, 8, 230, 61, 150, 9, 41, 300, 2, 11, 19, 80};
#define N_PROMPT ((int64_t)(sizeof PROMPT / sizeof PROMPT[0]))
#define MAX_TOKENS 64

static char g_dir[1024];

static plm_model *open_model(const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.gguf", g_dir, name);
    plm_model *m = NULL;
    char *err = NULL;
    const int st = plm_model_open(path, 0, 0, &m, &err);
    EXPECT(st == PLM_OK && m, "open %s: %s", path, err ? err : "?");
    plm_free(err);
    return m;
}

static plm_session_params params(int64_t max_tokens, int kv_type, int64_t n_batch) {
    plm_session_params p;
    plm_session_params_default(&p);
    p.max_tokens = max_tokens;
    p.kv_type = kv_type;
    p.n_batch = n_batch;
    p.top_k = 1;
    return p;
}

static plm_session *session(plm_model *m, int64_t n_batch) {
    plm_session_params p = params(MAX_TOKENS, PLM_TYPE_F32, n_batch);
    plm_session *s = NULL;
    char *err = NULL;
    const int st = plm_session_create(m, &p, &s, &err);
    EXPECT(st == PLM_OK && s, "session: %s", err ? err : "?");
    plm_free(err);
    return s;
}

/* runs ids through s and writes every position's logits (n x vocab) */
static void eval_all(plm_session *s, const int32_t *ids, int64_t n, float *out) {
    char *err = NULL;
    int st = plm_session_add_tokens(s, ids, n, &err);
    if (st == PLM_OK) st = plm_session_eval(s, out, 1, &err);
    EXPECT(st == PLM_OK, "eval: %s", err ? err : "?");
    plm_free(err);
}

/* the largest difference, as a fraction of want's range */
static double rel_diff(const float *got, const float *want, int64_t n) {
    float lo = want[0], hi = want[0];
    double d = 0;
    for (int64_t i = 0; i < n; i++) {
        lo = want[i] < lo ? want[i] : lo;
        hi = want[i] > hi ? want[i] : hi;
        const double e = fabs((double)got[i] - (double)want[i]);
        d = e > d ? e : d;
    }
    return d / (double)(hi - lo);
}

static void check_configs(void) {
    const char *names[] = {"gemma3", "qwen2", "qwen3", "phi3"};
    for (int i = 0; i < 4; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.gguf", g_dir, names[i]);
        plm_gguf *g = NULL;
        char *err = NULL;
        plm_model_config c;
        int st = plm_gguf_open(path, 0, 0, &g, &err);
        if (st == PLM_OK) st = plm_gguf_model_config(g, &c, &err);
        EXPECT(st == PLM_OK, "config of %s: %s", path, err ? err : "?");
        plm_free(err);
        plm_gguf_close(g);
        if (st) continue;
        EXPECT(strcmp(c.arch, names[i]) == 0, "%s read as %s", names[i], c.arch);
        switch (i) {
        case 0: /* five sliding layers then a full one, local base 10000, linear scaling on the global base */
            EXPECT(c.qk_norm && c.post_norms && c.norm_w_offset == 0.0 && c.sliding_window == 8, "gemma3 flags");
            for (int64_t l = 0; l < c.n_layers; l++)
                EXPECT(c.sliding_window_layer[l] == (l % 6 < 5), "gemma3 layer %lld's window", (long long)l);
            EXPECT(c.rope_local_theta == 10000.0 && c.rope_local_freq_scale == 1.0 && c.rope_theta == 1e6 &&
                       fabs(c.rope_freq_scale - 0.25) < 1e-12 && c.query_scale == 0.25 && c.act == PLM_ACT_GELU_TANH,
                   "gemma3 rope / scale");
            break;
        case 1:
            EXPECT(c.qkv_bias && !c.o_bias && !c.qk_norm && c.tie_embeddings && !c.sliding_window, "qwen2 flags");
            break;
        case 2:
            EXPECT(c.qk_norm && c.head_dim == 24 && c.hidden_size / c.n_heads == 16 && !c.qkv_bias, "qwen3 flags");
            break;
        case 3: /* rope_factors_short / _long, original_context_length, attn_factor; fused qkv and gate/up */
            EXPECT(c.rot_dim == 12 && c.n_rope_freq_factors == 6 && c.n_rope_freq_factors_long == 6 &&
                       c.rope_long_after == 16 && fabs(c.rope_attn_factor - sqrt(1.5)) < 1e-6 && c.gated_mlp,
                   "phi3 longrope");
            /* llama.cpp's phi3 graph runs without a window, whatever attention.sliding_window says */
            EXPECT(c.sliding_window == 0 && !c.sliding_window_layer[0], "phi3 window");
            EXPECT(fabsf(c.rope_freq_factors[5] - 3.0f) < 1e-6f && fabsf(c.rope_freq_factors_long[5] - 11.0f) < 1e-6f,
                   "phi3 factors");
            break;
        }
    }
}

/* a prompt longer than the window and the ring, in batches that wrap it, and one token at a time */
static void check_rings(const char *name) {
    plm_model *m = open_model(name);
    if (!m) return;
    const plm_model_config *c = plm_model_get_config(m);
    const int64_t V = c->vocab_size;
    float *want = (float *)malloc((size_t)(N_PROMPT * V) * sizeof(float));
    float *got = (float *)malloc((size_t)(N_PROMPT * V) * sizeof(float));
    plm_session *s = session(m, 64);
    eval_all(s, PROMPT, N_PROMPT, want);
    plm_session_free(s);
    const int64_t batches[] = {1, 3, 4, 7};
    for (int b = 0; b < 4; b++) {
        s = session(m, batches[b]);
        eval_all(s, PROMPT, N_PROMPT, got);
        EXPECT(rel_diff(got, want, N_PROMPT * V) < 1e-5, "%s: n_batch %lld differs by %g", name,
               (long long)batches[b], rel_diff(got, want, N_PROMPT * V));
        plm_session_free(s);
    }
    /* one token at a time (Phi-3: within its original length, where one prefill takes the short factors too) */
    const int64_t n_steps = c->n_rope_freq_factors_long ? c->rope_long_after : N_PROMPT;
    float *ref = (float *)malloc((size_t)(n_steps * V) * sizeof(float));
    s = session(m, 0);
    eval_all(s, PROMPT, n_steps, ref);
    plm_session_free(s);
    s = session(m, 0);
    for (int64_t i = 0; i < n_steps; i++) eval_all(s, PROMPT + i, 1, got + i * V);
    EXPECT(rel_diff(got, ref, n_steps * V) < 1e-5, "%s: token by token differs by %g", name,
           rel_diff(got, ref, n_steps * V));
    plm_session_free(s);
    free(ref);

    /* a clone after 13 tokens in batches of 4: Gemma 3's rings (window + 3 = 11 rows) have wrapped. The
     * reference runs the same two calls (Phi-3's longrope picks its factors per call) */
    s = session(m, 4);
    eval_all(s, PROMPT, 13, ref = (float *)malloc((size_t)(N_PROMPT * V) * sizeof(float)));
    eval_all(s, PROMPT + 13, N_PROMPT - 13, ref + 13 * V);
    plm_session_free(s);
    plm_session *a = session(m, 4);
    eval_all(a, PROMPT, 13, got);
    char *err = NULL;
    plm_session *fork = NULL;
    const int st = plm_session_clone(a, &fork, &err);
    EXPECT(st == PLM_OK && fork && plm_session_memory(fork) == plm_session_memory(a), "clone: %s", err ? err : "?");
    plm_free(err);
    const int32_t other[3] = {4, 4, 4};
    eval_all(a, other, 3, got); /* the source goes elsewhere */
    if (fork) {
        eval_all(fork, PROMPT + 13, N_PROMPT - 13, got);
        EXPECT(rel_diff(got, ref + 13 * V, (N_PROMPT - 13) * V) < 1e-5, "%s: the clone differs by %g", name,
               rel_diff(got, ref + 13 * V, (N_PROMPT - 13) * V));
    }
    plm_session_free(fork);
    plm_session_free(a);
    free(ref);

    /* the bytes: rings of min(max_tokens, window + n_batch - 1) rows on the sliding layers */
    const int64_t per_row = 2 * c->n_kv_heads * c->head_dim * 2;
    for (int64_t nb = 1; nb <= 512; nb *= 8) {
        plm_session_params p = params(4096, PLM_TYPE_F16, nb);
        p.n_threads = 1; /* the scratch grows with the threads; the KV cache does not */
        int64_t rows = 0;
        for (int64_t l = 0; l < c->n_layers; l++) {
            const int64_t ring = c->sliding_window + nb - 1;
            rows += c->sliding_window_layer[l] ? (ring < 4096 ? ring : 4096) : 4096;
        }
        EXPECT(plm_session_kv_bytes(m, &p) == (uint64_t)(rows * per_row), "%s: KV bytes at n_batch %lld", name,
               (long long)nb);
        EXPECT(plm_session_bytes(m, &p) > plm_session_kv_bytes(m, &p), "%s: session bytes", name);
        /* Gemma 3's whole session takes less than a full cache of every layer would alone */
        if (strcmp(name, "gemma3") == 0)
            EXPECT(plm_session_bytes(m, &p) < (uint64_t)(c->n_layers * 4096 * per_row), "%s: session bytes", name);
    }
    free(want);
    free(got);
    plm_model_free(m);
}

/* Phi-3: a prompt ending at position 16 rotates by the short factors, one ending past it by the long ones,
 * everywhere and however it is batched */
static void check_longrope(void) {
    plm_model *m = open_model("phi3");
    if (!m) return;
    const int64_t V = plm_model_get_config(m)->vocab_size;
    float *a = (float *)malloc((size_t)(17 * V) * sizeof(float)), *b = (float *)malloc((size_t)(17 * V) * sizeof(float));
    plm_session *s = session(m, 0);
    eval_all(s, PROMPT, 16, a);
    plm_session_free(s);
    s = session(m, 0);
    eval_all(s, PROMPT, 17, b);
    plm_session_free(s);
    EXPECT(rel_diff(a + V, b + V, 15 * V) > 1e-3, "phi3: the long factors change nothing");
    s = session(m, 4); /* the first batch ends at 4, the input at 17: the long factors from the start */
    eval_all(s, PROMPT, 17, a);
    plm_session_free(s);
    EXPECT(rel_diff(a, b, 17 * V) < 1e-5, "phi3: batches chose their own factors (%g)", rel_diff(a, b, 17 * V));
    free(a);
    free(b);
    plm_model_free(m);
}

/* the file's tensors handed over as a plm_model_create caller would, with the config changed or a tensor left out */
static int create_from(const char *name, void (*change)(plm_model_config *), const char *drop, char **err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.gguf", g_dir, name);
    plm_gguf *g = NULL;
    plm_model_config c;
    if (plm_gguf_open(path, 0, 0, &g, NULL) || plm_gguf_model_config(g, &c, NULL)) {
        plm_gguf_close(g);
        return -100;
    }
    if (change) change(&c);
    const int64_t n = plm_gguf_n_tensors(g);
    plm_tensor_ref *refs = (plm_tensor_ref *)calloc((size_t)n, sizeof *refs);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        plm_tensor_ref *r = &refs[k];
        plm_gguf_tensor_info(g, i, &r->name, &r->type, &r->n_dims, r->dims, &r->data, &r->nbytes);
        if (!drop || strcmp(r->name, drop) != 0) k++;
    }
    plm_model *m = NULL;
    const int st = plm_model_create(&c, refs, k, name, &m, err);
    plm_model_free(m);
    free(refs);
    plm_gguf_close(g);
    return st;
}

static void no_short(plm_model_config *c) { c->n_rope_freq_factors = 0; }
static void no_attn_factor(plm_model_config *c) { c->rope_attn_factor = 0.0; }

static void check_refusals(void) {
    struct { const char *name; void (*change)(plm_model_config *); const char *drop, *want; } cases[] = {
        {"phi3", NULL, NULL, NULL},
        {"gemma3", NULL, NULL, NULL},
        {"phi3", no_short, NULL, "long rope frequency factors"},
        {"phi3", no_attn_factor, NULL, "rope_attn_factor 0"},
        {"phi3", NULL, "blk.1.ffn_up.weight", "blk.1.ffn_gate.weight"},
        {"gemma3", NULL, "blk.2.attn_k_norm.weight", "lacks tensors a gemma3 model needs: blk.2.attn_k_norm.weight"},
        {"qwen3", NULL, "blk.0.attn_q_norm.weight", "blk.0.attn_q_norm.weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = NULL;
        const int st = create_from(cases[i].name, cases[i].change, cases[i].drop, &err);
        if (!cases[i].want) EXPECT(st == PLM_OK, "case %zu: %s", i, err ? err : "?");
        else EXPECT(st != PLM_OK && err && strstr(err, cases[i].want), "case %zu: want '%s', got %d '%s'", i,
                    cases[i].want, st, err ? err : "");
        plm_free(err);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
    check_configs();
    check_rings("gemma3");
    check_rings("phi3");
    check_longrope();
    check_refusals();
    if (g_failures) {
        fprintf(stderr, "%d failure(s)\n", g_failures);
        return 1;
    }
    printf("test_arch: all passed\n");
    return 0;
}

/*
 * session.c — sessions over a model: the KV cache, the tokens it holds and
 * those waiting, the sampler, and the generate loop of
 * python/pocketlm/engine/python.py's PythonSession.generate. A LiteRT
 * model's session keeps its KV caches in its own TFLite interpreter
 * (litert/litert.h) instead; everything else here is the same for both.
 */
#include "engine/engine.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* Prompt tokens a forward pass takes by default. 256, not llama.cpp's 512: a batch's buffers (the hidden
 * state, q/k/v, the MLP's two intermediate rows, their quantized forms) grow with it, and at 512 rows they
 * outweighed a small model's whole allowance (an 86M-parameter Q4_0 Llama: about 25 MB of buffers beside a
 * 49 MB file); a sliding-window layer's ring (window + n_batch - 1) shrinks with it too. The prefill GEMM
 * keeps its speed at 256 rows: packing a panel is a twentieth of the product there (docs/performance.md). */
#define PLM_DEFAULT_BATCH 256

void plm_session_params_default(plm_session_params *p) {
    if (!p) return;
    memset(p, 0, sizeof(*p));
    p->max_tokens = 512;
    p->kv_type = PLM_TYPE_F16;
    p->n_threads = 0;
    p->n_batch = PLM_DEFAULT_BATCH;
    p->top_k = 40;
    p->top_p = 1.0;
    p->temperature = 0.8;
    p->seed = 0;
}

static int check_params(const plm_model *m, const plm_session_params *p, char **error);

/* A LiteRT session runs all that is pending in one forward call, which chunks it by the
 * graph's prefill signatures as LiteRT-LM does. */
static int64_t batch_of(const plm_model *m, const plm_session_params *p) {
    if (m->lrt) return p->max_tokens;
    int64_t b = p->n_batch > 0 ? p->n_batch : PLM_DEFAULT_BATCH;
    return b < p->max_tokens ? b : p->max_tokens;
}

/* the most threads a session's buffers are laid out for: the pool's current count or cap */
static int threads_of(const plm_session_params *p) { return plm_effective_threads(p->n_threads); }

int64_t plm_kv_rows(const plm_model *m, const plm_session_params *p, int64_t layer) {
    const plm_model_config *c = &m->cfg;
    if (!c->sliding_window_layer[layer] || c->sliding_window <= 0) return p->max_tokens;
    const int64_t ring = c->sliding_window + batch_of(m, p) - 1;
    return ring < p->max_tokens ? ring : p->max_tokens;
}

/* KV cache rows of every layer together */
static uint64_t kv_rows_all(const plm_model *m, const plm_session_params *p) {
    uint64_t n = 0;
    for (int64_t l = 0; l < m->cfg.n_layers; l++) n += (uint64_t)plm_kv_rows(m, p, l);
    return n;
}

static uint64_t kv_bytes(const plm_model *m, const plm_session_params *p) {
    if (m->lrt) return 0; /* the caches are the interpreter's tensors, counted by plm_lrt_state_bytes */
    const int64_t es = p->kv_type == PLM_TYPE_F32 ? 4 : 2;
    return 2 * kv_rows_all(m, p) * (uint64_t)(m->cfg.n_kv_heads * m->cfg.head_dim) * (uint64_t)es;
}

uint64_t plm_session_kv_bytes(const plm_model *m, const plm_session_params *p) {
    if (!m || !p || check_params(m, p, NULL) != PLM_OK) return 0;
    return kv_bytes(m, p);
}

uint64_t plm_session_bytes(const plm_model *m, const plm_session_params *p) {
    if (!m || !p || check_params(m, p, NULL) != PLM_OK) return 0;
    if (m->lrt)
        return sizeof(plm_session) + 2 * (uint64_t)p->max_tokens * sizeof(int32_t) +
               (uint64_t)m->cfg.vocab_size * sizeof(float) + plm_lrt_state_bytes(m->lrt);
    return sizeof(plm_session) + kv_bytes(m, p) + 2 * (uint64_t)m->cfg.n_layers * sizeof(int64_t) +
           2 * (uint64_t)p->max_tokens * sizeof(int32_t) +
           (uint64_t)m->cfg.vocab_size * sizeof(float) +
           plm_forward_scratch_bytes(m, batch_of(m, p), p->max_tokens, threads_of(p), plm_lora_rank(p->lora));
}

static int check_params(const plm_model *m, const plm_session_params *p, char **error) {
    if (p->max_tokens <= 0)
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "max_tokens must be positive, got %lld", (long long)p->max_tokens);
    if (p->kv_type != PLM_TYPE_F32 && p->kv_type != PLM_TYPE_F16)
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "the KV cache is F32 or F16, not type %d", p->kv_type);
    if (p->top_k < 1) return plm_errorf(error, PLM_ERR_INVALID_ARG, "top_k must be at least 1, got %lld", (long long)p->top_k);
    if (!(p->temperature >= 0.0) || isinf(p->temperature))
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "temperature must be a finite number >= 0");
    if (!(p->top_p > 0.0 && p->top_p <= 1.0))
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "top_p must be in (0, 1]");
    if (m->lrt) { /* the graph's KV cache has a fixed length */
        if (p->max_tokens > m->cfg.max_position_embeddings)
            return plm_errorf(error, PLM_ERR_INVALID_ARG,
                              "max_tokens %lld is more than the %lld positions of the KV cache of the LiteRT model %s",
                              (long long)p->max_tokens, (long long)m->cfg.max_position_embeddings, m->what);
        if (p->lora)
            return plm_errorf(error, PLM_ERR_INVALID_ARG, "LoRA adapters do not apply to the LiteRT model %s", m->what);
        return PLM_OK;
    }
    /* positions are int32 token ids' places, and every buffer size below must fit size_t */
    const uint64_t per_token = 2 * (uint64_t)m->cfg.n_layers * (uint64_t)(m->cfg.n_kv_heads * m->cfg.head_dim) * 4 +
                               (uint64_t)(m->cfg.n_heads / m->cfg.n_kv_heads) * 4 * 256;
    if (p->max_tokens > INT32_MAX || (uint64_t)p->max_tokens > (SIZE_MAX / 4) / per_token)
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "max_tokens %lld is more than a session can hold",
                          (long long)p->max_tokens);
    if (p->lora) { /* an adapter made for this model: every pair fits its weight */
        const plm_lora *a = p->lora;
        if (a->n_layers != m->cfg.n_layers)
            return plm_errorf(error, PLM_ERR_INVALID_ARG, "LoRA adapter %s has %lld layers, the model %lld", a->what,
                              (long long)a->n_layers, (long long)m->cfg.n_layers);
        for (int64_t l = 0; l < a->n_layers; l++) {
            const plm_layer *L = &m->layers[l];
            const plm_mat *w[PLM_LORA_TARGETS] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
            for (int t = 0; t < PLM_LORA_TARGETS; t++) {
                const plm_lora_mat *lm = &a->mats[l * PLM_LORA_TARGETS + t];
                if (lm->a && (!w[t]->data || lm->n != w[t]->rows || lm->k != w[t]->cols))
                    return plm_errorf(error, PLM_ERR_INVALID_ARG, "LoRA adapter %s was made for another model", a->what);
            }
        }
    }
    return PLM_OK;
}

static int alloc_session(plm_model *m, const plm_session_params *p, plm_session **out, char **error) {
    plm_session *s = (plm_session *)calloc(1, sizeof(plm_session));
    if (!s) return plm_errorf(error, PLM_ERR_NOMEM, "out of memory for a session");
    s->m = m;
    s->p = *p;
    s->p.n_batch = batch_of(m, p);
    s->kv_dim = m->cfg.n_kv_heads * m->cfg.head_dim;
    s->kv_row_bytes = s->kv_dim * (p->kv_type == PLM_TYPE_F32 ? 4 : 2);
    const size_t kvb = (size_t)(kv_bytes(m, p) / 2);
    s->scratch_threads = threads_of(p);
    s->scratch_bytes = m->lrt ? 1 : plm_forward_scratch_bytes(m, s->p.n_batch, p->max_tokens, s->scratch_threads,
                                                              plm_lora_rank(p->lora));
    if (m->lrt) {
        const int st = plm_lrt_state_create(m->lrt, s->scratch_threads, &s->lrt, error);
        if (st) {
            plm_session_free(s);
            return st;
        }
    }
    s->k_cache = (uint8_t *)malloc(kvb ? kvb : 1);
    s->v_cache = (uint8_t *)malloc(kvb ? kvb : 1);
    s->kv_rows = (int64_t *)malloc(2 * (size_t)m->cfg.n_layers * sizeof(int64_t));
    if (s->kv_rows) {
        s->kv_row0 = s->kv_rows + m->cfg.n_layers;
        int64_t row = 0;
        for (int64_t l = 0; l < m->cfg.n_layers; l++) {
            s->kv_rows[l] = m->lrt ? 0 : plm_kv_rows(m, &s->p, l);
            s->kv_row0[l] = row;
            row += s->kv_rows[l];
        }
    }
    s->tokens = (int32_t *)malloc((size_t)p->max_tokens * sizeof(int32_t));
    s->pending = (int32_t *)malloc((size_t)p->max_tokens * sizeof(int32_t));
    s->logits = (float *)malloc((size_t)m->cfg.vocab_size * sizeof(float));
    s->scratch = (uint8_t *)malloc(s->scratch_bytes);
    s->bytes = plm_session_bytes(m, p);
    if (!s->k_cache || !s->v_cache || !s->kv_rows || !s->tokens || !s->pending || !s->logits || !s->scratch) {
        plm_session_free(s);
        return plm_errorf(error, PLM_ERR_NOMEM, "out of memory for a session of %lld tokens (%.1f MB)",
                          (long long)p->max_tokens, (double)plm_session_bytes(m, p) / 1e6);
    }
    plm_rng_seed(&s->rng, p->seed);
    plm_lora_retain(s->p.lora); /* the session's own reference */
    *out = s;
    return PLM_OK;
}

int plm_session_create(plm_model *m, const plm_session_params *p, plm_session **out, char **error) {
    if (error) *error = NULL;
    if (!m || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_session_create: NULL argument");
    *out = NULL;
    plm_session_params d;
    if (!p) {
        plm_session_params_default(&d);
        p = &d;
    }
    int st = check_params(m, p, error);
    if (st) return st;
    return alloc_session(m, p, out, error);
}

int plm_session_clone(const plm_session *s, plm_session **out, char **error) {
    if (error) *error = NULL;
    if (!s || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_session_clone: NULL argument");
    *out = NULL;
    plm_session *c = NULL;
    int st = alloc_session(s->m, &s->p, &c, error);
    if (st) return st;
    const plm_model_config *cfg = &s->m->cfg;
    if (s->lrt) plm_lrt_state_copy(c->lrt, s->lrt); /* the new interpreter gets the caches */
    for (int64_t l = 0; l < cfg->n_layers && !s->lrt; l++) { /* the filled rows of each layer's cache (or ring) */
        const int64_t rows = s->n_past < s->kv_rows[l] ? s->n_past : s->kv_rows[l];
        const size_t off = (size_t)(s->kv_row0[l] * s->kv_row_bytes), n = (size_t)(rows * s->kv_row_bytes);
        memcpy(c->k_cache + off, s->k_cache + off, n);
        memcpy(c->v_cache + off, s->v_cache + off, n);
    }
    memcpy(c->tokens, s->tokens, (size_t)s->n_past * sizeof(int32_t));
    memcpy(c->pending, s->pending, (size_t)s->n_pending * sizeof(int32_t));
    c->n_past = s->n_past;
    c->n_pending = s->n_pending;
    c->rng = s->rng;
    c->has_logits = s->has_logits;
    memcpy(c->logits, s->logits, (size_t)cfg->vocab_size * sizeof(float));
    *out = c;
    return PLM_OK;
}

void plm_session_free(plm_session *s) {
    if (!s) return;
    free(s->k_cache);
    free(s->v_cache);
    free(s->kv_rows);
    free(s->tokens);
    free(s->pending);
    free(s->logits);
    free(s->scratch);
    plm_lrt_state_free(s->lrt);
    free(s->lrt_error);
    plm_lora_free(s->p.lora);
    free(s);
}

int plm_session_set_sampling(plm_session *s, int64_t top_k, double top_p, double temperature, char **error) {
    if (error) *error = NULL;
    if (!s) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_session_set_sampling: NULL session");
    plm_session_params p = s->p;
    p.top_k = top_k;
    p.top_p = top_p;
    p.temperature = temperature;
    const int st = check_params(s->m, &p, error);
    if (!st) s->p = p;
    return st;
}

void plm_session_reseed(plm_session *s, uint64_t seed) {
    if (!s) return;
    s->p.seed = seed;
    plm_rng_seed(&s->rng, seed);
}

uint64_t plm_session_memory(const plm_session *s) { return s ? s->bytes : 0; }
int64_t plm_session_size(const plm_session *s) { return s ? s->n_past + s->n_pending : 0; }
int64_t plm_session_n_past(const plm_session *s) { return s ? s->n_past : 0; }
int64_t plm_session_n_pending(const plm_session *s) { return s ? s->n_pending : 0; }
void plm_session_cancel(plm_session *s) {
    if (!s) return;
    __atomic_store_n(&s->cancel, 1, __ATOMIC_RELEASE);
    /* a LiteRT prefill in flight is asked to stop inside its current run too */
    if (s->lrt && __atomic_load_n(&s->cancel_runs, __ATOMIC_ACQUIRE)) plm_lrt_cancel(s->lrt);
}
void plm_session_traffic(const plm_session *s, plm_traffic *out) {
    if (s && out) *out = s->traffic;
}

int plm_session_add_tokens(plm_session *s, const int32_t *ids, int64_t n, char **error) {
    if (error) *error = NULL;
    if (!s || (n > 0 && !ids) || n < 0) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_session_add_tokens: bad argument");
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->m->cfg.vocab_size)
            return plm_errorf(error, PLM_ERR_INVALID_ARG, "token id %d is outside the vocabulary (%lld tokens)", ids[i],
                              (long long)s->m->cfg.vocab_size);
    if (n > s->p.max_tokens - s->n_past - s->n_pending)
        return plm_errorf(error, PLM_ERR_SHAPE, "%lld tokens do not fit the session's %lld (it holds %lld)",
                          (long long)n, (long long)s->p.max_tokens, (long long)(s->n_past + s->n_pending));
    memcpy(s->pending + s->n_pending, ids, (size_t)n * sizeof(int32_t));
    s->n_pending += n;
    return PLM_OK;
}

/* Runs the pending tokens in batches; logits of the last one into s->logits (and all into `all` when given).
 * PLM_FWD_STOPPED: a cancelled LiteRT prefill; what did not run stays pending. */
static int run_pending(plm_session *s, float *all, char **error) {
    const plm_model_config *c = &s->m->cfg;
    if (c->positions == PLM_POS_LEARNED && s->n_past + s->n_pending > c->max_position_embeddings)
        return plm_errorf(error, PLM_ERR_SHAPE, "position %lld is past the model's %lld learned positions",
                          (long long)(s->n_past + s->n_pending - 1), (long long)c->max_position_embeddings);
    int64_t done = 0;
    const int64_t pos_end = s->n_past + s->n_pending; /* the whole input's end, for every batch of it */
    while (done < s->n_pending) {
        int64_t n = s->n_pending - done;
        if (n > s->p.n_batch) n = s->p.n_batch;
        const int last = done + n == s->n_pending;
        float *out = all ? all + done * c->vocab_size : s->logits;
        const int64_t before = s->n_past;
        const int st = plm_forward(s, s->pending + done, n, out, all ? 2 : (last ? 1 : 0), pos_end);
        if (st && s->lrt) { /* the executor keeps what ran */
            done += s->n_past - before;
            /* a TFLite cancel meant for a generation that has just ended: run the rest */
            if (st == PLM_FWD_STOPPED && !__atomic_load_n(&s->cancel_runs, __ATOMIC_ACQUIRE)) continue;
            memmove(s->pending, s->pending + done, (size_t)(s->n_pending - done) * sizeof(int32_t));
            s->n_pending -= done; /* the rest stays pending */
            if (st == PLM_FWD_STOPPED) return st;
            return plm_errorf(error, st, "forward pass failed: %s", s->lrt_error ? s->lrt_error : plm_status_string(st));
        }
        if (st) return plm_errorf(error, st, "forward pass failed: %s", plm_status_string(st));
        done += n;
    }
    if (all && done > 0) memcpy(s->logits, all + (done - 1) * c->vocab_size, (size_t)c->vocab_size * 4);
    s->has_logits = done > 0 || s->has_logits;
    s->n_pending = 0;
    return PLM_OK;
}

int plm_session_eval(plm_session *s, float *logits, int all, char **error) {
    if (error) *error = NULL;
    if (!s || !logits) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_session_eval: NULL argument");
    if (s->n_pending == 0) return plm_errorf(error, PLM_ERR_INVALID_ARG, "no pending tokens to run");
    int st = run_pending(s, all ? logits : NULL, error);
    if (st) return st;
    if (!all) memcpy(logits, s->logits, (size_t)s->m->cfg.vocab_size * sizeof(float));
    return PLM_OK;
}

int plm_session_predict(plm_session *s, int32_t *token, char **error) {
    if (error) *error = NULL;
    if (!s || !token) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_session_predict: NULL argument");
    if (s->n_pending) {
        int st = run_pending(s, NULL, error);
        if (st) return st;
    }
    if (!s->has_logits) return plm_errorf(error, PLM_ERR_INVALID_ARG, "add tokens before predicting");
    return plm_sample(s->logits, s->m->cfg.vocab_size, s->p.top_k, s->p.top_p, s->p.temperature, &s->rng, token);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void traffic_since(const plm_traffic *now, const plm_traffic *before, plm_traffic *out) {
    out->tokens = now->tokens - before->tokens;
    out->weight_bytes = now->weight_bytes - before->weight_bytes;
    out->kv_bytes = now->kv_bytes - before->kv_bytes;
    out->flops = now->flops - before->flops;
}

int plm_session_generate(plm_session *s, const int32_t *stop_ids, int64_t n_stop, plm_token_fn on_token, void *user,
                         plm_generate_stats *stats, char **error) {
    return plm_session_generate_masked(s, stop_ids, n_stop, on_token, NULL, user, stats, error);
}

int plm_session_generate_masked(plm_session *s, const int32_t *stop_ids, int64_t n_stop, plm_token_fn on_token,
                                plm_logits_fn on_logits, void *user, plm_generate_stats *stats, char **error) {
    if (error) *error = NULL;
    if (!s || (n_stop > 0 && !stop_ids) || n_stop < 0)
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_session_generate: bad argument");
    plm_generate_stats st0;
    if (!stats) stats = &st0;
    memset(stats, 0, sizeof(*stats));
    __atomic_store_n(&s->cancel, 0, __ATOMIC_RELEASE);
    if (s->n_pending == 0 && !s->has_logits)
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "add tokens before generating");
    const double t0 = now_s();
    const plm_traffic c0 = s->traffic;
    stats->prefill_tokens = s->n_pending;
    __atomic_store_n(&s->cancel_runs, s->lrt != NULL, __ATOMIC_RELEASE);
    int st = run_pending(s, NULL, error);
    __atomic_store_n(&s->cancel_runs, 0, __ATOMIC_RELEASE);
    int stopped = st == PLM_FWD_STOPPED; /* cancelled inside the prefill */
    if (stopped) {
        st = PLM_OK;
        stats->prefill_tokens -= s->n_pending;
        stats->stop_reason = PLM_STOP_CANCELLED;
    }
    if (st) return st;
    const double t1 = now_s();
    stats->prefill_s = t1 - t0;
    const plm_traffic c1 = s->traffic;
    traffic_since(&c1, &c0, &stats->prefill);
    const int64_t V = s->m->cfg.vocab_size;
    for (; !stopped;) {
        if (__atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE)) {
            stats->stop_reason = PLM_STOP_CANCELLED;
            break;
        }
        /* a constraint masks this step's logits in place (-inf where a token may not follow); the
         * sampler then draws from what is left, with the same random stream */
        if (on_logits && on_logits(user, s->logits, V)) {
            stats->stop_reason = PLM_STOP_CANCELLED;
            break;
        }
        int32_t token;
        st = plm_sample(s->logits, V, s->p.top_k, s->p.top_p, s->p.temperature, &s->rng, &token);
        if (st) {
            plm_errorf(error, st, "sampling failed: %s", plm_status_string(st));
            break;
        }
        if (stats->decode_tokens == 0) stats->time_to_first_token_s = now_s() - t0;
        int is_stop = 0;
        for (int64_t i = 0; i < n_stop; i++) is_stop |= stop_ids[i] == token;
        if (is_stop) {
            stats->stop_reason = PLM_STOP_TOKEN;
            break;
        }
        stats->decode_tokens++;
        /* a non-zero return asks to stop: the token was delivered, and is run through the model as
         * Python's loop runs it before it looks at its cancel event again */
        const int stop_after = on_token ? on_token(user, token) : 0;
        if (s->n_past + 1 >= s->p.max_tokens) {
            /* input + output tokens reached max_tokens: the response ends here, as on Android */
            s->pending[s->n_pending++] = token;
            stats->stop_reason = PLM_STOP_MAX_TOKENS;
            break;
        }
        if (s->m->cfg.positions == PLM_POS_LEARNED && s->n_past + 1 > s->m->cfg.max_position_embeddings) {
            st = plm_errorf(error, PLM_ERR_SHAPE, "position %lld is past the model's %lld learned positions",
                            (long long)s->n_past, (long long)s->m->cfg.max_position_embeddings);
            break;
        }
        st = plm_forward(s, &token, 1, s->logits, 1, s->n_past + 1);
        if (st == PLM_FWD_STOPPED) { /* a LiteRT run cancelled by a cancel that raced the prefill's end */
            s->pending[s->n_pending++] = token;
            st = PLM_OK;
            stats->stop_reason = PLM_STOP_CANCELLED;
            break;
        }
        if (st) {
            plm_errorf(error, st, "forward pass failed: %s", s->lrt_error ? s->lrt_error : plm_status_string(st));
            break;
        }
        if (stop_after) __atomic_store_n(&s->cancel, 1, __ATOMIC_RELEASE);
    }
    stats->decode_s = now_s() - t1;
    const plm_traffic c2 = s->traffic;
    traffic_since(&c2, &c1, &stats->decode);
    return st;
}

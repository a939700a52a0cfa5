/*
 * test_engine.c — the engine end to end from C: open a model file, run
 * sessions (greedy generation, determinism, clone, a cancel from another
 * thread, a context that runs full, bad input) and print the greedy tokens
 * of a fixed prompt, which tests/model/test_native_c.py compares with the
 * Python engine's. Usage: test_engine MODEL.gguf [N_TOKENS]
 */
#include "pocketlm.h"
#include "plm_test.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static const int32_t PROMPT[] = {1, 17, 200, 33, 5, 99, 250, 7};
#define N_PROMPT ((int64_t)(sizeof PROMPT / sizeof PROMPT[0]))
#define MAX_OUT 256

typedef struct {
    int32_t tokens[MAX_OUT];
    int n;
    int cancel_at;        /* > 0: announce when this many tokens have come */
    volatile int reached; /* set by the callback, read by the canceller */
} collected;

static int on_token(void *user, int32_t token) {
    collected *c = (collected *)user;
    if (c->n < MAX_OUT) c->tokens[c->n] = token;
    c->n++;
    if (c->cancel_at > 0 && c->n == c->cancel_at) {
        __atomic_store_n(&c->reached, 1, __ATOMIC_RELEASE);
        /* give the canceller its chance while this generation is still running */
        while (__atomic_load_n(&c->reached, __ATOMIC_ACQUIRE) == 1) sched_yield();
    }
    return 0;
}

static plm_session *greedy_session(plm_model *m, int64_t max_tokens, int kv_type) {
    plm_session_params p;
    plm_session_params_default(&p);
    p.max_tokens = max_tokens;
    p.kv_type = kv_type;
    p.top_k = 1;
    plm_session *s = NULL;
    char *err = NULL;
    const int st = plm_session_create(m, &p, &s, &err);
    EXPECT(st == PLM_OK && s, "session: %s", err ? err : "?");
    plm_free(err);
    return s;
}

static int generate(plm_session *s, collected *c, plm_generate_stats *stats) {
    char *err = NULL;
    const int st = plm_session_generate(s, NULL, 0, on_token, c, stats, &err);
    EXPECT(st == PLM_OK, "generate: %s", err ? err : "?");
    plm_free(err);
    return st;
}

typedef struct {
    plm_session *s;
    collected *c;
} canceller_arg;

static void *canceller(void *varg) {
    canceller_arg *a = (canceller_arg *)varg;
    while (!__atomic_load_n(&a->c->reached, __ATOMIC_ACQUIRE)) sched_yield();
    plm_session_cancel(a->s);
    __atomic_store_n(&a->c->reached, 2, __ATOMIC_RELEASE);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [N_TOKENS]\n", argv[0]);
        return 2;
    }
    const int n_out = argc > 2 ? atoi(argv[2]) : 16;
    char *err = NULL;
    plm_model *m = NULL;

    /* a missing file is an error that names it */
    EXPECT(plm_model_open("/nonexistent/model.gguf", 0, 0, &m, &err) != PLM_OK && m == NULL, "missing file opened");
    EXPECT(err && strstr(err, "/nonexistent/model.gguf"), "message does not name the file: %s", err ? err : "NULL");
    plm_free(err);
    err = NULL;

    if (plm_model_open(argv[1], 0, 0, &m, &err) != PLM_OK) {
        fprintf(stderr, "FAIL: %s\n", err ? err : "open failed");
        return 1;
    }
    const plm_model_config *cfg = plm_model_get_config(m);
    EXPECT(cfg && cfg->vocab_size > 0, "no config");

    /* greedy generation, twice: the same tokens */
    collected a = {0}, b = {0};
    plm_session *s1 = greedy_session(m, N_PROMPT + n_out, PLM_TYPE_F16);
    plm_session *s2 = greedy_session(m, N_PROMPT + n_out, PLM_TYPE_F16);
    EXPECT(plm_session_add_tokens(s1, PROMPT, N_PROMPT, NULL) == PLM_OK, "add");
    EXPECT(plm_session_add_tokens(s2, PROMPT, N_PROMPT, NULL) == PLM_OK, "add");
    plm_generate_stats st1, st2;
    generate(s1, &a, &st1);
    generate(s2, &b, &st2);
    EXPECT(a.n == b.n && memcmp(a.tokens, b.tokens, sizeof(int32_t) * (size_t)(a.n < MAX_OUT ? a.n : MAX_OUT)) == 0,
           "two greedy runs differ");
    /* no stop ids: the run ends at max_tokens with the context full and the last token pending */
    EXPECT(st1.stop_reason == PLM_STOP_MAX_TOKENS, "stop reason %d", st1.stop_reason);
    EXPECT(a.n == n_out, "%d tokens for %d", a.n, n_out);
    EXPECT(plm_session_size(s1) == N_PROMPT + n_out && plm_session_n_pending(s1) == 1, "size %lld pending %lld",
           (long long)plm_session_size(s1), (long long)plm_session_n_pending(s1));
    EXPECT(st1.prefill_tokens == N_PROMPT && st1.decode_tokens == n_out, "stats");
    EXPECT(st1.prefill.tokens == N_PROMPT && st1.decode.weight_bytes > 0, "traffic");
    /* a full context refuses more */
    int32_t one = 1;
    EXPECT(plm_session_add_tokens(s1, &one, 1, &err) != PLM_OK && err, "a full context took a token");
    plm_free(err);
    err = NULL;
    printf("greedy:");
    for (int i = 0; i < a.n && i < MAX_OUT; i++) printf(" %d", a.tokens[i]);
    printf("\n");

    /* stop ids: generation ends before the stop token, which is not handed over */
    if (a.n > 3) {
        plm_session *s3 = greedy_session(m, N_PROMPT + n_out, PLM_TYPE_F16);
        plm_session_add_tokens(s3, PROMPT, N_PROMPT, NULL);
        collected c = {0};
        plm_generate_stats st;
        const int32_t stop = a.tokens[3];
        int first = 0;
        while (a.tokens[first] != stop) first++;
        plm_session_generate(s3, &stop, 1, on_token, &c, &st, NULL);
        EXPECT(st.stop_reason == PLM_STOP_TOKEN && c.n == first, "stop token: reason %d after %d", st.stop_reason, c.n);
        plm_session_free(s3);
    }

    /* a clone continues exactly as its source */
    plm_session *src = greedy_session(m, N_PROMPT + n_out, PLM_TYPE_F32);
    plm_session_add_tokens(src, PROMPT, N_PROMPT, NULL);
    int32_t t0;
    EXPECT(plm_session_predict(src, &t0, NULL) == PLM_OK, "predict");
    plm_session *fork = NULL;
    EXPECT(plm_session_clone(src, &fork, NULL) == PLM_OK && fork, "clone");
    EXPECT(plm_session_memory(fork) == plm_session_memory(src) && plm_session_n_past(fork) == N_PROMPT, "clone size");
    collected ca = {0}, cb = {0};
    plm_session_add_tokens(src, &t0, 1, NULL);
    plm_session_add_tokens(fork, &t0, 1, NULL);
    generate(src, &ca, NULL);
    generate(fork, &cb, NULL);
    EXPECT(ca.n == cb.n && ca.n > 0 && memcmp(ca.tokens, cb.tokens, sizeof(int32_t) * (size_t)ca.n) == 0,
           "the clone went its own way");
    plm_session_free(fork);
    plm_session_free(src);

    /* cancel from another thread: the step in flight finishes, no more */
    plm_session *sc = greedy_session(m, 200, PLM_TYPE_F16);
    plm_session_add_tokens(sc, PROMPT, N_PROMPT, NULL);
    collected cc = {0};
    cc.cancel_at = 3;
    canceller_arg arg = {sc, &cc};
    pthread_t th;
    pthread_create(&th, NULL, canceller, &arg);
    plm_generate_stats stc;
    generate(sc, &cc, &stc);
    pthread_join(th, NULL);
    EXPECT(stc.stop_reason == PLM_STOP_CANCELLED && cc.n == 3, "cancel: reason %d after %d tokens",
           stc.stop_reason, cc.n);
    plm_session_free(sc);

    /* bad input is refused, nothing is added */
    plm_session *sb = greedy_session(m, 16, PLM_TYPE_F16);
    const int32_t bad = (int32_t)cfg->vocab_size;
    EXPECT(plm_session_add_tokens(sb, &bad, 1, &err) != PLM_OK && err && strstr(err, "vocabulary"), "bad id");
    plm_free(err);
    err = NULL;
    EXPECT(plm_session_size(sb) == 0, "a refused token was added");
    EXPECT(plm_session_predict(sb, &t0, &err) != PLM_OK, "predict with nothing added");
    plm_free(err);
    plm_session_params p;
    plm_session_params_default(&p);
    p.max_tokens = 0;
    plm_session *none = NULL;
    err = NULL;
    EXPECT(plm_session_create(m, &p, &none, &err) != PLM_OK && none == NULL && err, "max_tokens 0 accepted");
    plm_free(err);
    plm_session_free(sb);

    plm_session_free(s1);
    plm_session_free(s2);
    plm_model_free(m);
    if (g_failures) fprintf(stderr, "%d failures\n", g_failures);
    return g_failures ? 1 : 0;
}

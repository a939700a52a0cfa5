/* A program written against MediaPipe's C API only, run by tests/genai/test_c_api.py:
 *   mp_api_check MODEL MAX_TOKENS TOPK TEMPERATURE SEED PROMPT1 PROMPT2
 * Turn 1 with PredictSync, then a clone answers turn 2 with PredictAsync
 * (pieces in order, done last) while the original answers turn 2 with
 * PredictSync (an empty PROMPT2: one turn only); SizeInTokens of PROMPT1.
 * PROMPT2 "-": one turn, answered by the session with PredictSync and by a
 * clone made before it with PredictAsync (what ctest runs under the
 * sanitizers on models that never stop early). MP_LORA_PATH, when set, is
 * the session's lora_path (and MP_LORA_RANK one supported rank). Output
 * records end with \x1e. */
#include "llm_inference_engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, calls, after_done;
    char text[65536];
} collect;

static void on_response(void *ctx, LlmResponseContext *rc) {
    collect *c = (collect *)ctx;
    pthread_mutex_lock(&c->mu);
    if (c->done) c->after_done++;
    c->calls++;
    for (int i = 0; i < rc->response_count; i++) strncat(c->text, rc->response_array[i], sizeof c->text - strlen(c->text) - 1);
    if (rc->done) c->done = 1;
    LlmInferenceEngine_CloseResponseContext(rc);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int fail(const char *what, char *error) {
    printf("ERROR %s: %s\x1e", what, error ? error : "(no message)");
    free(error);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 8) return 2;
    LlmModelSettings ms;
    memset(&ms, 0, sizeof ms);
    ms.model_path = argv[1];
    ms.max_num_tokens = strtoul(argv[2], 0, 10);
    LlmSessionConfig sc;
    memset(&sc, 0, sizeof sc);
    sc.topk = strtoul(argv[3], 0, 10);
    sc.topp = 1.0f;
    sc.temperature = strtof(argv[4], 0);
    sc.random_seed = strtoul(argv[5], 0, 10);
    sc.lora_path = getenv("MP_LORA_PATH");
    size_t rank = getenv("MP_LORA_RANK") ? strtoul(getenv("MP_LORA_RANK"), 0, 10) : 0;
    if (rank) {
        ms.number_of_supported_lora_ranks = 1;
        ms.supported_lora_ranks = &rank;
    }
    char *error = NULL;
    LlmInferenceEngine_Engine *engine = NULL;
    LlmInferenceEngine_Session *s = NULL, *clone = NULL;
    if (LlmInferenceEngine_CreateEngine(&ms, &engine, &error)) return fail("CreateEngine", error);
    if (LlmInferenceEngine_CreateSession(engine, &sc, &s, &error)) return fail("CreateSession", error);
    LlmInferenceEngine_Engine_Delete(engine); /* the session keeps what it needs */
    printf("SIZE %d\x1e", LlmInferenceEngine_Session_SizeInTokens(s, argv[6], &error));
    LlmResponseContext rc;
    if (LlmInferenceEngine_Session_PredictSync(s, &rc, &error) == 0) return fail("PredictSync before a query", NULL);
    free(error), error = NULL;
    if (LlmInferenceEngine_Session_AddQueryChunk(s, argv[6], &error)) return fail("AddQueryChunk", error);
    const int clone_first = strcmp(argv[7], "-") == 0;
    if (clone_first && LlmInferenceEngine_Session_Clone(s, &clone, &error)) return fail("Clone", error);
    if (LlmInferenceEngine_Session_PredictSync(s, &rc, &error)) return fail("PredictSync", error);
    printf("SYNC1 %s\x1e", rc.response_array[0]);
    LlmInferenceEngine_CloseResponseContext(&rc);
    if (!argv[7][0]) { /* one turn only */
        LlmInferenceEngine_Session_Delete(s);
        return 0;
    }
    if (!clone_first && LlmInferenceEngine_Session_Clone(s, &clone, &error)) return fail("Clone", error);
    collect c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, {0}};
    if (!clone_first && LlmInferenceEngine_Session_AddQueryChunk(clone, argv[7], &error))
        return fail("AddQueryChunk clone", error);
    if (LlmInferenceEngine_Session_PredictAsync(clone, &c, &error, on_response)) return fail("PredictAsync", error);
    /* a second generation while one runs is refused */
    if (LlmInferenceEngine_Session_PredictAsync(clone, &c, &error, on_response) == 0) return fail("overlap", NULL);
    printf("OVERLAP %s\x1e", error);
    free(error), error = NULL;
    pthread_mutex_lock(&c.mu);
    while (!c.done) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    LlmInferenceEngine_Session_Delete(clone);
    printf("ASYNC2 %s\x1e", c.text);
    printf("CALLS %d %d\x1e", c.calls, c.after_done);
    if (clone_first) {
        LlmInferenceEngine_Session_Delete(s);
        return c.after_done ? 1 : 0;
    }
    if (LlmInferenceEngine_Session_AddQueryChunk(s, argv[7], &error)) return fail("AddQueryChunk 2", error);
    if (LlmInferenceEngine_Session_PredictSync(s, &rc, &error)) return fail("PredictSync 2", error);
    printf("SYNC2 %s\x1e", rc.response_array[0]);
    LlmInferenceEngine_CloseResponseContext(&rc);
    LlmInferenceEngine_Session_Delete(s);
    return 0;
}

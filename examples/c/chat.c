/*
 * chat.c — a chat on MediaPipe's LLM Inference C API (llm_inference_engine.h),
 * served by libpocketlm. The same source builds against MediaPipe's library.
 *
 *   chat MODEL [--max-tokens N] [--top-k K] [--temperature T] [--seed S] [--async] [PROMPT...]
 *
 * With prompts on the command line each is one turn of the same session and
 * the program exits; without, it reads one turn per line from stdin.
 * --async streams the reply through PredictAsync instead of PredictSync.
 */
#include "llm_inference_engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} waiter;

static void on_response(void *ctx, LlmResponseContext *rc) {
    waiter *w = (waiter *)ctx;
    for (int i = 0; i < rc->response_count; i++) fputs(rc->response_array[i], stdout);
    fflush(stdout);
    const int done = rc->done;
    LlmInferenceEngine_CloseResponseContext(rc);
    if (done) {
        pthread_mutex_lock(&w->mu);
        w->done = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

static int turn(LlmInferenceEngine_Session *session, const char *prompt, int async) {
    char *error = NULL;
    if (LlmInferenceEngine_Session_AddQueryChunk(session, prompt, &error) != 0) {
        fprintf(stderr, "chat: %s\n", error);
        free(error);
        return 1;
    }
    if (async) {
        waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
        if (LlmInferenceEngine_Session_PredictAsync(session, &w, &error, on_response) != 0) {
            fprintf(stderr, "chat: %s\n", error);
            free(error);
            return 1;
        }
        pthread_mutex_lock(&w.mu);
        while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
    } else {
        LlmResponseContext rc;
        if (LlmInferenceEngine_Session_PredictSync(session, &rc, &error) != 0) {
            fprintf(stderr, "chat: %s\n", error);
            free(error);
            return 1;
        }
        fputs(rc.response_array[0], stdout);
        LlmInferenceEngine_CloseResponseContext(&rc);
    }
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [--max-tokens N] [--top-k K] [--temperature T] [--seed S] [--async] "
                        "[PROMPT...]\n", argv[0]);
        return 2;
    }
    LlmModelSettings settings;
    memset(&settings, 0, sizeof settings);
    settings.model_path = argv[1];
    settings.max_num_tokens = 512;
    LlmSessionConfig config;
    memset(&config, 0, sizeof config);
    config.topk = 40, config.topp = 1.0f, config.temperature = 0.8f, config.random_seed = 0;
    int async = 0, first_prompt = argc;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--max-tokens") == 0 && i + 1 < argc) settings.max_num_tokens = strtoul(argv[++i], 0, 10);
        else if (strcmp(argv[i], "--top-k") == 0 && i + 1 < argc) config.topk = strtoul(argv[++i], 0, 10);
        else if (strcmp(argv[i], "--temperature") == 0 && i + 1 < argc) config.temperature = strtof(argv[++i], 0);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) config.random_seed = strtoul(argv[++i], 0, 10);
        else if (strcmp(argv[i], "--async") == 0) async = 1;
        else {
            first_prompt = i;
            break;
        }
    }
    char *error = NULL;
    LlmInferenceEngine_Engine *engine = NULL;
    if (LlmInferenceEngine_CreateEngine(&settings, &engine, &error) != 0) {
        fprintf(stderr, "chat: %s\n", error);
        free(error);
        return 1;
    }
    LlmInferenceEngine_Session *session = NULL;
    if (LlmInferenceEngine_CreateSession(engine, &config, &session, &error) != 0) {
        fprintf(stderr, "chat: %s\n", error);
        free(error);
        LlmInferenceEngine_Engine_Delete(engine);
        return 1;
    }
    int rc = 0;
    if (first_prompt < argc) {
        for (int i = first_prompt; i < argc && !rc; i++) rc = turn(session, argv[i], async);
    } else {
        char line[4096];
        while (!rc && fgets(line, sizeof line, stdin)) {
            line[strcspn(line, "\n")] = '\0';
            if (line[0]) rc = turn(session, line, async);
        }
    }
    LlmInferenceEngine_Session_Delete(session);
    LlmInferenceEngine_Engine_Delete(engine);
    return rc;
}

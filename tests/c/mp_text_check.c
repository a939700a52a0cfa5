/* Text handed to MediaPipe's C API as bytes, run by tests/genai/test_c_api.py:
 *   mp_text_check MODEL TEXT
 * SizeInTokens, AddQueryChunk and (pocketlm's extra) plm_llm_session_set_prompt_templates
 * with TEXT as the user prefix, each on a fresh session; records "CALL status message"
 * end with \x1e. Text that is not UTF-8 must be refused with a message naming the byte offset. */
#include "llm_inference_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void report(const char *call, int status, char *error) {
    printf("%s %d %s\x1e", call, status, error ? error : "");
    free(error);
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    LlmModelSettings ms;
    memset(&ms, 0, sizeof ms);
    ms.model_path = argv[1];
    ms.max_num_tokens = 64;
    LlmSessionConfig sc;
    memset(&sc, 0, sizeof sc);
    sc.topk = 1;
    sc.topp = 1.0f;
    char *error = NULL;
    LlmInferenceEngine_Engine *engine = NULL;
    if (LlmInferenceEngine_CreateEngine(&ms, &engine, &error)) {
        report("CreateEngine", 1, error);
        return 1;
    }
    for (int call = 0; call < 3; call++) {
        LlmInferenceEngine_Session *s = NULL;
        if (LlmInferenceEngine_CreateSession(engine, &sc, &s, &error)) {
            report("CreateSession", 1, error);
            return 1;
        }
        error = NULL;
        const int status = call == 0 ? LlmInferenceEngine_Session_SizeInTokens(s, argv[2], &error)
                           : call == 1 ? LlmInferenceEngine_Session_AddQueryChunk(s, argv[2], &error)
                                       : plm_llm_session_set_prompt_templates(s, argv[2], "", "", "", "", "", &error);
        report(call == 0 ? "SIZE" : call == 1 ? "ADD" : "TEMPLATES", status, error);
        LlmInferenceEngine_Session_Delete(s);
    }
    LlmInferenceEngine_Engine_Delete(engine);
    return 0;
}

/*
 * test_litert.c — the LiteRT entry points without LiteRT's runtime library
 * (ctest runs it under the sanitizers in CI, where loading the 131 MB
 * liblitert-lm.so is kept out): every call refuses with a status and a
 * message saying how to get the library, a library that is not LiteRT's is
 * refused by the symbol it lacks, arguments are checked, and a GGUF model is
 * not a LiteRT one. tests/model/test_litert_executor.py runs the executor
 * itself against LiteRT's interpreter.
 */
#include "pocketlm.h"

#include <stdlib.h>
#include <string.h>

#include "plm_test.h"

int main(int argc, char **argv) {
    unsetenv("POCKETLM_LITERT_LIB"); /* this test is about its absence */
    char *err = NULL;
    plm_model *m = (plm_model *)&err;

    int st = plm_model_open_litert("model.tflite", 0, 0, &m, &err);
    EXPECT(st == PLM_ERR_NOT_FOUND && m == NULL, "open without the library: status %d", st);
    EXPECT(err && strstr(err, "pip install pocketlm[litert]") && strstr(err, "POCKETLM_LITERT_LIB"),
           "the message says how to get the library: %s", err ? err : "(none)");
    plm_free(err);

    st = plm_litert_set_library("/nonexistent/liblitert-lm.so", &err);
    EXPECT(st < 0 && err && strstr(err, "/nonexistent/liblitert-lm.so"), "a missing file: %d %s", st, err ? err : "");
    plm_free(err);
    st = plm_litert_set_library("libm.so.6", &err); /* loads, but is no TFLite */
    EXPECT(st == PLM_ERR_NOT_FOUND && err && strstr(err, "does not export TfLite"), "libm: %d %s", st, err ? err : "");
    plm_free(err);
    EXPECT(plm_litert_library() == NULL, "nothing stays loaded after a refusal");

    EXPECT(plm_litert_set_library(NULL, &err) == PLM_ERR_INVALID_ARG, "NULL path");
    plm_free(err);
    EXPECT(plm_model_open_litert(NULL, 0, 0, &m, &err) == PLM_ERR_INVALID_ARG, "NULL path");
    plm_free(err);
    EXPECT(plm_model_open_litert("model.tflite", 0, 0, NULL, NULL) == PLM_ERR_INVALID_ARG, "NULL out, NULL error");
    EXPECT(plm_model_is_litert(NULL) == 0, "NULL model");
    EXPECT(plm_model_litert_prefill_lengths(NULL, NULL, 0) == PLM_ERR_INVALID_ARG, "NULL model");

    if (argc > 1) { /* a GGUF model is pocketlm's own */
        plm_model *g = NULL;
        st = plm_model_open(argv[1], 0, 0, &g, &err);
        EXPECT(st == PLM_OK, "open %s: %s", argv[1], err ? err : "");
        plm_free(err);
        if (g) {
            int64_t lens[4];
            EXPECT(plm_model_is_litert(g) == 0, "a GGUF model is not a LiteRT one");
            EXPECT(plm_model_litert_prefill_lengths(g, lens, 4) == PLM_ERR_INVALID_ARG, "no prefill lengths");
            plm_model_free(g);
        }
    }
    if (g_failures) return 1;
    printf("test_litert: ok\n");
    return 0;
}

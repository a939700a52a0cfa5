/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader, the model config
 * reader and the engine's model binding: any bytes are opened as a file (as
 * a whole and at an offset, the .task case), every key, array element and
 * tensor is queried, the config is read, and a file that opens as a model
 * runs one token through a session. Build with -DPLM_FUZZ=ON and clang; run e.g.
 *   build/fuzz/native/fuzz_gguf -max_total_time=60 tests/fixtures/llama_cpp
 */
#define _GNU_SOURCE
#include "pocketlm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void exercise(const char *path, uint64_t offset, uint64_t length) {
    plm_gguf *g = NULL;
    char *err = NULL;
    if (plm_gguf_open(path, offset, length, &g, &err) != PLM_OK) {
        if (!err || !strstr(err, path)) abort(); /* a refusal always names the file */
        plm_free(err);
        return;
    }
    for (int64_t i = 0; i < plm_gguf_n_kv(g); i++) {
        int64_t iv;
        double dv;
        const char *s;
        uint64_t n, cnt;
        int et;
        const void *data;
        plm_gguf_get_int(g, i, &iv);
        plm_gguf_get_float(g, i, &dv);
        if (plm_gguf_get_str(g, i, &s, &n) == PLM_OK && n) (void)s[n - 1];
        if (plm_gguf_arr_info(g, i, &et, &cnt, &data) == PLM_OK && et == PLM_GGUF_STRING)
            for (uint64_t j = 0; j < cnt; j++)
                if (plm_gguf_arr_str(g, i, j, &s, &n) == PLM_OK && n) (void)s[n - 1];
    }
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < plm_gguf_n_tensors(g); i++) {
        const void *data;
        uint64_t nbytes;
        if (plm_gguf_tensor_info(g, i, NULL, NULL, NULL, NULL, &data, &nbytes) == PLM_OK && nbytes)
            sink ^= ((const uint8_t *)data)[nbytes - 1]; /* the last byte must be inside the map */
    }
    (void)sink;
    plm_model_config *cfg = (plm_model_config *)malloc(sizeof *cfg);
    err = NULL;
    if (cfg && plm_gguf_model_config(g, cfg, &err) != PLM_OK) {
        if (!err || !strstr(err, path)) abort();
        plm_free(err);
    }
    free(cfg);
    plm_gguf_close(g);

    plm_model *m = NULL;
    err = NULL;
    if (plm_model_open(path, offset, length, &m, &err) != PLM_OK) {
        if (!err || !strstr(err, path)) abort();
        plm_free(err);
        return;
    }
    plm_session_params p;
    plm_session_params_default(&p);
    p.max_tokens = 4;
    p.n_threads = 1;
    plm_session *s = NULL;
    if (plm_session_create(m, &p, &s, NULL) == PLM_OK) {
        const int32_t tok = 0;
        float *logits = (float *)malloc((size_t)plm_model_get_config(m)->vocab_size * sizeof(float));
        if (logits && plm_session_add_tokens(s, &tok, 1, NULL) == PLM_OK) plm_session_eval(s, logits, 0, NULL);
        free(logits);
        plm_session_free(s);
    }
    plm_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const int fd = memfd_create("plm_fuzz", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) { close(fd); return 0; }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    exercise(path, 0, 0);
    if (size > 16) exercise(path, 16, size - 16); /* a GGUF stored inside a larger file */
    close(fd);
    return 0;
}

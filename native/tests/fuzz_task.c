/*
 * fuzz_task.c — libFuzzer target for the .task reader: any bytes are opened
 * as a bundle (zip directory, local headers, stored entries) and read as
 * METADATA (the LlmParameters wire reader). A refusal must name the file;
 * every entry must lie inside it. Build with -DPLM_FUZZ=ON and clang.
 */
#define _GNU_SOURCE
#include "pocketlm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    plm_llm_params p;
    if (plm_llm_params_parse(data, size, &p) == 0) {
        volatile char sink = 0;
        for (int64_t i = 0; i < p.n_stop_tokens; i++)
            if (p.stop_tokens[i].len) sink ^= p.stop_tokens[i].ptr[p.stop_tokens[i].len - 1];
        (void)sink;
    }
    const int fd = memfd_create("plm_fuzz_task", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    plm_task *t = NULL;
    char *err = NULL;
    if (plm_task_open(path, &t, &err) != PLM_OK) {
        if (!err || !strstr(err, path)) abort();
        plm_free(err);
    } else {
        for (int64_t i = 0; i < plm_task_n_entries(t); i++) {
            uint64_t off, n;
            int stored;
            plm_task_entry(t, i, NULL, &off, &n, &stored);
            if (stored && (off > size || n > size - off)) abort();
        }
        if (plm_task_metadata(t, &p, &err) != PLM_OK && err) {
            if (!strstr(err, path)) abort();
            plm_free(err);
        }
        plm_task_close(t);
    }
    close(fd);
    return 0;
}

/*
 * fuzz_litertlm.c — libFuzzer target for the .litertlm reader: any bytes are
 * opened as a .litertlm (header flatbuffer, section table), its LlmMetadata
 * read and its tokenizer taken (HF_Tokenizer_Zlib inflated); the bytes are
 * also read as an LlmMetadata protobuf by themselves. A refusal must name
 * the file; every section must lie inside it. Build with -DPLM_FUZZ=ON and clang.
 */
#define _GNU_SOURCE
#include "pocketlm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void touch(const plm_litertlm_llm_metadata *m) {
    volatile char sink = 0;
    for (int64_t i = 0; i < m->n_stop_tokens; i++) {
        const plm_litertlm_token *t = &m->stop_tokens[i];
        if (t->kind == PLM_LITERTLM_TOKEN_TEXT && t->text.len) sink ^= t->text.ptr[t->text.len - 1];
        if (t->kind == PLM_LITERTLM_TOKEN_IDS) {
            if (t->first_id < 0 || t->first_id + t->n_ids > m->n_token_ids) abort();
            for (int64_t j = 0; j < t->n_ids; j++) sink ^= (char)m->token_ids[t->first_id + j];
        }
    }
    if (m->has_jinja_template && m->jinja_template.len) sink ^= m->jinja_template.ptr[m->jinja_template.len - 1];
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static plm_litertlm_llm_metadata m;
    if (plm_litertlm_metadata_parse(data, size, &m) == 0) touch(&m);
    const int fd = memfd_create("plm_fuzz_litertlm", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    plm_litertlm *f = NULL;
    char *err = NULL;
    if (plm_litertlm_open(path, &f, &err) != PLM_OK) {
        if (!err || !strstr(err, path)) abort();
        plm_free(err);
    } else {
        for (int64_t i = 0; i < plm_litertlm_n_sections(f); i++) {
            uint64_t off, n;
            const char *model_type;
            plm_litertlm_section(f, i, NULL, &off, &n, &model_type);
            if (off > size || n > size - off) abort();
            if (model_type && !strlen(model_type)) abort();
        }
        if (plm_litertlm_metadata(f, &m, &err) == PLM_OK) touch(&m);
        else if (err && !strstr(err, path)) abort();
        plm_free(err);
        err = NULL;
        int kind;
        const void *tok;
        uint64_t n;
        if (plm_litertlm_tokenizer(f, &kind, &tok, &n, &err) == PLM_OK) {
            if (n && ((const volatile char *)tok)[n - 1] == 0x7f) (void)0; /* the bytes are all there */
        } else if (err && !strstr(err, path)) {
            abort();
        }
        plm_free(err);
        plm_litertlm_close(f);
    }
    close(fd);
    return 0;
}

/*
 * fuzz_tokenizer.c — libFuzzer target for the text path. The first byte of
 * an input chooses what the rest is:
 *   0: a TOKENIZER_MODEL entry (tokenizer.json or a SentencePiece
 *      ModelProto) read with plm_tokenizer_from_bytes, then used;
 *   1: a pre-tokenizer pattern (up to a NUL) and the text it splits;
 *   else: text encoded and decoded with the vocabularies of the GGUF files
 *      named by PLM_FUZZ_VOCABS (colon-separated), loaded once.
 * Ids must stay inside the vocabulary, sizing calls must agree with filling
 * ones, and a refusal must carry a message. Build with -DPLM_FUZZ=ON and clang.
 */
#include "pocketlm.h"
#include "text/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOCABS 16
static plm_tokenizer *g_vocabs[MAX_VOCABS];
static int g_n_vocabs;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *env = getenv("PLM_FUZZ_VOCABS");
    if (!env) return 0;
    char *list = strdup(env);
    for (char *save = NULL, *p = strtok_r(list, ":", &save); p && g_n_vocabs < MAX_VOCABS; p = strtok_r(NULL, ":", &save)) {
        plm_gguf *g = NULL;
        char *err = NULL;
        if (plm_gguf_open(p, 0, 0, &g, &err) != PLM_OK || plm_tokenizer_from_gguf(g, p, &g_vocabs[g_n_vocabs], &err) != PLM_OK) {
            fprintf(stderr, "PLM_FUZZ_VOCABS: %s\n", err ? err : p);
            abort();
        }
        plm_gguf_close(g); /* the tokenizer keeps its own copy */
        g_n_vocabs++;
    }
    free(list);
    return 0;
}

static void use(const plm_tokenizer *t, const char *text, size_t n) {
    int64_t count = -1, count2 = -1;
    char *err = NULL;
    if (plm_tokenizer_encode(t, text, n, 1, NULL, 0, &count, &err) != PLM_OK) {
        if (!err) abort();
        plm_free(err);
        return;
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(count + 1));
    if (plm_tokenizer_encode(t, text, n, 1, ids, count, &count2, &err) != PLM_OK || count2 != count) abort();
    const int64_t nv = plm_tokenizer_vocab_size(t);
    for (int64_t i = 0; i < count; i++)
        if (ids[i] < 0 || ids[i] >= nv) abort();
    uint64_t size = 0, size2 = 0;
    if (plm_tokenizer_decode(t, ids, count, NULL, 0, &size, &err) != PLM_OK) abort();
    char *out = malloc(size + 1);
    if (plm_tokenizer_decode(t, ids, count, out, size, &size2, &err) != PLM_OK || size2 != size) abort();
    for (int64_t i = 0; i < count; i++) {
        char piece[64];
        size_t len = 0;
        plm_tokenizer_token_bytes(t, ids[i], piece, sizeof piece, &len);
    }
    free(out);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *rest = (const char *)data + 1;
    const size_t n = size - 1;
    if (data[0] == 0) {
        plm_tokenizer *t = NULL;
        char *err = NULL;
        const int64_t eos[1] = {2};
        if (plm_tokenizer_from_bytes(rest, n, -1, eos, 1, "fuzz", &t, &err) != PLM_OK) {
            if (!err || !strstr(err, "fuzz")) abort();
            plm_free(err);
            return 0;
        }
        use(t, "Hello  wörld 日本 🙂 \t\n<s>", strlen("Hello  wörld 日本 🙂 \t\n<s>"));
        plm_tokenizer_free(t);
    } else if (data[0] == 1) {
        const char *nul = memchr(rest, 0, n);
        if (!nul) return 0;
        char err[256];
        plm_regex *re = plm_regex_compile(rest, err, sizeof err);
        if (!re) {
            if (!err[0]) abort();
            return 0;
        }
        const char *text = nul + 1;
        const size_t tn = n - (size_t)(text - rest);
        uint32_t *cps = malloc(sizeof(uint32_t) * (tn + 1));
        int64_t m = 0;
        for (size_t i = 0, len = 0; i < tn; i += len ? len : 1)
            cps[m++] = plm_utf8_next((const uint8_t *)text + i, tn - i, &len);
        for (int64_t from = 0, start, end; from <= m;) {
            const int r = plm_regex_search(re, cps, m, from, &start, &end);
            if (r <= 0) break;
            if (start < from || end < start || end > m) abort();
            from = end > start ? end : start + 1;
        }
        free(cps);
        plm_regex_free(re);
    } else {
        for (int i = 0; i < g_n_vocabs; i++) use(g_vocabs[i], rest, n);
    }
    return 0;
}

/*
 * test_tokenizer.c — the C tokenizers without Python, over every llama.cpp
 * fixture vocabulary in DIR (test_tokenizer DIR): awkward text (mixed
 * scripts, emoji, control characters, runs of spaces, invalid UTF-8, special
 * token text) encodes to ids inside the vocabulary, sizing calls agree with
 * filling ones, decoding gives valid UTF-8, and a byte-level BPE vocabulary
 * gives its input back. Python checks the ids against the Python tokenizers
 * (tests/model/test_c_tokenizer.py); this program is what the ASan/UBSan
 * build runs over the same code.
 */
#include "pocketlm.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plm_test.h"

static const char *TEXTS[] = {
    "Hello, world!",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\n\n\n",
    "ünïcödé ÀÉÎÕÜ straße İstanbul",
    "日本語のテキスト 中文 한국어",
    "emoji 🙂👍🏽 👨‍👩‍👧 flags 🇫🇷",
    "numbers 1234567890 3.14159 1,000,000",
    "code: for (int i = 0; i < n; i++) { x += y[i]; }",
    "contractions don't I'll we've they're",
    "<s></s><unk><|endoftext|><|im_start|>",
    "\xff\xfe invalid \xc3 utf-8 \xe2\x82",
    "a",
    "",
    "                                                                ",
};

static int valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] >> 6) != 2) return 0;
        i += k;
    }
    return 1;
}

static void check_vocab(const char *path) {
    plm_gguf *g = NULL;
    plm_tokenizer *t = NULL;
    char *err = NULL;
    if (plm_gguf_open(path, 0, 0, &g, &err) != PLM_OK) {
        EXPECT(0, "%s: %s", path, err);
        plm_free(err);
        return;
    }
    if (plm_tokenizer_from_gguf(g, path, &t, &err) != PLM_OK) {
        /* a vocabulary C refuses must say so by name */
        EXPECT(err && strstr(err, path), "%s: refused without naming the file: %s", path, err ? err : "(none)");
        printf("%s: refused: %s\n", path, err ? err : "");
        plm_free(err);
        plm_gguf_close(g);
        return;
    }
    const int64_t key = plm_gguf_find_key(g, "tokenizer.ggml.model");
    const char *model = "";
    uint64_t model_len = 0;
    if (key >= 0) plm_gguf_get_str(g, key, &model, &model_len);
    const int byte_level = model_len == 4 && memcmp(model, "gpt2", 4) == 0;
    const int64_t nv = plm_tokenizer_vocab_size(t);
    EXPECT(nv > 0, "%s: empty vocabulary", path);
    int checked = 0;
    for (size_t k = 0; k < sizeof TEXTS / sizeof *TEXTS; k++) {
        const char *text = TEXTS[k];
        const uint64_t len = strlen(text);
        int64_t n = -1, n2 = -1;
        int32_t few[2];
        if (plm_tokenizer_encode(t, text, len, 1, few, 2, &n, &err) != PLM_OK) {
            EXPECT(err != NULL, "%s: encode failed without a message", path);
            plm_free(err), err = NULL;
            continue;
        }
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n + 1));
        EXPECT(plm_tokenizer_encode(t, text, len, 1, ids, n, &n2, &err) == PLM_OK && n2 == n,
               "%s: sizing call gave %lld ids, filling call %lld", path, (long long)n, (long long)n2);
        for (int64_t i = 0; i < n; i++) EXPECT(ids[i] >= 0 && ids[i] < nv, "%s: id %d outside the vocabulary", path, ids[i]);
        const int skip = plm_tokenizer_add_bos(t) || plm_tokenizer_bos_id(t) >= 0 ? 1 : 0; /* BOS was asked for */
        uint64_t size = 0, size2 = 0;
        EXPECT(plm_tokenizer_decode(t, ids + skip, n - skip, NULL, 0, &size, &err) == PLM_OK, "%s: decode size", path);
        char *out = malloc(size + 1);
        EXPECT(plm_tokenizer_decode(t, ids + skip, n - skip, out, size, &size2, &err) == PLM_OK && size2 == size,
               "%s: decode gave %llu bytes after sizing %llu", path, (unsigned long long)size2,
               (unsigned long long)size);
        EXPECT(valid_utf8(out, size), "%s: decoded text of %s is not valid UTF-8", path, text);
        if (byte_level && valid_utf8(text, len) && !strchr(text, '<') && skip == 0)
            EXPECT(size == len && memcmp(out, text, len) == 0, "%s: %s decodes to %.*s", path, text, (int)size, out);
        for (int64_t i = 0; i < n; i++) {
            char piece[256];
            size_t plen = 0;
            plm_tokenizer_token_bytes(t, ids[i], piece, sizeof piece, &plen);
        }
        free(out);
        free(ids);
        checked++;
    }
    /* every token's bytes, and ids outside the vocabulary refused */
    for (int64_t i = 0; i < nv; i++) {
        char piece[8];
        size_t plen = 0;
        plm_tokenizer_token_bytes(t, (int32_t)i, piece, sizeof piece, &plen);
    }
    const int32_t bad[2] = {-1, (int32_t)nv};
    uint64_t size = 0;
    for (int i = 0; i < 2; i++) {
        EXPECT(plm_tokenizer_decode(t, &bad[i], 1, NULL, 0, &size, &err) != PLM_OK, "%s: id %d decoded", path, bad[i]);
        plm_free(err), err = NULL;
    }
    printf("%s: %lld tokens, %d texts\n", path, (long long)nv, checked);
    plm_tokenizer_free(t);
    plm_gguf_close(g);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_tokenizer DIR-OF-GGUF-FILES\n");
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        perror(argv[1]);
        return 2;
    }
    int files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".gguf") != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
        check_vocab(path);
        files++;
    }
    closedir(d);
    EXPECT(files > 0, "no .gguf files in %s", argv[1]);
    if (g_failures) fprintf(stderr, "%d failures\n", g_failures);
    return g_failures ? 1 : 0;
}

/*
 * test_gguf.c — the GGUF reader without Python: a small file written here
 * reads back key by key and tensor by tensor; every truncation of it and
 * every single-byte change of its header is either read or refused with a
 * message naming the file, never a crash (run under the sanitizer build to
 * see reads past the end).
 */
#include "pocketlm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plm_test.h"

typedef struct { unsigned char b[4096]; size_t n; } buf;
static void put(buf *f, const void *p, size_t n) { memcpy(f->b + f->n, p, n); f->n += n; }
static void u32(buf *f, uint32_t v) { put(f, &v, 4); }
static void u64(buf *f, uint64_t v) { put(f, &v, 8); }
static void str(buf *f, const char *s) { u64(f, strlen(s)); put(f, s, strlen(s)); }

/* magic, v3, 1 tensor, 4 metadata items, tensor info, padding, 4x2 F32 data */
static size_t make(buf *f, size_t *header_end) {
    f->n = 0;
    put(f, "GGUF", 4); u32(f, 3); u64(f, 1); u64(f, 4);
    str(f, "general.architecture"); u32(f, PLM_GGUF_STRING); str(f, "llama");
    str(f, "llama.block_count"); u32(f, PLM_GGUF_U32); u32(f, 2);
    str(f, "tokenizer.ggml.tokens"); u32(f, PLM_GGUF_ARRAY); u32(f, PLM_GGUF_STRING); u64(f, 3);
    str(f, "a"); str(f, "\xc3\xa9t\xc3\xa9"); str(f, "");
    str(f, "tokenizer.ggml.scores"); u32(f, PLM_GGUF_ARRAY); u32(f, PLM_GGUF_F32); u64(f, 3);
    float sc[3] = {0.5f, -1.0f, 2.0f}; put(f, sc, sizeof sc);
    str(f, "token_embd.weight"); u32(f, 2); u64(f, 4); u64(f, 2); u32(f, PLM_TYPE_F32); u64(f, 0);
    *header_end = f->n;
    while (f->n % 32) f->b[f->n++] = 0;
    for (int i = 0; i < 8; i++) { float v = (float)i; put(f, &v, 4); }
    return f->n;
}

static void write_file(const char *path, const buf *f, size_t n) {
    FILE *fp = fopen(path, "wb");
    fwrite(f->b, 1, n, fp);
    fclose(fp);
}

int main(void) {
    char path[] = "/tmp/plm_test_gguf_XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) return 2;
    close(fd);
    buf f;
    size_t header_end;
    const size_t n = make(&f, &header_end);
    write_file(path, &f, n);

    plm_gguf *g = NULL;
    char *err = NULL;
    EXPECT(plm_gguf_open(path, 0, 0, &g, &err) == PLM_OK, "open: %s", err ? err : "?");
    if (g) {
        const char *s;
        uint64_t len;
        int64_t iv;
        EXPECT(plm_gguf_n_kv(g) == 4 && plm_gguf_n_tensors(g) == 1, "counts");
        EXPECT(plm_gguf_get_str(g, plm_gguf_find_key(g, "general.architecture"), &s, &len) == PLM_OK &&
                   len == 5 && memcmp(s, "llama", 5) == 0, "architecture");
        EXPECT(plm_gguf_get_int(g, plm_gguf_find_key(g, "llama.block_count"), &iv) == PLM_OK && iv == 2, "u32");
        const int64_t tk = plm_gguf_find_key(g, "tokenizer.ggml.tokens");
        EXPECT(plm_gguf_arr_str(g, tk, 1, &s, &len) == PLM_OK && len == 5 && memcmp(s, "\xc3\xa9t\xc3\xa9", 5) == 0,
               "string array element");
        EXPECT(plm_gguf_arr_str(g, tk, 3, &s, &len) == PLM_ERR_INVALID_ARG, "element past the end");
        int et;
        uint64_t cnt;
        const void *data;
        float third = 0.0f;
        EXPECT(plm_gguf_arr_info(g, plm_gguf_find_key(g, "tokenizer.ggml.scores"), &et, &cnt, &data) == PLM_OK &&
                   et == PLM_GGUF_F32 && cnt == 3, "f32 array");
        if (data) memcpy(&third, (const char *)data + 8, 4); /* metadata arrays are not aligned */
        EXPECT(third == 2.0f, "f32 array element");
        EXPECT(plm_gguf_get_str(g, tk, &s, &len) == PLM_ERR_TYPE, "type mismatch is a status");
        EXPECT(plm_gguf_find_key(g, "missing") == -1 && plm_gguf_find_tensor(g, "missing") == -1, "absent");
        const char *name;
        int type, nd;
        int64_t dims[4];
        const void *td;
        uint64_t nbytes;
        EXPECT(plm_gguf_tensor_info(g, plm_gguf_find_tensor(g, "token_embd.weight"), &name, &type, &nd, dims, &td,
                                    &nbytes) == PLM_OK && type == PLM_TYPE_F32 && nd == 2 && dims[0] == 4 &&
                   dims[1] == 2 && nbytes == 32 && ((const float *)td)[7] == 7.0f, "tensor");
        plm_gguf_close(g);
    }
    free(err);

    /* every truncation is refused, with the file named */
    for (size_t cut = 0; cut < n; cut++) {
        write_file(path, &f, cut);
        g = NULL;
        err = NULL;
        const int st = plm_gguf_open(path, 0, 0, &g, &err);
        EXPECT(st != PLM_OK && g == NULL && err && strstr(err, path), "truncated at %zu: status %d", cut, st);
        free(err);
    }
    /* every value of every header byte: read or refused, never a crash */
    int refused = 0;
    for (size_t at = 0; at < header_end; at++) {
        for (int v = 0; v < 256; v += 17) {
            buf m = f;
            m.b[at] = (unsigned char)v;
            write_file(path, &m, n);
            g = NULL;
            err = NULL;
            const int st = plm_gguf_open(path, 0, 0, &g, &err);
            if (st != PLM_OK) {
                refused++;
                EXPECT(err && strstr(err, path), "byte %zu = %d: refused without a message", at, v);
            }
            plm_gguf_close(g);
            free(err);
        }
    }
    EXPECT(refused > 100, "only %d mutants refused", refused);
    /* a GGUF at an offset inside a larger file (a .task entry) */
    buf big;
    memset(big.b, 'x', 100);
    big.n = 100;
    put(&big, f.b, n);
    write_file(path, &big, big.n);
    g = NULL;
    EXPECT(plm_gguf_open(path, 100, n, &g, NULL) == PLM_OK && plm_gguf_n_tensors(g) == 1, "offset");
    plm_gguf_close(g);
    EXPECT(plm_gguf_open(path, 100, n + 1, &g, NULL) == PLM_ERR_FORMAT, "length past the end");
    unlink(path);
    if (g_failures) {
        fprintf(stderr, "%d failures\n", g_failures);
        return 1;
    }
    printf("test_gguf: ok\n");
    return 0;
}

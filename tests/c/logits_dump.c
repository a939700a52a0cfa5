/* Teacher-forced logits of fixed token sequences, on the public pocketlm.h
 * API only: what pocketlm port-check runs on the phone's CPU (cross-built,
 * under qemu) to hold its arithmetic against the desktop's.
 *   logits_dump MODEL OFFSET LENGTH TOKENS OUT [THREADS]
 * MODEL: a GGUF file, or the stored GGUF at OFFSET (LENGTH bytes, 0: to the
 * end) inside a .task. TOKENS: "PLMTOK1\0", u32 n_seq, then per sequence
 * u32 n, u32 n_chunks, n_chunks u32 chunk sizes (summing to n) and n int32
 * ids. Each sequence runs in a fresh session, teacher-forced: one
 * plm_session_eval call per chunk, keeping the logits after every id. The
 * chunks say which path each position takes, as a generation takes it: the
 * prompt's prefill is one chunk, a decode step a chunk of one id (the SIMD
 * kernels may give a row of a batched matmul slightly different logits than
 * a one-row decode step gives it). OUT: "PLMLOG1\0", u32 n_seq, u32 vocab,
 * then per sequence u32 n and n x vocab float32. All little-endian, as both
 * CPUs are. THREADS: the session's n_threads (default 0: all CPUs). Prints
 * one line: the SIMD level in force, positions and seconds. */
#include "pocketlm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char *what, char *error) {
    fprintf(stderr, "logits_dump: %s: %s\n", what, error ? error : "(no message)");
    plm_free(error);
    return 1;
}

static int bad(const char *path, const char *why) {
    fprintf(stderr, "logits_dump: %s: %s\n", path, why);
    return 1;
}

static int read_u32(FILE *f, uint32_t *v) { return fread(v, 4, 1, f) == 1; }

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: logits_dump MODEL OFFSET LENGTH TOKENS OUT [THREADS]\n");
        return 2;
    }
    char *error = NULL;
    plm_model *m = NULL;
    if (plm_model_open(argv[1], strtoull(argv[2], 0, 10), strtoull(argv[3], 0, 10), &m, &error))
        return fail(argv[1], error);
    const int64_t vocab = plm_model_get_config(m)->vocab_size;

    FILE *in = fopen(argv[4], "rb");
    char magic[8];
    uint32_t n_seq = 0;
    if (!in || fread(magic, 8, 1, in) != 1 || memcmp(magic, "PLMTOK1", 8) || !read_u32(in, &n_seq))
        return bad(argv[4], "not a PLMTOK1 token file");
    FILE *out = fopen(argv[5], "wb");
    const uint32_t v32 = (uint32_t)vocab;
    if (!out || fwrite("PLMLOG1", 8, 1, out) != 1 || fwrite(&n_seq, 4, 1, out) != 1 || fwrite(&v32, 4, 1, out) != 1)
        return bad(argv[5], "cannot write");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t positions = 0;
    for (uint32_t s = 0; s < n_seq; s++) {
        uint32_t n = 0, n_chunks = 0, *chunks = NULL;
        if (!read_u32(in, &n) || !read_u32(in, &n_chunks) || n == 0 || n_chunks == 0 || n_chunks > n ||
            !(chunks = malloc(sizeof *chunks * n_chunks)) || fread(chunks, sizeof *chunks, n_chunks, in) != n_chunks)
            return bad(argv[4], "truncated or malformed sequence header");
        int32_t *ids = malloc(sizeof *ids * n);
        float *logits = malloc(sizeof *logits * (size_t)n * (size_t)vocab);
        if (!ids || !logits) return bad(argv[4], "out of memory");
        if (fread(ids, sizeof *ids, n, in) != n) return bad(argv[4], "truncated ids");
        plm_session_params p;
        plm_session_params_default(&p);
        p.max_tokens = n; /* the whole sequence, nothing generated */
        p.n_threads = argc == 7 ? atoi(argv[6]) : 0;
        plm_session *sess = NULL;
        if (plm_session_create(m, &p, &sess, &error)) return fail("session", error);
        uint32_t at = 0;
        for (uint32_t c = 0; c < n_chunks; c++) {
            if (chunks[c] == 0 || chunks[c] > n - at) return bad(argv[4], "chunk sizes do not add up to n");
            if (plm_session_add_tokens(sess, ids + at, chunks[c], &error)) return fail("add tokens", error);
            if (plm_session_eval(sess, logits + (size_t)at * (size_t)vocab, 1, &error)) return fail("eval", error);
            at += chunks[c];
        }
        if (at != n) return bad(argv[4], "chunk sizes do not add up to n");
        if (fwrite(&n, 4, 1, out) != 1 || fwrite(logits, sizeof *logits, (size_t)n * (size_t)vocab, out) !=
                                              (size_t)n * (size_t)vocab)
            return bad(argv[5], "cannot write");
        plm_session_free(sess);
        free(chunks);
        free(ids);
        free(logits);
        positions += n;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (fclose(out)) return bad(argv[5], "cannot write");
    fclose(in);
    const int level = plm_set_simd(2);
    printf("SIMD level %d, %lld positions, %.2f s\n", level, (long long)positions,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    plm_model_free(m);
    return 0;
}

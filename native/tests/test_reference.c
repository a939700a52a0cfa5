/*
 * test_reference.c — the kernels against NumPy's reference on machines that
 * cannot run Python (arm64 under qemu): `test_reference CASES` reads the
 * inputs and the reference outputs that pocketlm.port_check.write_reference_cases
 * wrote with pocketlm.kernels.reference, runs the same operations here and
 * checks them with the tolerances of tests/kernels. Run it once per SIMD level
 * (POCKETLM_SIMD=0 for the scalar twins).
 *
 * File: "PLMREF1\0", then records: u32 op, u32 param, i64 dims[8], f32 args[4],
 * u32 n_arrays, and each array as u64 byte count + bytes; the last array is
 * the expected output.
 */
#include "pocketlm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plm_test.h"

enum { OP_MATMUL = 1, OP_RMS_NORM = 2, OP_ROPE = 3, OP_SOFTMAX = 4, OP_ATTENTION = 5, OP_ADD = 6, OP_SILU_MUL = 7 };
static const char *OP_NAMES[] = {"", "matmul", "rms_norm", "rope", "softmax", "attention", "add", "silu_mul"};

typedef struct {
    uint32_t op, param;
    int64_t d[8];
    float a[4];
    uint32_t n;
    void *arr[6];
    uint64_t size[6];
} record;

static int read_record(FILE *f, record *r) {
    memset(r, 0, sizeof *r);
    if (fread(&r->op, 4, 1, f) != 1) return 0;
    if (fread(&r->param, 4, 1, f) != 1 || fread(r->d, 8, 8, f) != 8 || fread(r->a, 4, 4, f) != 4 ||
        fread(&r->n, 4, 1, f) != 1 || r->n > 6 || r->n == 0)
        return -1;
    for (uint32_t i = 0; i < r->n; i++) {
        if (fread(&r->size[i], 8, 1, f) != 1 || r->size[i] > (1u << 28)) return -1;
        r->arr[i] = malloc(r->size[i] ? r->size[i] : 1);
        if (!r->arr[i] || fread(r->arr[i], 1, r->size[i], f) != r->size[i]) return -1;
    }
    return 1;
}

/* |got - want| <= atol + rtol * |want| everywhere; returns the largest error */
static double compare(const float *got, const float *want, int64_t n, double rtol, double atol, int *ok) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= atol + rtol * fabs((double)want[i]))) *ok = 0;
        if (e > worst || e != e) worst = e;
    }
    return worst;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_reference CASES-FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    char magic[8];
    if (!f || fread(magic, 1, 8, f) != 8 || memcmp(magic, "PLMREF1", 8) != 0) {
        fprintf(stderr, "%s: not a reference-case file\n", argv[1]);
        return 2;
    }
    record r;
    int st, cases = 0;
    while ((st = read_record(f, &r)) == 1) {
        const int64_t *d = r.d;
        const uint64_t out_bytes = r.size[r.n - 1];
        float *y = (float *)calloc(out_bytes / 4 + 1, 4);
        const float *want = (const float *)r.arr[r.n - 1];
        int ok = 1, rc = PLM_OK;
        double rtol = 1e-5, atol = 1e-5;
        switch (r.op) {
        case OP_MATMUL: /* w (in its type), x[m][k] -> y[m][n] */
            rc = plm_matmul((int)r.param, r.arr[0], (const float *)r.arr[1], y, d[0], d[1], d[2], 2);
            rtol = 1e-4, atol = 1e-4 * sqrt((double)d[2]);
            break;
        case OP_RMS_NORM:
            rc = plm_rms_norm((const float *)r.arr[0], (const float *)r.arr[1], y, d[0], d[1], r.a[0], r.a[1]);
            break;
        case OP_ROPE:
            memcpy(y, r.arr[0], r.size[0]);
            rc = plm_rope(y, d[0], d[1], d[2], d[3], (const int32_t *)r.arr[1], r.a[0], r.a[1], NULL, (int)r.param);
            break;
        case OP_SOFTMAX:
            rc = plm_softmax((const float *)r.arr[0], y, d[0], d[1]);
            rtol = 1e-5, atol = 1e-6;
            break;
        case OP_ATTENTION: /* q, k, v; dims n_q n_kv q_pos0 n_heads n_kv_heads head_dim window */
            rc = plm_attention((const float *)r.arr[0], (const float *)r.arr[1], (const float *)r.arr[2], y, d[0],
                               d[1], d[2], d[3], d[4], d[5], r.a[0], r.a[1], d[6], NULL, 2);
            rtol = 1e-4, atol = 1e-5;
            break;
        case OP_ADD:
            rc = plm_add((const float *)r.arr[0], (const float *)r.arr[1], y, d[0]);
            rtol = 0, atol = 0;
            break;
        case OP_SILU_MUL:
            rc = plm_silu_mul((const float *)r.arr[0], (const float *)r.arr[1], y, d[0]);
            break;
        default:
            EXPECT(0, "unknown op %u", r.op);
        }
        const char *name = r.op < sizeof OP_NAMES / sizeof *OP_NAMES ? OP_NAMES[r.op] : "?";
        EXPECT(rc == PLM_OK, "%s (param %u): status %d", name, r.param, rc);
        const double worst = compare(y, want, (int64_t)(out_bytes / 4), rtol, atol, &ok);
        EXPECT(ok, "%s (param %u, dims %lld %lld %lld): largest error %g over tolerance", name, r.param,
               (long long)d[0], (long long)d[1], (long long)d[2], worst);
        free(y);
        for (uint32_t i = 0; i < r.n; i++) free(r.arr[i]);
        cases++;
    }
    fclose(f);
    EXPECT(st == 0, "%s: truncated or malformed record after %d cases", argv[1], cases);
    EXPECT(cases > 0, "%s: no cases", argv[1]);
    const int level = plm_set_simd(2);
    plm_set_simd(level);
    printf("%s: %d cases against NumPy's reference (features 0x%x, SIMD level %d)\n",
           g_failures ? "FAILED" : "ok", cases, plm_cpu_features(), level);
    return g_failures ? 1 : 0;
}

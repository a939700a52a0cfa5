/*
 * executor.c — runs a TFLite LLM graph the way LiteRT-LM's CPU executor
 * runs it (runtime/executor/llm_litert_compiled_model_executor.cc), over
 * the TFLite C API of tflite.c:
 *   - a model: the file range mapped, TfLiteModel over it, its signatures
 *     found by name (prefill_<T>, keyed by the length of input_pos, and
 *     decode) and checked once against what the executor fills and reads;
 *   - a session's state: its own interpreter with an XNNPack delegate of
 *     the session's thread count (XNNPack packs the weights for each
 *     interpreter, so every session repacks them), a signature runner per
 *     signature, and the KV caches, which are the runners' own input
 *     tensors, zeroed at creation;
 *   - a prefill runs the largest prefill_T that fits what is left, then the
 *     smallest one padded (pad tokens at the positions after the real ones:
 *     masked out, and later overwritten by the tokens that take those
 *     positions); a chunk never crosses the cache's end, since
 *     DYNAMIC_UPDATE_SLICE clamps its start index: tokens no chunk can take
 *     go through decode one by one;
 *   - after each run the T positions it wrote are copied from that runner's
 *     output caches into the input caches of every runner, so all of them
 *     hold the same cache. LiteRT-LM swaps input and output buffers instead;
 *     the TFLite C API can bind buffers only to the primary subgraph's
 *     tensors, and the signatures are subgraphs of their own, so the copy of
 *     the written positions (T x layers x 2 x kv_heads x head_dim floats per
 *     runner, never the whole cache) is what takes its place.
 */
#include "litert/litert.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- TFLite's messages -------------------------------------------------------------- */

/* An error reporter writing into a 512-byte buffer: messages after the first are appended. */
static void report(void *user, const char *format, va_list args) {
    char *buf = (char *)user;
    size_t n = strnlen(buf, 511);
    if (n > 0 && n < 509) {
        memcpy(buf + n, "; ", 3);
        n += 2;
    }
    if (n < 511) vsnprintf(buf + n, 512 - n, format, args);
}

static const char *reported(const char *buf) { return buf[0] ? buf : "TFLite gave no message"; }

/* ---- the file range -------------------------------------------------------------------- */

static int map_range(plm_lrt_model *m, const char *path, uint64_t offset, uint64_t size, char **error) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return plm_errorf(error, PLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        const int e = errno;
        close(fd);
        return plm_errorf(error, PLM_ERR_IO, "cannot stat %s: %s", path, strerror(e));
    }
    const uint64_t file = (uint64_t)sb.st_size;
    if (offset > file || (size && size > file - offset)) {
        close(fd);
        return plm_errorf(error, PLM_ERR_FORMAT,
                          "%s: the TFLite model at %llu (%llu bytes) lies past the file's end (%llu bytes)",
                          path, (unsigned long long)offset, (unsigned long long)size, (unsigned long long)file);
    }
    if (!size) size = file - offset;
    if (size < 8 || size > (uint64_t)SIZE_MAX / 2) {
        close(fd);
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: %llu bytes at %llu are not a TFLite model", path,
                          (unsigned long long)size, (unsigned long long)offset);
    }
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    const uint64_t start = offset - offset % page;
    const size_t len = (size_t)(offset - start + size);
    void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, (off_t)start);
    close(fd);
    if (p == MAP_FAILED) return plm_errorf(error, PLM_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    const uint8_t *data = (const uint8_t *)p + (offset - start);
    m->size = (size_t)size;
    if (((uintptr_t)data % 16) == 0) {
        m->map = p;
        m->map_bytes = len;
        m->data = data;
        return PLM_OK;
    }
    /* a flatbuffer's buffers are 16-byte aligned relative to its start (a .task's stored entry may sit anywhere) */
    void *copy = NULL;
    if (posix_memalign(&copy, 64, (size_t)size) != 0) {
        munmap(p, len);
        return plm_errorf(error, PLM_ERR_NOMEM,
                          "%s: out of memory for an aligned copy of the TFLite model (%llu bytes)",
                          path, (unsigned long long)size);
    }
    memcpy(copy, data, (size_t)size);
    munmap(p, len);
    m->map = copy;
    m->map_bytes = (size_t)size;
    m->map_is_copy = 1;
    m->data = copy;
    return PLM_OK;
}

/* ---- what TFLite takes on trust --------------------------------------------------------
 * TfLiteModelCreate verifies the flatbuffer's structure, but the signature runner indexes a
 * signature's subgraph and tensors without checking them (a changed byte there crashes it).
 * So those indices are read here, every offset bounds-checked, before TFLite sees the bytes:
 * Model.subgraphs (vtable slot 8), SubGraph.tensors (4), Model.signature_defs (18),
 * SignatureDef.inputs / outputs (4, 6) and subgraph_index (12), TensorMap.tensor_index (6). */

typedef struct {
    const uint8_t *b;
    size_t n;
} plm_fb;

static int fb_u32(const plm_fb *f, size_t at, uint32_t *v) {
    if (at > f->n || f->n - at < 4) return 0;
    memcpy(v, f->b + at, 4);
    return 1;
}

/* where field `slot` (a vtable byte offset) of the table at t lies; 0 when absent or out of bounds */
static size_t fb_field(const plm_fb *f, size_t t, unsigned slot) {
    uint32_t so;
    if (!fb_u32(f, t, &so)) return 0;
    const int64_t vt = (int64_t)t - (int64_t)(int32_t)so;
    if (vt < 0 || (uint64_t)vt + 4 > f->n) return 0;
    uint16_t vsize, fo;
    memcpy(&vsize, f->b + vt, 2);
    if (slot + 2 > vsize || (uint64_t)vt + slot + 2 > f->n) return 0;
    memcpy(&fo, f->b + vt + slot, 2);
    return fo && t + fo + 4 <= f->n ? t + fo : 0;
}

/* the table, vector or string an offset field at `at` points to; 0 when out of bounds */
static size_t fb_deref(const plm_fb *f, size_t at) {
    uint32_t off;
    if (!at || !fb_u32(f, at, &off) || off == 0 || (uint64_t)at + off + 4 > f->n) return 0;
    return at + off;
}

/* a vector field: its element count and where the elements start; 0 when absent or bad */
static int fb_vector(const plm_fb *f, size_t t, unsigned slot, size_t *elems, uint32_t *len) {
    const size_t v = fb_deref(f, fb_field(f, t, slot));
    if (!v || !fb_u32(f, v, len) || *len > (f->n - v - 4) / 4) return 0;
    *elems = v + 4;
    return 1;
}

/* a string field: its bytes and length; 0 when absent or out of bounds */
static int fb_string(const plm_fb *f, size_t t, unsigned slot, const uint8_t **str, uint32_t *len) {
    const size_t v = fb_deref(f, fb_field(f, t, slot));
    if (!v || !fb_u32(f, v, len) || *len >= f->n - v - 4) return 0; /* room for the NUL after it */
    *str = f->b + v + 4;
    return 1;
}

static int fb_same(const uint8_t *a, uint32_t na, const uint8_t *b, uint32_t nb) {
    return na == nb && memcmp(a, b, na) == 0;
}

static uint32_t fb_scalar_u32(const plm_fb *f, size_t t, unsigned slot) {
    uint32_t v = 0;
    const size_t at = fb_field(f, t, slot);
    if (at) fb_u32(f, at, &v);
    return v;
}

static int check_signature_indices(const plm_lrt_model *m, char **error) {
    const plm_fb f = {(const uint8_t *)m->data, m->size};
    uint32_t r = 0;
    const size_t model = fb_u32(&f, 0, &r) && (uint64_t)r + 4 <= f.n ? (size_t)r : 0;
    size_t subs, sigs;
    uint32_t n_sub = 0, n_sig = 0;
    if (!model || !fb_vector(&f, model, 8, &subs, &n_sub))
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: the TFLite model has no subgraphs", m->what);
    if (!fb_vector(&f, model, 18, &sigs, &n_sig)) return PLM_OK; /* no signatures: discover says so */
    for (uint32_t i = 0; i < n_sig; i++) {
        const size_t sd = fb_deref(&f, sigs + 4 * (size_t)i);
        const uint8_t *key;
        uint32_t key_len;
        if (!sd || !fb_string(&f, sd, 8, &key, &key_len) || !key_len)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: signature %u has no key", m->what, i);
        for (uint32_t k = 0; k < i; k++) {
            const uint8_t *other;
            uint32_t other_len;
            if (fb_string(&f, fb_deref(&f, sigs + 4 * (size_t)k), 8, &other, &other_len) &&
                fb_same(key, key_len, other, other_len))
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: signatures %u and %u have the same key", m->what, k, i);
        }
        const uint32_t g = fb_scalar_u32(&f, sd, 12);
        if (g >= n_sub)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: signature %u names subgraph %u of %u", m->what, i, g, n_sub);
        const size_t sg = fb_deref(&f, subs + 4 * (size_t)g);
        size_t tensors;
        uint32_t n_tensors = 0;
        if (!sg || !fb_vector(&f, sg, 4, &tensors, &n_tensors))
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: subgraph %u of signature %u has no tensors", m->what, g, i);
        for (unsigned slot = 4; slot <= 6; slot += 2) {
            size_t maps;
            uint32_t n_maps = 0;
            if (!fb_vector(&f, sd, slot, &maps, &n_maps)) continue;
            const char *side = slot == 4 ? "input" : "output";
            for (uint32_t j = 0; j < n_maps; j++) {
                const size_t tm = fb_deref(&f, maps + 4 * (size_t)j);
                const uint8_t *name;
                uint32_t name_len;
                if (!tm || !fb_string(&f, tm, 4, &name, &name_len) || !name_len)
                    return plm_errorf(error, PLM_ERR_FORMAT,
                                      "%s: signature %u's %s %u has no name", m->what, i, side, j);
                if (fb_scalar_u32(&f, tm, 6) >= n_tensors)
                    return plm_errorf(error, PLM_ERR_FORMAT, "%s: signature %u's %s %u is not a tensor of its subgraph",
                                      m->what, i, side, j);
                for (uint32_t k = 0; k < j; k++) {
                    const uint8_t *other;
                    uint32_t other_len;
                    if (fb_string(&f, fb_deref(&f, maps + 4 * (size_t)k), 4, &other, &other_len) &&
                        fb_same(name, name_len, other, other_len))
                        return plm_errorf(error, PLM_ERR_FORMAT, "%s: signature %u has two %ss of one name", m->what, i,
                                          side);
                }
            }
        }
    }
    return PLM_OK;
}

/* ---- signatures ---------------------------------------------------------------------- */

static int is_kv_name(const char *name, int *is_v, int64_t *layer) {
    if (strncmp(name, "kv_cache_", 9) != 0 || (name[9] != 'k' && name[9] != 'v') || name[10] != '_') return 0;
    const char *d = name + 11;
    if (!*d) return 0;
    int64_t v = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || v > 100000) return 0;
        v = v * 10 + (*d - '0');
    }
    *is_v = name[9] == 'v';
    *layer = v;
    return 1;
}

static void dims_text(const plm_tfl *a, const TfLiteTensor *t, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    const int32_t nd = a->TensorNumDims(t);
    for (int32_t i = 0; i < nd && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %d" : "%d", a->TensorDim(t, i));
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static const char *type_text(int type) {
    switch (type) {
    case PLM_TFL_FLOAT32: return "float32";
    case PLM_TFL_INT32: return "int32";
    case PLM_TFL_INT64: return "int64";
    default: return "a type other than float32 or int32";
    }
}

/* dims of t are exactly want[0..nd) */
static int dims_are(const plm_tfl *a, const TfLiteTensor *t, const int64_t *want, int nd) {
    if (a->TensorNumDims(t) != nd) return 0;
    for (int i = 0; i < nd; i++)
        if (a->TensorDim(t, i) != want[i]) return 0;
    return 1;
}

typedef struct {
    char key[64];
    int64_t T;
} plm_sig;

/* Checks one signature against the executor's contract; fills the model's kv table from the first one. */
static int check_signature(plm_lrt_model *m, TfLiteSignatureRunner *r, const char *key, int is_decode, int first,
                           int64_t *T_out, char **error) {
    const plm_tfl *a = m->api;
    const char *what = m->what;
    char dims[96];
    TfLiteTensor *pos = a->SignatureRunnerGetInputTensor(r, "input_pos");
    TfLiteTensor *tok = a->SignatureRunnerGetInputTensor(r, "tokens");
    if (!pos || !tok)
        return plm_errorf(error, PLM_ERR_FORMAT,
                          "%s: signature %s has no %s input (LLM signatures take tokens and input_pos)",
                          what, key, pos ? "tokens" : "input_pos");
    if (a->TensorType(pos) != PLM_TFL_INT32 || a->TensorNumDims(pos) != 1 || a->TensorDim(pos, 0) < 1) {
        dims_text(a, pos, dims, sizeof dims);
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: signature %s's input_pos is %s %s, not int32 [T]", what, key,
                          type_text(a->TensorType(pos)), dims);
    }
    const int64_t T = a->TensorDim(pos, 0);
    if (is_decode && T != 1)
        return plm_errorf(error, PLM_ERR_FORMAT,
                          "%s: signature decode runs %lld positions at once, not 1", what, (long long)T);
    const int64_t tok_dims[2] = {1, T};
    if (a->TensorType(tok) != PLM_TFL_INT32 || !dims_are(a, tok, tok_dims, 2)) {
        dims_text(a, tok, dims, sizeof dims);
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: signature %s's tokens is %s %s, not int32 [1, %lld]", what, key,
                          type_text(a->TensorType(tok)), dims, (long long)T);
    }
    /* every input is one the executor fills */
    const size_t n_in = a->SignatureRunnerGetInputCount(r);
    int64_t n_kv = 0, has_mask = 0;
    for (size_t i = 0; i < n_in; i++) {
        const char *name = a->SignatureRunnerGetInputName(r, (int32_t)i);
        int is_v;
        int64_t layer;
        if (!name) return plm_errorf(error, PLM_ERR_FORMAT, "%s: signature %s has an unnamed input", what, key);
        if (!strcmp(name, "tokens") || !strcmp(name, "input_pos")) continue;
        if (!strcmp(name, "mask")) {
            has_mask = 1;
            continue;
        }
        if (!is_kv_name(name, &is_v, &layer))
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: signature %s takes an input %s the LiteRT executor cannot fill (it fills tokens, "
                              "input_pos, mask and kv_cache_k_<i> / kv_cache_v_<i>)", what, key, name);
        n_kv++;
    }
    if (n_kv == 0 || n_kv % 2)
        return plm_errorf(error, PLM_ERR_FORMAT,
                          "%s: signature %s takes %lld KV cache inputs, not a k and a v per layer",
                          what, key, (long long)n_kv);
    if (n_kv > PLM_LRT_MAX_KV)
        return plm_errorf(error, PLM_ERR_FORMAT,
                          "%s: signature %s has %lld KV caches; the executor takes at most %d", what,
                          key, (long long)n_kv, PLM_LRT_MAX_KV);
    if (first) {
        m->n_kv = n_kv;
        m->has_mask = (int)has_mask;
    } else if (n_kv != m->n_kv || has_mask != m->has_mask) {
        return plm_errorf(error, PLM_ERR_FORMAT,
                          "%s: signature %s takes %lld KV caches%s, signature %s %lld%s", what, key,
                          (long long)n_kv, has_mask ? " and a mask" : "", "decode", (long long)m->n_kv,
                          m->has_mask ? " and a mask" : "");
    }
    /* the caches, in layer order: kv_cache_k_0, kv_cache_v_0, kv_cache_k_1, ... */
    for (int64_t j = 0; j < n_kv; j++) {
        char name[32];
        snprintf(name, sizeof name, "kv_cache_%c_%lld", j % 2 ? 'v' : 'k', (long long)(j / 2));
        const TfLiteTensor *in = a->SignatureRunnerGetInputTensor(r, name);
        const TfLiteTensor *out = a->SignatureRunnerGetOutputTensor(r, name);
        if (!in)
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: signature %s has no input %s (KV caches are numbered 0..%lld)", what,
                              key, name, (long long)(n_kv / 2 - 1));
        if (!out)
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: signature %s does not give %s back as an output (the caches must be "
                              "inputs and outputs of every signature)", what, key, name);
        if (a->TensorType(in) != PLM_TFL_FLOAT32 || a->TensorType(out) != PLM_TFL_FLOAT32)
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: signature %s's %s is %s; the executor runs float32 KV caches", what,
                              key, name, type_text(a->TensorType(a->TensorType(in) != PLM_TFL_FLOAT32 ? in : out)));
        if (a->TensorNumDims(in) != 4) {
            dims_text(a, in, dims, sizeof dims);
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: signature %s's %s is %s, not [1, kv_heads, C, head_dim] (or V's "
                              "[1, kv_heads, head_dim, C])", what, key, name, dims);
        }
        plm_lrt_kv *kv = &m->kv[j];
        if (first) {
            snprintf(kv->name, sizeof kv->name, "%s", name);
            for (int d = 0; d < 4; d++) kv->dims[d] = a->TensorDim(in, d);
            size_t e = 4;
            for (int d = 0; d < 4; d++) {
                if (kv->dims[d] < 1) {
                    dims_text(a, in, dims, sizeof dims);
                    return plm_errorf(error, PLM_ERR_FORMAT,
                                      "%s: signature %s's %s has shape %s", what, key, name, dims);
                }
                e *= (size_t)kv->dims[d];
            }
            kv->bytes = e;
        }
        const int64_t want[4] = {kv->dims[0], kv->dims[1], kv->dims[2], kv->dims[3]};
        if (!dims_are(a, in, want, 4) || !dims_are(a, out, want, 4)) {
            char d2[96];
            dims_text(a, dims_are(a, in, want, 4) ? out : in, dims, sizeof dims);
            snprintf(d2, sizeof d2, "[%d, %d, %d, %d]", kv->dims[0], kv->dims[1], kv->dims[2], kv->dims[3]);
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: %s is %s in signature %s but %s in decode", what, name, dims, key, d2);
        }
    }
    const TfLiteTensor *mask = a->SignatureRunnerGetInputTensor(r, "mask");
    if (mask) {
        if (a->TensorType(mask) != PLM_TFL_FLOAT32 || a->TensorNumDims(mask) != 4 || a->TensorDim(mask, 0) != 1 ||
            a->TensorDim(mask, 1) != 1 || a->TensorDim(mask, 2) != T) {
            dims_text(a, mask, dims, sizeof dims);
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: signature %s's mask is %s %s, not an additive float32 [1, 1, %lld, C]",
                              what, key, type_text(a->TensorType(mask)), dims, (long long)T);
        }
        if (first) m->cache_length = a->TensorDim(mask, 3);
        else if (a->TensorDim(mask, 3) != m->cache_length)
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: signature %s's mask covers %d positions, decode's %lld", what, key,
                              a->TensorDim(mask, 3), (long long)m->cache_length);
    }
    if (is_decode) {
        const TfLiteTensor *lg = a->SignatureRunnerGetOutputTensor(r, "logits");
        if (!lg) return plm_errorf(error, PLM_ERR_FORMAT, "%s: signature decode gives no logits output", what);
        const int32_t nd = a->TensorNumDims(lg);
        const int ok_shape = (nd == 3 && a->TensorDim(lg, 0) == 1 && a->TensorDim(lg, 1) == 1) ||
                             (nd == 2 && a->TensorDim(lg, 0) == 1);
        if (a->TensorType(lg) != PLM_TFL_FLOAT32 || !ok_shape || a->TensorDim(lg, nd - 1) < 1) {
            dims_text(a, lg, dims, sizeof dims);
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: decode's logits are %s %s, not float32 [1, 1, vocab]", what,
                              type_text(a->TensorType(lg)), dims);
        }
        m->vocab_size = a->TensorDim(lg, nd - 1);
    }
    *T_out = T;
    return PLM_OK;
}

/* The cache length and each cache's position axis, from decode's shapes (and its mask's when it has one). */
static int check_layout(plm_lrt_model *m, char **error) {
    const plm_lrt_kv *k0 = &m->kv[0];
    if (!m->has_mask) m->cache_length = k0->dims[2];
    const int64_t C = m->cache_length;
    m->cache_bytes = 0;
    for (int64_t j = 0; j < m->n_kv; j++) {
        plm_lrt_kv *kv = &m->kv[j];
        if (kv->dims[0] != 1)
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: %s has a batch of %d; the executor runs batch 1", m->what, kv->name,
                              kv->dims[0]);
        const int at2 = kv->dims[2] == C, at3 = kv->dims[3] == C;
        if (!at2 && !at3)
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: %s is [%d, %d, %d, %d], with no axis of the cache's %lld positions",
                              m->what, kv->name, kv->dims[0], kv->dims[1], kv->dims[2], kv->dims[3], (long long)C);
        kv->seq_axis = at2 && at3 ? -1 : at2 ? 2 : 3;
        if (j % 2 == 0 && kv->seq_axis == 3)
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: %s is [%d, %d, %d, %d]: keys are laid out [1, kv_heads, %lld, head_dim]",
                              m->what, kv->name, kv->dims[0], kv->dims[1], kv->dims[2], kv->dims[3], (long long)C);
        m->cache_bytes += kv->bytes;
    }
    m->n_kv_heads = k0->dims[1];
    m->head_dim = k0->dims[3];
    if (C < 1 || C > INT32_MAX)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: a KV cache of %lld positions", m->what, (long long)C);
    return PLM_OK;
}

static int discover(plm_lrt_model *m, char **error) {
    const plm_tfl *a = m->api;
    TfLiteInterpreterOptions *o = a->InterpreterOptionsCreate();
    if (!o) return plm_errorf(error, PLM_ERR_NOMEM, "%s: TFLite could not make interpreter options", m->what);
    a->InterpreterOptionsSetErrorReporter(o, report, m->report);
    a->InterpreterOptionsSetNumThreads(o, 1);
    m->report[0] = 0;
    /* no delegate: this interpreter only reads the signatures, nothing is allocated or packed */
    TfLiteInterpreter *it = a->InterpreterCreate(m->model, o);
    if (!it) {
        a->InterpreterOptionsDelete(o);
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: LiteRT could not build an interpreter for the model: %s", m->what,
                          reported(m->report));
    }
    int st = PLM_OK;
    const int32_t n_sig = a->InterpreterGetSignatureCount(it);
    plm_sig prefill[64];
    int64_t n_prefill = 0, has_decode = 0;
    char names[512];
    size_t nn = 0;
    names[0] = 0;
    for (int32_t i = 0; i < n_sig; i++) {
        const char *key = a->InterpreterGetSignatureKey(it, i);
        if (!key) continue;
        if (nn < sizeof names) nn += (size_t)snprintf(names + nn, sizeof names - nn, nn ? ", %s" : "%s", key);
        if (!strcmp(key, "decode")) has_decode = 1;
        else if (!strncmp(key, "prefill_", 8) && key[8] >= '1' && key[8] <= '9' &&
                 strlen(key) < sizeof prefill[0].key && strspn(key + 8, "0123456789") == strlen(key + 8) &&
                 n_prefill < 64) {
            snprintf(prefill[n_prefill].key, sizeof prefill[0].key, "%s", key);
            n_prefill++;
        }
    }
    if (!has_decode || !n_prefill) {
        st = plm_errorf(error, PLM_ERR_FORMAT,
                        "%s: no %s signature (signatures: %s); LiteRT LLM graphs have prefill_<N> and decode", m->what,
                        has_decode ? "prefill_<N>" : "decode", n_sig ? names : "none");
        goto done;
    }
    /* decode first: its shapes are the ones the others are held against */
    TfLiteSignatureRunner *r = a->InterpreterGetSignatureRunner(it, "decode");
    int64_t T = 0;
    if (!r) st = plm_errorf(error, PLM_ERR_FORMAT,
                            "%s: LiteRT gives no runner for decode: %s", m->what, reported(m->report));
    else {
        st = check_signature(m, r, "decode", 1, 1, &T, error);
        a->SignatureRunnerDelete(r);
    }
    if (!st) st = check_layout(m, error);
    for (int64_t i = 0; !st && i < n_prefill; i++) {
        r = a->InterpreterGetSignatureRunner(it, prefill[i].key);
        if (!r) {
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: LiteRT gives no runner for %s: %s", m->what, prefill[i].key,
                            reported(m->report));
            break;
        }
        st = check_signature(m, r, prefill[i].key, 0, 0, &prefill[i].T, error);
        a->SignatureRunnerDelete(r);
        if (!st && prefill[i].T > m->cache_length)
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: %s runs %lld positions, more than the cache's %lld", m->what,
                            prefill[i].key, (long long)prefill[i].T, (long long)m->cache_length);
        for (int64_t j = 0; !st && j < i; j++)
            if (prefill[j].T == prefill[i].T)
                st = plm_errorf(error, PLM_ERR_FORMAT, "%s: %s and %s both run %lld positions", m->what, prefill[j].key,
                                prefill[i].key, (long long)prefill[i].T);
    }
    if (st) goto done;
    /* ascending by T; with more than the executor keeps, the largest ones */
    for (int64_t i = 1; i < n_prefill; i++)
        for (int64_t j = i; j > 0 && prefill[j - 1].T > prefill[j].T; j--) {
            plm_sig t = prefill[j];
            prefill[j] = prefill[j - 1];
            prefill[j - 1] = t;
        }
    const int64_t skip = n_prefill > PLM_LRT_MAX_PREFILL ? n_prefill - PLM_LRT_MAX_PREFILL : 0;
    m->n_prefill = n_prefill - skip;
    for (int64_t i = 0; i < m->n_prefill; i++) {
        m->prefill_len[i] = prefill[skip + i].T;
        snprintf(m->prefill_key[i], sizeof m->prefill_key[i], "%s", prefill[skip + i].key);
    }
done:
    a->InterpreterDelete(it);
    a->InterpreterOptionsDelete(o);
    return st;
}

int plm_lrt_model_open(const char *path, uint64_t offset, uint64_t size, plm_lrt_model **out, char **error) {
    if (error) *error = NULL;
    if (!path || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_lrt_model_open: NULL argument");
    *out = NULL;
    const plm_tfl *a = plm_tfl_get(error);
    if (!a) return PLM_ERR_NOT_FOUND;
    plm_lrt_model *m = (plm_lrt_model *)calloc(1, sizeof(plm_lrt_model));
    if (!m) return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", path);
    m->refs = 1;
    m->api = a;
    m->what = strdup(path);
    int st = m->what ? map_range(m, path, offset, size, error) : plm_errorf(error, PLM_ERR_NOMEM, "out of memory");
    if (!st && memcmp((const uint8_t *)m->data + 4, "TFL3", 4) != 0)
        st = plm_errorf(error, PLM_ERR_FORMAT,
                        "%s: the bytes at %llu are not a TFLite flatbuffer (no TFL3 identifier)", path,
                        (unsigned long long)offset);
    if (!st) st = check_signature_indices(m, error);
    if (!st) {
        m->model = a->ModelCreateWithErrorReporter(m->data, m->size, report, m->report);
        if (!m->model)
            st = plm_errorf(error, PLM_ERR_FORMAT,
                            "%s: LiteRT could not read the TFLite model: %s", path, reported(m->report));
    }
    if (!st) st = discover(m, error);
    if (st) {
        plm_lrt_model_free(m);
        return st;
    }
    *out = m;
    return PLM_OK;
}

void plm_lrt_model_free(plm_lrt_model *m) {
    if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    if (m->model) m->api->ModelDelete(m->model);
    if (m->map) {
        if (m->map_is_copy) free(m->map);
        else munmap(m->map, m->map_bytes);
    }
    free(m->what);
    free(m);
}

/* ---- a session's state ---------------------------------------------------------------- */

static int64_t n_runners(const plm_lrt_model *m) { return m->n_prefill + 1; }

static plm_lrt_runner *runner(plm_lrt_state *st, int64_t i) {
    return i < st->m->n_prefill ? &st->prefill[i] : &st->decode;
}

uint64_t plm_lrt_state_bytes(const plm_lrt_model *m) {
    if (!m) return 0;
    uint64_t b = sizeof(plm_lrt_state);
    for (int64_t i = 0; i <= m->n_prefill; i++) {
        const uint64_t T = i < m->n_prefill ? (uint64_t)m->prefill_len[i] : 1;
        b += 2 * m->cache_bytes + 8 * T;                              /* caches in and out, tokens, input_pos */
        if (m->has_mask) b += T * (uint64_t)m->cache_length * 4;       /* mask */
    }
    return b + (uint64_t)m->vocab_size * 4;                           /* logits */
}

static int bind_runner(plm_lrt_state *st, plm_lrt_runner *r, const char *key, int64_t T, int is_decode, char **error) {
    const plm_lrt_model *m = st->m;
    const plm_tfl *a = m->api;
    st->report[0] = 0;
    r->r = a->InterpreterGetSignatureRunner(st->interpreter, key);
    if (!r->r) return plm_errorf(error, PLM_ERR_FORMAT,
                                 "%s: LiteRT gives no runner for %s: %s", m->what, key, reported(st->report));
    r->T = T;
    if (a->SignatureRunnerAllocateTensors(r->r) != PLM_TFL_OK)
        return plm_errorf(error, PLM_ERR_NOMEM, "%s: LiteRT could not allocate %s's tensors: %s", m->what, key,
                          reported(st->report));
    r->tokens = a->SignatureRunnerGetInputTensor(r->r, "tokens");
    r->pos = a->SignatureRunnerGetInputTensor(r->r, "input_pos");
    r->mask = m->has_mask ? a->SignatureRunnerGetInputTensor(r->r, "mask") : NULL;
    r->logits = is_decode ? a->SignatureRunnerGetOutputTensor(r->r, "logits") : NULL;
    if (!r->tokens || !r->pos || (m->has_mask && !r->mask) || (is_decode && !r->logits))
        return plm_errorf(error, PLM_ERR_FORMAT,
                          "%s: %s lost an input or output between two interpreters", m->what, key);
    for (int64_t j = 0; j < m->n_kv; j++) {
        r->kv_in[j] = a->SignatureRunnerGetInputTensor(r->r, m->kv[j].name);
        r->kv_out[j] = a->SignatureRunnerGetOutputTensor(r->r, m->kv[j].name);
        if (!r->kv_in[j] || !r->kv_out[j] || !a->TensorData(r->kv_in[j]) || !a->TensorData(r->kv_out[j]) ||
            a->TensorByteSize(r->kv_in[j]) != m->kv[j].bytes || a->TensorByteSize(r->kv_out[j]) != m->kv[j].bytes)
            return plm_errorf(error, PLM_ERR_FORMAT,
                              "%s: %s's %s is not the %zu-byte cache the model declared", m->what, key,
                              m->kv[j].name, m->kv[j].bytes);
        if (a->TensorData(r->kv_in[j]) == a->TensorData(r->kv_out[j])) st->can_cancel_in_run = 0;
        /* arena memory is not cleared, and a masked-out NaN still makes 0 x NaN = NaN */
        memset(a->TensorData(r->kv_in[j]), 0, m->kv[j].bytes);
    }
    if (!a->TensorData(r->tokens) || !a->TensorData(r->pos) || (r->mask && !a->TensorData(r->mask)) ||
        (r->logits && (!a->TensorData(r->logits) || a->TensorByteSize(r->logits) < (size_t)m->vocab_size * 4)))
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: %s's tensors have no memory after allocation", m->what, key);
    return PLM_OK;
}

int plm_lrt_state_create(plm_lrt_model *m, int n_threads, plm_lrt_state **out, char **error) {
    if (error) *error = NULL;
    if (!m || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_lrt_state_create: NULL argument");
    *out = NULL;
    const plm_tfl *a = m->api;
    plm_lrt_state *st = (plm_lrt_state *)calloc(1, sizeof(plm_lrt_state));
    if (!st) return plm_errorf(error, PLM_ERR_NOMEM, "out of memory for a LiteRT session");
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_ACQ_REL);
    st->m = m;
    st->n_threads = n_threads > 0 ? n_threads : 1;
    st->bytes = plm_lrt_state_bytes(m);
    int rc = PLM_OK;
    st->options = a->InterpreterOptionsCreate();
    if (!st->options) {
        rc = plm_errorf(error, PLM_ERR_NOMEM, "%s: TFLite could not make interpreter options", m->what);
        goto fail;
    }
    a->InterpreterOptionsSetErrorReporter(st->options, report, st->report);
    a->InterpreterOptionsSetNumThreads(st->options, st->n_threads);
    st->can_cancel_in_run = a->InterpreterOptionsEnableCancellation && a->SignatureRunnerCancel &&
                            a->InterpreterOptionsEnableCancellation(st->options, 1) == PLM_TFL_OK;
    /* the library's default options, whatever their layout, with only num_threads (the first field) set */
    plm_xnn_options xo;
    memset(&xo, 0, sizeof xo);
    xo = a->XNNPackDelegateOptionsDefault();
    xo.u.num_threads = st->n_threads;
    st->xnnpack = a->XNNPackDelegateCreate(&xo);
    if (!st->xnnpack) {
        rc = plm_errorf(error, PLM_ERR_NOMEM, "%s: LiteRT could not create an XNNPack delegate", m->what);
        goto fail;
    }
    a->InterpreterOptionsAddDelegate(st->options, st->xnnpack);
    st->report[0] = 0;
    st->interpreter = a->InterpreterCreate(m->model, st->options);
    if (!st->interpreter) {
        rc = plm_errorf(error, PLM_ERR_FORMAT, "%s: LiteRT could not build an interpreter with XNNPack: %s", m->what,
                        reported(st->report));
        goto fail;
    }
    for (int64_t i = 0; i < m->n_prefill && !rc; i++)
        rc = bind_runner(st, &st->prefill[i], m->prefill_key[i], m->prefill_len[i], 0, error);
    if (!rc) rc = bind_runner(st, &st->decode, "decode", 1, 1, error);
    if (rc) goto fail;
    *out = st;
    return PLM_OK;
fail:
    plm_lrt_state_free(st);
    return rc;
}

void plm_lrt_state_free(plm_lrt_state *st) {
    if (!st) return;
    const plm_tfl *a = st->m->api;
    for (int64_t i = 0; i < n_runners(st->m); i++) {
        plm_lrt_runner *r = runner(st, i);
        if (r->r) a->SignatureRunnerDelete(r->r);
    }
    if (st->interpreter) a->InterpreterDelete(st->interpreter);
    if (st->options) a->InterpreterOptionsDelete(st->options);
    if (st->xnnpack) a->XNNPackDelegateDelete(st->xnnpack); /* after the interpreter that uses it */
    plm_lrt_model_free(st->m);
    free(st);
}

void plm_lrt_state_copy(plm_lrt_state *dst, const plm_lrt_state *src) {
    if (!dst || !src || dst->m != src->m) return;
    const plm_lrt_model *m = src->m;
    const plm_tfl *a = m->api;
    /* every runner of src holds the same caches: decode's go into each of dst's */
    for (int64_t i = 0; i < n_runners(m); i++)
        for (int64_t j = 0; j < m->n_kv; j++)
            memcpy(a->TensorData(runner(dst, i)->kv_in[j]), a->TensorData(src->decode.kv_in[j]), m->kv[j].bytes);
}

void plm_lrt_cancel(plm_lrt_state *st) {
    if (!st || !st->can_cancel_in_run || !__atomic_load_n(&st->running, __ATOMIC_ACQUIRE)) return;
    for (int64_t i = 0; i < n_runners(st->m); i++) st->m->api->SignatureRunnerCancel(runner(st, i)->r);
}

/* ---- runs ------------------------------------------------------------------------------ */

/* Positions [p, p + T) of one cache, from src to dst: the slab of each index before the position axis. */
static void copy_positions(float *dst, const float *src, const plm_lrt_kv *kv, int64_t C, int64_t p, int64_t T) {
    if (dst == src) return;
    if (kv->seq_axis < 0) {
        memcpy(dst, src, kv->bytes);
        return;
    }
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < kv->seq_axis; d++) outer *= kv->dims[d];
    for (int d = kv->seq_axis + 1; d < 4; d++) inner *= kv->dims[d];
    for (int64_t o = 0; o < outer; o++) {
        const int64_t at = (o * C + p) * inner;
        memcpy(dst + at, src + at, (size_t)(T * inner) * sizeof(float));
    }
}

/* One run of r: n real tokens (n <= T, the rest padding) at positions pos0..pos0+T-1 (< C). */
static int invoke(plm_lrt_state *st, plm_lrt_runner *r, const int32_t *ids, int64_t n, int64_t pos0, char **error) {
    const plm_lrt_model *m = st->m;
    const plm_tfl *a = m->api;
    const int64_t T = r->T, C = m->cache_length;
    int32_t *tok = (int32_t *)a->TensorData(r->tokens), *pos = (int32_t *)a->TensorData(r->pos);
    for (int64_t i = 0; i < T; i++) {
        tok[i] = i < n ? ids[i] : 0;
        pos[i] = (int32_t)(pos0 + i);
    }
    if (r->mask) { /* additive: 0 where a row may look, float32's lowest elsewhere (what LiteRT-LM writes) */
        float *mk = (float *)a->TensorData(r->mask);
        for (int64_t i = 0; i < T; i++) {
            float *row = mk + i * C;
            const int64_t see = pos0 + i + 1;
            for (int64_t j = 0; j < see; j++) row[j] = 0.0f;
            for (int64_t j = see; j < C; j++) row[j] = -FLT_MAX;
        }
    }
    st->report[0] = 0;
    __atomic_store_n(&st->running, 1, __ATOMIC_RELEASE);
    const TfLiteStatus s = a->SignatureRunnerInvoke(r->r);
    __atomic_store_n(&st->running, 0, __ATOMIC_RELEASE);
    if (s == PLM_TFL_CANCELLED) return PLM_LRT_STOPPED; /* the inputs are untouched: the cache is as before */
    if (s != PLM_TFL_OK)
        return plm_errorf(error, PLM_ERR_FORMAT,
                          "%s: a %lld-position run failed at position %lld (TFLite status %d): %s",
                          m->what, (long long)T, (long long)pos0, s, reported(st->report));
    /* the positions this run wrote, into every runner's input caches */
    for (int64_t j = 0; j < m->n_kv; j++) {
        const float *src = (const float *)a->TensorData(r->kv_out[j]);
        for (int64_t i = 0; i < n_runners(m); i++)
            copy_positions((float *)a->TensorData(runner(st, i)->kv_in[j]), src, &m->kv[j], C, pos0, T);
    }
    return PLM_OK;
}

static int check_range(const plm_lrt_state *st, int64_t pos0, int64_t n, char **error) {
    if (pos0 < 0 || n < 0 || pos0 + n > st->m->cache_length)
        return plm_errorf(error, PLM_ERR_SHAPE, "%s: positions %lld..%lld are outside the KV cache's %lld", st->m->what,
                          (long long)pos0, (long long)(pos0 + n - 1), (long long)st->m->cache_length);
    return PLM_OK;
}

int plm_lrt_decode(plm_lrt_state *st, int32_t id, int64_t pos, float *logits, char **error) {
    if (error) *error = NULL;
    if (!st) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_lrt_decode: NULL state");
    int rc = check_range(st, pos, 1, error);
    if (rc) return rc;
    rc = invoke(st, &st->decode, &id, 1, pos, error);
    if (rc) return rc;
    if (logits) memcpy(logits, st->m->api->TensorData(st->decode.logits), (size_t)st->m->vocab_size * sizeof(float));
    return PLM_OK;
}

int plm_lrt_prefill(plm_lrt_state *st, const int32_t *ids, int64_t n, int64_t pos0, const volatile int *cancel,
                    int64_t *done, char **error) {
    if (error) *error = NULL;
    if (done) *done = 0;
    if (!st || (n > 0 && !ids)) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_lrt_prefill: NULL argument");
    int rc = check_range(st, pos0, n, error);
    if (rc) return rc;
    const plm_lrt_model *m = st->m;
    int64_t k = 0;
    while (k < n) {
        if (cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)) return PLM_LRT_STOPPED;
        const int64_t left = n - k;
        plm_lrt_runner *r = &st->prefill[0]; /* the smallest, padded, when none fits */
        for (int64_t i = m->n_prefill - 1; i >= 0; i--)
            if (st->prefill[i].T <= left) {
                r = &st->prefill[i];
                break;
            }
        int64_t take = r->T < left ? r->T : left;
        if (pos0 + k + r->T > m->cache_length) { /* a padded chunk would cross the cache's end */
            r = &st->decode;
            take = 1;
        }
        rc = invoke(st, r, ids + k, take, pos0 + k, error);
        if (rc) return rc;
        k += take;
        if (done) *done = k;
    }
    return PLM_OK;
}

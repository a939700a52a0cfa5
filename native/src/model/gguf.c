/*
 * gguf.c — the engine's GGUF reader: one read-only map, one pass over the
 * header, every count, length, offset and type checked against the mapped
 * bytes before it is used (python/pocketlm/model/gguf_reader.py is its twin
 * and refuses the same files with the same kinds of messages).
 *
 * Layout (GGUF v2/v3, little-endian): "GGUF", u32 version, u64 tensor
 * count, u64 metadata count; metadata items (string key, u32 type, value);
 * tensor infos (string name, u32 n_dims, u64 dims[n_dims], u32 type, u64
 * offset); padding to general.alignment (32); tensor data. A string is a
 * u64 length and that many UTF-8 bytes.
 */
#define _GNU_SOURCE
#include "model/model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *key;      /* points into the map (not NUL-terminated) */
    uint64_t key_len;
    int type;             /* plm_gguf_value_type */
    int elem_type;        /* arrays */
    uint64_t count;       /* arrays: elements; strings: bytes */
    const uint8_t *value; /* scalars / strings / numeric array data */
    uint64_t *str_at;     /* string arrays: offset (from the map) of each element's length field */
} plm_kv;

typedef struct {
    const char *name;
    uint64_t name_len;
    int type, n_dims;
    int64_t dims[4];
    uint64_t offset, nbytes;
} plm_tensor;

struct plm_gguf {
    char *path;
    uint8_t *map;         /* the whole file */
    size_t map_size;
    uint64_t begin, end;  /* the GGUF's bytes within the map */
    uint64_t data_start;  /* absolute offset of the data section */
    int64_t n_kv, n_tensors;
    plm_kv *kv;
    plm_tensor *tensors;
    char **cnames;        /* NUL-terminated copies of keys and tensor names, for lookups and callers */
};

typedef struct {
    plm_gguf *g;
    uint64_t pos;
    char **error;
} cursor;

static int fail(cursor *c, int status, const char *fmt, ...) {
    if (c->error && !*c->error) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        const size_t n = strlen(c->g->path) + strlen(msg) + 3;
        char *out = (char *)malloc(n);
        if (out) snprintf(out, n, "%s: %s", c->g->path, msg);
        *c->error = out;
    }
    return status;
}

/* Reserves n bytes at the cursor; NULL (and the error set) past the end. */
static const uint8_t *need(cursor *c, uint64_t n, const char *what) {
    if (n > c->g->end - c->pos) {
        fail(c, PLM_ERR_FORMAT, "truncated or corrupted: %s runs past the end of the file (at byte %llu of %llu)",
             what, (unsigned long long)(c->pos - c->g->begin), (unsigned long long)(c->g->end - c->g->begin));
        return NULL;
    }
    const uint8_t *p = c->g->map + c->pos;
    c->pos += n;
    return p;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    const uint8_t *p = need(c, 4, what);
    if (!p) return PLM_ERR_FORMAT;
    memcpy(v, p, 4);
    return PLM_OK;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    const uint8_t *p = need(c, 8, what);
    if (!p) return PLM_ERR_FORMAT;
    memcpy(v, p, 8);
    return PLM_OK;
}

static int valid_utf8(const uint8_t *s, uint64_t n) {
    uint64_t i = 0;
    while (i < n) {
        const uint8_t b = s[i];
        int len;
        uint32_t cp;
        if (b < 0x80) { i++; continue; }
        else if ((b & 0xe0) == 0xc0) { len = 2; cp = b & 0x1f; }
        else if ((b & 0xf0) == 0xe0) { len = 3; cp = b & 0x0f; }
        else if ((b & 0xf8) == 0xf0) { len = 4; cp = b & 0x07; }
        else return 0;
        if (n - i < (uint64_t)len) return 0;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* overlong forms, surrogates and values past U+10FFFF are not UTF-8 */
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return 0;
        i += (uint64_t)len;
    }
    return 1;
}

static int rd_str(cursor *c, const char **s, uint64_t *len, const char *what) {
    uint64_t n;
    if (rd_u64(c, &n, what)) return PLM_ERR_FORMAT;
    const uint8_t *p = need(c, n, what);
    if (!p) return PLM_ERR_FORMAT;
    if (!valid_utf8(p, n))
        return fail(c, PLM_ERR_FORMAT, "corrupted: %s is not UTF-8 (at byte %llu)", what,
                    (unsigned long long)(p - c->g->map - c->g->begin));
    *s = (const char *)p;
    *len = n;
    return PLM_OK;
}

static char *cstr(const char *s, uint64_t n) {
    char *out = (char *)malloc((size_t)n + 1);
    if (out) { memcpy(out, s, (size_t)n); out[n] = 0; }
    return out;
}

/* A key or tensor name: a string without NUL bytes, also kept NUL-terminated in *copy. */
static int rd_name(cursor *c, const char **s, uint64_t *len, char **copy, const char *what) {
    if (rd_str(c, s, len, what)) return PLM_ERR_FORMAT;
    if (memchr(*s, 0, (size_t)*len)) return fail(c, PLM_ERR_FORMAT, "corrupted: %s holds a NUL byte", what);
    if (!(*copy = cstr(*s, *len))) return fail(c, PLM_ERR_NOMEM, "out of memory");
    return PLM_OK;
}

static int64_t scalar_size(int type) {
    switch (type) {
    case PLM_GGUF_U8: case PLM_GGUF_I8: case PLM_GGUF_BOOL: return 1;
    case PLM_GGUF_U16: case PLM_GGUF_I16: return 2;
    case PLM_GGUF_U32: case PLM_GGUF_I32: case PLM_GGUF_F32: return 4;
    case PLM_GGUF_U64: case PLM_GGUF_I64: case PLM_GGUF_F64: return 8;
    default: return 0;
    }
}

static int rd_value(cursor *c, plm_kv *kv, const char *what) {
    const int64_t size = scalar_size(kv->type);
    if (size) {
        kv->value = need(c, (uint64_t)size, what);
        return kv->value ? PLM_OK : PLM_ERR_FORMAT;
    }
    if (kv->type == PLM_GGUF_STRING) {
        const char *s;
        if (rd_str(c, &s, &kv->count, what)) return PLM_ERR_FORMAT;
        kv->value = (const uint8_t *)s;
        return PLM_OK;
    }
    if (kv->type != PLM_GGUF_ARRAY)
        return fail(c, PLM_ERR_FORMAT, "corrupted: %s has unknown value type %d", what, kv->type);
    uint32_t et;
    if (rd_u32(c, &et, what) || rd_u64(c, &kv->count, what)) return PLM_ERR_FORMAT;
    kv->elem_type = (int)et;
    const int64_t esize = scalar_size(kv->elem_type);
    if (esize) {
        if (kv->count > (c->g->end - c->pos) / (uint64_t)esize)
            return fail(c, PLM_ERR_FORMAT, "corrupted: %s claims %llu elements", what,
                        (unsigned long long)kv->count);
        kv->value = need(c, kv->count * (uint64_t)esize, what);
        return kv->value ? PLM_OK : PLM_ERR_FORMAT;
    }
    if (et == PLM_GGUF_ARRAY) return fail(c, PLM_ERR_FORMAT, "corrupted: %s is an array of arrays", what);
    if (et != PLM_GGUF_STRING)
        return fail(c, PLM_ERR_FORMAT, "corrupted: %s has unknown value type %u", what, et);
    if (kv->count > (c->g->end - c->pos) / 8) /* every string takes at least its 8-byte length */
        return fail(c, PLM_ERR_FORMAT, "corrupted: %s claims %llu elements", what, (unsigned long long)kv->count);
    kv->str_at = (uint64_t *)malloc((size_t)(kv->count ? kv->count : 1) * sizeof(uint64_t));
    if (!kv->str_at) return fail(c, PLM_ERR_NOMEM, "out of memory reading %s", what);
    for (uint64_t j = 0; j < kv->count; j++) {
        const char *s;
        uint64_t n;
        kv->str_at[j] = c->pos;
        if (rd_str(c, &s, &n, what)) return PLM_ERR_FORMAT;
    }
    return PLM_OK;
}

/* GGML types the engine runs: F32, F16, Q4_0, Q4_1, Q8_0 (block size, bytes per block) */
static int type_layout(int type, int64_t *block, int64_t *bytes) {
    switch (type) {
    case PLM_TYPE_F32: *block = 1; *bytes = 4; return 1;
    case PLM_TYPE_F16: *block = 1; *bytes = 2; return 1;
    case PLM_TYPE_Q4_0: *block = 32; *bytes = 18; return 1;
    case PLM_TYPE_Q4_1: *block = 32; *bytes = 20; return 1;
    case PLM_TYPE_Q8_0: *block = 32; *bytes = 34; return 1;
    default: return 0;
    }
}

static int parse(cursor *c) {
    plm_gguf *g = c->g;
    const uint8_t *magic = need(c, 4, "the magic number");
    if (!magic) return PLM_ERR_FORMAT;
    if (memcmp(magic, "GGUF", 4) != 0)
        return fail(c, PLM_ERR_FORMAT, "not a GGUF file (starts with %02x %02x %02x %02x, GGUF files with 'GGUF')",
                    magic[0], magic[1], magic[2], magic[3]);
    uint32_t version;
    uint64_t n_tensors, n_kv;
    if (rd_u32(c, &version, "the version")) return PLM_ERR_FORMAT;
    if (version != 2 && version != 3)
        return fail(c, PLM_ERR_FORMAT, "GGUF version %u is not supported (2 and 3 are)", version);
    if (rd_u64(c, &n_tensors, "the tensor count") || rd_u64(c, &n_kv, "the metadata count")) return PLM_ERR_FORMAT;
    const uint64_t remaining = g->end - c->pos;
    /* a metadata item takes at least 12 bytes (key length, type), a tensor info at least 24 */
    if (n_kv > remaining / 12 || n_tensors > remaining / 24)
        return fail(c, PLM_ERR_FORMAT, "corrupted header: %llu tensors and %llu metadata items cannot fit in %llu bytes",
                    (unsigned long long)n_tensors, (unsigned long long)n_kv, (unsigned long long)remaining);
    g->kv = (plm_kv *)calloc((size_t)(n_kv ? n_kv : 1), sizeof(plm_kv));
    g->tensors = (plm_tensor *)calloc((size_t)(n_tensors ? n_tensors : 1), sizeof(plm_tensor));
    g->cnames = (char **)calloc((size_t)(n_kv + n_tensors + 1), sizeof(char *));
    if (!g->kv || !g->tensors || !g->cnames) return fail(c, PLM_ERR_NOMEM, "out of memory for the header");
    char what[96];
    for (uint64_t i = 0; i < n_kv; i++) {
        plm_kv *kv = &g->kv[i];
        snprintf(what, sizeof what, "metadata key %llu", (unsigned long long)i);
        g->n_kv = (int64_t)i + 1; /* its name is freed on failure from here on */
        if (rd_name(c, &kv->key, &kv->key_len, &g->cnames[i], what)) return PLM_ERR_FORMAT;
        uint32_t t;
        snprintf(what, sizeof what, "metadata %.80s", g->cnames[i]);
        if (rd_u32(c, &t, what)) return PLM_ERR_FORMAT;
        kv->type = (int)t;
        if (rd_value(c, kv, what)) return PLM_ERR_FORMAT;
    }
    uint64_t align = 32;
    const int64_t ai = plm_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        int64_t a;
        if (plm_gguf_get_int(g, ai, &a) != PLM_OK || a <= 0 || (a & (a - 1)))
            return fail(c, PLM_ERR_FORMAT, "corrupted: general.alignment is not a power of two");
        align = (uint64_t)a;
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        plm_tensor *t = &g->tensors[i];
        snprintf(what, sizeof what, "tensor name %llu", (unsigned long long)i);
        g->n_tensors = (int64_t)i + 1;
        char **cn = &g->cnames[n_kv + i];
        if (rd_name(c, &t->name, &t->name_len, cn, what)) return PLM_ERR_FORMAT;
        uint32_t nd, type;
        snprintf(what, sizeof what, "the shape of tensor %.64s", *cn);
        if (rd_u32(c, &nd, what)) return PLM_ERR_FORMAT;
        if (nd > 4) return fail(c, PLM_ERR_FORMAT, "corrupted: tensor %s has %u dimensions", *cn, nd);
        t->n_dims = (int)nd;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v;
            if (rd_u64(c, &v, what)) return PLM_ERR_FORMAT;
            if (v > (uint64_t)INT64_MAX) return fail(c, PLM_ERR_FORMAT, "corrupted: tensor %s has dimension %llu", *cn,
                                                     (unsigned long long)v);
            t->dims[d] = (int64_t)v;
        }
        if (rd_u32(c, &type, what) || rd_u64(c, &t->offset, what)) return PLM_ERR_FORMAT;
        t->type = (int)type;
    }
    const uint64_t rel = c->pos - g->begin;
    if (rel > UINT64_MAX - align) return fail(c, PLM_ERR_FORMAT, "corrupted header size");
    g->data_start = g->begin + (rel + align - 1) / align * align;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        plm_tensor *t = &g->tensors[i];
        const char *name = g->cnames[n_kv + (uint64_t)i];
        int64_t block, bytes;
        if (!type_layout(t->type, &block, &bytes))
            return fail(c, PLM_ERR_FORMAT, "tensor %s has type %d, which pocketlm cannot run (F32, F16, Q8_0, Q4_0, "
                        "Q4_1 are supported)", name, t->type);
        const int64_t per_row = t->n_dims ? t->dims[0] : 1;
        if (per_row % block)
            return fail(c, PLM_ERR_FORMAT, "tensor %s: rows of %lld values are not whole blocks of %lld", name,
                        (long long)per_row, (long long)block);
        uint64_t n = (uint64_t)(per_row / block) * (uint64_t)bytes, end;
        for (int d = 1; d < t->n_dims; d++)
            if (__builtin_mul_overflow(n, (uint64_t)t->dims[d], &n))
                return fail(c, PLM_ERR_FORMAT, "corrupted: tensor %s is too large", name);
        if (__builtin_add_overflow(g->data_start, t->offset, &end) || __builtin_add_overflow(end, n, &end) ||
            end > g->end)
            return fail(c, PLM_ERR_FORMAT, "truncated: tensor %s ends past the end of the file (%llu bytes)", name,
                        (unsigned long long)(g->end - g->begin));
        t->nbytes = n;
    }
    return PLM_OK;
}

int plm_gguf_open(const char *path, uint64_t offset, uint64_t length, plm_gguf **out, char **error) {
    if (error) *error = NULL;
    if (!out) return PLM_ERR_INVALID_ARG;
    *out = NULL;
    if (!path) return PLM_ERR_INVALID_ARG;
    plm_gguf *g = (plm_gguf *)calloc(1, sizeof *g);
    cursor c = {g, 0, error};
    if (!g || !(g->path = cstr(path, strlen(path)))) {
        free(g);
        if (error) *error = NULL;
        return PLM_ERR_NOMEM;
    }
    int st = PLM_OK;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        st = fail(&c, PLM_ERR_IO, "cannot open: %s", strerror(errno));
    } else if (sb.st_size == 0) {
        st = fail(&c, PLM_ERR_FORMAT, "empty file, not a GGUF model file");
    } else if (offset > (uint64_t)sb.st_size || length > (uint64_t)sb.st_size - offset) {
        st = fail(&c, PLM_ERR_FORMAT, "truncated: the model needs %llu bytes at %llu, the file holds %llu",
                  (unsigned long long)length, (unsigned long long)offset, (unsigned long long)sb.st_size);
    } else {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            st = fail(&c, PLM_ERR_IO, "cannot map: %s", strerror(errno));
        } else {
            g->map = (uint8_t *)m;
            g->map_size = (size_t)sb.st_size;
            g->begin = offset;
            g->end = length ? offset + length : (uint64_t)sb.st_size;
            c.pos = offset;
            st = parse(&c);
        }
    }
    if (fd >= 0) close(fd);
    if (st != PLM_OK) {
        plm_gguf_close(g);
        return st;
    }
    *out = g;
    return PLM_OK;
}

void plm_gguf_close(plm_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) free(g->kv[i].str_at);
    if (g->cnames)
        for (int64_t i = 0; i < g->n_kv + g->n_tensors; i++) free(g->cnames[i]);
    /* cnames is indexed by n_kv + tensor index; entries past the parsed ones are NULL (calloc) */
    free(g->cnames);
    free(g->kv);
    free(g->tensors);
    if (g->map) munmap(g->map, g->map_size);
    free(g->path);
    free(g);
}

void plm_free(void *p) { free(p); }

const char *plm_gguf_path(const plm_gguf *g) { return g ? g->path : NULL; }

int64_t plm_gguf_n_kv(const plm_gguf *g) { return g ? g->n_kv : 0; }
int64_t plm_gguf_n_tensors(const plm_gguf *g) { return g ? g->n_tensors : 0; }
uint64_t plm_gguf_data_offset(const plm_gguf *g) { return g ? g->data_start - g->begin : 0; }

int64_t plm_gguf_find_key(const plm_gguf *g, const char *key) {
    if (!g || !key) return -1;
    const size_t n = strlen(key);
    for (int64_t i = g->n_kv - 1; i >= 0; i--)
        if (g->kv[i].key_len == n && memcmp(g->kv[i].key, key, n) == 0) return i;
    return -1;
}

const char *plm_gguf_key(const plm_gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_kv ? g->cnames[i] : NULL;
}

int plm_gguf_kv_type(const plm_gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_kv ? g->kv[i].type : PLM_ERR_INVALID_ARG;
}

int plm_gguf_get_int(const plm_gguf *g, int64_t i, int64_t *value) {
    if (!g || i < 0 || i >= g->n_kv || !value) return PLM_ERR_INVALID_ARG;
    const plm_kv *kv = &g->kv[i];
    const uint8_t *p = kv->value;
    switch (kv->type) {
    case PLM_GGUF_U8: case PLM_GGUF_BOOL: *value = p[0]; return PLM_OK;
    case PLM_GGUF_I8: *value = (int8_t)p[0]; return PLM_OK;
    case PLM_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *value = v; return PLM_OK; }
    case PLM_GGUF_I16: { int16_t v; memcpy(&v, p, 2); *value = v; return PLM_OK; }
    case PLM_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *value = v; return PLM_OK; }
    case PLM_GGUF_I32: { int32_t v; memcpy(&v, p, 4); *value = v; return PLM_OK; }
    case PLM_GGUF_U64: { uint64_t v; memcpy(&v, p, 8); if (v > (uint64_t)INT64_MAX) return PLM_ERR_TYPE;
                         *value = (int64_t)v; return PLM_OK; }
    case PLM_GGUF_I64: { int64_t v; memcpy(&v, p, 8); *value = v; return PLM_OK; }
    default: return PLM_ERR_TYPE;
    }
}

int plm_gguf_get_float(const plm_gguf *g, int64_t i, double *value) {
    if (!g || i < 0 || i >= g->n_kv || !value) return PLM_ERR_INVALID_ARG;
    const plm_kv *kv = &g->kv[i];
    if (kv->type == PLM_GGUF_F32) { float v; memcpy(&v, kv->value, 4); *value = v; return PLM_OK; }
    if (kv->type == PLM_GGUF_F64) { double v; memcpy(&v, kv->value, 8); *value = v; return PLM_OK; }
    int64_t v;
    const int st = plm_gguf_get_int(g, i, &v);
    if (st == PLM_OK) *value = (double)v;
    return st;
}

int plm_gguf_get_str(const plm_gguf *g, int64_t i, const char **s, uint64_t *len) {
    if (!g || i < 0 || i >= g->n_kv || !s || !len) return PLM_ERR_INVALID_ARG;
    if (g->kv[i].type != PLM_GGUF_STRING) return PLM_ERR_TYPE;
    *s = (const char *)g->kv[i].value;
    *len = g->kv[i].count;
    return PLM_OK;
}

int plm_gguf_arr_info(const plm_gguf *g, int64_t i, int *elem_type, uint64_t *count, const void **data) {
    if (!g || i < 0 || i >= g->n_kv) return PLM_ERR_INVALID_ARG;
    const plm_kv *kv = &g->kv[i];
    if (kv->type != PLM_GGUF_ARRAY) return PLM_ERR_TYPE;
    if (elem_type) *elem_type = kv->elem_type;
    if (count) *count = kv->count;
    if (data) *data = kv->elem_type == PLM_GGUF_STRING ? NULL : kv->value;
    return PLM_OK;
}

int plm_gguf_arr_str(const plm_gguf *g, int64_t i, uint64_t j, const char **s, uint64_t *len) {
    if (!g || i < 0 || i >= g->n_kv || !s || !len) return PLM_ERR_INVALID_ARG;
    const plm_kv *kv = &g->kv[i];
    if (kv->type != PLM_GGUF_ARRAY || kv->elem_type != PLM_GGUF_STRING) return PLM_ERR_TYPE;
    if (j >= kv->count) return PLM_ERR_INVALID_ARG;
    uint64_t n;
    memcpy(&n, g->map + kv->str_at[j], 8); /* checked when parsed */
    *s = (const char *)(g->map + kv->str_at[j] + 8);
    *len = n;
    return PLM_OK;
}

int64_t plm_gguf_find_tensor(const plm_gguf *g, const char *name) {
    if (!g || !name) return -1;
    const size_t n = strlen(name);
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name_len == n && memcmp(g->tensors[i].name, name, n) == 0) return i;
    return -1;
}

int plm_gguf_tensor_info(const plm_gguf *g, int64_t i, const char **name, int *type, int *n_dims,
                         int64_t dims[4], const void **data, uint64_t *nbytes) {
    if (!g || i < 0 || i >= g->n_tensors) return PLM_ERR_INVALID_ARG;
    const plm_tensor *t = &g->tensors[i];
    if (name) *name = g->cnames[g->n_kv + i];
    if (type) *type = t->type;
    if (n_dims) *n_dims = t->n_dims;
    if (dims) for (int d = 0; d < 4; d++) dims[d] = d < t->n_dims ? t->dims[d] : 1;
    if (data) *data = g->map + g->data_start + t->offset;
    if (nbytes) *nbytes = t->nbytes;
    return PLM_OK;
}

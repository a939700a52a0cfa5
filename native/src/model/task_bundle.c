/*
 * task_bundle.c — a .task bundle (a zip file, as MediaPipe's bundler and
 * pocketlm's write it) read in place: found, as zip readers find it, from
 * its end-of-central-directory record (zip64 too) wherever the archive
 * starts (MediaPipe's bundler pads before the first entry; any prefix is
 * allowed), every central directory entry and its local header checked
 * against the mapped bytes before use, stored entries located where they
 * lie (the model is then mapped from there by plm_model_open). And the
 * METADATA entry: MediaPipe's LlmParameters protobuf, read by a small
 * bounds-checked wire-format reader (python/pocketlm/genai/llm_params.py holds
 * the schema: field numbers and meanings are MediaPipe's).
 */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    char *name;
    uint64_t data_offset, size, compressed_size;
    int method;
} plm_task_entry_t;

struct plm_task {
    char *path;
    const uint8_t *map;
    uint64_t size;
    plm_task_entry_t *entries;
    int64_t n;
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* [off, off + n) inside the file */
static int inside(const plm_task *t, uint64_t off, uint64_t n) { return off <= t->size && n <= t->size - off; }

static int bad(const plm_task *t, char **error, const char *what) {
    return plm_errorf(error, PLM_ERR_FORMAT, "%s: not a readable .task bundle (%s)", t->path, what);
}

/* zip64 sizes and offset of a central entry, from its 0x0001 extra field, in that order, each only where the
 * 32-bit field holds 0xFFFFFFFF */
static int zip64_extra(const uint8_t *extra, uint64_t len, uint64_t *size, uint64_t *csize, uint64_t *off) {
    uint64_t i = 0;
    while (i + 4 <= len) {
        const uint16_t id = rd16(extra + i), n = rd16(extra + i + 2);
        if (i + 4 + n > len) return -1;
        if (id == 0x0001) {
            const uint8_t *p = extra + i + 4;
            uint64_t used = 0;
            uint64_t *fields[3] = {size, csize, off};
            for (int f = 0; f < 3; f++) {
                if (*fields[f] != 0xFFFFFFFFu) continue;
                if (used + 8 > n) return -1;
                *fields[f] = rd64(p + used);
                used += 8;
            }
            return 0;
        }
        i += 4 + (uint64_t)n;
    }
    return (*size == 0xFFFFFFFFu || *csize == 0xFFFFFFFFu || *off == 0xFFFFFFFFu) ? -1 : 0;
}

/* The end-of-central-directory record of the n bytes at p (a file's tail), or -1: the last signature whose
 * comment length reaches exactly the end (the comment may be up to 65535 bytes). */
static int64_t find_eocd(const uint8_t *p, uint64_t n) {
    if (n < 22) return -1;
    const uint64_t lowest = n > 22 + 65535 ? n - 22 - 65535 : 0;
    for (uint64_t i = n - 22 + 1; i-- > lowest;)
        if (rd32(p + i) == 0x06054b50u && i + 22 + rd16(p + i + 20) == n) return (int64_t)i;
    return -1;
}

int plm_task_probe(const char *path) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return 0;
    uint8_t *tail = NULL;
    int found = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        const long size = ftell(f);
        const long n = size < 22 + 65535 ? size : 22 + 65535;
        if (n >= 22 && (tail = (uint8_t *)malloc((size_t)n)) && fseek(f, size - n, SEEK_SET) == 0 &&
            fread(tail, 1, (size_t)n, f) == (size_t)n)
            found = find_eocd(tail, (uint64_t)n) >= 0;
    }
    free(tail);
    fclose(f);
    return found;
}

static int parse(plm_task *t, char **error) {
    if (t->size < 22) return bad(t, error, "shorter than a zip end record");
    /* the end of central directory record: its comment may be up to 65535 bytes */
    const int64_t eocd = find_eocd(t->map, t->size);
    if (eocd < 0) return bad(t, error, "no zip end-of-central-directory record");
    const uint8_t *e = t->map + eocd;
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0) return bad(t, error, "a multi-disk zip");
    uint64_t count = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    /* where the central directory ends: the end record, or the zip64 end record before its locator */
    uint64_t cd_end = (uint64_t)eocd;
    const int saturated = count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu;
    if (saturated || (eocd >= 20 && rd32(e - 20) == 0x07064b50u)) {
        /* zip64: the locator stands just before the end record, the zip64 end record before the locator
         * (where zip readers look for it; the locator's own offset is relative to the archive's start).
         * Where a locator is present its record rules, as for Python's zipfile, even below 4 GiB. */
        if (eocd < 20 || rd32(e - 20) != 0x07064b50u) return bad(t, error, "zip64 locator missing");
        uint64_t rec = (uint64_t)eocd - 20 - 56;
        if (eocd < 20 + 56 || rd32(t->map + rec) != 0x06064b50u) rec = rd64(e - 20 + 8);
        if (!inside(t, rec, 56) || rd32(t->map + rec) != 0x06064b50u) return bad(t, error, "zip64 end record missing");
        count = rd64(t->map + rec + 32);
        cd_size = rd64(t->map + rec + 40);
        cd_off = rd64(t->map + rec + 48);
        cd_end = rec;
    }
    /* The archive may start after a prefix (MediaPipe's bundler pads before each entry, a self-extracting
     * stub or a header may come first): zip offsets are then relative to the archive's start, which lies
     * where the central directory, ending at cd_end, says it must. Zip readers (Python's zipfile,
     * Info-ZIP) find it the same way. */
    if (cd_size > cd_end || cd_off > cd_end - cd_size) return bad(t, error, "central directory outside the file");
    const uint64_t base = cd_end - cd_size - cd_off;
    cd_off += base;
    if (!inside(t, cd_off, cd_size)) return bad(t, error, "central directory outside the file");
    if (count > cd_size / 46) return bad(t, error, "more entries than the central directory holds");
    t->entries = (plm_task_entry_t *)calloc((size_t)(count ? count : 1), sizeof(plm_task_entry_t));
    if (!t->entries) return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", t->path);
    uint64_t p = cd_off;
    const uint64_t end = cd_off + cd_size;
    for (uint64_t k = 0; k < count; k++) {
        if (p + 46 > end || rd32(t->map + p) != 0x02014b50u) return bad(t, error, "corrupted central directory entry");
        const uint8_t *c = t->map + p;
        const uint16_t flags = rd16(c + 8), method = rd16(c + 10), nlen = rd16(c + 28), xlen = rd16(c + 30),
                       clen = rd16(c + 32);
        uint64_t csize = rd32(c + 20), size = rd32(c + 24), loff = rd32(c + 42);
        if (p + 46 + (uint64_t)nlen + xlen + clen > end) return bad(t, error, "central directory entry runs past it");
        if (zip64_extra(c + 46 + nlen, xlen, &size, &csize, &loff)) return bad(t, error, "corrupted zip64 extra field");
        if (flags & 1) return bad(t, error, "an encrypted entry");
        plm_task_entry_t *en = &t->entries[k];
        en->name = (char *)malloc((size_t)nlen + 1);
        if (!en->name) return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", t->path);
        memcpy(en->name, c + 46, nlen);
        en->name[nlen] = '\0';
        t->n = (int64_t)k + 1;
        if (strlen(en->name) != nlen) return bad(t, error, "an entry name with a NUL byte");
        /* the local header gives the data's own offset: its name and extra lengths may differ */
        if (loff > t->size - base || !inside(t, loff += base, 30) || rd32(t->map + loff) != 0x04034b50u)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: corrupted bundle: no local header for %s", t->path, en->name);
        const uint64_t data = loff + 30 + rd16(t->map + loff + 26) + rd16(t->map + loff + 28);
        if (!inside(t, data, csize))
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: corrupted bundle: entry %s runs past the end of the file",
                              t->path, en->name);
        if (method == 0 && csize != size)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: corrupted bundle: stored entry %s has two sizes", t->path,
                              en->name);
        en->data_offset = data;
        en->size = size;
        en->compressed_size = csize;
        en->method = method;
        p += 46 + (uint64_t)nlen + xlen + clen;
    }
    return PLM_OK;
}

int plm_task_open(const char *path, plm_task **out, char **error) {
    if (error) *error = NULL;
    if (!path || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_task_open: NULL argument");
    *out = NULL;
    plm_task *t = (plm_task *)calloc(1, sizeof(plm_task));
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", path);
    }
    const int mst = plm_map_file(path, 1, &t->map, &t->size, error);
    if (mst) {
        plm_task_close(t);
        return mst;
    }
    const int s = parse(t, error);
    if (s) {
        plm_task_close(t);
        return s;
    }
    *out = t;
    return PLM_OK;
}

void plm_task_close(plm_task *t) {
    if (!t) return;
    for (int64_t i = 0; i < t->n; i++) free(t->entries[i].name);
    free(t->entries);
    plm_unmap_file(t->map, t->size);
    free(t->path);
    free(t);
}

int64_t plm_task_n_entries(const plm_task *t) { return t ? t->n : 0; }

int64_t plm_task_find(const plm_task *t, const char *name) {
    if (!t || !name) return -1;
    for (int64_t i = 0; i < t->n; i++)
        if (strcmp(t->entries[i].name, name) == 0) return i;
    return -1;
}

int plm_task_entry(const plm_task *t, int64_t i, const char **name, uint64_t *offset, uint64_t *size, int *stored) {
    if (!t || i < 0 || i >= t->n) return PLM_ERR_INVALID_ARG;
    const plm_task_entry_t *e = &t->entries[i];
    if (name) *name = e->name;
    if (offset) *offset = e->data_offset;
    if (size) *size = e->size;
    if (stored) *stored = e->method == 0;
    return PLM_OK;
}

/* ---- METADATA: LlmParameters in the protobuf wire format ------------------- */

static int utf8_ok(const uint8_t *s, uint64_t n) {
    for (uint64_t i = 0; i < n;) {
        const uint8_t c = s[i];
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + (uint64_t)len > n) return 0;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += (uint64_t)len;
    }
    return 1;
}

static int take_str(const plm_wire *sub, plm_str *out) {
    if (!utf8_ok(sub->p, (uint64_t)(sub->end - sub->p))) return -1;
    out->ptr = (const char *)sub->p;
    out->len = (uint64_t)(sub->end - sub->p);
    return 0;
}

/* a nested message: every field must parse; string fields 1, 2 and 3 go to s1, s2, s3 where given */
static int message(plm_wire *m, plm_str *s1, plm_str *s2, plm_str *s3) {
    while (m->p < m->end) {
        uint32_t num;
        int wt;
        plm_wire sub = {0, 0};
        uint64_t v;
        if (plm_wire_field(m, &num, &wt, &sub, &v)) return -1;
        plm_str *dst = num == 1 ? s1 : num == 2 ? s2 : num == 3 ? s3 : NULL;
        if (dst && wt == 2 && take_str(&sub, dst)) return -1;
    }
    return 0;
}

int plm_llm_params_parse(const void *data, uint64_t size, plm_llm_params *out) {
    if (!out || (!data && size)) return -1;
    memset(out, 0, sizeof(*out));
    out->start_token_id = -1;
    plm_wire w = {(const uint8_t *)data, (const uint8_t *)data + size};
    while (w.p < w.end) {
        uint32_t num;
        int wt;
        plm_wire sub = {0, 0};
        uint64_t v = 0;
        if (plm_wire_field(&w, &num, &wt, &sub, &v)) return -1;
        const int is_len = wt == 2, is_var = wt == 0;
        /* a known field with another plm_wire type is an unknown field to protobuf: skipped, as there */
        switch (num) {
        case 2: /* vocab_size */
            if (is_var) out->vocab_size = (int64_t)(int32_t)v;
            break;
        case 4: /* start_token_id (oneof with start_token: the last one set wins) */
            if (!is_var) break;
            out->start_token_id = (int64_t)(int32_t)v;
            out->has_start_token_id = 1;
            out->start_token.ptr = NULL, out->start_token.len = 0, out->has_start_token = 0;
            break;
        case 5: /* stop_tokens */
            if (!is_len) break;
            if (out->n_stop_tokens >= (int64_t)(sizeof out->stop_tokens / sizeof out->stop_tokens[0])) return -1;
            if (take_str(&sub, &out->stop_tokens[out->n_stop_tokens++])) return -1;
            break;
        case 6: /* start_token */
            if (!is_len) break;
            if (take_str(&sub, &out->start_token)) return -1;
            out->has_start_token = 1;
            out->has_start_token_id = 0, out->start_token_id = -1;
            break;
        case 7: /* input_output_normalizations: packed or not */
            if (is_var) {
                if (v > 1) out->unknown_normalization = 1;
                if (v == 1) out->bytes_to_unicode = 1;
            } else if (is_len) {
                while (sub.p < sub.end) {
                    uint64_t x;
                    if (plm_wire_varint(&sub, &x)) return -1;
                    if (x > 1) out->unknown_normalization = 1;
                    if (x == 1) out->bytes_to_unicode = 1;
                }
            }
            break;
        case 8: /* prompt_template: session_prefix 1, prompt_prefix 2, prompt_suffix 3 */
            if (is_len && message(&sub, &out->system_prompt, &out->prompt_prefix, &out->prompt_suffix)) return -1;
            break;
        case 11: case 12: case 13: case 14: /* user, system, model, end role tokens */
            if (!is_len) break;
            if (take_str(&sub, &out->role_tokens[num - 11])) return -1;
            out->has_role_token[num - 11] = 1;
            break;
        case 1: case 16: /* transformer parameters: not used, but a message whose fields must parse */
            if (is_len && message(&sub, NULL, NULL, NULL)) return -1;
            break;
        default: break;
        }
    }
    return 0;
}

int plm_task_metadata(const plm_task *t, plm_llm_params *out, char **error) {
    if (error) *error = NULL;
    if (!t || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_task_metadata: NULL argument");
    const int64_t i = plm_task_find(t, "METADATA");
    if (i < 0) {
        memset(out, 0, sizeof(*out));
        out->start_token_id = -1;
        return PLM_ERR_NOT_FOUND;
    }
    const plm_task_entry_t *e = &t->entries[i];
    if (e->method != 0)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: entry METADATA is compressed; pocketlm reads it stored", t->path);
    const uint8_t *data = t->map + e->data_offset;
    if (e->size && data[0] == '{')
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: entry METADATA is pocketlm 0.1's JSON, which only the Python "
                          "loader reads; bundle the model again", t->path);
    if (plm_llm_params_parse(data, e->size, out))
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: entry METADATA: not an LlmParameters protobuf", t->path);
    if (out->unknown_normalization)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: entry METADATA: input_output_normalizations holds a value "
                          "that is not known", t->path);
    return PLM_OK;
}

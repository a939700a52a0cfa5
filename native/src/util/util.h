/*
 * util.h — the helpers every layer of libpocketlm may use, and that use
 * nothing of libpocketlm themselves: error messages, UTF-8, a small JSON
 * reader, the protobuf wire format and hash maps. None of it is public API.
 */
#ifndef PLM_UTIL_H
#define PLM_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* ---- errors ------------------------------------------------------------- */

/* a malloc'd printf into *out (nothing when out is NULL); returns status */
int plm_errorf(char **out, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- files ------------------------------------------------------------- */

/* Maps the regular file at path whole and read-only: *map (NULL when the file is shorter than min_size or
 * empty) and *size. PLM_ERR_IO naming the file when it cannot be opened or mapped. */
int plm_map_file(const char *path, uint64_t min_size, const uint8_t **map, uint64_t *size, char **error);
void plm_unmap_file(const uint8_t *map, uint64_t size);

/* ---- UTF-8 -------------------------------------------------------------- */

/* Decodes one code point at s[0..n); *len gets the bytes it took. An invalid
 * or truncated sequence gives U+FFFD and takes one byte (Python's "replace"
 * takes the maximal invalid prefix; see plm_utf8_valid_prefix for that). */
uint32_t plm_utf8_next(const uint8_t *s, size_t n, size_t *len);
/* Writes c as UTF-8 into out (4 bytes of room); returns the byte count. */
int plm_utf8_put(uint32_t c, uint8_t *out);
/* Length of the complete UTF-8 sequence at s (1..4), 0 if s[0..n) is a valid
 * but incomplete start of one, -1 if the bytes are invalid there. */
int plm_utf8_char_len(const uint8_t *s, size_t n);
/* Appends src as Python's bytes.decode("utf-8", errors="replace") would give
 * it (each maximal invalid subpart becomes U+FFFD). Returns bytes written to
 * out, which needs 3 * n bytes of room at most. */
size_t plm_utf8_sanitize(const uint8_t *src, size_t n, uint8_t *out);
/* Byte offset of the first sequence in s[0..n) that is not well-formed UTF-8
 * (Unicode's table 3-7: overlongs, surrogates ED A0..BF xx as CESU-8 writes
 * them, code points past U+10FFFF, a sequence cut short at the end), or -1. */
int64_t plm_utf8_invalid_at(const uint8_t *s, size_t n);

/* ---- JSON ----------------------------------------------------------------- */

typedef enum { PLM_JNULL, PLM_JBOOL, PLM_JNUM, PLM_JSTR, PLM_JARR, PLM_JOBJ } plm_jtype;
typedef struct plm_json plm_json;
struct plm_json {
    plm_jtype type;
    double num;        /* JNUM, and JBOOL as 0/1 */
    char *str;         /* JSTR (NUL-terminated UTF-8; len excludes it); an object member's key in key */
    size_t len;
    char *key;
    size_t key_len;
    plm_json *child;   /* JARR / JOBJ: first element or member */
    plm_json *next;    /* next sibling */
    int64_t n;         /* JARR / JOBJ: element count */
};
/* Parses text[0..n) into one allocation freed by plm_json_free; NULL on error
 * with *err (static text) saying what and *at the byte offset. */
plm_json *plm_json_parse(const char *text, size_t n, const char **err, size_t *at);
void plm_json_free(plm_json *j);
const plm_json *plm_json_get(const plm_json *obj, const char *key); /* NULL if absent or not an object */
const char *plm_json_str(const plm_json *j);                         /* NULL unless a string */

/* ---- regex -------------------------------------------------------------- */

/* ---- protobuf wire format ------------------------------------------------ */

typedef struct {
    const uint8_t *p, *end;
} plm_wire;
int plm_wire_varint(plm_wire *w, uint64_t *v);
/* One field: its number, wire type, and (LEN) its bytes in *sub, (VARINT) its
 * value, (I32) its 4 bytes' little-endian value; I64 is skipped. 0, or -1 for
 * bytes that are not a field. */
int plm_wire_field(plm_wire *w, uint32_t *num, int *wt, plm_wire *sub, uint64_t *value);

/* ---- string -> int map ---------------------------------------------------- */

typedef struct {
    uint64_t *hash; /* 0: empty slot */
    const char **key;
    uint32_t *key_len;
    int64_t *value;
    uint64_t cap, n;
} plm_strmap;
int plm_strmap_init(plm_strmap *m, uint64_t expect);
void plm_strmap_free(plm_strmap *m);
/* key must outlive the map. Returns 0, or -1 out of memory. A key already in
 * the map keeps its first value unless overwrite. */
int plm_strmap_put(plm_strmap *m, const char *key, size_t len, int64_t value, int overwrite);
int64_t plm_strmap_get(const plm_strmap *m, const char *key, size_t len, int64_t missing);

/* A u64 -> i64 map (BPE merge pairs). */
typedef struct {
    uint64_t *key; /* stored as key + 1; 0 is empty */
    int64_t *value;
    uint64_t cap, n;
} plm_u64map;
int plm_u64map_init(plm_u64map *m, uint64_t expect);
void plm_u64map_free(plm_u64map *m);
int plm_u64map_put(plm_u64map *m, uint64_t key, int64_t value); /* keeps the first value */
int64_t plm_u64map_get(const plm_u64map *m, uint64_t key, int64_t missing);

#endif

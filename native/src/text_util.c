/*
 * text_util.c — UTF-8, Unicode class lookups, a small JSON reader and the
 * hash maps the tokenizers use (see plm_text.h).
 */
#include "plm_text.h"
#include "unicode_tables.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 -------------------------------------------------------------- */

/* Bytes of the sequence led by b, and the allowed range of its second byte
 * (Unicode's table 3-7: no overlongs, no surrogates, nothing past U+10FFFF). */
static int lead_info(uint8_t b, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80, *hi = 0xBF;
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) *lo = 0xA0;
        if (b == 0xED) *hi = 0x9F;
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) *lo = 0x90;
        if (b == 0xF4) *hi = 0x8F;
        return 4;
    }
    return -1;
}

/* Bytes of the valid sequence at s (1..4); else -(the maximal invalid subpart's length),
 * or 0 when s[0..n) is a valid but incomplete prefix. */
static int seq_len(const uint8_t *s, size_t n) {
    uint8_t lo, hi;
    const int need = lead_info(s[0], &lo, &hi);
    if (need < 0) return -1;
    for (int k = 1; k < need; k++) {
        if ((size_t)k >= n) return 0;
        const uint8_t b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -k;
    }
    return need;
}

int plm_utf8_char_len(const uint8_t *s, size_t n) {
    if (n == 0) return 0;
    const int k = seq_len(s, n);
    return k < 0 ? -1 : k;
}

uint32_t plm_utf8_next(const uint8_t *s, size_t n, size_t *len) {
    const int k = seq_len(s, n);
    if (k <= 0) {
        *len = 1;
        return 0xFFFD;
    }
    *len = (size_t)k;
    switch (k) {
    case 1: return s[0];
    case 2: return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    case 3: return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    default:
        return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
               (s[3] & 0x3F);
    }
}

int plm_utf8_put(uint32_t c, uint8_t *o) {
    if (c < 0x80) {
        o[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (uint8_t)(0xC0 | (c >> 6)), o[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (c >> 12)), o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18)), o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)), o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

size_t plm_utf8_sanitize(const uint8_t *s, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        int k = seq_len(s + i, n - i);
        if (k > 0) {
            memcpy(out + o, s + i, (size_t)k);
            o += (size_t)k, i += (size_t)k;
            continue;
        }
        /* an invalid subpart, or a truncated sequence at the end: one U+FFFD for all of it */
        size_t skip = k < 0 ? (size_t)-k : n - i;
        out[o++] = 0xEF, out[o++] = 0xBF, out[o++] = 0xBD;
        i += skip;
    }
    return o;
}

/* ---- Unicode classes ---------------------------------------------------- */

int plm_uc_category(uint32_t c) {
    size_t lo = 0, hi = sizeof plm_uc_ranges / sizeof plm_uc_ranges[0];
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (c < plm_uc_ranges[mid].lo) hi = mid;
        else if (c > plm_uc_ranges[mid].hi) lo = mid + 1;
        else return plm_uc_ranges[mid].cat;
    }
    return 0;
}

int plm_uc_n_categories(void) { return (int)(sizeof plm_uc_cat_names / sizeof plm_uc_cat_names[0]); }
const char *plm_uc_category_name(int i) { return plm_uc_cat_names[i]; }

int plm_uc_is_space(uint32_t c) {
    for (size_t i = 0; i < sizeof plm_uc_space / sizeof plm_uc_space[0]; i++)
        if (plm_uc_space[i] == c) return 1;
    return 0;
}

uint32_t plm_uc_lower(uint32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    size_t lo = 0, hi = sizeof plm_uc_lower_map / sizeof plm_uc_lower_map[0];
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (c < plm_uc_lower_map[mid][0]) hi = mid;
        else if (c > plm_uc_lower_map[mid][0]) lo = mid + 1;
        else return plm_uc_lower_map[mid][1];
    }
    return c;
}

/* ---- JSON ----------------------------------------------------------------- */

typedef struct {
    const char *s;
    size_t n, i;
    const char *err;
    int depth;
} jparser;

static void ws(jparser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int hex4(jparser *p, uint32_t *v) {
    if (p->n - p->i < 4) return -1;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        const char c = p->s[p->i++];
        *v <<= 4;
        if (c >= '0' && c <= '9') *v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') *v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') *v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    return 0;
}

/* A string at p->i (after the quote) into a malloc'd buffer. */
static char *jstring(jparser *p, size_t *len) {
    size_t cap = 16, o = 0;
    char *out = (char *)malloc(cap);
    if (!out) return p->err = "out of memory", NULL;
    for (;;) {
        if (p->i >= p->n) {
            p->err = "unterminated string";
            break;
        }
        if (cap - o < 8) {
            char *g = (char *)realloc(out, cap *= 2);
            if (!g) {
                p->err = "out of memory";
                break;
            }
            out = g;
        }
        const unsigned char c = (unsigned char)p->s[p->i++];
        if (c == '"') {
            out[o] = '\0';
            *len = o;
            return out;
        }
        if (c < 0x20) {
            p->err = "control character in a string";
            break;
        }
        if (c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        if (p->i >= p->n) {
            p->err = "unterminated string";
            break;
        }
        const char e = p->s[p->i++];
        uint32_t cp;
        switch (e) {
        case '"': out[o++] = '"'; continue;
        case '\\': out[o++] = '\\'; continue;
        case '/': out[o++] = '/'; continue;
        case 'b': out[o++] = '\b'; continue;
        case 'f': out[o++] = '\f'; continue;
        case 'n': out[o++] = '\n'; continue;
        case 'r': out[o++] = '\r'; continue;
        case 't': out[o++] = '\t'; continue;
        case 'u':
            if (hex4(p, &cp)) {
                p->err = "bad \\u escape";
                break;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF && p->n - p->i >= 6 && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
                const size_t save = p->i;
                uint32_t lo;
                p->i += 2;
                if (hex4(p, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else p->i = save;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* a lone surrogate has no UTF-8 form */
            o += (size_t)plm_utf8_put(cp, (uint8_t *)out + o);
            continue;
        default: p->err = "bad escape"; break;
        }
        break;
    }
    free(out);
    return NULL;
}

static plm_json *jvalue(jparser *p);

static void jfree_node(plm_json *j) {
    while (j) {
        plm_json *next = j->next;
        jfree_node(j->child);
        free(j->str);
        free(j->key);
        free(j);
        j = next;
    }
}

static plm_json *jcontainer(jparser *p, int is_obj) {
    plm_json *j = (plm_json *)calloc(1, sizeof *j), **tail;
    if (!j) return p->err = "out of memory", NULL;
    j->type = is_obj ? PLM_JOBJ : PLM_JARR;
    tail = &j->child;
    if (++p->depth > 200) {
        p->err = "nested too deeply";
        goto fail;
    }
    ws(p);
    if (p->i < p->n && p->s[p->i] == (is_obj ? '}' : ']')) {
        p->i++;
        p->depth--;
        return j;
    }
    for (;;) {
        char *key = NULL;
        size_t key_len = 0;
        ws(p);
        if (is_obj) {
            if (p->i >= p->n || p->s[p->i] != '"') {
                p->err = "expected a member name";
                goto fail;
            }
            p->i++;
            if (!(key = jstring(p, &key_len))) goto fail;
            ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                free(key);
                p->err = "expected ':'";
                goto fail;
            }
            p->i++;
        }
        plm_json *v = jvalue(p);
        if (!v) {
            free(key);
            goto fail;
        }
        v->key = key, v->key_len = key_len;
        *tail = v, tail = &v->next;
        j->n++;
        ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == (is_obj ? '}' : ']')) {
            p->i++;
            p->depth--;
            return j;
        }
        p->err = is_obj ? "expected ',' or '}'" : "expected ',' or ']'";
        goto fail;
    }
fail:
    jfree_node(j);
    return NULL;
}

static plm_json *jvalue(jparser *p) {
    ws(p);
    if (p->i >= p->n) return p->err = "unexpected end", NULL;
    const char c = p->s[p->i];
    if (c == '{' || c == '[') {
        p->i++;
        return jcontainer(p, c == '{');
    }
    plm_json *j = (plm_json *)calloc(1, sizeof *j);
    if (!j) return p->err = "out of memory", NULL;
    if (c == '"') {
        p->i++;
        j->type = PLM_JSTR;
        if (!(j->str = jstring(p, &j->len))) {
            free(j);
            return NULL;
        }
        return j;
    }
    static const struct { const char *word; plm_jtype t; double v; } words[] = {
        {"true", PLM_JBOOL, 1}, {"false", PLM_JBOOL, 0}, {"null", PLM_JNULL, 0},
        {"NaN", PLM_JNUM, NAN}, {"Infinity", PLM_JNUM, INFINITY}, {"-Infinity", PLM_JNUM, -INFINITY}};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
        const size_t l = strlen(words[k].word);
        if (p->n - p->i >= l && memcmp(p->s + p->i, words[k].word, l) == 0) {
            p->i += l;
            j->type = words[k].t, j->num = words[k].v;
            return j;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char buf[64];
        size_t l = 0;
        while (p->i < p->n && l < sizeof buf - 1 && strchr("+-0123456789.eE", p->s[p->i])) buf[l++] = p->s[p->i++];
        buf[l] = '\0';
        char *end;
        j->type = PLM_JNUM;
        j->num = strtod(buf, &end);
        if (*end == '\0') return j;
    }
    free(j);
    return p->err = "unexpected character", NULL;
}

plm_json *plm_json_parse(const char *text, size_t n, const char **err, size_t *at) {
    jparser p = {text, n, 0, NULL, 0};
    plm_json *j = jvalue(&p);
    if (j) {
        ws(&p);
        if (p.i != p.n) {
            jfree_node(j);
            j = NULL;
            p.err = "text after the value";
        }
    }
    if (!j) {
        if (err) *err = p.err ? p.err : "invalid JSON";
        if (at) *at = p.i;
    }
    return j;
}

void plm_json_free(plm_json *j) { jfree_node(j); }

const plm_json *plm_json_get(const plm_json *obj, const char *key) {
    if (!obj || obj->type != PLM_JOBJ) return NULL;
    const size_t l = strlen(key);
    const plm_json *found = NULL;
    for (const plm_json *c = obj->child; c; c = c->next)
        if (c->key_len == l && memcmp(c->key, key, l) == 0) found = c; /* the last one, as Python's json */
    return found;
}

const char *plm_json_str(const plm_json *j) { return j && j->type == PLM_JSTR ? j->str : NULL; }

/* ---- maps --------------------------------------------------------------- */

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ? h : 1;
}

int plm_strmap_init(plm_strmap *m, uint64_t expect) {
    memset(m, 0, sizeof *m);
    uint64_t cap = 16;
    while (cap < expect * 2 + 16) cap *= 2;
    m->hash = (uint64_t *)calloc(cap, sizeof *m->hash);
    m->key = (const char **)calloc(cap, sizeof *m->key);
    m->key_len = (uint32_t *)calloc(cap, sizeof *m->key_len);
    m->value = (int64_t *)calloc(cap, sizeof *m->value);
    m->cap = cap;
    if (!m->hash || !m->key || !m->key_len || !m->value) {
        plm_strmap_free(m);
        return -1;
    }
    return 0;
}

void plm_strmap_free(plm_strmap *m) {
    free(m->hash), free(m->key), free(m->key_len), free(m->value);
    memset(m, 0, sizeof *m);
}

static int strmap_grow(plm_strmap *m) {
    plm_strmap g;
    if (plm_strmap_init(&g, m->cap)) return -1;
    for (uint64_t i = 0; i < m->cap; i++)
        if (m->hash[i]) plm_strmap_put(&g, m->key[i], m->key_len[i], m->value[i], 0);
    plm_strmap_free(m);
    *m = g;
    return 0;
}

int plm_strmap_put(plm_strmap *m, const char *key, size_t len, int64_t value, int overwrite) {
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m)) return -1;
    const uint64_t h = fnv(key, len);
    for (uint64_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->hash[i]) {
            m->hash[i] = h, m->key[i] = key, m->key_len[i] = (uint32_t)len, m->value[i] = value;
            m->n++;
            return 0;
        }
        if (m->hash[i] == h && m->key_len[i] == len && memcmp(m->key[i], key, len) == 0) {
            if (overwrite) m->value[i] = value;
            return 0;
        }
    }
}

int64_t plm_strmap_get(const plm_strmap *m, const char *key, size_t len, int64_t missing) {
    if (!m->cap) return missing;
    const uint64_t h = fnv(key, len);
    for (uint64_t i = h & (m->cap - 1); m->hash[i]; i = (i + 1) & (m->cap - 1))
        if (m->hash[i] == h && m->key_len[i] == len && memcmp(m->key[i], key, len) == 0) return m->value[i];
    return missing;
}

int plm_u64map_init(plm_u64map *m, uint64_t expect) {
    memset(m, 0, sizeof *m);
    uint64_t cap = 16;
    while (cap < expect * 2 + 16) cap *= 2;
    m->key = (uint64_t *)calloc(cap, sizeof *m->key);
    m->value = (int64_t *)calloc(cap, sizeof *m->value);
    m->cap = cap;
    if (!m->key || !m->value) {
        plm_u64map_free(m);
        return -1;
    }
    return 0;
}

void plm_u64map_free(plm_u64map *m) {
    free(m->key), free(m->value);
    memset(m, 0, sizeof *m);
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33;
    return x;
}

int plm_u64map_put(plm_u64map *m, uint64_t key, int64_t value) {
    if ((m->n + 1) * 2 > m->cap) {
        plm_u64map g;
        if (plm_u64map_init(&g, m->cap)) return -1;
        for (uint64_t i = 0; i < m->cap; i++)
            if (m->key[i]) plm_u64map_put(&g, m->key[i] - 1, m->value[i]);
        plm_u64map_free(m);
        *m = g;
    }
    for (uint64_t i = mix(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->key[i]) {
            m->key[i] = key + 1, m->value[i] = value;
            m->n++;
            return 0;
        }
        if (m->key[i] == key + 1) return 0;
    }
}

int64_t plm_u64map_get(const plm_u64map *m, uint64_t key, int64_t missing) {
    if (!m->cap) return missing;
    for (uint64_t i = mix(key) & (m->cap - 1); m->key[i]; i = (i + 1) & (m->cap - 1))
        if (m->key[i] == key + 1) return m->value[i];
    return missing;
}

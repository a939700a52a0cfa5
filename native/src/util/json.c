/*
 * json.c — a small JSON reader: tokenizer.json and the pre-tokenizer spec
 * pocketlm stores in GGUF (see util.h).
 */
#include "util/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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


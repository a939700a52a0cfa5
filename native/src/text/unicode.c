/*
 * unicode.c — the Unicode general category, whitespace and lower-case
 * lookups of the regex engine, and the normalization forms of tokenizer.json's
 * normalizers (NFC, NFD, NFKC, NFKD), over the tables
 * tools/gen_unicode_tables.py writes (unicode_tables.h).
 */
#include "text/text.h"
#include "text/unicode_tables.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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


/* ---- Unicode normalization (UAX #15) ---------------------------------------
 * Decompose (canonically, or with compatibility mappings too), put each run of
 * combining marks in canonical order, then, for NFC and NFKC, compose every
 * mark with the last starter it is not blocked from. Hangul syllables are
 * decomposed and composed by arithmetic (UAX #15's Hangul section). */

enum { H_SBASE = 0xAC00, H_LBASE = 0x1100, H_VBASE = 0x1161, H_TBASE = 0x11A7, H_LCOUNT = 19, H_VCOUNT = 21,
       H_TCOUNT = 28, H_NCOUNT = H_VCOUNT * H_TCOUNT, H_SCOUNT = H_LCOUNT * H_NCOUNT };

int plm_uc_ccc(uint32_t c) {
    if (c < 0x300) return 0;
    size_t lo = 0, hi = sizeof plm_uc_ccc_ranges / sizeof plm_uc_ccc_ranges[0];
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (c < plm_uc_ccc_ranges[mid].lo) hi = mid;
        else if (c >= plm_uc_ccc_ranges[mid].lo + plm_uc_ccc_ranges[mid].n) lo = mid + 1;
        else return plm_uc_ccc_ranges[mid].ccc;
    }
    return 0;
}

static const plm_uc_decomp_entry *decomp_of(uint32_t c) {
    size_t lo = 0, hi = sizeof plm_uc_decomp / sizeof plm_uc_decomp[0];
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (c < plm_uc_decomp[mid].cp) hi = mid;
        else if (c > plm_uc_decomp[mid].cp) lo = mid + 1;
        else return &plm_uc_decomp[mid];
    }
    return NULL;
}

/* the primary composite of a + b, or 0 */
static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 && b > H_TBASE &&
        b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    size_t lo = 0, hi = sizeof plm_uc_comp / sizeof plm_uc_comp[0];
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        const uint32_t *e = plm_uc_comp[mid];
        if (a < e[0] || (a == e[0] && b < e[1])) hi = mid;
        else if (a > e[0] || b > e[1]) lo = mid + 1;
        else return e[2];
    }
    return 0;
}

typedef struct {
    uint32_t *p;
    size_t n, cap;
} cpbuf;

static int cp_put(cpbuf *b, uint32_t c) {
    if (b->n == b->cap) {
        const size_t cap = b->cap ? 2 * b->cap : 64;
        uint32_t *g = (uint32_t *)realloc(b->p, cap * sizeof *g);
        if (!g) return -1;
        b->p = g, b->cap = cap;
    }
    b->p[b->n++] = c;
    return 0;
}

/* c's full decomposition appended to b (mappings are at most 18 code points and nest a few levels deep) */
static int decompose(uint32_t c, int compat, cpbuf *b, int depth) {
    if (c >= H_SBASE && c < H_SBASE + H_SCOUNT) {
        const uint32_t s = c - H_SBASE, t = s % H_TCOUNT;
        if (cp_put(b, H_LBASE + s / H_NCOUNT) || cp_put(b, H_VBASE + (s % H_NCOUNT) / H_TCOUNT)) return -1;
        return t ? cp_put(b, H_TBASE + t) : 0;
    }
    const plm_uc_decomp_entry *d = c < 0xA0 ? NULL : decomp_of(c);
    if (!d || (d->compat && !compat) || depth > 8) return cp_put(b, c);
    for (int k = 0; k < d->len; k++)
        if (decompose(plm_uc_decomp_pool[d->off + k], compat, b, depth + 1)) return -1;
    return 0;
}

int plm_uc_normalize(int form, const uint8_t *s, size_t n, uint8_t **out, size_t *out_len) {
    *out = NULL, *out_len = 0;
    size_t i = 0;
    while (i < n && s[i] < 0xC2) i++; /* below U+00A0 nothing decomposes, combines or composes with what precedes */
    cpbuf b = {0};
    for (size_t k = 0, at = i ? i - 1 : 0; at < n; at += k) /* from the last such character on */
        if (decompose(plm_utf8_next(s + at, n - at, &k), form == PLM_NFKC || form == PLM_NFKD, &b, 0)) goto nomem;
    if (i == n) b.n = 0; /* nothing to change at all */
    /* canonical order: a stable sort of each run of marks by class */
    for (size_t k = 1; k < b.n; k++) {
        const uint32_t c = b.p[k];
        const int cc = plm_uc_ccc(c);
        if (!cc) continue;
        size_t j = k;
        while (j > 0 && plm_uc_ccc(b.p[j - 1]) > cc) b.p[j] = b.p[j - 1], j--;
        b.p[j] = c;
    }
    if (form == PLM_NFC || form == PLM_NFKC) {
        size_t o = 0;
        int64_t starter = -1;
        int last_cc = 0;
        for (size_t k = 0; k < b.n; k++) {
            const uint32_t c = b.p[k];
            const int cc = plm_uc_ccc(c);
            if (starter >= 0) {
                /* blocked: something between the starter and c is a starter or has a class >= c's */
                const int blocked = (size_t)starter + 1 != o && (last_cc == 0 || last_cc >= cc);
                const uint32_t comp = blocked ? 0 : compose_pair(b.p[starter], c);
                if (comp) {
                    b.p[starter] = comp;
                    continue;
                }
            }
            if (cc == 0) starter = (int64_t)o;
            last_cc = cc;
            b.p[o++] = c;
        }
        b.n = o;
    }
    const size_t head = i ? i - 1 : 0;
    uint8_t *o = (uint8_t *)malloc(head + 4 * b.n + 1);
    if (!o) goto nomem;
    memcpy(o, s, i == n ? n : head);
    size_t len = i == n ? n : head;
    for (size_t k = 0; k < b.n; k++) len += (size_t)plm_utf8_put(b.p[k], o + len);
    free(b.p);
    *out = o, *out_len = len;
    return 0;
nomem:
    free(b.p);
    return -1;
}

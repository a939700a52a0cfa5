/*
 * utf8.c — UTF-8 decoding, encoding and Python-compatible repair (see util.h).
 */
#include "util/util.h"

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

int64_t plm_utf8_invalid_at(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        const int k = seq_len(s + i, n - i);
        if (k <= 0) return (int64_t)i;
        i += (size_t)k;
    }
    return -1;
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


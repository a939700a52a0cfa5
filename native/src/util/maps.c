/*
 * maps.c — the string and u64 hash maps the tokenizers index vocabularies
 * and merges with (see util.h).
 */
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

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

/*
 * unicode.c — the Unicode general category, whitespace and lower-case
 * lookups of the regex engine, over the tables tools/gen_unicode_tables.py
 * writes (unicode_tables.h).
 */
#include "text/text.h"
#include "text/unicode_tables.h"

#include <stddef.h>

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


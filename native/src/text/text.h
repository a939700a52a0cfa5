/*
 * text.h — what the text layer's files share: the Unicode class lookups and
 * the pre-tokenizer regex engine the tokenizers run, over util.h's UTF-8 and
 * JSON. None of it is public API.
 */
#ifndef PLM_TEXT_H
#define PLM_TEXT_H

#include "util/util.h"

/* ---- Unicode classes ---------------------------------------------------- */

int plm_uc_category(uint32_t c); /* 0 (Cn) .. plm_uc_n_categories() - 1 */
int plm_uc_n_categories(void);
const char *plm_uc_category_name(int i); /* "Lu", "Nd", ... */
int plm_uc_is_space(uint32_t c); /* the regex module's \s */
uint32_t plm_uc_lower(uint32_t c);
int plm_uc_ccc(uint32_t c); /* canonical combining class */

/* Unicode normalization of UTF-8 s[0..n) into *out (malloc'd, *out_len
 * bytes), as Python's unicodedata.normalize; 0, or -1 out of memory. */
enum { PLM_NFC = 1, PLM_NFD, PLM_NFKC, PLM_NFKD };
int plm_uc_normalize(int form, const uint8_t *s, size_t n, uint8_t **out, size_t *out_len);

/* A compiled pre-tokenizer pattern, matched over code points with the regex
 * module's semantics for what tokenizers use: alternation (first alternative
 * that leads to a match wins), [...] classes, \p{..}/\P{..}, \s \d \w and
 * their negations, greedy/lazy/possessive quantifiers, (?:..) (?i:..) (..)
 * (?<name>..) (?>..), lookahead (?=..) (?!..), ^ and $. Anything else is
 * refused at compile time, naming the construct. */
typedef struct plm_regex plm_regex;
plm_regex *plm_regex_compile(const char *pattern, char *err, size_t err_cap);
void plm_regex_free(plm_regex *re);
/* The leftmost match in text[from..n): 1 with [*start, *end), 0 if none, -1
 * if the search ran past its work bound (a pattern that backtracks
 * catastrophically on this text). */
int plm_regex_search(const plm_regex *re, const uint32_t *text, int64_t n, int64_t from, int64_t *start,
                     int64_t *end);

#endif

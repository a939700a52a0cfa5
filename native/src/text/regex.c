/*
 * regex.c — the pre-tokenizer regex engine: a backtracking matcher over code
 * points with the `regex` module's semantics for the constructs tokenizer.json
 * patterns use (see text.h). A repeat of a single-character matcher (the
 * \p{L}+ and \s+ of every pattern) counts its run in a loop and backs off
 * without recursion, so long words and long runs of spaces need no stack.
 */
#include "text/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_SET, N_ALT, N_GROUP, N_REP, N_LOOK, N_ATOMIC, N_BOL, N_EOL };
enum { GREEDY, LAZY, POSSESSIVE };
enum { I_RANGE, I_CAT, I_NCAT, I_SPACE, I_NSPACE, I_WORD, I_NWORD, I_DOT };

typedef struct {
    int kind;
    uint32_t lo, hi; /* I_RANGE */
    uint32_t mask;   /* I_CAT / I_NCAT: bit per category */
} item;

typedef struct {
    item *items;
    int n, cap, neg, icase;
} charset;

typedef struct node node;
struct node {
    int t;
    node *next;      /* the next node of the sequence this one is in */
    int set;         /* N_SET */
    node **alts;     /* N_ALT */
    int n_alts;
    node *child;     /* N_GROUP / N_REP / N_LOOK / N_ATOMIC */
    int min, max;    /* N_REP; max < 0: unbounded */
    int mode;        /* N_REP */
    int negate;      /* N_LOOK */
    int single;      /* N_REP of one N_SET: counted in a loop */
};

struct plm_regex {
    node *root;
    node **nodes;
    int n_nodes, cap_nodes;
    charset *sets;
    int n_sets, cap_sets;
};

typedef struct {
    plm_regex *re;
    const uint32_t *p; /* the pattern as code points */
    int64_t n, i;
    char *err;
    size_t err_cap;
    int failed, depth;
} parser;

static int fail(parser *ps, const char *fmt, ...) {
    if (!ps->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err, ps->err_cap, fmt, ap);
        va_end(ap);
    }
    ps->failed = 1;
    return -1;
}

static node *new_node(parser *ps, int t) {
    plm_regex *re = ps->re;
    if (re->n_nodes == re->cap_nodes) {
        const int cap = re->cap_nodes ? re->cap_nodes * 2 : 32;
        node **g = (node **)realloc(re->nodes, (size_t)cap * sizeof *g);
        if (!g) return fail(ps, "out of memory"), NULL;
        re->nodes = g, re->cap_nodes = cap;
    }
    node *n = (node *)calloc(1, sizeof *n);
    if (!n) return fail(ps, "out of memory"), NULL;
    n->t = t;
    re->nodes[re->n_nodes++] = n;
    return n;
}

static int new_set(parser *ps, int icase) {
    plm_regex *re = ps->re;
    if (re->n_sets == re->cap_sets) {
        const int cap = re->cap_sets ? re->cap_sets * 2 : 16;
        charset *g = (charset *)realloc(re->sets, (size_t)cap * sizeof *g);
        if (!g) return fail(ps, "out of memory");
        re->sets = g, re->cap_sets = cap;
    }
    memset(&re->sets[re->n_sets], 0, sizeof(charset));
    re->sets[re->n_sets].icase = icase;
    return re->n_sets++;
}

static int add_item(parser *ps, int set, item it) {
    charset *s = &ps->re->sets[set];
    if (s->n == s->cap) {
        const int cap = s->cap ? s->cap * 2 : 4;
        item *g = (item *)realloc(s->items, (size_t)cap * sizeof *g);
        if (!g) return fail(ps, "out of memory");
        s->items = g, s->cap = cap;
    }
    s->items[s->n++] = it;
    return 0;
}

static int add_range(parser *ps, int set, uint32_t lo, uint32_t hi) {
    if (add_item(ps, set, (item){I_RANGE, lo, hi, 0})) return -1;
    if (ps->re->sets[set].icase && hi - lo < 0x800) /* (?i): the lowercase forms match too */
        for (uint32_t c = lo; c <= hi; c++) {
            const uint32_t l = plm_uc_lower(c);
            if (l != c && (l < lo || l > hi) && add_item(ps, set, (item){I_RANGE, l, l, 0})) return -1;
        }
    return 0;
}

/* \p{Name}: a category (Lu), a major class (L), or their long names. */
static int category_mask(parser *ps, const char *name, uint32_t *mask) {
    static const struct { const char *longname, *shortname; } alias[] = {
        {"Letter", "L"}, {"Number", "N"}, {"Punctuation", "P"}, {"Symbol", "S"}, {"Separator", "Z"},
        {"Mark", "M"}, {"Other", "C"}, {"Uppercase_Letter", "Lu"}, {"Lowercase_Letter", "Ll"},
        {"Decimal_Number", "Nd"}, {"Nd", "Nd"}};
    for (size_t k = 0; k < sizeof alias / sizeof alias[0]; k++)
        if (strcmp(name, alias[k].longname) == 0) name = alias[k].shortname;
    *mask = 0;
    const size_t l = strlen(name);
    for (int c = 0; c < plm_uc_n_categories(); c++) {
        if ((l == 1 && plm_uc_category_name(c)[0] == name[0]) || (l == 2 && strcmp(plm_uc_category_name(c), name) == 0))
            *mask |= 1u << c;
    }
    if (l == 2 && name[1] == '&' && name[0] == 'L') *mask = (1u << 1) | (1u << 2) | (1u << 3); /* L& */
    if (!*mask) return fail(ps, "unsupported Unicode property \\p{%s}", name);
    return 0;
}

static uint32_t mask_of(const char *cats) { /* "Nd Pc": their bits */
    uint32_t m = 0;
    for (int c = 0; c < plm_uc_n_categories(); c++) {
        const char *nm = plm_uc_category_name(c);
        for (const char *p = cats; p[0] && p[1]; p += p[2] ? 3 : 2) /* two letters, then a space or the end */
            if ((p[1] == '*' && p[0] == nm[0]) || (p[0] == nm[0] && p[1] == nm[1])) m |= 1u << c;
    }
    return m;
}

static int hexval(uint32_t c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* An escape after '\\' into set (a class escape adds an item; a literal, its
 * code point). in_class: inside [...], where \b would be a backspace. */
static int escape(parser *ps, int set, uint32_t *literal, int *is_literal) {
    *is_literal = 0;
    if (ps->i >= ps->n) return fail(ps, "pattern ends with a backslash");
    const uint32_t c = ps->p[ps->i++];
    switch (c) {
    case 's': return add_item(ps, set, (item){I_SPACE, 0, 0, 0});
    case 'S': return add_item(ps, set, (item){I_NSPACE, 0, 0, 0});
    case 'd': return add_item(ps, set, (item){I_CAT, 0, 0, mask_of("Nd")});
    case 'D': return add_item(ps, set, (item){I_NCAT, 0, 0, mask_of("Nd")});
    case 'w': return add_item(ps, set, (item){I_WORD, 0, 0, 0});
    case 'W': return add_item(ps, set, (item){I_NWORD, 0, 0, 0});
    case 'p':
    case 'P': {
        char name[40];
        size_t l = 0;
        if (ps->i < ps->n && ps->p[ps->i] == '{') {
            ps->i++;
            while (ps->i < ps->n && ps->p[ps->i] != '}' && l < sizeof name - 1) name[l++] = (char)ps->p[ps->i++];
            if (ps->i >= ps->n || ps->p[ps->i] != '}') return fail(ps, "unterminated \\p{...}");
            ps->i++;
        } else if (ps->i < ps->n) {
            name[l++] = (char)ps->p[ps->i++];
        }
        name[l] = '\0';
        int neg = c == 'P';
        if (name[0] == '^') memmove(name, name + 1, l), neg = !neg;
        uint32_t mask;
        if (category_mask(ps, name, &mask)) return -1;
        const uint32_t cased = mask_of("Lu Ll Lt");
        if (ps->re->sets[set].icase && (mask & cased)) mask |= cased; /* (?i)\p{Lu}: any cased letter, as regex */
        return add_item(ps, set, (item){neg ? I_NCAT : I_CAT, 0, 0, mask});
    }
    case 'n': *literal = '\n'; break;
    case 'r': *literal = '\r'; break;
    case 't': *literal = '\t'; break;
    case 'f': *literal = '\f'; break;
    case 'v': *literal = '\v'; break;
    case 'a': *literal = 7; break;
    case 'e': *literal = 27; break;
    case '0': *literal = 0; break;
    case 'x':
    case 'u':
    case 'U': {
        uint32_t v = 0;
        if (c == 'x' && ps->i < ps->n && ps->p[ps->i] == '{') {
            ps->i++;
            while (ps->i < ps->n && ps->p[ps->i] != '}') {
                const int h = hexval(ps->p[ps->i++]);
                if (h < 0 || v > 0x10FFFF) return fail(ps, "bad \\x{...} escape");
                v = v * 16 + (uint32_t)h;
            }
            if (ps->i >= ps->n) return fail(ps, "unterminated \\x{...}");
            ps->i++;
        } else {
            const int digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            for (int k = 0; k < digits; k++) {
                const int h = ps->i < ps->n ? hexval(ps->p[ps->i]) : -1;
                if (h < 0) return fail(ps, "bad \\%c escape", (char)c);
                v = v * 16 + (uint32_t)h, ps->i++;
            }
        }
        *literal = v;
        break;
    }
    default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '1' && c <= '9'))
            return fail(ps, "unsupported escape \\%c", (char)c);
        *literal = c; /* an escaped punctuation character stands for itself */
    }
    *is_literal = 1;
    return 0;
}

static int parse_class(parser *ps, int set) {
    /* after '[' */
    if (ps->i < ps->n && ps->p[ps->i] == '^') ps->re->sets[set].neg = 1, ps->i++;
    int first = 1;
    for (;;) {
        if (ps->i >= ps->n) return fail(ps, "unterminated [...] class");
        uint32_t c = ps->p[ps->i];
        if (c == ']' && !first) {
            ps->i++;
            return 0;
        }
        first = 0;
        if (c == '[') {
            if (ps->i + 1 < ps->n && ps->p[ps->i + 1] == ':') return fail(ps, "unsupported POSIX class [:...:]");
            return fail(ps, "unsupported nested class or set operation");
        }
        ps->i++;
        uint32_t lo = c;
        if (c == '\\') {
            int lit;
            if (escape(ps, set, &lo, &lit)) return -1;
            if (!lit) continue;
        }
        uint32_t hi = lo;
        if (ps->i + 1 < ps->n && ps->p[ps->i] == '-' && ps->p[ps->i + 1] != ']') {
            ps->i++;
            hi = ps->p[ps->i++];
            if (hi == '\\') {
                int lit;
                const int save = ps->re->sets[set].n;
                if (escape(ps, set, &hi, &lit)) return -1;
                if (!lit) {
                    ps->re->sets[set].n = save;
                    return fail(ps, "a class escape cannot end a range");
                }
            }
            if (hi < lo) return fail(ps, "bad range in a class");
        }
        if (add_range(ps, set, lo, hi)) return -1;
    }
}

static node *parse_alt(parser *ps, int icase);

static int parse_int(parser *ps, int *v) {
    int64_t x = 0, digits = 0;
    while (ps->i < ps->n && ps->p[ps->i] >= '0' && ps->p[ps->i] <= '9' && x < 100000)
        x = x * 10 + (ps->p[ps->i++] - '0'), digits++;
    *v = (int)x;
    return digits > 0;
}

/* A sequence of atoms with their quantifiers, up to '|', ')' or the end. */
static node *parse_seq(parser *ps, int *icase) {
    node *head = NULL, **tail = &head, *last = NULL;
    while (ps->i < ps->n && !ps->failed) {
        const uint32_t c = ps->p[ps->i];
        if (c == '|' || c == ')') break;
        node *atom = NULL;
        ps->i++;
        if (c == '(') {
            if (++ps->depth > 100) return fail(ps, "groups nested too deeply"), NULL;
            int t = N_GROUP, negate = 0, inner_icase = *icase;
            if (ps->i < ps->n && ps->p[ps->i] == '?') {
                ps->i++;
                const uint32_t k = ps->i < ps->n ? ps->p[ps->i] : 0;
                if (k == ':') ps->i++;
                else if (k == '=' || k == '!') t = N_LOOK, negate = k == '!', ps->i++;
                else if (k == '>') t = N_ATOMIC, ps->i++;
                else if (k == '<' && ps->i + 1 < ps->n && (ps->p[ps->i + 1] == '=' || ps->p[ps->i + 1] == '!'))
                    return fail(ps, "unsupported lookbehind (?<%c...)", (char)ps->p[ps->i + 1]), NULL;
                else if (k == 'P' || k == '<') { /* a named group: (?P<name>...) or (?<name>...) */
                    while (ps->i < ps->n && ps->p[ps->i] != '>') ps->i++;
                    if (ps->i >= ps->n) return fail(ps, "unterminated group name"), NULL;
                    ps->i++;
                } else { /* flags: (?i) for the rest, (?i:...) for the group */
                    int on = 1, flag_icase = *icase;
                    while (ps->i < ps->n && ps->p[ps->i] != ':' && ps->p[ps->i] != ')') {
                        const uint32_t f = ps->p[ps->i++];
                        if (f == '-') on = 0;
                        else if (f == 'i') flag_icase = on;
                        else if (f == 'u') continue; /* Unicode matching is the only kind here */
                        else return fail(ps, "unsupported inline flag (?%c)", (char)f), NULL;
                    }
                    if (ps->i >= ps->n) return fail(ps, "unterminated (?...) group"), NULL;
                    if (ps->p[ps->i] == ')') { /* (?i): applies to what follows in this group */
                        ps->i++;
                        *icase = flag_icase;
                        ps->depth--;
                        continue;
                    }
                    ps->i++;
                    inner_icase = flag_icase;
                }
            }
            node *inner = parse_alt(ps, inner_icase);
            if (ps->failed) return NULL;
            if (ps->i >= ps->n || ps->p[ps->i] != ')') return fail(ps, "missing ')'"), NULL;
            ps->i++;
            ps->depth--;
            if (!(atom = new_node(ps, t))) return NULL;
            atom->child = inner, atom->negate = negate;
        } else if (c == '[') {
            const int s = new_set(ps, *icase);
            if (s < 0 || parse_class(ps, s)) return NULL;
            if (!(atom = new_node(ps, N_SET))) return NULL;
            atom->set = s;
        } else if (c == '^' || c == '$') {
            if (!(atom = new_node(ps, c == '^' ? N_BOL : N_EOL))) return NULL;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (c == '{' && !(ps->i < ps->n && ps->p[ps->i] >= '0' && ps->p[ps->i] <= '9')) goto literal;
            return fail(ps, "quantifier '%c' with nothing to repeat", (char)c), NULL;
        } else {
        literal:;
            const int s = new_set(ps, *icase);
            if (s < 0) return NULL;
            if (c == '.') {
                if (add_item(ps, s, (item){I_DOT, 0, 0, 0})) return NULL;
            } else if (c == '\\') {
                uint32_t lit;
                int is_lit;
                if (ps->i < ps->n && (ps->p[ps->i] == 'A' || ps->p[ps->i] == 'z' || ps->p[ps->i] == 'Z')) {
                    const uint32_t a = ps->p[ps->i++];
                    ps->re->n_sets--;
                    if (!(atom = new_node(ps, a == 'A' ? N_BOL : N_EOL))) return NULL;
                    goto quantifier;
                }
                if (escape(ps, s, &lit, &is_lit)) return NULL;
                if (is_lit && add_range(ps, s, lit, lit)) return NULL;
            } else if (add_range(ps, s, c, c)) {
                return NULL;
            }
            if (!(atom = new_node(ps, N_SET))) return NULL;
            atom->set = s;
        }
    quantifier:
        if (ps->i < ps->n) {
            const uint32_t q = ps->p[ps->i];
            int min = -1, max = -1;
            if (q == '*') min = 0, max = -1, ps->i++;
            else if (q == '+') min = 1, max = -1, ps->i++;
            else if (q == '?') min = 0, max = 1, ps->i++;
            else if (q == '{' && ps->i + 1 < ps->n && ps->p[ps->i + 1] >= '0' && ps->p[ps->i + 1] <= '9') {
                const int64_t save = ps->i;
                ps->i++;
                int a, b;
                parse_int(ps, &a);
                b = a;
                if (ps->i < ps->n && ps->p[ps->i] == ',') {
                    ps->i++;
                    if (!parse_int(ps, &b)) b = -1;
                }
                if (ps->i < ps->n && ps->p[ps->i] == '}' && (b < 0 || b >= a)) {
                    ps->i++;
                    min = a, max = b;
                } else {
                    ps->i = save; /* not a quantifier: '{' is a literal next time round */
                }
            }
            if (min >= 0) {
                node *rep = new_node(ps, N_REP);
                if (!rep) return NULL;
                rep->child = atom, rep->min = min, rep->max = max, rep->mode = GREEDY;
                rep->single = atom->t == N_SET;
                if (ps->i < ps->n && ps->p[ps->i] == '?') rep->mode = LAZY, ps->i++;
                else if (ps->i < ps->n && ps->p[ps->i] == '+') rep->mode = POSSESSIVE, ps->i++;
                if (ps->i < ps->n && (ps->p[ps->i] == '*' || ps->p[ps->i] == '+' || ps->p[ps->i] == '?'))
                    return fail(ps, "multiple repeat"), NULL;
                atom = rep;
            }
        }
        *tail = atom, tail = &atom->next, last = atom;
    }
    (void)last;
    if (!head && !ps->failed) head = new_node(ps, N_GROUP); /* an empty alternative matches the empty string */
    return head;
}

static node *parse_alt(parser *ps, int icase) {
    node *first = parse_seq(ps, &icase);
    if (ps->failed) return NULL;
    if (ps->i >= ps->n || ps->p[ps->i] != '|') return first;
    node *alt = new_node(ps, N_ALT);
    if (!alt) return NULL;
    int cap = 4;
    alt->alts = (node **)malloc((size_t)cap * sizeof(node *));
    if (!alt->alts) return fail(ps, "out of memory"), NULL;
    alt->alts[alt->n_alts++] = first;
    while (ps->i < ps->n && ps->p[ps->i] == '|') {
        ps->i++;
        node *next = parse_seq(ps, &icase);
        if (ps->failed) return NULL;
        if (alt->n_alts == cap) {
            node **g = (node **)realloc(alt->alts, (size_t)(cap *= 2) * sizeof(node *));
            if (!g) return fail(ps, "out of memory"), NULL;
            alt->alts = g;
        }
        alt->alts[alt->n_alts++] = next;
    }
    return alt;
}

void plm_regex_free(plm_regex *re) {
    if (!re) return;
    for (int i = 0; i < re->n_nodes; i++) {
        free(re->nodes[i]->alts);
        free(re->nodes[i]);
    }
    for (int i = 0; i < re->n_sets; i++) free(re->sets[i].items);
    free(re->nodes);
    free(re->sets);
    free(re);
}

plm_regex *plm_regex_compile(const char *pattern, char *err, size_t err_cap) {
    const size_t len = strlen(pattern);
    uint32_t *cps = (uint32_t *)malloc((len + 1) * sizeof(uint32_t));
    plm_regex *re = (plm_regex *)calloc(1, sizeof *re);
    if (!cps || !re) {
        free(cps), free(re);
        if (err_cap) snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    int64_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t k;
        cps[n++] = plm_utf8_next((const uint8_t *)pattern + i, len - i, &k);
        i += k;
    }
    parser ps = {re, cps, n, 0, err, err_cap, 0, 0};
    re->root = parse_alt(&ps, 0);
    if (!ps.failed && ps.i < n) fail(&ps, "unbalanced ')'");
    free(cps);
    if (ps.failed) {
        plm_regex_free(re);
        return NULL;
    }
    return re;
}

/* ---- matching ------------------------------------------------------------- */

typedef struct {
    const plm_regex *re;
    const uint32_t *s;
    int64_t n;
    int64_t steps; /* a bound on the work one search may do */
} mctx;

typedef struct cont cont;
struct cont {
    const node *n;     /* continue with this node... */
    const cont *up;    /* ...then with this */
    const node *rep;   /* or: one more iteration of this repeat finished */
    int count;
    int64_t start;
};

static int in_item(const item *it, uint32_t c) {
    switch (it->kind) {
    case I_RANGE: return c >= it->lo && c <= it->hi;
    case I_CAT: return (it->mask >> plm_uc_category(c)) & 1;
    case I_NCAT: return !((it->mask >> plm_uc_category(c)) & 1);
    case I_SPACE: return plm_uc_is_space(c);
    case I_NSPACE: return !plm_uc_is_space(c);
    case I_WORD:
    case I_NWORD: {
        static uint32_t word = 0;
        if (!word) word = mask_of("L* M* Nd Nl Pc");
        const int w = c == 0x200C || c == 0x200D || ((word >> plm_uc_category(c)) & 1);
        return it->kind == I_WORD ? w : !w;
    }
    default: return c != '\n'; /* I_DOT */
    }
}

static int in_set(const charset *s, uint32_t c) {
    int in = 0;
    for (int i = 0; i < s->n && !in; i++) in = in_item(&s->items[i], c);
    if (!in && s->icase) {
        const uint32_t l = plm_uc_lower(c);
        for (int i = 0; i < s->n && !in && l != c; i++) in = in_item(&s->items[i], l);
    }
    return in != s->neg;
}

#define STEP_LIMIT 50000000

static int64_t match(mctx *c, const node *n, int64_t pos, const cont *k);

static int64_t rep_step(mctx *c, const node *n, int count, int64_t last_start, int64_t pos, const cont *k) {
    const int more = (n->max < 0 || count < n->max) && !(count > n->min && pos == last_start);
    const cont kk = {NULL, k, n, count + 1, pos};
    int64_t r;
    switch (n->mode) {
    case LAZY:
        if (count >= n->min && (r = match(c, n->next, pos, k)) >= 0) return r;
        return more ? match(c, n->child, pos, &kk) : -1;
    case POSSESSIVE:
        while ((n->max < 0 || count < n->max) && (r = match(c, n->child, pos, NULL)) >= 0 && r != pos) pos = r, count++;
        return count >= n->min ? match(c, n->next, pos, k) : -1;
    default:
        if (more && (r = match(c, n->child, pos, &kk)) >= 0) return r;
        return count >= n->min ? match(c, n->next, pos, k) : -1;
    }
}

static int64_t match(mctx *c, const node *n, int64_t pos, const cont *k) {
    for (;;) {
        if (++c->steps > STEP_LIMIT) return -1;
        if (!n) {
            if (!k) return pos;
            if (k->rep) return rep_step(c, k->rep, k->count, k->start, pos, k->up);
            n = k->n, k = k->up;
            continue;
        }
        switch (n->t) {
        case N_SET:
            if (pos < c->n && in_set(&c->re->sets[n->set], c->s[pos])) {
                pos++, n = n->next;
                continue;
            }
            return -1;
        case N_BOL:
            if (pos != 0) return -1;
            n = n->next;
            continue;
        case N_EOL:
            if (pos != c->n && !(pos == c->n - 1 && c->s[pos] == '\n')) return -1;
            n = n->next;
            continue;
        case N_GROUP: {
            if (!n->child) { /* empty */
                n = n->next;
                continue;
            }
            const cont kk = {n->next, k, NULL, 0, 0};
            return match(c, n->child, pos, &kk);
        }
        case N_ALT: {
            const cont kk = {n->next, k, NULL, 0, 0};
            for (int a = 0; a < n->n_alts; a++) {
                const int64_t r = match(c, n->alts[a], pos, &kk);
                if (r >= 0) return r;
            }
            return -1;
        }
        case N_LOOK: {
            const int64_t r = match(c, n->child, pos, NULL);
            if ((r >= 0) == n->negate) return -1;
            n = n->next;
            continue;
        }
        case N_ATOMIC: {
            const int64_t r = match(c, n->child, pos, NULL);
            if (r < 0) return -1;
            pos = r, n = n->next;
            continue;
        }
        default: { /* N_REP */
            if (!n->single) return rep_step(c, n, 0, -1, pos, k);
            const charset *s = &c->re->sets[n->child->set];
            int64_t run = 0;
            while ((n->max < 0 || run < n->max) && pos + run < c->n && in_set(s, c->s[pos + run])) run++;
            c->steps += run;
            if (run < n->min) return -1;
            if (n->mode == POSSESSIVE) {
                pos += run, n = n->next;
                continue;
            }
            if (n->mode == LAZY) {
                for (int64_t i = n->min; i <= run; i++) {
                    const int64_t r = match(c, n->next, pos + i, k);
                    if (r >= 0) return r;
                }
                return -1;
            }
            if (!n->next && !k) return pos + run;
            for (int64_t i = run; i >= n->min; i--) {
                const int64_t r = match(c, n->next, pos + i, k);
                if (r >= 0) return r;
            }
            return -1;
        }
        }
    }
}

int plm_regex_search(const plm_regex *re, const uint32_t *text, int64_t n, int64_t from, int64_t *start,
                     int64_t *end) {
    mctx c = {re, text, n, 0};
    for (int64_t s = from; s <= n; s++) {
        const int64_t e = match(&c, re->root, s, NULL);
        if (e >= 0) {
            *start = s, *end = e;
            return 1;
        }
        if (c.steps > STEP_LIMIT) return -1;
    }
    return 0;
}

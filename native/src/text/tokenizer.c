/*
 * tokenizer.c — the tokenizers of python/pocketlm/tokenizer.py in C, id for id:
 *
 *  - byte-level BPE (GGUF "gpt2" vocabularies, tokenizer.json): added tokens
 *    split out longest-first, the pre-tokenizer's regex splits (the JSON spec
 *    pocketlm stores, or llama.cpp's tokenizer.ggml.pre name), GPT-2's byte to
 *    character map, then merges by rank;
 *  - SentencePiece models (pocketlm.tokenizer.sp_model in GGUF, or a .task's
 *    TOKENIZER_MODEL): the ModelProto read from its wire format, the
 *    normalizer's whitespace rules, BPE merges by score or unigram Viterbi,
 *    byte fallback, user-defined pieces, unknown runs merged;
 *  - llama.cpp's "llama" vocabulary (pieces and scores): merges by score.
 *
 * Decoding gives what Tokenizer.decode gives; plm_tokenizer_token_bytes gives
 * one token's bytes for a streaming decoder.
 */
#include "text/text.h"
#include "pocketlm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TK_BPE, TK_SP, TK_SCORED, TK_HF };
/* SentencePiece / GGUF token types */
enum { T_NORMAL = 1, T_UNKNOWN = 2, T_CONTROL = 3, T_USER = 4, T_UNUSED = 5, T_BYTE = 6 };

#define MAX_EOS 16

struct plm_tokenizer {
    int kind;
    int64_t n;            /* entries in piece[] */
    char **piece;         /* token text: BPE's byte-level characters, SentencePiece's pieces with U+2581 */
    uint32_t *piece_len;
    float *score;
    int32_t *type;
    plm_strmap index;     /* piece -> id (BPE: the model vocabulary only) */
    int64_t vocab_size;
    int32_t bos;
    int add_bos;
    int32_t eos[MAX_EOS];
    int n_eos;
    char *chat_template;
    /* BPE */
    plm_strmap merges;    /* "a b" -> rank */
    char **merge_keys;
    int64_t n_merges;
    plm_strmap added;     /* added token content -> id */
    uint8_t *is_added;    /* per id: an added token (1), a special one (2) */
    uint32_t max_added_len;
    int add_prefix_space;
    int ignore_merges;    /* a word that is itself a token is that token, unmerged (Llama-3's tokenizer.json) */
    plm_regex **splits;
    int n_splits;
    char byte_char[256][3]; /* GPT-2's character for each byte, UTF-8 */
    uint8_t byte_char_len[256];
    /* SentencePiece */
    int sp_type;          /* 1 unigram, 2 BPE */
    int byte_fallback, add_dummy_prefix, remove_extra_ws, escape_ws;
    int32_t unk_id;
    char *unk_surface;
    float min_score, max_score;
    uint32_t max_piece_len;
    int32_t byte_piece[256]; /* <0xXX> pieces; -1 if absent */
    int32_t *user_ids;    /* user-defined pieces, longest first */
    int n_user;
    /* tokenizer.json, SentencePiece style (TK_HF): its pipeline */
    struct hf_spec *hf;
    struct hf_spec *norm; /* TK_BPE: the tokenizer.json normalizer (Qwen2's NFC), its steps only; NULL: none */
};

static const char WS[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's space */

/* ---- construction helpers ------------------------------------------------- */

static int oom(char **error, const char *what) {
    return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory reading the tokenizer", what);
}

static plm_tokenizer *new_tok(int kind) {
    plm_tokenizer *t = (plm_tokenizer *)calloc(1, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    t->bos = -1;
    t->unk_id = -1;
    for (int b = 0; b < 256; b++) t->byte_piece[b] = -1;
    return t;
}

static void hf_free(struct hf_spec *h);
static int bl_normalizer(plm_tokenizer *t, const plm_json *norm, const char *what, char **error);

void plm_tokenizer_free(plm_tokenizer *t) {
    if (!t) return;
    hf_free(t->hf);
    hf_free(t->norm);
    for (int64_t i = 0; i < t->n; i++) free(t->piece[i]);
    for (int64_t i = 0; i < t->n_merges; i++) free(t->merge_keys[i]);
    for (int i = 0; i < t->n_splits; i++) plm_regex_free(t->splits[i]);
    free(t->piece), free(t->piece_len), free(t->score), free(t->type), free(t->merge_keys), free(t->is_added);
    free(t->splits), free(t->chat_template), free(t->unk_surface), free(t->user_ids);
    plm_strmap_free(&t->index), plm_strmap_free(&t->merges), plm_strmap_free(&t->added);
    free(t);
}

static int alloc_pieces(plm_tokenizer *t, int64_t n) {
    t->n = 0;
    t->piece = (char **)calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
    t->piece_len = (uint32_t *)calloc((size_t)(n > 0 ? n : 1), sizeof(uint32_t));
    t->score = (float *)calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    t->type = (int32_t *)calloc((size_t)(n > 0 ? n : 1), sizeof(int32_t));
    t->is_added = (uint8_t *)calloc((size_t)(n > 0 ? n : 1), 1);
    if (!t->piece || !t->piece_len || !t->score || !t->type || !t->is_added) return -1;
    t->n = n;
    return plm_strmap_init(&t->index, (uint64_t)n) || plm_strmap_init(&t->added, 16) ? -1 : 0;
}

static int set_piece(plm_tokenizer *t, int64_t i, const char *s, size_t len) {
    free(t->piece[i]);
    t->piece[i] = (char *)malloc(len + 1);
    if (!t->piece[i]) return -1;
    memcpy(t->piece[i], s, len);
    t->piece[i][len] = '\0';
    t->piece_len[i] = (uint32_t)len;
    return 0;
}

static void init_byte_chars(plm_tokenizer *t) {
    /* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
     * others to U+0100 onwards in byte order */
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        const int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        const uint32_t c = keep ? (uint32_t)b : 256u + (uint32_t)extra++;
        t->byte_char_len[b] = (uint8_t)plm_utf8_put(c, (uint8_t *)t->byte_char[b]);
    }
}

/* the byte a GPT-2 character stands for, or -1 */
static int char_byte(uint32_t c) {
    if ((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)) return (int)c;
    if (c < 256 || c >= 256 + 68) return -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        const int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (!keep && 256u + (uint32_t)extra++ == c) return b;
    }
    return -1;
}

/* ---- pre-tokenizers ------------------------------------------------------- */

/* GPT-2's pattern, as the ByteLevel pre-tokenizer's use_regex applies it */
static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/* the same without its last alternative, as llama.cpp's default and falcon splits list it */
static const char GPT2_SPLIT[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_PATTERN[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* llama.cpp's tokenizer.ggml.pre names, as python/pocketlm/model/gguf_file.py's LLAMA_CPP_PRE:
 * the split patterns in order (NULL-terminated); byte_level: GPT-2's pattern as the only split */
typedef struct {
    const char *names;
    const char *patterns[5];
} pre_entry;
static const pre_entry PRE[] = {
    {" default ", {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_SPLIT, "\\p{N}+", "[0-9][0-9][0-9]", NULL}},
    {" gpt-2 phi-2 mpt olmo ", {GPT2_PATTERN, NULL}},
    {" smollm starcoder refact command-r codeshell ", {"\\p{N}", GPT2_PATTERN, NULL}},
    {" llama-bpe llama3 llama-v3 falcon3 ", {LLAMA3_PATTERN, NULL}},
    {" stablelm2 qwen2 ", {QWEN2_PATTERN, NULL}},
    {" falcon ", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_SPLIT, "[0-9][0-9][0-9]", NULL}},
};

static int add_split(plm_tokenizer *t, const char *pattern, const char *what, char **error) {
    char msg[200];
    plm_regex *re = plm_regex_compile(pattern, msg, sizeof msg);
    if (!re)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: the pre-tokenizer pattern %.200s cannot be run by the C "
                          "tokenizer: %s", what, pattern, msg);
    plm_regex **g = (plm_regex **)realloc(t->splits, (size_t)(t->n_splits + 1) * sizeof *g);
    if (!g) {
        plm_regex_free(re);
        return oom(error, what);
    }
    t->splits = g;
    t->splits[t->n_splits++] = re;
    return PLM_OK;
}

static int pre_by_name(plm_tokenizer *t, const char *name, size_t len, const char *what, char **error) {
    char key[80];
    if (len > sizeof key - 3) len = sizeof key - 3;
    snprintf(key, sizeof key, " %.*s ", (int)len, name);
    for (size_t e = 0; e < sizeof PRE / sizeof PRE[0]; e++) {
        if (!strstr(PRE[e].names, key)) continue;
        for (int k = 0; PRE[e].patterns[k]; k++)
            if (add_split(t, PRE[e].patterns[k], what, error)) return PLM_ERR_FORMAT;
        return PLM_OK;
    }
    return plm_errorf(error, PLM_ERR_FORMAT, "%s: GGUF pre-tokenizer '%.*s' is not supported yet", what, (int)len,
                      name);
}

/* regex.escape of a literal Split pattern */
static char *escape_literal(const char *s) {
    const size_t n = strlen(s);
    char *o = (char *)malloc(2 * n + 1), *p = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'))
            *p++ = '\\';
        *p++ = (char)c;
    }
    *p = '\0';
    return o;
}

/* A tokenizer.json pre_tokenizer, as BPETokenizer._pre_tokenizer reads it. */
static int pre_from_json(plm_tokenizer *t, const plm_json *pre, const char *what, char **error) {
    if (!pre || pre->type == PLM_JNULL) return PLM_OK;
    const char *type = plm_json_str(plm_json_get(pre, "type"));
    const plm_json *steps = pre, *one = pre;
    int n_steps = 1;
    if (type && strcmp(type, "Sequence") == 0) {
        steps = plm_json_get(pre, "pretokenizers");
        if (!steps || steps->type != PLM_JARR)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: a Sequence pre-tokenizer without pretokenizers", what);
        one = steps->child;
        n_steps = (int)steps->n;
    }
    for (int s = 0; s < n_steps && one; s++, one = one->next) {
        const char *st = plm_json_str(plm_json_get(one, "type"));
        if (!st) return plm_errorf(error, PLM_ERR_FORMAT, "%s: a pre-tokenizer step without a type", what);
        if (strcmp(st, "ByteLevel") == 0) {
            const plm_json *aps = plm_json_get(one, "add_prefix_space"), *ur = plm_json_get(one, "use_regex");
            if (aps && aps->type == PLM_JBOOL && aps->num) t->add_prefix_space = 1;
            if (!(ur && ur->type == PLM_JBOOL && !ur->num) && add_split(t, GPT2_PATTERN, what, error))
                return PLM_ERR_FORMAT;
        } else if (strcmp(st, "Split") == 0) {
            const plm_json *pat = plm_json_get(one, "pattern");
            const char *behavior = plm_json_str(plm_json_get(one, "behavior"));
            const plm_json *inv = plm_json_get(one, "invert");
            if ((behavior && strcmp(behavior, "Isolated") != 0) || (inv && inv->type == PLM_JBOOL && inv->num))
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: unsupported Split pre-tokenizer behaviour '%s'", what,
                                  behavior ? behavior : "?");
            const char *re = plm_json_str(plm_json_get(pat, "Regex"));
            int st2;
            if (re) {
                st2 = add_split(t, re, what, error);
            } else {
                const char *lit = plm_json_str(plm_json_get(pat, "String"));
                char *esc = escape_literal(lit ? lit : "");
                if (!esc) return oom(error, what);
                st2 = add_split(t, esc, what, error);
                free(esc);
            }
            if (st2) return st2;
        } else if (strcmp(st, "Digits") == 0) {
            const plm_json *ind = plm_json_get(one, "individual_digits");
            if (!(ind && ind->type == PLM_JBOOL && ind->num))
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: unsupported pre-tokenizer 'Digits'", what);
            if (add_split(t, "\\p{N}", what, error)) return PLM_ERR_FORMAT;
        } else {
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: unsupported pre-tokenizer '%s'", what, st);
        }
    }
    return PLM_OK;
}

static int add_merge(plm_tokenizer *t, const char *s, size_t len, int64_t rank) {
    if (!memchr(s, ' ', len)) return 0; /* not a pair: never matches, as in Python */
    char *k = (char *)malloc(len + 1);
    if (!k) return -1;
    memcpy(k, s, len);
    k[len] = '\0';
    t->merge_keys[t->n_merges++] = k;
    return plm_strmap_put(&t->merges, k, len, rank, 0);
}

static int finish_bpe(plm_tokenizer *t, const char *what, char **error) {
    init_byte_chars(t);
    t->vocab_size = 0;
    for (int64_t i = 0; i < t->n; i++)
        if (t->piece[i]) t->vocab_size = i + 1;
    for (int64_t i = 0; i < t->n; i++)
        if (t->is_added[i] && t->piece_len[i] > t->max_added_len) t->max_added_len = t->piece_len[i];
    (void)what, (void)error;
    return PLM_OK;
}

/* ---- GGUF ----------------------------------------------------------------- */

static int gguf_str(const plm_gguf *g, const char *key, const char **s, uint64_t *len) {
    const int64_t i = plm_gguf_find_key(g, key);
    return i >= 0 && plm_gguf_get_str(g, i, s, len) == PLM_OK ? 1 : 0;
}

static int gguf_int(const plm_gguf *g, const char *key, int64_t *v) {
    const int64_t i = plm_gguf_find_key(g, key);
    return i >= 0 && plm_gguf_get_int(g, i, v) == PLM_OK ? 1 : 0;
}

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static uint8_t *b64decode(const char *s, uint64_t n, uint64_t *out_len) {
    uint8_t *o = (uint8_t *)malloc(n / 4 * 3 + 3);
    if (!o) return NULL;
    uint64_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (s[i] == '=') break;
        const int v = b64val((unsigned char)s[i]);
        if (v < 0) {
            free(o);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v, bits += 6;
        if (bits >= 8) bits -= 8, o[k++] = (uint8_t)(acc >> bits);
    }
    *out_len = k;
    return o;
}

static int sp_from_proto(plm_tokenizer **out, const uint8_t *data, uint64_t size, const char *what, char **error);
static int json_tokenizer(plm_tokenizer **out, const char *text, uint64_t size, const plm_json *extra,
                          int64_t *template_bos, const char *what, char **error);

static int set_special_ids(plm_tokenizer *t, int64_t bos, const int64_t *eos, int64_t n_eos, const char *what,
                           char **error) {
    if (bos >= t->vocab_size || (bos < 0 && bos != -1))
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: bos token id %lld is outside the vocabulary of %lld", what,
                          (long long)bos, (long long)t->vocab_size);
    t->bos = (int32_t)bos;
    t->n_eos = 0;
    for (int64_t k = 0; k < n_eos && t->n_eos < MAX_EOS; k++) {
        if (eos[k] < 0 || eos[k] >= t->vocab_size)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: eos token id %lld is outside the vocabulary of %lld", what,
                              (long long)eos[k], (long long)t->vocab_size);
        t->eos[t->n_eos++] = (int32_t)eos[k];
    }
    return PLM_OK;
}

int plm_tokenizer_from_gguf(const plm_gguf *g, const char *what, plm_tokenizer **out, char **error) {
    if (!g || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_tokenizer_from_gguf: NULL argument");
    *out = NULL;
    if (!what) what = "model file";
    const char *model;
    uint64_t model_len;
    if (!gguf_str(g, "tokenizer.ggml.model", &model, &model_len))
        return plm_errorf(error, PLM_ERR_NOT_FOUND, "%s: the model carries no tokenizer (no tokenizer.ggml.model)",
                          what);
    int64_t bos = -1, v, eos[MAX_EOS], n_eos = 0;
    if (gguf_int(g, "tokenizer.ggml.bos_token_id", &v)) bos = v;
    const int64_t ei = plm_gguf_find_key(g, "pocketlm.tokenizer.eos_token_ids");
    int et;
    uint64_t cnt;
    const void *arr;
    if (ei >= 0 && plm_gguf_arr_info(g, ei, &et, &cnt, &arr) == PLM_OK) {
        for (uint64_t k = 0; k < cnt && n_eos < MAX_EOS; k++) {
            int64_t x = 0;
            if (et == PLM_GGUF_I32 || et == PLM_GGUF_U32) {
                int32_t y;
                memcpy(&y, (const uint8_t *)arr + 4 * k, 4);
                x = et == PLM_GGUF_U32 ? (int64_t)(uint32_t)y : y;
            } else if (et == PLM_GGUF_I64 || et == PLM_GGUF_U64) {
                memcpy(&x, (const uint8_t *)arr + 8 * k, 8);
            } else {
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: pocketlm.tokenizer.eos_token_ids is not integers", what);
            }
            eos[n_eos++] = x;
        }
    } else if (gguf_int(g, "tokenizer.ggml.eos_token_id", &v)) {
        eos[n_eos++] = v;
    }
    const int is_llama = model_len == 5 && memcmp(model, "llama", 5) == 0;
    int64_t add_bos = is_llama;
    gguf_int(g, "tokenizer.ggml.add_bos_token", &add_bos);

    plm_tokenizer *t = NULL;
    int st;
    const char *spm, *hfj;
    uint64_t spm_len, hfj_len;
    if (gguf_str(g, "tokenizer.huggingface.json", &hfj, &hfj_len)) {
        /* the exact tokenizer.json (GGUF's own key), preferred over llama.cpp's lossy vocabulary */
        const char *ex, *jerr;
        uint64_t ex_len;
        size_t at;
        plm_json *extra = NULL;
        if (gguf_str(g, "pocketlm.tokenizer.extra_special_tokens", &ex, &ex_len) &&
            !(extra = plm_json_parse(ex, ex_len, &jerr, &at)))
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: pocketlm.tokenizer.extra_special_tokens: %s at byte %zu",
                              what, jerr, at);
        int64_t template_bos;
        st = json_tokenizer(&t, hfj, hfj_len, extra, &template_bos, what, error);
        plm_json_free(extra);
        if (st) return st;
        if (t->kind == TK_HF) {
            if (bos < 0) bos = template_bos;
            add_bos = template_bos >= 0; /* the post-processor's template, as transformers 5 applies it */
        }
    } else if (gguf_str(g, "pocketlm.tokenizer.sp_model", &spm, &spm_len)) {
        uint64_t n;
        uint8_t *proto = b64decode(spm, spm_len, &n);
        if (!proto) return plm_errorf(error, PLM_ERR_FORMAT, "%s: pocketlm.tokenizer.sp_model is not base64", what);
        st = sp_from_proto(&t, proto, n, what, error);
        free(proto);
        if (st) return st;
        if (bos < 0) { /* SentencePieceTokenizer: the model's own ids when the file names none */
            for (int64_t i = 0; i < t->n; i++)
                if (t->type[i] == T_CONTROL && t->piece_len[i] == 3 && memcmp(t->piece[i], "<s>", 3) == 0) bos = i;
        }
    } else {
        const int64_t ti = plm_gguf_find_key(g, "tokenizer.ggml.tokens");
        if (ti < 0 || plm_gguf_arr_info(g, ti, &et, &cnt, &arr) != PLM_OK || et != PLM_GGUF_STRING)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.ggml.tokens is missing or not strings", what);
        const int is_gpt2 = model_len == 4 && memcmp(model, "gpt2", 4) == 0;
        if (!is_gpt2 && !is_llama)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer model '%.*s' in this GGUF file is not supported "
                              "yet (gpt2 BPE and llama SentencePiece are)", what, (int)model_len, model);
        t = new_tok(is_gpt2 ? TK_BPE : TK_SCORED);
        if (!t || alloc_pieces(t, (int64_t)cnt)) {
            plm_tokenizer_free(t);
            return oom(error, what);
        }
        const int64_t yi = plm_gguf_find_key(g, "tokenizer.ggml.token_type");
        const int64_t si = plm_gguf_find_key(g, "tokenizer.ggml.scores");
        int yt = -1, sty = -1;
        uint64_t ycnt = 0, scnt = 0;
        const void *yarr = NULL, *sarr = NULL;
        if (yi >= 0) plm_gguf_arr_info(g, yi, &yt, &ycnt, &yarr);
        if (si >= 0) plm_gguf_arr_info(g, si, &sty, &scnt, &sarr);
        if ((yi >= 0 && (ycnt != cnt || (yt != PLM_GGUF_I32 && yt != PLM_GGUF_U32))) ||
            (si >= 0 && (scnt != cnt || sty != PLM_GGUF_F32)) || yi < 0 || (!is_gpt2 && si < 0)) {
            plm_tokenizer_free(t);
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.ggml.token_type / scores do not match the %llu "
                              "tokens", what, (unsigned long long)cnt);
        }
        for (uint64_t i = 0; i < cnt; i++) {
            const char *s;
            uint64_t l;
            int32_t ty;
            plm_gguf_arr_str(g, ti, i, &s, &l);
            memcpy(&ty, (const uint8_t *)yarr + 4 * i, 4);
            if (set_piece(t, (int64_t)i, s, l)) {
                plm_tokenizer_free(t);
                return oom(error, what);
            }
            t->type[i] = ty;
            if (sarr) memcpy(&t->score[i], (const uint8_t *)sarr + 4 * i, 4);
            int rc;
            if (is_gpt2 && (ty == T_CONTROL || ty == T_USER)) {
                t->is_added[i] = ty == T_CONTROL ? 2 : 1;
                rc = plm_strmap_put(&t->added, t->piece[i], l, (int64_t)i, 1);
            } else {
                rc = plm_strmap_put(&t->index, t->piece[i], l, (int64_t)i, 1); /* the last of equal texts, as a dict */
            }
            if (rc) {
                plm_tokenizer_free(t);
                return oom(error, what);
            }
        }
        if (is_gpt2) {
            const int64_t mi = plm_gguf_find_key(g, "tokenizer.ggml.merges");
            uint64_t mcnt = 0;
            int mt = PLM_GGUF_STRING;
            const void *marr;
            if (mi >= 0 && (plm_gguf_arr_info(g, mi, &mt, &mcnt, &marr) != PLM_OK || mt != PLM_GGUF_STRING)) {
                plm_tokenizer_free(t);
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.ggml.merges is not strings", what);
            }
            t->merge_keys = (char **)calloc((size_t)mcnt + 1, sizeof(char *));
            if (!t->merge_keys || plm_strmap_init(&t->merges, mcnt)) {
                plm_tokenizer_free(t);
                return oom(error, what);
            }
            for (uint64_t k = 0; k < mcnt; k++) {
                const char *s;
                uint64_t l;
                plm_gguf_arr_str(g, mi, k, &s, &l);
                if (add_merge(t, s, l, (int64_t)k)) {
                    plm_tokenizer_free(t);
                    return oom(error, what);
                }
            }
            const char *pre;
            uint64_t pre_len;
            if (gguf_str(g, "pocketlm.tokenizer.pre_tokenizer", &pre, &pre_len)) {
                const char *jerr;
                size_t at;
                plm_json *j = plm_json_parse(pre, pre_len, &jerr, &at);
                if (!j) {
                    plm_tokenizer_free(t);
                    return plm_errorf(error, PLM_ERR_FORMAT, "%s: pocketlm.tokenizer.pre_tokenizer: %s at byte %zu",
                                      what, jerr, at);
                }
                st = pre_from_json(t, j, what, error);
                plm_json_free(j);
            } else if (gguf_str(g, "tokenizer.ggml.pre", &pre, &pre_len)) {
                st = pre_by_name(t, pre, pre_len, what, error);
                /* llama.cpp tokenizes its Llama-3 pre-tokenizer family with ignore_merges */
                char key[80];
                snprintf(key, sizeof key, " %.*s ", (int)(pre_len < 70 ? pre_len : 70), pre);
                t->ignore_merges = strstr(" llama-bpe llama3 llama-v3 falcon3 ", key) != NULL;
            } else {
                st = pre_by_name(t, "default", 7, what, error);
            }
            int64_t im;
            if (gguf_int(g, "pocketlm.tokenizer.ignore_merges", &im)) t->ignore_merges = im != 0; /* tokenizer.json's */
            const char *nz;
            uint64_t nz_len;
            if (!st && gguf_str(g, "pocketlm.tokenizer.normalizer", &nz, &nz_len)) { /* tokenizer.json's (Qwen2's NFC) */
                const char *jerr;
                size_t at;
                plm_json *j = plm_json_parse(nz, nz_len, &jerr, &at);
                if (!j) {
                    plm_tokenizer_free(t);
                    return plm_errorf(error, PLM_ERR_FORMAT, "%s: pocketlm.tokenizer.normalizer: %s at byte %zu", what,
                                      jerr, at);
                }
                st = bl_normalizer(t, j, what, error);
                plm_json_free(j);
            }
            if (st || (st = finish_bpe(t, what, error))) {
                plm_tokenizer_free(t);
                return st;
            }
        } else {
            t->vocab_size = t->n;
            int64_t asp = 1;
            gguf_int(g, "tokenizer.ggml.add_space_prefix", &asp);
            t->add_dummy_prefix = asp != 0;
            for (int64_t i = 0; i < t->n; i++)
                if (t->type[i] == T_BYTE && t->piece_len[i] == 6 && memcmp(t->piece[i], "<0x", 3) == 0) {
                    unsigned b; /* int(p[3:5], 16) */
                    if (sscanf(t->piece[i], "<0x%2x", &b) == 1) t->byte_piece[b & 255] = (int32_t)i;
                }
        }
    }
    if ((st = set_special_ids(t, bos, eos, n_eos, what, error))) {
        plm_tokenizer_free(t);
        return st;
    }
    if (t->kind == TK_SP && n_eos == 0)
        for (int64_t i = 0; i < t->n && t->n_eos == 0; i++)
            if (t->type[i] == T_CONTROL && t->piece_len[i] == 4 && memcmp(t->piece[i], "</s>", 4) == 0)
                t->eos[t->n_eos++] = (int32_t)i;
    t->add_bos = add_bos && t->bos >= 0;
    const char *tpl;
    uint64_t tpl_len;
    if (gguf_str(g, "tokenizer.chat_template", &tpl, &tpl_len)) {
        t->chat_template = (char *)malloc(tpl_len + 1);
        if (!t->chat_template) {
            plm_tokenizer_free(t);
            return oom(error, what);
        }
        memcpy(t->chat_template, tpl, tpl_len);
        t->chat_template[tpl_len] = '\0';
    }
    *out = t;
    return PLM_OK;
}

/* ---- SentencePiece ModelProto --------------------------------------------- */

static int sp_from_proto(plm_tokenizer **out, const uint8_t *data, uint64_t size, const char *what, char **error) {
    plm_wire w = {data, data + size}, sub;
    uint32_t num;
    int wt;
    uint64_t v;
    int64_t n = 0;
    /* first pass: count the pieces */
    while (w.p < w.end) {
        if (plm_wire_field(&w, &num, &wt, &sub, &v)) goto bad;
        if (num == 1 && wt == 2) n++;
    }
    plm_tokenizer *t = new_tok(TK_SP);
    if (!t || alloc_pieces(t, n)) {
        plm_tokenizer_free(t);
        return oom(error, what);
    }
    *out = t;
    t->sp_type = 1, t->add_dummy_prefix = 1, t->remove_extra_ws = 1, t->escape_ws = 1;
    const char *unk_surface = " \xe2\x81\x87 ";
    plm_wire unk_w = {(const uint8_t *)unk_surface, (const uint8_t *)unk_surface + strlen(unk_surface)};
    int has_charsmap = 0, treat_suffix = 0;
    const char *norm_name = "";
    size_t norm_name_len = 0;
    int64_t i = 0;
    w = (plm_wire){data, data + size};
    while (w.p < w.end) {
        plm_wire_field(&w, &num, &wt, &sub, &v);
        if (wt != 2) continue;
        plm_wire f;
        uint32_t fn;
        int fwt;
        uint64_t fv;
        if (num == 1) {
            const uint8_t *ps = (const uint8_t *)"";
            uint64_t pl = 0;
            float sc = 0;
            int ty = T_NORMAL;
            while (sub.p < sub.end) {
                if (plm_wire_field(&sub, &fn, &fwt, &f, &fv)) goto bad_free;
                if (fn == 1 && fwt == 2) ps = f.p, pl = (uint64_t)(f.end - f.p);
                else if (fn == 2 && fwt == 5) {
                    const uint32_t bits = (uint32_t)fv;
                    memcpy(&sc, &bits, 4);
                } else if (fn == 3 && fwt == 0) ty = (int)fv;
            }
            if (set_piece(t, i, (const char *)ps, pl)) goto oom_free;
            t->score[i] = sc, t->type[i] = ty;
            /* pieces_: normal, user-defined and unused; the others are looked up apart */
            if (plm_strmap_put(&t->index, t->piece[i], pl, i, 0)) goto oom_free;
            i++;
        } else if (num == 2) { /* TrainerSpec */
            while (sub.p < sub.end) {
                if (plm_wire_field(&sub, &fn, &fwt, &f, &fv)) goto bad_free;
                if (fn == 3 && fwt == 0) t->sp_type = (int)fv;
                else if (fn == 35 && fwt == 0) t->byte_fallback = fv != 0;
                else if (fn == 24 && fwt == 0) treat_suffix = fv != 0;
                else if (fn == 44 && fwt == 2) unk_w = f;
            }
        } else if (num == 3) { /* NormalizerSpec */
            while (sub.p < sub.end) {
                if (plm_wire_field(&sub, &fn, &fwt, &f, &fv)) goto bad_free;
                if (fn == 1 && fwt == 2) norm_name = (const char *)f.p, norm_name_len = (size_t)(f.end - f.p);
                else if (fn == 2 && fwt == 2) has_charsmap = f.end > f.p;
                else if (fn == 3 && fwt == 0) t->add_dummy_prefix = fv != 0;
                else if (fn == 4 && fwt == 0) t->remove_extra_ws = fv != 0;
                else if (fn == 5 && fwt == 0) t->escape_ws = fv != 0;
            }
        }
    }
    if (t->sp_type != 1 && t->sp_type != 2) {
        plm_errorf(error, PLM_ERR_FORMAT, "%s: SentencePiece model type %d is not supported (unigram and BPE are)",
                   what, t->sp_type);
        goto fail;
    }
    if (has_charsmap) {
        plm_errorf(error, PLM_ERR_FORMAT, "%s: the SentencePiece normalizer '%.*s' (a precompiled character map) is "
                   "not implemented in C; only 'identity' normalization is", what, (int)norm_name_len, norm_name);
        goto fail;
    }
    if (treat_suffix) {
        plm_errorf(error, PLM_ERR_FORMAT, "%s: SentencePiece's treat_whitespace_as_suffix is not implemented in C",
                   what);
        goto fail;
    }
    t->unk_surface = (char *)malloc((size_t)(unk_w.end - unk_w.p) + 1);
    if (!t->unk_surface) goto oom_free;
    memcpy(t->unk_surface, unk_w.p, (size_t)(unk_w.end - unk_w.p));
    t->unk_surface[unk_w.end - unk_w.p] = '\0';
    t->vocab_size = t->n;
    t->min_score = INFINITY, t->max_score = -INFINITY;
    t->user_ids = (int32_t *)malloc((size_t)(t->n > 0 ? t->n : 1) * sizeof(int32_t));
    if (!t->user_ids) goto oom_free;
    for (int64_t k = 0; k < t->n; k++) {
        if (t->type[k] == T_UNKNOWN) t->unk_id = (int32_t)k;
        if (t->type[k] == T_NORMAL) {
            if (t->score[k] < t->min_score) t->min_score = t->score[k];
            if (t->score[k] > t->max_score) t->max_score = t->score[k];
        }
        if (t->type[k] == T_USER) t->user_ids[t->n_user++] = (int32_t)k;
        if (t->piece_len[k] > t->max_piece_len) t->max_piece_len = t->piece_len[k];
        if (t->type[k] == T_BYTE && t->piece_len[k] == 6) {
            unsigned b;
            if (sscanf(t->piece[k], "<0x%2X>", &b) == 1) t->byte_piece[b & 255] = (int32_t)k;
        }
    }
    if (t->unk_id < 0) {
        plm_errorf(error, PLM_ERR_FORMAT, "%s: the SentencePiece model has no unknown piece", what);
        goto fail;
    }
    /* user-defined pieces, longest first, for the prefix matcher */
    for (int a = 1; a < t->n_user; a++)
        for (int b = a; b > 0 && t->piece_len[t->user_ids[b]] > t->piece_len[t->user_ids[b - 1]]; b--) {
            const int32_t x = t->user_ids[b];
            t->user_ids[b] = t->user_ids[b - 1], t->user_ids[b - 1] = x;
        }
    return PLM_OK;
bad:
    return plm_errorf(error, PLM_ERR_FORMAT, "%s: the tokenizer is not a SentencePiece model (bad protobuf)", what);
bad_free:
    plm_errorf(error, PLM_ERR_FORMAT, "%s: the tokenizer is not a SentencePiece model (bad protobuf)", what);
    goto fail;
oom_free:
    oom(error, what);
fail:
    plm_tokenizer_free(*out);
    *out = NULL;
    return PLM_ERR_FORMAT;
}

/* ---- tokenizer.json --------------------------------------------------------- */

static int hf_from_json(plm_tokenizer **out, plm_json *j, const plm_json *extra, int64_t *template_bos,
                        const char *what, char **error);

/* Whether a tokenizer.json is byte-level BPE (GPT-2's byte alphabet), as tokenizer.py's is_byte_level. */
static int has_byte_level(const plm_json *node, const char *key) {
    const char *ty = plm_json_str(plm_json_get(node, "type"));
    if (ty && strcmp(ty, "ByteLevel") == 0) return 1;
    const plm_json *a = plm_json_get(node, key);
    for (const plm_json *e = a && a->type == PLM_JARR ? a->child : NULL; e; e = e->next)
        if (has_byte_level(e, key)) return 1;
    return 0;
}

/* tokenizer.json: byte-level BPE here, SentencePiece-style ones through hf_from_json. extra: transformers 5's
 * extra_special_tokens (or NULL); *template_bos: the id the post-processor starts a sequence with, or -1. */
static int json_tokenizer(plm_tokenizer **out, const char *text, uint64_t size, const plm_json *extra,
                          int64_t *template_bos, const char *what, char **error) {
    const char *jerr;
    size_t at;
    *template_bos = -1;
    plm_json *j = plm_json_parse(text, size, &jerr, &at);
    if (!j) return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json: %s at byte %zu", what, jerr, at);
    const char *mt = plm_json_str(plm_json_get(plm_json_get(j, "model"), "type"));
    if (mt && (strcmp(mt, "Unigram") == 0 || (strcmp(mt, "BPE") == 0 && !has_byte_level(plm_json_get(j, "pre_tokenizer"),
        "pretokenizers") && !has_byte_level(plm_json_get(j, "decoder"), "decoders"))))
        return hf_from_json(out, j, extra, template_bos, what, error);
    const plm_json *model = plm_json_get(j, "model");
    const char *type = plm_json_str(plm_json_get(model, "type"));
    const plm_json *vocab = plm_json_get(model, "vocab"), *merges = plm_json_get(model, "merges");
    const plm_json *added = plm_json_get(j, "added_tokens");
    int st = PLM_OK;
    plm_tokenizer *t = NULL;
    if (!type || strcmp(type, "BPE") != 0 || !vocab || vocab->type != PLM_JOBJ) {
        st = plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json model type '%s' is not supported (only byte-level "
                        "BPE)", what, type ? type : "none");
        goto done;
    }
    int64_t max_id = -1;
    for (const plm_json *e = vocab->child; e; e = e->next)
        if (e->type == PLM_JNUM && e->num > max_id) max_id = (int64_t)e->num;
    for (const plm_json *e = added && added->type == PLM_JARR ? added->child : NULL; e; e = e->next) {
        const plm_json *id = plm_json_get(e, "id");
        if (id && id->type == PLM_JNUM && id->num > max_id) max_id = (int64_t)id->num;
    }
    if (max_id > (1 << 24)) {
        st = plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json has token id %lld", what, (long long)max_id);
        goto done;
    }
    t = new_tok(TK_BPE);
    if (!t || alloc_pieces(t, max_id + 1)) goto nomem;
    for (const plm_json *e = vocab->child; e; e = e->next) {
        if (e->type != PLM_JNUM || e->num < 0 || e->num != floor(e->num)) {
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json vocab entry has a bad id", what);
            goto done;
        }
        const int64_t id = (int64_t)e->num;
        if (!t->piece[id] && set_piece(t, id, e->key, e->key_len)) goto nomem;
    }
    for (const plm_json *e = vocab->child; e; e = e->next) {
        const int64_t id = (int64_t)e->num;
        if (t->piece_len[id] == e->key_len && memcmp(t->piece[id], e->key, e->key_len) == 0) {
            if (plm_strmap_put(&t->index, t->piece[id], e->key_len, id, 1)) goto nomem;
        } else {
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json gives id %lld to two tokens", what,
                            (long long)id);
            goto done;
        }
    }
    for (const plm_json *e = added && added->type == PLM_JARR ? added->child : NULL; e; e = e->next) {
        const plm_json *id = plm_json_get(e, "id"), *sp = plm_json_get(e, "special");
        const plm_json *content = plm_json_get(e, "content");
        if (!id || id->type != PLM_JNUM || id->num < 0 || !content || content->type != PLM_JSTR) {
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json added_tokens entry without id or content", what);
            goto done;
        }
        const int64_t k = (int64_t)id->num;
        const int in_vocab = t->piece[k] != NULL && plm_strmap_get(&t->index, t->piece[k], t->piece_len[k], -1) == k;
        if (in_vocab && (t->piece_len[k] != content->len || memcmp(t->piece[k], content->str, content->len) != 0)) {
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: added token %lld differs from the vocabulary's", what,
                            (long long)k);
            goto done;
        }
        if (!in_vocab && set_piece(t, k, content->str, content->len)) goto nomem;
        t->is_added[k] = sp && sp->type == PLM_JBOOL && sp->num ? 2 : 1;
        if (content->len && plm_strmap_put(&t->added, t->piece[k], content->len, k, 1)) goto nomem;
    }
    const int64_t nm = merges && merges->type == PLM_JARR ? merges->n : 0;
    t->merge_keys = (char **)calloc((size_t)nm + 1, sizeof(char *));
    if (!t->merge_keys || plm_strmap_init(&t->merges, (uint64_t)nm)) goto nomem;
    int64_t rank = 0;
    for (const plm_json *m = nm ? merges->child : NULL; m; m = m->next, rank++) {
        if (m->type == PLM_JSTR) {
            if (add_merge(t, m->str, m->len, rank)) goto nomem;
        } else if (m->type == PLM_JARR && m->n == 2 && m->child->type == PLM_JSTR && m->child->next->type == PLM_JSTR) {
            const size_t la = m->child->len, lb = m->child->next->len;
            char *k = (char *)malloc(la + lb + 2);
            if (!k) goto nomem;
            memcpy(k, m->child->str, la);
            k[la] = ' ';
            memcpy(k + la + 1, m->child->next->str, lb + 1);
            const int rc = add_merge(t, k, la + lb + 1, rank);
            free(k);
            if (rc) goto nomem;
        }
    }
    if ((st = pre_from_json(t, plm_json_get(j, "pre_tokenizer"), what, error))) goto done;
    if ((st = bl_normalizer(t, plm_json_get(j, "normalizer"), what, error))) goto done;
    for (const plm_json *e = added && added->type == PLM_JARR && t->norm ? added->child : NULL; e; e = e->next) {
        /* added tokens are matched as given; tokenizers matches a normalized one after the normalizer */
        const plm_json *sp = plm_json_get(e, "special"), *nz = plm_json_get(e, "normalized");
        const int special = sp && sp->type == PLM_JBOOL && sp->num;
        if (nz && nz->type == PLM_JBOOL ? nz->num != 0 : !special) {
            const plm_json *content = plm_json_get(e, "content");
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json added token '%.*s' is normalized (\"normalized\": "
                            "true) and there is a normalizer: matching added tokens after normalization is not "
                            "implemented for byte-level BPE", what, (int)(content->len < 80 ? content->len : 80),
                            content->str);
            goto done;
        }
    }
    const plm_json *im = plm_json_get(model, "ignore_merges");
    t->ignore_merges = im && im->type == PLM_JBOOL && im->num != 0;
    st = finish_bpe(t, what, error);
    goto done;
nomem:
    st = oom(error, what);
done:
    plm_json_free(j);
    if (st) plm_tokenizer_free(t);
    else *out = t;
    return st;
}

int plm_tokenizer_from_bytes(const void *data, uint64_t size, int64_t bos_id, const int64_t *eos_ids, int64_t n_eos,
                             const char *what, plm_tokenizer **out, char **error) {
    if (!data || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_tokenizer_from_bytes: NULL argument");
    *out = NULL;
    if (!what) what = "tokenizer";
    plm_tokenizer *t = NULL;
    int64_t template_bos = -1;
    int st = size && ((const char *)data)[0] == '{'
                 ? json_tokenizer(&t, (const char *)data, size, NULL, &template_bos, what, error)
                 : sp_from_proto(&t, (const uint8_t *)data, size, what, error);
    if (st) return st;
    if (t->kind == TK_HF && bos_id < 0) bos_id = template_bos;
    if (t->kind == TK_SP) {
        if (bos_id < 0)
            for (int64_t i = 0; i < t->n; i++)
                if (t->type[i] == T_CONTROL && t->piece_len[i] == 3 && memcmp(t->piece[i], "<s>", 3) == 0) bos_id = i;
    }
    if ((st = set_special_ids(t, bos_id, eos_ids, n_eos, what, error))) {
        plm_tokenizer_free(t);
        return st;
    }
    if (t->kind == TK_SP && t->n_eos == 0)
        for (int64_t i = 0; i < t->n && t->n_eos == 0; i++)
            if (t->type[i] == T_CONTROL && t->piece_len[i] == 4 && memcmp(t->piece[i], "</s>", 4) == 0)
                t->eos[t->n_eos++] = (int32_t)i;
    t->add_bos = 0; /* a bundle says where its BOS goes (start_token) */
    *out = t;
    return PLM_OK;
}

/* ---- output buffer ------------------------------------------------------------ */

typedef struct {
    int32_t *ids;
    int64_t n, cap; /* cap: room in ids; n may run past it (the count needed) */
    int failed;
} idbuf;

static void put(idbuf *b, int32_t id) {
    if (b->n < b->cap) b->ids[b->n] = id;
    b->n++;
}

typedef struct {
    char *p;
    size_t n, cap;
} strbuf;

static int sb_add(strbuf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *g = (char *)realloc(b->p, cap);
        if (!g) return -1;
        b->p = g, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

/* ---- BPE encode ------------------------------------------------------------- */

typedef struct {
    int64_t off, len; /* into the word's byte-level text */
} part;

static int bpe_word(const plm_tokenizer *t, const char *w, int64_t wlen, idbuf *out, char **error) {
    /* parts: the characters of the byte-level word */
    int64_t np = 0;
    part *p = (part *)malloc((size_t)(wlen > 0 ? wlen : 1) * sizeof(part));
    char *key = (char *)malloc((size_t)wlen + 2);
    if (!p || !key) {
        free(p), free(key);
        return plm_errorf(error, PLM_ERR_NOMEM, "out of memory tokenizing");
    }
    if (t->ignore_merges) {
        const int64_t id = plm_strmap_get(&t->index, w, (size_t)wlen, -1);
        if (id >= 0) {
            free(p), free(key);
            put(out, (int32_t)id);
            return PLM_OK;
        }
    }
    for (int64_t i = 0; i < wlen;) {
        size_t k;
        plm_utf8_next((const uint8_t *)w + i, (size_t)(wlen - i), &k);
        p[np++] = (part){i, (int64_t)k};
        i += (int64_t)k;
    }
    while (np > 1) {
        int64_t best = INT64_MAX, at = -1;
        for (int64_t i = 0; i + 1 < np; i++) {
            memcpy(key, w + p[i].off, (size_t)p[i].len);
            key[p[i].len] = ' ';
            memcpy(key + p[i].len + 1, w + p[i + 1].off, (size_t)p[i + 1].len);
            const int64_t r = plm_strmap_get(&t->merges, key, (size_t)(p[i].len + 1 + p[i + 1].len), INT64_MAX);
            if (r < best) best = r, at = i;
        }
        if (at < 0) break;
        p[at].len += p[at + 1].len;
        memmove(p + at + 1, p + at + 2, (size_t)(np - at - 2) * sizeof(part));
        np--;
    }
    int st = PLM_OK;
    for (int64_t i = 0; i < np; i++) {
        const int64_t id = plm_strmap_get(&t->index, w + p[i].off, (size_t)p[i].len, -1);
        if (id < 0) {
            st = plm_errorf(error, PLM_ERR_FORMAT, "byte-level BPE produced '%.*s', which is not in the vocabulary",
                            (int)p[i].len, w + p[i].off);
            break;
        }
        put(out, (int32_t)id);
    }
    free(p), free(key);
    return st;
}

/* One piece of text (code points cp[0..n)) through the byte map and merges. */
static int bpe_piece(const plm_tokenizer *t, const uint32_t *cp, int64_t n, strbuf *sb, idbuf *out, char **error) {
    sb->n = 0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t u[4];
        const int k = plm_utf8_put(cp[i], u);
        for (int j = 0; j < k; j++)
            if (sb_add(sb, t->byte_char[u[j]], t->byte_char_len[u[j]]))
                return plm_errorf(error, PLM_ERR_NOMEM, "out of memory tokenizing");
    }
    return sb->n ? bpe_word(t, sb->p, (int64_t)sb->n, out, error) : PLM_OK;
}

/* Split [0, n) by each regex in turn (Isolated: matches and the gaps between them are pieces). */
static int bpe_plain(const plm_tokenizer *t, const uint8_t *s, size_t len, int first, idbuf *out, char **error) {
    int64_t n = 0;
    uint32_t *cp = (uint32_t *)malloc((len + 2) * sizeof(uint32_t));
    /* pieces as [start, end) pairs over cp */
    int64_t *a = (int64_t *)malloc((2 * len + 4) * sizeof(int64_t)), *b = (int64_t *)malloc((2 * len + 4) * sizeof(int64_t));
    strbuf sb = {0};
    int st = PLM_OK;
    if (!cp || !a || !b) {
        st = plm_errorf(error, PLM_ERR_NOMEM, "out of memory tokenizing");
        goto done;
    }
    if (t->add_prefix_space && first && len && s[0] != ' ') cp[n++] = ' ';
    for (size_t i = 0; i < len;) {
        size_t k;
        cp[n++] = plm_utf8_next(s + i, len - i, &k);
        i += k;
    }
    int64_t na = 0;
    if (n) a[0] = 0, a[1] = n, na = 1;
    for (int r = 0; r < t->n_splits; r++) {
        int64_t nb = 0;
        for (int64_t q = 0; q < na; q++) {
            const int64_t lo = a[2 * q], hi = a[2 * q + 1];
            int64_t pos = lo, ms, me;
            for (int64_t from = lo;;) {
                /* the regex sees only this piece */
                const int found = plm_regex_search(t->splits[r], cp + lo, hi - lo, from - lo, &ms, &me);
                if (found < 0) {
                    st = plm_errorf(error, PLM_ERR_FORMAT, "a pre-tokenizer pattern backtracked past its bound on "
                                    "this text");
                    goto done;
                }
                if (!found) break;
                ms += lo, me += lo;
                if (ms > pos) b[2 * nb] = pos, b[2 * nb + 1] = ms, nb++;
                if (me > ms) b[2 * nb] = ms, b[2 * nb + 1] = me, nb++;
                pos = me;
                from = me > ms ? me : ms + 1;
                if (from > hi) break;
            }
            if (pos < hi) b[2 * nb] = pos, b[2 * nb + 1] = hi, nb++;
        }
        int64_t *x = a;
        a = b, b = x, na = nb;
    }
    for (int64_t q = 0; q < na && !st; q++) st = bpe_piece(t, cp + a[2 * q], a[2 * q + 1] - a[2 * q], &sb, out, error);
done:
    free(cp), free(a), free(b), free(sb.p);
    return st;
}

static int hf_normalize(const struct hf_spec *h, const char *s, size_t n, strbuf *o);

/* text between added tokens: the normalizer, if any, then bpe_plain (as BPETokenizer._encode_plain) */
static int bpe_segment(const plm_tokenizer *t, const uint8_t *s, size_t len, int first, idbuf *out, char **error) {
    if (!t->norm) return bpe_plain(t, s, len, first, out, error);
    strbuf nb = {0};
    if (hf_normalize(t->norm, (const char *)s, len, &nb)) {
        free(nb.p);
        return plm_errorf(error, PLM_ERR_NOMEM, "out of memory tokenizing");
    }
    const int st = bpe_plain(t, (const uint8_t *)(nb.p ? nb.p : ""), nb.n, first, out, error);
    free(nb.p);
    return st;
}

static int bpe_encode(const plm_tokenizer *t, const uint8_t *s, size_t len, idbuf *out, char **error) {
    size_t pos = 0, i = 0;
    int first = 1;
    while (i < len && t->added.n) {
        /* the longest added token starting here */
        size_t best = 0;
        int64_t best_id = -1;
        for (size_t l = t->max_added_len < len - i ? t->max_added_len : len - i; l > 0; l--) {
            const int64_t id = plm_strmap_get(&t->added, (const char *)s + i, l, -1);
            if (id >= 0) {
                best = l, best_id = id;
                break;
            }
        }
        if (best_id < 0) {
            size_t k;
            plm_utf8_next(s + i, len - i, &k);
            i += k;
            continue;
        }
        if (i > pos) {
            const int st = bpe_segment(t, s + pos, i - pos, first, out, error);
            if (st) return st;
        }
        put(out, (int32_t)best_id);
        i += best, pos = i, first = 0;
    }
    return pos < len ? bpe_segment(t, s + pos, len - pos, first, out, error) : PLM_OK;
}

/* ---- tokenizer.json, SentencePiece style --------------------------------------
 * HFTokenizer of python/pocketlm/tokenizer.py: added tokens split out
 * (leftmost-longest, single_word / lstrip / rstrip / normalized), the
 * normalizer (Prepend, Replace of a string), the pre-tokenizer (Metaspace,
 * Split, WhitespaceSplit, Digits), BPE merges by rank over ids with byte
 * fallback and unknown fusing, or unigram Viterbi; the decoder chain over
 * every token. */

enum { HN_PREPEND = 1, HN_REPLACE, HN_UNICODE };
enum { HP_META = 1, HP_SPLIT };
enum { SB_ISOLATED, SB_REMOVED, SB_PREV, SB_NEXT, SB_CONTIG };
enum { HD_REPLACE = 1, HD_BYTEFALLBACK, HD_FUSE, HD_STRIP, HD_META };
enum { AF_LSTRIP = 1, AF_RSTRIP = 2, AF_SINGLE = 4, AF_NORMALIZED = 8 };
#define HF_MAX_STEPS 16

typedef struct {
    int type;
    char *a, *b; /* Prepend: a; Replace: a -> b; Metaspace: a the replacement; Split literal: a */
    size_t la, lb;
    plm_regex *re; /* Split: the pattern (a literal escaped) */
    int scheme;    /* Metaspace: 0 always, 1 first, 2 never */
    int split, behavior, invert, start, stop;
} hf_step;

typedef struct hf_spec {
    hf_step norm[HF_MAX_STEPS], pre[HF_MAX_STEPS], dec[HF_MAX_STEPS];
    int n_norm, n_pre, n_dec;
    int unigram;            /* else BPE */
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk;            /* -1: none */
    uint8_t *aflags;        /* per id */
    plm_strmap raw, normed; /* added contents matched before / after normalization -> id */
    char **norm_keys;
    int64_t n_norm_keys;
    uint32_t max_raw, max_normed;
    uint32_t *merge_key;    /* pairs of ids, the merges map's keys */
    double *uscore;         /* unigram */
    double min_score;
    uint32_t max_len;
} hf_spec;

static void hf_free(hf_spec *h) {
    if (!h) return;
    hf_step *all[3] = {h->norm, h->pre, h->dec};
    const int ns[3] = {h->n_norm, h->n_pre, h->n_dec};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < ns[k]; i++) free(all[k][i].a), free(all[k][i].b), plm_regex_free(all[k][i].re);
    for (int64_t i = 0; i < h->n_norm_keys; i++) free(h->norm_keys[i]);
    free(h->norm_keys), free(h->aflags), free(h->merge_key), free(h->uscore);
    plm_strmap_free(&h->raw), plm_strmap_free(&h->normed);
    free(h);
}

static char *dup_n(const char *s, size_t n) {
    char *o = (char *)malloc(n + 1);
    if (o) memcpy(o, s, n), o[n] = '\0';
    return o;
}

/* White_Space (Rust's char::is_whitespace), as WHITE_SPACE in tokenizer.py */
static int white_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* the regex crate's \w, as _is_word_char */
static int word_char(uint32_t c) {
    const char *cat = plm_uc_category_name(plm_uc_category(c));
    return cat[0] == 'L' || cat[0] == 'M' || strcmp(cat, "Nd") == 0 || strcmp(cat, "Nl") == 0 ||
           strcmp(cat, "Pc") == 0 || c == 0x200C || c == 0x200D;
}

static uint32_t char_before(const char *s, size_t at) {
    size_t k = at;
    while (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0x80) k--;
    if (k > 0) k--;
    size_t l;
    return plm_utf8_next((const uint8_t *)s + k, at - k, &l);
}

static int json_pattern(const plm_json *pat, const char *what, char **error, char **lit, size_t *llen, char **re) {
    const char *r = plm_json_str(plm_json_get(pat, "Regex"));
    const plm_json *st = plm_json_get(pat, "String");
    *lit = NULL, *re = NULL;
    if (r) return (*re = dup_n(r, strlen(r))) ? PLM_OK : oom(error, what);
    if (!st || st->type != PLM_JSTR)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json pattern is neither a String nor a Regex", what);
    *llen = st->len;
    return (*lit = dup_n(st->str, st->len)) ? PLM_OK : oom(error, what);
}

static const plm_json *steps_of(const plm_json *node, const char *key, int *n) {
    const char *type = plm_json_str(plm_json_get(node, "type"));
    if (type && strcmp(type, "Sequence") == 0) {
        const plm_json *a = plm_json_get(node, key);
        *n = a && a->type == PLM_JARR ? (int)a->n : 0;
        return a && a->type == PLM_JARR ? a->child : NULL;
    }
    *n = node && node->type == PLM_JOBJ ? 1 : 0;
    return node;
}

static int jbool(const plm_json *o, const char *key, int dflt) {
    const plm_json *v = plm_json_get(o, key);
    return v && v->type == PLM_JBOOL ? v->num != 0 : dflt;
}

static int scheme_of(const plm_json *o) {
    const char *s = plm_json_str(plm_json_get(o, "prepend_scheme"));
    if (!s) return jbool(o, "add_prefix_space", 1) ? 0 : 2;
    return strcmp(s, "always") == 0 ? 0 : strcmp(s, "first") == 0 ? 1 : strcmp(s, "never") == 0 ? 2 : -1;
}

static int compile_step_regex(hf_step *s, const char *re, const char *what, char **error) {
    char msg[200];
    s->re = plm_regex_compile(re, msg, sizeof msg);
    if (!s->re)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: the pattern %.200s cannot be run by the C tokenizer: %s", what,
                          re, msg);
    return PLM_OK;
}

/* a Replace step of a String (normalizer or decoder): s->a / s->la the pattern, s->b / s->lb the content */
static int string_replace(const plm_json *e, const char *kind, const char *what, hf_step *s, char **error) {
    char *re;
    const plm_json *c = plm_json_get(e, "content");
    int st = json_pattern(plm_json_get(e, "pattern"), what, error, &s->a, &s->la, &re);
    if (st) return st;
    if (re) {
        free(re);
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: the C tokenizer runs a Replace %s of a String, not of a Regex",
                          what, kind);
    }
    if (!c || c->type != PLM_JSTR || !s->la)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: Replace %s without content", what, kind);
    s->lb = c->len;
    if (!(s->b = dup_n(c->str, c->len))) return oom(error, what);
    return PLM_OK;
}

/* tokenizer.json's normalizer (a Sequence or one step) into h->norm */
static int hf_parse_normalizer(hf_spec *h, const plm_json *norm, const char *what, char **error) {
    int n;
    const plm_json *e = steps_of(norm, "normalizers", &n);
    for (int i = 0; i < n && e; i++, e = e->next) {
        const char *ty = plm_json_str(plm_json_get(e, "type"));
        if (h->n_norm == HF_MAX_STEPS) return plm_errorf(error, PLM_ERR_FORMAT, "%s: too many normalizers", what);
        hf_step *s = &h->norm[h->n_norm++];
        static const char *forms[] = {"NFC", "NFD", "NFKC", "NFKD"}; /* PLM_NFC.. in this order */
        int form = 0;
        for (int k = 0; k < 4 && ty; k++)
            if (strcmp(ty, forms[k]) == 0) form = PLM_NFC + k;
        if (form) {
            s->type = HN_UNICODE, s->scheme = form;
        } else if (ty && strcmp(ty, "Prepend") == 0) {
            const plm_json *p = plm_json_get(e, "prepend");
            if (!p || p->type != PLM_JSTR) return plm_errorf(error, PLM_ERR_FORMAT, "%s: Prepend without prepend", what);
            s->type = HN_PREPEND, s->la = p->len;
            if (!(s->a = dup_n(p->str, p->len))) return oom(error, what);
        } else if (ty && strcmp(ty, "Replace") == 0) {
            int st = string_replace(e, "normalizer", what, s, error);
            if (st) return st;
            s->type = HN_REPLACE;
        } else {
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: the normalizer '%s' is not implemented in C (Sequence, "
                              "Prepend, Replace, NFC, NFD, NFKC and NFKD are)", what, ty ? ty : "?");
        }
    }
    return PLM_OK;
}

/* a byte-level BPE's normalizer (BPETokenizer.normalize): t->norm stays NULL when there is none */
static int bl_normalizer(plm_tokenizer *t, const plm_json *norm, const char *what, char **error) {
    if (!norm || norm->type == PLM_JNULL) return PLM_OK;
    if (!(t->norm = (hf_spec *)calloc(1, sizeof(hf_spec)))) return oom(error, what);
    const int st = hf_parse_normalizer(t->norm, norm, what, error);
    if (!st && !t->norm->n_norm) hf_free(t->norm), t->norm = NULL;
    return st;
}

static int hf_parse_steps(hf_spec *h, const plm_json *j, const char *what, char **error) {
    int n;
    const plm_json *e;
    const int st = hf_parse_normalizer(h, plm_json_get(j, "normalizer"), what, error);
    if (st) return st;
    /* pre-tokenizer */
    e = steps_of(plm_json_get(j, "pre_tokenizer"), "pretokenizers", &n);
    for (int i = 0; i < n && e; i++, e = e->next) {
        const char *ty = plm_json_str(plm_json_get(e, "type"));
        if (h->n_pre == HF_MAX_STEPS) return plm_errorf(error, PLM_ERR_FORMAT, "%s: too many pre-tokenizers", what);
        hf_step *s = &h->pre[h->n_pre++];
        if (ty && strcmp(ty, "Metaspace") == 0) {
            const char *rep = plm_json_str(plm_json_get(e, "replacement"));
            s->type = HP_META, s->scheme = scheme_of(e), s->split = jbool(e, "split", 1);
            if (s->scheme < 0) return plm_errorf(error, PLM_ERR_FORMAT, "%s: unsupported Metaspace prepend_scheme", what);
            if (!rep) rep = WS;
            s->la = strlen(rep);
            if (!(s->a = dup_n(rep, s->la))) return oom(error, what);
        } else if (ty && strcmp(ty, "Split") == 0) {
            const char *b = plm_json_str(plm_json_get(e, "behavior"));
            static const char *names[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
            s->type = HP_SPLIT, s->behavior = -1, s->invert = jbool(e, "invert", 0);
            for (int k = 0; k < 5 && b; k++)
                if (strcmp(b, names[k]) == 0) s->behavior = k;
            if (s->behavior < 0)
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: unsupported Split pre-tokenizer behaviour '%s'", what,
                                  b ? b : "?");
            char *re;
            int st = json_pattern(plm_json_get(e, "pattern"), what, error, &s->a, &s->la, &re);
            if (st) return st;
            if (!re && !(re = escape_literal(s->a))) return oom(error, what);
            st = compile_step_regex(s, re, what, error);
            free(re);
            if (st) return st;
        } else if (ty && strcmp(ty, "WhitespaceSplit") == 0) {
            s->type = HP_SPLIT, s->behavior = SB_REMOVED;
            if (compile_step_regex(s, "[\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f"
                                   "\\u205f\\u3000]", what, error))
                return PLM_ERR_FORMAT;
        } else if (ty && strcmp(ty, "Digits") == 0) {
            s->type = HP_SPLIT, s->behavior = jbool(e, "individual_digits", 0) ? SB_ISOLATED : SB_CONTIG;
            if (compile_step_regex(s, "\\p{N}", what, error)) return PLM_ERR_FORMAT;
        } else {
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: unsupported pre-tokenizer '%s' in a SentencePiece-style "
                              "tokenizer.json (Metaspace, Split, WhitespaceSplit and Digits are)", what, ty ? ty : "?");
        }
    }
    /* decoder */
    e = steps_of(plm_json_get(j, "decoder"), "decoders", &n);
    for (int i = 0; i < n && e; i++, e = e->next) {
        const char *ty = plm_json_str(plm_json_get(e, "type"));
        if (h->n_dec == HF_MAX_STEPS) return plm_errorf(error, PLM_ERR_FORMAT, "%s: too many decoders", what);
        hf_step *s = &h->dec[h->n_dec++];
        if (ty && strcmp(ty, "Replace") == 0) {
            int st = string_replace(e, "decoder", what, s, error);
            if (st) return st;
            s->type = HD_REPLACE;
        } else if (ty && strcmp(ty, "ByteFallback") == 0) {
            s->type = HD_BYTEFALLBACK;
        } else if (ty && strcmp(ty, "Fuse") == 0) {
            s->type = HD_FUSE;
        } else if (ty && strcmp(ty, "Strip") == 0) {
            const char *c = plm_json_str(plm_json_get(e, "content"));
            const plm_json *a = plm_json_get(e, "start"), *b = plm_json_get(e, "stop");
            s->type = HD_STRIP, s->start = a && a->type == PLM_JNUM ? (int)a->num : 0;
            s->stop = b && b->type == PLM_JNUM ? (int)b->num : 0;
            if (!c) c = " ";
            s->la = strlen(c);
            if (!(s->a = dup_n(c, s->la))) return oom(error, what);
        } else if (ty && strcmp(ty, "Metaspace") == 0) {
            const char *rep = plm_json_str(plm_json_get(e, "replacement"));
            s->type = HD_META, s->scheme = scheme_of(e);
            if (!rep) rep = WS;
            s->la = strlen(rep);
            if (!(s->a = dup_n(rep, s->la))) return oom(error, what);
        } else {
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: unsupported decoder '%s' (Replace, ByteFallback, Fuse, Strip "
                              "and Metaspace are)", what, ty ? ty : "?");
        }
    }
    return PLM_OK;
}


/* the normalizer over s[0..n) into o (o->n = 0 first) */
static int hf_normalize(const struct hf_spec *h, const char *s, size_t n, strbuf *o) {
    strbuf a = {0}, b = {0};
    o->n = 0;
    if (sb_add(&a, s, n) && n) return -1;
    for (int i = 0; i < h->n_norm; i++) {
        const hf_step *st = &h->norm[i];
        b.n = 0;
        if (st->type == HN_PREPEND) {
            if (a.n && (sb_add(&b, st->a, st->la) || sb_add(&b, a.p, a.n))) goto fail;
        } else if (st->type == HN_UNICODE) {
            uint8_t *u;
            size_t un;
            if (plm_uc_normalize(st->scheme, (const uint8_t *)a.p, a.n, &u, &un)) goto fail;
            const int rc = un ? sb_add(&b, u, un) : 0;
            free(u);
            if (rc) goto fail;
        } else {
            for (size_t k = 0; k < a.n;) {
                if (a.n - k >= st->la && memcmp(a.p + k, st->a, st->la) == 0) {
                    if (st->lb && sb_add(&b, st->b, st->lb)) goto fail;
                    k += st->la;
                } else {
                    if (sb_add(&b, a.p + k, 1)) goto fail;
                    k++;
                }
            }
        }
        const strbuf x = a;
        a = b, b = x;
    }
    free(b.p);
    if (a.n && sb_add(o, a.p, a.n)) {
        free(a.p);
        return -1;
    }
    free(a.p);
    return 0;
fail:
    free(a.p), free(b.p);
    return -1;
}

static int hf_build(plm_tokenizer *t, const plm_json *j, const plm_json *model, const char *what, char **error) {
    hf_spec *h = (hf_spec *)calloc(1, sizeof *h);
    if (!h) return oom(error, what);
    t->hf = h;
    h->unk = -1;
    const char *type = plm_json_str(plm_json_get(model, "type"));
    h->unigram = strcmp(type, "Unigram") == 0;
    const plm_json *vocab = plm_json_get(model, "vocab"), *added = plm_json_get(j, "added_tokens");
    if (!vocab || vocab->type != (h->unigram ? PLM_JARR : PLM_JOBJ))
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json %s model without a vocab", what, type);
    int st = hf_parse_steps(h, j, what, error);
    if (st) return st;
    if (!h->unigram) {
        static const char *refused[] = {"continuing_subword_prefix", "end_of_word_suffix"};
        for (int k = 0; k < 2; k++) {
            const char *v = plm_json_str(plm_json_get(model, refused[k]));
            if (v && *v) return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json BPE %s is not supported", what,
                                           refused[k]);
        }
        const plm_json *d = plm_json_get(model, "dropout");
        if (d && d->type == PLM_JNUM && d->num != 0)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json BPE dropout=%g is not supported (only "
                              "dropout=null is)", what, d->num);
    }
    /* ids */
    int64_t max_id = h->unigram ? vocab->n - 1 : -1;
    if (!h->unigram)
        for (const plm_json *e = vocab->child; e; e = e->next)
            if (e->type == PLM_JNUM && e->num > max_id) max_id = (int64_t)e->num;
    const int64_t n_model = max_id + 1;
    for (const plm_json *e = added && added->type == PLM_JARR ? added->child : NULL; e; e = e->next) {
        const plm_json *id = plm_json_get(e, "id");
        if (id && id->type == PLM_JNUM && id->num > max_id) max_id = (int64_t)id->num;
    }
    if (max_id > (1 << 24)) return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json has token id %lld", what,
                                              (long long)max_id);
    if (alloc_pieces(t, max_id + 1) || !(h->aflags = (uint8_t *)calloc((size_t)max_id + 2, 1)) ||
        plm_strmap_init(&h->raw, 16) || plm_strmap_init(&h->normed, 16))
        return oom(error, what);
    if (h->unigram) {
        h->uscore = (double *)malloc((size_t)(n_model > 0 ? n_model : 1) * sizeof(double));
        if (!h->uscore) return oom(error, what);
        h->min_score = INFINITY;
        int64_t i = 0;
        for (const plm_json *e = vocab->child; e; e = e->next, i++) {
            if (e->type != PLM_JARR || e->n != 2 || e->child->type != PLM_JSTR || e->child->next->type != PLM_JNUM)
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json Unigram vocab entry %lld is not "
                                  "[piece, score]", what, (long long)i);
            if (set_piece(t, i, e->child->str, e->child->len)) return oom(error, what);
            h->uscore[i] = e->child->next->num;
            if (h->uscore[i] < h->min_score) h->min_score = h->uscore[i];
            if (e->child->len > h->max_len) h->max_len = (uint32_t)e->child->len;
            if (plm_strmap_put(&t->index, t->piece[i], e->child->len, i, 1)) return oom(error, what);
        }
        if (!n_model) h->min_score = 0;
        const plm_json *u = plm_json_get(model, "unk_id");
        if (u && u->type == PLM_JNUM) {
            if (u->num < 0 || u->num >= (double)n_model)
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json Unigram unk_id is outside the vocabulary",
                                  what);
            h->unk = (int32_t)u->num;
        }
        h->fuse_unk = 1;
    } else {
        for (const plm_json *e = vocab->child; e; e = e->next) {
            if (e->type != PLM_JNUM || e->num < 0 || e->num != floor(e->num))
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json vocab entry has a bad id", what);
            const int64_t id = (int64_t)e->num;
            if (!t->piece[id] && set_piece(t, id, e->key, e->key_len)) return oom(error, what);
            if (plm_strmap_put(&t->index, t->piece[id], t->piece_len[id], id, 1)) return oom(error, what);
        }
        const plm_json *merges = plm_json_get(model, "merges");
        const int64_t nm = merges && merges->type == PLM_JARR ? merges->n : 0;
        h->merge_key = (uint32_t *)malloc((size_t)(nm > 0 ? nm : 1) * 2 * sizeof(uint32_t));
        if (!h->merge_key || plm_strmap_init(&t->merges, (uint64_t)nm)) return oom(error, what);
        int64_t rank = 0;
        for (const plm_json *m = nm ? merges->child : NULL; m; m = m->next, rank++) {
            const char *a, *b;
            size_t la, lb;
            if (m->type == PLM_JSTR) {
                const char *sp = (const char *)memchr(m->str, ' ', m->len);
                if (!sp) return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json merge %lld is not a pair", what,
                                           (long long)rank);
                a = m->str, la = (size_t)(sp - m->str), b = sp + 1, lb = m->len - la - 1;
            } else if (m->type == PLM_JARR && m->n == 2 && m->child->type == PLM_JSTR &&
                       m->child->next->type == PLM_JSTR) {
                a = m->child->str, la = m->child->len, b = m->child->next->str, lb = m->child->next->len;
            } else {
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json merge %lld is not a pair", what,
                                  (long long)rank);
            }
            char *ab = (char *)malloc(la + lb + 1);
            if (!ab) return oom(error, what);
            memcpy(ab, a, la), memcpy(ab + la, b, lb);
            const int64_t ia = plm_strmap_get(&t->index, a, la, -1), ib = plm_strmap_get(&t->index, b, lb, -1);
            const int64_t iab = plm_strmap_get(&t->index, ab, la + lb, -1);
            free(ab);
            if (ia < 0 || ib < 0 || iab < 0)
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json merge %lld names a token outside the "
                                  "vocabulary", what, (long long)rank);
            uint32_t *k = h->merge_key + 2 * rank;
            k[0] = (uint32_t)ia, k[1] = (uint32_t)ib;
            if (plm_strmap_put(&t->merges, (const char *)k, 8, rank << 32 | iab, 1)) return oom(error, what);
        }
        h->byte_fallback = jbool(model, "byte_fallback", 0);
        h->fuse_unk = jbool(model, "fuse_unk", 0);
        h->ignore_merges = jbool(model, "ignore_merges", 0);
        const char *unk = plm_json_str(plm_json_get(model, "unk_token"));
        if (unk) {
            h->unk = (int32_t)plm_strmap_get(&t->index, unk, strlen(unk), -1);
            if (h->unk < 0)
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json BPE unk_token '%s' is not in the "
                                  "vocabulary", what, unk);
        }
    }
    if (h->unigram) h->byte_fallback = jbool(model, "byte_fallback", 0);
    for (int b = 0; b < 256; b++) {
        char k[8];
        snprintf(k, sizeof k, "<0x%02X>", b);
        t->byte_piece[b] = (int32_t)plm_strmap_get(&t->index, k, 6, -1);
    }
    return PLM_OK;
}

/* a copy of s the spec owns, for a map key */
static char *keep_key(hf_spec *h, const char *s, size_t n) {
    char **g = (char **)realloc(h->norm_keys, (size_t)(h->n_norm_keys + 1) * sizeof(char *));
    if (!g) return NULL;
    h->norm_keys = g;
    return h->norm_keys[h->n_norm_keys++] = dup_n(s, n);
}

/* One added token (tokenizer.json's or an extra special one) into the maps. */
static int hf_add_token(plm_tokenizer *t, int64_t id, const char *s, size_t len, int special, int flags,
                        const char *what, char **error) {
    hf_spec *h = t->hf;
    if (id < 0 || id >= t->n) return plm_errorf(error, PLM_ERR_FORMAT, "%s: added token id %lld", what, (long long)id);
    const int in_model = t->piece[id] && !t->is_added[id];
    if (!in_model || t->piece_len[id] != len || memcmp(t->piece[id], s, len) != 0)
        if (set_piece(t, id, s, len)) return oom(error, what);
    t->is_added[id] = special ? 2 : 1;
    h->aflags[id] = (uint8_t)flags;
    if (!len) return PLM_OK;
    char *key = keep_key(h, s, len);
    if (!key || plm_strmap_put(&t->added, key, len, id, 1)) return oom(error, what);
    if (!(flags & AF_NORMALIZED)) {
        if (plm_strmap_put(&h->raw, key, len, id, 1)) return oom(error, what);
        if (len > h->max_raw) h->max_raw = (uint32_t)len;
        return PLM_OK;
    }
    strbuf nb = {0};
    if (hf_normalize(h, s, len, &nb)) return oom(error, what);
    char *nkey = keep_key(h, nb.p ? nb.p : "", nb.n);
    free(nb.p);
    nb.p = nkey;
    if (!nkey || (nb.n && plm_strmap_put(&h->normed, nkey, nb.n, id, 0))) return oom(error, what);
    if (nb.n > h->max_normed) h->max_normed = (uint32_t)nb.n;
    /* a normalized added token reads back as its normalized text */
    return nb.n != len || memcmp(nb.p, s, len) != 0 ? set_piece(t, id, nb.p ? nb.p : "", nb.n) ? oom(error, what)
                                                                                                 : PLM_OK
                                                    : PLM_OK;
}

/* The post-processor's ids before the sequence (BOS), as HFTokenizer._template. */
static int hf_template(plm_tokenizer *t, const plm_json *post, int64_t *prefix, int *n_prefix, const char *what,
                       char **error) {
    if (!post || post->type == PLM_JNULL) return PLM_OK;
    const char *ty = plm_json_str(plm_json_get(post, "type"));
    if (ty && strcmp(ty, "Sequence") == 0) {
        const plm_json *ps = plm_json_get(post, "processors");
        for (const plm_json *p = ps && ps->type == PLM_JARR ? ps->child : NULL; p; p = p->next)
            if (hf_template(t, p, prefix, n_prefix, what, error)) return PLM_ERR_FORMAT;
        return PLM_OK;
    }
    if (ty && strcmp(ty, "ByteLevel") == 0) return PLM_OK;
    if (!ty || strcmp(ty, "TemplateProcessing") != 0)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: unsupported post_processor '%s' (TemplateProcessing is)", what,
                          ty ? ty : "?");
    const plm_json *single = plm_json_get(post, "single"), *specials = plm_json_get(post, "special_tokens");
    int seen = 0;
    for (const plm_json *it = single && single->type == PLM_JARR ? single->child : NULL; it; it = it->next) {
        if (plm_json_get(it, "Sequence")) {
            seen = 1;
            continue;
        }
        const char *name = plm_json_str(plm_json_get(plm_json_get(it, "SpecialToken"), "id"));
        const plm_json *ids = name ? plm_json_get(plm_json_get(specials, name), "ids") : NULL;
        if (!ids || ids->type != PLM_JARR)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json post_processor names special token '%s' "
                              "without ids", what, name ? name : "?");
        if (seen)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json post_processor appends '%s' after the text; "
                              "a causal LM's prompt cannot end in it", what, name);
        for (const plm_json *x = ids->child; x; x = x->next) {
            if (*n_prefix >= 1)
                return plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json post_processor starts a sequence with "
                                  "several tokens; only a single BOS is supported", what);
            prefix[(*n_prefix)++] = (int64_t)x->num;
        }
    }
    return PLM_OK;
}

/* extra_special: transformers 5's extra_special_tokens (a JSON array of strings or {content}), or NULL. */
static int hf_from_json(plm_tokenizer **out, plm_json *j, const plm_json *extra, int64_t *template_bos,
                        const char *what, char **error) {
    plm_tokenizer *t = new_tok(TK_HF);
    int st = t ? PLM_OK : oom(error, what);
    int64_t n_extra_new = 0;
    for (const plm_json *e = extra && extra->type == PLM_JARR ? extra->child : NULL; e; e = e->next) n_extra_new++;
    const plm_json *model = plm_json_get(j, "model");
    if (!st) st = hf_build(t, j, model, what, error);
    /* room for extra special tokens new to the vocabulary */
    if (!st && n_extra_new) {
        const int64_t n0 = t->n;
        char **p = (char **)realloc(t->piece, (size_t)(n0 + n_extra_new) * sizeof(char *));
        if (p) t->piece = p;
        uint32_t *pl = (uint32_t *)realloc(t->piece_len, (size_t)(n0 + n_extra_new) * sizeof(uint32_t));
        if (pl) t->piece_len = pl;
        uint8_t *ia = (uint8_t *)realloc(t->is_added, (size_t)(n0 + n_extra_new));
        if (ia) t->is_added = ia;
        uint8_t *af = (uint8_t *)realloc(t->hf->aflags, (size_t)(n0 + n_extra_new));
        if (af) t->hf->aflags = af;
        float *sc = (float *)realloc(t->score, (size_t)(n0 + n_extra_new) * sizeof(float));
        if (sc) t->score = sc;
        int32_t *ty = (int32_t *)realloc(t->type, (size_t)(n0 + n_extra_new) * sizeof(int32_t));
        if (ty) t->type = ty;
        if (!p || !pl || !ia || !af || !sc || !ty) st = oom(error, what);
        for (int64_t i = n0; !st && i < n0 + n_extra_new; i++)
            t->piece[i] = NULL, t->piece_len[i] = 0, t->is_added[i] = 0, t->hf->aflags[i] = 0, t->score[i] = 0,
            t->type[i] = 0;
    }
    const plm_json *added = plm_json_get(j, "added_tokens");
    for (const plm_json *e = !st && added && added->type == PLM_JARR ? added->child : NULL; e && !st; e = e->next) {
        const plm_json *id = plm_json_get(e, "id"), *content = plm_json_get(e, "content");
        if (!id || id->type != PLM_JNUM || id->num < 0 || !content || content->type != PLM_JSTR) {
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer.json added_tokens entry without id or content", what);
            break;
        }
        const int special = jbool(e, "special", 0);
        const int flags = (jbool(e, "lstrip", 0) ? AF_LSTRIP : 0) | (jbool(e, "rstrip", 0) ? AF_RSTRIP : 0) |
                          (jbool(e, "single_word", 0) ? AF_SINGLE : 0) | (jbool(e, "normalized", !special) ? AF_NORMALIZED : 0);
        st = hf_add_token(t, (int64_t)id->num, content->str, content->len, special, flags, what, error);
    }
    int64_t n_used = 0;
    for (int64_t i = 0; !st && i < t->n; i++)
        if (t->piece[i]) n_used = i + 1;
    for (const plm_json *e = !st && extra && extra->type == PLM_JARR ? extra->child : NULL; e && !st; e = e->next) {
        const plm_json *c = e->type == PLM_JSTR ? e : plm_json_get(e, "content");
        if (!c || c->type != PLM_JSTR) {
            st = plm_errorf(error, PLM_ERR_FORMAT, "%s: tokenizer_config.json extra_special_tokens entry is not a "
                            "string", what);
            break;
        }
        if (!c->len || plm_strmap_get(&t->added, c->str, c->len, -1) >= 0) continue;
        int64_t id = plm_strmap_get(&t->index, c->str, c->len, -1);
        if (id < 0) id = n_used++;
        t->n = t->n > id + 1 ? t->n : id + 1;
        st = hf_add_token(t, id, c->str, c->len, 1, 0, what, error);
    }
    int64_t prefix[1];
    int n_prefix = 0;
    if (!st) st = hf_template(t, plm_json_get(j, "post_processor"), prefix, &n_prefix, what, error);
    if (!st) {
        *template_bos = n_prefix ? prefix[0] : -1;
        t->vocab_size = 0;
        for (int64_t i = 0; i < t->n; i++)
            if (t->piece[i]) t->vocab_size = i + 1;
    }
    plm_json_free(j);
    if (st) {
        plm_tokenizer_free(t);
        return st;
    }
    *out = t;
    return PLM_OK;
}

/* ---- tokenizer.json encode ---------------------------------------------------- */


/* The longest added token of map (max bytes) at s[i..n); its id and length, or -1. */
static int64_t added_at(const plm_strmap *map, uint32_t max, const char *s, size_t i, size_t n, size_t *len) {
    for (size_t l = max < n - i ? max : n - i; l > 0; l--) {
        const int64_t id = plm_strmap_get(map, s + i, l, -1);
        if (id >= 0) {
            *len = l;
            return id;
        }
    }
    return -1;
}

typedef struct {
    size_t a, b;
    int64_t id; /* -1: text */
} hseg;

/* AddedVocabulary::find_matches over s[0..n): segments covering it */
static int find_added(const plm_tokenizer *t, const plm_strmap *map, uint32_t max, const char *s, size_t n,
                      hseg **out, int64_t *nout) {
    int64_t cap = 8, k = 0;
    hseg *g = (hseg *)malloc((size_t)cap * sizeof(hseg));
    if (!g) return -1;
    size_t start_offset = 0;
    for (size_t i = 0; map->n && i < n;) {
        size_t len;
        const int64_t id = added_at(map, max, s, i, n, &len);
        if (id < 0) {
            size_t cl;
            plm_utf8_next((const uint8_t *)s + i, n - i, &cl);
            i += cl;
            continue;
        }
        size_t start = i, stop = i + len;
        i = stop;
        const int fl = t->hf->aflags[id];
        if (fl & AF_SINGLE) {
            size_t cl;
            if ((start > 0 && word_char(char_before(s, start))) ||
                (stop < n && word_char(plm_utf8_next((const uint8_t *)s + stop, n - stop, &cl))))
                continue;
        }
        if (fl & AF_LSTRIP) {
            size_t k2 = start;
            while (k2 > 0) {
                size_t b = k2;
                while (b > 0 && ((unsigned char)s[b - 1] & 0xC0) == 0x80) b--;
                if (b > 0) b--;
                size_t cl;
                if (!white_space(plm_utf8_next((const uint8_t *)s + b, k2 - b, &cl))) break;
                k2 = b;
            }
            start = k2 > start_offset ? k2 : start_offset;
        }
        if (fl & AF_RSTRIP) {
            while (stop < n) {
                size_t cl;
                if (!white_space(plm_utf8_next((const uint8_t *)s + stop, n - stop, &cl))) break;
                stop += cl;
            }
            i = stop;
        }
        if (k + 2 > cap) {
            cap *= 2;
            hseg *x = (hseg *)realloc(g, (size_t)cap * sizeof(hseg));
            if (!x) {
                free(g);
                return -1;
            }
            g = x;
        }
        if (start_offset < start) g[k++] = (hseg){start_offset, start, -1};
        g[k++] = (hseg){start, stop, id};
        start_offset = stop;
    }
    if (k + 1 > cap) {
        hseg *x = (hseg *)realloc(g, (size_t)(cap + 1) * sizeof(hseg));
        if (!x) {
            free(g);
            return -1;
        }
        g = x;
    }
    if (start_offset != n || k == 0) g[k++] = (hseg){start_offset, n, -1};
    *out = g, *nout = k;
    return 0;
}

/* a list of byte ranges of one string, with whether each starts the input */
typedef struct {
    size_t a, b;
    int first;
} piece;

typedef struct {
    piece *p;
    int64_t n, cap;
} pieces;

static int pc_add(pieces *v, size_t a, size_t b, int first) {
    if (b <= a) return 0;
    if (v->n == v->cap) {
        const int64_t cap = v->cap ? 2 * v->cap : 16;
        piece *x = (piece *)realloc(v->p, (size_t)cap * sizeof(piece));
        if (!x) return -1;
        v->p = x, v->cap = cap;
    }
    v->p[v->n++] = (piece){a, b, first};
    return 0;
}

/* NormalizedString::split of s[a..b) by the step's regex into out */
static int split_piece(const hf_step *st, const char *s, piece in, pieces *out, char **error) {
    /* code points of the piece, and their byte offsets */
    const size_t n = in.b - in.a;
    uint32_t *cp = (uint32_t *)malloc((n + 1) * sizeof(uint32_t));
    size_t *off = (size_t *)malloc((n + 2) * sizeof(size_t));
    size_t (*mk)[3] = (size_t(*)[3])malloc((2 * n + 2) * sizeof *mk);
    int rc = 0;
    if (!cp || !off || !mk) {
        rc = -1;
        goto done;
    }
    int64_t nc = 0, nm = 0;
    for (size_t i = 0; i < n;) {
        size_t k;
        off[nc] = in.a + i;
        cp[nc++] = plm_utf8_next((const uint8_t *)s + in.a + i, n - i, &k);
        i += k;
    }
    off[nc] = in.b;
    int64_t prev = 0, ms, me;
    for (int64_t from = 0; from <= nc;) {
        const int found = plm_regex_search(st->re, cp, nc, from, &ms, &me);
        if (found < 0) {
            rc = plm_errorf(error, PLM_ERR_FORMAT, "a pre-tokenizer pattern backtracked past its bound on this text");
            goto done;
        }
        if (!found) break;
        if (ms != prev) mk[nm][0] = (size_t)prev, mk[nm][1] = (size_t)ms, mk[nm++][2] = 0;
        mk[nm][0] = (size_t)ms, mk[nm][1] = (size_t)me, mk[nm++][2] = 1;
        prev = me;
        from = me > ms ? me : ms + 1;
    }
    if (prev != nc) mk[nm][0] = (size_t)prev, mk[nm][1] = (size_t)nc, mk[nm++][2] = 0;
    if (st->invert)
        for (int64_t i = 0; i < nm; i++) mk[i][2] = !mk[i][2];
    /* merged into ranges (over code points), as _split_spans */
    size_t (*r)[2] = (size_t(*)[2])malloc((size_t)(nm + 1) * sizeof *r);
    if (!r) {
        rc = -1;
        goto done;
    }
    int64_t nr = 0;
    int prev_m = 0;
    if (st->behavior == SB_NEXT) {
        for (int64_t i = nm - 1; i >= 0; i--) {
            if (mk[i][2] && !prev_m && nr) r[nr - 1][0] = mk[i][0];
            else r[nr][0] = mk[i][0], r[nr++][1] = mk[i][1];
            prev_m = (int)mk[i][2];
        }
        for (int64_t i = 0; i < nr / 2; i++) {
            size_t x0 = r[i][0], x1 = r[i][1];
            r[i][0] = r[nr - 1 - i][0], r[i][1] = r[nr - 1 - i][1];
            r[nr - 1 - i][0] = x0, r[nr - 1 - i][1] = x1;
        }
    } else {
        for (int64_t i = 0; i < nm; i++) {
            const int m = (int)mk[i][2];
            if (st->behavior == SB_REMOVED && m) continue;
            if (st->behavior == SB_CONTIG && m == prev_m && nr) r[nr - 1][1] = mk[i][1];
            else if (st->behavior == SB_PREV && m && !prev_m && nr) r[nr - 1][1] = mk[i][1];
            else r[nr][0] = mk[i][0], r[nr++][1] = mk[i][1];
            prev_m = m;
        }
    }
    for (int64_t i = 0; i < nr && !rc; i++)
        if (pc_add(out, off[r[i][0]], off[r[i][1]], in.first && r[i][0] == 0)) rc = -1;
    free(r);
done:
    free(cp), free(off), free(mk);
    return rc;
}

static int hf_bpe_word(const plm_tokenizer *t, const char *w, size_t n, idbuf *out) {
    const hf_spec *h = t->hf;
    if (h->ignore_merges) {
        const int64_t id = plm_strmap_get(&t->index, w, n, -1);
        if (id >= 0) {
            put(out, (int32_t)id);
            return 0;
        }
    }
    int32_t *sym = (int32_t *)malloc((4 * n + 2) * sizeof(int32_t));
    if (!sym) return -1;
    int64_t ns = 0;
    int32_t unk = -1;
    for (size_t i = 0; i < n;) {
        size_t k;
        plm_utf8_next((const uint8_t *)w + i, n - i, &k);
        const int64_t id = plm_strmap_get(&t->index, w + i, k, -1);
        if (id >= 0) {
            if (unk >= 0) sym[ns++] = unk, unk = -1;
            sym[ns++] = (int32_t)id;
        } else {
            int ok = h->byte_fallback;
            for (size_t j = 0; ok && j < k; j++) ok = t->byte_piece[(uint8_t)w[i + j]] >= 0;
            if (ok) {
                for (size_t j = 0; j < k; j++) sym[ns++] = t->byte_piece[(uint8_t)w[i + j]];
            } else if (h->unk >= 0) {
                if (unk >= 0 && !h->fuse_unk) sym[ns++] = unk;
                unk = h->unk;
            }
        }
        i += k;
    }
    if (unk >= 0) sym[ns++] = unk;
    if (ns > 1 && t->merges.n) {
        /* Word::merge_all: a min-heap of (rank, position, new id); stale entries skipped */
        int64_t *prev = (int64_t *)malloc((size_t)ns * sizeof(int64_t)), *next = (int64_t *)malloc((size_t)ns * sizeof(int64_t));
        uint8_t *alive = (uint8_t *)malloc((size_t)ns);
        int64_t cap = 2 * ns + 8, nh = 0;
        int64_t (*hp)[3] = (int64_t(*)[3])malloc((size_t)cap * sizeof *hp);
        if (!prev || !next || !alive || !hp) {
            free(prev), free(next), free(alive), free(hp), free(sym);
            return -1;
        }
#define HLESS(x, y) (hp[x][0] < hp[y][0] || (hp[x][0] == hp[y][0] && hp[x][1] < hp[y][1]))
#define HSWAP(x, y) do { int64_t t0 = hp[x][0], t1 = hp[x][1], t2 = hp[x][2]; hp[x][0] = hp[y][0], hp[x][1] = hp[y][1], \
        hp[x][2] = hp[y][2]; hp[y][0] = t0, hp[y][1] = t1, hp[y][2] = t2; } while (0)
#define HPUSH(r_, p_, id_) do { if (nh == cap) { cap *= 2; int64_t (*g_)[3] = (int64_t(*)[3])realloc(hp, (size_t)cap * sizeof *hp); \
        if (!g_) { free(prev), free(next), free(alive), free(hp), free(sym); return -1; } hp = g_; } \
        hp[nh][0] = (r_), hp[nh][1] = (p_), hp[nh][2] = (id_); for (int64_t c_ = nh++; c_ > 0 && HLESS(c_, (c_ - 1) / 2); c_ = (c_ - 1) / 2) \
        HSWAP(c_, (c_ - 1) / 2); } while (0)
        for (int64_t i = 0; i < ns; i++) prev[i] = i - 1, next[i] = i + 1, alive[i] = 1;
        uint32_t key[2];
        for (int64_t i = 0; i + 1 < ns; i++) {
            key[0] = (uint32_t)sym[i], key[1] = (uint32_t)sym[i + 1];
            const int64_t m = plm_strmap_get(&t->merges, (const char *)key, 8, -1);
            if (m >= 0) HPUSH(m >> 32, i, m & 0xFFFFFFFF);
        }
        while (nh) {
            const int64_t rank = hp[0][0], pos = hp[0][1], nid = hp[0][2];
            (void)rank;
            nh--;
            if (nh) {
                hp[0][0] = hp[nh][0], hp[0][1] = hp[nh][1], hp[0][2] = hp[nh][2];
                for (int64_t c = 0;;) {
                    int64_t l = 2 * c + 1, r = l + 1, m = c;
                    if (l < nh && HLESS(l, m)) m = l;
                    if (r < nh && HLESS(r, m)) m = r;
                    if (m == c) break;
                    HSWAP(c, m);
                    c = m;
                }
            }
            if (!alive[pos] || next[pos] >= ns) continue;
            const int64_t rt = next[pos];
            key[0] = (uint32_t)sym[pos], key[1] = (uint32_t)sym[rt];
            const int64_t m = plm_strmap_get(&t->merges, (const char *)key, 8, -1);
            if (m < 0 || (m & 0xFFFFFFFF) != nid) continue;
            sym[pos] = (int32_t)nid;
            alive[rt] = 0;
            next[pos] = next[rt];
            if (next[rt] < ns) prev[next[rt]] = pos;
            if (prev[pos] >= 0) {
                key[0] = (uint32_t)sym[prev[pos]], key[1] = (uint32_t)nid;
                const int64_t m2 = plm_strmap_get(&t->merges, (const char *)key, 8, -1);
                if (m2 >= 0) HPUSH(m2 >> 32, prev[pos], m2 & 0xFFFFFFFF);
            }
            if (next[pos] < ns) {
                key[0] = (uint32_t)nid, key[1] = (uint32_t)sym[next[pos]];
                const int64_t m2 = plm_strmap_get(&t->merges, (const char *)key, 8, -1);
                if (m2 >= 0) HPUSH(m2 >> 32, pos, m2 & 0xFFFFFFFF);
            }
        }
#undef HLESS
#undef HSWAP
#undef HPUSH
        for (int64_t i = 0; i < ns; i++)
            if (alive[i]) put(out, sym[i]);
        free(prev), free(next), free(alive), free(hp);
    } else {
        for (int64_t i = 0; i < ns; i++) put(out, sym[i]);
    }
    free(sym);
    return 0;
}

static void hf_emit_string(const plm_tokenizer *t, const char *s, size_t n, idbuf *out) {
    const int64_t id = plm_strmap_get(&t->index, s, n, -1);
    if (id >= 0) {
        put(out, (int32_t)id);
        return;
    }
    int ok = t->hf->byte_fallback;
    for (size_t j = 0; ok && j < n; j++) ok = t->byte_piece[(uint8_t)s[j]] >= 0;
    if (ok)
        for (size_t j = 0; j < n; j++) put(out, t->byte_piece[(uint8_t)s[j]]);
    else
        put(out, t->hf->unk);
}

static int hf_unigram_word(const plm_tokenizer *t, const char *s, size_t n, idbuf *out, char **error) {
    const hf_spec *h = t->hf;
    double *best = (double *)malloc((n + 1) * sizeof(double));
    int64_t *from = (int64_t *)malloc((n + 1) * sizeof(int64_t)), *tok = (int64_t *)malloc((n + 1) * sizeof(int64_t));
    size_t (*seg)[2] = (size_t(*)[2])malloc((n + 1) * sizeof *seg);
    if (!best || !from || !tok || !seg) {
        free(best), free(from), free(tok), free(seg);
        return plm_errorf(error, PLM_ERR_NOMEM, "out of memory tokenizing");
    }
    for (size_t i = 0; i <= n; i++) from[i] = -1, best[i] = 0;
    from[0] = 0;
    const double unk_score = h->min_score - 10.0;
    for (size_t i = 0; i < n;) {
        size_t k1;
        plm_utf8_next((const uint8_t *)s + i, n - i, &k1);
        const double base = best[i];
        int single = 0;
        for (size_t e = i; e < n && e - i < h->max_len;) {
            size_t k;
            plm_utf8_next((const uint8_t *)s + e, n - e, &k);
            e += k;
            if (e - i > h->max_len) break;
            const int64_t id = plm_strmap_get(&t->index, s + i, e - i, -1);
            if (id < 0) continue;
            const double cand = h->uscore[id] + base;
            if (from[e] < 0 || cand > best[e]) best[e] = cand, from[e] = (int64_t)i, tok[e] = id;
            if (e == i + k1) single = 1;
        }
        if (!single) {
            if (h->unk < 0) {
                free(best), free(from), free(tok), free(seg);
                return plm_errorf(error, PLM_ERR_FORMAT, "a Unigram tokenizer without unk_id cannot encode this text");
            }
            const double cand = unk_score + base;
            if (from[i + k1] < 0 || cand > best[i + k1]) best[i + k1] = cand, from[i + k1] = (int64_t)i, tok[i + k1] = h->unk;
        }
        i += k1;
    }
    /* back from the end; unknown runs fused */
    int64_t ns = 0;
    size_t fuse_a = 0, fuse_b = 0;
    int fusing = 0;
    for (size_t e = n; e > 0;) {
        const size_t b = (size_t)from[e];
        if (tok[e] == h->unk && h->fuse_unk) {
            if (!fusing) fuse_b = e, fusing = 1;
            fuse_a = b;
        } else {
            if (fusing) seg[ns][0] = fuse_a, seg[ns++][1] = fuse_b, fusing = 0;
            seg[ns][0] = b, seg[ns++][1] = e;
        }
        e = b;
    }
    if (fusing) seg[ns][0] = fuse_a, seg[ns++][1] = fuse_b;
    for (int64_t i = ns - 1; i >= 0; i--) hf_emit_string(t, s + seg[i][0], seg[i][1] - seg[i][0], out);
    free(best), free(from), free(tok), free(seg);
    return PLM_OK;
}

/* the pre-tokenizer over the normalized text s[0..n) (first: it starts the input), then the model */
static int hf_words(const plm_tokenizer *t, const char *s0, size_t n0, int first, idbuf *out, char **error) {
    const hf_spec *h = t->hf;
    strbuf cur = {0}, nxt = {0};
    pieces a = {0}, b = {0};
    int st = PLM_OK;
    if (n0 && sb_add(&cur, s0, n0)) goto nomem;
    if (pc_add(&a, 0, n0, first)) goto nomem;
    for (int k = 0; k < h->n_pre; k++) {
        const hf_step *ps = &h->pre[k];
        b.n = 0;
        if (ps->type == HP_META) {
            /* each piece rewritten into nxt: spaces replaced, the replacement prepended, split before each one */
            nxt.n = 0;
            for (int64_t q = 0; q < a.n; q++) {
                const size_t base = nxt.n;
                const piece p = a.p[q];
                strbuf tmp = {0};
                for (size_t i = p.a; i < p.b; i++)
                    if (cur.p[i] == ' ' ? sb_add(&tmp, ps->a, ps->la) : sb_add(&tmp, cur.p + i, 1)) {
                        free(tmp.p);
                        goto nomem;
                    }
                const int has = tmp.n >= ps->la && memcmp(tmp.p, ps->a, ps->la) == 0;
                if ((ps->scheme == 0 || (ps->scheme == 1 && p.first)) && !has && sb_add(&nxt, ps->a, ps->la)) {
                    free(tmp.p);
                    goto nomem;
                }
                if (tmp.n && sb_add(&nxt, tmp.p, tmp.n)) {
                    free(tmp.p);
                    goto nomem;
                }
                free(tmp.p);
                if (!ps->split) {
                    if (pc_add(&b, base, nxt.n, p.first)) goto nomem;
                    continue;
                }
                size_t at = base;
                for (size_t i = base; i < nxt.n;) {
                    if (i > at && nxt.n - i >= ps->la && memcmp(nxt.p + i, ps->a, ps->la) == 0) {
                        if (pc_add(&b, at, i, p.first && at == base)) goto nomem;
                        at = i;
                    }
                    i += nxt.n - i >= ps->la && memcmp(nxt.p + i, ps->a, ps->la) == 0 ? ps->la : 1;
                }
                if (pc_add(&b, at, nxt.n, p.first && at == base)) goto nomem;
            }
            const strbuf x = cur;
            cur = nxt, nxt = x;
        } else {
            for (int64_t q = 0; q < a.n; q++) {
                const int rc = split_piece(ps, cur.p, a.p[q], &b, error);
                if (rc > 0) {
                    st = rc;
                    goto done;
                }
                if (rc < 0) goto nomem;
            }
        }
        const pieces x = a;
        a = b, b = x;
    }
    for (int64_t q = 0; q < a.n && !st; q++) {
        const piece p = a.p[q];
        if (h->unigram) st = hf_unigram_word(t, cur.p + p.a, p.b - p.a, out, error);
        else if (hf_bpe_word(t, cur.p + p.a, p.b - p.a, out)) goto nomem;
    }
    goto done;
nomem:
    st = plm_errorf(error, PLM_ERR_NOMEM, "out of memory tokenizing");
done:
    free(cur.p), free(nxt.p), free(a.p), free(b.p);
    return st;
}

static int hf_encode(const plm_tokenizer *t, const uint8_t *s, size_t len, idbuf *out, char **error) {
    const hf_spec *h = t->hf;
    hseg *raw = NULL, *nseg = NULL;
    int64_t nraw = 0, nn = 0;
    strbuf norm = {0};
    int st = PLM_OK;
    if (!len) return PLM_OK;
    if (find_added(t, &h->raw, h->max_raw, (const char *)s, len, &raw, &nraw)) goto nomem;
    for (int64_t i = 0; i < nraw && !st; i++) {
        if (raw[i].id >= 0) {
            put(out, (int32_t)raw[i].id);
            continue;
        }
        if (raw[i].b <= raw[i].a) continue;
        if (hf_normalize(h, (const char *)s + raw[i].a, raw[i].b - raw[i].a, &norm)) goto nomem;
        free(nseg);
        nseg = NULL;
        if (find_added(t, &h->normed, h->max_normed, norm.p ? norm.p : "", norm.n, &nseg, &nn)) goto nomem;
        for (int64_t k = 0; k < nn && !st; k++) {
            if (nseg[k].id >= 0) put(out, (int32_t)nseg[k].id);
            else if (nseg[k].b > nseg[k].a)
                st = hf_words(t, norm.p + nseg[k].a, nseg[k].b - nseg[k].a, raw[i].a == 0 && nseg[k].a == 0, out, error);
        }
    }
    goto done;
nomem:
    st = plm_errorf(error, PLM_ERR_NOMEM, "out of memory tokenizing");
done:
    free(raw), free(nseg), free(norm.p);
    return st;
}

/* ---- tokenizer.json decode ---------------------------------------------------- */

typedef struct {
    strbuf *s;
    int64_t n;
} toks;

static int is_byte_token(const char *p, size_t n, int *b) {
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return 0;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        const char c = p[i];
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) {
            if (i == 3 && c == '+') continue; /* u8::from_str_radix takes a sign */
            return 0;
        }
        v = v * 16 + d;
    }
    *b = v;
    return 1;
}

static int replace_into(strbuf *o, const char *s, size_t n, const char *a, size_t la, const char *b, size_t lb) {
    for (size_t k = 0; k < n;) {
        if (n - k >= la && memcmp(s + k, a, la) == 0) {
            if (lb && sb_add(o, b, lb)) return -1;
            k += la;
        } else {
            if (sb_add(o, s + k, 1)) return -1;
            k++;
        }
    }
    return 0;
}

static int hf_decode(const plm_tokenizer *t, const int32_t *ids, int64_t n, strbuf *o) {
    const hf_spec *h = t->hf;
    strbuf *v = (strbuf *)calloc((size_t)(2 * n + 1), sizeof(strbuf));
    strbuf *w = (strbuf *)calloc((size_t)(2 * n + 1), sizeof(strbuf));
    int64_t nv = n, rc = 0;
    if (!v || !w) {
        free(v), free(w);
        return -1;
    }
    for (int64_t i = 0; i < n && !rc; i++)
        if (t->piece_len[ids[i]] && sb_add(&v[i], t->piece[ids[i]], t->piece_len[ids[i]])) rc = -1;
    for (int d = 0; d < h->n_dec && !rc; d++) {
        const hf_step *st = &h->dec[d];
        int64_t nw = 0;
        if (st->type == HD_REPLACE || st->type == HD_META) {
            for (int64_t i = 0; i < nv && !rc; i++) {
                const int drop = st->type == HD_META && i == 0 && st->scheme != 2;
                w[nw].n = 0;
                if (replace_into(&w[nw], v[i].p ? v[i].p : "", v[i].n, st->a, st->la,
                                 st->type == HD_META ? (drop ? "" : " ") : st->b, st->type == HD_META ? !drop : st->lb))
                    rc = -1;
                nw++;
            }
        } else if (st->type == HD_FUSE) {
            w[0].n = 0;
            for (int64_t i = 0; i < nv && !rc; i++)
                if (v[i].n && sb_add(&w[0], v[i].p, v[i].n)) rc = -1;
            nw = 1;
        } else if (st->type == HD_STRIP) {
            for (int64_t i = 0; i < nv && !rc; i++) {
                /* whole characters equal to content, up to start from the front and stop from the back */
                const char *p = v[i].p ? v[i].p : "";
                size_t a = 0;
                int64_t chars_a = 0, chars_z = 0;
                while (chars_a < st->start && v[i].n - a >= st->la && memcmp(p + a, st->a, st->la) == 0) a += st->la, chars_a++;
                size_t zz = v[i].n;
                while (chars_z < st->stop && zz - a >= st->la && memcmp(p + zz - st->la, st->a, st->la) == 0)
                    zz -= st->la, chars_z++;
                /* tokenizers keeps len(bytes) - cuts characters after the front cut */
                int64_t keep = (int64_t)v[i].n - chars_a - chars_z;
                size_t e = a;
                for (int64_t c = 0; c < keep && e < v[i].n; c++) {
                    size_t k;
                    plm_utf8_next((const uint8_t *)p + e, v[i].n - e, &k);
                    e += k;
                }
                w[nw].n = 0;
                if (e > a && sb_add(&w[nw], p + a, e - a)) rc = -1;
                nw++;
            }
        } else if (st->type == HD_BYTEFALLBACK) {
            strbuf bytes = {0};
            for (int64_t i = 0; i <= nv && !rc; i++) {
                int b;
                if (i < nv && is_byte_token(v[i].p ? v[i].p : "", v[i].n, &b)) {
                    const char c = (char)b;
                    if (sb_add(&bytes, &c, 1)) rc = -1;
                    continue;
                }
                if (bytes.n) {
                    w[nw].n = 0;
                    /* valid UTF-8 as one token, else one U+FFFD per byte */
                    int valid = 1;
                    for (size_t k = 0; k < bytes.n && valid;) {
                        const int cl = plm_utf8_char_len((const uint8_t *)bytes.p + k, bytes.n - k);
                        if (cl <= 0) valid = 0;
                        else k += (size_t)cl;
                    }
                    if (valid ? sb_add(&w[nw], bytes.p, bytes.n) : 0) rc = -1;
                    for (size_t k = 0; !valid && k < bytes.n && !rc; k++)
                        if (sb_add(&w[nw], "\xef\xbf\xbd", 3)) rc = -1;
                    nw++;
                    bytes.n = 0;
                }
                if (i < nv) {
                    w[nw].n = 0;
                    if (v[i].n && sb_add(&w[nw], v[i].p, v[i].n)) rc = -1;
                    nw++;
                }
            }
            free(bytes.p);
        }
        strbuf *x = v;
        v = w, w = x;
        nv = nw;
    }
    for (int64_t i = 0; i < nv && !rc; i++)
        if (v[i].n && sb_add(o, v[i].p, v[i].n)) rc = -1;
    for (int64_t i = 0; i < 2 * n + 1; i++) free(v[i].p), free(w[i].p);
    free(v), free(w);
    return (int)rc;
}

/* ---- scored pieces (llama.cpp's "llama" vocabulary) ------------------------- */

static int is_control_scored(const plm_tokenizer *t, int64_t id) {
    return t->type[id] == T_CONTROL || t->type[id] == T_UNKNOWN;
}

static int scored_encode(const plm_tokenizer *t, const uint8_t *s, size_t len, idbuf *out, char **error) {
    if (!len) return PLM_OK;
    strbuf text = {0};
    int st = PLM_OK;
    if (t->add_dummy_prefix && sb_add(&text, WS, 3)) goto nomem;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ' ' ? sb_add(&text, WS, 3) : sb_add(&text, s + i, 1)) goto nomem;
    part *p = (part *)malloc((text.n + 1) * sizeof(part));
    if (!p) goto nomem;
    int64_t np = 0;
    for (size_t i = 0; i < text.n;) {
        size_t k;
        plm_utf8_next((const uint8_t *)text.p + i, text.n - i, &k);
        p[np++] = (part){(int64_t)i, (int64_t)k};
        i += k;
    }
    while (np > 1) {
        float best = -INFINITY;
        int64_t at = -1;
        for (int64_t i = 0; i + 1 < np; i++) {
            const int64_t j = plm_strmap_get(&t->index, text.p + p[i].off, (size_t)(p[i].len + p[i + 1].len), -1);
            if (j >= 0 && !is_control_scored(t, j) && (at < 0 || t->score[j] > best)) best = t->score[j], at = i;
        }
        if (at < 0) break;
        p[at].len += p[at + 1].len;
        memmove(p + at + 1, p + at + 2, (size_t)(np - at - 2) * sizeof(part));
        np--;
    }
    for (int64_t i = 0; i < np && !st; i++) {
        const int64_t j = plm_strmap_get(&t->index, text.p + p[i].off, (size_t)p[i].len, -1);
        if (j >= 0 && !is_control_scored(t, j)) {
            put(out, (int32_t)j);
            continue;
        }
        for (int64_t k = 0; k < p[i].len; k++) {
            const int32_t b = t->byte_piece[(uint8_t)text.p[p[i].off + k]];
            if (b < 0) {
                st = plm_errorf(error, PLM_ERR_FORMAT, "the vocabulary has no byte piece <0x%02X> for '%.*s'",
                                (uint8_t)text.p[p[i].off + k], (int)p[i].len, text.p + p[i].off);
                break;
            }
            put(out, b);
        }
    }
    free(p);
    free(text.p);
    return st;
nomem:
    free(text.p);
    return plm_errorf(error, PLM_ERR_NOMEM, "out of memory tokenizing");
}

/* ---- SentencePiece encode ------------------------------------------------------- */

static int64_t sp_lookup(const plm_tokenizer *t, const char *s, size_t n) {
    /* pieces_ hold normal, user-defined and unused pieces; control, unknown and byte pieces are reserved */
    const int64_t id = plm_strmap_get(&t->index, s, n, -1);
    return id;
}

static int is_pieces_type(int ty) { return ty == T_NORMAL || ty == T_USER || ty == T_UNUSED; }

/* the normalizer with an identity character map */
static int sp_normalize(const plm_tokenizer *t, const uint8_t *s, size_t len, strbuf *o) {
    size_t i = 0;
    if (t->remove_extra_ws)
        while (i < len && s[i] == ' ') i++;
    if (i == len) return 0;
    if (t->add_dummy_prefix && (t->escape_ws ? sb_add(o, WS, 3) : sb_add(o, " ", 1))) return -1;
    int prev_space = t->remove_extra_ws;
    while (i < len) {
        size_t k;
        const uint32_t c = plm_utf8_next(s + i, len - i, &k);
        uint8_t u[4];
        int ul = plm_utf8_put(c, u); /* invalid bytes come out as U+FFFD */
        if (c == ' ') {
            if (!prev_space && (t->escape_ws ? sb_add(o, WS, 3) : sb_add(o, " ", 1))) return -1;
            prev_space = t->remove_extra_ws ? 1 : 0;
        } else {
            if (sb_add(o, u, (size_t)ul)) return -1;
            prev_space = 0;
        }
        i += k;
    }
    if (t->remove_extra_ws) {
        const char *w = t->escape_ws ? WS : " ";
        const size_t wl = strlen(w);
        while (o->n >= wl && memcmp(o->p + o->n - wl, w, wl) == 0) o->n -= wl;
    }
    return 0;
}

/* length of the user-defined piece at s, or of one character */
static size_t sp_prefix(const plm_tokenizer *t, const char *s, size_t n, int *frozen) {
    for (int u = 0; u < t->n_user; u++) {
        const int32_t id = t->user_ids[u];
        if (t->piece_len[id] && t->piece_len[id] <= n && memcmp(s, t->piece[id], t->piece_len[id]) == 0) {
            *frozen = 1;
            return t->piece_len[id];
        }
    }
    *frozen = 0;
    size_t k;
    plm_utf8_next((const uint8_t *)s, n, &k);
    return k;
}

typedef struct {
    int64_t off, len;
    int frozen;
    int left, right; /* how an unused piece was made, for resegmenting */
} sym;

typedef struct {
    int64_t off, len;
    int32_t id; /* -1: unknown */
} seg;

static void emit_segments(const plm_tokenizer *t, const char *text, const seg *sg, int64_t n, idbuf *out) {
    int prev_unk = 0;
    for (int64_t i = 0; i < n; i++) {
        const int unk = sg[i].id < 0 || sg[i].id == t->unk_id;
        if (unk && t->byte_fallback) {
            int ok = 1;
            for (int64_t k = 0; k < sg[i].len; k++) ok &= t->byte_piece[(uint8_t)text[sg[i].off + k]] >= 0;
            if (ok) {
                for (int64_t k = 0; k < sg[i].len; k++) put(out, t->byte_piece[(uint8_t)text[sg[i].off + k]]);
                prev_unk = 0;
                continue;
            }
        }
        if (unk && prev_unk) continue; /* a run of unknown pieces is one <unk> */
        put(out, unk ? t->unk_id : sg[i].id);
        prev_unk = unk;
    }
}

static int64_t sym_id(const plm_tokenizer *t, const char *text, const sym *s) {
    return sp_lookup(t, text + s->off, (size_t)s->len);
}

static int resegment(const plm_tokenizer *t, const char *text, const sym *all, int i, seg *sg, int64_t *n) {
    const int64_t id = sym_id(t, text, &all[i]);
    if (id >= 0 && t->type[id] == T_UNUSED && all[i].left >= 0) {
        resegment(t, text, all, all[i].left, sg, n);
        resegment(t, text, all, all[i].right, sg, n);
        return 0;
    }
    int64_t rid = id;
    if (rid < 0 || !is_pieces_type(t->type[rid])) rid = -1;
    if (rid < 0) { /* the reserved pieces (control, byte) are found too, as PieceToId does */
        const int64_t r = plm_strmap_get(&t->index, text + all[i].off, (size_t)all[i].len, -1);
        rid = r;
    }
    sg[(*n)++] = (seg){all[i].off, all[i].len, (int32_t)rid};
    return 0;
}

static int sp_bpe(const plm_tokenizer *t, const char *text, size_t n, idbuf *out) {
    /* symbols: the characters (user-defined pieces whole and frozen); merges
     * of adjacent symbols whose concatenation is a piece, highest score first,
     * leftmost on ties; the merged ones stay in `all` for resegmenting */
    sym *all = (sym *)malloc((2 * n + 1) * sizeof(sym));
    int *live = (int *)malloc((n + 1) * sizeof(int));
    seg *sg = (seg *)malloc((2 * n + 1) * sizeof(seg));
    if (!all || !live || !sg) {
        free(all), free(live), free(sg);
        return -1;
    }
    int n_all = 0, n_live = 0;
    for (size_t i = 0; i < n;) {
        int frozen;
        const size_t k = sp_prefix(t, text + i, n - i, &frozen);
        all[n_all] = (sym){(int64_t)i, (int64_t)k, frozen, -1, -1};
        live[n_live++] = n_all++;
        i += k;
    }
    while (n_live > 1) {
        float best = -INFINITY;
        int at = -1;
        for (int i = 0; i + 1 < n_live; i++) {
            const sym *a = &all[live[i]], *b = &all[live[i + 1]];
            if (a->frozen || b->frozen) continue;
            const int64_t id = sp_lookup(t, text + a->off, (size_t)(a->len + b->len));
            if (id < 0 || !is_pieces_type(t->type[id])) continue;
            if (at < 0 || t->score[id] > best) best = t->score[id], at = i;
        }
        if (at < 0) break;
        const sym *a = &all[live[at]], *b = &all[live[at + 1]];
        all[n_all] = (sym){a->off, a->len + b->len, 0, live[at], live[at + 1]};
        live[at] = n_all++;
        memmove(live + at + 1, live + at + 2, (size_t)(n_live - at - 2) * sizeof(int));
        n_live--;
    }
    int64_t ns = 0;
    for (int i = 0; i < n_live; i++) resegment(t, text, all, live[i], sg, &ns);
    emit_segments(t, text, sg, ns, out);
    free(all), free(live), free(sg);
    return 0;
}

static int sp_unigram(const plm_tokenizer *t, const char *text, size_t n, idbuf *out) {
    /* best[e]: the best score of a segmentation of text[0..e) (e at a character
     * boundary); from[e], id[e]: its last piece. Pieces are tried by start,
     * then by length; a later candidate replaces an earlier only when better. */
    float *best = (float *)malloc((n + 1) * sizeof(float));
    int64_t *from = (int64_t *)malloc((n + 1) * sizeof(int64_t));
    int64_t *pid = (int64_t *)malloc((n + 1) * sizeof(int64_t));
    seg *sg = (seg *)malloc((n + 1) * sizeof(seg));
    if (!best || !from || !pid || !sg) {
        free(best), free(from), free(pid), free(sg);
        return -1;
    }
    for (size_t i = 0; i <= n; i++) from[i] = -1;
    best[0] = 0;
    from[0] = 0;
    /* the arithmetic below follows SentencePiece's own search, float and
     * double where it has them: its rounding decides between segmentations
     * of equal score */
    const float unk_score = t->min_score - 10.0f;
    for (size_t s = 0; s < n;) {
        size_t k1;
        plm_utf8_next((const uint8_t *)text + s, n - s, &k1);
        if (from[s] < 0) { /* unreachable start (cannot happen: every character has a path) */
            s += k1;
            continue;
        }
        int has_single = 0;
        size_t e = s;
        int64_t chars = 0;
        while (e < n && e - s < t->max_piece_len) {
            size_t k;
            plm_utf8_next((const uint8_t *)text + e, n - e, &k);
            e += k, chars++;
            if (e - s > t->max_piece_len) break;
            const int64_t id = sp_lookup(t, text + s, e - s);
            if (id < 0 || !is_pieces_type(t->type[id]) || t->type[id] == T_UNUSED) continue;
            const float sc = t->type[id] == T_USER ? (float)((double)((float)chars * t->max_score) - 0.1) : t->score[id];
            if (e == s + k1) has_single = 1;
            const float cand = sc + best[s];
            if (from[e] < 0 || cand > best[e]) best[e] = cand, from[e] = (int64_t)s, pid[e] = id;
        }
        if (!has_single) {
            const size_t e1 = s + k1;
            const float cand = unk_score + best[s];
            if (from[e1] < 0 || cand > best[e1]) best[e1] = cand, from[e1] = (int64_t)s, pid[e1] = -1;
        }
        s += k1;
    }
    int64_t ns = 0;
    for (int64_t e = (int64_t)n; e > 0; e = from[e]) sg[ns++] = (seg){from[e], e - from[e], (int32_t)pid[e]};
    for (int64_t i = 0; i < ns / 2; i++) {
        const seg x = sg[i];
        sg[i] = sg[ns - 1 - i], sg[ns - 1 - i] = x;
    }
    emit_segments(t, text, sg, ns, out);
    free(best), free(from), free(pid), free(sg);
    return 0;
}

static int sp_encode(const plm_tokenizer *t, const uint8_t *s, size_t len, idbuf *out, char **error) {
    strbuf norm = {0};
    int rc = sp_normalize(t, s, len, &norm);
    if (!rc && norm.n) rc = t->sp_type == 2 ? sp_bpe(t, norm.p, norm.n, out) : sp_unigram(t, norm.p, norm.n, out);
    free(norm.p);
    return rc ? plm_errorf(error, PLM_ERR_NOMEM, "out of memory tokenizing") : PLM_OK;
}

/* ---- public --------------------------------------------------------------------- */

int plm_tokenizer_encode(const plm_tokenizer *t, const char *text, uint64_t len, int add_bos, int32_t *ids,
                         int64_t cap, int64_t *n_ids, char **error) {
    if (!t || (!text && len) || !n_ids || cap < 0 || (cap && !ids))
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_tokenizer_encode: bad argument");
    idbuf out = {ids, 0, cap, 0};
    if (add_bos && t->bos >= 0) put(&out, t->bos);
    const uint8_t *s = (const uint8_t *)(text ? text : "");
    int st = t->kind == TK_BPE ? bpe_encode(t, s, (size_t)len, &out, error)
             : t->kind == TK_HF ? hf_encode(t, s, (size_t)len, &out, error)
             : t->kind == TK_SP ? sp_encode(t, s, (size_t)len, &out, error)
                                : scored_encode(t, s, (size_t)len, &out, error);
    *n_ids = out.n;
    return st;
}

/* The bytes one token stands for (what a stream of tokens concatenates). */
int plm_tokenizer_token_bytes(const plm_tokenizer *t, int32_t id, char *buf, size_t cap, size_t *len) {
    *len = 0;
    if (!t || id < 0 || id >= t->vocab_size || !t->piece[id]) return PLM_ERR_INVALID_ARG;
    const char *p = t->piece[id];
    const size_t n = t->piece_len[id];
    if (t->kind == TK_BPE) {
        if (t->is_added[id]) {
            *len = n;
            if (n <= cap) memcpy(buf, p, n);
            return PLM_OK;
        }
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            size_t k;
            const uint32_t c = plm_utf8_next((const uint8_t *)p + i, n - i, &k);
            const int b = char_byte(c);
            if (b >= 0) {
                if (w < cap) buf[w] = (char)b;
                w++;
            } else { /* a character outside GPT-2's byte map stands for itself */
                for (size_t j = 0; j < k; j++, w++)
                    if (w < cap) buf[w] = p[i + j];
            }
            i += k;
        }
        *len = w;
        return PLM_OK;
    }
    if (t->kind == TK_HF) { /* the decoder's per-token steps: bytes of <0xXX>, replacements */
        int b, bf = 0;
        for (int d = 0; d < t->hf->n_dec; d++) bf |= t->hf->dec[d].type == HD_BYTEFALLBACK;
        if (bf && is_byte_token(p, n, &b)) {
            *len = 1;
            if (cap) buf[0] = (char)b;
            return PLM_OK;
        }
        strbuf a = {0}, o = {0};
        int rc = n ? sb_add(&a, p, n) : 0;
        for (int d = 0; d < t->hf->n_dec && !rc; d++) {
            const hf_step *st = &t->hf->dec[d];
            if (st->type != HD_REPLACE && st->type != HD_META) continue;
            o.n = 0;
            rc = replace_into(&o, a.p ? a.p : "", a.n, st->a, st->la, st->type == HD_META ? " " : st->b,
                              st->type == HD_META ? 1 : st->lb);
            const strbuf x = a;
            a = o, o = x;
        }
        *len = a.n;
        if (!rc) memcpy(buf, a.p ? a.p : "", a.n < cap ? a.n : cap);
        free(a.p), free(o.p);
        return rc ? PLM_ERR_NOMEM : PLM_OK;
    }
    const int ty = t->type[id];
    if (ty == T_CONTROL || (t->kind == TK_SCORED && ty == T_UNKNOWN)) return PLM_OK;
    if (ty == T_BYTE && n == 6 && memcmp(p, "<0x", 3) == 0) {
        unsigned b;
        if (sscanf(p, "<0x%2X>", &b) == 1) {
            *len = 1;
            if (cap) buf[0] = (char)b;
            return PLM_OK;
        }
    }
    size_t pn = n;
    if (t->kind == TK_SP && ty == T_UNKNOWN) p = t->unk_surface, pn = strlen(p);
    size_t w = 0;
    for (size_t i = 0; i < pn;) {
        if (pn - i >= 3 && memcmp(p + i, WS, 3) == 0) {
            if (w < cap) buf[w] = ' ';
            w++, i += 3;
        } else {
            if (w < cap) buf[w] = p[i];
            w++, i++;
        }
    }
    *len = w;
    return PLM_OK;
}

int plm_tokenizer_strips_leading_space(const plm_tokenizer *t) {
    if (t && t->kind == TK_HF) {
        for (int d = 0; d < t->hf->n_dec; d++)
            if ((t->hf->dec[d].type == HD_STRIP && t->hf->dec[d].start > 0) ||
                (t->hf->dec[d].type == HD_META && t->hf->dec[d].scheme != 2))
                return 1;
        return 0;
    }
    return t && t->kind != TK_BPE && (t->add_dummy_prefix || (t->kind == TK_SP && t->remove_extra_ws));
}

/* SentencePiece's Decode: byte pieces gathered and decoded together (each
 * invalid byte a U+FFFD), control pieces invisible, the unknown piece as its
 * surface, and the leading U+2581 of the first piece dropped when the
 * normalizer added one (with remove_extra_whitespaces: of every piece while
 * no text has come out yet). */
static int sp_decode(const plm_tokenizer *t, const int32_t *ids, int64_t n, strbuf *o) {
    uint8_t bytes[64];
    int nb = 0, is_bos_ws = 1, bos_ws_seen = 0;
    for (int64_t i = 0; i <= n; i++) {
        const int ty = i < n ? t->type[ids[i]] : 0;
        if (i < n && ty == T_BYTE) {
            size_t l;
            char b;
            plm_tokenizer_token_bytes(t, ids[i], &b, 1, &l);
            if (nb == (int)sizeof bytes) { /* flush a long run in pieces, at a character boundary */
                int keep = 0;
                while (keep < 3 && keep < nb && (bytes[nb - 1 - keep] & 0xC0) == 0x80) keep++;
                if (keep < nb && bytes[nb - 1 - keep] >= 0xC0) keep++;
                else keep = 0;
                for (int k = 0; k < nb - keep;) {
                    const int cl = plm_utf8_char_len(bytes + k, (size_t)(nb - keep - k));
                    if (cl > 0 ? sb_add(o, bytes + k, (size_t)cl) : sb_add(o, "\xef\xbf\xbd", 3)) return -1;
                    k += cl > 0 ? cl : 1;
                }
                memmove(bytes, bytes + nb - keep, (size_t)keep);
                nb = keep;
            }
            bytes[nb++] = (uint8_t)b;
            continue;
        }
        for (int k = 0; k < nb;) {
            const int cl = plm_utf8_char_len(bytes + k, (size_t)(nb - k));
            if (cl > 0 ? sb_add(o, bytes + k, (size_t)cl) : sb_add(o, "\xef\xbf\xbd", 3)) return -1;
            k += cl > 0 ? cl : 1;
        }
        nb = 0;
        if (i == n) break;
        if (bos_ws_seen || o->n) is_bos_ws = 0;
        bos_ws_seen = 0;
        if (ty == T_CONTROL) continue;
        const char *p = ty == T_UNKNOWN ? t->unk_surface : t->piece[ids[i]];
        size_t pl = ty == T_UNKNOWN ? strlen(p) : t->piece_len[ids[i]];
        if (ty != T_UNKNOWN && is_bos_ws && (t->add_dummy_prefix || t->remove_extra_ws) && pl >= 3 &&
            memcmp(p, WS, 3) == 0) {
            p += 3, pl -= 3;
            bos_ws_seen = !t->remove_extra_ws;
        }
        for (size_t k = 0; k < pl;) {
            if (ty != T_UNKNOWN && pl - k >= 3 && memcmp(p + k, WS, 3) == 0) {
                if (sb_add(o, " ", 1)) return -1;
                k += 3;
            } else {
                if (sb_add(o, p + k, 1)) return -1;
                k++;
            }
        }
    }
    return 0;
}

int plm_tokenizer_decode(const plm_tokenizer *t, const int32_t *ids, int64_t n, char *text, uint64_t cap,
                         uint64_t *len, char **error) {
    if (!t || (!ids && n) || !len || (cap && !text))
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_tokenizer_decode: bad argument");
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->vocab_size || !t->piece[ids[i]])
            return plm_errorf(error, PLM_ERR_INVALID_ARG, "token id %d is outside the vocabulary", ids[i]);
    strbuf raw = {0}, o = {0};
    char tmp[512];
    int st = PLM_OK;
    if (t->kind == TK_SP) {
        if (sp_decode(t, ids, n, &o)) st = PLM_ERR_NOMEM;
        goto out;
    }
    if (t->kind == TK_HF) {
        if (hf_decode(t, ids, n, &o)) st = PLM_ERR_NOMEM;
        goto out;
    }
    for (int64_t i = 0; i < n && !st; i++) {
        size_t l;
        plm_tokenizer_token_bytes(t, ids[i], tmp, sizeof tmp, &l);
        const char *src = tmp;
        char *big = NULL;
        if (l > sizeof tmp) {
            big = (char *)malloc(l);
            if (!big) {
                st = PLM_ERR_NOMEM;
                break;
            }
            plm_tokenizer_token_bytes(t, ids[i], big, l, &l);
            src = big;
        }
        if (t->kind == TK_BPE && t->is_added[ids[i]]) {
            /* Python decodes the bytes between added tokens on their own */
            uint8_t *clean = (uint8_t *)malloc(3 * raw.n + 1);
            if (!clean || sb_add(&o, clean, plm_utf8_sanitize((const uint8_t *)raw.p, raw.n, clean)) ||
                sb_add(&o, src, l))
                st = PLM_ERR_NOMEM;
            free(clean);
            raw.n = 0;
        } else if (l && sb_add(&raw, src, l)) {
            st = PLM_ERR_NOMEM;
        }
        free(big);
    }
    if (!st) {
        uint8_t *clean = (uint8_t *)malloc(3 * raw.n + 1);
        if (!clean || sb_add(&o, clean, plm_utf8_sanitize((const uint8_t *)raw.p, raw.n, clean))) st = PLM_ERR_NOMEM;
        free(clean);
    }
    if (!st && t->kind == TK_SCORED && t->add_dummy_prefix && o.n && o.p[0] == ' ') {
        memmove(o.p, o.p + 1, o.n - 1);
        o.n--;
    }
out:
    if (st == PLM_ERR_NOMEM) plm_errorf(error, st, "out of memory decoding");
    *len = o.n;
    if (!st && cap) memcpy(text, o.p ? o.p : "", o.n < cap ? o.n : cap);
    free(raw.p), free(o.p);
    return st;
}

int64_t plm_tokenizer_special_id(const plm_tokenizer *t, const char *text, uint64_t len) {
    if (!t || (!text && len)) return -1;
    if (t->kind == TK_BPE || t->kind == TK_HF) return plm_strmap_get(&t->added, text, (size_t)len, -1);
    const int64_t i = plm_strmap_get(&t->index, text, (size_t)len, -1);
    if (i < 0) return -1;
    const int ty = t->type[i];
    if (t->kind == TK_SCORED) return ty == T_CONTROL || ty == T_UNKNOWN || ty == T_USER ? i : -1;
    if (ty == T_CONTROL || ty == T_UNKNOWN) return i;
    int32_t one[2];
    int64_t n = 0;
    if (plm_tokenizer_encode(t, text, len, 0, one, 2, &n, NULL) == PLM_OK && n == 1 && one[0] == i) return i;
    return -1;
}

int64_t plm_tokenizer_vocab_size(const plm_tokenizer *t) { return t ? t->vocab_size : 0; }
int64_t plm_tokenizer_bos_id(const plm_tokenizer *t) { return t ? t->bos : -1; }
int plm_tokenizer_add_bos(const plm_tokenizer *t) { return t ? t->add_bos : 0; }
int64_t plm_tokenizer_eos_ids(const plm_tokenizer *t, const int32_t **ids) {
    if (!t) return 0;
    if (ids) *ids = t->eos;
    return t->n_eos;
}
const char *plm_tokenizer_chat_template(const plm_tokenizer *t) { return t ? t->chat_template : NULL; }

/*
 * llm_inference_engine.c — MediaPipe's C API (include/llm_inference_engine.h)
 * over the engine, the tokenizers and the .task reader: text in, text out,
 * with the turn logic of python/pocketlm/engine/base.py's Session
 * (BOS, prompt templates, a prompt already in the chat format taken as it
 * is, maxTokens checks) and its StreamDecoder, so a C program gets the text
 * pocketlm's Python API gives for the same model and options.
 */
#define _GNU_SOURCE
#include "llm_inference_engine.h"

#include "engine/engine.h"
#include "text/text.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- engine ------------------------------------------------------------------- */

#define MAX_STOPS 64

typedef struct {
    plm_model *model;
    plm_tokenizer *tok;
    char *path;
    int64_t max_tokens, n_batch;
    size_t max_top_k;
    size_t *lora_ranks;   /* supported_lora_ranks (none: any) */
    size_t n_lora_ranks;
    int32_t bos;
    int add_bos, has_templates;
    plm_turn_templates tpl;
    const char *family; /* the chat template's family (plm_chat_template_detect), or NULL */
    int32_t stops[MAX_STOPS];
    int n_stops;
    atomic_int refs;
} engine;

typedef struct {
    engine *e;
    plm_session *s;
    int in_user_turn, formatted;
    int has_tpl;          /* the session's turn templates: the engine's, or its own (plm_llm_session_set_prompt_templates) */
    plm_turn_templates tpl;
    int64_t turns;
    pthread_t thread;
    int thread_live;
    atomic_int busy;
    plm_generate_stats stats;
    /* the generation in flight */
    int32_t *resp;
    int64_t n_resp, cap_resp, prefix, read;
    void (*cb)(void *, LlmResponseContext *);
    void *cb_ctx;
    char *text;       /* PredictSync: the text so far */
    size_t text_len, text_cap;
    int failed;
} session;

static int err(char **error_msg, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int err(char **error_msg, int status, const char *fmt, ...) {
    if (error_msg) {
        va_list ap;
        va_start(ap, fmt);
        char *m = NULL;
        if (vasprintf(&m, fmt, ap) < 0) m = NULL;
        va_end(ap);
        *error_msg = m;
    }
    return status;
}

static void engine_unref(engine *e) {
    if (!e || atomic_fetch_sub(&e->refs, 1) != 1) return;
    plm_model_free(e->model);
    plm_tokenizer_free(e->tok);
    free(e->lora_ranks);
    free(e->path);
    free(e);
}

static int encode(const engine *e, const char *text, int32_t **ids, int64_t *n, char **error) {
    *ids = NULL, *n = 0;
    const size_t len = strlen(text);
    if (!len) return PLM_OK;
    int64_t need = 0;
    int st = plm_tokenizer_encode(e->tok, text, len, 0, NULL, 0, &need, error);
    if (st) return st;
    *ids = (int32_t *)malloc((size_t)(need > 0 ? need : 1) * sizeof(int32_t));
    if (!*ids) return plm_errorf(error, PLM_ERR_NOMEM, "out of memory tokenizing");
    return plm_tokenizer_encode(e->tok, text, len, 0, *ids, need, n, error);
}

/* the id of text when it is one token (special or encoded), else -1 */
static int64_t single_token(const engine *e, const char *text) {
    const int64_t id = plm_tokenizer_special_id(e->tok, text, strlen(text));
    if (id >= 0) return id;
    int32_t *ids;
    int64_t n;
    if (encode(e, text, &ids, &n, NULL)) return -1;
    const int64_t r = n == 1 ? ids[0] : -1;
    free(ids);
    return r;
}

static void add_stop(engine *e, int64_t id) {
    if (id < 0 || e->n_stops >= MAX_STOPS) return;
    for (int i = 0; i < e->n_stops; i++)
        if (e->stops[i] == id) return;
    e->stops[e->n_stops++] = (int32_t)id;
}

static char *token_text(const engine *e, int64_t id) {
    uint64_t n = 0;
    const int32_t one = (int32_t)id;
    if (id < 0 || plm_tokenizer_decode(e->tok, &one, 1, NULL, 0, &n, NULL)) return strdup("");
    char *s = (char *)calloc(n + 1, 1);
    if (s) plm_tokenizer_decode(e->tok, &one, 1, s, n, &n, NULL);
    return s;
}

static char *str_of(plm_str s) {
    char *o = (char *)malloc(s.len + 1);
    if (o) memcpy(o, s.ptr, s.len), o[s.len] = '\0';
    return o;
}

/* The id of a METADATA token text (start_token, stop_tokens), which must be
 * one token of the model's tokenizer. */
static int meta_token(const engine *e, plm_str text, const char *field, int32_t *id, char **error_msg) {
    char *s = str_of(text);
    const int64_t i = s ? single_token(e, s) : -1;
    int st = PLM_OK;
    if (i < 0)
        st = err(error_msg, PLM_ERR_FORMAT, "%s: %s '%s' is not a single token of the model's tokenizer", e->path,
                 field, s ? s : "");
    free(s);
    *id = (int32_t)i;
    return st;
}

/* The model file's tokenizer.chat_template, NUL-terminated and malloc'd, or NULL. A .task's tokenizer comes
 * from its TOKENIZER_MODEL entry, which has no template: the bundle carries it in the model GGUF it holds, as
 * pocketlm's converter writes it (and Python's loader reads it there too). */
static char *model_chat_template(const engine *e) {
    const plm_gguf *g = e->model ? e->model->gguf : NULL;
    const int64_t i = g ? plm_gguf_find_key(g, "tokenizer.chat_template") : -1;
    const char *s;
    uint64_t n;
    if (i < 0 || plm_gguf_kv_type(g, i) != PLM_GGUF_STRING || plm_gguf_get_str(g, i, &s, &n) != PLM_OK || !n)
        return NULL;
    char *o = (char *)malloc(n + 1);
    if (o) memcpy(o, s, n), o[n] = '\0';
    return o;
}

/* what the bundle or the model file says about BOS, stops and templates */
static int configure(engine *e, const plm_llm_params *meta, char **error_msg) {
    e->bos = (int32_t)plm_tokenizer_bos_id(e->tok);
    e->add_bos = plm_tokenizer_add_bos(e->tok);
    if (meta && meta->has_start_token && meta->start_token.len) {
        const int st = meta_token(e, meta->start_token, "start_token", &e->bos, error_msg);
        if (st) return st;
        e->add_bos = 1;
    } else if (meta && meta->has_start_token_id) {
        if (meta->start_token_id < 0 || meta->start_token_id >= plm_tokenizer_vocab_size(e->tok))
            return err(error_msg, PLM_ERR_FORMAT, "%s: METADATA start_token_id %lld is outside the vocabulary",
                       e->path, (long long)meta->start_token_id);
        e->bos = (int32_t)meta->start_token_id, e->add_bos = 1;
    }
    if (meta && (meta->prompt_prefix.len || meta->prompt_suffix.len || meta->system_prompt.len)) {
        e->has_templates = 1;
        snprintf(e->tpl.user_prefix, sizeof e->tpl.user_prefix, "%.*s", (int)meta->prompt_prefix.len,
                 meta->prompt_prefix.ptr ? meta->prompt_prefix.ptr : "");
        snprintf(e->tpl.model_prefix, sizeof e->tpl.model_prefix, "%.*s", (int)meta->prompt_suffix.len,
                 meta->prompt_suffix.ptr ? meta->prompt_suffix.ptr : "");
        snprintf(e->tpl.preamble, sizeof e->tpl.preamble, "%.*s", (int)meta->system_prompt.len,
                 meta->system_prompt.ptr ? meta->system_prompt.ptr : "");
    } else { /* else the chat template's turns: the tokenizer's, else the model file's (a .task's GGUF) */
        char *owned = plm_tokenizer_chat_template(e->tok) ? NULL : model_chat_template(e);
        const char *tmpl = owned ? owned : plm_tokenizer_chat_template(e->tok);
        if (tmpl) {
            const int32_t *eos;
            const int64_t n_eos = plm_tokenizer_eos_ids(e->tok, &eos);
            char *bos_text = token_text(e, e->bos), *eos_text = token_text(e, n_eos ? eos[0] : -1);
            e->family = plm_chat_template_detect(tmpl, bos_text, eos_text, e->add_bos, &e->tpl);
            e->has_templates = e->family != NULL;
            free(bos_text), free(eos_text);
        }
        free(owned);
    }
    const int32_t *eos;
    const int64_t n_eos = plm_tokenizer_eos_ids(e->tok, &eos);
    for (int64_t i = 0; i < n_eos; i++) add_stop(e, eos[i]);
    for (int64_t i = 0; meta && i < meta->n_stop_tokens; i++) {
        int32_t id;
        const int st = meta_token(e, meta->stop_tokens[i], "stop_tokens", &id, error_msg);
        if (st) return st;
        add_stop(e, id);
    }
    static const char *const end_of_turn[] = {"<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>",
                                              "<|end|>", "</s>"};
    for (size_t i = 0; i < sizeof end_of_turn / sizeof end_of_turn[0]; i++)
        add_stop(e, plm_tokenizer_special_id(e->tok, end_of_turn[i], strlen(end_of_turn[i])));
    if (e->has_templates) { /* the model suffix, stripped, when it is one special token */
        const char *ms = e->tpl.model_suffix;
        size_t a = 0, b = strlen(ms);
        while (a < b && strchr(" \t\n\r\v\f", ms[a])) a++;
        while (b > a && strchr(" \t\n\r\v\f", ms[b - 1])) b--;
        if (b > a) add_stop(e, plm_tokenizer_special_id(e->tok, ms + a, b - a));
    }
    return PLM_OK;
}

/* METADATA's strings point into the bundle's map: the caller closes *task_out after reading them */
static int open_task(engine *e, char **error_msg, plm_llm_params *meta, int *has_meta, plm_task **task_out) {
    plm_task *task = NULL;
    char *error = NULL;
    int st = plm_task_open(e->path, &task, &error);
    if (st) {
        if (error_msg) *error_msg = error;
        else free(error);
        return st;
    }
    const int64_t mi = plm_task_find(task, "TF_LITE_PREFILL_DECODE");
    const char *name;
    uint64_t off, size;
    int stored;
    if (mi < 0 || plm_task_entry(task, mi, &name, &off, &size, &stored) != PLM_OK) {
        plm_task_close(task);
        return err(error_msg, PLM_ERR_FORMAT, "%s: a .task bundle needs a TF_LITE_PREFILL_DECODE entry", e->path);
    }
    if (!stored) {
        plm_task_close(task);
        return err(error_msg, PLM_ERR_FORMAT, "%s: the model entry is compressed; the C API maps models in place, "
                   "so bundle it stored (pocketlm's bundler does)", e->path);
    }
    st = plm_task_metadata(task, meta, &error);
    if (st == PLM_ERR_NOT_FOUND) {
        free(error);
        error = NULL;
        *has_meta = 0;
    } else if (st) {
        plm_task_close(task);
        if (error_msg) *error_msg = error;
        else free(error);
        return st;
    } else {
        *has_meta = 1;
        if (meta->unknown_normalization)
            st = err(error_msg, PLM_ERR_FORMAT, "%s: METADATA asks for an input/output normalization pocketlm does "
                     "not know", e->path);
    }
    int litert = 0;
    if (!st) { /* the model entry: a GGUF (pocketlm's converter), or a TFLite graph LiteRT runs */
        unsigned char head[8] = {0};
        FILE *mf = fopen(e->path, "rb");
        const int got = mf && !fseeko(mf, (off_t)off, SEEK_SET) && fread(head, 1, 8, mf) == 8;
        if (mf) fclose(mf);
        if (got && memcmp(head + 4, "TFL3", 4) == 0) {
            litert = 1;
            st = plm_model_open_litert(e->path, off, size, &e->model, error_msg);
        } else {
            st = plm_model_open(e->path, off, size, &e->model, error_msg);
        }
    }
    if (!st && litert && plm_task_find(task, "TOKENIZER_MODEL") < 0)
        st = err(error_msg, PLM_ERR_FORMAT, "%s: a .task with a TFLite model needs a TOKENIZER_MODEL entry", e->path);
    if (!st) { /* the tokenizer: the bundle's TOKENIZER_MODEL entry, else the GGUF's own */
        const int64_t ti = plm_task_find(task, "TOKENIZER_MODEL");
        uint64_t toff, tsize;
        int tstored;
        const plm_model_config *cfg = plm_model_get_config(e->model);
        if (ti >= 0 && plm_task_entry(task, ti, &name, &toff, &tsize, &tstored) == PLM_OK) {
            if (!tstored) {
                st = err(error_msg, PLM_ERR_FORMAT, "%s: the TOKENIZER_MODEL entry is compressed", e->path);
            } else {
                FILE *f = fopen(e->path, "rb");
                char *buf = (char *)malloc(tsize ? tsize : 1);
                if (!f || !buf || fseeko(f, (off_t)toff, SEEK_SET) || fread(buf, 1, tsize, f) != tsize) {
                    st = err(error_msg, PLM_ERR_IO, "%s: cannot read entry TOKENIZER_MODEL", e->path);
                } else {
                    char what[600];
                    snprintf(what, sizeof what, "%s: entry TOKENIZER_MODEL", e->path);
                    st = plm_tokenizer_from_bytes(buf, tsize, cfg->bos_token_id, cfg->eos_token_ids, cfg->n_eos,
                                                  what, &e->tok, error_msg);
                    if (!st && *has_meta && meta->bytes_to_unicode && buf[0] != '{')
                        st = err(error_msg, PLM_ERR_FORMAT, "%s: METADATA asks for the bytes-to-unicode "
                                 "normalization around a SentencePiece tokenizer, which pocketlm does not implement",
                                 e->path);
                }
                if (f) fclose(f);
                free(buf);
            }
        } else {
            plm_gguf *g = NULL;
            st = plm_gguf_open(e->path, off, size, &g, error_msg);
            if (!st) st = plm_tokenizer_from_gguf(g, e->path, &e->tok, error_msg);
            plm_gguf_close(g);
        }
    }
    *task_out = task;
    return st;
}

/* A .litertlm (LiteRT-LM's file): its prefill/decode TFLite graph runs on LiteRT (plm_model_open_litert), its
 * tokenizer section is the tokenizer, and its LlmMetadata gives the start and stop tokens and the turns (the
 * prompt templates, else the Jinja template's family). A stop token that is several tokens long (LiteRT-LM
 * tokenizes such a text as plain text and stops on the sequence) is not a stop here: the C generate loop
 * stops on single ids; Python's API stops on the sequence. */
static int open_litertlm(engine *e, char **error_msg) {
    plm_litertlm *f = NULL;
    int st = plm_litertlm_open(e->path, &f, error_msg);
    if (st) return st;
    plm_litertlm_llm_metadata *meta = (plm_litertlm_llm_metadata *)calloc(1, sizeof *meta);
    if (!meta) {
        plm_litertlm_close(f);
        return err(error_msg, PLM_ERR_NOMEM, "out of memory");
    }
    int64_t mi = plm_litertlm_find(f, PLM_LITERTLM_TFLITE_MODEL, "tf_lite_prefill_decode");
    if (mi < 0) mi = plm_litertlm_find(f, PLM_LITERTLM_TFLITE_MODEL, NULL);
    int type;
    uint64_t off = 0, size = 0;
    const char *role;
    if (mi < 0 || plm_litertlm_section(f, mi, &type, &off, &size, &role) != PLM_OK)
        st = err(error_msg, PLM_ERR_FORMAT, "%s: no TFLiteModel section (tf_lite_prefill_decode)", e->path);
    if (!st) st = plm_model_open_litert(e->path, off, size, &e->model, error_msg);
    if (!st) {
        int kind;
        const void *data;
        uint64_t n;
        st = plm_litertlm_tokenizer(f, &kind, &data, &n, error_msg);
        if (st == PLM_ERR_NOT_FOUND)
            st = err(error_msg, PLM_ERR_FORMAT, "%s: no tokenizer section (SP_Tokenizer or HF_Tokenizer_Zlib)",
                     e->path);
        char what[600];
        snprintf(what, sizeof what, "%s: tokenizer section", e->path);
        if (!st) st = plm_tokenizer_from_bytes(data, n, -1, NULL, 0, what, &e->tok, error_msg);
    }
    if (!st) {
        st = plm_litertlm_metadata(f, meta, error_msg);
        if (st == PLM_ERR_NOT_FOUND) st = PLM_OK, memset(meta, 0, sizeof *meta);
    }
    if (!st) st = configure(e, NULL, error_msg);
    if (!st && meta->start_token.kind == PLM_LITERTLM_TOKEN_IDS && meta->start_token.n_ids == 1) {
        e->bos = meta->token_ids[meta->start_token.first_id], e->add_bos = 1;
    } else if (!st && meta->start_token.kind == PLM_LITERTLM_TOKEN_TEXT) {
        st = meta_token(e, meta->start_token.text, "start_token", &e->bos, error_msg);
        e->add_bos = 1;
    }
    for (int64_t i = 0; !st && i < meta->n_stop_tokens; i++) {
        const plm_litertlm_token *t = &meta->stop_tokens[i];
        if (t->kind == PLM_LITERTLM_TOKEN_IDS && t->n_ids == 1) {
            add_stop(e, meta->token_ids[t->first_id]);
        } else if (t->kind == PLM_LITERTLM_TOKEN_TEXT) {
            char *text = str_of(t->text);
            const int64_t id = text ? single_token(e, text) : -1;
            if (id >= 0) add_stop(e, (int32_t)id);
            free(text);
        }
    }
    if (!st && (meta->has_user_affixes || meta->has_model_affixes)) { /* LiteRT-LM's PromptTemplates */
        e->has_templates = 1;
        memset(&e->tpl, 0, sizeof e->tpl);
        snprintf(e->tpl.user_prefix, sizeof e->tpl.user_prefix, "%.*s", (int)meta->user_prefix.len,
                 meta->user_prefix.ptr ? meta->user_prefix.ptr : "");
        snprintf(e->tpl.model_prefix, sizeof e->tpl.model_prefix, "%.*s%.*s", (int)meta->user_suffix.len,
                 meta->user_suffix.ptr ? meta->user_suffix.ptr : "", (int)meta->model_prefix.len,
                 meta->model_prefix.ptr ? meta->model_prefix.ptr : "");
        snprintf(e->tpl.model_suffix, sizeof e->tpl.model_suffix, "%.*s", (int)meta->model_suffix.len,
                 meta->model_suffix.ptr ? meta->model_suffix.ptr : "");
    } else if (!st && meta->has_jinja_template && !e->has_templates) {
        char *tmpl = str_of(meta->jinja_template);
        const int32_t *eos;
        const int64_t n_eos = plm_tokenizer_eos_ids(e->tok, &eos);
        char *bos_text = token_text(e, e->bos), *eos_text = token_text(e, n_eos ? eos[0] : e->n_stops ? e->stops[0] : -1);
        if (tmpl) {
            e->family = plm_chat_template_detect(tmpl, bos_text, eos_text, e->add_bos, &e->tpl);
            e->has_templates = e->family != NULL;
        }
        free(tmpl), free(bos_text), free(eos_text);
    }
    free(meta);
    plm_litertlm_close(f);
    return st;
}

int LlmInferenceEngine_CreateEngine(const LlmModelSettings *ms, LlmInferenceEngine_Engine **engine_out,
                                    char **error_msg) {
    if (error_msg) *error_msg = NULL;
    if (!ms || !engine_out || !ms->model_path)
        return err(error_msg, PLM_ERR_INVALID_ARG, "LlmInferenceEngine_CreateEngine: model_settings, its "
                   "model_path and engine_out are required");
    *engine_out = NULL;
    if (ms->vision_encoder_path || ms->vision_adapter_path)
        return err(error_msg, PLM_ERR_INVALID_ARG, "%s: vision_encoder_path / vision_adapter_path: pocketlm runs "
                   "text models only", ms->model_path);
    if (ms->num_draft_tokens)
        return err(error_msg, PLM_ERR_INVALID_ARG, "%s: num_draft_tokens %zu: speculative decoding is not "
                   "supported", ms->model_path, ms->num_draft_tokens);
    if (ms->preferred_backend != kLlmPreferredBackendDefault && ms->preferred_backend != kLlmPreferredBackendGpu)
        return err(error_msg, PLM_ERR_INVALID_ARG, "%s: preferred_backend %d is not an LlmPreferredBackend",
                   ms->model_path, (int)ms->preferred_backend);
    if (ms->preferred_backend == kLlmPreferredBackendGpu) /* MediaPipe logs its backend choice too */
        fprintf(stderr, "pocketlm: %s: preferred_backend GPU is recorded only: the model runs on the CPU (the "
                "phone's CPU path), so speed and memory figures are the CPU backend's\n", ms->model_path);
    engine *e = (engine *)calloc(1, sizeof *e);
    if (!e || !(e->path = strdup(ms->model_path))) {
        free(e);
        return err(error_msg, PLM_ERR_NOMEM, "out of memory");
    }
    atomic_init(&e->refs, 1);
    e->max_tokens = ms->max_num_tokens ? (int64_t)ms->max_num_tokens : 512;
    e->n_batch = (int64_t)ms->sequence_batch_size;
    e->max_top_k = ms->max_top_k;
    if (ms->number_of_supported_lora_ranks && ms->supported_lora_ranks) {
        e->lora_ranks = (size_t *)malloc(ms->number_of_supported_lora_ranks * sizeof(size_t));
        if (!e->lora_ranks) {
            engine_unref(e);
            return err(error_msg, PLM_ERR_NOMEM, "out of memory");
        }
        memcpy(e->lora_ranks, ms->supported_lora_ranks, ms->number_of_supported_lora_ranks * sizeof(size_t));
        e->n_lora_ranks = ms->number_of_supported_lora_ranks;
    }
    FILE *f = fopen(e->path, "rb");
    char magic[8] = {0};
    if (!f) {
        engine_unref(e);
        return err(error_msg, PLM_ERR_IO, "%s: cannot open the model file", ms->model_path);
    }
    const size_t head = fread(magic, 1, 8, f), got = head < 4 ? head : 4;
    fclose(f);
    plm_llm_params *meta = (plm_llm_params *)calloc(1, sizeof *meta);
    int has_meta = 0, st;
    plm_task *task = NULL;
    if (!meta) st = err(error_msg, PLM_ERR_NOMEM, "out of memory");
    else if (got == 4 && memcmp(magic, "LITE", 4) == 0) /* LITERTLM: plm_litertlm_open checks the rest */
        st = open_litertlm(e, error_msg), has_meta = -1; /* configured there, from its LlmMetadata */
    else if (!(got == 4 && memcmp(magic, "GGUF", 4) == 0) && plm_task_probe(e->path))
        st = open_task(e, error_msg, meta, &has_meta, &task); /* a zip, found by its end record, not its first bytes */
    else if (head == 8 && memcmp(magic + 4, "TFL3", 4) == 0) /* a TFLite flatbuffer */
        st = err(error_msg, PLM_ERR_INVALID_ARG, "%s: a bare .tflite carries no tokenizer, and LlmModelSettings has no "
                 "field for one: bundle it with its tokenizer into a .task (MediaPipe's bundler) or a .litertlm, or "
                 "run it from Python or the CLI with --tokenizer", ms->model_path);
    else if (got < 4 || memcmp(magic, "GGUF", 4) != 0)
        st = err(error_msg, PLM_ERR_FORMAT, "%s: neither a GGUF model file nor a .task bundle (it starts with %02x %02x "
                 "%02x %02x; GGUF files start with 'GGUF', .task bundles are zip archives)", ms->model_path,
                 got > 0 ? (unsigned char)magic[0] : 0, got > 1 ? (unsigned char)magic[1] : 0,
                 got > 2 ? (unsigned char)magic[2] : 0, got > 3 ? (unsigned char)magic[3] : 0);
    else {
        st = plm_model_open(e->path, 0, 0, &e->model, error_msg);
        plm_gguf *g = NULL;
        if (!st) st = plm_gguf_open(e->path, 0, 0, &g, error_msg);
        if (!st) st = plm_tokenizer_from_gguf(g, e->path, &e->tok, error_msg);
        plm_gguf_close(g);
    }
    if (!st && has_meta >= 0) st = configure(e, has_meta ? meta : NULL, error_msg);
    plm_task_close(task);
    free(meta);
    if (st) {
        engine_unref(e);
        return st;
    }
    *engine_out = e;
    return PLM_OK;
}

void LlmInferenceEngine_Engine_Delete(LlmInferenceEngine_Engine *eng) { engine_unref((engine *)eng); }

/* ---- sessions ------------------------------------------------------------------ */

/* A session's LoRA adapter: a GGUF LoRA adapter (pocketlm's converter's or
 * llama.cpp's), checked against the model and supported_lora_ranks. A PEFT
 * adapter is named as such: Python reads those; here it is converted first. */
static int open_lora(engine *e, const char *path, plm_lora **out, char **error_msg) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    const size_t got = f ? fread(magic, 1, 4, f) : 0;
    if (f) fclose(f);
    char conf[4096];
    snprintf(conf, sizeof conf, "%s/adapter_config.json", path);
    FILE *pc = fopen(conf, "rb");
    if (pc) fclose(pc);
    if (pc || (got == 4 && memcmp(magic, "GGUF", 4) != 0))
        return err(error_msg, PLM_ERR_INVALID_ARG, "lora_path '%s' is not a GGUF LoRA adapter%s; the C API reads the "
                   "adapter files pocketlm's converter writes (ConversionConfig(lora_ckpt=..., lora_rank=...), or "
                   "`pocketlm convert-lora`) and llama.cpp's convert_lora_to_gguf.py writes", path,
                   pc ? " (it is a PEFT adapter folder)" : "");
    int st = plm_lora_open(e->model, path, 0, 0, out, error_msg);
    if (st) return st;
    if (e->n_lora_ranks) {
        const int64_t r = plm_lora_rank(*out);
        size_t i = 0;
        while (i < e->n_lora_ranks && (int64_t)e->lora_ranks[i] != r) i++;
        if (i == e->n_lora_ranks) {
            plm_lora_free(*out);
            *out = NULL;
            return err(error_msg, PLM_ERR_INVALID_ARG, "%s: the adapter has rank %lld, which is not among the "
                       "engine's supported_lora_ranks", path, (long long)r);
        }
    }
    return PLM_OK;
}

int LlmInferenceEngine_CreateSession(LlmInferenceEngine_Engine *eng, const LlmSessionConfig *cfg,
                                     LlmInferenceEngine_Session **out, char **error_msg) {
    if (error_msg) *error_msg = NULL;
    engine *e = (engine *)eng;
    if (!e || !cfg || !out)
        return err(error_msg, PLM_ERR_INVALID_ARG, "LlmInferenceEngine_CreateSession: engine, session_config and "
                   "session_out are required");
    *out = NULL;
    if (cfg->enable_vision_modality)
        return err(error_msg, PLM_ERR_INVALID_ARG, "%s: enable_vision_modality: pocketlm runs text models only",
                   e->path);
    if (!(cfg->temperature >= 0))
        return err(error_msg, PLM_ERR_INVALID_ARG, "temperature must be a number >= 0, got %g", cfg->temperature);
    if (e->max_top_k && cfg->topk > e->max_top_k)
        return err(error_msg, PLM_ERR_INVALID_ARG, "topk %zu is larger than the engine's max_top_k %zu", cfg->topk,
                   e->max_top_k);
    plm_session_params p;
    plm_session_params_default(&p);
    p.max_tokens = e->max_tokens;
    if (e->n_batch > 0) p.n_batch = e->n_batch;
    p.top_k = cfg->topk <= 1 || cfg->temperature == 0 ? 1 : (int64_t)cfg->topk;
    p.top_p = cfg->topp > 0 ? cfg->topp : 1.0;
    p.temperature = cfg->temperature;
    p.seed = (uint64_t)cfg->random_seed;
    if (cfg->lora_path && cfg->lora_path[0]) {
        const int lst = open_lora(e, cfg->lora_path, &p.lora, error_msg);
        if (lst) return lst;
    }
    session *s = (session *)calloc(1, sizeof *s);
    const int st = s ? plm_session_create(e->model, &p, &s->s, error_msg) : err(error_msg, PLM_ERR_NOMEM, "out of memory");
    plm_lora_free(p.lora); /* the session holds its own reference */
    if (st) {
        free(s);
        return st;
    }
    atomic_fetch_add(&e->refs, 1);
    s->e = e;
    s->has_tpl = e->has_templates, s->tpl = e->tpl;
    *out = s;
    return PLM_OK;
}

static void join(session *s) {
    if (s->thread_live && pthread_equal(pthread_self(), s->thread)) { /* called from the done callback */
        pthread_detach(s->thread);
        s->thread_live = 0;
        return;
    }
    if (s->thread_live) {
        pthread_join(s->thread, NULL);
        s->thread_live = 0;
    }
}

void LlmInferenceEngine_Session_Delete(LlmInferenceEngine_Session *ss) {
    session *s = (session *)ss;
    if (!s) return;
    join(s);
    plm_session_free(s->s);
    engine_unref(s->e);
    free(s->resp);
    free(s->text);
    free(s);
}

static int fits(session *s, int64_t extra, char **error_msg) {
    const int64_t n = plm_session_size(s->s) + extra, limit = s->e->max_tokens;
    if (n >= limit)
        return err(error_msg, PLM_ERR_INVALID_ARG, "the input is %lld tokens (with what this session already holds), "
                   "but maxTokens is %lld and must leave room for at least one response token; shorten the prompt "
                   "or raise maxTokens", (long long)n, (long long)limit);
    return PLM_OK;
}

static int busy_error(session *s, char **error_msg) {
    return err(error_msg, PLM_ERR_INVALID_ARG, "%s: a response is being generated in this session; wait for it "
               "(done = true) first", s->e->path);
}

/* Text from a C caller is UTF-8 or refused, naming the byte offset: a surrogate written as UTF-8 (CESU-8, Java's
 * modified UTF-8: ED A0..BF xx) or any other ill-formed byte would otherwise reach the tokenizer as U+FFFD. */
static int check_utf8(const char *call, const char *what, const char *text, char **error_msg) {
    const size_t n = strlen(text);
    const int64_t at = plm_utf8_invalid_at((const uint8_t *)text, n);
    if (at < 0) return PLM_OK;
    const uint8_t *b = (const uint8_t *)text + at;
    if (b[0] == 0xED && (size_t)at + 2 < n && b[1] >= 0xA0 && b[1] <= 0xBF && (b[2] & 0xC0) == 0x80)
        return err(error_msg, PLM_ERR_INVALID_ARG, "%s: %s is not valid UTF-8: bytes ED %02X %02X at byte offset %lld "
                   "encode the UTF-16 surrogate U+%04X (CESU-8 or Java's modified UTF-8?)", call, what, b[1], b[2],
                   (long long)at, 0xD000u | ((b[1] & 0x3Fu) << 6) | (b[2] & 0x3Fu));
    const char *why = plm_utf8_char_len(b, n - (size_t)at) == 0 ? "starts a sequence cut short"
                                                                : "is not part of a valid sequence";
    return err(error_msg, PLM_ERR_INVALID_ARG, "%s: %s is not valid UTF-8: byte 0x%02X at byte offset %lld %s", call,
               what, b[0], (long long)at, why);
}

int LlmInferenceEngine_Session_AddQueryChunk(LlmInferenceEngine_Session *ss, const char *input, char **error_msg) {
    if (error_msg) *error_msg = NULL;
    session *s = (session *)ss;
    if (!s || !input) return err(error_msg, PLM_ERR_INVALID_ARG, "AddQueryChunk: session and input are required");
    if (check_utf8("AddQueryChunk", "input", input, error_msg)) return PLM_ERR_INVALID_ARG;
    if (atomic_load(&s->busy)) return busy_error(s, error_msg);
    join(s);
    const engine *e = s->e;
    const plm_turn_templates *t = s->has_tpl ? &s->tpl : NULL;
    /* the whole chunk (opening + text, as one string: LiteRT-LM tokenizes a template's prefix with the
     * input) is tokenized first, then checked against maxTokens, then added */
    char *opening = NULL;
    int formatted = s->formatted, bos = 0;
    if (!s->in_user_turn) {
        bos = plm_session_size(s->s) == 0 && e->add_bos && e->bos >= 0;
        if (t) {
            const char *up = t->user_prefix;
            size_t a = 0, b = strlen(up);
            while (a < b && strchr(" \t\n\r\v\f", up[a])) a++;
            while (b > a && strchr(" \t\n\r\v\f", up[b - 1])) b--;
            if (s->turns == 0 && b > a && memmem(input, strlen(input), up + a, b - a)) {
                formatted = 1; /* a prompt already in the chat format is taken as it is */
            } else if (asprintf(&opening, "%s%s%s", s->turns ? t->model_suffix : t->preamble, up, input) < 0) {
                return err(error_msg, PLM_ERR_NOMEM, "out of memory");
            }
        }
    }
    int32_t *b_ids = NULL;
    int64_t nb = 0;
    int st = encode(e, opening ? opening : input, &b_ids, &nb, error_msg);
    if (!st) st = fits(s, bos + nb, error_msg);
    if (!st && bos) st = plm_session_add_tokens(s->s, &e->bos, 1, error_msg);
    if (!st && nb) st = plm_session_add_tokens(s->s, b_ids, nb, error_msg);
    free(opening), free(b_ids);
    if (st) return st;
    s->formatted = formatted;
    s->in_user_turn = 1;
    return PLM_OK;
}

int LlmInferenceEngine_Session_AddImage(LlmInferenceEngine_Session *ss, const void *bitmap, char **error_msg) {
    (void)ss, (void)bitmap;
    return err(error_msg, PLM_ERR_INVALID_ARG, "AddImage: pocketlm runs text models only");
}

static int close_turn(session *s, char **error_msg) {
    if (!s->in_user_turn) return err(error_msg, PLM_ERR_INVALID_ARG, "add a query chunk before generating a response");
    const engine *e = s->e;
    if (s->has_tpl && !s->formatted) {
        char *closing = NULL;
        if (asprintf(&closing, "%s%s", s->tpl.user_suffix, s->tpl.model_prefix) < 0)
            return err(error_msg, PLM_ERR_NOMEM, "out of memory");
        int32_t *ids = NULL;
        int64_t n = 0;
        int st = encode(e, closing, &ids, &n, error_msg);
        if (!st) st = fits(s, n, error_msg);
        if (!st && n) st = plm_session_add_tokens(s->s, ids, n, error_msg);
        free(closing), free(ids);
        if (st) return st;
    }
    s->in_user_turn = s->formatted = 0;
    return PLM_OK;
}

/* ---- the streaming decoder (python's StreamDecoder) ------------------------------- */

static char *decode_range(const session *s, int64_t a, int64_t b, size_t *len) {
    uint64_t n = 0;
    *len = 0;
    if (b <= a) return strdup("");
    if (plm_tokenizer_decode(s->e->tok, s->resp + a, b - a, NULL, 0, &n, NULL)) return NULL;
    char *o = (char *)malloc(n + 1);
    if (!o) return NULL;
    plm_tokenizer_decode(s->e->tok, s->resp + a, b - a, o, n, &n, NULL);
    o[n] = '\0';
    *len = n;
    return o;
}

static void deliver(session *s, const char *piece, size_t n, int done) {
    if (s->cb) {
        /* as MediaPipe's: the context itself lives for the call; its array and
         * strings are the callback's to free with CloseResponseContext */
        char **arr = (char **)calloc(1, sizeof(char *));
        char *str = (char *)malloc(n + 1);
        if (!arr || !str) {
            free(arr), free(str);
            s->failed = 1;
            return;
        }
        memcpy(str, piece, n);
        str[n] = '\0';
        arr[0] = str;
        LlmResponseContext rc = {arr, 1, done != 0};
        s->cb(s->cb_ctx, &rc);
        return;
    }
    if (s->text_len + n + 1 > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 256;
        while (cap < s->text_len + n + 1) cap *= 2;
        char *g = (char *)realloc(s->text, cap);
        if (!g) {
            s->failed = 1;
            return;
        }
        s->text = g, s->text_cap = cap;
    }
    memcpy(s->text + s->text_len, piece, n);
    s->text_len += n;
    s->text[s->text_len] = '\0';
}

static void stream_step(session *s, int flush) {
    size_t lb, lt;
    if (flush && s->read == s->n_resp) return;
    char *before = decode_range(s, s->prefix, s->read, &lb);
    char *text = decode_range(s, s->prefix, s->n_resp, &lt);
    if (!before || !text) {
        s->failed = 1;
    } else if (flush) {
        if (lt >= lb && memcmp(text, before, lb) == 0 && lt > lb) deliver(s, text + lb, lt - lb, 0);
        s->prefix = s->read = s->n_resp;
    } else if (!(lt >= 3 && memcmp(text + lt - 3, "\xef\xbf\xbd", 3) == 0) && lt > lb && memcmp(text, before, lb) == 0) {
        deliver(s, text + lb, lt - lb, 0);
        s->prefix = s->read, s->read = s->n_resp;
    }
    free(before), free(text);
}

static int on_token(void *user, int32_t token) {
    session *s = (session *)user;
    if (s->n_resp == s->cap_resp) {
        const int64_t cap = s->cap_resp ? 2 * s->cap_resp : 64;
        int32_t *g = (int32_t *)realloc(s->resp, (size_t)cap * sizeof(int32_t));
        if (!g) return s->failed = 1;
        s->resp = g, s->cap_resp = cap;
    }
    s->resp[s->n_resp++] = token;
    stream_step(s, 0);
    return s->failed;
}

static int generate(session *s, char **error_msg) {
    s->n_resp = s->prefix = s->read = 0;
    s->text_len = 0;
    s->failed = 0;
    int st = plm_session_generate(s->s, s->e->stops, s->e->n_stops, on_token, s, &s->stats, error_msg);
    stream_step(s, 1);
    s->turns++;
    if (!st && s->failed) st = err(error_msg, PLM_ERR_NOMEM, "out of memory streaming the response");
    return st;
}

int LlmInferenceEngine_Session_PredictSync(LlmInferenceEngine_Session *ss, LlmResponseContext *rc, char **error_msg) {
    if (error_msg) *error_msg = NULL;
    session *s = (session *)ss;
    if (!s || !rc) return err(error_msg, PLM_ERR_INVALID_ARG, "PredictSync: session and response_context are required");
    memset(rc, 0, sizeof *rc);
    if (atomic_exchange(&s->busy, 1)) return busy_error(s, error_msg);
    join(s);
    s->cb = NULL;
    int st = close_turn(s, error_msg);
    if (!st) st = generate(s, error_msg);
    if (!st) {
        rc->response_array = (char **)calloc(1, sizeof(char *));
        if (rc->response_array) rc->response_array[0] = strdup(s->text ? s->text : "");
        if (!rc->response_array || !rc->response_array[0]) {
            free(rc->response_array);
            rc->response_array = NULL;
            st = err(error_msg, PLM_ERR_NOMEM, "out of memory");
        } else {
            rc->response_count = 1, rc->done = true;
        }
    }
    atomic_store(&s->busy, 0);
    return st;
}

static void *async_main(void *arg) {
    session *s = (session *)arg;
    char *error = NULL;
    generate(s, &error); /* an error ends the stream early: what came is delivered, then done */
    free(error);
    atomic_store(&s->busy, 0);
    deliver(s, "", 0, 1);
    return NULL;
}

int LlmInferenceEngine_Session_PredictAsync(LlmInferenceEngine_Session *ss, void *ctx, char **error_msg,
                                            void (*callback)(void *, LlmResponseContext *)) {
    if (error_msg) *error_msg = NULL;
    session *s = (session *)ss;
    if (!s || !callback) return err(error_msg, PLM_ERR_INVALID_ARG, "PredictAsync: session and callback are required");
    if (atomic_exchange(&s->busy, 1)) return busy_error(s, error_msg);
    join(s);
    int st = close_turn(s, error_msg);
    if (st) {
        atomic_store(&s->busy, 0);
        return st;
    }
    s->cb = callback, s->cb_ctx = ctx;
    if (pthread_create(&s->thread, NULL, async_main, s) != 0) {
        atomic_store(&s->busy, 0);
        return err(error_msg, PLM_ERR_NOMEM, "PredictAsync: cannot start a thread");
    }
    s->thread_live = 1;
    return PLM_OK;
}

int LlmInferenceEngine_Session_Clone(LlmInferenceEngine_Session *ss, LlmInferenceEngine_Session **out,
                                     char **error_msg) {
    if (error_msg) *error_msg = NULL;
    session *s = (session *)ss;
    if (!s || !out) return err(error_msg, PLM_ERR_INVALID_ARG, "Clone: session and cloned_session are required");
    *out = NULL;
    if (atomic_load(&s->busy)) return busy_error(s, error_msg);
    join(s);
    session *c = (session *)calloc(1, sizeof *c);
    if (!c) return err(error_msg, PLM_ERR_NOMEM, "out of memory");
    const int st = plm_session_clone(s->s, &c->s, error_msg);
    if (st) {
        free(c);
        return st;
    }
    c->e = s->e;
    atomic_fetch_add(&s->e->refs, 1);
    c->in_user_turn = s->in_user_turn, c->formatted = s->formatted, c->turns = s->turns;
    c->has_tpl = s->has_tpl, c->tpl = s->tpl;
    *out = c;
    return PLM_OK;
}

int LlmInferenceEngine_Session_SizeInTokens(LlmInferenceEngine_Session *ss, const char *input, char **error_msg) {
    if (error_msg) *error_msg = NULL;
    session *s = (session *)ss;
    if (!s || !input) {
        err(error_msg, PLM_ERR_INVALID_ARG, "SizeInTokens: session and input are required");
        return -1;
    }
    if (check_utf8("SizeInTokens", "input", input, error_msg)) return -1;
    int64_t n = 0;
    if (plm_tokenizer_encode(s->e->tok, input, strlen(input), 0, NULL, 0, &n, error_msg) != PLM_OK) return -1;
    return n > 0x7fffffff ? -1 : (int)n;
}

void LlmInferenceEngine_CloseResponseContext(LlmResponseContext *rc) {
    if (!rc) return;
    for (int i = 0; i < rc->response_count && rc->response_array; i++) free(rc->response_array[i]);
    free(rc->response_array);
    rc->response_array = NULL;
    rc->response_count = 0;
}

const char *plm_llm_engine_turn_templates(LlmInferenceEngine_Engine *ee, char *fields[7]) {
    engine *e = (engine *)ee;
    if (!fields) return NULL;
    for (int i = 0; i < 7; i++) fields[i] = NULL;
    if (!e || !e->has_templates) return NULL;
    const char *f[7] = {e->tpl.user_prefix, e->tpl.user_suffix, e->tpl.model_prefix, e->tpl.model_suffix,
                        e->tpl.system_prefix, e->tpl.system_suffix, e->tpl.preamble};
    for (int i = 0; i < 7; i++) {
        fields[i] = strdup(f[i]);
        if (!fields[i]) {
            for (int j = 0; j < i; j++) free(fields[j]), fields[j] = NULL;
            return NULL;
        }
    }
    return e->family ? e->family : "bundle";
}

int plm_llm_engine_memory(LlmInferenceEngine_Engine *ee, int64_t *weights, int64_t *kv_cache, int64_t *buffers) {
    engine *e = (engine *)ee;
    if (!e) return PLM_ERR_INVALID_ARG;
    const plm_model_config *c = plm_model_get_config(e->model);
    plm_session_params p;
    plm_session_params_default(&p); /* what CreateSession allocates: F16 KV, the threads in force now */
    p.max_tokens = e->max_tokens;
    if (e->n_batch > 0) p.n_batch = e->n_batch;
    /* the engine's own figure (a ring on sliding-window layers); a LiteRT model's caches are its graph's */
    int64_t kv = (int64_t)plm_session_kv_bytes(e->model, &p);
    if (kv == 0) kv = e->max_tokens * 2 * c->n_layers * c->n_kv_heads * c->head_dim * 2;
    if (weights) *weights = (int64_t)(plm_model_weight_bytes(e->model) + plm_model_owned_bytes(e->model));
    if (kv_cache) *kv_cache = kv;
    if (buffers) *buffers = (int64_t)plm_session_bytes(e->model, &p) - kv;
    return PLM_OK;
}

int plm_llm_session_set_prompt_templates(LlmInferenceEngine_Session *ss, const char *user_prefix,
                                         const char *user_suffix, const char *model_prefix, const char *model_suffix,
                                         const char *system_prefix, const char *system_suffix, char **error_msg) {
    if (error_msg) *error_msg = NULL;
    session *s = (session *)ss;
    if (!s) return err(error_msg, PLM_ERR_INVALID_ARG, "set_prompt_templates: session is required");
    if (atomic_load(&s->busy)) return busy_error(s, error_msg);
    const char *f[6] = {user_prefix, user_suffix, model_prefix, model_suffix, system_prefix, system_suffix};
    static const char *const names[6] = {"user_prefix", "user_suffix", "model_prefix", "model_suffix",
                                         "system_prefix", "system_suffix"};
    for (int i = 0; i < 6; i++)
        if (f[i] && check_utf8("set_prompt_templates", names[i], f[i], error_msg)) return PLM_ERR_INVALID_ARG;
    char(*dst[6])[256] = {&s->tpl.user_prefix, &s->tpl.user_suffix, &s->tpl.model_prefix, &s->tpl.model_suffix,
                          &s->tpl.system_prefix, &s->tpl.system_suffix};
    for (int i = 0; i < 6; i++)
        if (f[i] && strlen(f[i]) >= sizeof *dst[i])
            return err(error_msg, PLM_ERR_INVALID_ARG, "set_prompt_templates: a template field is longer than %zu "
                       "bytes", sizeof *dst[i] - 1);
    memset(&s->tpl, 0, sizeof s->tpl); /* no preamble: the session's own templates, as Python's PromptTemplates */
    for (int i = 0; i < 6; i++) snprintf(*dst[i], sizeof *dst[i], "%s", f[i] ? f[i] : "");
    s->has_tpl = 1;
    return PLM_OK;
}

void plm_llm_session_cancel(LlmInferenceEngine_Session *ss) {
    if (ss) plm_session_cancel(((session *)ss)->s);
}

int64_t plm_llm_session_n_tokens(LlmInferenceEngine_Session *ss) {
    return ss ? plm_session_size(((session *)ss)->s) : 0;
}

int plm_llm_session_last_stats(LlmInferenceEngine_Session *ss, int64_t *prefill_tokens, int64_t *decode_tokens,
                               double *prefill_s, double *decode_s, int *stop_reason) {
    if (!ss) return PLM_ERR_INVALID_ARG;
    const plm_generate_stats *st = &((session *)ss)->stats;
    if (prefill_tokens) *prefill_tokens = st->prefill_tokens;
    if (decode_tokens) *decode_tokens = st->decode_tokens;
    if (prefill_s) *prefill_s = st->prefill_s;
    if (decode_s) *decode_s = st->decode_s;
    if (stop_reason) *stop_reason = st->stop_reason;
    return PLM_OK;
}

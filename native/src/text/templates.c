/*
 * templates.c — a model's chat template recognised by family (ChatML and
 * Qwen's, Llama-3, Gemma and Gemma 3, Phi-3 and Phi-4-mini, Zephyr, SOLAR)
 * and cut into the turn strings MediaPipe's prompt templates take, so C, JNI
 * and Python wrap a prompt alike without a Jinja engine; and a conversation
 * rendered from those turns as the template renders it. A template that is
 * not recognised gets NULL, never a guess.
 */
#include "text/text.h"
#include "pocketlm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_str(char *dst, size_t cap, const char *a, const char *b) {
    snprintf(dst, cap, "%s%s", a ? a : "", b ? b : "");
}

/* ChatML templates that write a default system message before the first
 * turn (SmolLM2's): the literal '<|im_start|>system\n...<|im_end|>\n'. */
static void chatml_preamble(const char *tmpl, char *out, size_t cap) {
    const char *key = "<|im_start|>system";
    for (const char *p = strstr(tmpl, key); p; p = strstr(p + 1, key)) {
        if (p == tmpl || (p[-1] != '\'' && p[-1] != '"')) continue; /* a string literal of its own */
        const char quote = p[-1];
        const char *end = strstr(p, "<|im_end|>");
        const char *close = strchr(p, quote);
        if (!end || !close || close < end) continue;
        size_t o = 0;
        for (const char *q = p; q < close && o + 2 < cap; q++) {
            if (q[0] == '\\' && q + 1 < close && q[1] == 'n') out[o++] = '\n', q++;
            else out[o++] = *q;
        }
        out[o] = '\0';
        return;
    }
}

/* Whether the template's source holds needle, where a '\n' of needle may be
 * written as a newline or as the two characters backslash, n. */
static int tmpl_has(const char *tmpl, const char *needle) {
    for (const char *p = tmpl; *p; p++) {
        const char *q = p, *n = needle;
        while (*n) {
            if (*n == '\n' && q[0] == '\\' && q[1] == 'n') q += 2;
            else if (*q == *n) q++;
            else break;
            n++;
        }
        if (!*n) return 1;
    }
    return 0;
}

/* The template's source with the whitespace inside its {{ }} and {% %} tags
 * dropped where it is outside a string literal (and the tags' '-' trim
 * marks with it), so an expression is found however it is spaced; text
 * outside the tags and inside literals is kept. NULL when out of memory. */
static char *squeezed(const char *tmpl) {
    const size_t n = strlen(tmpl);
    char *o = (char *)malloc(n + 1);
    if (!o) return NULL;
    size_t k = 0;
    int in_tag = 0;
    char quote = 0;
    for (size_t i = 0; i < n; i++) {
        const char c = tmpl[i];
        if (!in_tag) {
            if (c == '{' && (tmpl[i + 1] == '{' || tmpl[i + 1] == '%')) {
                in_tag = 1;
                o[k++] = c, o[k++] = tmpl[++i];
                if (tmpl[i + 1] == '-') i++;
                continue;
            }
            o[k++] = c;
        } else if (quote) {
            o[k++] = c;
            if (c == '\\' && i + 1 < n) o[k++] = tmpl[++i];
            else if (c == quote) quote = 0;
        } else if (c == '\'' || c == '"') {
            o[k++] = c, quote = c;
        } else if ((c == '}' || c == '%') && tmpl[i + 1] == '}') {
            in_tag = 0;
            o[k++] = c, o[k++] = tmpl[++i];
        } else if (c == '-' && (tmpl[i + 1] == '}' || tmpl[i + 1] == '%') && tmpl[i + 2] == '}') {
            continue; /* a trim mark before the tag's end */
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            o[k++] = c;
        }
    }
    o[k] = '\0';
    return o;
}

/* The string literal right after key (past spaces and a '+') in the
 * template, its \\n written as a newline, into out: 1 when there is one. */
static int literal_after(const char *tmpl, const char *key, char *out, size_t cap) {
    const char *p = strstr(tmpl, key);
    if (!p) return 0;
    p += strlen(key);
    while (*p == ' ' || *p == '+') p++;
    if (*p != '\'' && *p != '"') return 0;
    const char quote = *p++;
    size_t o = 0;
    for (; *p && *p != quote && o + 1 < cap; p++) {
        if (p[0] == '\\' && p[1] == 'n') out[o++] = '\n', p++;
        else out[o++] = *p;
    }
    out[o] = '\0';
    return *p == quote;
}

const char *plm_chat_template_detect(const char *tmpl, const char *bos, const char *eos, int strip_bos,
                                     plm_turn_templates *t) {
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    if (!tmpl) return NULL;
    bos = bos ? bos : "";
    eos = eos ? eos : "";
    const int writes_bos = strstr(tmpl, "bos_token") != NULL && !strip_bos;
    const char *family = NULL;
    char *sq = squeezed(tmpl);
    if (!sq) return NULL;
    /* a family is taken when the template writes its turn end and its
     * generation prompt literally; a look-alike (other separators or turn
     * ends) is not recognised, so it is not wrapped in the wrong markers */
    if (tmpl_has(tmpl, "<|im_end|>") && tmpl_has(tmpl, "<|im_start|>assistant\n") &&
        !tmpl_has(tmpl, "<|im_start|>assistant\n<think>")) {
        /* (a generation prompt that opens a <think> block, QwQ's, is not the prefix of the replies it
         * renders before it: no turn templates hold that.) Qwen's own templates (tool calls in
         * <tool_call>): Qwen2/2.5's write a default system message, Qwen3's take enable_thinking, whose
         * default (not given) writes no <think> block after the generation prompt */
        const int qwen = strstr(tmpl, "<tool_call>") != NULL;
        family = !qwen ? "chatml" : strstr(tmpl, "enable_thinking") ? "qwen3" : "qwen2";
        put_str(t->user_prefix, sizeof t->user_prefix, "<|im_start|>user\n", NULL);
        put_str(t->user_suffix, sizeof t->user_suffix, "<|im_end|>\n", NULL);
        put_str(t->model_prefix, sizeof t->model_prefix, "<|im_start|>assistant\n", NULL);
        put_str(t->model_suffix, sizeof t->model_suffix, "<|im_end|>\n", NULL);
        put_str(t->system_prefix, sizeof t->system_prefix, "<|im_start|>system\n", NULL);
        put_str(t->system_suffix, sizeof t->system_suffix, "<|im_end|>\n", NULL);
        chatml_preamble(tmpl, t->preamble, sizeof t->preamble);
    } else if (tmpl_has(tmpl, "<end_of_turn>") && tmpl_has(tmpl, "<start_of_turn>model\n")) {
        family = "gemma";
        put_str(t->user_prefix, sizeof t->user_prefix, "<start_of_turn>user\n", NULL);
        put_str(t->user_suffix, sizeof t->user_suffix, "<end_of_turn>\n", NULL);
        put_str(t->model_prefix, sizeof t->model_prefix, "<start_of_turn>model\n", NULL);
        put_str(t->model_suffix, sizeof t->model_suffix, "<end_of_turn>\n", NULL);
        /* Gemma 3 folds a system message into the first user turn, followed by the separator it names */
        char sep[32];
        if (literal_after(tmpl, "set first_user_prefix = messages[0]['content']", sep, sizeof sep) &&
            tmpl_has(sq, "'<start_of_turn>'+role+'\n'+(first_user_prefixifloop.first")) {
            family = "gemma3";
            put_str(t->system_prefix, sizeof t->system_prefix, "<start_of_turn>user\n", NULL);
            put_str(t->system_suffix, sizeof t->system_suffix, sep, NULL);
        }
    } else if (tmpl_has(tmpl, "<|eot_id|>") && tmpl_has(tmpl, "assistant<|end_header_id|>\n\n")) {
        family = "llama3";
        put_str(t->user_prefix, sizeof t->user_prefix, "<|start_header_id|>user<|end_header_id|>\n\n", NULL);
        put_str(t->user_suffix, sizeof t->user_suffix, "<|eot_id|>", NULL);
        put_str(t->model_prefix, sizeof t->model_prefix, "<|start_header_id|>assistant<|end_header_id|>\n\n", NULL);
        put_str(t->model_suffix, sizeof t->model_suffix, "<|eot_id|>", NULL);
        put_str(t->system_prefix, sizeof t->system_prefix, "<|start_header_id|>system<|end_header_id|>\n\n", NULL);
        put_str(t->system_suffix, sizeof t->system_suffix, "<|eot_id|>", NULL);
    } else if (tmpl_has(tmpl, "<|end|>") && tmpl_has(tmpl, "<|assistant|>\n")) {
        family = "phi3";
        put_str(t->user_prefix, sizeof t->user_prefix, "<|user|>\n", NULL);
        put_str(t->user_suffix, sizeof t->user_suffix, "<|end|>\n", NULL);
        put_str(t->model_prefix, sizeof t->model_prefix, "<|assistant|>\n", NULL);
        put_str(t->model_suffix, sizeof t->model_suffix, "<|end|>\n", NULL);
        put_str(t->system_prefix, sizeof t->system_prefix, "<|system|>\n", NULL);
        put_str(t->system_suffix, sizeof t->system_suffix, "<|end|>\n", NULL);
    } else if (strstr(sq, "'<|'+message['role']+'|>'+message['content']+'<|end|>'") &&
               strstr(sq, "{{'<|assistant|>'}}")) {
        family = "phi4-mini"; /* Phi-4-mini: Phi-3's markers with no newline after them */
        put_str(t->user_prefix, sizeof t->user_prefix, "<|user|>", NULL);
        put_str(t->user_suffix, sizeof t->user_suffix, "<|end|>", NULL);
        put_str(t->model_prefix, sizeof t->model_prefix, "<|assistant|>", NULL);
        put_str(t->model_suffix, sizeof t->model_suffix, "<|end|>", NULL);
        put_str(t->system_prefix, sizeof t->system_prefix, "<|system|>", NULL);
        put_str(t->system_suffix, sizeof t->system_suffix, "<|end|>", NULL);
    } else if (tmpl_has(tmpl, "<|user|>\n") && tmpl_has(tmpl, "<|assistant|>\n") && strstr(tmpl, "eos_token") &&
               *eos) {
        family = "zephyr";
        put_str(t->user_prefix, sizeof t->user_prefix, "<|user|>\n", NULL);
        put_str(t->user_suffix, sizeof t->user_suffix, eos, "\n");
        put_str(t->model_prefix, sizeof t->model_prefix, "<|assistant|>\n", NULL);
        put_str(t->model_suffix, sizeof t->model_suffix, eos, "\n");
        put_str(t->system_prefix, sizeof t->system_prefix, "<|system|>\n", NULL);
        put_str(t->system_suffix, sizeof t->system_suffix, eos, "\n");
    } else if (tmpl_has(sq, "'### User:\n'+message['content']+'\n\n'") &&
               tmpl_has(sq, "'### Assistant:\n'+message['content']}}") && tmpl_has(sq, "{{'### Assistant:\n'}}")) {
        family = "solar"; /* SOLAR-10.7B-Instruct: a reply is not closed; the next "### User:" follows it */
        put_str(t->user_prefix, sizeof t->user_prefix, "### User:\n", NULL);
        put_str(t->user_suffix, sizeof t->user_suffix, "\n\n", NULL);
        put_str(t->model_prefix, sizeof t->model_prefix, "### Assistant:\n", NULL);
        if (tmpl_has(sq, "'### System:\n'+message['content']+'\n\n'")) {
            put_str(t->system_prefix, sizeof t->system_prefix, "### System:\n", NULL);
            put_str(t->system_suffix, sizeof t->system_suffix, "\n\n", NULL);
        }
    }
    free(sq);
    if (family && writes_bos && (strncmp(family, "gemma", 5) == 0 || strcmp(family, "llama3") == 0)) {
        char tmp[sizeof t->preamble];
        snprintf(tmp, sizeof tmp, "%s%s", bos, t->preamble);
        memcpy(t->preamble, tmp, sizeof tmp);
        if (t->system_prefix[0]) {
            char sp[sizeof t->system_prefix];
            snprintf(sp, sizeof sp, "%s%s", bos, t->system_prefix);
            memcpy(t->system_prefix, sp, sizeof sp);
        }
    }
    if (family && strip_bos && *bos) { /* the tokenizer adds BOS itself: text that starts with it starts after it */
        const size_t nb = strlen(bos);
        if (strncmp(t->preamble, bos, nb) == 0) memmove(t->preamble, t->preamble + nb, strlen(t->preamble) - nb + 1);
        if (strncmp(t->system_prefix, bos, nb) == 0)
            memmove(t->system_prefix, t->system_prefix + nb, strlen(t->system_prefix) - nb + 1);
    }
    return family;
}

/* Appends text to the growing *out (length *len, capacity *cap); 0 when out of memory. */
static int append(char **out, size_t *len, size_t *cap, const char *text) {
    const size_t n = strlen(text);
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1) c *= 2;
        char *g = (char *)realloc(*out, c);
        if (!g) return 0;
        *out = g, *cap = c;
    }
    memcpy(*out + *len, text, n + 1);
    *len += n;
    return 1;
}

static int ends_with(const char *s, const char *suffix) {
    const size_t a = strlen(s), b = strlen(suffix);
    return b <= a && memcmp(s + a - b, suffix, b) == 0;
}

int plm_chat_template_render(const plm_turn_templates *t, const plm_chat_message *messages, int64_t n,
                             int add_generation_prompt, char **out, char **error) {
    if (error) *error = NULL;
    if (!t || !out || n < 0 || (n && !messages))
        return plm_errorf(error, PLM_ERR_INVALID_ARG, "chat_template_render: templates, messages and out are required");
    *out = NULL;
    char *o = NULL;
    size_t len = 0, cap = 0;
    int ok = append(&o, &len, &cap, "");
    int64_t i = 0;
    int folded = 0; /* the system text opened the first user turn (Gemma 3) */
    if (n && messages[0].role && strcmp(messages[0].role, "system") == 0) {
        if (!t->system_prefix[0] && !t->system_suffix[0]) {
            free(o);
            return plm_errorf(error, PLM_ERR_INVALID_ARG, "chat_template_render: the template takes no system turn");
        }
        ok = ok && append(&o, &len, &cap, t->system_prefix) &&
             append(&o, &len, &cap, messages[0].content ? messages[0].content : "") &&
             append(&o, &len, &cap, t->system_suffix);
        folded = t->user_prefix[0] && ends_with(t->system_prefix, t->user_prefix);
        i = 1;
    } else {
        ok = ok && append(&o, &len, &cap, t->preamble); /* a default system message stands in for none given */
    }
    for (int64_t k = 0; ok && i < n; i++, k++) {
        const char *role = messages[i].role ? messages[i].role : "";
        const char *want = k % 2 == 0 ? "user" : "assistant";
        if (strcmp(role, want) != 0) {
            free(o);
            return plm_errorf(error, PLM_ERR_INVALID_ARG, "chat_template_render: message %lld is '%s', but turns "
                              "alternate user/assistant after an optional first system message", (long long)i, role);
        }
        const char *content = messages[i].content ? messages[i].content : "";
        if (k % 2 == 0) {
            ok = (k > 0 || !folded ? append(&o, &len, &cap, t->user_prefix) : 1) && append(&o, &len, &cap, content) &&
                 append(&o, &len, &cap, t->user_suffix);
            if (ok && (i + 1 < n || add_generation_prompt)) ok = append(&o, &len, &cap, t->model_prefix);
        } else {
            ok = append(&o, &len, &cap, content) && append(&o, &len, &cap, t->model_suffix);
        }
    }
    if (!ok) {
        free(o);
        return plm_errorf(error, PLM_ERR_NOMEM, "chat_template_render: out of memory");
    }
    *out = o;
    return PLM_OK;
}

/*
 * templates.c — a model's chat template recognised by family (ChatML, Llama-3,
 * Gemma, Phi-3, ...) and cut into the turn strings MediaPipe's prompt
 * templates take, so C, JNI and Python wrap a prompt alike without a Jinja
 * engine. A template that is not recognised gets NULL, never a guess.
 */
#include "text/text.h"
#include "pocketlm.h"

#include <stdio.h>
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

const char *plm_chat_template_detect(const char *tmpl, const char *bos, const char *eos, int strip_bos,
                                     plm_turn_templates *t) {
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    if (!tmpl) return NULL;
    bos = bos ? bos : "";
    eos = eos ? eos : "";
    const int writes_bos = strstr(tmpl, "bos_token") != NULL && !strip_bos;
    const char *family = NULL;
    /* a family is taken when the template writes its turn end and its
     * generation prompt literally; a look-alike (other separators or turn
     * ends) is not recognised, so it is not wrapped in the wrong markers */
    if (tmpl_has(tmpl, "<|im_end|>") && tmpl_has(tmpl, "<|im_start|>assistant\n")) {
        family = "chatml";
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
    } else if (tmpl_has(tmpl, "<|user|>\n") && tmpl_has(tmpl, "<|assistant|>\n") && strstr(tmpl, "eos_token") &&
               *eos) {
        family = "zephyr";
        put_str(t->user_prefix, sizeof t->user_prefix, "<|user|>\n", NULL);
        put_str(t->user_suffix, sizeof t->user_suffix, eos, "\n");
        put_str(t->model_prefix, sizeof t->model_prefix, "<|assistant|>\n", NULL);
        put_str(t->model_suffix, sizeof t->model_suffix, eos, "\n");
        put_str(t->system_prefix, sizeof t->system_prefix, "<|system|>\n", NULL);
        put_str(t->system_suffix, sizeof t->system_suffix, eos, "\n");
    }
    if (family && writes_bos && (strcmp(family, "gemma") == 0 || strcmp(family, "llama3") == 0)) {
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

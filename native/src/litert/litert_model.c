/*
 * litert_model.c — a plm_model whose forward pass is a TFLite graph: the
 * public entry points that open one and say what it is. The model's config
 * carries what the graph's shapes tell (vocabulary, layers, KV heads,
 * head_dim, and the cache length as max_position_embeddings); the rest of
 * it is left zero, since no pocketlm kernel reads it.
 */
#include "litert/litert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void release(struct plm_lrt_model *lrt) { plm_lrt_model_free(lrt); }

int plm_model_open_litert(const char *path, uint64_t offset, uint64_t size, plm_model **out, char **error) {
    if (error) *error = NULL;
    if (!path || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_model_open_litert: NULL argument");
    *out = NULL;
    plm_lrt_model *lm = NULL;
    int st = plm_lrt_model_open(path, offset, size, &lm, error);
    if (st) return st;
    plm_model *m = (plm_model *)calloc(1, sizeof(plm_model));
    char *what = strdup(path);
    if (!m || !what) {
        free(m);
        free(what);
        plm_lrt_model_free(lm);
        return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", path);
    }
    plm_model_config *c = &m->cfg;
    snprintf(c->arch, sizeof c->arch, "litert");
    c->vocab_size = lm->vocab_size;
    c->n_layers = lm->n_kv / 2;
    c->n_kv_heads = lm->n_kv_heads;
    c->n_heads = lm->n_kv_heads; /* not in the graph's signatures */
    c->head_dim = lm->head_dim;
    c->max_position_embeddings = lm->cache_length;
    c->positions = PLM_POS_ROPE;  /* whatever the graph does, no learned-position limit below the cache's */
    c->bos_token_id = -1;
    m->what = what;
    m->lrt = lm;
    m->lrt_free = release;
    m->weight_bytes = lm->size;                   /* the flatbuffer, weights and all */
    m->owned_bytes = sizeof(plm_model) + sizeof(plm_lrt_model) + (lm->map_is_copy ? lm->size : 0);
    *out = m;
    return PLM_OK;
}

int plm_model_is_litert(const plm_model *m) { return m && m->lrt ? 1 : 0; }

int64_t plm_model_litert_prefill_lengths(const plm_model *m, int64_t *out, int64_t cap) {
    if (!m || !m->lrt || cap < 0 || (cap > 0 && !out)) return PLM_ERR_INVALID_ARG;
    const plm_lrt_model *lm = m->lrt;
    for (int64_t i = 0; i < lm->n_prefill && i < cap; i++) out[i] = lm->prefill_len[i];
    return lm->n_prefill;
}

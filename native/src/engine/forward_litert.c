/*
 * forward_litert.c — plm_forward for a LiteRT model: the tokens go through
 * the TFLite graph's signatures (litert/executor.c) as LiteRT-LM feeds them.
 * A last-position request prefills all but the last token and decodes the
 * last one, which gives the logits (prefill signatures give none); logits
 * of every position come from decode run token by token.
 */
#include "engine/engine.h"

#include <stdlib.h>

int plm_forward_litert(plm_session *s, const int32_t *ids, int64_t n, float *logits, int want) {
    const int64_t V = s->m->cfg.vocab_size;
    const volatile int *cancel = __atomic_load_n(&s->cancel_runs, __ATOMIC_ACQUIRE) ? &s->cancel : NULL;
    free(s->lrt_error);
    s->lrt_error = NULL;
    const int64_t before = s->n_past;
    int rc = PLM_OK;
    if (want == 2) {
        for (int64_t i = 0; i < n && !rc; i++) {
            if (cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)) rc = PLM_FWD_STOPPED;
            else rc = plm_lrt_decode(s->lrt, ids[i], s->n_past, logits + i * V, &s->lrt_error);
            if (!rc) s->tokens[s->n_past++] = ids[i];
        }
    } else {
        const int64_t pre = want == 1 ? n - 1 : n;
        int64_t done = 0;
        rc = plm_lrt_prefill(s->lrt, ids, pre, s->n_past, cancel, &done, &s->lrt_error);
        memcpy(s->tokens + s->n_past, ids, (size_t)done * sizeof(int32_t));
        s->n_past += done;
        if (!rc && want == 1) {
            if (cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)) rc = PLM_FWD_STOPPED;
            else rc = plm_lrt_decode(s->lrt, ids[n - 1], s->n_past, logits, &s->lrt_error);
            if (!rc) s->tokens[s->n_past++] = ids[n - 1];
        }
    }
    if (rc == PLM_LRT_STOPPED) rc = PLM_FWD_STOPPED;
    s->traffic.tokens += s->n_past - before;
    return rc;
}

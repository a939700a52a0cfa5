/*
 * engine.h — what forward.c and session.c share: the session's KV cache and
 * buffers, and the forward pass over a bound model (model/model.h), or over
 * a TFLite graph's executor state (litert/litert.h) for a LiteRT model.
 */
#ifndef PLM_ENGINE_H
#define PLM_ENGINE_H

#include "litert/litert.h"
#include "model/model.h"

struct plm_session {
    plm_model *m;
    plm_session_params p;
    int64_t kv_dim, kv_row_bytes;   /* one position of one layer */
    uint8_t *k_cache, *v_cache;     /* every layer's rows one after another, kv_dim values of p.kv_type a row */
    int64_t *kv_rows, *kv_row0;     /* per layer: its rows (plm_kv_rows) and where they start; position j
                                     * is at row kv_row0 + j % kv_rows */
    int32_t *tokens;                /* ids in the cache */
    int64_t n_past;
    int32_t *pending;               /* ids to run next */
    int64_t n_pending;
    plm_rng rng;
    float *logits;                  /* last position's logits */
    int has_logits;
    uint8_t *scratch;               /* forward pass buffers, for n_batch rows and the pool's threads */
    size_t scratch_bytes;
    int scratch_threads;
    volatile int cancel;
    plm_traffic traffic;
    uint64_t bytes;                 /* what create allocated */
    plm_lrt_state *lrt;             /* a LiteRT model's interpreter and KV caches (then no k_cache, v_cache, scratch) */
    volatile int cancel_runs;       /* the cancel flag may stop a LiteRT prefill between (and inside) runs */
    char *lrt_error;                /* the LiteRT executor's last message (malloc'd), or NULL */
};

/* Runs ids (n <= p.n_batch) at positions s->n_past.., appends them to
 * s->tokens, and writes logits: of the last position to `logits`
 * (vocab_size floats) when want == 1, of every position (n x vocab_size)
 * when want == 2, none when 0. pos_end: where the whole input of the call
 * these ids are part of ends (the pending prompt however it is batched;
 * s->n_past + n for a decode step), which picks longrope's factors. */
int plm_forward(plm_session *s, const int32_t *ids, int64_t n, float *logits, int want, int64_t pos_end);
/* The KV cache rows of a layer for a session of these params: max_tokens, or for a sliding-window layer
 * min(max_tokens, window + n_batch - 1), llama.cpp's SWA cache size (a batch's keys are written before
 * its queries read the window behind each of them) */
int64_t plm_kv_rows(const plm_model *m, const plm_session_params *p, int64_t layer);
/* plm_forward of a LiteRT session (forward_litert.c): the same contract, plus
 * PLM_FWD_STOPPED when s->cancel_runs and a cancel stopped it, with the ids
 * that ran appended (s->n_past tells how many) */
int plm_forward_litert(plm_session *s, const int32_t *ids, int64_t n, float *logits, int want);
#define PLM_FWD_STOPPED 1
/* scratch bytes the forward pass needs for this many threads */
size_t plm_forward_scratch_bytes(const plm_model *m, int64_t n_batch, int64_t max_tokens, int n_threads,
                                 int64_t lora_rank);

#endif /* PLM_ENGINE_H */

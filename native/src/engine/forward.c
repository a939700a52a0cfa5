/*
 * forward.c — the transformer forward pass, python/pocketlm/model/forward.py
 * step for step: embedding, then per layer norm, q/k/v, RoPE, cache write,
 * attention, output projection, residual, norm, MLP, residual; final norm
 * and classifier.
 *
 * The whole pass is one parallel region: every thread walks the step list
 * and takes its share of each step, and the threads meet at a barrier only
 * where a step needs all of the previous one (llama.cpp's graph compute
 * works the same way). What keeps the barriers few:
 *   - a decode step's norm and activation quantization are cheap, so every
 *     thread does them itself into its own buffer ("private" inputs): the
 *     norm and the product that reads it need no barrier between them;
 *   - q, k and v are split by heads across one shared list of head units,
 *     and the thread that computed a head also adds its bias, rotates it and
 *     writes it into the cache;
 *   - the gate and up rows of a gated MLP are computed by the same thread,
 *     which applies the activation product right away;
 *   - the output and down projections add into the residual as they go.
 * A prefill's inputs are split by rows instead, with a barrier after.
 *
 * LoRA (model/lora.c) rides on the same steps: where an input is prepared, the
 * adapter's down halves t = A x of the products that read it are computed
 * too (privately or by rows, as the input itself), and each thread adds
 * B t to the outputs it just computed, before bias, RoPE or activation.
 */
#include "engine/engine.h"

#include <math.h>
#include <stdlib.h>

/* the most query heads that share one KV head (model.c refuses more) */
#define PLM_MAX_GROUP 256

/* up to this many tokens, inputs are prepared privately by every thread */
#define PLM_PRIVATE_ROWS 4

/* a prefill's attention takes this many queries of one KV head together (attention_block) */
#define PLM_ATT_Q 4

/* Keys a block of the attention tiles takes at once: their F16 rows are converted to F32 once a block. */
#define PLM_ATT_KB 64

/* the lanes of the attention tiles for nv query vectors (a multiple of 8) */
static int64_t att_ld(int64_t nv) { return (nv + 7) & ~(int64_t)7; }

enum { SLOT_H = 0, SLOT_Q = 1, SLOT_F = 2, N_SLOTS = 3 };

typedef struct {
    plm_session *s;
    const plm_model *m;
    const int32_t *ids;
    int64_t n, pos0;
    const float *factors;   /* the full-attention layers' rope frequency factors for this call, or NULL */
    float *logits;
    int want;
    int simd, private_inputs;
    int att_level;          /* the attention tiles' and the exp's level (kernels.h) */
    int need[N_SLOTS];
    int64_t slot_k[N_SLOTS];
    const plm_lora *lora;   /* the session's adapter, or NULL */
    float *lt[PLM_LORA_TARGETS]; /* shared LoRA down halves, [n_batch][max rank] each */
    /* shared buffers */
    float *x, *hn, *q, *k, *v, *att, *o, *g, *u, *mo, *cs, *cs_local; /* cs_local: the local layers' angles */
    plm_acts shared[N_SLOTS];
    /* per-thread */
    uint8_t *thread_base;
    size_t thread_bytes;
    plm_barrier bar;
} fwd;

typedef struct {
    float *hn;            /* normed input rows */
    float *scores;        /* attention scores, key-major: max_tokens x the tiles' lanes (PLM_ATT_Q queries x a GQA group) */
    float *kvblk;         /* PLM_ATT_KB cached key or value rows as F32 */
    float *lt[PLM_LORA_TARGETS]; /* private LoRA down halves, [PLM_PRIVATE_ROWS][max rank] each */
    plm_acts acts[N_SLOTS];
} fwd_thread;

static void split(int64_t n, int ith, int nth, int64_t *a, int64_t *b) {
    const int64_t per = n / nth, extra = n % nth;
    *a = ith * per + (ith < extra ? ith : extra);
    *b = *a + per + (ith < extra ? 1 : 0);
}

/* rows split in multiples of `align` (the last thread takes the remainder) */
static void split_rows(int64_t n, int64_t align, int ith, int nth, int64_t *a, int64_t *b) {
    const int64_t units = (n + align - 1) / align;
    split(units, ith, nth, a, b);
    *a *= align;
    *b *= align;
    if (*b > n) *b = n;
    if (*a > n) *a = n;
}

/* ---- buffers ------------------------------------------------------------------ */

static size_t al(size_t n) { return (n + 63) & ~(size_t)63; }

static void slot_layout(const plm_model *m, int simd, int need[N_SLOTS], int64_t k[N_SLOTS]) {
    const plm_model_config *c = &m->cfg;
    k[SLOT_H] = c->hidden_size;
    k[SLOT_Q] = c->n_heads * c->head_dim;
    k[SLOT_F] = c->intermediate_size;
    for (int i = 0; i < N_SLOTS; i++) need[i] = 0;
    need[SLOT_H] |= plm_act_need((m->output.data ? m->output : m->tok_embd).type, simd);
    for (int64_t l = 0; l < c->n_layers; l++) {
        const plm_layer *L = &m->layers[l];
        need[SLOT_H] |= plm_act_need(L->wq.type, simd) | plm_act_need(L->wk.type, simd) |
                        plm_act_need(L->wv.type, simd) | plm_act_need(L->wup.type, simd);
        if (L->wgate.data) need[SLOT_H] |= plm_act_need(L->wgate.type, simd);
        need[SLOT_Q] |= plm_act_need(L->wo.type, simd);
        need[SLOT_F] |= plm_act_need(L->wdown.type, simd);
    }
}

static size_t shared_bytes(const plm_model *m, int64_t B, int64_t max_tokens, const int need[N_SLOTS],
                           const int64_t k[N_SLOTS], int64_t R) {
    const plm_model_config *c = &m->cfg;
    const int64_t h = c->hidden_size, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim,
                  f = c->intermediate_size;
    (void)max_tokens;
    size_t n = 0;
    n += 4 * al((size_t)(B * h) * 4);               /* x, hn, o, mo */
    n += 2 * al((size_t)(B * qd) * 4);              /* q, att */
    n += 2 * al((size_t)(B * kvd) * 4);             /* k, v */
    n += 2 * al((size_t)(B * f) * 4);               /* g, u */
    n += al((size_t)(B * (c->rot_dim / 2 + 1)) * 8); /* cos / sin */
    if (c->rope_local_theta > 0) n += al((size_t)(B * (c->rot_dim / 2 + 1)) * 8); /* the local layers' */
    for (int i = 0; i < N_SLOTS; i++) n += al(plm_acts_size(need[i], B, k[i]));
    if (R > 0) n += PLM_LORA_TARGETS * al((size_t)(B * R) * 4);
    return n;
}

static size_t thread_bytes(const plm_model *m, int64_t max_tokens, const int need[N_SLOTS], const int64_t k[N_SLOTS],
                           int64_t R) {
    const int64_t P = PLM_PRIVATE_ROWS;
    const int64_t ld = att_ld(PLM_ATT_Q * (m->cfg.n_heads / m->cfg.n_kv_heads)), hd = m->cfg.head_dim;
    size_t n = al(sizeof(fwd_thread)) + al((size_t)(P * m->cfg.hidden_size) * 4) + al((size_t)(ld * max_tokens) * 4) +
               al((size_t)(PLM_ATT_KB * hd) * 4);
    for (int i = 0; i < N_SLOTS; i++) n += al(plm_acts_size(need[i], P, k[i]));
    if (R > 0) n += PLM_LORA_TARGETS * al((size_t)(P * R) * 4);
    return n;
}

/* the forms of every SIMD level together: buffers laid out for these fit whatever plm_set_simd says */
static void slot_layout_any(const plm_model *m, int need[N_SLOTS], int64_t k[N_SLOTS]) {
    int need0[N_SLOTS];
    slot_layout(m, 1, need, k);
    slot_layout(m, 0, need0, k);
    for (int i = 0; i < N_SLOTS; i++) need[i] |= need0[i];
}

size_t plm_forward_scratch_bytes(const plm_model *m, int64_t n_batch, int64_t max_tokens, int n_threads,
                                 int64_t lora_rank) {
    int need[N_SLOTS];
    int64_t k[N_SLOTS];
    slot_layout_any(m, need, k);
    return shared_bytes(m, n_batch, max_tokens, need, k, lora_rank) +
           (size_t)n_threads * thread_bytes(m, max_tokens, need, k, lora_rank) + 64;
}

static uint8_t *take(uint8_t **p, size_t n) {
    uint8_t *r = *p;
    *p += al(n);
    return r;
}

/* ---- steps --------------------------------------------------------------------- */

static float dot_f32(const float *a, const float *b, int64_t n, int simd);

/* LoRA: the adapter's pair for a target of a layer, or NULL */
static const plm_lora_mat *lmat(const fwd *f, int64_t layer, int target) {
    if (!f->lora) return NULL;
    const plm_lora_mat *lm = &f->lora->mats[layer * PLM_LORA_TARGETS + target];
    return lm->a ? lm : NULL;
}

/* where a target's down halves are: this thread's own (private inputs) or the shared ones */
static float *lbuf(fwd *f, fwd_thread *t, int target) { return f->private_inputs ? t->lt[target] : f->lt[target]; }

/* t_i = A x_i for input rows [a0, a1) (k values each) */
static void lora_down(const plm_lora_mat *lm, const float *x, int64_t a0, int64_t a1, float *t, int simd) {
    for (int64_t i = a0; i < a1; i++)
        for (int64_t q = 0; q < lm->r; q++) t[i * lm->r + q] = dot_f32(lm->a + q * lm->k, x + i * lm->k, lm->k, simd);
}

/* y_i[j] += B_j . t_i for rows [0, n) and outputs [j0, j1) */
static void lora_up(const plm_lora_mat *lm, const float *t, int64_t n, float *y, int64_t ld, int64_t j0, int64_t j1,
                    int simd) {
    if (!lm) return;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = j0; j < j1; j++) y[i * ld + j] += dot_f32(lm->b + j * lm->r, t + i * lm->r, lm->r, simd);
}

/* the LoRA targets that read an input, by layer */
typedef struct {
    int64_t layer;
    int n, target[5];
} lora_uses;

static void norm_row(const plm_model *m, const float *x, const float *w, const float *b, float *y) {
    const plm_model_config *c = &m->cfg;
    if (c->norm == PLM_NORM_RMS) plm_rms_norm(x, w, y, 1, c->hidden_size, (float)c->norm_eps, (float)c->norm_w_offset);
    else plm_layer_norm(x, w, b, y, 1, c->hidden_size, (float)c->norm_eps);
}

/* The input of a product: rows of src (normed with w/b when w is not NULL),
 * in the forms the slot's weights read. Private: this thread's own copy of
 * every row, no barrier. Shared: this thread's share of the rows, then a
 * barrier. */
static const plm_acts *input(fwd *f, fwd_thread *t, int ith, int nth, int slot, const float *src, int64_t r0,
                             int64_t r1, const float *w, const float *b, const lora_uses *uses) {
    const int64_t k = f->slot_k[slot], rows = r1 - r0;
    if (f->private_inputs) {
        plm_acts *a = &t->acts[slot];
        a->m = rows;
        const float *rowsrc = src + r0 * k;
        if (w) {
            for (int64_t i = 0; i < rows; i++) norm_row(f->m, rowsrc + i * k, w, b, t->hn + i * k);
            rowsrc = t->hn;
        }
        plm_acts_fill(a, rowsrc, k, 0, rows, f->simd);
        for (int u = 0; uses && u < uses->n; u++) {
            const plm_lora_mat *lm = lmat(f, uses->layer, uses->target[u]);
            if (lm) lora_down(lm, rowsrc, 0, rows, t->lt[uses->target[u]], f->simd);
        }
        return a;
    }
    plm_acts *a = &f->shared[slot];
    a->m = rows;
    int64_t a0, a1;
    split(rows, ith, nth, &a0, &a1);
    const float *rowsrc = src + r0 * k;
    if (w) {
        for (int64_t i = a0; i < a1; i++) norm_row(f->m, rowsrc + i * k, w, b, f->hn + i * k);
        rowsrc = f->hn;
    }
    plm_acts_fill(a, rowsrc, k, a0, a1, f->simd);
    for (int u = 0; uses && u < uses->n; u++) {
        const plm_lora_mat *lm = lmat(f, uses->layer, uses->target[u]);
        if (lm) lora_down(lm, rowsrc, a0, a1, f->lt[uses->target[u]], f->simd);
    }
    plm_barrier_wait(&f->bar, nth);
    return a;
}

#if PLM_X86
/* F32 -> F16 cache row, round to nearest even: plm_f2h's bits */
PLM_AVX2_FN static int64_t f16_store_avx2(uint16_t *h, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    return i;
}
#endif

static void store_kv(uint8_t *dst, const float *src, int64_t n, int kv_type, int simd) {
    if (kv_type == PLM_TYPE_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return;
    }
    uint16_t *h = (uint16_t *)dst;
    int64_t i = 0;
#if PLM_X86
    if (simd) i = f16_store_avx2(h, src, n);
#endif
    for (; i < n; i++) h[i] = plm_f2h(src[i]);
}

/* q, k and v of the head units [u0, u1): product, bias, per-head norm, RoPE (and its attention factor),
 * cache write at the position's row of the layer's cache (a ring for a sliding-window layer) */
static void qkv_units(fwd *f, fwd_thread *t, const plm_layer *L, int64_t layer, const plm_acts *a, int64_t u0,
                      int64_t u1) {
    const plm_model_config *c = &f->m->cfg;
    plm_session *s = f->s;
    const int64_t hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads, qd = nh * hd, kvd = nkv * hd;
    const int64_t half = c->rot_dim / 2;
    const float *cs = c->rope_local_theta > 0 && c->sliding_window_layer[layer] ? f->cs_local : f->cs;
    const float attn_factor = (float)c->rope_attn_factor, eps = (float)c->norm_eps, w_off = (float)c->norm_w_offset;
    const int64_t es = s->p.kv_type == PLM_TYPE_F32 ? 4 : 2, row0 = s->kv_row0[layer], rows = s->kv_rows[layer];
    for (int64_t u = u0; u < u1; u++) {
        const plm_mat *w;
        const float *bias;
        float *y;
        int64_t ld, head, kind;
        if (u < nh) {
            w = &L->wq, bias = L->bq, y = f->q, ld = qd, head = u, kind = 0;
        } else if (u < nh + nkv) {
            w = &L->wk, bias = L->bk, y = f->k, ld = kvd, head = u - nh, kind = 1;
        } else {
            w = &L->wv, bias = L->bv, y = f->v, ld = kvd, head = u - nh - nkv, kind = 2;
        }
        const int64_t j0 = head * hd;
        plm_mm_rows(w->type, w->data, w->row_bytes, a, j0, j0 + hd, y, ld, f->simd);
        const int target = kind == 0 ? PLM_LQ : kind == 1 ? PLM_LK : PLM_LV;
        const plm_lora_mat *lm = lmat(f, layer, target);
        if (lm) lora_up(lm, lbuf(f, t, target), f->n, y, ld, j0, j0 + hd, f->simd);
        for (int64_t i = 0; i < f->n; i++) {
            float *yh = y + i * ld + j0;
            if (bias)
                for (int64_t j = 0; j < hd; j++) yh[j] += bias[j0 + j];
            if (kind < 2 && L->q_norm_w) plm_rms_norm(yh, kind == 0 ? L->q_norm_w : L->k_norm_w, yh, 1, hd, eps, w_off);
            if (kind < 2 && half > 0) {
                plm_rope_head(yh, cs + i * half * 2, half, c->rope_mode);
                if (attn_factor != 1.0f)
                    for (int64_t j = 0; j < 2 * half; j++) yh[j] *= attn_factor;
            }
            if (kind > 0) {
                uint8_t *cache = kind == 1 ? s->k_cache : s->v_cache;
                uint8_t *dst = cache + ((row0 + (f->pos0 + i) % rows) * kvd + j0) * es;
                store_kv(dst, yh, hd, s->p.kv_type, f->simd);
            }
        }
    }
}

/* ---- attention over the cache ------------------------------------------------ */

static float dot_f32(const float *a, const float *b, int64_t n, int simd) {
#if PLM_X86
    if (simd) return plm_vec_dot_f32_avx2(n, a, b, NULL);
#elif PLM_ARM
    if (simd) return plm_vec_dot_f32_neon(n, a, b, NULL);
#endif
    return plm_vec_dot_f32_scalar(n, a, b, NULL);
}


#if PLM_X86
/* F16 cache row -> F32 (exact either way) */
PLM_AVX2_FN static void f16_row_avx2(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = _cvtsh_ss(x[i]);
}
#endif

/* one cached row as F32: in place for an F32 cache, converted into buf for F16 */
static const float *kv_row(const uint8_t *row, int f16, float *buf, int64_t n, int simd) {
    if (!f16) return (const float *)row;
#if PLM_X86
    if (simd) {
        f16_row_avx2((const uint16_t *)row, buf, n);
        return buf;
    }
#elif PLM_ARM
    if (simd) {
        plm_f16_row_neon((const uint16_t *)row, buf, n);
        return buf;
    }
#endif
    for (int64_t i = 0; i < n; i++) buf[i] = plm_h2f(((const uint16_t *)row)[i]);
    return buf;
}

/* plm_attention's maths (see pocketlm.h) for queries [i0, i0 + nq) of the call and heads
 * [h0, h0 + run) of KV head kvh, the query vectors (query q, head h0 + r) in lane q * run + r
 * of the attention tiles (kernels.h): keys are taken PLM_ATT_KB at a time, each cached row
 * converted to F32 once for all the vectors, the scores kept key-major (t->scores[j][lane]),
 * and the softmax done for every lane at once (the keys a query does not see scored -inf).
 * A value's arithmetic depends on its (query, head) alone: each score one chain over the head's
 * values, its exp elementwise, the sum of the exps in key order from 0 (an unseen key adds
 * exactly +0), the output one chain over the keys the query sees, in order. So a decode step
 * (one query) and a prefill block give the same floats, on every SIMD level. Position j's key
 * is at row j % rows of the layer's cache: j itself for a full layer, its place in the ring
 * for a sliding-window one (which holds every key a query of this call sees: the window
 * before the call's first position and the call's own positions). */
static void attend(fwd *f, fwd_thread *t, int64_t layer, int64_t i0, int64_t nq, int64_t h0, int64_t run) {
    const plm_model_config *c = &f->m->cfg;
    const plm_session *s = f->s;
    const int64_t hd = c->head_dim, nh = c->n_heads, group = nh / c->n_kv_heads, kvd = c->n_kv_heads * hd;
    const int64_t kvh = h0 / group, nv = nq * run, ld = att_ld(nv);
    const int f16 = s->p.kv_type == PLM_TYPE_F16;
    const int64_t es = f16 ? 2 : 4, rows = s->kv_rows[layer];
    const uint8_t *kc = s->k_cache + s->kv_row0[layer] * kvd * es;
    const uint8_t *vc = s->v_cache + s->kv_row0[layer] * kvd * es;
    const int64_t window = c->sliding_window_layer[layer] ? c->sliding_window : 0;
    const float scale = (float)c->query_scale, softcap = (float)c->attn_softcap;
    const int level = f->att_level;
    int64_t lo[PLM_ATT_Q], hi[PLM_ATT_Q];
    for (int64_t q = 0; q < nq; q++) {
        hi[q] = f->pos0 + i0 + q;
        lo[q] = window > 0 && hi[q] - window + 1 > 0 ? hi[q] - window + 1 : 0;
    }
    const int64_t jlo = lo[0], jhi = hi[nq - 1];
    /* scores, a block of keys at a time */
    const float *qv[PLM_ATT_Q * PLM_MAX_GROUP], *kr[PLM_ATT_KB];
    for (int64_t v = 0; v < nv; v++) qv[v] = f->q + (i0 + v / run) * nh * hd + (h0 + v % run) * hd;
    for (int64_t b0 = jlo; b0 <= jhi; b0 += PLM_ATT_KB) {
        const int64_t nb = jhi + 1 - b0 < PLM_ATT_KB ? jhi + 1 - b0 : PLM_ATT_KB;
        for (int64_t j = 0; j < nb; j++)
            kr[j] = kv_row(kc + (((b0 + j) % rows) * kvd + kvh * hd) * es, f16, t->kvblk + j * hd, hd, f->simd);
        plm_att_scores(hd, qv, nv, kr, nb, t->scores + (b0 - jlo) * ld, ld, level);
    }
    /* scale, soft-cap, ALiBi, the keys each query sees; the max of each lane */
    float max[PLM_ATT_Q * PLM_MAX_GROUP], sum[PLM_ATT_Q * PLM_MAX_GROUP];
    for (int64_t v = 0; v < ld; v++) max[v] = -INFINITY, sum[v] = 0.0f;
    for (int64_t j = jlo; j <= jhi; j++) {
        float *sc = t->scores + (j - jlo) * ld;
        for (int64_t v = 0; v < nv; v++) sc[v] *= scale;
        for (int64_t v = nv; v < ld; v++) sc[v] = 0.0f; /* lanes past the vectors: kept finite */
        if (softcap > 0.0f)
            for (int64_t v = 0; v < nv; v++) sc[v] = softcap * tanhf(sc[v] / softcap);
        if (f->m->alibi)
            for (int64_t v = 0; v < nv; v++) sc[v] += f->m->alibi[h0 + v % run] * (float)(j - hi[v / run]);
        for (int64_t q = 0; q < nq; q++)
            if (j < lo[q] || j > hi[q])
                for (int64_t r = 0; r < run; r++) sc[q * run + r] = -INFINITY;
        for (int64_t v = 0; v < ld; v++) max[v] = sc[v] > max[v] ? sc[v] : max[v];
    }
    /* softmax: exp of every lane, the sums in key order, then the weights */
    for (int64_t j = jlo; j <= jhi; j++) {
        float *sc = t->scores + (j - jlo) * ld;
        for (int64_t v = 0; v < ld; v++) sc[v] -= max[v];
    }
    plm_exp_rows(t->scores, t->scores, (jhi - jlo + 1) * ld, level);
    for (int64_t j = jlo; j <= jhi; j++) {
        const float *sc = t->scores + (j - jlo) * ld;
        for (int64_t v = 0; v < ld; v++) sum[v] += sc[v];
    }
    for (int64_t v = 0; v < ld; v++) sum[v] = 1.0f / sum[v];
    for (int64_t j = jlo; j <= jhi; j++) {
        float *sc = t->scores + (j - jlo) * ld;
        for (int64_t v = 0; v < ld; v++) sc[v] *= sum[v];
    }
    /* outputs: a block of value rows at a time, for the queries that see all of it together
     * (all of them but on the causal diagonal and a window's edge), else query by query */
    float *o[PLM_ATT_Q * PLM_MAX_GROUP];
    for (int64_t v = 0; v < nv; v++) {
        o[v] = f->att + (i0 + v / run) * nh * hd + (h0 + v % run) * hd;
        memset(o[v], 0, (size_t)hd * sizeof(float));
    }
    const float *vr[PLM_ATT_KB];
    for (int64_t b0 = jlo; b0 <= jhi; b0 += PLM_ATT_KB) {
        const int64_t b1 = jhi + 1 - b0 < PLM_ATT_KB ? jhi + 1 : b0 + PLM_ATT_KB; /* [b0, b1) */
        for (int64_t j = b0; j < b1; j++)
            vr[j - b0] = kv_row(vc + ((j % rows) * kvd + kvh * hd) * es, f16, t->kvblk + (j - b0) * hd, hd, f->simd);
        for (int64_t q = 0; q < nq;) {
            const int64_t a = lo[q] > b0 ? lo[q] : b0, e = hi[q] + 1 < b1 ? hi[q] + 1 : b1;
            int64_t q1 = q + 1; /* queries q .. q1-1 see the same keys of the block */
            if (a == b0 && e == b1)
                while (q1 < nq && lo[q1] <= b0 && hi[q1] + 1 >= b1) q1++;
            if (a < e)
                plm_att_values(hd, t->scores + (a - jlo) * ld + q * run, ld, (q1 - q) * run, vr + (a - b0), e - a,
                               o + q * run, level);
            q = q1;
        }
    }
}

/* the (token, head) pairs [p0, p1) of a decode step: consecutive heads that read the same KV
 * head (a GQA group, or the part of one this thread has) go together */
static void attention_pairs(fwd *f, fwd_thread *t, int64_t layer, int64_t p0, int64_t p1) {
    const int64_t nh = f->m->cfg.n_heads, group = nh / f->m->cfg.n_kv_heads;
    for (int64_t idx = p0; idx < p1;) {
        const int64_t i = idx / nh, h0 = idx % nh, kvh = h0 / group;
        int64_t run = (kvh + 1) * group - h0; /* heads of this KV head from h0 on, within [p0, p1) */
        if (run > p1 - idx) run = p1 - idx;
        attend(f, t, layer, i, 1, h0, run);
        idx += run;
    }
}

/* queries [i0, i0 + PLM_ATT_Q) (those the call has) and every head of KV head kvh, for a prefill */
static void attention_block(fwd *f, fwd_thread *t, int64_t layer, int64_t i0, int64_t kvh) {
    const int64_t group = f->m->cfg.n_heads / f->m->cfg.n_kv_heads;
    attend(f, t, layer, i0, f->n - i0 < PLM_ATT_Q ? f->n - i0 : PLM_ATT_Q, kvh * group, group);
}

/* ---- the pass ------------------------------------------------------------------- */

static void add_bias_rows(float *y, int64_t ld, int64_t n, const float *b, int64_t j0, int64_t j1) {
    if (!b) return;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = j0; j < j1; j++) y[i * ld + j] += b[j];
}

static void act_mul(const plm_model_config *c, float *g, const float *u, int64_t n) {
    if (c->act == PLM_ACT_SILU) plm_silu_mul(g, u, g, n);
    else plm_gelu_mul(g, u, g, n, c->act == PLM_ACT_GELU_TANH);
}

static void act_only(const plm_model_config *c, float *u, int64_t n) {
    if (c->act == PLM_ACT_SILU) plm_silu(u, u, n);
    else plm_gelu(u, u, n, c->act == PLM_ACT_GELU_TANH);
}

static void forward_thread(void *vctx, int ith, int nth) {
    fwd *f = (fwd *)vctx;
    const plm_model *m = f->m;
    const plm_model_config *c = &m->cfg;
    const int64_t n = f->n, h = c->hidden_size, nh = c->n_heads, nkv = c->n_kv_heads;
    const int64_t F = c->intermediate_size, half = c->rot_dim / 2;
    fwd_thread *t = (fwd_thread *)(f->thread_base + (size_t)ith * f->thread_bytes);
    int64_t a, b;

    /* token embedding (scaled; plus learned positions) and the RoPE angles of each position */
    split(n, ith, nth, &a, &b);
    const plm_type_traits *et = plm_traits(m->tok_embd.type);
    for (int64_t i = a; i < b; i++) {
        float *xi = f->x + i * h;
        et->to_float(m->tok_embd.data + (int64_t)f->ids[i] * m->tok_embd.row_bytes, xi, h);
        if (c->embed_scale != 1.0) {
            const float sc = (float)c->embed_scale;
            for (int64_t j = 0; j < h; j++) xi[j] *= sc;
        }
        if (m->pos_embd) plm_add(xi, m->pos_embd + (f->pos0 + i) * h, xi, h);
        /* theta and the scale as floats, as plm_rope takes them: the same angles as the Python engine's */
        if (half > 0)
            plm_rope_angles(f->cs + i * half * 2, f->pos0 + i, half, c->rot_dim, (float)c->rope_theta,
                            (float)c->rope_freq_scale, f->factors);
        if (half > 0 && f->cs_local)
            plm_rope_angles(f->cs_local + i * half * 2, f->pos0 + i, half, c->rot_dim, (float)c->rope_local_theta,
                            (float)c->rope_local_freq_scale, NULL);
    }
    plm_barrier_wait(&f->bar, nth);

    for (int64_t l = 0; l < c->n_layers; l++) {
        const plm_layer *L = &m->layers[l];
        /* attention norm, then q, k, v per head: bias, RoPE, cache write */
        const int shared_mlp_input = c->parallel_residual && !L->ffn_norm_w; /* the MLP reads the attention input */
        const lora_uses u_attn = {l, shared_mlp_input ? 5 : 3, {PLM_LQ, PLM_LK, PLM_LV, PLM_LGATE, PLM_LUP}};
        const lora_uses u_o = {l, 1, {PLM_LO}}, u_mlp = {l, 2, {PLM_LGATE, PLM_LUP}}, u_down = {l, 1, {PLM_LDOWN}};
        const plm_acts *ah = input(f, t, ith, nth, SLOT_H, f->x, 0, n, L->attn_norm_w, L->attn_norm_b, &u_attn);
        split(nh + 2 * nkv, ith, nth, &a, &b);
        qkv_units(f, t, L, l, ah, a, b);
        plm_barrier_wait(&f->bar, nth);
        /* causal attention over the cache */
        if (n > PLM_PRIVATE_ROWS) { /* a prefill: blocks of queries of one KV head, dealt out in turn */
            const int64_t units = (n + PLM_ATT_Q - 1) / PLM_ATT_Q * nkv;
            for (int64_t u = ith; u < units; u += nth) attention_block(f, t, l, u / nkv * PLM_ATT_Q, u % nkv);
        } else {
            split(n * nh, ith, nth, &a, &b);
            attention_pairs(f, t, l, a, b);
        }
        plm_barrier_wait(&f->bar, nth);
        /* output projection; the residual joins x here unless post-norms or a parallel MLP need o alone */
        const plm_acts *aq = input(f, t, ith, nth, SLOT_Q, f->att, 0, n, NULL, NULL, &u_o);
        split_rows(h, 16, ith, nth, &a, &b);
        plm_mm_rows(L->wo.type, L->wo.data, L->wo.row_bytes, aq, a, b, f->o, h, f->simd);
        lora_up(lmat(f, l, PLM_LO), lbuf(f, t, PLM_LO), n, f->o, h, a, b, f->simd);
        add_bias_rows(f->o, h, n, L->bo, a, b);
        const int fuse_o = !c->post_norms && !c->parallel_residual;
        if (fuse_o)
            for (int64_t i = 0; i < n; i++) plm_add(f->x + i * h + a, f->o + i * h + a, f->x + i * h + a, b - a);
        plm_barrier_wait(&f->bar, nth);
        if (c->post_norms) {
            split(n, ith, nth, &a, &b);
            for (int64_t i = a; i < b; i++) {
                norm_row(m, f->o + i * h, L->post_attn_norm_w, NULL, f->o + i * h);
                if (!c->parallel_residual) plm_add(f->x + i * h, f->o + i * h, f->x + i * h, h);
            }
            plm_barrier_wait(&f->bar, nth);
        }
        /* MLP input: the ffn norm of x (a parallel layer without one reuses the attention input) */
        const plm_acts *af = ah;
        if (!c->parallel_residual || L->ffn_norm_w)
            af = input(f, t, ith, nth, SLOT_H, f->x, 0, n, L->ffn_norm_w, L->ffn_norm_b, &u_mlp);
        split_rows(F, 16, ith, nth, &a, &b);
        if (c->gated_mlp) {
            plm_mm_rows(L->wgate.type, L->wgate.data, L->wgate.row_bytes, af, a, b, f->g, F, f->simd);
            plm_mm_rows(L->wup.type, L->wup.data, L->wup.row_bytes, af, a, b, f->u, F, f->simd);
            lora_up(lmat(f, l, PLM_LGATE), lbuf(f, t, PLM_LGATE), n, f->g, F, a, b, f->simd);
            lora_up(lmat(f, l, PLM_LUP), lbuf(f, t, PLM_LUP), n, f->u, F, a, b, f->simd);
            add_bias_rows(f->g, F, n, L->bgate, a, b);
            add_bias_rows(f->u, F, n, L->bup, a, b);
            for (int64_t i = 0; i < n; i++) act_mul(c, f->g + i * F + a, f->u + i * F + a, b - a);
        } else {
            plm_mm_rows(L->wup.type, L->wup.data, L->wup.row_bytes, af, a, b, f->g, F, f->simd);
            lora_up(lmat(f, l, PLM_LUP), lbuf(f, t, PLM_LUP), n, f->g, F, a, b, f->simd);
            add_bias_rows(f->g, F, n, L->bup, a, b);
            for (int64_t i = 0; i < n; i++) act_only(c, f->g + i * F + a, b - a);
        }
        plm_barrier_wait(&f->bar, nth);
        /* down projection and the residual */
        const plm_acts *ad = input(f, t, ith, nth, SLOT_F, f->g, 0, n, NULL, NULL, &u_down);
        split_rows(h, 16, ith, nth, &a, &b);
        plm_mm_rows(L->wdown.type, L->wdown.data, L->wdown.row_bytes, ad, a, b, f->mo, h, f->simd);
        lora_up(lmat(f, l, PLM_LDOWN), lbuf(f, t, PLM_LDOWN), n, f->mo, h, a, b, f->simd);
        add_bias_rows(f->mo, h, n, L->bdown, a, b);
        if (!c->post_norms) {
            for (int64_t i = 0; i < n; i++) {
                float *xi = f->x + i * h + a;
                if (c->parallel_residual) plm_add(xi, f->o + i * h + a, xi, b - a);
                plm_add(xi, f->mo + i * h + a, xi, b - a);
            }
        }
        plm_barrier_wait(&f->bar, nth);
        if (c->post_norms) {
            split(n, ith, nth, &a, &b);
            for (int64_t i = a; i < b; i++) {
                float *xi = f->x + i * h;
                norm_row(m, f->mo + i * h, L->post_ffw_norm_w, NULL, f->mo + i * h);
                if (c->parallel_residual) plm_add(xi, f->o + i * h, xi, h);
                plm_add(xi, f->mo + i * h, xi, h);
            }
            plm_barrier_wait(&f->bar, nth);
        }
    }

    if (!f->want) return;
    /* final norm and the classifier, for the last position or all of them */
    const int64_t r0 = f->want == 2 ? 0 : n - 1;
    const plm_acts *ao = input(f, t, ith, nth, SLOT_H, f->x, r0, n, m->output_norm_w, m->output_norm_b, NULL);
    const plm_mat *w = m->output.data ? &m->output : &m->tok_embd;
    const int64_t V = c->vocab_size;
    split_rows(V, 16, ith, nth, &a, &b);
    plm_mm_rows(w->type, w->data, w->row_bytes, ao, a, b, f->logits, V, f->simd);
    add_bias_rows(f->logits, V, n - r0, m->output_b, a, b);
    if (c->final_softcap > 0) {
        const float cap = (float)c->final_softcap;
        for (int64_t i = 0; i < n - r0; i++)
            for (int64_t j = a; j < b; j++) f->logits[i * V + j] = cap * tanhf(f->logits[i * V + j] / cap);
    }
}

static void count_traffic(plm_session *s, int64_t n, int want) {
    const plm_model *m = s->m;
    const plm_model_config *c = &m->cfg;
    plm_traffic *t = &s->traffic;
    const int64_t pos0 = s->n_past, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const int64_t es = s->p.kv_type == PLM_TYPE_F32 ? 4 : 2;
    t->tokens += n;
    t->weight_bytes += n * m->tok_embd.row_bytes;
    for (int64_t l = 0; l < c->n_layers; l++) {
        const plm_layer *L = &m->layers[l];
        const plm_mat *mats[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        for (int i = 0; i < 7; i++) {
            if (!mats[i]->data) continue;
            t->weight_bytes += mats[i]->rows * mats[i]->row_bytes;
            t->flops += 2 * n * mats[i]->rows * mats[i]->cols;
        }
        /* the keys the call reads: a sliding-window layer's ring holds at most window + n - 1 of them */
        const int64_t window = c->sliding_window_layer[l] ? c->sliding_window : 0;
        const int64_t keys = window > 0 && pos0 + n > window + n - 1 ? window + n - 1 : pos0 + n;
        t->kv_bytes += 2 * keys * kvd * es;
        t->flops += 4 * n * keys * qd;
        for (int i = 0; s->p.lora && i < PLM_LORA_TARGETS; i++) {
            const plm_lora_mat *lm = &s->p.lora->mats[l * PLM_LORA_TARGETS + i];
            if (!lm->a) continue;
            t->weight_bytes += (lm->r * lm->k + lm->n * lm->r) * 4;
            t->flops += 2 * n * lm->r * (lm->k + lm->n);
        }
    }
    if (want) {
        const plm_mat *w = m->output.data ? &m->output : &m->tok_embd;
        t->weight_bytes += w->rows * w->row_bytes;
        t->flops += 2 * (want == 2 ? n : 1) * w->rows * w->cols;
    }
}

int plm_forward(plm_session *s, const int32_t *ids, int64_t n, float *logits, int want, int64_t pos_end) {
    const plm_model *m = s->m;
    const plm_model_config *c = &m->cfg;
    if (n <= 0 || n > s->p.n_batch || s->n_past + n > s->p.max_tokens || pos_end < s->n_past + n) return PLM_ERR_SHAPE;
    if (s->lrt) return plm_forward_litert(s, ids, n, logits, want); /* the graph's own kernels */
    fwd f;
    memset(&f, 0, sizeof f);
    f.s = s;
    f.m = m;
    f.ids = ids;
    f.n = n;
    f.pos0 = s->n_past;
    /* longrope: the long factors when the call's whole input ends past rope_long_after (transformers' update) */
    f.factors = c->n_rope_freq_factors_long && pos_end > c->rope_long_after ? c->rope_freq_factors_long
              : c->n_rope_freq_factors ? c->rope_freq_factors : NULL;
    f.logits = logits;
    f.want = want;
    f.simd = plm_use_simd();
    f.att_level = f.simd ? plm_exp_level() : 0;
    f.private_inputs = n <= PLM_PRIVATE_ROWS;
    f.lora = s->p.lora;
    const int64_t R = f.lora ? f.lora->max_rank : 0;
    slot_layout(m, f.simd, f.need, f.slot_k);

    int nt = plm_effective_threads(s->p.n_threads);
    if (nt > s->scratch_threads) nt = s->scratch_threads; /* the session's buffers were sized for this many */
    int need_all[N_SLOTS];
    int64_t kk[N_SLOTS];
    slot_layout_any(m, need_all, kk);

    const int64_t B = s->p.n_batch, h = c->hidden_size, qd = c->n_heads * c->head_dim,
                  kvd = c->n_kv_heads * c->head_dim, F = c->intermediate_size;
    uint8_t *p = (uint8_t *)(((uintptr_t)s->scratch + 63) & ~(uintptr_t)63);
    f.x = (float *)take(&p, (size_t)(B * h) * 4);
    f.hn = (float *)take(&p, (size_t)(B * h) * 4);
    f.o = (float *)take(&p, (size_t)(B * h) * 4);
    f.mo = (float *)take(&p, (size_t)(B * h) * 4);
    f.q = (float *)take(&p, (size_t)(B * qd) * 4);
    f.att = (float *)take(&p, (size_t)(B * qd) * 4);
    f.k = (float *)take(&p, (size_t)(B * kvd) * 4);
    f.v = (float *)take(&p, (size_t)(B * kvd) * 4);
    f.g = (float *)take(&p, (size_t)(B * F) * 4);
    f.u = (float *)take(&p, (size_t)(B * F) * 4);
    f.cs = (float *)take(&p, (size_t)(B * (c->rot_dim / 2 + 1)) * 8);
    f.cs_local = c->rope_local_theta > 0 ? (float *)take(&p, (size_t)(B * (c->rot_dim / 2 + 1)) * 8) : NULL;
    for (int i = 0; i < N_SLOTS; i++) {
        const size_t sz = plm_acts_size(need_all[i], B, f.slot_k[i]);
        plm_acts_init(&f.shared[i], f.need[i], take(&p, sz), B, f.slot_k[i]);
    }
    for (int i = 0; R > 0 && i < PLM_LORA_TARGETS; i++) f.lt[i] = (float *)take(&p, (size_t)(B * R) * 4);
    f.thread_base = p;
    f.thread_bytes = thread_bytes(m, s->p.max_tokens, need_all, f.slot_k, R);
    for (int ti = 0; ti < nt; ti++) {
        uint8_t *q = f.thread_base + (size_t)ti * f.thread_bytes;
        fwd_thread *t = (fwd_thread *)q;
        q += al(sizeof(fwd_thread));
        t->hn = (float *)take(&q, (size_t)(PLM_PRIVATE_ROWS * h) * 4);
        const int64_t ld = att_ld(PLM_ATT_Q * (c->n_heads / c->n_kv_heads));
        t->scores = (float *)take(&q, (size_t)(ld * s->p.max_tokens) * 4);
        t->kvblk = (float *)take(&q, (size_t)(PLM_ATT_KB * c->head_dim) * 4);
        for (int i = 0; i < N_SLOTS; i++) {
            const size_t sz = plm_acts_size(need_all[i], PLM_PRIVATE_ROWS, f.slot_k[i]);
            plm_acts_init(&t->acts[i], f.need[i], take(&q, sz), PLM_PRIVATE_ROWS, f.slot_k[i]);
        }
        for (int i = 0; R > 0 && i < PLM_LORA_TARGETS; i++) t->lt[i] = (float *)take(&q, (size_t)(PLM_PRIVATE_ROWS * R) * 4);
    }
    plm_parallel_region(forward_thread, &f, nt);
    count_traffic(s, n, want);
    memcpy(s->tokens + s->n_past, ids, (size_t)n * sizeof(int32_t));
    s->n_past += n;
    return PLM_OK;
}

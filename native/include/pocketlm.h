/*
 * pocketlm.h — the one public header of libpocketlm.
 *
 * Kernels first (types, quantization, products, norms, RoPE, activations,
 * attention, threads); the engine API follows in later sections. Every
 * function returns an int status (PLM_OK or a negative PLM_ERR_*) unless it
 * is a pure query; no function aborts, prints or reads past the sizes it is
 * given. plm_status_string() turns a status into words.
 *
 * Conventions shared by every kernel:
 *   - matrices are row-major; a weight matrix W has n rows of k values and a
 *     product computes y[m][n] = sum_k x[m][k] * W[n][k] (x times W transposed,
 *     the layout of Hugging Face Linear weights and of GGUF tensors);
 *   - block-quantized rows (Q8_0, Q4_0, Q4_1) are byte-compatible with GGUF:
 *     blocks of 32 values, see the block structs in the implementation and
 *     the mirror table in python/pocketlm/model/quant.py;
 *   - products with block-quantized weights first quantize the activations
 *     to Q8_0 blocks (exactly plm_quantize with PLM_TYPE_Q8_0), then take
 *     integer dot products per block; the NumPy reference follows the same
 *     contract so every backend agrees to float tolerance;
 *   - n_threads <= 0 means "the default" (plm_set_num_threads); any request
 *     is capped by plm_set_max_threads.
 *
 * The section between PLM_CDEF_BEGIN and PLM_CDEF_END is plain C
 * declarations only (no macros, no includes): python/pocketlm/kernels/native.py
 * feeds it verbatim to cffi, so the Python binding cannot drift from this file.
 */
#ifndef POCKETLM_H
#define POCKETLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared here is the library's interface: exported, while the
 * library is built with -fvisibility=hidden so nothing else is. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* PLM_CDEF_BEGIN */

/* ---- status --------------------------------------------------------- */
enum plm_status {
    PLM_OK = 0,
    PLM_ERR_INVALID_ARG = -1,   /* a NULL pointer or a negative size */
    PLM_ERR_SHAPE = -2,         /* sizes that do not fit together (k % 32 != 0 ...) */
    PLM_ERR_TYPE = -3,          /* a type id the call does not take */
    PLM_ERR_NOMEM = -4          /* scratch memory could not be allocated */
};
const char *plm_status_string(int status);
const char *plm_version(void);

/* ---- tensor types (ids are GGML's, so GGUF type fields map 1:1) --------- */
enum plm_type {
    PLM_TYPE_F32 = 0,
    PLM_TYPE_F16 = 1,
    PLM_TYPE_Q4_0 = 2,   /* fp16 d, 16 bytes of nibbles: x = (q - 8) * d   */
    PLM_TYPE_Q4_1 = 3,   /* fp16 d, fp16 m, 16 bytes of nibbles: x = q*d + m */
    PLM_TYPE_Q8_0 = 8    /* fp16 d, 32 x int8: x = q * d                    */
};
/* 1 for F32/F16, 32 for the block types, 0 for an unknown type. */
int64_t plm_type_block_size(int type);
/* Bytes of one block (or one element for F32/F16), 0 for an unknown type. */
int64_t plm_type_block_bytes(int type);
/* Bytes of a row of n values; -1 when n is not a multiple of the block size
 * or the type is unknown. */
int64_t plm_row_bytes(int type, int64_t n);

/* ---- fp16 ------------------------------------------------------------ */
uint16_t plm_fp32_to_fp16(float x);   /* round to nearest even, as F16C does */
float plm_fp16_to_fp32(uint16_t h);

/* ---- quantization -------------------------------------------------------- */
/* Rows of k floats -> rows of plm_row_bytes(type, k) bytes, with GGUF's
 * reference rounding (ggml's quantize_row_*_ref). Any of the five types. */
int plm_quantize(int type, const float *x, void *y, int64_t n_rows, int64_t k);
/* The inverse: rows of a typed tensor -> floats. */
int plm_dequantize(int type, const void *x, float *y, int64_t n_rows, int64_t k);
/* Embedding lookup: out[i] = dequantize(W[ids[i]]); an id outside
 * [0, n_rows) is PLM_ERR_INVALID_ARG and nothing is written. */
int plm_get_rows(int type, const void *w, int64_t n_rows, int64_t k,
                 const int32_t *ids, int64_t n_ids, float *out);

/* ---- products ------------------------------------------------------------ */
/* y[m][n] = x[m][k] . W[n][k]; W of any type above. m == 1 is the GEMV of a
 * decode step, m > 1 the batched GEMM of a prefill. */
int plm_matmul(int w_type, const void *w, const float *x, float *y,
               int64_t m, int64_t n, int64_t k, int n_threads);
/* The same with m == 1. */
int plm_gemv(int w_type, const void *w, const float *x, float *y,
             int64_t n, int64_t k, int n_threads);

/* ---- norms ---------------------------------------------------------------- */
/* y = x / sqrt(mean(x^2) + eps) * (w + w_offset), per row of n; w may be NULL
 * (no scale). w_offset is 1 for Gemma's (1 + weight) convention. y may be x. */
int plm_rms_norm(const float *x, const float *w, float *y,
                 int64_t n_rows, int64_t n, float eps, float w_offset);
/* y = (x - mean) / sqrt(var + eps) * w + b, per row; w and b may be NULL. */
int plm_layer_norm(const float *x, const float *w, const float *b, float *y,
                   int64_t n_rows, int64_t n, float eps);

/* ---- rotary position embedding ------------------------------------------ */
enum plm_rope_mode {
    PLM_ROPE_NEOX = 0,   /* rotate_half: pairs (i, i + rot_dim/2)  (HF Llama, Gemma, Phi, ...) */
    PLM_ROPE_GPTJ = 1    /* interleaved: pairs (2i, 2i + 1)        (GPT-J, some Falcon) */
};
/* In place on x[n_tokens][n_heads][head_dim]: the first rot_dim values of
 * each head rotate by angle pos * freq_scale * theta^(-2i/rot_dim) / ff[i],
 * the rest pass through. freq_scale is 1/factor for "linear" RoPE scaling;
 * freq_factors (rot_dim/2 values, or NULL for all 1) divide each frequency,
 * as llama.cpp's rope_freqs tensor does: "llama3" scaling is carried so. */
int plm_rope(float *x, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
             int64_t rot_dim, const int32_t *positions, float theta,
             float freq_scale, const float *freq_factors, int mode);

/* ---- elementwise -------------------------------------------------------- */
/* y = exp(x) (y may be x): the vector exp of the softmax, SiLU and attention, the same bits
 * on every SIMD path and build; within 2 ulp of exp for x in [ln(2^-126), 127.5 ln2 = 88.376],
 * 0 below (and for -inf), +inf above, NaN for NaN. */
int plm_exp(const float *x, float *y, int64_t n);
int plm_softmax(const float *x, float *y, int64_t n_rows, int64_t n);
int plm_silu(const float *x, float *y, int64_t n);
/* approximate != 0: the tanh form (gelu_pytorch_tanh / gelu_new); 0: erf. */
int plm_gelu(const float *x, float *y, int64_t n, int approximate);
/* Gated products of a GLU MLP: y = act(gate) * up. */
int plm_silu_mul(const float *gate, const float *up, float *y, int64_t n);
int plm_gelu_mul(const float *gate, const float *up, float *y, int64_t n, int approximate);
/* y = a + b (residual add); y may alias a or b. */
int plm_add(const float *a, const float *b, float *y, int64_t n);

/* ---- attention ------------------------------------------------------------ */
/* Causal attention of n_q queries over a KV cache.
 *   q[n_q][n_heads][head_dim], out likewise;
 *   k_cache, v_cache[n_kv][n_kv_heads][head_dim]: keys/values of positions
 *     0 .. n_kv-1 (only the first n_kv rows of the cache are read);
 *   query i sits at position q_pos0 + i and sees keys j <= q_pos0 + i
 *     (q_pos0 + n_q <= n_kv), and with window > 0 only keys with
 *     q_pos0 + i - j < window;
 *   head h reads kv head h / (n_heads / n_kv_heads) (GQA / MQA);
 *   score = scale * q.k, then softcap * tanh(score / softcap) when
 *     softcap > 0, plus alibi_slopes[h] * (j - pos) when alibi_slopes is
 *     not NULL; softmax over the visible keys; out = sum p_j v_j. */
int plm_attention(const float *q, const float *k_cache, const float *v_cache,
                  float *out, int64_t n_q, int64_t n_kv, int64_t q_pos0,
                  int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                  float scale, float softcap, int64_t window,
                  const float *alibi_slopes, int n_threads);

/* ---- threads and CPU features ------------------------------------------ */
/* Threads used when a call passes n_threads <= 0 (initially the number of
 * online CPUs). Returns the previous value. */
int plm_set_num_threads(int n);
int plm_get_num_threads(void);
/* Hard cap on every call's thread count (a simulated phone's cores);
 * n <= 0 removes the cap. Returns the previous cap (0 = none). */
int plm_set_max_threads(int n);
int plm_get_max_threads(void);
/* Worker threads the pool has started since load (the calling thread is
 * not counted) and the most threads (caller included) that took part in a
 * single parallel region since the last reset. */
int plm_pool_workers_started(void);
int plm_pool_peak_threads(void);
void plm_pool_reset_peak(void);

enum plm_cpu_feature {
    PLM_CPU_AVX2 = 1,    /* AVX2 + FMA + F16C, all three */
    PLM_CPU_NEON = 2,
    PLM_CPU_AVX512VNNI = 4, /* AVX512 F/BW/VL + VNNI: vpdpbusd in the integer dot products */
    PLM_CPU_DOTPROD = 8,    /* arm64 DotProd (HWCAP_ASIMDDP): sdot in the integer dot products */
    PLM_CPU_I8MM = 16,      /* arm64 I8MM (HWCAP2_I8MM): smmla in the prefill tile */
    PLM_CPU_AMX = 32        /* x86 AMX-TILE + AMX-INT8 that the OS has granted this process (XCR0 and
                               arch_prctl(ARCH_REQ_XCOMP_PERM)): the prefill GEMM's tiles; off with POCKETLM_AMX=0 */
};
/* Bit set of plm_cpu_feature the CPU has and this build can use. */
int plm_cpu_features(void);
/* The SIMD level: 0 forces the portable scalar kernels (the reference twins
 * of the SIMD ones), 1 uses AVX2 (or NEON) without its extensions, 2 (the
 * default) everything the CPU has, AVX512-VNNI and AMX (x86) or sdot and smmla (arm64) included; a level-2 kernel
 * gives bit for bit what its level-1 twin gives. Returns the previous level
 * (POCKETLM_SIMD=0/1 in the environment sets the starting one). */
int plm_set_simd(int level);
/* AMX's tiles in the prefill GEMM at SIMD level 2, where the CPU has PLM_CPU_AMX: 1 (the default; 0 when
 * POCKETLM_AMX=0 is in the environment) uses them, 0 the AVX512-VNNI tile, which gives the same floats.
 * Returns the previous setting. */
int plm_set_amx(int enable);

/* ---- measurement ------------------------------------------------------ */
/* Reads `bytes` of buf with n_threads threads (the access pattern of a GEMV
 * streaming its weights) and returns a checksum so nothing is optimized out.
 * tools/membw.py times it to measure the memory bandwidth kernels chase. */
double plm_bench_read(const void *buf, int64_t bytes, int n_threads);

/* ---- GGUF files (the engine's model reader) ----------------------------
 * plm_gguf_open maps a GGUF v2/v3 file read-only (or the GGUF at `offset`,
 * `length` bytes, inside a larger file such as a .task bundle; length 0:
 * to the end) and parses its header, metadata and tensor table, checking
 * every count, length, offset and type against the mapped bytes before use.
 * On failure it returns a negative status and, when `error` is not NULL,
 * sets *error to a malloc'd message that names the file and the field or
 * tensor (the caller frees it); nothing is printed. Values and tensor data
 * point into the map and live until plm_gguf_close. A plm_gguf is read-only
 * once open: any number of threads may query it at once. Nested arrays are
 * refused, as llama.cpp refuses them. */
typedef struct plm_gguf plm_gguf;
enum plm_gguf_value_type {
    PLM_GGUF_U8 = 0, PLM_GGUF_I8 = 1, PLM_GGUF_U16 = 2, PLM_GGUF_I16 = 3, PLM_GGUF_U32 = 4,
    PLM_GGUF_I32 = 5, PLM_GGUF_F32 = 6, PLM_GGUF_BOOL = 7, PLM_GGUF_STRING = 8, PLM_GGUF_ARRAY = 9,
    PLM_GGUF_U64 = 10, PLM_GGUF_I64 = 11, PLM_GGUF_F64 = 12
};
enum { PLM_ERR_FORMAT = -5, PLM_ERR_IO = -6, PLM_ERR_NOT_FOUND = -7 };
int plm_gguf_open(const char *path, uint64_t offset, uint64_t length, plm_gguf **out, char **error);
void plm_gguf_close(plm_gguf *g);
const char *plm_gguf_path(const plm_gguf *g);
/* frees what libpocketlm malloc'd for the caller (error messages), for callers without free() at hand */
void plm_free(void *p);
int64_t plm_gguf_n_kv(const plm_gguf *g);
/* index of key (the last one of that name), or -1 */
int64_t plm_gguf_find_key(const plm_gguf *g, const char *key);
const char *plm_gguf_key(const plm_gguf *g, int64_t i);
int plm_gguf_kv_type(const plm_gguf *g, int64_t i);
/* scalars of any integer / bool type as int64, of any numeric type as double */
int plm_gguf_get_int(const plm_gguf *g, int64_t i, int64_t *value);
int plm_gguf_get_float(const plm_gguf *g, int64_t i, double *value);
/* a string value: not NUL-terminated, `len` bytes of valid UTF-8 */
int plm_gguf_get_str(const plm_gguf *g, int64_t i, const char **s, uint64_t *len);
/* arrays: element type, count, numeric elements in place (little-endian and unaligned: copy them out with
 * memcpy), string elements by index */
int plm_gguf_arr_info(const plm_gguf *g, int64_t i, int *elem_type, uint64_t *count, const void **data);
int plm_gguf_arr_str(const plm_gguf *g, int64_t i, uint64_t j, const char **s, uint64_t *len);
int64_t plm_gguf_n_tensors(const plm_gguf *g);
int64_t plm_gguf_find_tensor(const plm_gguf *g, const char *name);
/* dims in GGUF order (dims[0] is the row length); data: the mapped bytes, nbytes of them */
int plm_gguf_tensor_info(const plm_gguf *g, int64_t i, const char **name, int *type, int *n_dims,
                         int64_t dims[4], const void **data, uint64_t *nbytes);
/* where the data section starts, from the start of the GGUF */
uint64_t plm_gguf_data_offset(const plm_gguf *g);

/* ---- model config (what the forward pass branches on) --------------------
 * python/pocketlm/model/config.py's ModelConfig, read from a GGUF file the
 * way the Python loader reads it: the pocketlm.config JSON when present,
 * else llama.cpp's {arch}.* keys and tensor names (and the rope_freqs
 * tensor). Names are ModelConfig's; enums are spelled out below. */
enum plm_norm { PLM_NORM_RMS = 0, PLM_NORM_LAYER = 1 };
enum plm_act { PLM_ACT_SILU = 0, PLM_ACT_GELU = 1, PLM_ACT_GELU_TANH = 2 };
enum plm_positions { PLM_POS_ROPE = 0, PLM_POS_LEARNED = 1, PLM_POS_ALIBI = 2 };
typedef struct {
    char arch[16];                    /* llama, mistral, gemma, gemma2, gemma3, phi, phi3, qwen2, qwen3, stablelm,
                                       * gpt2, falcon */
    int64_t vocab_size, hidden_size, n_layers, n_heads, n_kv_heads, head_dim, intermediate_size;
    int64_t max_position_embeddings;
    double norm_eps, norm_w_offset;
    int norm, act, gated_mlp;
    double rope_theta, rope_freq_scale;
    int64_t rot_dim;
    int rope_mode;                    /* PLM_ROPE_NEOX / PLM_ROPE_GPTJ */
    int64_t n_rope_freq_factors;      /* 0 or rot_dim / 2 */
    float rope_freq_factors[512];     /* divisors of the frequencies (llama3 scaling; longrope's short factors) */
    /* Sliding-window layers' RoPE (Gemma 3's local base): when rope_local_theta > 0 they rotate with this
     * base and linear scale and no frequency factors; the other layers keep the settings above */
    double rope_local_theta, rope_local_freq_scale;
    /* longrope: a forward call whose whole input ends past position rope_long_after (first position +
     * tokens of the call: a whole prompt however it is batched, one token for a decode step) divides the
     * frequencies by these long factors instead of rope_freq_factors. 0 factors: never */
    int64_t n_rope_freq_factors_long; /* 0 or rot_dim / 2 */
    float rope_freq_factors_long[512];
    int64_t rope_long_after;
    double rope_attn_factor;          /* multiplies the rotated part of q and k after RoPE (1: none) */
    int qk_norm;                      /* RMSNorm over each head of q and of k before RoPE: blk.N.attn_q_norm /
                                       * attn_k_norm of head_dim values, with norm_eps and norm_w_offset */
    int qkv_bias, o_bias, mlp_bias, tie_embeddings, post_norms, parallel_residual, output_bias;
    int positions;
    double embed_scale, query_scale, attn_softcap, final_softcap;
    int64_t sliding_window;
    uint8_t sliding_window_layer[1024]; /* 1 where layer i uses the window */
    int64_t bos_token_id;             /* -1: none */
    int64_t n_eos;
    int64_t eos_token_ids[8];
} plm_model_config;
/* fills *cfg; on failure a negative status and, when error is not NULL, a
 * malloc'd message naming the file and the key */
int plm_gguf_model_config(const plm_gguf *g, plm_model_config *cfg, char **error);

/* ---- sampling (the engine's sampler) -------------------------------------
 * The random stream is NumPy's: plm_rng_seed(seed) gives the state of
 * np.random.Generator(np.random.PCG64(seed)) (SeedSequence, then PCG64's
 * XSL-RR 128/64), and plm_rng_uniform is its random(), so a seed gives the
 * same draws in both engines. plm_sample is python/pocketlm/sampling.py's
 * Sampler.sample: greedy (the first maximum) when top_k == 1 or
 * temperature == 0; else the top_k logits (ties: lower id first), softmax of
 * logit / temperature in double, the smallest prefix whose mass reaches
 * top_p, renormalized, and the token whose cumulative probability first
 * exceeds one uniform draw. One rng per session: not thread-safe. */
typedef struct { uint64_t state_hi, state_lo, inc_hi, inc_lo; } plm_rng;
void plm_rng_seed(plm_rng *rng, uint64_t seed);
uint64_t plm_rng_next_u64(plm_rng *rng);
double plm_rng_uniform(plm_rng *rng);
int plm_sample(const float *logits, int64_t n, int64_t top_k, double top_p, double temperature, plm_rng *rng,
               int32_t *token);

/* ---- the engine: a model and its sessions --------------------------------
 * A plm_model is a loaded model: its config and its weights, mapped in place
 * from a GGUF file (plm_model_open) or borrowed from the caller's memory
 * (plm_model_create). A plm_session is one conversation over a model: a KV
 * cache of max_tokens positions (a ring of the window for sliding-window
 * layers: plm_session_kv_bytes), the tokens it holds, tokens waiting to be
 * run (added but not yet prefilled), and a sampler with its random stream.
 * The forward pass is python/pocketlm/model/forward.py's step for step.
 *
 * Thread-safety: a model is read-only once made; any number of sessions
 * may share it, on any threads, until plm_model_free (which must come after
 * every session of the model is freed). One session is used by one thread
 * at a time, except plm_session_cancel, which any thread may call at any
 * time. Forward passes of different sessions run one after another (they
 * share the thread pool).
 *
 * Errors: every call that can fail returns a status; those with a
 * char **error set it (when not NULL) to a malloc'd message naming the file,
 * tensor, option or size at fault, for the caller to free (plm_free). */
typedef struct plm_model plm_model;
typedef struct plm_session plm_session;

/* Maps the GGUF at `offset` (`length` bytes, 0: to the end) of path, reads
 * its config (plm_gguf_model_config), binds every tensor the forward pass
 * reads and checks its type and shape against the config. llama.cpp's
 * fused attn_qkv is split into row views, nothing is copied but vectors
 * stored as F16 (converted to F32). */
int plm_model_open(const char *path, uint64_t offset, uint64_t length, plm_model **out, char **error);

/* A tensor the caller holds: canonical name (forward.py's), type, dims in
 * GGUF order (dims[0] is the row length), data and its size in bytes. */
typedef struct {
    const char *name;
    int type;
    int n_dims;
    int64_t dims[4];
    const void *data;
    uint64_t nbytes;
} plm_tensor_ref;
/* A model over the caller's tensors (which must outlive it), checked as
 * plm_model_open checks a file's; `what` names the source in messages. */
int plm_model_create(const plm_model_config *cfg, const plm_tensor_ref *tensors, int64_t n_tensors,
                     const char *what, plm_model **out, char **error);
void plm_model_free(plm_model *m);
const plm_model_config *plm_model_get_config(const plm_model *m);
/* bytes of weights the model reads (mapped or borrowed) and bytes it allocated itself */
uint64_t plm_model_weight_bytes(const plm_model *m);
uint64_t plm_model_owned_bytes(const plm_model *m);

/* ---- LoRA adapters -----------------------------------------------------------
 * A plm_lora holds, for the projections it adapts (attn_q/k/v/output,
 * ffn_gate/up/down of any layer), an F32 pair A [r][in], B [out][r]; a
 * session created with it adds s * B (A x) to each of those products
 * (unmerged: the model's weights are untouched and shared by sessions with
 * other adapters or none). s is llama.cpp's: alpha / r, or 1 when alpha is 0.
 * Everything is copied in: the source may go once the adapter is made.
 * An adapter is read-only and reference-counted: sessions take their own
 * reference, so plm_lora_free may come before theirs. It must not outlive
 * its model. */
typedef struct plm_lora plm_lora;
/* A GGUF LoRA adapter (llama.cpp's convert_lora_to_gguf.py format:
 * general.type "adapter", adapter.type "lora", adapter.lora.alpha, tensors
 * blk.N.NAME.weight.lora_a [in x r] / .lora_b [r x out] in GGUF order, F32,
 * F16 or Q8_0; a fused attn_qkv is split into q, k and v), checked against
 * the model: its architecture, every layer and shape. */
int plm_lora_open(const plm_model *m, const char *path, uint64_t offset, uint64_t length, plm_lora **out,
                  char **error);
/* An adapter over the caller's tensors, named and laid out as in a GGUF
 * adapter (no fused attn_qkv needed); alpha as adapter.lora.alpha. */
int plm_lora_create(const plm_model *m, const plm_tensor_ref *tensors, int64_t n, double alpha, const char *what,
                    plm_lora **out, char **error);
void plm_lora_free(plm_lora *a);
/* the largest rank, the bytes it holds, the weights it adapts */
int64_t plm_lora_rank(const plm_lora *a);
uint64_t plm_lora_bytes(const plm_lora *a);
int64_t plm_lora_n_weights(const plm_lora *a);

typedef struct {
    int64_t max_tokens;   /* KV cache positions: input + output tokens (MediaPipe's max_num_tokens); > 0 */
    int kv_type;          /* PLM_TYPE_F16 (the default, as llama.cpp's) or PLM_TYPE_F32 */
    int n_threads;        /* <= 0: plm_get_num_threads(); capped by plm_set_max_threads. A session's
                           * buffers are laid out for the count in force when it is created, and it
                           * never runs on more threads than that */
    int64_t n_batch;      /* prompt tokens per forward pass (<= 0: 256; llama.cpp's n_batch is 512) */
    int64_t top_k;        /* sampling: see plm_sample; 1 is greedy */
    double top_p, temperature;
    uint64_t seed;
    plm_lora *lora;       /* NULL, or the adapter every forward pass of the session applies (referenced) */
} plm_session_params;
/* max_tokens 512, F16 KV, default threads, n_batch 256, top_k 40, top_p 1,
 * temperature 0.8, seed 0: LlmInferenceOptions' defaults */
void plm_session_params_default(plm_session_params *p);
/* bytes plm_session_create allocates for these params (KV cache, scratch,
 * token lists): what a memory budget is checked against before creating;
 * 0 for params plm_session_create refuses */
uint64_t plm_session_bytes(const plm_model *m, const plm_session_params *p);
/* The KV cache: every layer keeps keys and values of max_tokens positions,
 * except a sliding-window layer (sliding_window_layer[l], sliding_window > 0),
 * which keeps a ring of min(max_tokens, sliding_window + n_batch - 1):
 * position j at row j % rows. A forward pass writes its batch's keys before
 * its queries attend, so the ring holds the window behind the batch's first
 * query and the batch itself (llama.cpp's SWA cache size). Its bytes, part
 * of plm_session_bytes (0 for a LiteRT model, whose caches are the graph's). */
uint64_t plm_session_kv_bytes(const plm_model *m, const plm_session_params *p);

int plm_session_create(plm_model *m, const plm_session_params *p, plm_session **out, char **error);
/* A fork holding the same conversation: the filled part of the KV cache
 * (of each ring, wrapped or not), the tokens, the pending tokens and the
 * sampler's state are copied. */
int plm_session_clone(const plm_session *s, plm_session **out, char **error);
void plm_session_free(plm_session *s);
/* bytes this session allocated (= plm_session_bytes of its params) */
uint64_t plm_session_memory(const plm_session *s);

/* Appends tokens to run next; refused (nothing added) when an id is outside
 * the vocabulary or the tokens held + pending + these would exceed max_tokens. */
int plm_session_add_tokens(plm_session *s, const int32_t *ids, int64_t n, char **error);
/* tokens held in the KV cache + tokens pending */
int64_t plm_session_size(const plm_session *s);
int64_t plm_session_n_past(const plm_session *s);
int64_t plm_session_n_pending(const plm_session *s);
/* Runs the pending tokens through the model (in batches of n_batch) and
 * writes the logits of the last one (vocab_size floats) to logits, or of
 * every one (n_pending x vocab_size) when all != 0. For tests and tools. */
int plm_session_eval(plm_session *s, float *logits, int all, char **error);
/* Runs what is pending and samples the next token from the session's
 * sampler; the token is returned, not added (add it to continue). */
int plm_session_predict(plm_session *s, int32_t *token, char **error);

/* Changes the sampling settings of a session (its random stream goes on);
 * plm_session_reseed restarts the stream from a seed. */
int plm_session_set_sampling(plm_session *s, int64_t top_k, double top_p, double temperature, char **error);
void plm_session_reseed(plm_session *s, uint64_t seed);

/* Sets the session's cancel flag: a generation in flight stops before its
 * next sample (stop reason PLM_STOP_CANCELLED). Safe from any thread; a
 * plm_session_generate call clears the flag when it starts. */
void plm_session_cancel(plm_session *s);

enum plm_stop_reason { PLM_STOP_NONE = 0, PLM_STOP_TOKEN = 1, PLM_STOP_MAX_TOKENS = 2, PLM_STOP_CANCELLED = 3 };
/* What forward passes read and computed (forward.py's TrafficCounters). */
typedef struct {
    int64_t tokens, weight_bytes, kv_bytes, flops;
} plm_traffic;
typedef struct {
    int64_t prefill_tokens, decode_tokens;
    double prefill_s, decode_s, time_to_first_token_s;
    int stop_reason;
    plm_traffic prefill, decode;
} plm_generate_stats;
/* Called with each sampled token that is not a stop token; a non-zero
 * return stops the generation as cancelled. */
typedef int (*plm_token_fn)(void *user, int32_t token);
/* The generate loop: prefills what is pending, then samples, hands the
 * token to on_token and runs it through the model, until a token of
 * stop_ids (not handed over, not added), max_tokens (input + output: the
 * last token is left pending) or cancellation. stats may be NULL. */
int plm_session_generate(plm_session *s, const int32_t *stop_ids, int64_t n_stop, plm_token_fn on_token,
                         void *user, plm_generate_stats *stats, char **error);
/* Called before each sample with the step's logits (n_vocab floats), which it
 * may change in place: a constraint (structured output) sets -INFINITY where a
 * token may not come next. A non-zero return stops the generation as
 * cancelled, before this step samples. */
typedef int (*plm_logits_fn)(void *user, float *logits, int64_t n_vocab);
/* plm_session_generate with on_logits applied at every decode step (NULL:
 * none); on_token and on_logits get the same user pointer. */
int plm_session_generate_masked(plm_session *s, const int32_t *stop_ids, int64_t n_stop, plm_token_fn on_token,
                                plm_logits_fn on_logits, void *user, plm_generate_stats *stats, char **error);
/* counters since the session was made (clones start at zero) */
void plm_session_traffic(const plm_session *s, plm_traffic *out);

/* ---- LiteRT models ---------------------------------------------------------
 * A TFLite LLM graph (LiteRT-LM's and MediaPipe's on-device format: signatures
 * prefill_<T> and decode over float32 KV caches kv_cache_k_<i> / kv_cache_v_<i>
 * that are inputs and outputs of every signature) runs as a plm_model on
 * LiteRT's own kernels: its sessions, generate loop, sampler, clone and cancel
 * are the engine's, and each session holds its own TFLite interpreter (XNNPack,
 * the session's n_threads) and KV caches. max_tokens is at most the graph's
 * cache length (max_position_embeddings of its config), kv_type is ignored
 * (the graph's caches are float32), LoRA adapters are refused. LiteRT itself
 * is LiteRT-LM's runtime library liblitert-lm.so (pip install
 * pocketlm[litert]), loaded at first use from plm_litert_set_library's path
 * or else $POCKETLM_LITERT_LIB, never linked. docs/engines.md says how the
 * signatures are driven. */
/* Loads liblitert-lm.so from path now; refused when another path is already loaded. */
int plm_litert_set_library(const char *path, char **error);
/* the path LiteRT's library was loaded from, or NULL when it is not loaded */
const char *plm_litert_library(void);
/* The TFLite model at `offset` (`size` bytes, 0: to the end) of path, mapped in
 * place (copied when not 16-byte aligned), its signatures found and checked:
 * decode with float32 logits [1, 1, vocab], prefill_<T>, tokens / input_pos /
 * optional mask, the same KV caches in and out. */
int plm_model_open_litert(const char *path, uint64_t offset, uint64_t size, plm_model **out, char **error);
/* 1 when the model runs a TFLite graph (plm_model_open_litert), else 0 */
int plm_model_is_litert(const plm_model *m);
/* the prefill signatures' lengths T, ascending: up to cap into out; returns how many there are, or
 * PLM_ERR_INVALID_ARG for a model that is not a LiteRT one */
int64_t plm_model_litert_prefill_lengths(const plm_model *m, int64_t *out, int64_t cap);

/* ---- .task bundles -------------------------------------------------------
 * A .task is a zip file (MediaPipe's bundler and pocketlm's write one).
 * plm_task_open maps it read-only and reads its directory (zip64 too),
 * checking every record and each entry's local header against the file;
 * a stored entry's bytes are at `offset` in the file (plm_model_open maps
 * the model entry from there). plm_task_metadata reads the METADATA entry,
 * MediaPipe's LlmParameters protobuf (schema: python/pocketlm/genai/
 * llm_params.py); strings point into the map, are valid UTF-8 and are not
 * NUL-terminated. PLM_ERR_NOT_FOUND when the bundle has no METADATA. */
typedef struct plm_task plm_task;
typedef struct {
    const char *ptr;
    uint64_t len;
} plm_str;
typedef struct {
    int64_t vocab_size;                 /* 0: not set */
    int has_start_token, has_start_token_id;
    plm_str start_token;                /* the start (BOS) token's text */
    int64_t start_token_id;             /* or its id; -1: not set */
    int64_t n_stop_tokens;
    plm_str stop_tokens[256];
    int bytes_to_unicode;               /* input_output_normalizations holds BYTES_TO_UNICODE */
    int unknown_normalization;          /* ... or a value pocketlm does not know */
    plm_str system_prompt, prompt_prefix, prompt_suffix; /* prompt_template's session_prefix, prompt_prefix, prompt_suffix */
    int has_role_token[4];
    plm_str role_tokens[4];             /* user, system, model, end */
} plm_llm_params;
int plm_task_open(const char *path, plm_task **out, char **error);
void plm_task_close(plm_task *t);
int64_t plm_task_n_entries(const plm_task *t);
/* index of the entry of that name, or -1 */
int64_t plm_task_find(const plm_task *t, const char *name);
int plm_task_entry(const plm_task *t, int64_t i, const char **name, uint64_t *offset, uint64_t *size, int *stored);
int plm_task_metadata(const plm_task *t, plm_llm_params *out, char **error);
/* the LlmParameters wire format alone: 0, or -1 for bytes that are not one */
int plm_llm_params_parse(const void *data, uint64_t size, plm_llm_params *out);

/* ---- .litertlm files (LiteRT-LM's model container) ------------------------
 * plm_litertlm_open maps a .litertlm file read-only and reads its header's
 * LiteRTLMMetaData flatbuffer (schema: litert-lm-builder's
 * litertlm_header_schema), checking every table, vtable, vector and string
 * against the header's bytes and every section's [begin, end) against the
 * file; only what the engine needs is read: each section's data type, place
 * and model_type item. plm_litertlm_metadata reads the LlmMetadata section
 * (litert.lm.proto.LlmMetadata), plm_litertlm_tokenizer the tokenizer.
 * python/pocketlm/model/litertlm_file.py reads the same files with
 * LiteRT-LM's own schema code; tests hold the two together. Strings point
 * into the map, are valid UTF-8 and are not NUL-terminated (model_type is).
 * A plm_litertlm is read-only once open: any number of threads may query it. */
typedef struct plm_litertlm plm_litertlm;
enum plm_litertlm_section_type {  /* AnySectionDataType */
    PLM_LITERTLM_GENERIC_BINARY = 1, PLM_LITERTLM_TFLITE_MODEL = 3, PLM_LITERTLM_SP_TOKENIZER = 4,
    PLM_LITERTLM_LLM_METADATA = 5, PLM_LITERTLM_HF_TOKENIZER_ZLIB = 6, PLM_LITERTLM_TFLITE_WEIGHTS = 7,
    PLM_LITERTLM_EMBEDDING_METADATA = 8, PLM_LITERTLM_EXECUTOR_METADATA = 9, PLM_LITERTLM_TTS_METADATA = 10,
    PLM_LITERTLM_ASR_METADATA = 11
};
enum plm_litertlm_token_kind { PLM_LITERTLM_TOKEN_NONE = 0, PLM_LITERTLM_TOKEN_IDS = 1, PLM_LITERTLM_TOKEN_TEXT = 2 };
enum plm_litertlm_tokenizer_kind { PLM_LITERTLM_TOKENIZER_SENTENCEPIECE = 1, PLM_LITERTLM_TOKENIZER_JSON = 2 };
int plm_litertlm_open(const char *path, plm_litertlm **out, char **error);
void plm_litertlm_close(plm_litertlm *f);
/* the format version of bytes 8-19: major, minor, patch */
void plm_litertlm_version(const plm_litertlm *f, uint32_t version[3]);
int64_t plm_litertlm_n_sections(const plm_litertlm *f);
/* section i: its AnySectionDataType, where its bytes lie in the file, its model_type item (NULL: none) */
int plm_litertlm_section(const plm_litertlm *f, int64_t i, int *data_type, uint64_t *offset, uint64_t *size,
                         const char **model_type);
/* section i's bytes, in the map (valid until plm_litertlm_close) */
int plm_litertlm_section_data(const plm_litertlm *f, int64_t i, const void **data, uint64_t *size);
/* the schema's name of a section type ("TFLiteModel", ...), NULL for a number it does not have */
const char *plm_litertlm_section_type_name(int data_type);
/* the first section of data_type whose model_type is model_type (NULL: any), or -1 */
int64_t plm_litertlm_find(const plm_litertlm *f, int data_type, const char *model_type);
typedef struct {
    int kind;                 /* plm_litertlm_token_kind: LiteRT-LM's TokenUnion */
    plm_str text;             /* TEXT: the token's text */
    int64_t first_id, n_ids;  /* IDS: the metadata's token_ids[first_id .. first_id + n_ids) */
} plm_litertlm_token;
typedef struct {
    plm_litertlm_token start_token;     /* kind NONE: not set */
    int64_t n_stop_tokens;
    plm_litertlm_token stop_tokens[256];
    int has_user_affixes, has_model_affixes, has_system_affixes; /* prompt_templates' roles that are set */
    plm_str user_prefix, user_suffix, model_prefix, model_suffix, system_prefix, system_suffix;
    int has_jinja_template;
    plm_str jinja_template;             /* jinja_prompt_template */
    int64_t max_num_tokens;             /* 0: not set */
    int llm_model_type;                 /* field number of LlmModelType's member (1 generic_model, 4 gemma3, ...); 0: none */
    int64_t n_token_ids;
    int32_t token_ids[4096];            /* the ids of the tokens above, pooled */
} plm_litertlm_llm_metadata;
/* PLM_ERR_NOT_FOUND (out cleared) when the file has no LlmMetadataProto section */
int plm_litertlm_metadata(const plm_litertlm *f, plm_litertlm_llm_metadata *out, char **error);
/* the LlmMetadata wire format alone: 0, or -1 for bytes this reader does not take */
int plm_litertlm_metadata_parse(const void *data, uint64_t size, plm_litertlm_llm_metadata *out);
/* 1 when this build inflates HF_Tokenizer_Zlib sections (zlib was found at build time), else 0 */
int plm_litertlm_has_zlib(void);
/* The tokenizer: the SP_Tokenizer section's SentencePiece model (kind 1, in the map), else the tokenizer.json of
 * HF_Tokenizer_Zlib (kind 2: inflated once, to exactly its declared size, at most 256 MiB, UTF-8, NUL after it;
 * held by f). PLM_ERR_NOT_FOUND when there is neither; without zlib a HF_Tokenizer_Zlib is refused by name. */
int plm_litertlm_tokenizer(const plm_litertlm *f, int *kind, const void **data, uint64_t *size, char **error);

/* ---- tokenizers ------------------------------------------------------------
 * python/pocketlm/tokenizer.py's tokenizers in C, id for id: byte-level BPE
 * (a GGUF "gpt2" vocabulary with its pre-tokenizer, or a tokenizer.json),
 * SentencePiece models (BPE and unigram, identity normalization) and
 * llama.cpp's "llama" vocabulary of scored pieces. A tokenizer is read-only
 * once made and may be used from several threads at once. */
typedef struct plm_tokenizer plm_tokenizer;
/* From a GGUF's tokenizer.ggml.* keys (and pocketlm.tokenizer.*); `what`
 * names the file in messages. PLM_ERR_NOT_FOUND: the file has no tokenizer. */
int plm_tokenizer_from_gguf(const plm_gguf *g, const char *what, plm_tokenizer **out, char **error);
/* From a .task's TOKENIZER_MODEL entry: a SentencePiece model, or a
 * tokenizer.json (bytes starting with '{'); BOS and EOS ids come from the
 * model (bos_id -1: the SentencePiece model's <s>, or none). */
int plm_tokenizer_from_bytes(const void *data, uint64_t size, int64_t bos_id, const int64_t *eos_ids, int64_t n_eos,
                             const char *what, plm_tokenizer **out, char **error);
void plm_tokenizer_free(plm_tokenizer *t);
int64_t plm_tokenizer_vocab_size(const plm_tokenizer *t);
int64_t plm_tokenizer_bos_id(const plm_tokenizer *t); /* -1: none */
int plm_tokenizer_add_bos(const plm_tokenizer *t);    /* whether sequences start with BOS (the file's setting) */
int64_t plm_tokenizer_eos_ids(const plm_tokenizer *t, const int32_t **ids);
const char *plm_tokenizer_chat_template(const plm_tokenizer *t); /* NUL-terminated, or NULL */
/* Token ids of len bytes of UTF-8 text (BOS first when add_bos): up to cap
 * of them into ids; *n_ids gets how many there are (call with cap 0 to size). */
int plm_tokenizer_encode(const plm_tokenizer *t, const char *text, uint64_t len, int add_bos, int32_t *ids,
                         int64_t cap, int64_t *n_ids, char **error);
/* The text of ids as Tokenizer.decode gives it (invalid UTF-8 becomes U+FFFD):
 * up to cap bytes into text, not NUL-terminated; *len gets its length. */
int plm_tokenizer_decode(const plm_tokenizer *t, const int32_t *ids, int64_t n, char *text, uint64_t cap,
                         uint64_t *len, char **error);
/* The raw bytes one token adds to a stream (up to cap into buf; *len: how
 * many), and whether the first piece of a decoded text loses a leading space. */
int plm_tokenizer_token_bytes(const plm_tokenizer *t, int32_t id, char *buf, size_t cap, size_t *len);
int plm_tokenizer_strips_leading_space(const plm_tokenizer *t);
/* The id of text when it is one special (control or added) token, else -1. */
int64_t plm_tokenizer_special_id(const plm_tokenizer *t, const char *text, uint64_t len);

/* ---- turn templates ----------------------------------------------------------
 * MediaPipe's PromptTemplates for a chat template, recognised by family from
 * its text as llama.cpp does: "chatml" (<|im_start|>, with a default system
 * message the template writes as the preamble), "qwen2" and "qwen3" (Qwen's
 * ChatML: Qwen2.5's default system message; Qwen3's enable_thinking at its
 * default, no <think> block), "gemma" (<start_of_turn>), "gemma3" (a system
 * message folded into the first user turn), "llama3" (<|start_header_id|>),
 * "phi3" (Phi-3/3.5: <|assistant|>\n with <|end|>\n), "phi4-mini" (the same
 * markers without newlines), "zephyr" (<|user|> closed by the EOS token) and
 * "solar" (### User: / ### Assistant:). strip_bos: the tokenizer adds BOS
 * itself, so a bos_token the template writes first is left out.
 * A system turn is system_prefix + text + system_suffix in place of the
 * preamble; when system_prefix ends with user_prefix (Gemma 3's), the system
 * text opens the first user turn, whose prefix is then not written again. */
typedef struct {
    char user_prefix[256], user_suffix[256], model_prefix[256], model_suffix[256];
    char system_prefix[256], system_suffix[256];
    char preamble[2048]; /* text before the first turn only */
} plm_turn_templates;
/* The family's name and *out filled, or NULL (out cleared) when not recognised. */
const char *plm_chat_template_detect(const char *tmpl, const char *bos_text, const char *eos_text, int strip_bos,
                                     plm_turn_templates *out);
typedef struct {
    const char *role;    /* "system" (first only), then "user" and "assistant" in turn */
    const char *content; /* UTF-8, NUL-terminated */
} plm_chat_message;
/* The text n messages render to with turn templates t, as a session feeds
 * them (the generation prompt, model_prefix, after a last user turn when
 * add_generation_prompt), into *out for the caller to free (plm_free).
 * Roles out of turn, or a system turn for templates without one, are refused. */
int plm_chat_template_render(const plm_turn_templates *t, const plm_chat_message *messages, int64_t n,
                             int add_generation_prompt, char **out, char **error);

/* PLM_CDEF_END */

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* POCKETLM_H */

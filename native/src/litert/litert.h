/*
 * litert.h — what the LiteRT layer's files share: the TFLite C API as
 * libpocketlm reaches it (a table of function pointers filled from
 * liblitert-lm.so by dlopen, never linked), and the executor that runs a
 * TFLite LLM graph's prefill_N / decode signatures over KV caches that are
 * inputs and outputs of every signature (LiteRT-LM's CPU executor, in C).
 * The engine (engine/) drives it from plm_forward; nothing here samples.
 */
#ifndef PLM_LITERT_H
#define PLM_LITERT_H

#include <stdarg.h>

#include "model/model.h"

/* ---- the TFLite C API (tensorflow/lite/core/c/c_api.h, c_api_experimental.h,
 * delegates/xnnpack/xnnpack_delegate.h), declared by its public signatures ---- */

typedef struct TfLiteModel TfLiteModel;
typedef struct TfLiteInterpreterOptions TfLiteInterpreterOptions;
typedef struct TfLiteInterpreter TfLiteInterpreter;
typedef struct TfLiteSignatureRunner TfLiteSignatureRunner;
typedef struct TfLiteTensor TfLiteTensor;
typedef struct TfLiteDelegate TfLiteDelegate;
typedef int TfLiteStatus;   /* an enum in C: int-sized */
enum { PLM_TFL_OK = 0, PLM_TFL_CANCELLED = 8 };
enum { PLM_TFL_FLOAT32 = 1, PLM_TFL_INT32 = 2, PLM_TFL_INT64 = 4 }; /* TfLiteType values used here */
typedef void (*plm_tfl_reporter)(void *user, const char *format, va_list args);

/* TfLiteXNNPackDelegateOptions grows between releases; its first field is
 * int32_t num_threads. It is returned by value from a function, and being
 * larger than 16 bytes it comes back through a caller-provided buffer on
 * x86-64 and arm64 alike, so a generously sized buffer of our own receives
 * whatever layout the loaded library has. */
typedef struct {
    union {
        int32_t num_threads;
        int64_t align;
        unsigned char bytes[1024];
    } u;
} plm_xnn_options;

typedef struct {
    TfLiteModel *(*ModelCreateWithErrorReporter)(const void *data, size_t size, plm_tfl_reporter reporter, void *user);
    void (*ModelDelete)(TfLiteModel *model);
    TfLiteInterpreterOptions *(*InterpreterOptionsCreate)(void);
    void (*InterpreterOptionsDelete)(TfLiteInterpreterOptions *options);
    void (*InterpreterOptionsSetNumThreads)(TfLiteInterpreterOptions *options, int32_t num_threads);
    void (*InterpreterOptionsAddDelegate)(TfLiteInterpreterOptions *options, TfLiteDelegate *delegate);
    void (*InterpreterOptionsSetErrorReporter)(TfLiteInterpreterOptions *options, plm_tfl_reporter reporter,
                                               void *user);
    TfLiteStatus (*InterpreterOptionsEnableCancellation)(TfLiteInterpreterOptions *options, _Bool enable); /* or NULL */
    TfLiteInterpreter *(*InterpreterCreate)(const TfLiteModel *model, const TfLiteInterpreterOptions *options);
    void (*InterpreterDelete)(TfLiteInterpreter *interpreter);
    int32_t (*InterpreterGetSignatureCount)(const TfLiteInterpreter *interpreter);
    const char *(*InterpreterGetSignatureKey)(const TfLiteInterpreter *interpreter, int32_t index);
    TfLiteSignatureRunner *(*InterpreterGetSignatureRunner)(const TfLiteInterpreter *interpreter, const char *key);
    size_t (*SignatureRunnerGetInputCount)(const TfLiteSignatureRunner *runner);
    const char *(*SignatureRunnerGetInputName)(const TfLiteSignatureRunner *runner, int32_t index);
    size_t (*SignatureRunnerGetOutputCount)(const TfLiteSignatureRunner *runner);
    const char *(*SignatureRunnerGetOutputName)(const TfLiteSignatureRunner *runner, int32_t index);
    TfLiteTensor *(*SignatureRunnerGetInputTensor)(TfLiteSignatureRunner *runner, const char *name);
    const TfLiteTensor *(*SignatureRunnerGetOutputTensor)(const TfLiteSignatureRunner *runner, const char *name);
    TfLiteStatus (*SignatureRunnerAllocateTensors)(TfLiteSignatureRunner *runner);
    TfLiteStatus (*SignatureRunnerInvoke)(TfLiteSignatureRunner *runner);
    TfLiteStatus (*SignatureRunnerCancel)(TfLiteSignatureRunner *runner); /* or NULL */
    void (*SignatureRunnerDelete)(TfLiteSignatureRunner *runner);
    int (*TensorType)(const TfLiteTensor *tensor);
    int32_t (*TensorNumDims)(const TfLiteTensor *tensor);
    int32_t (*TensorDim)(const TfLiteTensor *tensor, int32_t index);
    size_t (*TensorByteSize)(const TfLiteTensor *tensor);
    void *(*TensorData)(const TfLiteTensor *tensor);
    plm_xnn_options (*XNNPackDelegateOptionsDefault)(void);
    TfLiteDelegate *(*XNNPackDelegateCreate)(const plm_xnn_options *options);
    void (*XNNPackDelegateDelete)(TfLiteDelegate *delegate);
    const char *(*Version)(void);
} plm_tfl;

/* The table, loading the library on first use (plm_litert_set_library's path,
 * else $POCKETLM_LITERT_LIB); NULL with a message saying how to get it. */
const plm_tfl *plm_tfl_get(char **error);
/* the path the library was loaded from, or NULL */
const char *plm_tfl_path(void);

/* ---- the executor ------------------------------------------------------------ */

#define PLM_LRT_MAX_PREFILL 16   /* prefill_N signatures kept (the largest ones when a file has more) */
#define PLM_LRT_MAX_KV 512       /* kv_cache_k_i / kv_cache_v_i inputs: 256 layers */

/* One KV cache tensor as the signatures take it: 4 dims, float32, the
 * position axis seq_axis (2 for K [1, kv_heads, C, head_dim], 3 for V
 * stored transposed [1, kv_heads, head_dim, C]); -1: not known from the
 * shape (head_dim == C), so a run's changes are copied whole. */
typedef struct {
    char name[32];
    int32_t dims[4];
    int seq_axis;
    size_t bytes;
} plm_lrt_kv;

/* A TFLite LLM graph checked against what the executor drives. */
typedef struct plm_lrt_model {
    int refs;                        /* the opener's and each state's: the map outlives every interpreter */
    const plm_tfl *api;
    char *what;                      /* the file, named in messages */
    void *map;                       /* the mapped pages (or an aligned copy) holding the flatbuffer */
    size_t map_bytes;
    int map_is_copy;                 /* 1: the range was not 16-byte aligned and was copied */
    const void *data;                /* the flatbuffer */
    size_t size;
    TfLiteModel *model;
    char report[512];                /* TFLite's last error message for this model */
    int64_t n_prefill;
    int64_t prefill_len[PLM_LRT_MAX_PREFILL]; /* ascending: the T of each prefill_T */
    char prefill_key[PLM_LRT_MAX_PREFILL][64]; /* their signature names */
    int64_t n_kv;                    /* 2 * layers: k_0, v_0, k_1, v_1, ... */
    plm_lrt_kv kv[PLM_LRT_MAX_KV];
    int64_t cache_length;            /* C: positions of the KV cache */
    int64_t vocab_size;              /* decode's logits [1, 1, V] (or [1, V]) */
    int has_mask;                    /* the signatures take an additive float32 mask [1, 1, T, C] */
    int64_t n_kv_heads, head_dim;
    uint64_t cache_bytes;            /* one set of KV caches (every kv tensor once) */
} plm_lrt_model;

/* One signature of one session's interpreter. */
typedef struct {
    TfLiteSignatureRunner *r;
    int64_t T;                       /* tokens per run: the length of its input_pos */
    TfLiteTensor *tokens, *pos, *mask; /* mask NULL: the graph takes none */
    TfLiteTensor *kv_in[PLM_LRT_MAX_KV];
    const TfLiteTensor *kv_out[PLM_LRT_MAX_KV];
    const TfLiteTensor *logits;      /* decode's; NULL for prefill */
} plm_lrt_runner;

/* A session's executor state: its own interpreter (and XNNPack delegate,
 * which packs the weights for it), the runners, and the KV caches, which
 * live in the runners' input tensors. */
typedef struct plm_lrt_state {
    plm_lrt_model *m;                /* referenced */
    int n_threads;
    TfLiteInterpreterOptions *options;
    TfLiteDelegate *xnnpack;
    TfLiteInterpreter *interpreter;
    plm_lrt_runner prefill[PLM_LRT_MAX_PREFILL];
    plm_lrt_runner decode;
    int can_cancel_in_run;           /* TfLiteSignatureRunnerCancel is safe: outputs never alias inputs */
    volatile int running;            /* a run is in flight (for plm_lrt_cancel) */
    char report[512];                /* TFLite's last error message for this interpreter */
    uint64_t bytes;                  /* what plm_lrt_state_bytes counts */
} plm_lrt_state;

/* Maps `size` bytes at `offset` of path (0: to the end), has TFLite read the
 * flatbuffer and checks its signatures: decode and at least one prefill_N,
 * each taking tokens [1, T] and input_pos [T] (int32), an optional float32
 * mask [1, 1, T, C], and the same float32 kv_cache_k_i / kv_cache_v_i
 * tensors as inputs and outputs; decode also gives float32 logits. */
int plm_lrt_model_open(const char *path, uint64_t offset, uint64_t size, plm_lrt_model **out, char **error);
/* drops the opener's reference: the model goes when its last state does */
void plm_lrt_model_free(plm_lrt_model *m);
/* bytes a state allocates that libpocketlm can know: the caches of every
 * runner's inputs and outputs, and its mask, tokens and positions */
uint64_t plm_lrt_state_bytes(const plm_lrt_model *m);

/* a state holds a reference to m */
int plm_lrt_state_create(plm_lrt_model *m, int n_threads, plm_lrt_state **out, char **error);
/* dst's caches become src's (both of the same model) */
void plm_lrt_state_copy(plm_lrt_state *dst, const plm_lrt_state *src);
void plm_lrt_state_free(plm_lrt_state *st);
/* Runs ids at positions pos0.. through the prefill signatures (caches
 * only): the largest prefill_T that fits what is left, the last chunk
 * padded, decode for what no chunk may take without crossing the cache's
 * end. *done gets the tokens whose keys and values are in the cache; when
 * *cancel becomes non-zero between runs (or a run is cancelled) it stops
 * and returns PLM_LRT_STOPPED. */
int plm_lrt_prefill(plm_lrt_state *st, const int32_t *ids, int64_t n, int64_t pos0, const volatile int *cancel,
                    int64_t *done, char **error);
/* One token at pos through decode; its logits (vocab_size floats) into logits
 * (may be NULL). PLM_LRT_STOPPED when the run was cancelled (nothing changed). */
int plm_lrt_decode(plm_lrt_state *st, int32_t id, int64_t pos, float *logits, char **error);
/* Asks a run in flight to stop (TfLiteSignatureRunnerCancel); any thread. */
void plm_lrt_cancel(plm_lrt_state *st);

#define PLM_LRT_STOPPED 1   /* positive: not an error, the run was cancelled */

#endif /* PLM_LITERT_H */

/*
 * llm_inference_engine.h — MediaPipe's LLM Inference C API
 * (mediapipe/tasks/cc/genai/inference/c/llm_inference_engine.h), served by
 * libpocketlm on the CPU. Programs written against MediaPipe's header build
 * against this one unchanged: the type names, field names and function
 * signatures are MediaPipe's. Link with `pocketlm config --cflags --libs`.
 *
 * What pocketlm does with each call:
 *  - model_path is a GGUF file (pocketlm's or llama.cpp's) or a .task bundle
 *    whose model entry is a stored GGUF; the tokenizer, BOS/EOS, stop tokens
 *    and the turn templates come from the file (the bundle's METADATA first).
 *  - A session wraps each turn as pocketlm's Python API does: the prompt
 *    template's user prefix before the first chunk of a turn, the user suffix
 *    and model prefix before the response; a prompt that already holds the
 *    user prefix is sent as it is. Templates come from METADATA, else from
 *    the model's chat template when its family is recognised (ChatML, Gemma,
 *    Llama-3, Phi-3, Zephyr); an unrecognised chat template means no wrapping.
 *  - max_num_tokens counts input and output tokens (0: 512). Sampling:
 *    temperature 0 or topk <= 1 is greedy; topp <= 0 means no nucleus cut.
 *    max_top_k, when non-zero, refuses sessions asking for a larger topk.
 *    The other settings (cache_dir, GPU-only fields, vision, draft tokens)
 *    do not change the output on the CPU and are accepted as given.
 *  - lora_path is a GGUF LoRA adapter (what pocketlm's converter writes for
 *    lora_ckpt, or llama.cpp's convert_lora_to_gguf.py), applied unmerged on
 *    the CPU, so sessions of one engine may run different adapters or none.
 *    Its rank must be one of supported_lora_ranks when those are given. A
 *    PEFT adapter folder is refused by name (pocketlm's Python API reads
 *    those directly; convert it for the C API).
 *  - Every int-returning call gives 0 on success, else non-zero with a
 *    malloc'd message in *error_msg (when error_msg is not NULL) for the
 *    caller to free(). Nothing prints or aborts.
 *  - PredictAsync runs the generation on its own thread and returns at once;
 *    the callback gets the text in order, one piece per call, and a last call
 *    with done = true (response_count 1, an empty string). Each response
 *    context is the callback's to close with
 *    LlmInferenceEngine_CloseResponseContext. Session_Delete waits for a
 *    generation in flight. A second Predict while one runs is refused.
 *  - An engine stays alive until it is deleted and its last session is.
 */
#ifndef MEDIAPIPE_TASKS_GENAI_INFERENCE_C_LLM_INFERENCE_ENGINE_H_
#define MEDIAPIPE_TASKS_GENAI_INFERENCE_C_LLM_INFERENCE_ENGINE_H_

#ifdef __cplusplus
#include <cstddef>
#include <cstdint>
#else
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#endif

#ifndef ODML_EXPORT
#define ODML_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef void LlmInferenceEngine_Engine;
typedef void LlmInferenceEngine_Session;

typedef enum {
    kLlmActivationDataTypeDefault = 0,
    kLlmActivationDataTypeFloat32 = 1,
    kLlmActivationDataTypeFloat16 = 2,
    kLlmActivationDataTypeInt16 = 3,
    kLlmActivationDataTypeInt8 = 4,
} LlmActivationDataType;

typedef enum {
    kLlmPreferredBackendDefault = 0,
    kLlmPreferredBackendGpu = 1,
} LlmPreferredBackend;

/* What the engine is made from. */
typedef struct {
    const char* model_path;               /* a GGUF file or a .task bundle */
    const char* vision_encoder_path;      /* vision: not supported (must be NULL) */
    const char* vision_adapter_path;      /* vision: not supported (must be NULL) */
    const char* cache_dir;                /* unused: nothing is written */
    size_t max_num_tokens;                /* input + output tokens per session; 0: 512 */
    size_t num_decode_steps_per_sync;     /* GPU only */
    size_t sequence_batch_size;           /* prompt tokens per forward pass; 0: 512 */
    size_t number_of_supported_lora_ranks;
    size_t* supported_lora_ranks;
    size_t max_top_k;                     /* 0: no limit */
    LlmActivationDataType llm_activation_data_type;
    size_t num_draft_tokens;              /* speculative decoding: must be 0 */
    bool wait_for_weight_uploads;
    bool use_submodel;
    LlmPreferredBackend preferred_backend;
} LlmModelSettings;

/* How a session samples. */
typedef struct {
    size_t topk;
    float topp;
    float temperature;
    size_t random_seed;
    const char* lora_path;                /* a GGUF LoRA adapter, or NULL */
    bool include_token_cost_calculator;
    bool enable_vision_modality;          /* must be false */
} LlmSessionConfig;

/* One piece of a response (PredictSync: the whole of it). */
typedef struct {
    char** response_array;
    int response_count;
    bool done;
} LlmResponseContext;

ODML_EXPORT void LlmInferenceEngine_CloseResponseContext(LlmResponseContext* response_context);

ODML_EXPORT int LlmInferenceEngine_CreateEngine(const LlmModelSettings* model_settings,
                                                LlmInferenceEngine_Engine** engine_out, char** error_msg);
ODML_EXPORT void LlmInferenceEngine_Engine_Delete(LlmInferenceEngine_Engine* engine);

ODML_EXPORT int LlmInferenceEngine_CreateSession(LlmInferenceEngine_Engine* engine,
                                                 const LlmSessionConfig* session_config,
                                                 LlmInferenceEngine_Session** session_out, char** error_msg);
ODML_EXPORT void LlmInferenceEngine_Session_Delete(LlmInferenceEngine_Session* session);

ODML_EXPORT int LlmInferenceEngine_Session_AddQueryChunk(LlmInferenceEngine_Session* session, const char* input,
                                                         char** error_msg);
/* Images: not supported (refused). */
ODML_EXPORT int LlmInferenceEngine_Session_AddImage(LlmInferenceEngine_Session* session, const void* sk_bitmap,
                                                    char** error_msg);
ODML_EXPORT int LlmInferenceEngine_Session_PredictSync(LlmInferenceEngine_Session* session,
                                                       LlmResponseContext* response_context, char** error_msg);
ODML_EXPORT int LlmInferenceEngine_Session_PredictAsync(LlmInferenceEngine_Session* session, void* callback_context,
                                                        char** error_msg,
                                                        void (*callback)(void* callback_context,
                                                                         LlmResponseContext* response_context));
ODML_EXPORT int LlmInferenceEngine_Session_Clone(LlmInferenceEngine_Session* session,
                                                 LlmInferenceEngine_Session** cloned_session, char** error_msg);
/* Tokens of input as the model's tokenizer encodes it (no BOS, no template);
 * -1 with a message when it cannot be tokenized. */
ODML_EXPORT int LlmInferenceEngine_Session_SizeInTokens(LlmInferenceEngine_Session* session, const char* input,
                                                        char** error_msg);

/* ---- pocketlm's extras -------------------------------------------------- */

/* The engine's memory as pocketlm's device profiles count it: the weights
 * (mapped plus what loading converted), and what one session of
 * max_num_tokens allocates: its F16 KV cache and its other buffers (laid
 * out for the threads in force when asked). Bytes; 0 on success. */
ODML_EXPORT int plm_llm_engine_memory(LlmInferenceEngine_Engine* engine, int64_t* weights, int64_t* kv_cache,
                                      int64_t* session_buffers);
/* The engine's turn templates, as its sessions wrap turns (the bundle's
 * prompt templates, else the chat template's family): fields gets user_prefix,
 * user_suffix, model_prefix, model_suffix, system_prefix, system_suffix and
 * the preamble (the text before the first turn), each malloc'd for the caller
 * to free(). Returns the family's name (plm_chat_template_detect's; "bundle"
 * for a bundle's templates), or NULL with every field NULL when there are none. */
ODML_EXPORT const char* plm_llm_engine_turn_templates(LlmInferenceEngine_Engine* engine, char* fields[7]);
/* The session's own turn templates (MediaPipe's PromptTemplates) instead of
 * the model's: the text around each later turn (NULL fields are empty;
 * all empty sends text exactly as given). */
ODML_EXPORT int plm_llm_session_set_prompt_templates(LlmInferenceEngine_Session* session, const char* user_prefix,
                                                     const char* user_suffix, const char* model_prefix,
                                                     const char* model_suffix, const char* system_prefix,
                                                     const char* system_suffix, char** error_msg);
/* Stops the session's generation in flight before its next token (from any
 * thread); the response so far is delivered with done = true. */
ODML_EXPORT void plm_llm_session_cancel(LlmInferenceEngine_Session* session);
/* Tokens the session holds (prompt + responses, pending ones included). */
ODML_EXPORT int64_t plm_llm_session_n_tokens(LlmInferenceEngine_Session* session);
/* Of the last generation: prompt tokens prefilled, tokens generated, seconds
 * of prefill and decode, and why it stopped (enum plm_stop_reason). */
ODML_EXPORT int plm_llm_session_last_stats(LlmInferenceEngine_Session* session, int64_t* prefill_tokens,
                                           int64_t* decode_tokens, double* prefill_s, double* decode_s,
                                           int* stop_reason);

#ifdef __cplusplus
}
#endif

#endif

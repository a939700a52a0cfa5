/*
 * pocketlm_jni.c — the JNI layer under the Java classes of android_stub/
 * (com.google.mediapipe.tasks.genai.llminference on the host JVM): each
 * native method of pocketlm.NativeBridge is one call of MediaPipe's C API
 * (include/llm_inference_engine.h) or of its plm_ extras.
 *
 * - Strings cross as UTF-16 both ways (GetStringChars / NewString), never
 *   as JNI's "modified UTF-8", which would mangle characters outside the
 *   BMP (emoji) and NUL. A lone surrogate has no UTF-8 form: it throws
 *   IllegalArgumentException naming its index (the Java classes refuse it
 *   first; this holds for any caller of NativeBridge).
 * - An error of the C API becomes a com.google.mediapipe.framework.
 *   MediaPipeException carrying the C message; a Predict while another runs
 *   in the session becomes an IllegalStateException, as on Android.
 * - PredictAsync's pieces arrive on the C API's generation thread, which is
 *   attached to the JVM (as a daemon) for the generation and detached after
 *   the last piece: the Java listener runs on a JVM thread, pieces in
 *   order, done = true last.
 * - Every engine, session and global reference made here is counted;
 *   NativeBridge.liveObjects() reads the count (the bridge's leak test).
 */
#include <jni.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_inference_engine.h"
#include "pocketlm.h"

static JavaVM *g_vm;
static atomic_long g_live; /* engines + sessions + async callbacks not yet finished */

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
    (void)reserved;
    g_vm = vm;
    return JNI_VERSION_1_8;
}

/* ---- strings ---------------------------------------------------------------- */

static void throw_iae(JNIEnv *env, const char *what);

/* UTF-8 of a Java string, malloc'd and NUL-terminated; NULL for a null string, and NULL with an
 * IllegalArgumentException pending for one that holds a lone surrogate (what names the argument). */
static char *to_utf8(JNIEnv *env, jstring s, const char *what) {
    if (!s) return NULL;
    const jsize n = (*env)->GetStringLength(env, s);
    const jchar *u = (*env)->GetStringChars(env, s, NULL);
    if (!u) return NULL;
    char *out = (char *)malloc((size_t)n * 3 + 1), *o = out;
    if (out) {
        for (jsize i = 0; i < n; i++) {
            uint32_t c = u[i];
            if (c >= 0xD800 && c < 0xDC00 && i + 1 < n && u[i + 1] >= 0xDC00 && u[i + 1] < 0xE000)
                c = 0x10000 + ((c - 0xD800) << 10) + (u[++i] - 0xDC00);
            else if (c >= 0xD800 && c < 0xE000) { /* a lone surrogate: refused, never replaced */
                char m[160];
                snprintf(m, sizeof m, "%s: lone surrogate U+%04X at index %d is not valid text (a broken UTF-16 "
                         "string?)", what, (unsigned)c, (int)i);
                free(out);
                out = NULL;
                (*env)->ReleaseStringChars(env, s, u);
                throw_iae(env, m);
                return NULL;
            }
            if (c < 0x80) *o++ = (char)c;
            else if (c < 0x800) *o++ = (char)(0xC0 | c >> 6), *o++ = (char)(0x80 | (c & 63));
            else if (c < 0x10000)
                *o++ = (char)(0xE0 | c >> 12), *o++ = (char)(0x80 | ((c >> 6) & 63)), *o++ = (char)(0x80 | (c & 63));
            else
                *o++ = (char)(0xF0 | c >> 18), *o++ = (char)(0x80 | ((c >> 12) & 63)),
                *o++ = (char)(0x80 | ((c >> 6) & 63)), *o++ = (char)(0x80 | (c & 63));
        }
        *o = '\0';
    }
    (*env)->ReleaseStringChars(env, s, u);
    return out;
}

/* A Java string of UTF-8 text (the C API's text is valid UTF-8; anything else becomes U+FFFD). */
static jstring from_utf8(JNIEnv *env, const char *s) {
    const size_t n = s ? strlen(s) : 0;
    jchar *u = (jchar *)malloc((n + 1) * sizeof(jchar));
    if (!u) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char)s[i];
        uint32_t cp = 0xFFFD;
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && i + len <= n;
        for (size_t j = 1; ok && j < len; j++) ok = ((unsigned char)s[i + j] >> 6) == 2;
        if (ok) {
            cp = len == 1 ? c : len == 2 ? c & 31 : len == 3 ? c & 15 : c & 7;
            for (size_t j = 1; j < len; j++) cp = cp << 6 | ((unsigned char)s[i + j] & 63);
            i += len;
        } else {
            i++;
        }
        if (cp >= 0x10000) {
            u[k++] = (jchar)(0xD800 + ((cp - 0x10000) >> 10));
            u[k++] = (jchar)(0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            u[k++] = (jchar)cp;
        }
    }
    jstring out = (*env)->NewString(env, u, (jsize)k);
    free(u);
    return out;
}

/* ---- errors ----------------------------------------------------------------- */

/* Throws for a failed C call (its malloc'd message is freed here); returns 1 if it threw. */
static int check(JNIEnv *env, int status, char *msg) {
    if (status == 0) {
        free(msg);
        return 0;
    }
    const char *cls = msg && strstr(msg, "a response is being generated") ? "java/lang/IllegalStateException"
                                                                          : "com/google/mediapipe/framework/MediaPipeException";
    jclass c = (*env)->FindClass(env, cls);
    if (c) (*env)->ThrowNew(env, c, msg ? msg : "pocketlm: the native call failed");
    free(msg);
    return 1;
}

static void throw_iae(JNIEnv *env, const char *what) {
    jclass c = (*env)->FindClass(env, "java/lang/IllegalArgumentException");
    if (c) (*env)->ThrowNew(env, c, what);
}

/* ---- engine and sessions ---------------------------------------------------- */

JNIEXPORT jlong JNICALL Java_pocketlm_NativeBridge_createEngine(JNIEnv *env, jclass cls, jstring path, jint max_tokens,
                                                                 jint max_top_k, jintArray lora_ranks) {
    (void)cls;
    char *p = to_utf8(env, path, "modelPath");
    if (!p) {
        if (!(*env)->ExceptionCheck(env)) throw_iae(env, "modelPath is required");
        return 0;
    }
    LlmModelSettings ms;
    memset(&ms, 0, sizeof ms);
    ms.model_path = p;
    ms.max_num_tokens = (size_t)max_tokens;
    ms.max_top_k = (size_t)max_top_k;
    size_t ranks[64];
    const jsize nr = lora_ranks ? (*env)->GetArrayLength(env, lora_ranks) : 0;
    if (nr > 0) {
        jint tmp[64];
        const jsize k = nr < 64 ? nr : 64;
        (*env)->GetIntArrayRegion(env, lora_ranks, 0, k, tmp);
        for (jsize i = 0; i < k; i++) ranks[i] = (size_t)tmp[i];
        ms.number_of_supported_lora_ranks = (size_t)k;
        ms.supported_lora_ranks = ranks;
    }
    LlmInferenceEngine_Engine *e = NULL;
    char *msg = NULL;
    const int st = LlmInferenceEngine_CreateEngine(&ms, &e, &msg);
    free(p);
    if (check(env, st, msg)) return 0;
    atomic_fetch_add(&g_live, 1);
    return (jlong)(intptr_t)e;
}

JNIEXPORT void JNICALL Java_pocketlm_NativeBridge_deleteEngine(JNIEnv *env, jclass cls, jlong e) {
    (void)env, (void)cls;
    if (!e) return;
    LlmInferenceEngine_Engine_Delete((LlmInferenceEngine_Engine *)(intptr_t)e);
    atomic_fetch_sub(&g_live, 1);
}

JNIEXPORT jlongArray JNICALL Java_pocketlm_NativeBridge_engineMemory(JNIEnv *env, jclass cls, jlong e) {
    (void)cls;
    int64_t w = 0, kv = 0, buf = 0;
    plm_llm_engine_memory((LlmInferenceEngine_Engine *)(intptr_t)e, &w, &kv, &buf);
    jlongArray out = (*env)->NewLongArray(env, 3);
    const jlong v[3] = {w, kv, buf};
    if (out) (*env)->SetLongArrayRegion(env, out, 0, 3, v);
    return out;
}

JNIEXPORT jint JNICALL Java_pocketlm_NativeBridge_setMaxThreads(JNIEnv *env, jclass cls, jint n) {
    (void)env, (void)cls;
    return plm_set_max_threads(n);
}

JNIEXPORT jlong JNICALL Java_pocketlm_NativeBridge_createSession(JNIEnv *env, jclass cls, jlong e, jint top_k,
                                                                  jfloat top_p, jfloat temperature, jint seed,
                                                                  jstring lora_path) {
    (void)cls;
    LlmSessionConfig sc;
    memset(&sc, 0, sizeof sc);
    sc.topk = top_k < 0 ? 0 : (size_t)top_k;
    sc.topp = top_p;
    sc.temperature = temperature;
    sc.random_seed = (size_t)(uint32_t)seed;
    char *lora = to_utf8(env, lora_path, "loraPath");
    if (!lora && (*env)->ExceptionCheck(env)) return 0;
    sc.lora_path = lora;
    LlmInferenceEngine_Session *s = NULL;
    char *msg = NULL;
    const int st = LlmInferenceEngine_CreateSession((LlmInferenceEngine_Engine *)(intptr_t)e, &sc, &s, &msg);
    free(lora);
    if (check(env, st, msg)) return 0;
    atomic_fetch_add(&g_live, 1);
    return (jlong)(intptr_t)s;
}

JNIEXPORT void JNICALL Java_pocketlm_NativeBridge_deleteSession(JNIEnv *env, jclass cls, jlong s) {
    (void)env, (void)cls;
    if (!s) return;
    LlmInferenceEngine_Session_Delete((LlmInferenceEngine_Session *)(intptr_t)s); /* waits for a generation */
    atomic_fetch_sub(&g_live, 1);
}

JNIEXPORT void JNICALL Java_pocketlm_NativeBridge_addQueryChunk(JNIEnv *env, jclass cls, jlong s, jstring text) {
    (void)cls;
    char *t = to_utf8(env, text, "inputText");
    if (!t) {
        if (!(*env)->ExceptionCheck(env)) throw_iae(env, "inputText is required");
        return;
    }
    char *msg = NULL;
    const int st = LlmInferenceEngine_Session_AddQueryChunk((LlmInferenceEngine_Session *)(intptr_t)s, t, &msg);
    free(t);
    check(env, st, msg);
}

JNIEXPORT jstring JNICALL Java_pocketlm_NativeBridge_predictSync(JNIEnv *env, jclass cls, jlong s) {
    (void)cls;
    LlmResponseContext rc;
    memset(&rc, 0, sizeof rc);
    char *msg = NULL;
    if (check(env, LlmInferenceEngine_Session_PredictSync((LlmInferenceEngine_Session *)(intptr_t)s, &rc, &msg), msg))
        return NULL;
    jstring out = from_utf8(env, rc.response_count > 0 ? rc.response_array[0] : "");
    LlmInferenceEngine_CloseResponseContext(&rc);
    return out;
}

/* PredictAsync: the listener (a pocketlm.NativeBridge.Pieces) is called as
 * onPiece(String text, boolean done) on the generation thread. */
typedef struct {
    jobject listener; /* global reference */
    jmethodID on_piece;
} async_ctx;

static void on_response(void *ctx, LlmResponseContext *rc) {
    async_ctx *a = (async_ctx *)ctx;
    JNIEnv *env = NULL;
    int attached = 0;
    if ((*g_vm)->GetEnv(g_vm, (void **)&env, JNI_VERSION_1_8) != JNI_OK) {
        JavaVMAttachArgs args = {JNI_VERSION_1_8, (char *)"pocketlm-generation", NULL};
        if ((*g_vm)->AttachCurrentThreadAsDaemon(g_vm, (void **)&env, &args) != JNI_OK) {
            LlmInferenceEngine_CloseResponseContext(rc);
            return;
        }
        attached = 1;
    }
    const int done = rc->done;
    jstring text = from_utf8(env, rc->response_count > 0 ? rc->response_array[0] : "");
    LlmInferenceEngine_CloseResponseContext(rc);
    (*env)->CallVoidMethod(env, a->listener, a->on_piece, text, (jboolean)(done != 0));
    if ((*env)->ExceptionCheck(env)) (*env)->ExceptionClear(env); /* the Java side reports its own listener's errors */
    if (text) (*env)->DeleteLocalRef(env, text);
    if (done) {
        (*env)->DeleteGlobalRef(env, a->listener);
        free(a);
        atomic_fetch_sub(&g_live, 1);
    }
    /* the generation thread stays attached until its last piece; then it detaches before it ends */
    if (attached && done) (*g_vm)->DetachCurrentThread(g_vm);
}

JNIEXPORT void JNICALL Java_pocketlm_NativeBridge_predictAsync(JNIEnv *env, jclass cls, jlong s, jobject listener) {
    (void)cls;
    if (!listener) {
        throw_iae(env, "listener is required");
        return;
    }
    async_ctx *a = (async_ctx *)calloc(1, sizeof *a);
    jclass lc = (*env)->GetObjectClass(env, listener);
    a->on_piece = (*env)->GetMethodID(env, lc, "onPiece", "(Ljava/lang/String;Z)V");
    if (!a->on_piece) {
        free(a);
        return; /* NoSuchMethodError is pending */
    }
    a->listener = (*env)->NewGlobalRef(env, listener);
    atomic_fetch_add(&g_live, 1);
    char *msg = NULL;
    const int st = LlmInferenceEngine_Session_PredictAsync((LlmInferenceEngine_Session *)(intptr_t)s, a, &msg,
                                                           on_response);
    if (st) {
        (*env)->DeleteGlobalRef(env, a->listener);
        free(a);
        atomic_fetch_sub(&g_live, 1);
    }
    check(env, st, msg);
}

JNIEXPORT jlong JNICALL Java_pocketlm_NativeBridge_cloneSession(JNIEnv *env, jclass cls, jlong s) {
    (void)cls;
    LlmInferenceEngine_Session *c = NULL;
    char *msg = NULL;
    if (check(env, LlmInferenceEngine_Session_Clone((LlmInferenceEngine_Session *)(intptr_t)s, &c, &msg), msg))
        return 0;
    atomic_fetch_add(&g_live, 1);
    return (jlong)(intptr_t)c;
}

JNIEXPORT jint JNICALL Java_pocketlm_NativeBridge_sizeInTokens(JNIEnv *env, jclass cls, jlong s, jstring text) {
    (void)cls;
    char *t = to_utf8(env, text, "text");
    if (!t) {
        if (!(*env)->ExceptionCheck(env)) throw_iae(env, "text is required");
        return -1;
    }
    char *msg = NULL;
    const int n = LlmInferenceEngine_Session_SizeInTokens((LlmInferenceEngine_Session *)(intptr_t)s, t, &msg);
    free(t);
    if (n < 0) check(env, 1, msg);
    else free(msg);
    return n;
}

JNIEXPORT void JNICALL Java_pocketlm_NativeBridge_cancel(JNIEnv *env, jclass cls, jlong s) {
    (void)env, (void)cls;
    if (s) plm_llm_session_cancel((LlmInferenceEngine_Session *)(intptr_t)s);
}

JNIEXPORT jlong JNICALL Java_pocketlm_NativeBridge_liveObjects(JNIEnv *env, jclass cls) {
    (void)env, (void)cls;
    return (jlong)atomic_load(&g_live);
}

JNIEXPORT void JNICALL Java_pocketlm_NativeBridge_setPromptTemplates(JNIEnv *env, jclass cls, jlong s,
                                                                      jobjectArray fields) {
    (void)cls;
    static const char *const names[6] = {"promptTemplates.userPrefix", "promptTemplates.userSuffix",
                                          "promptTemplates.modelPrefix", "promptTemplates.modelSuffix",
                                          "promptTemplates.systemPrefix", "promptTemplates.systemSuffix"};
    char *f[6] = {0};
    for (int i = 0; i < 6 && !(*env)->ExceptionCheck(env); i++)
        f[i] = to_utf8(env, (jstring)(*env)->GetObjectArrayElement(env, fields, i), names[i]);
    if ((*env)->ExceptionCheck(env)) {
        for (int i = 0; i < 6; i++) free(f[i]);
        return;
    }
    char *msg = NULL;
    const int st = plm_llm_session_set_prompt_templates((LlmInferenceEngine_Session *)(intptr_t)s, f[0], f[1], f[2],
                                                        f[3], f[4], f[5], &msg);
    for (int i = 0; i < 6; i++) free(f[i]);
    check(env, st, msg);
}

/* The engine's turn templates for the Kotlin Conversation (com.google.ai.edge.litertlm), which renders whole
 * conversations with them: {userPrefix, userSuffix, modelPrefix, modelSuffix, systemPrefix, systemSuffix,
 * preamble, family}, or null when the model has none (text goes unwrapped). */
JNIEXPORT jobjectArray JNICALL Java_pocketlm_NativeBridge_turnTemplates(JNIEnv *env, jclass cls, jlong e) {
    (void)cls;
    char *f[7];
    const char *family = plm_llm_engine_turn_templates((LlmInferenceEngine_Engine *)(intptr_t)e, f);
    if (!family) return NULL;
    jclass sc = (*env)->FindClass(env, "java/lang/String");
    jobjectArray out = sc ? (*env)->NewObjectArray(env, 8, sc, NULL) : NULL;
    for (int i = 0; i < 8 && out && !(*env)->ExceptionCheck(env); i++) {
        jstring s = from_utf8(env, i < 7 ? f[i] : family);
        if (!s) break;
        (*env)->SetObjectArrayElement(env, out, i, s);
        (*env)->DeleteLocalRef(env, s);
    }
    for (int i = 0; i < 7; i++) free(f[i]);
    return (*env)->ExceptionCheck(env) ? NULL : out;
}

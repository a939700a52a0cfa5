/*
 * tflite.c — LiteRT's TFLite C API, reached through dlopen. libpocketlm
 * never links liblitert-lm.so (LiteRT-LM's runtime, 131 MB, exporting its
 * own Abseil and protobuf): it loads it RTLD_LOCAL | RTLD_NOW the first time
 * a LiteRT model is opened, from plm_litert_set_library's path or else
 * $POCKETLM_LITERT_LIB, and looks up the functions litert.h's table lists.
 * Once loaded it stays for the life of the process.
 */
#include "litert/litert.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static plm_tfl g_api;
static void *g_handle;
static char *g_path;

#define PLM_LITERT_HINT                                                                                          \
    "LiteRT models run on LiteRT-LM's own runtime library, liblitert-lm.so: install it with "                  \
    "`pip install pocketlm[litert]` (the litert-lm-api package), then set POCKETLM_LITERT_LIB to that "         \
    "liblitert-lm.so (pocketlm's Python package passes it itself)"

/* TFLite's MinimalLogger (tensorflow/lite/logger.h) prints "INFO: Created
 * TensorFlow Lite XNNPACK delegate" and the like to stderr; a library must
 * not print, and the errors that matter reach us through error reporters.
 * It has no C entry point, so its C++ one is looked up and, when present,
 * set to TFLITE_LOG_SILENT (4). */
#define PLM_TFL_SET_LOG_SEVERITY "_ZN6tflite16logging_internal13MinimalLogger21SetMinimumLogSeverityENS_11LogSeverityE"
#define PLM_TFL_LOG_SILENT 4

static void *sym(void *h, const char *name, int required, const char **missing) {
    void *p = dlsym(h, name);
    if (!p && required && !*missing) *missing = name;
    return p;
}

/* Fills g_api from path; on failure nothing stays loaded and *error says why. */
static int load(const char *path, char **error) {
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return plm_errorf(error, PLM_ERR_IO, "cannot load LiteRT's runtime library %s: %s. " PLM_LITERT_HINT, path,
                          why ? why : "dlopen failed");
    }
    plm_tfl a;
    memset(&a, 0, sizeof a);
    const char *missing = NULL;
#define REQ(field, name) *(void **)&a.field = sym(h, name, 1, &missing)
#define OPT(field, name) *(void **)&a.field = sym(h, name, 0, &missing)
    REQ(ModelCreateWithErrorReporter, "TfLiteModelCreateWithErrorReporter");
    REQ(ModelDelete, "TfLiteModelDelete");
    REQ(InterpreterOptionsCreate, "TfLiteInterpreterOptionsCreate");
    REQ(InterpreterOptionsDelete, "TfLiteInterpreterOptionsDelete");
    REQ(InterpreterOptionsSetNumThreads, "TfLiteInterpreterOptionsSetNumThreads");
    REQ(InterpreterOptionsAddDelegate, "TfLiteInterpreterOptionsAddDelegate");
    REQ(InterpreterOptionsSetErrorReporter, "TfLiteInterpreterOptionsSetErrorReporter");
    OPT(InterpreterOptionsEnableCancellation, "TfLiteInterpreterOptionsEnableCancellation");
    REQ(InterpreterCreate, "TfLiteInterpreterCreate");
    REQ(InterpreterDelete, "TfLiteInterpreterDelete");
    REQ(InterpreterGetSignatureCount, "TfLiteInterpreterGetSignatureCount");
    REQ(InterpreterGetSignatureKey, "TfLiteInterpreterGetSignatureKey");
    REQ(InterpreterGetSignatureRunner, "TfLiteInterpreterGetSignatureRunner");
    REQ(SignatureRunnerGetInputCount, "TfLiteSignatureRunnerGetInputCount");
    REQ(SignatureRunnerGetInputName, "TfLiteSignatureRunnerGetInputName");
    REQ(SignatureRunnerGetOutputCount, "TfLiteSignatureRunnerGetOutputCount");
    REQ(SignatureRunnerGetOutputName, "TfLiteSignatureRunnerGetOutputName");
    REQ(SignatureRunnerGetInputTensor, "TfLiteSignatureRunnerGetInputTensor");
    REQ(SignatureRunnerGetOutputTensor, "TfLiteSignatureRunnerGetOutputTensor");
    REQ(SignatureRunnerAllocateTensors, "TfLiteSignatureRunnerAllocateTensors");
    REQ(SignatureRunnerInvoke, "TfLiteSignatureRunnerInvoke");
    OPT(SignatureRunnerCancel, "TfLiteSignatureRunnerCancel");
    REQ(SignatureRunnerDelete, "TfLiteSignatureRunnerDelete");
    REQ(TensorType, "TfLiteTensorType");
    REQ(TensorNumDims, "TfLiteTensorNumDims");
    REQ(TensorDim, "TfLiteTensorDim");
    REQ(TensorByteSize, "TfLiteTensorByteSize");
    REQ(TensorData, "TfLiteTensorData");
    REQ(XNNPackDelegateOptionsDefault, "TfLiteXNNPackDelegateOptionsDefault");
    REQ(XNNPackDelegateCreate, "TfLiteXNNPackDelegateCreate");
    REQ(XNNPackDelegateDelete, "TfLiteXNNPackDelegateDelete");
    OPT(Version, "TfLiteVersion");
#undef REQ
#undef OPT
    if (missing) {
        dlclose(h);
        return plm_errorf(error, PLM_ERR_NOT_FOUND,
                          "%s does not export %s: it is not a LiteRT runtime with the TFLite C API. " PLM_LITERT_HINT,
                          path, missing);
    }
    char *copy = strdup(path);
    if (!copy) {
        dlclose(h);
        return plm_errorf(error, PLM_ERR_NOMEM, "out of memory");
    }
    int (*set_severity)(int) = NULL;
    *(void **)&set_severity = dlsym(h, PLM_TFL_SET_LOG_SEVERITY);
    if (set_severity) set_severity(PLM_TFL_LOG_SILENT);
    g_api = a;
    g_handle = h;
    g_path = copy;
    return PLM_OK;
}

int plm_litert_set_library(const char *path, char **error) {
    if (error) *error = NULL;
    if (!path || !*path) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_litert_set_library: no path");
    pthread_mutex_lock(&g_lock);
    int st = PLM_OK;
    if (g_handle) {
        if (strcmp(g_path, path) != 0)
            st = plm_errorf(error, PLM_ERR_INVALID_ARG,
                            "LiteRT's runtime library is already loaded from %s; %s cannot replace it in this process",
                            g_path, path);
    } else {
        st = load(path, error);
    }
    pthread_mutex_unlock(&g_lock);
    return st;
}

const plm_tfl *plm_tfl_get(char **error) {
    pthread_mutex_lock(&g_lock);
    int st = PLM_OK;
    if (!g_handle) {
        const char *env = getenv("POCKETLM_LITERT_LIB");
        if (env && *env) st = load(env, error);
        else st = plm_errorf(error, PLM_ERR_NOT_FOUND, "LiteRT's runtime library is not loaded. " PLM_LITERT_HINT);
    }
    pthread_mutex_unlock(&g_lock);
    return st == PLM_OK ? &g_api : NULL;
}

const char *plm_tfl_path(void) {
    pthread_mutex_lock(&g_lock);
    const char *p = g_path;
    pthread_mutex_unlock(&g_lock);
    return p;
}

const char *plm_litert_library(void) { return plm_tfl_path(); }

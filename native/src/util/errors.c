/*
 * errors.c — the error messages every C entry point fills in: malloc'd, so
 * the caller frees them (MediaPipe's C API convention).
 */
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int plm_errorf(char **out, int status, const char *fmt, ...) {
    if (out == NULL) return status;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    const int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = n >= 0 ? (char *)malloc((size_t)n + 1) : NULL;
    if (msg) vsnprintf(msg, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    *out = msg;
    return status;
}

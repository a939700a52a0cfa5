/* plm_test.h — the C tests' one assertion macro: report and count, carry on. */
#ifndef PLM_TEST_H
#define PLM_TEST_H

#include <stdio.h>

static int g_failures = 0;
#define EXPECT(cond, ...)                                        \
    do {                                                         \
        if (!(cond)) {                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fprintf(stderr, "\n");                               \
            g_failures++;                                        \
        }                                                        \
    } while (0)

#endif

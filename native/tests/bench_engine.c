/*
 * bench_engine.c — the engine's speed from C alone, counted as llama-bench
 * counts pp128 and tg64: a 128-token prompt into an empty cache in one
 * batch, and 64 one-token decode steps from an empty cache; best of 3, for
 * each thread count given. For machines without Python (thread scaling).
 * Usage: bench_engine MODEL.gguf [THREADS ...]
 */
#include "pocketlm.h"

#include <stdio.h>
#include <stdlib.h>

static double run(plm_model *m, int threads, int64_t prompt, int64_t steps, int decode) {
    plm_session_params p;
    plm_session_params_default(&p);
    p.max_tokens = decode ? 1 + steps + 1 : prompt;
    p.n_threads = threads;
    p.top_k = 1;
    plm_session *s = NULL;
    char *err = NULL;
    if (plm_session_create(m, &p, &s, &err) != PLM_OK) {
        fprintf(stderr, "%s\n", err ? err : "session");
        exit(1);
    }
    const int64_t vocab = plm_model_get_config(m)->vocab_size;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)prompt);
    for (int64_t i = 0; i < prompt; i++) ids[i] = (int32_t)((i * 7919 + 13) % vocab);
    plm_session_add_tokens(s, ids, decode ? 1 : prompt, NULL);
    plm_generate_stats st;
    if (plm_session_generate(s, NULL, 0, NULL, NULL, &st, &err) != PLM_OK) {
        fprintf(stderr, "%s\n", err ? err : "generate");
        exit(1);
    }
    free(ids);
    plm_session_free(s);
    return decode ? (double)(st.decode_tokens - 1) / st.decode_s : (double)st.prefill_tokens / st.prefill_s;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [THREADS ...]\n", argv[0]);
        return 2;
    }
    plm_model *m = NULL;
    char *err = NULL;
    if (plm_model_open(argv[1], 0, 0, &m, &err) != PLM_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const int f = plm_cpu_features();
    printf("%s: features%s%s\n", argv[1], f & PLM_CPU_AVX2 ? " avx2" : "", f & PLM_CPU_AVX512VNNI ? " avx512vnni" : "");
    for (int a = argc > 2 ? 2 : 1; a < argc || a == 1; a++) {
        const int t = argc > 2 ? atoi(argv[a]) : 1;
        double pp = 0, tg = 0;
        for (int r = 0; r < 3; r++) {
            const double x = run(m, t, 128, 64, 0), y = run(m, t, 128, 64, 1);
            pp = x > pp ? x : pp;
            tg = y > tg ? y : tg;
        }
        printf("threads %2d: pp128 %8.1f tok/s   tg64 %7.1f tok/s\n", t, pp, tg);
        if (argc <= 2) break;
    }
    plm_model_free(m);
    return 0;
}

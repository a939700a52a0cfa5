/*
 * test_litertlm.c — the .litertlm reader without Python, over the files
 * litert-torch and litert-lm-builder wrote (test_litertlm DIR, DIR holding
 * tests/fixtures/litert): their sections, model_type, LlmMetadata and
 * tokenizer as fixtures.json records them; then cut and mutated copies of
 * each (the header, the section table, the metadata) are read or refused by
 * name, never a crash: what the ASan/UBSan build runs. Python holds the
 * reader against LiteRT-LM's own schema code (tests/genai/test_litertlm_files.py).
 */
#include "pocketlm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plm_test.h"

static int str_is(plm_str s, const char *text) { return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0; }

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = (unsigned char *)malloc((size_t)size);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *n = (size_t)size;
    return data;
}

/* the recorded facts of one fixture (fixtures.json) */
static void check_fixture(const char *dir, const char *name, int tokenizer_type, const char *start_text,
                          int32_t first_stop_id, uint64_t tflite_size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    plm_litertlm *f = NULL;
    char *err = NULL;
    if (plm_litertlm_open(path, &f, &err) != PLM_OK) {
        EXPECT(0, "%s: %s", path, err ? err : "?");
        plm_free(err);
        return;
    }
    uint32_t v[3];
    plm_litertlm_version(f, v);
    EXPECT(v[0] == 1 && v[1] == 7 && v[2] == 0, "%s: version %u.%u.%u", name, v[0], v[1], v[2]);
    EXPECT(plm_litertlm_n_sections(f) == 4, "%s: %lld sections", name, (long long)plm_litertlm_n_sections(f));
    const int types[4] = {PLM_LITERTLM_LLM_METADATA, PLM_LITERTLM_EXECUTOR_METADATA, tokenizer_type,
                          PLM_LITERTLM_TFLITE_MODEL};
    for (int64_t i = 0; i < plm_litertlm_n_sections(f) && i < 4; i++) {
        int type;
        uint64_t off, size;
        const char *model_type;
        plm_litertlm_section(f, i, &type, &off, &size, &model_type);
        EXPECT(type == types[i], "%s: section %lld is type %d", name, (long long)i, type);
        EXPECT(off == (uint64_t)(i + 1) * 16384, "%s: section %lld at %llu", name, (long long)i, (unsigned long long)off);
        EXPECT((type == PLM_LITERTLM_TFLITE_MODEL) == (model_type != NULL), "%s: section %lld's model_type", name,
               (long long)i);
    }
    const int64_t m = plm_litertlm_find(f, PLM_LITERTLM_TFLITE_MODEL, "tf_lite_prefill_decode");
    EXPECT(m == 3, "%s: the prefill/decode graph is section %lld", name, (long long)m);
    EXPECT(plm_litertlm_find(f, PLM_LITERTLM_TFLITE_MODEL, "tf_lite_embedder") == -1, "%s: an embedder?", name);
    const void *data;
    uint64_t size;
    EXPECT(plm_litertlm_section_data(f, m, &data, &size) == PLM_OK && size == tflite_size &&
           memcmp((const char *)data + 4, "TFL3", 4) == 0, "%s: the TFLite section's bytes", name);

    plm_litertlm_llm_metadata *md = (plm_litertlm_llm_metadata *)calloc(1, sizeof *md);
    EXPECT(plm_litertlm_metadata(f, md, &err) == PLM_OK, "%s: metadata: %s", name, err ? err : "?");
    plm_free(err);
    err = NULL;
    EXPECT(md->start_token.kind == PLM_LITERTLM_TOKEN_TEXT && str_is(md->start_token.text, start_text),
           "%s: start token", name);
    EXPECT(md->n_stop_tokens == 15, "%s: %lld stop tokens", name, (long long)md->n_stop_tokens);
    EXPECT(md->stop_tokens[0].kind == PLM_LITERTLM_TOKEN_IDS && md->stop_tokens[0].n_ids == 1 &&
           md->token_ids[md->stop_tokens[0].first_id] == first_stop_id, "%s: the first stop token", name);
    EXPECT(md->max_num_tokens == 256, "%s: max_num_tokens %lld", name, (long long)md->max_num_tokens);
    EXPECT(md->llm_model_type == 1, "%s: llm_model_type %d (generic_model is 1)", name, md->llm_model_type);
    EXPECT(md->has_jinja_template && md->jinja_template.len > 100, "%s: the Jinja template", name);
    EXPECT(!md->has_user_affixes && !md->has_model_affixes && !md->has_system_affixes, "%s: prompt templates", name);
    free(md);

    int kind;
    const void *tok;
    uint64_t tok_size;
    const int s = plm_litertlm_tokenizer(f, &kind, &tok, &tok_size, &err);
    if (tokenizer_type == PLM_LITERTLM_SP_TOKENIZER) {
        EXPECT(s == PLM_OK && kind == PLM_LITERTLM_TOKENIZER_SENTENCEPIECE && tok_size == 7554, "%s: tokenizer", name);
    } else if (plm_litertlm_has_zlib()) {
        EXPECT(s == PLM_OK && kind == PLM_LITERTLM_TOKENIZER_JSON && tok_size == 15094 && ((const char *)tok)[0] == '{' &&
               ((const char *)tok)[tok_size] == '\0', "%s: tokenizer.json: %s", name, err ? err : "?");
    } else {
        EXPECT(s == PLM_ERR_FORMAT && err && strstr(err, "HF_Tokenizer_Zlib") && strstr(err, path),
               "%s: without zlib the section is refused by name: %s", name, err ? err : "?");
    }
    plm_free(err);
    plm_litertlm_close(f);
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}

/* opens the n bytes as a file: a refusal must name it, every section must lie inside it */
static void open_bytes(const char *tmp, const unsigned char *data, size_t n) {
    FILE *out = fopen(tmp, "wb");
    if (!out) return;
    fwrite(data, 1, n, out);
    fclose(out);
    plm_litertlm *f = NULL;
    char *err = NULL;
    if (plm_litertlm_open(tmp, &f, &err) != PLM_OK) {
        EXPECT(err && strstr(err, tmp), "a refusal without the file's name: %s", err ? err : "(none)");
        plm_free(err);
        return;
    }
    for (int64_t i = 0; i < plm_litertlm_n_sections(f); i++) {
        uint64_t off, size;
        plm_litertlm_section(f, i, NULL, &off, &size, NULL);
        EXPECT(off <= n && size <= n - off, "section %lld outside the file", (long long)i);
    }
    plm_litertlm_llm_metadata *md = (plm_litertlm_llm_metadata *)malloc(sizeof *md);
    if (plm_litertlm_metadata(f, md, &err) == PLM_OK) {
        for (int64_t i = 0; i < md->n_stop_tokens; i++)
            EXPECT(md->stop_tokens[i].first_id + md->stop_tokens[i].n_ids <= md->n_token_ids, "stop token ids");
    } else if (err) {
        EXPECT(strstr(err, tmp) != NULL, "a metadata refusal without the file's name: %s", err);
    }
    plm_free(err);
    err = NULL;
    free(md);
    int kind;
    const void *tok;
    uint64_t tok_size;
    if (plm_litertlm_tokenizer(f, &kind, &tok, &tok_size, &err) != PLM_OK && err)
        EXPECT(strstr(err, tmp) != NULL, "a tokenizer refusal without the file's name: %s", err);
    plm_free(err);
    plm_litertlm_close(f);
}

static void mutate(const char *dir, const char *name, int rounds) {
    char path[1024], tmp[64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "/tmp/plm_test_litertlm_%d.litertlm", (int)getpid());
    size_t n;
    unsigned char *data = read_file(path, &n);
    if (!data) {
        EXPECT(0, "cannot read %s", path);
        return;
    }
    unsigned char *copy = (unsigned char *)malloc(n);
    /* cut short: inside the header, the metadata, the tokenizer, the graph */
    const size_t cuts[] = {0, 7, 31, 33, 200, 591, 16384, 16500, 49160, 50000, 65536, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) open_bytes(tmp, data, cuts[k] < n ? cuts[k] : n);
    /* a few bytes set at random in the header, the LlmMetadata and the tokenizer section */
    for (int r = 0; r < rounds; r++) {
        memcpy(copy, data, n);
        const int hits = 1 + (int)(next() % 6);
        for (int h = 0; h < hits; h++) {
            const uint64_t region = next() % 3;
            const size_t lo = region == 0 ? 0 : region == 1 ? 16384 : 49152;
            const size_t span = region == 0 ? 600 : region == 1 ? 650 : 3200;
            copy[lo + next() % span] = (unsigned char)next();
        }
        open_bytes(tmp, copy, n);
    }
    unlink(tmp);
    free(copy);
    free(data);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures/litert";
    check_fixture(dir, "llama-tiny-int8.litertlm", PLM_LITERTLM_SP_TOKENIZER, "<s>", 2, 417456);
    check_fixture(dir, "llama-tiny-f32.litertlm", PLM_LITERTLM_SP_TOKENIZER, "<s>", 2, 782608);
    check_fixture(dir, "llama-bpe-int8.litertlm", PLM_LITERTLM_HF_TOKENIZER_ZLIB, "<|im_start|>", 0, 399856);
    mutate(dir, "llama-tiny-int8.litertlm", 1000);
    mutate(dir, "llama-bpe-int8.litertlm", 1000);
    /* the API's arguments */
    plm_litertlm *f = (plm_litertlm *)1;
    char *err = NULL;
    EXPECT(plm_litertlm_open(NULL, &f, &err) == PLM_ERR_INVALID_ARG && f == (plm_litertlm *)1, "NULL path");
    plm_free(err);
    EXPECT(plm_litertlm_open("/nonexistent.litertlm", &f, &err) == PLM_ERR_IO && f == NULL && err &&
           strstr(err, "/nonexistent.litertlm"), "a missing file");
    plm_free(err);
    EXPECT(plm_litertlm_n_sections(NULL) == 0 && plm_litertlm_find(NULL, 3, NULL) == -1, "NULL handle");
    EXPECT(plm_litertlm_section_type_name(6) && strcmp(plm_litertlm_section_type_name(6), "HF_Tokenizer_Zlib") == 0 &&
           plm_litertlm_section_type_name(12) == NULL && plm_litertlm_section_type_name(-1) == NULL, "type names");
    if (g_failures) fprintf(stderr, "%d failures\n", g_failures);
    else printf("test_litertlm: ok (zlib %s)\n", plm_litertlm_has_zlib() ? "on" : "off");
    return g_failures ? 1 : 0;
}

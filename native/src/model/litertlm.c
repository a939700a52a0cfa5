/*
 * litertlm.c — a .litertlm file (LiteRT-LM's model container) read in place.
 * C has no flatbuffer schema code, so the header's LiteRTLMMetaData
 * flatbuffer is read here by hand, and only the parts the engine needs:
 * each section's data type, [begin, end) and model_type item. Every table,
 * vtable, vector and string is checked against the header's bytes before it
 * is read (the checks of FlatBuffers' C++ Verifier), every section against
 * the file. The LlmMetadata section (litert.lm.proto.LlmMetadata) is read
 * with the bounds-checked protobuf wire reader (util/wire.c), the
 * HF_Tokenizer_Zlib section inflated with zlib when the build found it.
 *
 * python/pocketlm/model/litertlm_file.py reads the same files with
 * LiteRT-LM's own schema code (litert-lm-builder) and is the reference:
 * field numbers, vtable slots and the refusals follow it, and
 * tests/genai/test_litertlm_files.py holds the two together.
 *
 * Layout: bytes 0-7 "LITERTLM", uint32 major, minor, patch, bytes 24-31 the
 * uint64 end of the header; the flatbuffer runs from byte 32 to there:
 *   LiteRTLMMetaData { system_metadata: SystemMetadata (slot 4); section_metadata: SectionMetadata (6) }
 *   SectionMetadata  { objects: [SectionObject] (4) }
 *   SectionObject    { items: [KeyValuePair] (4); begin_offset: u64 (6); end_offset: u64 (8); data_type: u8 (10) }
 *   KeyValuePair     { key: string (4); value_type: u8 (6); value: VData union (8) }
 *   StringValue      { value: string (4) }            (VData member 9)
 */
#include "model/model.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef PLM_HAVE_ZLIB
#include <zlib.h>
#endif

#define HEADER_BEGIN 32u
#define SUPPORTED_MAJOR 1u
#define VDATA_STRING 9u
#define MAX_TOKENIZER_JSON (256ull << 20) /* as litertlm_file.MAX_TOKENIZER_JSON */

typedef struct {
    int data_type;
    uint64_t begin, end;
    char *model_type; /* NULL: none */
} plm_litertlm_section_t;

struct plm_litertlm {
    char *path;
    const uint8_t *map;
    uint64_t size, header_end;
    uint32_t version[3];
    plm_litertlm_section_t *sections;
    int64_t n;
    pthread_mutex_t lock;     /* guards the one-time inflation below */
    int inflated;             /* 1 once tokenizer_json (or the error) is set */
    uint8_t *tokenizer_json;  /* HF_Tokenizer_Zlib, inflated */
    uint64_t tokenizer_json_size;
    char *tokenizer_error;    /* why it could not be inflated */
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static const char *const TYPE_NAMES[] = {"NONE", "GenericBinaryData", "Deprecated", "TFLiteModel", "SP_Tokenizer",
                                         "LlmMetadataProto", "HF_Tokenizer_Zlib", "TFLiteWeights",
                                         "EmbeddingMetadataProto", "ExecutorMetadataProto", "TtsMetadataProto",
                                         "AsrMetadataProto"};

const char *plm_litertlm_section_type_name(int data_type) {
    return data_type >= 0 && data_type < (int)(sizeof TYPE_NAMES / sizeof TYPE_NAMES[0]) ? TYPE_NAMES[data_type] : NULL;
}

/* "section 3 (TFLiteModel)", as the Python reader names a section */
static void section_what(char *buf, size_t cap, int64_t i, int data_type) {
    const char *name = plm_litertlm_section_type_name(data_type);
    if (name) snprintf(buf, cap, "section %lld (%s)", (long long)i, name);
    else snprintf(buf, cap, "section %lld (type %d)", (long long)i, data_type);
}

/* ---- the header's flatbuffer, checked ----------------------------------------- */

typedef struct {
    const uint8_t *b;
    uint64_t n;
} fb_buf;

typedef struct {
    uint64_t pos, vt;
    uint16_t vt_size;
} fb_table;

/* a table at pos, its vtable and both sizes inside the buffer */
static int fb_table_at(const fb_buf *f, uint64_t pos, fb_table *t) {
    if (pos > f->n || f->n - pos < 4) return -1;
    const int64_t vt = (int64_t)pos - (int64_t)(int32_t)rd32(f->b + pos);
    if (vt < 0 || (uint64_t)vt > f->n - 4) return -1;
    const uint16_t vt_size = rd16(f->b + vt), t_size = rd16(f->b + vt + 2);
    if (vt_size < 4 || vt_size % 2 || (uint64_t)vt + vt_size > f->n || t_size < 4 || pos + t_size > f->n) return -1;
    t->pos = pos, t->vt = (uint64_t)vt, t->vt_size = vt_size;
    return 0;
}

/* where field `slot` (a vtable offset: 4 + 2 * field id) lies, or 0 when absent */
static uint64_t fb_field(const fb_buf *f, const fb_table *t, unsigned slot) {
    if (slot + 2u > t->vt_size) return 0;
    const uint16_t o = rd16(f->b + t->vt + slot);
    return o ? t->pos + o : 0;
}

/* an unsigned scalar field of `bytes` bytes; *v = dflt when absent */
static int fb_scalar(const fb_buf *f, const fb_table *t, unsigned slot, unsigned bytes, uint64_t dflt, uint64_t *v) {
    const uint64_t at = fb_field(f, t, slot);
    if (!at) {
        *v = dflt;
        return 0;
    }
    if (at > f->n || f->n - at < bytes) return -1;
    *v = bytes == 1 ? f->b[at] : bytes == 2 ? rd16(f->b + at) : bytes == 4 ? rd32(f->b + at) : rd64(f->b + at);
    return 0;
}

/* where an offset field points (*target 0: absent); the target's first 4 bytes inside the buffer */
static int fb_ref(const fb_buf *f, const fb_table *t, unsigned slot, uint64_t *target) {
    *target = 0;
    const uint64_t at = fb_field(f, t, slot);
    if (!at) return 0;
    if (at > f->n || f->n - at < 4) return -1;
    const uint64_t to = at + rd32(f->b + at);
    if (to > f->n || f->n - to < 4) return -1;
    *target = to;
    return 0;
}

/* a sub-table field (*present 0: absent) */
static int fb_subtable(const fb_buf *f, const fb_table *t, unsigned slot, fb_table *sub, int *present) {
    uint64_t to;
    *present = 0;
    if (fb_ref(f, t, slot, &to)) return -1;
    if (!to) return 0;
    *present = 1;
    return fb_table_at(f, to, sub);
}

/* a vector of offsets (elements of 4 bytes): where its elements start and how many (0 when absent) */
static int fb_vector(const fb_buf *f, const fb_table *t, unsigned slot, uint64_t *start, uint64_t *count) {
    uint64_t to;
    *count = 0, *start = 0;
    if (fb_ref(f, t, slot, &to)) return -1;
    if (!to) return 0;
    const uint64_t n = rd32(f->b + to);
    if (n * 4 > f->n - to - 4) return -1;
    *start = to + 4, *count = n;
    return 0;
}

/* element j of a vector of tables */
static int fb_vector_table(const fb_buf *f, uint64_t start, uint64_t j, fb_table *t) {
    const uint64_t at = start + 4 * j;
    return fb_table_at(f, at + rd32(f->b + at), t);
}

/* a string field (*s NULL: absent), its bytes inside the buffer and valid UTF-8 */
static int fb_string(const fb_buf *f, const fb_table *t, unsigned slot, const uint8_t **s, uint64_t *len) {
    uint64_t to;
    *s = NULL, *len = 0;
    if (fb_ref(f, t, slot, &to)) return -1;
    if (!to) return 0;
    const uint64_t n = rd32(f->b + to);
    if (n > f->n - to - 4) return -1;
    if (plm_utf8_invalid_at(f->b + to + 4, n) >= 0) return -1;
    *s = f->b + to + 4, *len = n;
    return 0;
}

/* the model_type of a section: the first item keyed model_type whose value is a StringValue (litert-lm-builder's
 * litertlm_peek.get_model_type); every item's key is checked on the way, as the Python reader reads them all */
static int section_model_type(const fb_buf *f, const fb_table *o, char **model_type) {
    uint64_t start, count;
    *model_type = NULL;
    if (fb_vector(f, o, 4, &start, &count)) return -1;
    for (uint64_t j = 0; j < count; j++) {
        fb_table kv;
        const uint8_t *key;
        uint64_t key_len, vtype;
        if (fb_vector_table(f, start, j, &kv) || fb_string(f, &kv, 4, &key, &key_len) ||
            fb_scalar(f, &kv, 6, 1, 0, &vtype))
            return -1;
        if (*model_type || !key || key_len != 10 || memcmp(key, "model_type", 10) != 0 || vtype != VDATA_STRING)
            continue;
        fb_table value;
        int present;
        if (fb_subtable(f, &kv, 8, &value, &present)) return -1;
        if (!present) continue;
        const uint8_t *s;
        uint64_t len;
        if (fb_string(f, &value, 4, &s, &len)) return -1; /* StringValue { value: string (slot 4) } */
        if (!s || !len) continue; /* an empty model_type is none */
        if (!(*model_type = (char *)malloc(len + 1))) return -2;
        memcpy(*model_type, s, len);
        (*model_type)[len] = '\0';
        if (strlen(*model_type) != len) { /* a NUL inside: not a name */
            free(*model_type);
            *model_type = NULL;
            return -1;
        }
    }
    return 0;
}

static int bad_header(const plm_litertlm *l, char **error, const char *what) {
    return plm_errorf(error, PLM_ERR_FORMAT, "%s: header: %s is corrupted (an offset or length outside the header's "
                      "%llu bytes)", l->path, what, (unsigned long long)(l->header_end - HEADER_BEGIN));
}

static int parse(plm_litertlm *l, char **error) {
    if (l->size < HEADER_BEGIN)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: %llu bytes are too few for a .litertlm file (its header alone "
                          "is %u)", l->path, (unsigned long long)l->size, HEADER_BEGIN);
    if (memcmp(l->map, "LITERTLM", 8) != 0)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: not a .litertlm file (it does not start with LITERTLM)", l->path);
    for (int i = 0; i < 3; i++) l->version[i] = rd32(l->map + 8 + 4 * i);
    if (l->version[0] != SUPPORTED_MAJOR)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: LiteRT-LM format version %u.%u.%u; this reader knows major "
                          "version %u", l->path, l->version[0], l->version[1], l->version[2], SUPPORTED_MAJOR);
    l->header_end = rd64(l->map + 24);
    if (l->header_end > l->size)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: the header runs past the end of the file (ends at %llu, the "
                          "file has %llu bytes)", l->path, (unsigned long long)l->header_end,
                          (unsigned long long)l->size);
    if (l->header_end <= HEADER_BEGIN + 4)
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: the header ends at %llu, before any metadata (it starts at %u)",
                          l->path, (unsigned long long)l->header_end, HEADER_BEGIN);
    const fb_buf f = {l->map + HEADER_BEGIN, l->header_end - HEADER_BEGIN};
    fb_table root, secmeta;
    int present;
    if (fb_table_at(&f, rd32(f.b), &root)) return bad_header(l, error, "LiteRTLMMetaData");
    if (fb_subtable(&f, &root, 6, &secmeta, &present)) return bad_header(l, error, "section_metadata");
    uint64_t start = 0, count = 0;
    if (present && fb_vector(&f, &secmeta, 4, &start, &count)) return bad_header(l, error, "section_metadata.objects");
    l->sections = (plm_litertlm_section_t *)calloc((size_t)(count ? count : 1), sizeof(plm_litertlm_section_t));
    if (!l->sections) return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", l->path);
    for (uint64_t i = 0; i < count; i++) {
        char what[64];
        snprintf(what, sizeof what, "section %llu", (unsigned long long)i);
        fb_table o;
        uint64_t data_type, begin, end;
        if (fb_vector_table(&f, start, i, &o) || fb_scalar(&f, &o, 10, 1, 0, &data_type))
            return bad_header(l, error, what);
        plm_litertlm_section_t *s = &l->sections[i];
        l->n = (int64_t)i + 1;
        s->data_type = (int)data_type;
        section_what(what, sizeof what, (int64_t)i, s->data_type);
        const int mt = section_model_type(&f, &o, &s->model_type);
        if (mt == -2) return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", l->path);
        if (mt || fb_scalar(&f, &o, 6, 8, 0, &begin) || fb_scalar(&f, &o, 8, 8, 0, &end))
            return bad_header(l, error, what);
        if (end > l->size)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: %s runs past the end of the file (ends at %llu, the file has "
                              "%llu bytes)", l->path, what, (unsigned long long)end, (unsigned long long)l->size);
        if (end < begin)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: %s ends before it begins (begins at %llu, ends at %llu)",
                              l->path, what, (unsigned long long)begin, (unsigned long long)end);
        if (begin < l->header_end)
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: %s begins inside the header (at %llu, the header ends at "
                              "%llu)", l->path, what, (unsigned long long)begin, (unsigned long long)l->header_end);
        s->begin = begin, s->end = end;
    }
    return PLM_OK;
}

int plm_litertlm_open(const char *path, plm_litertlm **out, char **error) {
    if (error) *error = NULL;
    if (!path || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_litertlm_open: NULL argument");
    *out = NULL;
    plm_litertlm *l = (plm_litertlm *)calloc(1, sizeof(plm_litertlm));
    if (!l || !(l->path = strdup(path))) {
        free(l);
        return plm_errorf(error, PLM_ERR_NOMEM, "%s: out of memory", path);
    }
    pthread_mutex_init(&l->lock, NULL);
    const int mst = plm_map_file(path, HEADER_BEGIN, &l->map, &l->size, error);
    if (mst) {
        plm_litertlm_close(l);
        return mst;
    }
    const int s = parse(l, error);
    if (s) {
        plm_litertlm_close(l);
        return s;
    }
    *out = l;
    return PLM_OK;
}

void plm_litertlm_close(plm_litertlm *l) {
    if (!l) return;
    for (int64_t i = 0; i < l->n; i++) free(l->sections[i].model_type);
    free(l->sections);
    plm_unmap_file(l->map, l->size);
    free(l->tokenizer_json);
    free(l->tokenizer_error);
    pthread_mutex_destroy(&l->lock);
    free(l->path);
    free(l);
}

void plm_litertlm_version(const plm_litertlm *l, uint32_t version[3]) {
    if (!version) return;
    for (int i = 0; i < 3; i++) version[i] = l ? l->version[i] : 0;
}

int64_t plm_litertlm_n_sections(const plm_litertlm *l) { return l ? l->n : 0; }

int plm_litertlm_section(const plm_litertlm *l, int64_t i, int *data_type, uint64_t *offset, uint64_t *size,
                         const char **model_type) {
    if (!l || i < 0 || i >= l->n) return PLM_ERR_INVALID_ARG;
    const plm_litertlm_section_t *s = &l->sections[i];
    if (data_type) *data_type = s->data_type;
    if (offset) *offset = s->begin;
    if (size) *size = s->end - s->begin;
    if (model_type) *model_type = s->model_type;
    return PLM_OK;
}

int plm_litertlm_section_data(const plm_litertlm *l, int64_t i, const void **data, uint64_t *size) {
    if (!l || !data || i < 0 || i >= l->n) return PLM_ERR_INVALID_ARG;
    *data = l->map + l->sections[i].begin;
    if (size) *size = l->sections[i].end - l->sections[i].begin;
    return PLM_OK;
}

int64_t plm_litertlm_find(const plm_litertlm *l, int data_type, const char *model_type) {
    if (!l) return -1;
    for (int64_t i = 0; i < l->n; i++)
        if (l->sections[i].data_type == data_type &&
            (!model_type || (l->sections[i].model_type && strcmp(l->sections[i].model_type, model_type) == 0)))
            return i;
    return -1;
}

/* ---- LlmMetadata (litert.lm.proto.LlmMetadata, runtime/proto/llm_metadata.proto) ---------------------------
 * Field numbers are the .proto's. As protobuf parses: a known field with another wire type is an unknown field
 * (skipped), a scalar given twice keeps the last value, repeated ids may be packed or not, strings are UTF-8.
 * A singular message given twice is refused here (protobuf would merge the two; no writer does that). */

static int take_text(const plm_wire *sub, plm_str *out) {
    const uint64_t n = (uint64_t)(sub->end - sub->p);
    if (plm_utf8_invalid_at(sub->p, n) >= 0) return -1;
    out->ptr = (const char *)sub->p;
    out->len = n;
    return 0;
}

/* every field of a message we do not read must at least be well formed */
static int skip_message(plm_wire m) {
    while (m.p < m.end) {
        uint32_t num;
        int wt;
        plm_wire sub = {0, 0};
        uint64_t v;
        if (plm_wire_field(&m, &num, &wt, &sub, &v)) return -1;
    }
    return 0;
}

/* TokenIds { repeated int32 ids = 1; }: appended to the pool */
static int token_ids(plm_wire m, plm_litertlm_llm_metadata *md, plm_litertlm_token *t, const char **why) {
    const int64_t cap = (int64_t)(sizeof md->token_ids / sizeof md->token_ids[0]);
    while (m.p < m.end) {
        uint32_t num;
        int wt;
        plm_wire sub = {0, 0};
        uint64_t v = 0;
        if (plm_wire_field(&m, &num, &wt, &sub, &v)) return -1;
        if (num != 1) continue;
        if (wt == 0) {
            if (md->n_token_ids >= cap) return *why = "more token ids than this reader holds (4096)", -1;
            md->token_ids[md->n_token_ids++] = (int32_t)v, t->n_ids++;
        } else if (wt == 2) {
            while (sub.p < sub.end) {
                if (plm_wire_varint(&sub, &v)) return -1;
                if (md->n_token_ids >= cap) return *why = "more token ids than this reader holds (4096)", -1;
                md->token_ids[md->n_token_ids++] = (int32_t)v, t->n_ids++;
            }
        }
    }
    return 0;
}

/* TokenUnion { oneof token_union { TokenIds token_ids = 1; string token_str = 2; } } */
static int token_union(plm_wire m, plm_litertlm_llm_metadata *md, plm_litertlm_token *t, const char **why) {
    memset(t, 0, sizeof *t);
    while (m.p < m.end) {
        uint32_t num;
        int wt;
        plm_wire sub = {0, 0};
        uint64_t v;
        if (plm_wire_field(&m, &num, &wt, &sub, &v)) return -1;
        if (wt != 2) continue;
        if (num == 1) {
            if (t->kind == PLM_LITERTLM_TOKEN_IDS) return *why = "a token's ids given twice", -1;
            t->kind = PLM_LITERTLM_TOKEN_IDS, t->text.ptr = NULL, t->text.len = 0;
            t->first_id = md->n_token_ids, t->n_ids = 0;
            if (token_ids(sub, md, t, why)) return -1;
        } else if (num == 2) {
            if (take_text(&sub, &t->text)) return *why = "a token's text is not UTF-8", -1;
            t->kind = PLM_LITERTLM_TOKEN_TEXT, t->first_id = 0, t->n_ids = 0;
        }
    }
    return 0;
}

/* PromptAffixes { string prefix = 1; string suffix = 2; } */
static int affixes(plm_wire m, plm_str *prefix, plm_str *suffix) {
    while (m.p < m.end) {
        uint32_t num;
        int wt;
        plm_wire sub = {0, 0};
        uint64_t v;
        if (plm_wire_field(&m, &num, &wt, &sub, &v)) return -1;
        if (wt == 2 && (num == 1 || num == 2) && take_text(&sub, num == 1 ? prefix : suffix)) return -1;
    }
    return 0;
}

/* PromptTemplates { optional PromptAffixes user = 1; model = 2; system = 3; } */
static int prompt_templates(plm_wire m, plm_litertlm_llm_metadata *md, const char **why) {
    int *has[3] = {&md->has_user_affixes, &md->has_model_affixes, &md->has_system_affixes};
    plm_str *text[3][2] = {{&md->user_prefix, &md->user_suffix}, {&md->model_prefix, &md->model_suffix},
                           {&md->system_prefix, &md->system_suffix}};
    while (m.p < m.end) {
        uint32_t num;
        int wt;
        plm_wire sub = {0, 0};
        uint64_t v;
        if (plm_wire_field(&m, &num, &wt, &sub, &v)) return -1;
        if (wt != 2 || num < 1 || num > 3) continue;
        if (*has[num - 1]) return *why = "a prompt template role given twice", -1;
        *has[num - 1] = 1;
        if (affixes(sub, text[num - 1][0], text[num - 1][1])) return *why = "prompt_templates", -1;
    }
    return 0;
}

/* which member of LlmModelType's oneof is set (the last one given): its field number, 0 for none. The members
 * (llm_model_type.proto): generic_model 1, gemma3n 2, function_gemma 3, gemma3 4, qwen3 5, qwen2p5 7, gemma4 8,
 * fast_vlm 9, lfm2 11, minicpm5 12, minicpmv4 13; other numbers are unknown fields. */
static int model_type_field(plm_wire m, int *which) {
    static const uint32_t members = 1u << 1 | 1u << 2 | 1u << 3 | 1u << 4 | 1u << 5 | 1u << 7 | 1u << 8 | 1u << 9 |
                                    1u << 11 | 1u << 12 | 1u << 13;
    while (m.p < m.end) {
        uint32_t num;
        int wt;
        plm_wire sub = {0, 0};
        uint64_t v;
        if (plm_wire_field(&m, &num, &wt, &sub, &v)) return -1;
        if (wt != 2) continue;
        if (skip_message(sub)) return -1;
        if (num < 32 && (members >> num & 1u)) *which = (int)num;
    }
    return 0;
}

static int metadata_parse(const uint8_t *data, uint64_t size, plm_litertlm_llm_metadata *md, const char **why) {
    memset(md, 0, sizeof *md);
    *why = "not an LlmMetadata protobuf";
    plm_wire w = {data, data + size};
    int seen[16] = {0};
    const int64_t cap = (int64_t)(sizeof md->stop_tokens / sizeof md->stop_tokens[0]);
    while (w.p < w.end) {
        uint32_t num;
        int wt;
        plm_wire sub = {0, 0};
        uint64_t v = 0;
        if (plm_wire_field(&w, &num, &wt, &sub, &v)) return -1;
        const int is_len = wt == 2, is_var = wt == 0;
        const int message_field = num == 1 || num == 3 || num == 4 || num == 6 || num == 9 || num == 13;
        if (message_field && is_len) {
            if (seen[num]) return *why = "a singular message field given twice", -1;
            seen[num] = 1;
        }
        switch (num) {
        case 1: /* start_token */
            if (is_len && token_union(sub, md, &md->start_token, why)) return -1;
            break;
        case 2: /* stop_tokens */
            if (!is_len) break;
            if (md->n_stop_tokens >= cap) return *why = "more than 256 stop tokens", -1;
            if (token_union(sub, md, &md->stop_tokens[md->n_stop_tokens++], why)) return -1;
            break;
        case 3: /* prompt_templates */
            if (is_len && prompt_templates(sub, md, why)) return -1;
            break;
        case 5: /* max_num_tokens */
            if (is_var) md->max_num_tokens = (int64_t)(int32_t)v;
            break;
        case 6: /* llm_model_type */
            if (is_len && model_type_field(sub, &md->llm_model_type)) return -1;
            break;
        case 7: /* jinja_prompt_template */
            if (!is_len) break;
            if (take_text(&sub, &md->jinja_template)) return *why = "jinja_prompt_template is not UTF-8", -1;
            md->has_jinja_template = 1;
            break;
        case 4: case 8: case 9: case 13: /* sampler_params, channels, suppress_tokens, pad_token: not read here */
            if (is_len && skip_message(sub)) return -1;
            break;
        default: break;
        }
    }
    return 0;
}

int plm_litertlm_metadata_parse(const void *data, uint64_t size, plm_litertlm_llm_metadata *out) {
    const char *why;
    if (!out || (!data && size)) return -1;
    return metadata_parse((const uint8_t *)data, size, out, &why);
}

int plm_litertlm_metadata(const plm_litertlm *l, plm_litertlm_llm_metadata *out, char **error) {
    if (error) *error = NULL;
    if (!l || !out) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_litertlm_metadata: NULL argument");
    memset(out, 0, sizeof *out);
    const int64_t i = plm_litertlm_find(l, PLM_LITERTLM_LLM_METADATA, NULL);
    if (i < 0) return PLM_ERR_NOT_FOUND;
    const plm_litertlm_section_t *s = &l->sections[i];
    const char *why;
    if (metadata_parse(l->map + s->begin, s->end - s->begin, out, &why)) {
        char what[64];
        section_what(what, sizeof what, i, s->data_type);
        memset(out, 0, sizeof *out);
        return plm_errorf(error, PLM_ERR_FORMAT, "%s: %s: %s", l->path, what, why);
    }
    return PLM_OK;
}

/* ---- the tokenizer ------------------------------------------------------------------------------------------ */

int plm_litertlm_has_zlib(void) {
#ifdef PLM_HAVE_ZLIB
    return 1;
#else
    return 0;
#endif
}

/* HF_Tokenizer_Zlib: an 8-byte little-endian size, then a zlib stream that inflates to exactly that many bytes of
 * UTF-8 (litert-lm-builder's add_hf_tokenizer). Sets l->tokenizer_json or l->tokenizer_error. */
static void inflate_tokenizer(plm_litertlm *l, int64_t i) {
    const plm_litertlm_section_t *s = &l->sections[i];
    char what[64];
    section_what(what, sizeof what, i, s->data_type);
    const uint64_t n = s->end - s->begin;
    if (n < 8) {
        plm_errorf(&l->tokenizer_error, PLM_ERR_FORMAT, "%s: %s: %llu bytes, too few for its 8-byte size and a zlib "
                   "stream", l->path, what, (unsigned long long)n);
        return;
    }
    const uint64_t declared = rd64(l->map + s->begin);
    if (declared == 0 || declared > MAX_TOKENIZER_JSON) {
        plm_errorf(&l->tokenizer_error, PLM_ERR_FORMAT, "%s: %s: declares a tokenizer.json of %llu bytes (at most %llu "
                   "are read)", l->path, what, (unsigned long long)declared, (unsigned long long)MAX_TOKENIZER_JSON);
        return;
    }
#ifdef PLM_HAVE_ZLIB
    uint8_t *out = (uint8_t *)malloc((size_t)declared + 1); /* one byte more: a stream that inflates longer shows */
    if (!out) {
        plm_errorf(&l->tokenizer_error, PLM_ERR_NOMEM, "%s: %s: out of memory", l->path, what);
        return;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) {
        free(out);
        plm_errorf(&l->tokenizer_error, PLM_ERR_NOMEM, "%s: %s: zlib could not start", l->path, what);
        return;
    }
    const uint8_t *in = l->map + s->begin + 8;
    uint64_t in_left = n - 8, out_done = 0;
    int ret = Z_OK;
    while (ret == Z_OK) {
        const uInt in_chunk = in_left > 0x40000000u ? 0x40000000u : (uInt)in_left;
        const uint64_t room = declared + 1 - out_done;
        const uInt out_chunk = room > 0x40000000u ? 0x40000000u : (uInt)room;
        z.next_in = (Bytef *)in, z.avail_in = in_chunk;
        z.next_out = out + out_done, z.avail_out = out_chunk;
        ret = inflate(&z, Z_NO_FLUSH);
        in += in_chunk - z.avail_in, in_left -= in_chunk - z.avail_in;
        out_done += out_chunk - z.avail_out;
        if (ret == Z_OK && ((in_chunk == z.avail_in && out_chunk == z.avail_out) || out_done > declared)) break;
    }
    inflateEnd(&z);
    if (ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR)
        plm_errorf(&l->tokenizer_error, PLM_ERR_FORMAT, "%s: %s: not a zlib stream (%s)", l->path, what,
                   z.msg ? z.msg : "inflate failed");
    else if (out_done > declared)
        plm_errorf(&l->tokenizer_error, PLM_ERR_FORMAT, "%s: %s: inflates to more than the %llu bytes it declares",
                   l->path, what, (unsigned long long)declared);
    else if (ret != Z_STREAM_END)
        plm_errorf(&l->tokenizer_error, PLM_ERR_FORMAT, "%s: %s: the zlib stream is cut short (%llu of the %llu bytes "
                   "it declares)", l->path, what, (unsigned long long)out_done, (unsigned long long)declared);
    else if (out_done != declared)
        plm_errorf(&l->tokenizer_error, PLM_ERR_FORMAT, "%s: %s: inflates to %llu bytes, not the %llu it declares",
                   l->path, what, (unsigned long long)out_done, (unsigned long long)declared);
    else if (plm_utf8_invalid_at(out, declared) >= 0)
        plm_errorf(&l->tokenizer_error, PLM_ERR_FORMAT, "%s: %s: the tokenizer.json is not UTF-8", l->path, what);
    if (l->tokenizer_error) {
        free(out);
        return;
    }
    out[declared] = '\0';
    l->tokenizer_json = out;
    l->tokenizer_json_size = declared;
#else
    plm_errorf(&l->tokenizer_error, PLM_ERR_FORMAT, "%s: %s is zlib-compressed, and this libpocketlm was built "
               "without zlib (plm_litertlm_has_zlib() is 0)", l->path, what);
#endif
}

int plm_litertlm_tokenizer(const plm_litertlm *f, int *kind, const void **data, uint64_t *size, char **error) {
    if (error) *error = NULL;
    if (!f || !kind || !data || !size) return plm_errorf(error, PLM_ERR_INVALID_ARG, "plm_litertlm_tokenizer: NULL argument");
    *kind = 0, *data = NULL, *size = 0;
    int64_t i = plm_litertlm_find(f, PLM_LITERTLM_SP_TOKENIZER, NULL);
    if (i >= 0) {
        const plm_litertlm_section_t *s = &f->sections[i];
        if (s->end == s->begin) {
            char what[64];
            section_what(what, sizeof what, i, s->data_type);
            return plm_errorf(error, PLM_ERR_FORMAT, "%s: %s is empty", f->path, what);
        }
        *kind = PLM_LITERTLM_TOKENIZER_SENTENCEPIECE, *data = f->map + s->begin, *size = s->end - s->begin;
        return PLM_OK;
    }
    if ((i = plm_litertlm_find(f, PLM_LITERTLM_HF_TOKENIZER_ZLIB, NULL)) < 0) return PLM_ERR_NOT_FOUND;
    plm_litertlm *l = (plm_litertlm *)f; /* the inflated text is made once, under the lock */
    pthread_mutex_lock(&l->lock);
    if (!l->inflated) {
        inflate_tokenizer(l, i);
        l->inflated = 1;
    }
    pthread_mutex_unlock(&l->lock);
    if (l->tokenizer_error) {
        if (error) *error = strdup(l->tokenizer_error);
        return PLM_ERR_FORMAT;
    }
    *kind = PLM_LITERTLM_TOKENIZER_JSON, *data = l->tokenizer_json, *size = l->tokenizer_json_size;
    return PLM_OK;
}

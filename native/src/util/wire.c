/*
 * wire.c — the protobuf wire format, read with every length checked: .task
 * METADATA (LlmParameters) and SentencePiece models are read with it.
 */
#include "util/util.h"

int plm_wire_varint(plm_wire *w, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (w->p >= w->end) return -1;
        const uint8_t b = *w->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

int plm_wire_field(plm_wire *w, uint32_t *num, int *wt, plm_wire *sub, uint64_t *value) {
    uint64_t tag;
    if (plm_wire_varint(w, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1FFFFFFF) return -1;
    *num = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    switch (*wt) {
    case 0: return plm_wire_varint(w, value);
    case 1:
        if (w->end - w->p < 8) return -1;
        w->p += 8;
        return 0;
    case 5:
        if (w->end - w->p < 4) return -1;
        *value = (uint64_t)w->p[0] | (uint64_t)w->p[1] << 8 | (uint64_t)w->p[2] << 16 | (uint64_t)w->p[3] << 24;
        w->p += 4;
        return 0;
    case 2: {
        uint64_t n;
        if (plm_wire_varint(w, &n) || n > (uint64_t)(w->end - w->p)) return -1;
        sub->p = w->p;
        sub->end = w->p + n;
        w->p += n;
        return 0;
    }
    default: return -1; /* groups (3, 4) and 6, 7: not in LlmParameters */
    }
}

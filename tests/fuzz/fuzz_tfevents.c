/* Fuzz target: the TensorBoard encoder round trip. The input gives a tag, a step, a value and
 * a wall time; the encoded record (tfevents.c, as bl_tfevents_scalar writes it) is read back
 * here — the framing and both masked CRC-32Cs, then the protobuf fields — and must give back
 * the same tag, step, float value and wall time. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>

#include "results/tfevents/tfrecord.h"
#include "fuzz_util.h"

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t varint(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    abort(); /* a varint cut short */
}

typedef struct decoded {
    double wall;
    int64_t step;
    const uint8_t *tag;
    size_t tag_len;
    float value;
    int seen;
} decoded;

/* Walks one protobuf message [p, end); depth 0 = Event, 1 = Summary, 2 = Summary.Value. */
static void walk(const uint8_t *p, const uint8_t *end, int depth, decoded *d)
{
    while (p < end) {
        uint64_t key = varint(&p, end);
        uint32_t field = (uint32_t)(key >> 3), wire = key & 7;
        if (wire == 0) {
            uint64_t v = varint(&p, end);
            if (depth == 0 && field == 2)
                d->step = (int64_t)v, d->seen |= 2;
        } else if (wire == 1) {
            if (end - p < 8)
                abort();
            uint64_t bits = le(p, 8);
            p += 8;
            if (depth == 0 && field == 1)
                memcpy(&d->wall, &bits, 8), d->seen |= 1;
        } else if (wire == 5) {
            if (end - p < 4)
                abort();
            uint32_t bits = (uint32_t)le(p, 4);
            p += 4;
            if (depth == 2 && field == 2)
                memcpy(&d->value, &bits, 4), d->seen |= 8;
        } else if (wire == 2) {
            uint64_t len = varint(&p, end);
            if (len > (uint64_t)(end - p))
                abort();
            if (depth == 2 && field == 1)
                d->tag = p, d->tag_len = (size_t)len, d->seen |= 4;
            else if ((depth == 0 && field == 5) || (depth == 1 && field == 1))
                walk(p, p + len, depth + 1, d);
            p += len;
        } else {
            abort(); /* a wire type the encoder never writes */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 24)
        return 0;
    int64_t step = (int64_t)le(data, 8);
    double value, wall;
    uint64_t bits = le(data + 8, 8);
    memcpy(&value, &bits, 8);
    bits = le(data + 16, 8);
    memcpy(&wall, &bits, 8);
    if (!(wall > 0) || !isfinite(wall))
        wall = 1.5e9; /* the writer fills in "now" for these; the encoder takes it as given */
    size_t tag_len = size - 24;
    char *tag = malloc(tag_len + 1);
    if (!tag)
        return 0;
    memcpy(tag, data + 24, tag_len);
    tag[tag_len] = '\0';
    tag_len = strlen(tag); /* a C string: up to the first NUL */
    size_t need = bl__tfevents_encode_scalar(tag, step, value, wall, NULL, 0);
    uint8_t *rec = malloc(need ? need : 1);
    if (!rec || bl__tfevents_encode_scalar(tag, step, value, wall, rec, need) != need ||
        need < 16)
        abort();
    uint64_t len = le(rec, 8);
    if (len != need - 16 ||
        (uint32_t)le(rec + 8, 4) != bl__crc32c_mask(bl__crc32c(0, rec, 8)) ||
        (uint32_t)le(rec + 12 + len, 4) != bl__crc32c_mask(bl__crc32c(0, rec + 12, len)))
        abort(); /* framing */
    decoded d = {0};
    walk(rec + 12, rec + 12 + len, 0, &d);
    float want = (float)value;
    if (!(d.seen & 1) || d.wall != wall || ((d.seen & 2) ? d.step : 0) != step)
        abort();
    if (!(d.seen & 4) || d.tag_len != tag_len || memcmp(d.tag, tag, tag_len) != 0)
        abort();
    if (!(d.seen & 8) || (memcmp(&d.value, &want, 4) != 0 && !(isnan(d.value) && isnan(want))))
        abort();
    free(rec);
    free(tag);
    return 0;
}

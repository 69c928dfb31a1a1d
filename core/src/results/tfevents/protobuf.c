/* The protobuf encoder of protobuf.h. Wire format: a key varint (field << 3 | wire type),
 * then a varint, 8 or 4 little-endian bytes, or a length varint and that many bytes. */
#include "results/tfevents/protobuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/grow.h"

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

void bl__pb_free(bl__pb *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

static void put(bl__pb *b, const void *p, size_t n)
{
    if (b->failed || n == 0)
        return;
    unsigned char *data = n <= SIZE_MAX - b->len ? bl__grow(b->data, &b->cap, b->len + n, 1)
                                                 : NULL;
    if (!data) {
        b->failed = true;
        return;
    }
    b->data = data;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_varint(bl__pb *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7Fu);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80u;
        n++;
    } while (v);
    put(b, tmp, n);
}

static void put_key(bl__pb *b, uint32_t field, unsigned wire)
{
    put_varint(b, (uint64_t)field << 3 | wire);
}

static void put_le(bl__pb *b, uint64_t v, size_t n)
{
    unsigned char tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (unsigned char)(v >> (8 * i));
    put(b, tmp, n);
}

void bl__pb_varint(bl__pb *b, uint32_t field, uint64_t v)
{
    put_key(b, field, WIRE_VARINT);
    put_varint(b, v);
}

void bl__pb_int64(bl__pb *b, uint32_t field, int64_t v)
{
    bl__pb_varint(b, field, (uint64_t)v); /* negative: ten bytes, two's complement */
}

void bl__pb_bool(bl__pb *b, uint32_t field, bool v)
{
    bl__pb_varint(b, field, v ? 1u : 0u);
}

void bl__pb_double(bl__pb *b, uint32_t field, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_key(b, field, WIRE_FIXED64);
    put_le(b, bits, 8);
}

void bl__pb_float(bl__pb *b, uint32_t field, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_key(b, field, WIRE_FIXED32);
    put_le(b, bits, 4);
}

void bl__pb_bytes(bl__pb *b, uint32_t field, const void *p, size_t n)
{
    put_key(b, field, WIRE_LEN);
    put_varint(b, n);
    put(b, p, n);
}

void bl__pb_string(bl__pb *b, uint32_t field, const char *s)
{
    bl__pb_bytes(b, field, s, strlen(s));
}

void bl__pb_message(bl__pb *b, uint32_t field, const bl__pb *msg)
{
    if (msg->failed)
        b->failed = true;
    bl__pb_bytes(b, field, msg->data, msg->len);
}

/* A minimal protobuf encoder (proto3 wire format) for the messages batchlab writes: varint,
 * fixed64 (double), fixed32 (float) and length-delimited fields. A nested message is encoded
 * into its own buffer and appended with bl__pb_message.
 *
 * Errors are sticky: when an allocation fails the buffer is marked failed, later calls do
 * nothing, and the caller checks `failed` once at the end. Fields are written exactly as
 * called; leaving out proto3 default values (0, "", false) is the caller's choice.
 */
#ifndef BATCHLAB_PROTOBUF_H
#define BATCHLAB_PROTOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bl__pb {
    unsigned char *data;  /* len bytes of encoded fields; owned (free with bl__pb_free) */
    size_t len, cap;
    bool failed;          /* an allocation failed: the contents are incomplete */
} bl__pb;

#define BL__PB_INIT {NULL, 0, 0, false}

void bl__pb_free(bl__pb *b);                       /* frees the data; b may be reused */

void bl__pb_varint(bl__pb *b, uint32_t field, uint64_t v);          /* wire type 0 */
void bl__pb_int64(bl__pb *b, uint32_t field, int64_t v);            /* int64/int32/enum */
void bl__pb_bool(bl__pb *b, uint32_t field, bool v);
void bl__pb_double(bl__pb *b, uint32_t field, double v);            /* wire type 1 */
void bl__pb_float(bl__pb *b, uint32_t field, float v);              /* wire type 5 */
void bl__pb_bytes(bl__pb *b, uint32_t field, const void *p, size_t n); /* wire type 2 */
void bl__pb_string(bl__pb *b, uint32_t field, const char *s);       /* NUL-terminated */
/* Appends `msg` as a nested message; a failed `msg` fails `b`. */
void bl__pb_message(bl__pb *b, uint32_t field, const bl__pb *msg);

#endif

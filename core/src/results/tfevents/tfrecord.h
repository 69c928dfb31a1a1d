/* Internal to libbatchlab: the exact bytes the TensorBoard writer writes (tfevents.c), and
 * CRC-32C (crc32c.c). Tests of the format link batchlab_internal.
 *
 * Record framing (TensorFlow's TFRecord):
 *   uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes | data |
 *   uint32 masked CRC-32C of the data
 */
#ifndef BATCHLAB_TFRECORD_H
#define BATCHLAB_TFRECORD_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of n bytes, continuing from `crc`
 * (0 to start): bl__crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t bl__crc32c(uint32_t crc, const void *data, size_t n);

/* The masked CRC the record framing stores: ((crc >> 15) | (crc << 17)) + 0xA282EAD8. */
uint32_t bl__crc32c_mask(uint32_t crc);

/* Frames n bytes of data as one record into out: 12 header bytes, the data, 4 footer bytes.
 * Returns the record's size, n + 16; writes nothing when cap is smaller than that. */
size_t bl__tfrecord_frame(const void *data, size_t n, void *out, size_t cap);

/* The framed record of Event{wall_time, file_version = "brain.Event:2"}. Returns its size;
 * writes nothing when cap is smaller than that. */
size_t bl__tfevents_encode_version(double wall_time, void *out, size_t cap);

/* The framed record of Event{wall_time, step, summary{value{tag, simple_value}}}, as
 * bl_tfevents_scalar writes it (step 0 is left out, as protobuf does). Returns its size (0 for
 * a NULL tag); writes nothing when cap is smaller than that. */
size_t bl__tfevents_encode_scalar(const char *tag, int64_t step, double value,
                                  double wall_time, void *out, size_t cap);

#endif

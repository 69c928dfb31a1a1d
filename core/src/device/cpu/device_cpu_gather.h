/* Internal: the CPU backend's gathers of dataset rows by index (device_cpu_gather.c),
 * bl_device_ops.gather_rows and gather_bytes. */
#ifndef BATCHLAB_DEVICE_CPU_GATHER_H
#define BATCHLAB_DEVICE_CPU_GATHER_H

#include "batchlab/device.h"

void bl__cpu_gather_rows(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_bytes,
                         const void *src, void *dst);
void bl__cpu_gather_bytes(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_len,
                          const uint8_t *src, float scale, float offset, float *dst);

#endif

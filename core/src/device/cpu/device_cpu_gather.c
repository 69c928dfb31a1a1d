/* The CPU backend's gathers of dataset rows by index (contracts: batchlab/device.h,
 * gather_rows and gather_bytes). The engine keeps a dataset "on the device" only for devices
 * whose memory the host cannot address, so on the CPU these serve the fixture backend
 * (tests/fixtures/fx_backend.c) and tests: plain loops, on the calling thread. */
#include <string.h>

#include "device/cpu/device_cpu_gather.h"

void bl__cpu_gather_rows(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_bytes,
                         const void *src, void *dst)
{
    (void)dev;
    const char *s = src;
    char *d = dst;
    for (int64_t i = 0; i < n; i++)
        memcpy(d + (size_t)(i * row_bytes), s + (size_t)(idx[i] * row_bytes), (size_t)row_bytes);
}

void bl__cpu_gather_bytes(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_len,
                          const uint8_t *src, float scale, float offset, float *dst)
{
    (void)dev;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *row = src + (size_t)(idx[i] * row_len);
        float *out = dst + (size_t)(i * row_len);
        for (int64_t j = 0; j < row_len; j++)
            out[j] = (float)row[j] * scale + offset;
    }
}

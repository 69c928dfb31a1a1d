/* The CPU backend's gathers of dataset rows by index (contracts: batchlab/device.h,
 * gather_rows and gather_bytes). The engine keeps a dataset "on the device" only for devices
 * whose memory the host cannot address, so on the CPU gather_rows serves the fixture backend
 * (tests/fixtures/fx_backend.c) and tests, a plain loop on the calling thread; gather_bytes
 * also turns a large prefetched batch of bytes into floats (engine/loader.c, split gather),
 * split over the pool. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3") /* the row loop's trip count is known only at run time */
#endif

#include <string.h>

#include "device/cpu/device_cpu_gather.h"
#include "device/cpu/device_cpu_shared.h"
#include "device/kernel_math.h"

void bl__cpu_gather_rows(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_bytes,
                         const void *src, void *dst)
{
    (void)dev;
    const char *s = src;
    char *d = dst;
    for (int64_t i = 0; i < n; i++)
        memcpy(d + (size_t)(i * row_bytes), s + (size_t)(idx[i] * row_bytes), (size_t)row_bytes);
}

typedef struct bytes_job {
    const int64_t *idx;
    int64_t row_len;
    const uint8_t *src;
    float scale, offset;
    float *dst;
} bytes_job;

/* Rows [r0, r1) (the build does not contract the byte map into an FMA). */
BL__HOT static void bytes_rows(const bytes_job *j, int64_t r0, int64_t r1)
{
    const int64_t len = j->row_len;
    const float scale = j->scale, offset = j->offset;
    for (int64_t i = r0; i < r1; i++) {
        const uint8_t *restrict row = j->src + (size_t)(j->idx[i] * len);
        float *restrict out = j->dst + (size_t)(i * len);
        for (int64_t k = 0; k < len; k++)
            out[k] = bl__km_byte_to_float(row[k], scale, offset);
    }
}

static void bytes_range(void *p, int chunk, int64_t r0, int64_t r1)
{
    (void)chunk;
    bytes_rows(p, r0, r1);
}

void bl__cpu_gather_bytes(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_len,
                          const uint8_t *src, float scale, float offset, float *dst)
{
    bytes_job j = {idx, row_len, src, scale, offset, dst};
    int64_t grain = row_len > 0 && 16384 / row_len > 0 ? 16384 / row_len : 1;
    bl__pool_run(bl__cpu_pool(dev), n, grain, 1, bytes_range, &j);
}

/* The CUDA backend's gathers of dataset rows by index (bl_device_ops.gather_rows and
 * gather_bytes, contracts in batchlab/device.h): the batch loader's resident mode keeps the
 * training split in device memory and gathers each batch here, from the epoch's permutation
 * uploaded once per epoch. One thread per output element; gather_rows moves 4-byte words when
 * every row and pointer allows it. gather_bytes computes kernel_math.h's byte map
 * (bl__km_byte_to_float) with the backend's --fmad=false, so it gives the host conversion's
 * bits.
 */
#include "device/cuda/cuda_common.cuh"
#include "device/kernel_math.h"

struct gather_words_f {
    int64_t row_words;
    const int64_t *idx;
    const uint32_t *src;
    uint32_t *dst;
    __device__ void operator()(int64_t k) const
    {
        int64_t i = k / row_words;
        dst[k] = src[idx[i] * row_words + k % row_words];
    }
};

struct gather_chars_f {
    int64_t row_bytes;
    const int64_t *idx;
    const unsigned char *src;
    unsigned char *dst;
    __device__ void operator()(int64_t k) const
    {
        int64_t i = k / row_bytes;
        dst[k] = src[idx[i] * row_bytes + k % row_bytes];
    }
};

void bl__cu_gather_rows(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_bytes,
                        const void *src, void *dst)
{
    if (n <= 0 || row_bytes <= 0)
        return;
    if (row_bytes % 4 == 0 && (uintptr_t)src % 4 == 0 && (uintptr_t)dst % 4 == 0)
        cu_each(dev, n * (row_bytes / 4),
                gather_words_f{row_bytes / 4, idx, (const uint32_t *)src, (uint32_t *)dst},
                "gather_rows");
    else
        cu_each(dev, n * row_bytes,
                gather_chars_f{row_bytes, idx, (const unsigned char *)src, (unsigned char *)dst},
                "gather_rows");
}

struct gather_bytes_f {
    int64_t row_len;
    const int64_t *idx;
    const uint8_t *src;
    float scale, offset;
    float *dst;
    __device__ void operator()(int64_t k) const
    {
        int64_t i = k / row_len;
        dst[k] = bl__km_byte_to_float(src[idx[i] * row_len + k % row_len], scale, offset);
    }
};

void bl__cu_gather_bytes(bl_device *dev, int64_t n, const int64_t *idx, int64_t row_len,
                         const uint8_t *src, float scale, float offset, float *dst)
{
    if (n <= 0 || row_len <= 0)
        return;
    cu_each(dev, n * row_len, gather_bytes_f{row_len, idx, src, scale, offset, dst},
            "gather_bytes");
}

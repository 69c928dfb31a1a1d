/* Devices: opening by name, and the allocation accounting shared by every backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/device.h"
#include "device/device_internal.h"

/* "12.0 MiB" style sizes for messages. */
static const char *human_bytes(size_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%zu bytes", bytes);
    else
        snprintf(buf, cap, "%.1f %s", v, units[u]);
    return buf;
}

int bl_device_open(bl_ctx *ctx, const char *name, bl_device **out)
{
    if (!name || !out)
        return bl_error(ctx, BL_EINVAL, "bl_device_open: %s is NULL", !name ? "name" : "out");
    if (strcmp(name, "cpu") == 0)
        return bl_device_cpu_open(ctx, 0, out);
    if (strncmp(name, "cuda", 4) == 0) {
        const char *rest = name + 4;
        bool ok = *rest == '\0';
        if (*rest == ':') {
            char *end = NULL;
            long index = strtol(rest + 1, &end, 10);
            ok = rest[1] >= '0' && rest[1] <= '9' && end && *end == '\0' && index >= 0 &&
                 index < 1024;
        }
        if (!ok)
            return bl_error(ctx, BL_EINVAL,
                            "unknown device \"%s\" (expected \"cpu\", \"cuda\" or \"cuda:N\")",
                            name);
        return bl_error(ctx, BL_EUNSUPPORTED,
                        "device \"%s\": this batchlab was built without CUDA; use \"cpu\"", name);
    }
    return bl_error(ctx, BL_EINVAL,
                    "unknown device \"%s\" (expected \"cpu\", \"cuda\" or \"cuda:N\")", name);
}

void bl_device_free(bl_device *dev)
{
    if (!dev)
        return;
    switch (dev->kind) {
    case BL_DEVICE_CPU:
        bl__device_cpu_destroy(dev);
        break;
    case BL_DEVICE_CUDA:
        break; /* not in this build: nothing can have opened one */
    }
}

int bl_device_alloc(bl_ctx *ctx, bl_device *dev, size_t bytes, void **out)
{
    if (!dev || !out)
        return bl_error(ctx, BL_EINVAL, "bl_device_alloc: %s is NULL", !dev ? "dev" : "out");
    char want[32], used[32], budget[32];
    if (dev->budget_bytes &&
        (bytes > dev->budget_bytes || dev->bytes_in_use > dev->budget_bytes - bytes))
        return bl_error(ctx, BL_ENOMEM,
                        "%s device: cannot allocate %s (%zu bytes): %s in use, budget %s",
                        dev->ops->name, human_bytes(bytes, want, sizeof want), bytes,
                        human_bytes(dev->bytes_in_use, used, sizeof used),
                        human_bytes(dev->budget_bytes, budget, sizeof budget));
    void *p = dev->ops->alloc(dev, bytes);
    if (!p)
        return bl_error(ctx, BL_ENOMEM,
                        "%s device: out of memory allocating %s (%zu bytes); %s in use",
                        dev->ops->name, human_bytes(bytes, want, sizeof want), bytes,
                        human_bytes(dev->bytes_in_use, used, sizeof used));
    dev->bytes_in_use += bytes;
    if (dev->bytes_in_use > dev->peak_bytes)
        dev->peak_bytes = dev->bytes_in_use;
    dev->alloc_count++;
    *out = p;
    return BL_OK;
}

void bl_device_release(bl_device *dev, void *ptr, size_t bytes)
{
    if (!dev || !ptr)
        return;
    dev->ops->release(dev, ptr);
    dev->bytes_in_use = bytes <= dev->bytes_in_use ? dev->bytes_in_use - bytes : 0;
}

int bl_device_upload(bl_ctx *ctx, bl_device *dev, void *dst, const void *src_host, size_t bytes)
{
    if (!dev || ((!dst || !src_host) && bytes))
        return bl_error(ctx, BL_EINVAL, "bl_device_upload: %s is NULL",
                        !dev ? "dev" : (!dst ? "dst" : "src_host"));
    int rc = dev->ops->upload(dev, dst, src_host, bytes);
    if (rc != BL_OK)
        return bl_error(ctx, rc, "%s device: upload of %zu bytes failed", dev->ops->name, bytes);
    return BL_OK;
}

int bl_device_download(bl_ctx *ctx, bl_device *dev, void *dst_host, const void *src,
                       size_t bytes)
{
    if (!dev || ((!dst_host || !src) && bytes))
        return bl_error(ctx, BL_EINVAL, "bl_device_download: %s is NULL",
                        !dev ? "dev" : (!dst_host ? "dst_host" : "src"));
    int rc = dev->ops->download(dev, dst_host, src, bytes);
    if (rc != BL_OK)
        return bl_error(ctx, rc, "%s device: download of %zu bytes failed", dev->ops->name,
                        bytes);
    return BL_OK;
}

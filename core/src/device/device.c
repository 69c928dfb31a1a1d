/* Devices: the accounting shared by every backend, sticky faults, and the host-side wrappers
 * of the memory, copy and event operations. Finding and opening backends is in backend.c. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/device.h"
#include "batchlab/device_backend.h"
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

/* ---- sticky faults ------------------------------------------------------------------------- */

/* dev->fault while the first fault's message is being written: no BL_E… code (BL_ENOMEM is
 * −1, so −1 cannot serve). */
#define FAULT_RECORDING INT_MIN

void bl_device_fault(bl_device *dev, int code, const char *fmt, ...)
{
    if (!dev)
        return;
    if (code >= 0)
        code = BL_EINVAL;
    int expected = 0;
    /* the first fault wins; its message is written once, by the thread that set it */
    if (!__atomic_compare_exchange_n(&dev->fault, &expected, FAULT_RECORDING, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dev->fault_msg, sizeof dev->fault_msg, fmt ? fmt : "device fault", ap);
    va_end(ap);
    __atomic_store_n(&dev->fault, code, __ATOMIC_RELEASE);
}

int bl_device_status(bl_ctx *ctx, const bl_device *dev)
{
    if (!dev)
        return bl_error(ctx, BL_EINVAL, "bl_device_status: dev is NULL");
    int code = __atomic_load_n(&dev->fault, __ATOMIC_ACQUIRE);
    if (code == 0)
        return BL_OK;
    if (code == FAULT_RECORDING) /* a fault is being recorded right now */
        return bl_error(ctx, BL_EINVAL, "%s device: an earlier operation failed",
                        dev->ops->name);
    return bl_error(ctx, code, "%s device: an earlier operation failed: %s", dev->ops->name,
                    dev->fault_msg);
}

/* rc from a backend call, or the sticky fault it left; `what` names the call for messages. */
static int device_result(bl_ctx *ctx, const bl_device *dev, int rc, const char *what)
{
    if (__atomic_load_n(&dev->fault, __ATOMIC_ACQUIRE) != 0)
        return bl_device_status(ctx, dev);
    if (rc != BL_OK)
        return bl_error(ctx, rc < 0 ? rc : BL_EINVAL, "%s device: %s failed", dev->ops->name,
                        what);
    return BL_OK;
}

uint32_t bl_device_caps(const bl_device *dev)
{
    return dev ? dev->caps : 0;
}

int bl_device_synchronize(bl_ctx *ctx, bl_device *dev)
{
    if (!dev)
        return bl_error(ctx, BL_EINVAL, "bl_device_synchronize: dev is NULL");
    return device_result(ctx, dev, dev->ops->synchronize(dev), "synchronize");
}

int bl_device_memory(bl_ctx *ctx, bl_device *dev, size_t *free_bytes, size_t *total_bytes)
{
    if (!dev)
        return bl_error(ctx, BL_EINVAL, "bl_device_memory: dev is NULL");
    size_t f = 0, t = 0;
    int rc = device_result(ctx, dev, dev->ops->memory(dev, &f, &t), "memory query");
    if (rc != BL_OK)
        return rc;
    if (free_bytes)
        *free_bytes = f;
    if (total_bytes)
        *total_bytes = t;
    return BL_OK;
}

/* ---- allocation accounting ----------------------------------------------------------------- */

/* The limit an allocation of `bytes` would break (budget or watch), or 0 when it fits. */
static size_t broken_limit(const bl_device *dev, size_t bytes, const char **what)
{
    size_t use = dev->bytes_in_use;
    if (dev->budget_bytes && (bytes > dev->budget_bytes || use > dev->budget_bytes - bytes)) {
        *what = "budget";
        return dev->budget_bytes;
    }
    for (const bl_device_watch *w = dev->watches; w; w = w->next)
        if (w->limit && (bytes > w->limit || use > w->limit - bytes)) {
            *what = "limit";
            return w->limit;
        }
    return 0;
}

int bl_device_alloc(bl_ctx *ctx, bl_device *dev, size_t bytes, void **out)
{
    if (!dev || !out)
        return bl_error(ctx, BL_EINVAL, "bl_device_alloc: %s is NULL", !dev ? "dev" : "out");
    char want[32], used[32], budget[32];
    const char *what = NULL;
    size_t limit = broken_limit(dev, bytes, &what);
    if (limit)
        return bl_error(ctx, BL_ENOMEM,
                        "%s device: cannot allocate %s (%zu bytes): %s in use, %s %s",
                        dev->ops->name, human_bytes(bytes, want, sizeof want), bytes,
                        human_bytes(dev->bytes_in_use, used, sizeof used), what,
                        human_bytes(limit, budget, sizeof budget));
    void *p = dev->ops->alloc(dev, bytes);
    if (!p)
        return bl_error(ctx, BL_ENOMEM,
                        "%s device: out of memory allocating %s (%zu bytes); %s in use",
                        dev->ops->name, human_bytes(bytes, want, sizeof want), bytes,
                        human_bytes(dev->bytes_in_use, used, sizeof used));
    dev->bytes_in_use += bytes;
    bool private_use = false;
    for (bl_device_watch *w = dev->watches; w; w = w->next) {
        if (dev->bytes_in_use > w->peak)
            w->peak = dev->bytes_in_use;
        private_use |= (w->flags & BL_DEVICE_WATCH_PRIVATE) != 0;
    }
    if (!private_use && dev->bytes_in_use > dev->peak_bytes)
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

void bl_device_watch_begin(bl_device *dev, bl_device_watch *w, size_t limit_bytes,
                           unsigned flags)
{
    if (!dev || !w)
        return;
    w->flags = flags;
    w->base = w->peak = dev->bytes_in_use;
    w->limit = limit_bytes ? dev->bytes_in_use + limit_bytes : 0;
    w->next = dev->watches;
    dev->watches = w;
}

void bl_device_watch_end(bl_device *dev, bl_device_watch *w)
{
    if (!dev || !w)
        return;
    for (bl_device_watch **p = &dev->watches; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    w->next = NULL;
}

/* ---- copies and events --------------------------------------------------------------------- */

int bl_device_upload(bl_ctx *ctx, bl_device *dev, void *dst, const void *src_host, size_t bytes)
{
    if (!dev || ((!dst || !src_host) && bytes))
        return bl_error(ctx, BL_EINVAL, "bl_device_upload: %s is NULL",
                        !dev ? "dev" : (!dst ? "dst" : "src_host"));
    int rc = dev->ops->upload(dev, dst, src_host, bytes);
    if (rc != BL_OK && __atomic_load_n(&dev->fault, __ATOMIC_ACQUIRE) == 0)
        return bl_error(ctx, rc, "%s device: upload of %zu bytes failed", dev->ops->name, bytes);
    return device_result(ctx, dev, rc, "upload");
}

int bl_device_download(bl_ctx *ctx, bl_device *dev, void *dst_host, const void *src,
                       size_t bytes)
{
    if (!dev || ((!dst_host || !src) && bytes))
        return bl_error(ctx, BL_EINVAL, "bl_device_download: %s is NULL",
                        !dev ? "dev" : (!dst_host ? "dst_host" : "src"));
    int rc = dev->ops->download(dev, dst_host, src, bytes);
    if (rc != BL_OK && __atomic_load_n(&dev->fault, __ATOMIC_ACQUIRE) == 0)
        return bl_error(ctx, rc, "%s device: download of %zu bytes failed", dev->ops->name,
                        bytes);
    return device_result(ctx, dev, rc, "download");
}

int bl_device_host_alloc(bl_ctx *ctx, bl_device *dev, size_t bytes, void **out)
{
    if (!dev || !out)
        return bl_error(ctx, BL_EINVAL, "bl_device_host_alloc: %s is NULL",
                        !dev ? "dev" : "out");
    void *p = dev->ops->host_alloc(dev, bytes);
    if (!p) {
        char want[32];
        return bl_error(ctx, BL_ENOMEM, "%s device: out of host staging memory allocating %s",
                        dev->ops->name, human_bytes(bytes, want, sizeof want));
    }
    *out = p;
    return BL_OK;
}

void bl_device_host_free(bl_device *dev, void *ptr)
{
    if (dev && ptr)
        dev->ops->host_free(dev, ptr);
}

int bl_device_upload_async(bl_ctx *ctx, bl_device *dev, void *dst, const void *src_host,
                           size_t bytes, bl_device_event *ev)
{
    if (!dev || ((!dst || !src_host) && bytes))
        return bl_error(ctx, BL_EINVAL, "bl_device_upload_async: %s is NULL",
                        !dev ? "dev" : (!dst ? "dst" : "src_host"));
    return device_result(ctx, dev, dev->ops->upload_async(dev, dst, src_host, bytes, ev),
                         "asynchronous upload");
}

int bl_device_event_new(bl_ctx *ctx, bl_device *dev, bl_device_event **out)
{
    if (!dev || !out)
        return bl_error(ctx, BL_EINVAL, "bl_device_event_new: %s is NULL", !dev ? "dev" : "out");
    return device_result(ctx, dev, dev->ops->event_new(dev, out), "event creation");
}

void bl_device_event_free(bl_device *dev, bl_device_event *ev)
{
    if (dev && ev)
        dev->ops->event_free(dev, ev);
}

int bl_device_event_wait(bl_ctx *ctx, bl_device *dev, bl_device_event *ev)
{
    if (!dev)
        return bl_error(ctx, BL_EINVAL, "bl_device_event_wait: dev is NULL");
    if (!ev)
        return BL_OK;
    return device_result(ctx, dev, dev->ops->event_wait(dev, ev), "event wait");
}

/* batchlab — what a device backend provides: the descriptor the host opens devices through.
 *
 * Every device, the built-in CPU included, is opened through a descriptor. A backend other than
 * "cpu" is a shared object named libbatchlab-<name>.so on the plugin search path
 * (BATCHLAB_PLUGIN_PATH, then the build tree's and the install prefix's plugin directories; see
 * bl_registry_search_path). It exports one function,
 *
 *     BL_EXPORT const bl_device_backend *batchlab_device_backend(void);
 *
 * that returns a descriptor with static storage. bl_device_open("<name>" or "<name>:N") loads the
 * file, checks `abi` and `size`, calls probe, then open; bl_device_free calls destroy and then
 * drops the host's reference to the shared object (dlclose when the last device from it goes).
 *
 * Versioning: `abi` is BL_DEVICE_BACKEND_ABI at build time. It changes when a field changes
 * meaning or bl_device / bl_device_ops change layout in a way an older backend cannot follow;
 * the host refuses any other value and says both numbers. Fields are only appended; `size` is
 * sizeof(bl_device_backend) at build time and the host reads a field only when `size` says the
 * backend has it. A backend is built against the same batchlab major version's headers and
 * links libbatchlab for bl_error and the helpers below.
 */
#ifndef BATCHLAB_DEVICE_BACKEND_H
#define BATCHLAB_DEVICE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "batchlab/device.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BL_DEVICE_BACKEND_ABI 1
#define BL_DEVICE_BACKEND_SYMBOL "batchlab_device_backend"
/* A backend named N is the file BL_DEVICE_BACKEND_PREFIX N ".so" on the plugin search path;
 * the plugin registry leaves such files alone. */
#define BL_DEVICE_BACKEND_PREFIX "libbatchlab-"

typedef struct bl_device_backend {
    uint32_t abi;     /* BL_DEVICE_BACKEND_ABI the backend was built with */
    uint32_t size;    /* sizeof(bl_device_backend) at build time; fields only appended */
    const char *name; /* "cpu", "cuda": what bl_device_open is given, before any ":N" */
    const char *version; /* free text for messages, e.g. "1.0 (CUDA 12.4)"; may be NULL */

    /* Is the backend usable on this machine? BL_OK, or BL_EUNSUPPORTED with a short reason
     * written to why[0..cap) ("no driver", "no device", "driver 535 too old"): the host reports
     * it and does not call count or open. Called before every open; must not crash where the
     * hardware or driver is missing. */
    int (*probe)(char *why, size_t cap);
    /* How many devices open accepts (indices 0..count−1); called after a successful probe. */
    int (*count)(void);
    /* Opens device `index`. `threads` is the host-thread hint (0 = the backend's default; the
     * CPU backend's kernel threads). The backend fills every field of its bl_device that
     * device.h marks as the backend's (ops, kind, index, caps, host_threads, impl) and leaves
     * the accounting fields zero. On success *out is released with destroy; on error *out is
     * untouched and the message is in ctx. */
    int (*open)(bl_ctx *ctx, int index, int threads, bl_device **out);
    /* Frees a device from open. Every allocation on it has been released. */
    void (*destroy)(bl_device *dev);
} bl_device_backend;

typedef const bl_device_backend *(*bl_device_backend_entry)(void);

/* Records an asynchronous fault on `dev` (a kernel or copy that failed where its caller could
 * not be told): the first fault sticks, later ones are dropped. bl_device_status, synchronize,
 * the copies and every other int-returning device call report it from then on. Safe to call
 * from any thread. `code` is a negative BL_E… code. */
BL_EXPORT void bl_device_fault(bl_device *dev, int code, const char *fmt, ...) BL_PRINTF(3, 4);

#ifdef __cplusplus
}
#endif
#endif

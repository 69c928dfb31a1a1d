/* batchlab — memory for large arrays, for the host and for plugins (plugin_sdk.h includes it).
 *
 * On Linux, a page fault per 4 KiB page makes filling fresh memory slow, and very slow in
 * a virtual machine (~30 µs a fault measured on the 2-core VM of docs/performance figures:
 * 32 MB in 4 KiB pages took 0.24 s, in 2 MiB pages 3–7 ms). Large arrays are therefore
 * placed so that the kernel can back them with transparent huge pages.
 */
#ifndef BATCHLAB_MEMORY_H
#define BATCHLAB_MEMORY_H

#include <stddef.h>

#include "batchlab/error.h" /* BL_EXPORT */

#ifdef __cplusplus
extern "C" {
#endif

/* Memory for n bytes (n may be 0), aligned to 64 bytes, released with free(); NULL when there
 * is not enough (or n is absurd). From 2 MiB on it is aligned to 2 MiB, rounded up to a
 * multiple of it and advised to use transparent huge pages (madvise MADV_HUGEPAGE, where the
 * system has it; harmless where it does not): filling it then costs a page fault per 2 MiB
 * instead of per 4 KiB, and random reads miss the TLB less. The contents are undefined. */
BL_EXPORT void *bl_alloc_large(size_t n);

#ifdef __cplusplus
}
#endif

#endif

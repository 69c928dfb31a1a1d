/* bl_alloc_large (batchlab/memory.h). */
#define _DEFAULT_SOURCE 1 /* madvise, MADV_HUGEPAGE */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "batchlab/memory.h"

void *bl_alloc_large(size_t n)
{
    const size_t line = 64, huge = (size_t)2 << 20;
    if (n > SIZE_MAX - huge)
        return NULL;
    if (n < huge)
        return aligned_alloc(line, n > 0 ? (n + line - 1) / line * line : line);
    size_t cap = (n + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, cap);
#if defined(MADV_HUGEPAGE)
    if (p)
        madvise(p, cap, MADV_HUGEPAGE); /* advice: a kernel without THP ignores it */
#endif
    return p;
}

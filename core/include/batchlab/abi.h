/* batchlab — the size rule of structs that cross the plugin boundary.
 *
 * Such a struct begins with `uint32_t size`, set by the side that writes the struct to the
 * sizeof it was compiled with; fields are only ever appended (within one BL_PLUGIN_ABI, see
 * plugin.h). The reader reads a field only when the writer's size says it is there.
 */
#ifndef BATCHLAB_ABI_H
#define BATCHLAB_ABI_H

#include <stddef.h>

/* True when *p (a struct of `type` whose first field is `uint32_t size`) is long enough to
 * hold `field`, by the size its writer recorded. */
#define BL_HAS_FIELD(p, type, field)                                                         \
    ((size_t)(p)->size >= offsetof(type, field) + sizeof(((type *)0)->field))

#endif

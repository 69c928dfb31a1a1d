/* Internal: helpers shared by the layer files and the net. */
#ifndef BATCHLAB_NN_INTERNAL_H
#define BATCHLAB_NN_INTERNAL_H

#include <stddef.h>

#include "batchlab/nn.h"

/* True when a bl_layer_ops of this `size` has `field` (fields are only ever appended). */
#define BL__OPS_HAS(ops, field)                                                                \
    ((ops)->size >= offsetof(bl_layer_ops, field) + sizeof((ops)->field))

/* The per-sample shape [n] (unused dims set to 1). */
static inline bl_shape bl__shape1(int64_t n)
{
    bl_shape s = {1, {n, 1, 1}};
    return s;
}

#endif

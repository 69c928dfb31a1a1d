/* Internal: helpers shared by the layer files and the net. */
#ifndef BATCHLAB_NN_INTERNAL_H
#define BATCHLAB_NN_INTERNAL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchlab/error.h"
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

/* Checks a layer constructor's size argument: lo ≤ v ≤ 2^31−1 (kernels index with int32).
 * BL_EINVAL naming the constructor and the argument otherwise. */
static inline int bl__check_size(bl_ctx *ctx, const char *fn, const char *arg, int64_t v,
                                 int64_t lo)
{
    if (v < lo || v > INT32_MAX)
        return bl_error(ctx, BL_EINVAL, "%s: %s must be in %" PRId64 "..2^31-1, got %" PRId64,
                        fn, arg, lo, v);
    return BL_OK;
}

/* Built-in layer types whose backward never reads the layer's own output (its `out`
 * argument), so that a ReLU after one may compute in place over that output (net.c). */
extern const bl_layer_ops bl__linear_ops, bl__conv2d_ops, bl__batchnorm_ops, bl__maxpool2d_ops;

/* Whether `layer` is the built-in ReLU (bl_activation_layer with BL_ACT_RELU). */
bool bl__layer_is_relu(const bl_layer *layer);

#endif

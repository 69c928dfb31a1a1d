/* Flatten: [C, H, W] (or [F]) samples become [C·H·W]. The output is the input reinterpreted
 * (alias_input), so the net gives it no buffer and nothing is copied; forward and backward only
 * copy when called directly with distinct buffers. */
#include "nn_internal.h"

static int flatten_setup(bl_layer *self, bl_ctx *ctx)
{
    self->out = bl__shape1(bl_shape_numel(&self->in));
    self->alias_input = true;
    return BL_OK;
}

static int flatten_forward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool training,
                           const float *in, float *out)
{
    if (out != in)
        self->dev->ops->copy(self->dev, out, in,
                             (size_t)(batch * bl_shape_numel(&self->in)) * sizeof(float));
    return BL_OK;
}

static int flatten_backward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool accumulate,
                            const float *in, const float *out, const float *d_out, float *d_in)
{
    if (d_in && d_in != d_out)
        self->dev->ops->copy(self->dev, d_in, d_out,
                             (size_t)(batch * bl_shape_numel(&self->in)) * sizeof(float));
    return BL_OK;
}

static const bl_layer_ops flatten_ops = {
    .size = sizeof(bl_layer_ops),
    .kind = "flatten",
    .setup = flatten_setup,
    .forward = flatten_forward,
    .backward = flatten_backward,
};

int bl_flatten(bl_ctx *ctx, bl_layer **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_flatten: out is NULL");
    return bl_layer_new(ctx, &flatten_ops, NULL, NULL, out);
}

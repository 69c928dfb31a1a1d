/* Inverted dropout: in training each value is kept with probability 1 − p and scaled by
 * 1/(1 − p); in evaluation the layer is the identity. The mask comes from a counter-based hash
 * of (layer seed, counter), so it is the same on every device and every run. */
#include <stdlib.h>

#include "nn_internal.h"

typedef struct dropout_impl {
    float p;
} dropout_impl;

static int dropout_setup(bl_layer *self, bl_ctx *ctx)
{
    self->out = self->in;
    self->ws_per_sample = (size_t)bl_shape_numel(&self->in); /* the mask */
    return BL_OK;
}

static int dropout_forward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool training,
                           const float *in, float *out)
{
    const dropout_impl *d = self->impl;
    int64_t n = batch * bl_shape_numel(&self->in);
    if (training && d->p > 0.0f) {
        self->dev->ops->dropout_forward(self->dev, n, d->p, self->seed, self->counter, in,
                                        self->ws, out);
        self->counter += (uint64_t)n;
    } else {
        self->dev->ops->copy(self->dev, out, in, (size_t)n * sizeof(float));
    }
    return BL_OK;
}

static int dropout_backward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool accumulate,
                            const float *in, const float *out, const float *d_out, float *d_in)
{
    const dropout_impl *d = self->impl;
    if (!d_in)
        return BL_OK;
    int64_t n = batch * bl_shape_numel(&self->in);
    if (d->p > 0.0f)
        self->dev->ops->mul(self->dev, n, d_out, self->ws, d_in);
    else
        self->dev->ops->copy(self->dev, d_in, d_out, (size_t)n * sizeof(float));
    return BL_OK;
}

static void dropout_destroy(bl_layer *self)
{
    free(self->impl);
}

static const bl_layer_ops dropout_ops = {
    .size = sizeof(bl_layer_ops),
    .kind = "dropout",
    .setup = dropout_setup,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .destroy = dropout_destroy,
};

int bl_dropout(bl_ctx *ctx, float p, bl_layer **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_dropout: out is NULL");
    if (!(p >= 0.0f && p < 1.0f))
        return bl_error(ctx, BL_EINVAL, "bl_dropout: p must be in [0, 1), got %g", (double)p);
    dropout_impl *d = malloc(sizeof *d);
    if (!d)
        return bl_error(ctx, BL_ENOMEM, "bl_dropout: out of memory");
    d->p = p;
    return bl_layer_new(ctx, &dropout_ops, d, NULL, out);
}

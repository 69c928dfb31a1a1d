/* bl_maxpool2d — max pooling over k×k windows with a stride, no padding, floor mode.
 *
 * Input [C, H, W] per sample, output [C, out_h, out_w], out = (in − kernel) / stride + 1.
 * No parameters, no state.
 *
 * Scratch: ws_per_sample = C·out_h·out_w slots holding the argmax of each output as int32 bits
 * (the ws block is float-typed; an int32 and a float have the same size, so slot j of sample n
 * is ((int32_t *)ws)[n·C·out_h·out_w + j]). Each argmax is the winner's index inside its own
 * [H, W] input plane (ih·W + iw), as the device's maxpool kernels define it. Forward writes it
 * in training and in evaluation alike; backward scatters d_out to those winners.
 */
#include "batchlab/nn.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

#include "nn_internal.h"

_Static_assert(sizeof(int32_t) == sizeof(float), "argmax slots reuse float scratch");

typedef struct maxpool2d {
    int64_t kernel, stride;
    bl_window2d win; /* set by setup */
} maxpool2d;

static const char *layer_name(const bl_layer *self)
{
    return self->name[0] ? self->name : "maxpool2d";
}

static int maxpool2d_setup(bl_layer *self, bl_ctx *ctx)
{
    maxpool2d *mp = self->impl;
    char shape[64];
    bl_shape_format(&self->in, shape, sizeof shape);
    if (self->in.ndim != 3)
        return bl_error(ctx, BL_ESHAPE,
                        "layer %s (maxpool2d): input %s is not an image [C, H, W]",
                        layer_name(self), shape);
    const int64_t C = self->in.dim[0], H = self->in.dim[1], W = self->in.dim[2];
    if (C < 1 || H < 1 || W < 1 || C > INT32_MAX || H > INT32_MAX / W)
        return bl_error(ctx, BL_ESHAPE,
                        "layer %s (maxpool2d): input %s has an empty dimension or a plane over "
                        "2^31 values",
                        layer_name(self), shape);
    if (H < mp->kernel || W < mp->kernel)
        return bl_error(ctx, BL_ESHAPE,
                        "layer %s (maxpool2d): kernel %" PRId64 "x%" PRId64
                        " is larger than the input %s",
                        layer_name(self), mp->kernel, mp->kernel, shape);
    bl_window2d *w = &mp->win;
    w->channels = C;
    w->height = H;
    w->width = W;
    w->kernel_h = w->kernel_w = mp->kernel;
    w->stride_h = w->stride_w = mp->stride;
    w->pad_h = w->pad_w = 0;
    w->out_h = (H - mp->kernel) / mp->stride + 1;
    w->out_w = (W - mp->kernel) / mp->stride + 1;
    self->out.ndim = 3;
    self->out.dim[0] = C;
    self->out.dim[1] = w->out_h;
    self->out.dim[2] = w->out_w;
    self->n_state = 0;
    self->ws_per_sample = (size_t)(C * w->out_h * w->out_w);
    self->ws_fixed = 0;
    self->alias_input = false;
    return BL_OK;
}

static int maxpool2d_forward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool training,
                             const float *in, float *out)
{
    (void)ctx;
    (void)training;
    const maxpool2d *mp = self->impl;
    int32_t *argmax = (int32_t *)(void *)self->ws; /* [batch, C, out_h, out_w] */
    self->dev->ops->maxpool_forward(self->dev, &mp->win, batch, in, out, argmax);
    return BL_OK;
}

static int maxpool2d_backward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool accumulate,
                              const float *in, const float *out, const float *d_out,
                              float *d_in)
{
    (void)ctx;
    (void)accumulate;
    (void)in;
    (void)out;
    if (!d_in)
        return BL_OK;
    const maxpool2d *mp = self->impl;
    const int32_t *argmax = (const int32_t *)(const void *)self->ws;
    self->dev->ops->maxpool_backward(self->dev, &mp->win, batch, d_out, argmax, d_in);
    return BL_OK;
}

static void maxpool2d_destroy(bl_layer *self)
{
    free(self->impl);
}

const bl_layer_ops bl__maxpool2d_ops = {
    .size = sizeof(bl_layer_ops),
    .kind = "maxpool2d",
    .setup = maxpool2d_setup,
    .forward = maxpool2d_forward,
    .backward = maxpool2d_backward,
    .destroy = maxpool2d_destroy,
};

int bl_maxpool2d(bl_ctx *ctx, int64_t kernel, int64_t stride, bl_layer **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_maxpool2d: out is NULL");
    int rc = bl__check_size(ctx, "bl_maxpool2d", "kernel", kernel, 1);
    if (rc == BL_OK)
        rc = bl__check_size(ctx, "bl_maxpool2d", "stride", stride, 1);
    if (rc != BL_OK)
        return rc;
    maxpool2d *mp = calloc(1, sizeof *mp);
    if (!mp)
        return bl_error(ctx, BL_ENOMEM, "bl_maxpool2d: out of memory");
    mp->kernel = kernel;
    mp->stride = stride;
    return bl_layer_new(ctx, &bl__maxpool2d_ops, mp, NULL, out);
}

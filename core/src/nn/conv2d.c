/* bl_conv2d — 2-D convolution by im2col and a GEMM per image, the whole batch in one device call.
 *
 * Input [C, H, W] per sample, output [O, out_h, out_w] with out = (in + 2·padding − kernel) /
 * stride + 1. Parameters, in declaration order:
 *   weight [O, C·k·k]   (row o is filter o laid out as [C, k, k]; decay)
 *   bias   [O]          (optional; no decay)
 * Both initialized U(−1/sqrt(fan_in), +1/sqrt(fan_in)), fan_in = C·k·k, as PyTorch does, drawn
 * from the init rng in that order.
 *
 * The layer calls the device's conv2d_forward / conv2d_backward once per batch (see
 * batchlab/device.h); the CPU splits the batch across its threads by fixed slots of images.
 * Scratch: ws_fixed = slots · (K·P + O·K) floats, slots = max(CONV_SLOTS, the device's host
 * threads): per slot one image's column matrix and one partial weight gradient. Forward does
 * not keep the columns; backward recomputes them (an im2col is cheap next to the GEMMs, and a
 * per-sample copy would cost k·k times the input's memory at large batch sizes). A 1×1
 * convolution with stride 1 and no padding needs no columns: the image [C, H·W] already is its
 * column matrix. A device whose op table lacks the batch ops (NULL) gets the per-image loop
 * below, one im2col and GEMM call per image. (The CPU backend convolves layers with few input
 * channels directly, without columns: see core/src/device/cpu/cpu_conv_direct.h.)
 *
 * Per image n, with K = C·k·k and P = out_h·out_w:
 *   forward   cols[K, P] = im2col(x_n);  y_n[O, P] = weight[O, K] · cols;  y += bias
 *   backward  dweight[O, K] (+)= d_out_n[O, P] · colsᵀ;   dbias[O] (+)= Σ_{n,p} d_out
 *             cols = weightᵀ · d_out_n;  d_in_n = 0;  col2im(cols) += into d_in_n
 * The weight gradient is summed per slot and the slots' sums added in slot order, so its
 * rounding depends on the slot count (fixed for up to CONV_SLOTS threads), not on the threads.
 */
#include "batchlab/nn.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "nn_internal.h"

/* Slots a batch is cut into at least (see the top): results are the same on any device with up
 * to this many threads. */
#define CONV_SLOTS 8

typedef struct conv2d {
    int64_t out_channels, kernel, stride, padding;
    bool bias;
    bl_window2d win; /* set by setup */
    int64_t k_dim;   /* K = C·k·k */
    int64_t p_dim;   /* P = out_h·out_w */
    bool direct;     /* 1×1, stride 1, padding 0: no im2col */
    int64_t slots;   /* scratch slots for the device's batch ops */
} conv2d;

static const char *layer_name(const bl_layer *self)
{
    return self->name[0] ? self->name : "conv2d";
}

static int conv2d_setup(bl_layer *self, bl_ctx *ctx)
{
    conv2d *cv = self->impl;
    char shape[64];
    bl_shape_format(&self->in, shape, sizeof shape);
    if (self->in.ndim != 3)
        return bl_error(ctx, BL_ESHAPE,
                        "layer %s (conv2d): input %s is not an image [C, H, W]; conv2d needs "
                        "one (put it before any flatten or linear layer)",
                        layer_name(self), shape);
    const int64_t C = self->in.dim[0], H = self->in.dim[1], W = self->in.dim[2];
    if (C < 1 || H < 1 || W < 1 || C > INT32_MAX || H > INT32_MAX || W > INT32_MAX)
        return bl_error(ctx, BL_ESHAPE,
                        "layer %s (conv2d): input %s has a dimension outside 1..2^31-1",
                        layer_name(self), shape);
    const int64_t k = cv->kernel, s = cv->stride, p = cv->padding;
    if (H + 2 * p < k || W + 2 * p < k)
        return bl_error(ctx, BL_ESHAPE,
                        "layer %s (conv2d): kernel %" PRId64 "x%" PRId64
                        " is larger than the input %s padded by %" PRId64 " (%" PRId64
                        "x%" PRId64 ")",
                        layer_name(self), k, k, shape, p, H + 2 * p, W + 2 * p);

    bl_window2d *w = &cv->win;
    w->channels = C;
    w->height = H;
    w->width = W;
    w->kernel_h = w->kernel_w = k;
    w->stride_h = w->stride_w = s;
    w->pad_h = w->pad_w = p;
    w->out_h = (H + 2 * p - k) / s + 1;
    w->out_w = (W + 2 * p - k) / s + 1;
    cv->k_dim = C * k * k;
    cv->p_dim = w->out_h * w->out_w;
    cv->direct = k == 1 && s == 1 && p == 0;

    /* BLAS takes int dimensions; one image's column matrix and output must fit. */
    if (cv->k_dim > INT32_MAX / cv->p_dim || cv->out_channels > INT32_MAX / cv->p_dim ||
        cv->out_channels > INT32_MAX / cv->k_dim || C * H * W > INT32_MAX)
        return bl_error(ctx, BL_ESHAPE,
                        "layer %s (conv2d): input %s with %" PRId64 " output channels and "
                        "kernel %" PRId64 " is too large (over 2^31 values per image)",
                        layer_name(self), shape, cv->out_channels, k);

    self->out.ndim = 3;
    self->out.dim[0] = cv->out_channels;
    self->out.dim[1] = w->out_h;
    self->out.dim[2] = w->out_w;
    int rc = bl_layer_declare_param(self, ctx, "weight", (size_t)(cv->out_channels * cv->k_dim),
                                    true, cv->k_dim);
    if (rc == BL_OK && cv->bias)
        rc = bl_layer_declare_param(self, ctx, "bias", (size_t)cv->out_channels, false,
                                    cv->k_dim);
    if (rc != BL_OK)
        return rc;
    self->n_state = 0;
    self->ws_per_sample = 0;
    cv->slots = self->dev && self->dev->host_threads > CONV_SLOTS ? self->dev->host_threads
                                                                   : CONV_SLOTS;
    self->ws_fixed =
        (size_t)(cv->slots * (cv->k_dim * cv->p_dim + cv->out_channels * cv->k_dim));
    self->alias_input = false;
    return BL_OK;
}

static void conv2d_init(bl_layer *self, float *params, float *state, bl_rng *rng)
{
    (void)state;
    const conv2d *cv = self->impl;
    const double bound = 1.0 / sqrt((double)cv->k_dim);
    for (int t = 0; t < self->n_param_tensors; t++) {
        float *p = params + self->param[t].offset;
        for (size_t i = 0; i < self->param[t].count; i++)
            p[i] = (float)((2.0 * bl_rng_uniform(rng) - 1.0) * bound);
    }
}

/* The per-image path, for a device without the batch ops: one im2col and GEMM call per image;
 * cols [K, P] is the first part of the scratch. */
static void forward_per_image(const conv2d *cv, bl_device *dev, int64_t batch, const float *in,
                              const float *weight, float *cols, float *out)
{
    const bl_device_ops *op = dev->ops;
    const int64_t O = cv->out_channels, K = cv->k_dim, P = cv->p_dim;
    const int64_t in_n = cv->win.channels * cv->win.height * cv->win.width;
    for (int64_t n = 0; n < batch; n++) {
        const float *src = in + n * in_n; /* [C, H, W] = [K, P] when direct */
        if (!cv->direct) {
            op->im2col(dev, &cv->win, src, cols);
            src = cols;
        }
        op->gemm(dev, false, false, O, P, K, 1.0f, weight, K, src, P, 0.0f, out + n * O * P, P);
    }
}

static void backward_per_image(const conv2d *cv, bl_device *dev, int64_t batch, bool accumulate,
                               const float *in, const float *weight, const float *d_out,
                               float *cols, float *d_weight, float *d_in)
{
    const bl_device_ops *op = dev->ops;
    const int64_t O = cv->out_channels, K = cv->k_dim, P = cv->p_dim;
    const int64_t in_n = cv->win.channels * cv->win.height * cv->win.width;
    if (d_in && !cv->direct)
        op->fill(dev, batch * in_n, 0.0f, d_in);
    for (int64_t n = 0; n < batch; n++) {
        const float *dy = d_out + n * O * P; /* [O, P] */
        const float *src = in + n * in_n;    /* [K, P] when direct */
        if (!cv->direct) {
            op->im2col(dev, &cv->win, src, cols);
            src = cols;
        }
        const float beta = (n == 0 && !accumulate) ? 0.0f : 1.0f;
        op->gemm(dev, false, true, O, K, P, 1.0f, dy, P, src, P, beta, d_weight, K);
        if (!d_in)
            continue;
        if (cv->direct) {
            op->gemm(dev, true, false, K, P, O, 1.0f, weight, K, dy, P, 0.0f, d_in + n * in_n, P);
        } else {
            op->gemm(dev, true, false, K, P, O, 1.0f, weight, K, dy, P, 0.0f, cols, P);
            op->col2im(dev, &cv->win, cols, d_in + n * in_n);
        }
    }
}

static int conv2d_forward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool training,
                          const float *in, float *out)
{
    (void)ctx;
    (void)training;
    const conv2d *cv = self->impl;
    bl_device *dev = self->dev;
    const bl_device_ops *op = dev->ops;
    const float *weight = self->params + self->param[0].offset; /* [O, K] */
    const float *bias = cv->bias ? self->params + self->param[1].offset : NULL; /* [O] */
    float *scratch = self->ws; /* slots·(K·P + O·K) */
    if (op->conv2d_forward) {
        op->conv2d_forward(dev, &cv->win, cv->out_channels, batch, in, weight, bias, out,
                           cv->slots, scratch);
        return BL_OK;
    }
    forward_per_image(cv, dev, batch, in, weight, scratch, out);
    if (bias)
        op->add_channel_bias(dev, batch, cv->out_channels, cv->p_dim, bias, out);
    return BL_OK;
}

static int conv2d_backward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool accumulate,
                           const float *in, const float *out, const float *d_out, float *d_in)
{
    (void)ctx;
    (void)out;
    const conv2d *cv = self->impl;
    bl_device *dev = self->dev;
    const bl_device_ops *op = dev->ops;
    const float *weight = self->params + self->param[0].offset; /* [O, K] */
    float *d_weight = self->grads + self->param[0].offset;      /* [O, K] */
    float *scratch = self->ws;                                  /* slots·(K·P + O·K) */
    if (op->conv2d_backward)
        op->conv2d_backward(dev, &cv->win, cv->out_channels, batch, in, weight, d_out,
                            accumulate ? 1.0f : 0.0f, d_weight, d_in, cv->slots, scratch);
    else
        backward_per_image(cv, dev, batch, accumulate, in, weight, d_out, scratch, d_weight,
                           d_in);
    if (cv->bias)
        op->sum_channels(dev, batch, cv->out_channels, cv->p_dim, d_out, accumulate ? 1.0f : 0.0f,
                         self->grads + self->param[1].offset);
    return BL_OK;
}

static void conv2d_destroy(bl_layer *self)
{
    free(self->impl);
}

const bl_layer_ops bl__conv2d_ops = {
    .size = sizeof(bl_layer_ops),
    .kind = "conv2d",
    .setup = conv2d_setup,
    .init = conv2d_init,
    .forward = conv2d_forward,
    .backward = conv2d_backward,
    .destroy = conv2d_destroy,
};

int bl_conv2d(bl_ctx *ctx, int64_t out_channels, int64_t kernel, int64_t stride,
              int64_t padding, bool bias, bl_layer **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_conv2d: out is NULL");
    int rc = bl__check_size(ctx, "bl_conv2d", "out_channels", out_channels, 1);
    if (rc == BL_OK)
        rc = bl__check_size(ctx, "bl_conv2d", "kernel", kernel, 1);
    if (rc == BL_OK)
        rc = bl__check_size(ctx, "bl_conv2d", "stride", stride, 1);
    if (rc == BL_OK)
        rc = bl__check_size(ctx, "bl_conv2d", "padding", padding, 0);
    if (rc != BL_OK)
        return rc;
    conv2d *cv = calloc(1, sizeof *cv);
    if (!cv)
        return bl_error(ctx, BL_ENOMEM, "bl_conv2d: out of memory");
    cv->out_channels = out_channels;
    cv->kernel = kernel;
    cv->stride = stride;
    cv->padding = padding;
    cv->bias = bias;
    return bl_layer_new(ctx, &bl__conv2d_ops, cv, NULL, out);
}

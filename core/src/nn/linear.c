/* Linear (fully connected) layer, PyTorch layout: y[B × out] = x[B × in] · Wᵀ + b,
 * W [out × in] row-major, b [out]. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "nn_internal.h"

typedef struct linear_impl {
    int64_t out_features;
    bool bias;
} linear_impl;

static int linear_setup(bl_layer *self, bl_ctx *ctx)
{
    const linear_impl *li = self->impl;
    char buf[64];
    if (self->in.ndim != 1)
        return bl_error(ctx, BL_ESHAPE,
                        "layer %s (linear): expects a [features] input, got %s; add a flatten "
                        "layer before it",
                        self->name, bl_shape_format(&self->in, buf, sizeof buf));
    int64_t in_f = self->in.dim[0];
    if ((uint64_t)in_f > SIZE_MAX / sizeof(float) / (uint64_t)li->out_features)
        return bl_error(ctx, BL_EINVAL, "layer %s (linear): %" PRId64 " × %" PRId64
                        " weights are too many", self->name, li->out_features, in_f);
    self->out = bl__shape1(li->out_features);
    int rc = bl_layer_declare_param(self, ctx, "weight", (size_t)(li->out_features * in_f), true,
                                    in_f);
    if (rc == BL_OK && li->bias)
        rc = bl_layer_declare_param(self, ctx, "bias", (size_t)li->out_features, false, in_f);
    return rc;
}

/* PyTorch's reset_parameters: kaiming_uniform_(a = √5) gives W ~ U(±1/√fan_in), and the
 * bias ~ U(±1/√fan_in); weights first, then bias. */
static void linear_init(bl_layer *self, float *params, float *state, bl_rng *rng)
{
    for (int t = 0; t < self->n_param_tensors; t++) {
        const bl_param_info *p = &self->param[t];
        float bound = (float)(1.0 / sqrt((double)p->fan_in));
        float *w = params + p->offset;
        for (size_t i = 0; i < p->count; i++)
            w[i] = (2.0f * bl_rng_uniform(rng) - 1.0f) * bound;
    }
}

static int linear_forward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool training,
                          const float *in, float *out)
{
    const linear_impl *li = self->impl;
    const bl_device_ops *ops = self->dev->ops;
    int64_t in_f = self->in.dim[0], out_f = li->out_features;
    const float *w = self->params;                     /* [out × in] */
    ops->gemm(self->dev, false, true, batch, out_f, in_f, 1.0f, in, in_f, w, in_f, 0.0f, out,
              out_f);
    if (li->bias)
        ops->add_bias(self->dev, batch, out_f, self->params + self->param[1].offset, out);
    return BL_OK;
}

static int linear_backward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool accumulate,
                           const float *in, const float *out, const float *d_out, float *d_in)
{
    const linear_impl *li = self->impl;
    const bl_device_ops *ops = self->dev->ops;
    int64_t in_f = self->in.dim[0], out_f = li->out_features;
    float beta = accumulate ? 1.0f : 0.0f;
    /* dW[out × in] (=/+=) d_outᵀ[out × B] · in[B × in] */
    ops->gemm(self->dev, true, false, out_f, in_f, batch, 1.0f, d_out, out_f, in, in_f, beta,
              self->grads, in_f);
    /* db[out] (=/+=) Σ_rows d_out */
    if (li->bias)
        ops->sum_rows(self->dev, batch, out_f, d_out, beta,
                      self->grads + self->param[1].offset);
    /* d_in[B × in] = d_out[B × out] · W[out × in] */
    if (d_in)
        ops->gemm(self->dev, false, false, batch, in_f, out_f, 1.0f, d_out, out_f,
                  self->params, in_f, 0.0f, d_in, in_f);
    return BL_OK;
}

static void linear_destroy(bl_layer *self)
{
    free(self->impl);
}

const bl_layer_ops bl__linear_ops = {
    .size = sizeof(bl_layer_ops),
    .kind = "linear",
    .setup = linear_setup,
    .init = linear_init,
    .forward = linear_forward,
    .backward = linear_backward,
    .destroy = linear_destroy,
};

int bl_linear(bl_ctx *ctx, int64_t out_features, bool bias, bl_layer **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_linear: out is NULL");
    if (out_features < 1)
        return bl_error(ctx, BL_EINVAL,
                        "bl_linear: out_features must be at least 1, got %" PRId64,
                        out_features);
    linear_impl *li = malloc(sizeof *li);
    if (!li)
        return bl_error(ctx, BL_ENOMEM, "bl_linear: out of memory");
    li->out_features = out_features;
    li->bias = bias;
    return bl_layer_new(ctx, &bl__linear_ops, li, NULL, out);
}

/* bl_batchnorm — batch normalization, optionally over ghost batches.
 *
 * Input [F] → channels = F, inner = 1; input [C, H, W] → channels = C, inner = H·W. A batch is
 * then the block [batch, channels, inner] and statistics are per channel. Output = input shape.
 *   params  gamma [channels] (init 1, no decay), beta [channels] (init 0, no decay)
 *   state   running_mean [channels] (init 0), then running_var [channels] (init 1)
 *
 * Training: y = (x − mean)/sqrt(var + eps)·gamma + beta with the batch's mean and biased
 * variance; running statistics follow PyTorch (momentum m: running = (1 − m)·running + m·batch,
 * the running variance with the unbiased batch variance). Evaluation: the running statistics.
 *
 * Ghost batch norm (Hoffer et al. 2017): with ghost_batch = g > 0 a training batch is cut into
 * consecutive sub-batches of g samples (samples 0..g−1, g..2g−1, …; the last one is shorter
 * when g does not divide the batch, and is normalized on its own). Each sub-batch is normalized
 * with its own statistics and updates the running statistics once, in order, exactly as if it
 * had been a batch of its own (as common ghost-BN implementations do: the running mean after
 * a batch of k sub-batches has absorbed k momentum steps). g = 0, or g ≥ batch, is plain batch
 * norm. Evaluation ignores g.
 *
 * A (sub-)batch with one value per channel (one sample of an [F] input) has no variance: its
 * output is beta and it updates the running mean but not the running variance (PyTorch refuses
 * such a batch in training; here a ghost batch's short tail may be one sample).
 *
 * Scratch (ws), per training forward of `batch` samples with n_sub = ceil(batch/g) sub-batches:
 *   ws[2·channels·j ..]            mean of sub-batch j     [channels]
 *   ws[2·channels·j + channels ..] invstd of sub-batch j   [channels]
 * which 2·channels (ws_fixed) + ceil(2·channels/g) per sample always covers.
 *
 * Backward without d_in (the first trainable layer of a net) computes only dgamma and dbeta:
 * the device's bn_backward accepts dx = NULL for that.
 */
#include "batchlab/nn.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct batchnorm {
    float momentum, eps;
    int64_t ghost_batch;
    int64_t channels, inner; /* set by setup */
} batchnorm;

static const char *layer_name(const bl_layer *self)
{
    return self->name[0] ? self->name : "batchnorm";
}

/* Samples per sub-batch for a training batch. */
static int64_t sub_batch(const batchnorm *bn, int64_t batch)
{
    return bn->ghost_batch > 0 && bn->ghost_batch < batch ? bn->ghost_batch : batch;
}

static int batchnorm_setup(bl_layer *self, bl_ctx *ctx)
{
    batchnorm *bn = self->impl;
    char shape[64];
    bl_shape_format(&self->in, shape, sizeof shape);
    if (self->in.ndim == 1) {
        bn->channels = self->in.dim[0];
        bn->inner = 1;
    } else if (self->in.ndim == 3) {
        bn->channels = self->in.dim[0];
        bn->inner = self->in.dim[1] * self->in.dim[2];
    } else {
        return bl_error(ctx, BL_ESHAPE,
                        "layer %s (batchnorm): input %s is neither [F] nor [C, H, W]",
                        layer_name(self), shape);
    }
    for (int d = 0; d < self->in.ndim; d++)
        if (self->in.dim[d] < 1 || self->in.dim[d] > INT32_MAX)
            return bl_error(ctx, BL_ESHAPE,
                            "layer %s (batchnorm): input %s has a dimension outside 1..2^31-1",
                            layer_name(self), shape);
    const int64_t C = bn->channels;
    self->out = self->in;
    int rc = bl_layer_declare_param(self, ctx, "gamma", (size_t)C, false, 0);
    if (rc == BL_OK)
        rc = bl_layer_declare_param(self, ctx, "beta", (size_t)C, false, 0);
    if (rc != BL_OK)
        return rc;
    self->n_state = (size_t)(2 * C);
    self->ws_fixed = (size_t)(2 * C);
    self->ws_per_sample =
        bn->ghost_batch > 0 ? (size_t)((2 * C + bn->ghost_batch - 1) / bn->ghost_batch) : 0;
    self->alias_input = false;
    return BL_OK;
}

static void batchnorm_init(bl_layer *self, float *params, float *state, bl_rng *rng)
{
    (void)rng;
    const batchnorm *bn = self->impl;
    float *gamma = params + self->param[0].offset, *beta = params + self->param[1].offset;
    for (int64_t c = 0; c < bn->channels; c++) {
        gamma[c] = 1.0f;
        beta[c] = 0.0f;
        state[c] = 0.0f;                /* running_mean */
        state[bn->channels + c] = 1.0f; /* running_var */
    }
}

static int batchnorm_forward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool training,
                             const float *in, float *out)
{
    (void)ctx;
    const batchnorm *bn = self->impl;
    bl_device *dev = self->dev;
    const int64_t C = bn->channels, inner = bn->inner, sample = C * inner;
    const float *gamma = self->params + self->param[0].offset; /* [C] */
    const float *beta = self->params + self->param[1].offset;  /* [C] */
    float *running_mean = self->state, *running_var = self->state + C;

    if (!training) {
        dev->ops->bn_forward_eval(dev, batch, C, inner, in, gamma, beta, bn->eps, running_mean,
                                  running_var, out);
        return BL_OK;
    }
    const int64_t g = sub_batch(bn, batch);
    for (int64_t s = 0, j = 0; s < batch; s += g, j++) {
        const int64_t nb = batch - s < g ? batch - s : g;
        float *mean = self->ws + 2 * C * j, *invstd = mean + C;
        dev->ops->bn_forward_train(dev, nb, C, inner, in + s * sample, gamma, beta, bn->eps,
                                   bn->momentum, running_mean, running_var, mean, invstd,
                                   out + s * sample);
    }
    return BL_OK;
}

static int batchnorm_backward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool accumulate,
                              const float *in, const float *out, const float *d_out,
                              float *d_in)
{
    (void)ctx;
    (void)out;
    const batchnorm *bn = self->impl;
    bl_device *dev = self->dev;
    const int64_t C = bn->channels, inner = bn->inner, sample = C * inner;
    const float *gamma = self->params + self->param[0].offset;
    float *d_gamma = self->grads + self->param[0].offset; /* [C] */
    float *d_beta = self->grads + self->param[1].offset;  /* [C] */
    const int64_t g = sub_batch(bn, batch);
    if (!accumulate) {
        dev->ops->fill(dev, C, 0.0f, d_gamma);
        dev->ops->fill(dev, C, 0.0f, d_beta);
    }
    for (int64_t s = 0, j = 0; s < batch; s += g, j++) {
        const int64_t nb = batch - s < g ? batch - s : g;
        const float *mean = self->ws + 2 * C * j, *invstd = mean + C;
        dev->ops->bn_backward(dev, nb, C, inner, in + s * sample, gamma, mean, invstd,
                              d_out + s * sample, d_in ? d_in + s * sample : NULL, d_gamma,
                              d_beta);
    }
    return BL_OK;
}

static void batchnorm_destroy(bl_layer *self)
{
    free(self->impl);
}

const bl_layer_ops bl__batchnorm_ops = {
    .size = sizeof(bl_layer_ops),
    .kind = "batchnorm",
    .setup = batchnorm_setup,
    .init = batchnorm_init,
    .forward = batchnorm_forward,
    .backward = batchnorm_backward,
    .destroy = batchnorm_destroy,
};

int bl_batchnorm(bl_ctx *ctx, float momentum, float eps, int64_t ghost_batch, bl_layer **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_batchnorm: out is NULL");
    if (!(momentum >= 0.0f && momentum <= 1.0f))
        return bl_error(ctx, BL_EINVAL, "bl_batchnorm: momentum must be in [0, 1], got %g",
                        (double)momentum);
    if (!(eps > 0.0f) || isinf(eps))
        return bl_error(ctx, BL_EINVAL, "bl_batchnorm: eps must be a positive number, got %g",
                        (double)eps);
    if (ghost_batch < 0 || ghost_batch > INT32_MAX)
        return bl_error(ctx, BL_EINVAL,
                        "bl_batchnorm: ghost_batch must be 0 (off) or a batch size in 1..2^31-1, "
                        "got %" PRId64,
                        ghost_batch);
    batchnorm *bn = calloc(1, sizeof *bn);
    if (!bn)
        return bl_error(ctx, BL_ENOMEM, "bl_batchnorm: out of memory");
    bn->momentum = momentum;
    bn->eps = eps;
    bn->ghost_batch = ghost_batch;
    return bl_layer_new(ctx, &bl__batchnorm_ops, bn, NULL, out);
}

/* tiny_mlp — an example model plugin for batchlab, built out of tree.
 *
 * It shows the two ways a model plugin builds a network: with the built-in layers of
 * batchlab/nn.h (flatten, linear) and with a layer type of its own, here a leaky ReLU,
 * y = x for x > 0 and y = slope·x otherwise, written against the device operations so that it
 * runs wherever the network runs (CPU or GPU).
 *
 * Options: hidden (integer list, widths of the hidden layers) and slope (number, the leaky
 * ReLU's slope for negative inputs, 0 ≤ slope < 1).
 */
#include <stdlib.h>

#include <batchlab/plugin_sdk.h>

/* ---- a custom layer: leaky ReLU --------------------------------------------------------------
 * No parameters and no scratch: forward and backward only need the input, the output and the
 * slope, which lives in the layer's impl. Elementwise over batch × features values, using
 *   leaky(x)  = (1 − slope)·relu(x) + slope·x
 *   leaky'(x) = (1 − slope)·relu'(x) + slope          (slope ≥ 0, so x > 0 ⇔ y > 0)
 */
typedef struct leaky {
    float slope;
} leaky;

static int leaky_setup(bl_layer *self, bl_ctx *ctx)
{
    self->out = self->in; /* elementwise: same shape, no parameters */
    return BL_OK;
}

static int leaky_forward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool training,
                         const float *in, float *out)
{
    const leaky *l = self->impl;
    const bl_device_ops *op = self->dev->ops;
    int64_t n = batch * bl_shape_numel(&self->in);
    op->act_forward(self->dev, BL_ACT_RELU, n, in, out); /* out = relu(in) */
    op->scale(self->dev, n, 1.0f - l->slope, out);       /* out *= 1 − slope */
    op->axpy(self->dev, n, l->slope, in, out);           /* out += slope·in */
    return BL_OK;
}

/* d_in is written (=), as for every layer; there are no parameter gradients. */
static int leaky_backward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool accumulate,
                          const float *in, const float *out, const float *d_out, float *d_in)
{
    if (!d_in)
        return BL_OK; /* first layer: nobody needs the input gradient */
    const leaky *l = self->impl;
    const bl_device_ops *op = self->dev->ops;
    int64_t n = batch * bl_shape_numel(&self->in);
    op->act_backward(self->dev, BL_ACT_RELU, n, in, out, d_out, d_in); /* d_in = d_out·relu' */
    op->scale(self->dev, n, 1.0f - l->slope, d_in);
    op->axpy(self->dev, n, l->slope, d_out, d_in);                     /* += slope·d_out */
    return BL_OK;
}

static void leaky_destroy(bl_layer *self)
{
    free(self->impl);
}

static const bl_layer_ops leaky_ops = {
    .size = sizeof(bl_layer_ops),
    .kind = "leaky_relu",
    .setup = leaky_setup,
    .forward = leaky_forward,
    .backward = leaky_backward,
    .destroy = leaky_destroy,
};

/* A new leaky ReLU layer for bl_net_add. */
static int leaky_new(bl_ctx *ctx, float slope, bl_layer **out)
{
    leaky *l = malloc(sizeof *l);
    if (!l)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    l->slope = slope;
    return bl_layer_new(ctx, &leaky_ops, l, NULL, out); /* owns l from here on, even on error */
}

/* ---- the model ------------------------------------------------------------------------------ */

/* Adds the layers to `net` (empty; its input is info->sample). Errors name the option. */
static int tiny_build(bl_ctx *ctx, const bl_config *opts, const bl_data_info *info,
                      bl_net *net)
{
    size_t n_hidden;
    const int64_t *hidden = bl_config_int_list(opts, "hidden", &n_hidden);
    double slope = bl_config_number(opts, "slope");
    if (slope < 0 || slope >= 1)
        return bl_error(ctx, BL_EOPTION, "option 'slope' must be in [0, 1), got %g", slope);
    for (size_t i = 0; i < n_hidden; i++)
        if (hidden[i] < 1)
            return bl_error(ctx, BL_EOPTION, "option 'hidden': width %zu is %lld (must be >= 1)",
                            i + 1, (long long)hidden[i]);

    bl_layer *layer;
    int rc;
    if (info->sample.ndim != 1) { /* images: one feature vector per sample */
        if ((rc = bl_flatten(ctx, &layer)) || (rc = bl_net_add(ctx, net, layer)))
            return rc;
    }
    for (size_t i = 0; i < n_hidden; i++) {
        if ((rc = bl_linear(ctx, hidden[i], true, &layer)) || (rc = bl_net_add(ctx, net, layer)))
            return rc;
        if ((rc = leaky_new(ctx, (float)slope, &layer)) || (rc = bl_net_add(ctx, net, layer)))
            return rc;
    }
    /* The last layer is sized from the data: classes for classification, else targets. */
    int64_t outputs = info->classes >= 2 ? info->classes : info->target_dim;
    if ((rc = bl_linear(ctx, outputs, true, &layer)) || (rc = bl_net_add(ctx, net, layer)))
        return rc;
    return BL_OK;
}

static const bl_option tiny_options[] = {
    {"hidden", BL_TYPE_INT_LIST, "64", "widths of the hidden layers"},
    {"slope", BL_TYPE_NUMBER, "0.01", "leaky ReLU slope for negative inputs, in [0, 1)"},
    {NULL, 0, NULL, NULL},
};

static const bl_model_ops tiny_ops = {sizeof tiny_ops, tiny_build};

static const bl_plugin tiny_plugin = {
    BL_PLUGIN_ABI,
    sizeof(bl_plugin),
    BL_PLUGIN_MODEL,
    "tiny_mlp",
    "1.0",
    "a small MLP with its own leaky ReLU layer (example plugin)",
    tiny_options,
    &tiny_ops,
};

/* The entry symbol: one descriptor per index, NULL after the last. */
BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index);

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &tiny_plugin : NULL;
}

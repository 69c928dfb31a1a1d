/* Model "cnn": a configurable convolutional network for image samples [C, H, W].
 *
 * Layers, for each entry c of `channels` (conv i, counted from 1):
 *     conv2d(c, kernel × kernel, stride 1, padding_i) → [batchnorm] → activation
 *     → maxpool(pool × pool, stride pool)   after every `pool_every`-th conv and after the last
 * except that a ReLU followed by a pool runs after it: max-pooling commutes with ReLU (the
 * same outputs up to the sign of a zero, the same winners wherever the gradient is not zero),
 * and the ReLU then passes over a pool²-th of the values.
 * then flatten and, for each width w of `fc`:
 *     linear(w) → [batchnorm] → activation → [dropout]
 * and finally linear(outputs): classes (classification) or target_dim (regression).
 * Every conv and linear layer has a bias. Dropout is applied only in the fully connected part.
 *
 * Defaults adapt to the input through `preset` ("auto" picks by the channel count):
 *
 *   lenet (auto for 1-channel inputs; designed for 1×28×28 MNIST / Fashion-MNIST), LeNet-5
 *   style: channels 6,16; kernel 5; padding "same" for the first conv and "valid" for the
 *   rest (2 then 0 with kernel 5); pool_every 1; fc 120,84. On 1×28×28 with 10 classes:
 *       conv 6@5×5 pad 2 → pool 2 → relu   [6, 14, 14]     156 parameters
 *       conv 16@5×5      → pool 2 → relu   [16, 5, 5]    2,416
 *       flatten 400 → fc 120 → relu                      48,120
 *                   → fc 84  → relu                      10,164
 *                   → 10                                    850   (61,706 in all)
 *
 *   vgg (auto for inputs with 2 or more channels; designed for 3×32×32 CIFAR-10), a small
 *   VGG-style net: channels 32,32,64,64,128; kernel 3; padding "same" (1); pool_every 2 (so
 *   pools follow convs 2, 4 and 5); fc 256. On 3×32×32 with 10 classes: conv 32,32 → pool
 *   [32,16,16] → conv 64,64 → pool [64,8,8] → conv 128 → pool [128,4,4] → flatten 2048 →
 *   fc 256 → 10; 666,538 parameters.
 *
 * Every option given explicitly overrides the preset's value; the "from the preset" values
 * are the empty list (channels, fc), the empty string (padding) and 0 (kernel, pool_every).
 * `fc = 0` asks for no hidden fully connected layer. `padding` is "same" (odd kernels:
 * (kernel − 1)/2), "valid" (0), a number, or a comma-separated list with one of those per
 * conv layer ("same,valid").
 *
 * A sample that is not [C, H, W] is an error (flat feature vectors: use the mlp model), and so
 * is an image too small for the convolutions and poolings asked for (the message names the
 * layer and the input shape).
 */
#include "model_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const bl_option cnn_options[] = {
    {"preset", BL_TYPE_STRING, "auto",
     "defaults for the options left unset: auto (lenet for 1 channel, else vgg), lenet, vgg"},
    {"channels", BL_TYPE_INT_LIST, "",
     "output channels of each conv layer (empty: from the preset)"},
    {"kernel", BL_TYPE_INT, "0", "square kernel size of every conv (0: from the preset)"},
    {"padding", BL_TYPE_STRING, "",
     "same, valid, N, or one per conv (\"same,valid\"); empty: from the preset"},
    {"pool", BL_TYPE_INT, "2", "max-pool window and stride (0 or 1: no pooling)"},
    {"pool_every", BL_TYPE_INT, "0",
     "a max-pool after every N-th conv and after the last (0: from the preset)"},
    {"fc", BL_TYPE_INT_LIST, "",
     "widths of the hidden fully connected layers (empty: from the preset; 0: none)"},
    {"activation", BL_TYPE_STRING, "relu", "activation: relu, tanh, sigmoid or gelu"},
    {"batch_norm", BL_TYPE_BOOL, "false",
     "batch normalization between each conv/hidden linear layer and its activation"},
    {"ghost_batch", BL_TYPE_INT, "0",
     "ghost batch norm: normalize over sub-batches of this many samples (0 = whole batch)"},
    {"bn_momentum", BL_TYPE_NUMBER, "0.1",
     "batch-norm running-statistics momentum in (0, 1] (PyTorch convention)"},
    {"dropout", BL_TYPE_NUMBER, "0",
     "dropout probability after each hidden fully connected activation, [0, 1)"},
    {NULL, 0, NULL, NULL}};

/* ---- presets -------------------------------------------------------------------------------- */

typedef enum { PRESET_LENET = 0, PRESET_VGG = 1 } cnn_preset;

static const int64_t lenet_channels[] = {6, 16};
static const int64_t lenet_fc[] = {120, 84};
static const int64_t vgg_channels[] = {32, 32, 64, 64, 128};
static const int64_t vgg_fc[] = {256};

/* The resolved architecture: preset values with the explicit options laid over them. */
typedef struct cnn_plan {
    const int64_t *channels;
    size_t n_conv;
    int64_t kernel;
    int64_t pool, pool_every;
    const int64_t *fc;
    size_t n_fc;
    int64_t *padding; /* [n_conv], malloc'd */
} cnn_plan;

/* ---- padding -------------------------------------------------------------------------------- */

#define PAD_SAME (-1)

/* Parses one padding entry [s, e): "same" → PAD_SAME, "valid" → 0, or a number ≥ 0. */
static int parse_pad_entry(bl_ctx *ctx, const char *s, const char *e, size_t index,
                           int64_t *out)
{
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    size_t len = (size_t)(e - s);
    if (len == 4 && strncmp(s, "same", 4) == 0) {
        *out = PAD_SAME;
        return BL_OK;
    }
    if (len == 5 && strncmp(s, "valid", 5) == 0) {
        *out = 0;
        return BL_OK;
    }
    char buf[32];
    if (len > 0 && len < sizeof buf) {
        memcpy(buf, s, len);
        buf[len] = '\0';
        char *end = NULL;
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (errno == 0 && *end == '\0' && isdigit((unsigned char)buf[0]) && v <= INT32_MAX) {
            *out = v;
            return BL_OK;
        }
    }
    return bl_error(ctx, BL_EOPTION,
                    "option 'padding': entry %zu ('%.*s') must be same, valid or a number ≥ 0",
                    index + 1, (int)(len > 40 ? 40 : len), s);
}

/* Fills plan->padding from the option text, or from the preset when the text is empty. */
static int resolve_padding(bl_ctx *ctx, const char *text, cnn_preset preset, cnn_plan *plan)
{
    const size_t n = plan->n_conv;
    if (!text || !*text) {
        for (size_t i = 0; i < n; i++)
            plan->padding[i] = preset == PRESET_LENET && i > 0 ? 0 : PAD_SAME;
    } else {
        size_t entries = 1;
        for (const char *p = text; *p; p++)
            entries += *p == ',';
        if (entries != 1 && entries != n)
            return bl_error(ctx, BL_EOPTION,
                            "option 'padding' has %zu entries but there are %zu conv layers; "
                            "give one value for all or one per conv layer",
                            entries, n);
        const char *s = text;
        for (size_t i = 0; i < entries; i++) {
            const char *e = strchr(s, ',');
            if (!e)
                e = s + strlen(s);
            int rc = parse_pad_entry(ctx, s, e, i, &plan->padding[i]);
            if (rc)
                return rc;
            s = *e ? e + 1 : e;
        }
        for (size_t i = entries; i < n; i++)
            plan->padding[i] = plan->padding[0];
    }
    for (size_t i = 0; i < n; i++) {
        if (plan->padding[i] != PAD_SAME)
            continue;
        if (plan->kernel % 2 == 0)
            return bl_error(ctx, BL_EOPTION,
                            "option 'padding': same padding needs an odd kernel, got kernel "
                            "%" PRId64 "; give the padding as a number",
                            plan->kernel);
        plan->padding[i] = (plan->kernel - 1) / 2;
    }
    return BL_OK;
}

/* ---- the plan ------------------------------------------------------------------------------- */

static int make_plan(bl_ctx *ctx, const bl_config *opts, const bl_data_info *info,
                     cnn_plan *plan)
{
    const char *name = bl_config_string(opts, "preset");
    cnn_preset preset;
    if (name && strcmp(name, "auto") == 0)
        preset = info->sample.dim[0] == 1 ? PRESET_LENET : PRESET_VGG;
    else if (name && strcmp(name, "lenet") == 0)
        preset = PRESET_LENET;
    else if (name && strcmp(name, "vgg") == 0)
        preset = PRESET_VGG;
    else
        return bl_error(ctx, BL_EOPTION, "option 'preset' must be auto, lenet or vgg, got '%s'",
                        name ? name : "");
    const bool lenet = preset == PRESET_LENET;

    plan->channels = bl_config_int_list(opts, "channels", &plan->n_conv);
    if (plan->n_conv == 0) {
        plan->channels = lenet ? lenet_channels : vgg_channels;
        plan->n_conv = lenet ? 2 : 5;
    }
    int rc = bl_model_check_widths(ctx, "channels", plan->channels, plan->n_conv);
    if (rc)
        return rc;

    plan->kernel = bl_config_int(opts, "kernel");
    if (plan->kernel < 0 || plan->kernel > INT32_MAX)
        return bl_error(ctx, BL_EOPTION,
                        "option 'kernel' must be ≥ 1 (0: from the preset), got %" PRId64,
                        plan->kernel);
    if (plan->kernel == 0)
        plan->kernel = lenet ? 5 : 3;

    plan->pool = bl_config_int(opts, "pool");
    if (plan->pool < 0 || plan->pool > INT32_MAX)
        return bl_error(ctx, BL_EOPTION,
                        "option 'pool' must be ≥ 0 (0 or 1: no pooling), got %" PRId64,
                        plan->pool);
    plan->pool_every = bl_config_int(opts, "pool_every");
    if (plan->pool_every < 0)
        return bl_error(ctx, BL_EOPTION,
                        "option 'pool_every' must be ≥ 1 (0: from the preset), got %" PRId64,
                        plan->pool_every);
    if (plan->pool_every == 0)
        plan->pool_every = lenet ? 1 : 2;

    plan->fc = bl_config_int_list(opts, "fc", &plan->n_fc);
    if (plan->n_fc == 0) {
        plan->fc = lenet ? lenet_fc : vgg_fc;
        plan->n_fc = lenet ? 2 : 1;
    } else if (plan->n_fc == 1 && plan->fc[0] == 0) {
        plan->n_fc = 0; /* fc = 0: no hidden fully connected layer */
    } else if ((rc = bl_model_check_widths(ctx, "fc", plan->fc, plan->n_fc))) {
        return rc;
    }

    plan->padding = malloc(plan->n_conv * sizeof *plan->padding);
    if (!plan->padding)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    return resolve_padding(ctx, bl_config_string(opts, "padding"), preset, plan);
}

/* ---- build ---------------------------------------------------------------------------------- */

static int add_layers(bl_ctx *ctx, const cnn_plan *plan, const bl_model_hidden *h,
                      int64_t outputs, bl_net *net)
{
    int rc = BL_OK;
    for (size_t i = 0; !rc && i < plan->n_conv; i++) {
        const bool pool_here = plan->pool > 1 && ((i + 1) % (size_t)plan->pool_every == 0 ||
                                                  i + 1 == plan->n_conv);
        const bool relu_late = pool_here && h->act == BL_ACT_RELU; /* see the top */
        rc = bl_model_add_conv(ctx, net, plan->channels[i], plan->kernel, plan->padding[i],
                               true);
        if (!rc)
            rc = relu_late ? bl_model_add_batchnorm(ctx, net, h)
                           : bl_model_add_post(ctx, net, h, false);
        if (!rc && pool_here)
            rc = bl_model_add_maxpool(ctx, net, plan->pool);
        if (!rc && relu_late)
            rc = bl_model_add_activation(ctx, net, h->act);
    }
    if (!rc)
        rc = bl_model_add_flatten(ctx, net);
    for (size_t i = 0; !rc && i < plan->n_fc; i++) {
        rc = bl_model_add_linear(ctx, net, plan->fc[i], true);
        if (!rc)
            rc = bl_model_add_post(ctx, net, h, true);
    }
    if (!rc)
        rc = bl_model_add_linear(ctx, net, outputs, true);
    return rc;
}

static int cnn_build(bl_ctx *ctx, const bl_config *opts, const bl_data_info *info, bl_net *net)
{
    char shape[64];
    bl_shape_format(&info->sample, shape, sizeof shape);
    if (info->sample.ndim != 3)
        return bl_error(ctx, BL_ESHAPE,
                        "sample shape %s is not an image [C, H, W]; the cnn model needs images "
                        "(for flat feature vectors use the mlp model)",
                        shape);

    int64_t outputs = 0;
    bl_model_hidden h = {0};
    cnn_plan plan = {0};
    int rc = bl_model_outputs(ctx, info, &outputs);
    if (!rc)
        rc = bl_model_read_hidden(ctx, opts, &h);
    if (!rc)
        rc = make_plan(ctx, opts, info, &plan);
    if (!rc) {
        rc = add_layers(ctx, &plan, &h, outputs, net);
        if (rc == BL_ESHAPE)
            bl_error_prefix(ctx, "input %s", shape);
    }
    free(plan.padding);
    return rc;
}

static const bl_model_ops cnn_ops = {sizeof(bl_model_ops), cnn_build};

static const bl_plugin cnn_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_MODEL, "cnn", "1.0",
    "convolutional net; defaults: LeNet-5 style for 1×28×28, small VGG style for 3×32×32",
    cnn_options, &cnn_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &cnn_plugin : NULL;
}

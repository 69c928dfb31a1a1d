/* Model "mlp": a multilayer perceptron on the flattened input.
 *
 * Layers: flatten, then for each width w of `hidden`:
 *     linear(w) → [batchnorm] → activation → [dropout]
 * and finally linear(outputs), where outputs = classes (classification) or target_dim
 * (regression). Batch norm (option batch_norm; ghost_batch > 0 normalizes over sub-batches of
 * that many samples, Hoffer et al. 2017) sits between the linear layer and its activation, as
 * in Ioffe & Szegedy; dropout follows the activation and is only added when dropout > 0.
 * Every linear layer has a bias (kept with batch norm too, as PyTorch's nn.Linear does, so the
 * parameter count does not depend on batch_norm other than by γ and β).
 *
 * An empty `hidden` list gives the same network as logreg.
 */
#include "model_util.h"

static const bl_option mlp_options[] = {
    {"hidden", BL_TYPE_INT_LIST, "256,128", "widths of the hidden layers, input side first"},
    {"activation", BL_TYPE_STRING, "relu", "hidden activation: relu, tanh, sigmoid or gelu"},
    {"batch_norm", BL_TYPE_BOOL, "false",
     "batch normalization between each hidden linear layer and its activation"},
    {"ghost_batch", BL_TYPE_INT, "0",
     "ghost batch norm: normalize over sub-batches of this many samples (0 = whole batch)"},
    {"bn_momentum", BL_TYPE_NUMBER, "0.1",
     "batch-norm running-statistics momentum in (0, 1] (PyTorch convention)"},
    {"dropout", BL_TYPE_NUMBER, "0", "dropout probability after each hidden activation, [0, 1)"},
    {NULL, 0, NULL, NULL}};

static int mlp_build(bl_ctx *ctx, const bl_config *opts, const bl_data_info *info, bl_net *net)
{
    int64_t outputs = 0;
    bl_model_hidden h = {0};
    size_t n_hidden = 0;
    const int64_t *hidden = bl_config_int_list(opts, "hidden", &n_hidden);
    int rc = bl_model_outputs(ctx, info, &outputs);
    if (!rc)
        rc = bl_model_read_hidden(ctx, opts, &h);
    if (!rc)
        rc = bl_model_check_widths(ctx, "hidden", hidden, n_hidden);
    if (!rc)
        rc = bl_model_add_flatten(ctx, net);
    for (size_t i = 0; !rc && i < n_hidden; i++) {
        rc = bl_model_add_linear(ctx, net, hidden[i], true);
        if (!rc)
            rc = bl_model_add_post(ctx, net, &h, true);
    }
    if (!rc)
        rc = bl_model_add_linear(ctx, net, outputs, true);
    return rc;
}

static const bl_model_ops mlp_ops = {sizeof(bl_model_ops), mlp_build};

static const bl_plugin mlp_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_MODEL, "mlp", "1.0",
    "multilayer perceptron: linear → [batchnorm] → activation → [dropout] per hidden layer",
    mlp_options, &mlp_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &mlp_plugin : NULL;
}

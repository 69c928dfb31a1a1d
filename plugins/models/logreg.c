/* Model "logreg": multinomial logistic regression (softmax over one linear layer) for
 * classification, or linear regression when the data has float targets.
 *
 * Layers: flatten → linear(outputs). `outputs` is the data's class count (classes ≥ 2; the
 * host adds softmax cross-entropy) or its target_dim (regression; the host adds MSE).
 * Parameters: numel(sample) · outputs weights, plus `outputs` biases when `bias` is true.
 */
#include "model_util.h"

static const bl_option logreg_options[] = {
    {"bias", BL_TYPE_BOOL, "true", "learn a bias per output"},
    {NULL, 0, NULL, NULL}};

static int logreg_build(bl_ctx *ctx, const bl_config *opts, const bl_data_info *info,
                        bl_net *net)
{
    int64_t outputs = 0;
    int rc = bl_model_outputs(ctx, info, &outputs);
    if (!rc)
        rc = bl_model_add_flatten(ctx, net);
    if (!rc)
        rc = bl_model_add_linear(ctx, net, outputs, bl_config_bool(opts, "bias"));
    return rc;
}

static const bl_model_ops logreg_ops = {sizeof(bl_model_ops), logreg_build};

static const bl_plugin logreg_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_MODEL, "logreg", "1.0",
    "logistic (softmax) regression: one linear layer on the flattened input",
    logreg_options, &logreg_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &logreg_plugin : NULL;
}

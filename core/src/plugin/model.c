/* Building a model plugin's network (see batchlab/model.h). */
#include "batchlab/model.h"

#include <inttypes.h>
#include <stdio.h>

#include "plugin/plugin_internal.h"

/* bl_net_on_free callback: the net's layers (possibly code of the plugin) are gone. */
static void release_plugin(void *plugin)
{
    bl_plugin_release(plugin);
}

/* The output the data calls for: [classes] for classification, target_dim values otherwise. */
static int check_output(bl_ctx *ctx, const char *owner, const bl_net *net,
                        const bl_data_info *info)
{
    const bl_shape *o = bl_net_output_shape(net);
    char shape[64];
    bl_shape_format(o, shape, sizeof shape);
    if (info->classes >= 2) {
        if (o->ndim != 1 || o->dim[0] != info->classes)
            return bl_error(ctx, BL_ESHAPE,
                            "%s: the network's output is %s but the data has %" PRId64
                            " classes; size the last layer from info->classes",
                            owner, shape, info->classes);
    } else if (bl_shape_numel(o) != info->target_dim) {
        return bl_error(ctx, BL_ESHAPE,
                        "%s: the network's output is %s but the data's targets have %" PRId64
                        " values; size the last layer from info->target_dim",
                        owner, shape, info->target_dim);
    }
    return BL_OK;
}

int bl_model_build(bl_ctx *ctx, const bl_plugin *plugin, const bl_config *opts,
                   const bl_data_info *info, bl_device *dev, uint64_t seed, bl_net **out)
{
    if (!info || !dev || !out)
        return bl_error(ctx, BL_EINVAL, "bl_model_build: NULL data info, device or out");
    int rc = bl__plugin_expect(ctx, plugin, BL_PLUGIN_MODEL);
    if (rc)
        return rc;
    char owner[96];
    snprintf(owner, sizeof owner, "model %s", plugin->name);
    const bl_model_ops *ops = plugin->ops;

    bl_config *valid = NULL;
    rc = bl_config_validate(ctx, opts, plugin->options, owner, &valid);
    if (rc)
        return rc;
    bl_net *net = NULL;
    rc = bl_net_new(ctx, dev, &info->sample, &net);
    if (rc) {
        bl_config_free(valid);
        return bl_error_prefix(ctx, "%s", owner);
    }
    /* From here on the net keeps the shared object loaded, and bl_net_free lets it go after
     * the layers (whose code may live in it) are destroyed. */
    bl_plugin_retain(plugin);
    rc = bl_net_on_free(ctx, net, release_plugin, (void *)plugin);
    if (rc) {
        bl_net_free(net);
        bl_plugin_release(plugin);
        bl_config_free(valid);
        return bl_error_prefix(ctx, "%s", owner);
    }
    /* The plugin sees the host's size whoever filled *info (a dataset, a test, Lua). */
    bl_data_info host_info = *info;
    host_info.size = (uint32_t)sizeof host_info;
    bl_clear_error(ctx);
    rc = ops->build(ctx, valid, &host_info, net);
    if (rc)
        rc = bl__plugin_failed(ctx, rc, owner, "build");
    if (rc == BL_OK)
        rc = check_output(ctx, owner, net, info);
    if (rc == BL_OK) {
        bl_loss_kind loss = info->classes >= 2 ? BL_LOSS_CROSS_ENTROPY : BL_LOSS_MSE;
        rc = bl_net_build(ctx, net, loss, seed);
        if (rc)
            bl_error_prefix(ctx, "%s", owner);
    }
    bl_config_free(valid);
    if (rc) {
        bl_net_free(net);
        return rc;
    }
    *out = net;
    return BL_OK;
}

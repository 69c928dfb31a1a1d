/* batchlab — model plugins and building a model's network.
 *
 * A model plugin adds layers to an empty network whose input is the dataset's sample shape;
 * it sizes its last layer from the data: `classes` outputs for classification, `target_dim`
 * for regression. It may use the built-in layers of nn.h or its own layer types.
 */
#ifndef BATCHLAB_MODEL_H
#define BATCHLAB_MODEL_H

#include <stdint.h>

#include "batchlab/config.h"
#include "batchlab/dataset.h"
#include "batchlab/device.h"
#include "batchlab/error.h"
#include "batchlab/nn.h"
#include "batchlab/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Operation table of a model plugin; `size` = sizeof(bl_model_ops) at build time. */
typedef struct bl_model_ops {
    uint32_t size;
    /* Adds the layers for `opts` (validated) and the data described by `info` to `net`
     * (empty, input = info->sample). Errors name the option or shape that does not fit. */
    int (*build)(bl_ctx *ctx, const bl_config *opts, const bl_data_info *info, bl_net *net);
} bl_model_ops;

/* Validates `opts` (may be NULL) against the plugin's options, creates a network on `dev`,
 * lets the plugin add its layers (it sees a copy of *info whose `size` is the host's; callers
 * need not set it), and builds it with the loss the data calls for
 * (cross-entropy when info->classes ≥ 2, MSE otherwise) and weights from `seed`. The plugin's
 * shared object stays loaded while the network exists. On success *out is freed with
 * bl_net_free. Errors are prefixed with "model NAME: ". */
BL_EXPORT int bl_model_build(bl_ctx *ctx, const bl_plugin *plugin, const bl_config *opts,
                             const bl_data_info *info, bl_device *dev, uint64_t seed,
                             bl_net **out);

#ifdef __cplusplus
}
#endif
#endif

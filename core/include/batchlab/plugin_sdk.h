/* batchlab — everything a plugin includes, and the only batchlab header it needs.
 *
 *     #include <batchlab/plugin_sdk.h>
 *
 * What it provides:
 *   plugin.h     the descriptor (bl_plugin), BL_PLUGIN_ABI, BL_PLUGIN_EXPORT, the entry symbol
 *   abi.h        BL_HAS_FIELD, the size rule of structs that cross the boundary
 *   config.h     option declarations (bl_option) and the getters of a validated bl_config
 *   error.h      bl_ctx, BL_E… codes, bl_error / bl_error_prefix / bl_log
 *   memory.h     bl_alloc_large: large arrays in huge pages
 *   model.h      bl_model_ops                    (model plugins)
 *   nn.h         layers: built-in constructors, bl_layer_new for a custom layer type, bl_net_add;
 *                through it device.h (a layer computes with self->dev->ops) and rng.h
 *   dataset.h    bl_dataset_ops, bl_data_info     (dataset plugins)
 *   scheduler.h  bl_scheduler_ops, bl_train_state (scheduler plugins)
 * A plugin links libbatchlab (libbatchlab.so.BL_PLUGIN_ABI) and calls only functions declared
 * by these headers; docs/plugins.md states the ABI rules.
 */
#ifndef BATCHLAB_PLUGIN_SDK_H
#define BATCHLAB_PLUGIN_SDK_H

#include "batchlab/abi.h"
#include "batchlab/config.h"
#include "batchlab/dataset.h"
#include "batchlab/error.h"
#include "batchlab/memory.h"
#include "batchlab/model.h"
#include "batchlab/nn.h"
#include "batchlab/plugin.h"
#include "batchlab/scheduler.h"

#endif

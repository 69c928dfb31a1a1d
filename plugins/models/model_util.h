/* Helpers shared by the built-in model plugins (logreg.c, mlp.c, cnn.c). Private to this
 * directory: each plugin still builds as its own shared object, so everything here is
 * `static inline` and compiled into each one.
 *
 * Messages follow the host's convention: bl_model_build prefixes "model NAME: ", so the
 * plugins write only what comes after it ("option 'dropout' must be in [0, 1), got 1.5"). */
#ifndef BATCHLAB_PLUGINS_MODEL_UTIL_H
#define BATCHLAB_PLUGINS_MODEL_UTIL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>

#include "batchlab/plugin_sdk.h"

/* Every plugin file defines the entry symbol; declared here for -Wmissing-prototypes. */
BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index);

#define BL_MODEL_BN_EPS 1e-5f

/* The width of the output layer: `classes` for classification (classes ≥ 2), `target_dim`
 * for regression (classes 0). */
static inline int bl_model_outputs(bl_ctx *ctx, const bl_data_info *info, int64_t *out)
{
    if (info->classes >= 2) {
        *out = info->classes;
        return BL_OK;
    }
    if (info->classes == 0 && info->target_dim >= 1) {
        *out = info->target_dim;
        return BL_OK;
    }
    return bl_error(ctx, BL_ESHAPE,
                    "the data has %" PRId64 " classes and target_dim %" PRId64
                    "; expected classes ≥ 2 (classification) or classes 0 with target_dim ≥ 1 "
                    "(regression)",
                    info->classes, info->target_dim);
}

/* ---- options shared by mlp and cnn ---------------------------------------------------------- */

/* The hidden-layer options of mlp and cnn, read and checked once. */
typedef struct bl_model_hidden {
    bl_activation act;
    bool batch_norm;
    int64_t ghost_batch;
    float bn_momentum;
    float dropout;
} bl_model_hidden;

static inline int bl_model_read_hidden(bl_ctx *ctx, const bl_config *opts, bl_model_hidden *h)
{
    const char *act = bl_config_string(opts, "activation");
    if (!act || bl_activation_parse(ctx, act, &h->act) != BL_OK)
        return bl_error(ctx, BL_EOPTION,
                        "option 'activation' must be one of relu, tanh, sigmoid, gelu, got '%s'",
                        act ? act : "");
    double p = bl_config_number(opts, "dropout");
    if (!(p >= 0.0 && p < 1.0))
        return bl_error(ctx, BL_EOPTION, "option 'dropout' must be in [0, 1), got %g", p);
    h->dropout = (float)p;
    h->batch_norm = bl_config_bool(opts, "batch_norm");
    double m = bl_config_number(opts, "bn_momentum");
    if (!(m > 0.0 && m <= 1.0))
        return bl_error(ctx, BL_EOPTION, "option 'bn_momentum' must be in (0, 1], got %g", m);
    h->bn_momentum = (float)m;
    h->ghost_batch = bl_config_int(opts, "ghost_batch");
    if (h->ghost_batch < 0)
        return bl_error(ctx, BL_EOPTION,
                        "option 'ghost_batch' must be ≥ 0 (0 = the whole batch), got %" PRId64,
                        h->ghost_batch);
    if (h->ghost_batch > 0 && !h->batch_norm)
        return bl_error(ctx, BL_EOPTION,
                        "option 'ghost_batch' (%" PRId64 ") needs batch_norm = true",
                        h->ghost_batch);
    return BL_OK;
}

/* Checks that every entry of an integer-list option is ≥ 1. */
static inline int bl_model_check_widths(bl_ctx *ctx, const char *option, const int64_t *v,
                                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] < 1 || v[i] > INT32_MAX)
            return bl_error(ctx, BL_EOPTION,
                            "option '%s': entry %zu must be in 1..2^31-1, got %" PRId64, option,
                            i + 1, v[i]);
    return BL_OK;
}

/* ---- adding layers: create, then hand to the net (which owns it even when adding fails) --- */

static inline int bl_model_add_linear(bl_ctx *ctx, bl_net *net, int64_t out, bool bias)
{
    bl_layer *l = NULL;
    int rc = bl_linear(ctx, out, bias, &l);
    return rc ? rc : bl_net_add(ctx, net, l);
}

static inline int bl_model_add_flatten(bl_ctx *ctx, bl_net *net)
{
    bl_layer *l = NULL;
    int rc = bl_flatten(ctx, &l);
    return rc ? rc : bl_net_add(ctx, net, l);
}

static inline int bl_model_add_activation(bl_ctx *ctx, bl_net *net, bl_activation act)
{
    bl_layer *l = NULL;
    int rc = bl_activation_layer(ctx, act, &l);
    return rc ? rc : bl_net_add(ctx, net, l);
}

static inline int bl_model_add_conv(bl_ctx *ctx, bl_net *net, int64_t channels, int64_t kernel,
                                    int64_t padding, bool bias)
{
    bl_layer *l = NULL;
    int rc = bl_conv2d(ctx, channels, kernel, 1, padding, bias, &l);
    return rc ? rc : bl_net_add(ctx, net, l);
}

static inline int bl_model_add_maxpool(bl_ctx *ctx, bl_net *net, int64_t size)
{
    bl_layer *l = NULL;
    int rc = bl_maxpool2d(ctx, size, size, &l);
    return rc ? rc : bl_net_add(ctx, net, l);
}

/* A batchnorm layer when the options ask for one. */
static inline int bl_model_add_batchnorm(bl_ctx *ctx, bl_net *net, const bl_model_hidden *h)
{
    if (!h->batch_norm)
        return BL_OK;
    bl_layer *bn = NULL;
    int rc = bl_batchnorm(ctx, h->bn_momentum, BL_MODEL_BN_EPS, h->ghost_batch, &bn);
    return rc ? rc : bl_net_add(ctx, net, bn);
}

/* The part after a hidden linear or conv layer: [batchnorm] → activation → [dropout]. */
static inline int bl_model_add_post(bl_ctx *ctx, bl_net *net, const bl_model_hidden *h,
                                    bool dropout)
{
    int rc;
    if ((rc = bl_model_add_batchnorm(ctx, net, h)))
        return rc;
    if ((rc = bl_model_add_activation(ctx, net, h->act)))
        return rc;
    if (dropout && h->dropout > 0.0f) {
        bl_layer *d = NULL;
        rc = bl_dropout(ctx, h->dropout, &d);
        if (rc || (rc = bl_net_add(ctx, net, d)))
            return rc;
    }
    return BL_OK;
}

#endif

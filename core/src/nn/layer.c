/* Layers: creation of a layer from its operations, parameter declaration, and sample shapes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/tensor.h"
#include "nn_internal.h"

int64_t bl_shape_numel(const bl_shape *s)
{
    if (!s || s->ndim < 1 || s->ndim > 3)
        return 0;
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= s->dim[i];
    return n;
}

char *bl_shape_format(const bl_shape *s, char *buf, size_t cap)
{
    if (!s || s->ndim < 0 || s->ndim > 3) {
        if (buf && cap)
            snprintf(buf, cap, "[?]");
        return buf;
    }
    return bl_shape_str(s->dim, s->ndim, buf, cap);
}

/* Gives `impl` to ops->destroy through a stand-in layer, for the error paths of bl_layer_new. */
static void destroy_orphan(const bl_layer_ops *ops, void *impl)
{
    if (ops && BL__OPS_HAS(ops, destroy) && ops->destroy) {
        bl_layer tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.size = (uint32_t)sizeof tmp;
        tmp.ops = ops;
        tmp.impl = impl;
        ops->destroy(&tmp);
    }
}

int bl_layer_new(bl_ctx *ctx, const bl_layer_ops *ops, void *impl, const char *name,
                 bl_layer **out)
{
    const char *why = NULL;
    if (!ops)
        why = "ops is NULL";
    else if (!BL__OPS_HAS(ops, backward))
        why = "ops->size is too small (set it to sizeof(bl_layer_ops))";
    else if (!ops->kind || !ops->setup || !ops->forward || !ops->backward)
        why = "ops needs kind, setup, forward and backward";
    else if (!out)
        why = "out is NULL";
    else if (name && strlen(name) >= sizeof(((bl_layer *)0)->name))
        why = "name is longer than 47 characters";
    if (why) {
        destroy_orphan(ops, impl);
        return bl_error(ctx, BL_EINVAL, "bl_layer_new%s%s%s: %s", name ? " \"" : "",
                        name ? name : "", name ? "\"" : "", why);
    }
    bl_layer *layer = calloc(1, sizeof *layer);
    if (!layer) {
        destroy_orphan(ops, impl);
        return bl_error(ctx, BL_ENOMEM, "bl_layer_new: out of memory");
    }
    layer->size = (uint32_t)sizeof *layer;
    layer->ops = ops;
    layer->impl = impl;
    if (name)
        strcpy(layer->name, name);
    *out = layer;
    return BL_OK;
}

void bl_layer_free(bl_layer *layer)
{
    if (!layer)
        return;
    if (BL__OPS_HAS(layer->ops, destroy) && layer->ops->destroy)
        layer->ops->destroy(layer);
    free(layer);
}

int bl_layer_declare_param(bl_layer *layer, bl_ctx *ctx, const char *name, size_t count,
                           bool decay, int64_t fan_in)
{
    if (!layer || !name)
        return bl_error(ctx, BL_EINVAL, "bl_layer_declare_param: %s is NULL",
                        !layer ? "layer" : "name");
    if (layer->n_param_tensors >= BL_LAYER_MAX_PARAMS)
        return bl_error(ctx, BL_EINVAL,
                        "layer %s: cannot declare parameter \"%s\": at most %d parameter "
                        "tensors per layer",
                        layer->name, name, BL_LAYER_MAX_PARAMS);
    if (count == 0)
        return bl_error(ctx, BL_EINVAL, "layer %s: parameter \"%s\" has no elements",
                        layer->name, name);
    bl_param_info *p = &layer->param[layer->n_param_tensors++];
    p->name = name;
    p->offset = layer->n_params;
    p->count = count;
    p->decay = decay;
    p->fan_in = fan_in;
    layer->n_params += count;
    return BL_OK;
}

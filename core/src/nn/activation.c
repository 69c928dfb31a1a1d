/* Elementwise activation layers: ReLU, tanh, sigmoid and GELU (exact, erf form). */
#include <string.h>

#include "nn_internal.h"

static bl_activation act_of(const bl_layer *self)
{
    return *(const bl_activation *)self->impl;
}

static int act_setup(bl_layer *self, bl_ctx *ctx)
{
    self->out = self->in;
    return BL_OK;
}

static int act_forward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool training,
                       const float *in, float *out)
{
    self->dev->ops->act_forward(self->dev, act_of(self), batch * bl_shape_numel(&self->in), in,
                                out);
    return BL_OK;
}

static int act_backward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool accumulate,
                        const float *in, const float *out, const float *d_out, float *d_in)
{
    if (d_in)
        self->dev->ops->act_backward(self->dev, act_of(self),
                                     batch * bl_shape_numel(&self->in), in, out, d_out, d_in);
    return BL_OK;
}

#define ACT_OPS(kind_name)                                                                     \
    {                                                                                          \
        .size = sizeof(bl_layer_ops), .kind = kind_name, .setup = act_setup,                   \
        .forward = act_forward, .backward = act_backward                                       \
    }

/* Indexed by bl_activation. */
static const bl_layer_ops act_ops[] = {ACT_OPS("relu"), ACT_OPS("tanh"), ACT_OPS("sigmoid"),
                                       ACT_OPS("gelu")};
static const bl_activation act_values[] = {BL_ACT_RELU, BL_ACT_TANH, BL_ACT_SIGMOID,
                                           BL_ACT_GELU};

bool bl__layer_is_relu(const bl_layer *layer)
{
    return layer->ops == &act_ops[BL_ACT_RELU];
}

int bl_activation_layer(bl_ctx *ctx, bl_activation act, bl_layer **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_activation_layer: out is NULL");
    if ((int)act < 0 || (int)act >= (int)(sizeof act_ops / sizeof act_ops[0]))
        return bl_error(ctx, BL_EINVAL, "bl_activation_layer: unknown activation %d", (int)act);
    /* impl points at a constant; these layers own nothing, so they have no destroy. */
    return bl_layer_new(ctx, &act_ops[act], (void *)&act_values[act], NULL, out);
}

int bl_activation_parse(bl_ctx *ctx, const char *name, bl_activation *out)
{
    if (!name || !out)
        return bl_error(ctx, BL_EINVAL, "bl_activation_parse: %s is NULL",
                        !name ? "name" : "out");
    for (size_t i = 0; i < sizeof act_ops / sizeof act_ops[0]; i++)
        if (strcmp(name, act_ops[i].kind) == 0) {
            *out = act_values[i];
            return BL_OK;
        }
    return bl_error(ctx, BL_EINVAL,
                    "unknown activation \"%s\" (expected relu, tanh, sigmoid or gelu)", name);
}

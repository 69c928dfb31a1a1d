/* The network container: a sequence of layers on one device, its flat parameter, gradient and
 * state blocks, the activation memory sized once for the largest batch, and the losses.
 *
 * Memory (device):
 *   params, grads [n_params]   one block each; layer i owns [param_offset[i], + n_params)
 *   state [n_state]            running statistics
 *   batch block (bl_net_reserve), each piece 64-byte aligned:
 *     out_i  [max_batch × numel(out_i)]   for every layer that does not alias its input
 *     ws_i   [ws_per_sample·max_batch + ws_fixed]
 *     dbuf0, dbuf1 [max_batch × max numel(out_i)]   input gradients, used in turn
 *     probs  [max_batch × classes]        cross-entropy only
 *     targets: int32 [max_batch] (cross-entropy) or float [max_batch × output] (MSE), a copy
 *              of the last bl_net_loss targets, so backward does not depend on the caller's
 *
 * Nothing here allocates once bl_net_reserve has run: forward, loss and backward only call
 * kernels.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/tensor.h"
#include "base/grow.h"
#include "nn_internal.h"

#define ALIGN_FLOATS 16 /* 64 bytes */

typedef struct free_hook {
    void (*fn)(void *);
    void *arg;
} free_hook;

struct bl_net {
    bl_device *dev;
    bl_shape input, output;

    bl_layer **layers;
    int n_layers;
    size_t cap_layers;
    free_hook *hooks;
    int n_hooks;
    size_t cap_hooks;

    bool built;
    bl_loss_kind loss;
    size_t n_params, n_state;
    float *params, *grads, *state;
    bl_param_segment *segments;
    size_t n_segments;
    int first_trainable; /* index of the first layer with parameters; n_layers if none */

    int64_t max_batch;
    float *batch_mem;
    size_t batch_bytes;
    float **outs;         /* [n_layers] own output buffers (NULL for aliasing layers) */
    const float **ins_at; /* [n_layers] inputs of the last forward */
    float **outs_at;      /* [n_layers] outputs of the last forward */
    float *dbuf[2];
    float *probs;
    void *targets;

    /* the last pass */
    const float *out_last;
    int64_t fwd_batch;
    bool fwd_training, have_forward, have_loss;
};

static const char *loss_name(bl_loss_kind loss)
{
    return loss == BL_LOSS_CROSS_ENTROPY ? "cross-entropy" : loss == BL_LOSS_MSE ? "mse" : "?";
}

/* Round up to a whole number of 64-byte pieces; false on overflow. */
static bool add_piece(size_t *total, size_t floats)
{
    size_t rounded = (floats + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    if (rounded < floats || *total > SIZE_MAX / sizeof(float) - rounded)
        return false;
    *total += rounded;
    return true;
}

/* Hands out the next 64-byte aligned piece of `floats` floats from *p. */
static float *take(float **p, size_t floats)
{
    float *piece = *p;
    *p += (floats + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    return piece;
}

static bool mul_ok(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

int bl_net_new(bl_ctx *ctx, bl_device *dev, const bl_shape *input, bl_net **out)
{
    if (!dev || !input || !out)
        return bl_error(ctx, BL_EINVAL, "bl_net_new: %s is NULL",
                        !dev ? "dev" : !input ? "input" : "out");
    if (input->ndim != 1 && input->ndim != 3)
        return bl_error(ctx, BL_ESHAPE,
                        "bl_net_new: a sample is [features] or [channels, height, width]; got "
                        "%d dimensions",
                        input->ndim);
    for (int i = 0; i < input->ndim; i++)
        if (input->dim[i] < 1) {
            char buf[64];
            return bl_error(ctx, BL_ESHAPE, "bl_net_new: input shape %s has a dimension below 1",
                            bl_shape_format(input, buf, sizeof buf));
        }
    bl_net *net = calloc(1, sizeof *net);
    if (!net)
        return bl_error(ctx, BL_ENOMEM, "bl_net_new: out of memory");
    net->dev = dev;
    net->input = *input;
    for (int i = input->ndim; i < 3; i++)
        net->input.dim[i] = 1;
    net->output = net->input;
    *out = net;
    return BL_OK;
}

static void release_batch_memory(bl_net *net)
{
    bl_device_release(net->dev, net->batch_mem, net->batch_bytes);
    net->batch_mem = NULL;
    net->batch_bytes = 0;
    net->max_batch = 0;
    for (int i = 0; i < net->n_layers; i++) {
        net->layers[i]->ws = NULL;
        net->layers[i]->max_batch = 0;
    }
}

void bl_net_free(bl_net *net)
{
    if (!net)
        return;
    for (int i = 0; i < net->n_layers; i++)
        bl_layer_free(net->layers[i]);
    bl_device_release(net->dev, net->batch_mem, net->batch_bytes);
    size_t pbytes = net->n_params * sizeof(float);
    bl_device_release(net->dev, net->params, pbytes);
    bl_device_release(net->dev, net->grads, pbytes);
    bl_device_release(net->dev, net->state, net->n_state * sizeof(float));
    free(net->layers);
    free(net->segments);
    free(net->outs);
    free(net->ins_at);
    free(net->outs_at);
    for (int i = net->n_hooks - 1; i >= 0; i--)
        net->hooks[i].fn(net->hooks[i].arg);
    free(net->hooks);
    free(net);
}

/* Checks what a layer's setup produced. */
static int check_setup(bl_ctx *ctx, const bl_layer *layer)
{
    char in[64], out[64];
    const bl_shape *o = &layer->out;
    bool shape_ok = o->ndim == 1 || o->ndim == 3;
    for (int i = 0; shape_ok && i < o->ndim; i++)
        shape_ok = o->dim[i] >= 1;
    if (!shape_ok)
        return bl_error(ctx, BL_EPLUGIN, "layer %s (%s): setup gave an invalid output shape %s",
                        layer->name, layer->ops->kind, bl_shape_format(o, out, sizeof out));
    size_t sum = 0;
    for (int i = 0; i < layer->n_param_tensors; i++)
        sum += layer->param[i].count;
    if (layer->n_param_tensors < 0 || layer->n_param_tensors > BL_LAYER_MAX_PARAMS ||
        sum != layer->n_params)
        return bl_error(ctx, BL_EPLUGIN,
                        "layer %s (%s): n_params does not match the declared parameters "
                        "(use bl_layer_declare_param)",
                        layer->name, layer->ops->kind);
    if (layer->alias_input && bl_shape_numel(o) != bl_shape_numel(&layer->in))
        return bl_error(ctx, BL_EPLUGIN,
                        "layer %s (%s): aliases its input but maps %s to %s (sizes differ)",
                        layer->name, layer->ops->kind, bl_shape_format(&layer->in, in, sizeof in),
                        bl_shape_format(o, out, sizeof out));
    return BL_OK;
}

/* "linear3" for the third linear layer when the caller gave no name. */
static void default_name(bl_net *net, bl_layer *layer)
{
    int same = 1;
    for (int i = 0; i < net->n_layers; i++)
        if (strcmp(net->layers[i]->ops->kind, layer->ops->kind) == 0)
            same++;
    snprintf(layer->name, sizeof layer->name, "%.36s%d", layer->ops->kind, same % 1000000);
}

int bl_net_add(bl_ctx *ctx, bl_net *net, bl_layer *layer)
{
    if (!net || !layer) {
        bl_layer_free(layer);
        return bl_error(ctx, BL_EINVAL, "bl_net_add: %s is NULL", !net ? "net" : "layer");
    }
    if (net->built) {
        int rc = bl_error(ctx, BL_EINVAL,
                          "bl_net_add: layer %s (%s) added after bl_net_build; add every layer "
                          "first",
                          layer->name[0] ? layer->name : "(unnamed)", layer->ops->kind);
        bl_layer_free(layer);
        return rc;
    }
    bl_layer **grown =
        bl__grow(net->layers, &net->cap_layers, (size_t)net->n_layers + 1, sizeof *grown);
    if (!grown) {
        bl_layer_free(layer);
        return bl_error(ctx, BL_ENOMEM, "bl_net_add: out of memory");
    }
    net->layers = grown;
    if (!layer->name[0])
        default_name(net, layer);
    layer->in = net->output;
    layer->dev = net->dev;
    layer->index = net->n_layers;
    int rc = layer->ops->setup(layer, ctx);
    if (rc == BL_OK)
        rc = check_setup(ctx, layer);
    if (rc != BL_OK) {
        if (!strstr(bl_errmsg(ctx), layer->name))
            bl_error_prefix(ctx, "layer %s (%s)", layer->name, layer->ops->kind);
        bl_layer_free(layer);
        return rc;
    }
    for (int i = layer->out.ndim; i < 3; i++)
        layer->out.dim[i] = 1;
    net->layers[net->n_layers++] = layer;
    net->output = layer->out;
    return BL_OK;
}

int bl_net_on_free(bl_ctx *ctx, bl_net *net, void (*fn)(void *), void *arg)
{
    if (!net || !fn)
        return bl_error(ctx, BL_EINVAL, "bl_net_on_free: %s is NULL", !net ? "net" : "fn");
    free_hook *grown =
        bl__grow(net->hooks, &net->cap_hooks, (size_t)net->n_hooks + 1, sizeof *grown);
    if (!grown)
        return bl_error(ctx, BL_ENOMEM, "bl_net_on_free: out of memory");
    net->hooks = grown;
    net->hooks[net->n_hooks++] = (free_hook){fn, arg};
    return BL_OK;
}

const bl_shape *bl_net_output_shape(const bl_net *net)
{
    return net ? &net->output : NULL;
}

static int alloc_floats(bl_ctx *ctx, bl_net *net, size_t count, float **out)
{
    *out = NULL;
    if (count == 0)
        return BL_OK;
    void *p;
    int rc = bl_device_alloc(ctx, net->dev, count * sizeof(float), &p);
    if (rc == BL_OK)
        *out = p;
    return rc;
}

/* Copies the initial values into the blocks: every layer's init, in layer order, draws from one
 * generator seeded (seed, BL_STREAM_INIT). */
static int init_blocks(bl_ctx *ctx, bl_net *net, const size_t *poff, const size_t *soff,
                       uint64_t seed)
{
    float *hp = calloc(net->n_params ? net->n_params : 1, sizeof *hp);
    float *hs = calloc(net->n_state ? net->n_state : 1, sizeof *hs);
    if (!hp || !hs) {
        free(hp);
        free(hs);
        return bl_error(ctx, BL_ENOMEM, "bl_net_build: out of host memory for initial values");
    }
    bl_rng rng;
    bl_rng_seed(&rng, seed, BL_STREAM_INIT);
    for (int i = 0; i < net->n_layers; i++) {
        bl_layer *l = net->layers[i];
        if (BL__OPS_HAS(l->ops, init) && l->ops->init)
            l->ops->init(l, hp + poff[i], hs + soff[i], &rng);
    }
    int rc = bl_device_upload(ctx, net->dev, net->params, hp, net->n_params * sizeof(float));
    if (rc == BL_OK)
        rc = bl_device_upload(ctx, net->dev, net->state, hs, net->n_state * sizeof(float));
    free(hp);
    free(hs);
    return rc;
}

/* A ReLU right after a linear, conv2d, batch-norm or max-pool layer computes in place over
 * that layer's output (alias_input): none of those reads its own output in backward, and the
 * ReLU's backward needs only the sign of its input, the same before and after, so the results
 * keep their bits while the batch block loses a buffer. The activations' memory traffic was
 * most of it: 784-256-128-10 on 2 threads, bench_core, batch 2048: 245-256k -> 264-272k
 * samples/s; 1024: +1-3%; 128: +2%. Never the first layer: the net's input is the caller's. */
static void relu_in_place(bl_net *net)
{
    for (int i = 1; i < net->n_layers; i++) {
        const bl_layer_ops *prev = net->layers[i - 1]->ops;
        if (bl__layer_is_relu(net->layers[i]) &&
            (prev == &bl__linear_ops || prev == &bl__conv2d_ops || prev == &bl__batchnorm_ops ||
             prev == &bl__maxpool2d_ops))
            net->layers[i]->alias_input = true;
    }
}

int bl_net_build(bl_ctx *ctx, bl_net *net, bl_loss_kind loss, uint64_t seed)
{
    if (!net)
        return bl_error(ctx, BL_EINVAL, "bl_net_build: net is NULL");
    if (net->built)
        return bl_error(ctx, BL_EINVAL, "bl_net_build: the net is already built");
    if (net->n_layers == 0)
        return bl_error(ctx, BL_EINVAL, "bl_net_build: the net has no layers");
    char buf[64];
    if (loss == BL_LOSS_CROSS_ENTROPY) {
        if (net->output.ndim != 1 || net->output.dim[0] < 2)
            return bl_error(ctx, BL_ESHAPE,
                            "bl_net_build: cross-entropy needs a [classes] output with at least "
                            "2 classes; the last layer %s gives %s",
                            net->layers[net->n_layers - 1]->name,
                            bl_shape_format(&net->output, buf, sizeof buf));
    } else if (loss != BL_LOSS_MSE) {
        return bl_error(ctx, BL_EINVAL, "bl_net_build: unknown loss %d", (int)loss);
    }

    relu_in_place(net);
    size_t n = (size_t)net->n_layers;
    size_t *poff = calloc(n, sizeof *poff), *soff = calloc(n, sizeof *soff);
    net->outs = calloc(n, sizeof *net->outs);
    net->ins_at = calloc(n, sizeof *net->ins_at);
    net->outs_at = calloc(n, sizeof *net->outs_at);
    size_t nseg = 0, np = 0, ns = 0, seg = 0;
    for (int i = 0; i < net->n_layers; i++)
        nseg += (size_t)net->layers[i]->n_param_tensors;
    net->segments = calloc(nseg ? nseg : 1, sizeof *net->segments);
    int rc = BL_OK;
    if (!poff || !soff || !net->outs || !net->ins_at || !net->outs_at || !net->segments) {
        rc = bl_error(ctx, BL_ENOMEM, "bl_net_build: out of memory");
        goto fail;
    }

    net->first_trainable = net->n_layers;
    for (int i = 0; i < net->n_layers; i++) {
        bl_layer *l = net->layers[i];
        poff[i] = np;
        soff[i] = ns;
        for (int t = 0; t < l->n_param_tensors; t++)
            net->segments[seg++] = (bl_param_segment){np + l->param[t].offset, l->param[t].count,
                                                      l->param[t].decay, i, l->param[t].name};
        if (l->n_params && net->first_trainable == net->n_layers)
            net->first_trainable = i;
        if (np > SIZE_MAX / sizeof(float) - l->n_params ||
            ns > SIZE_MAX / sizeof(float) - l->n_state) {
            rc = bl_error(ctx, BL_ENOMEM, "bl_net_build: too many parameters");
            goto fail;
        }
        np += l->n_params;
        ns += l->n_state;
    }
    net->n_params = np;
    net->n_state = ns;
    net->n_segments = nseg;
    if ((rc = alloc_floats(ctx, net, np, &net->params)) != BL_OK ||
        (rc = alloc_floats(ctx, net, np, &net->grads)) != BL_OK ||
        (rc = alloc_floats(ctx, net, ns, &net->state)) != BL_OK)
        goto fail;
    if (np)
        net->dev->ops->fill(net->dev, (int64_t)np, 0.0f, net->grads);
    for (int i = 0; i < net->n_layers; i++) {
        bl_layer *l = net->layers[i];
        l->params = net->params ? net->params + poff[i] : NULL;
        l->grads = net->grads ? net->grads + poff[i] : NULL;
        l->state = net->state ? net->state + soff[i] : NULL;
    }
    if ((rc = init_blocks(ctx, net, poff, soff, seed)) != BL_OK)
        goto fail;

    /* Per-layer seeds for stochastic layers, from their own stream of the net's seed. */
    bl_rng rng;
    bl_rng_seed(&rng, seed, BL_STREAM_DROPOUT);
    for (int i = 0; i < net->n_layers; i++) {
        uint64_t hi = bl_rng_u32(&rng);
        net->layers[i]->seed = (hi << 32) | bl_rng_u32(&rng);
        net->layers[i]->counter = 0;
    }
    net->loss = loss;
    net->built = true;
    free(poff);
    free(soff);
    return BL_OK;

fail:
    free(poff);
    free(soff);
    bl_device_release(net->dev, net->params, np * sizeof(float));
    bl_device_release(net->dev, net->grads, np * sizeof(float));
    bl_device_release(net->dev, net->state, ns * sizeof(float));
    net->params = net->grads = net->state = NULL;
    net->n_params = net->n_state = 0;
    for (int i = 0; i < net->n_layers; i++)
        net->layers[i]->params = net->layers[i]->grads = net->layers[i]->state = NULL;
    free(net->segments);
    free(net->outs);
    free(net->ins_at);
    free(net->outs_at);
    net->segments = NULL;
    net->outs = NULL;
    net->ins_at = NULL;
    net->outs_at = NULL;
    return rc;
}

int bl_net_reserve(bl_ctx *ctx, bl_net *net, int64_t max_batch)
{
    if (!net)
        return bl_error(ctx, BL_EINVAL, "bl_net_reserve: net is NULL");
    if (!net->built)
        return bl_error(ctx, BL_EINVAL, "bl_net_reserve: call bl_net_build first");
    if (max_batch < 1)
        return bl_error(ctx, BL_EINVAL,
                        "bl_net_reserve: max_batch must be at least 1, got %" PRId64, max_batch);
    if (max_batch <= net->max_batch)
        return BL_OK;

    size_t mb = (size_t)max_batch, total = 0, widest = 0, sz;
    bool ok = true;
    for (int i = 0; i < net->n_layers && ok; i++) {
        bl_layer *l = net->layers[i];
        size_t numel = (size_t)bl_shape_numel(&l->out);
        if (numel > widest)
            widest = numel;
        if (!l->alias_input)
            ok = mul_ok(numel, mb, &sz) && add_piece(&total, sz);
        if (ok && (l->ws_per_sample || l->ws_fixed))
            ok = mul_ok(l->ws_per_sample, mb, &sz) && sz + l->ws_fixed >= sz &&
                 add_piece(&total, sz + l->ws_fixed);
    }
    size_t out_numel = (size_t)bl_shape_numel(&net->output);
    ok = ok && mul_ok(widest, mb, &sz) && add_piece(&total, sz) && add_piece(&total, sz);
    if (net->loss == BL_LOSS_CROSS_ENTROPY)
        ok = ok && mul_ok(out_numel, mb, &sz) && add_piece(&total, sz) && add_piece(&total, mb);
    else
        ok = ok && mul_ok(out_numel, mb, &sz) && add_piece(&total, sz);
    if (!ok)
        return bl_error(ctx, BL_ENOMEM,
                        "bl_net_reserve: activations for batches of %" PRId64 " are too large",
                        max_batch);

    void *mem;
    int rc = bl_device_alloc(ctx, net->dev, total * sizeof(float), &mem);
    if (rc != BL_OK)
        return bl_error_prefix(ctx, "bl_net_reserve(%" PRId64 ")", max_batch);
    release_batch_memory(net);
    net->batch_mem = mem;
    net->batch_bytes = total * sizeof(float);
    net->dev->ops->fill(net->dev, (int64_t)total, 0.0f, net->batch_mem);

    float *p = net->batch_mem;
    for (int i = 0; i < net->n_layers; i++) {
        bl_layer *l = net->layers[i];
        net->outs[i] = l->alias_input ? NULL : take(&p, (size_t)bl_shape_numel(&l->out) * mb);
        l->ws = (l->ws_per_sample || l->ws_fixed) ? take(&p, l->ws_per_sample * mb + l->ws_fixed)
                                                  : NULL;
        l->max_batch = max_batch;
    }
    net->dbuf[0] = take(&p, widest * mb);
    net->dbuf[1] = take(&p, widest * mb);
    if (net->loss == BL_LOSS_CROSS_ENTROPY) {
        net->probs = take(&p, out_numel * mb);
        net->targets = take(&p, mb); /* int32 labels fit in float-sized slots */
    } else {
        net->probs = NULL;
        net->targets = take(&p, out_numel * mb);
    }
    net->max_batch = max_batch;
    net->have_forward = net->have_loss = false;
    return BL_OK;
}

int bl_net_forward(bl_ctx *ctx, bl_net *net, const float *x, int64_t batch, bool training,
                   const float **out)
{
    if (!net || !x)
        return bl_error(ctx, BL_EINVAL, "bl_net_forward: %s is NULL", !net ? "net" : "x");
    if (!net->built || net->max_batch == 0)
        return bl_error(ctx, BL_EINVAL, "bl_net_forward: call bl_net_build and bl_net_reserve "
                                        "first");
    if (batch < 1 || batch > net->max_batch)
        return bl_error(ctx, BL_ESHAPE,
                        "bl_net_forward: batch %" PRId64 " is outside 1..%" PRId64
                        " (the reserved maximum; see bl_net_reserve)",
                        batch, net->max_batch);
    net->have_forward = net->have_loss = false;
    const float *cur = x;
    for (int i = 0; i < net->n_layers; i++) {
        bl_layer *l = net->layers[i];
        float *dst = l->alias_input ? (float *)cur : net->outs[i];
        net->ins_at[i] = cur;
        net->outs_at[i] = dst;
        int rc = l->ops->forward(l, ctx, batch, training, cur, dst);
        if (rc != BL_OK) {
            if (!strstr(bl_errmsg(ctx), l->name))
                bl_error_prefix(ctx, "layer %s (%s) forward", l->name, l->ops->kind);
            return rc;
        }
        cur = dst;
    }
    net->out_last = cur;
    net->fwd_batch = batch;
    net->fwd_training = training;
    net->have_forward = true;
    if (out)
        *out = cur;
    return BL_OK;
}

/* Labels can be checked where the host can read device memory (the CPU); other devices rely
 * on the kernel, which turns a bad label into a NaN loss. */
static int check_labels(bl_ctx *ctx, const bl_net *net, int64_t batch, const int32_t *labels)
{
    if (!(bl_device_caps(net->dev) & BL_DEVICE_CAP_HOST_ADDRESSABLE))
        return BL_OK;
    int64_t classes = net->output.dim[0];
    for (int64_t i = 0; i < batch; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return bl_error(ctx, BL_EINVAL,
                            "bl_net_loss: label %" PRId32 " of sample %" PRId64
                            " is outside 0..%" PRId64,
                            labels[i], i, classes - 1);
    return BL_OK;
}

int bl_net_loss(bl_ctx *ctx, bl_net *net, int64_t batch, const void *targets, double *loss_sum,
                int64_t *correct)
{
    if (!net || !targets || !loss_sum)
        return bl_error(ctx, BL_EINVAL, "bl_net_loss: %s is NULL",
                        !net ? "net" : !targets ? "targets" : "loss_sum");
    if (!net->have_forward)
        return bl_error(ctx, BL_EINVAL, "bl_net_loss: no forward pass to take the loss of");
    if (batch != net->fwd_batch)
        return bl_error(ctx, BL_ESHAPE,
                        "bl_net_loss: batch %" PRId64 " but the last forward had %" PRId64,
                        batch, net->fwd_batch);
    const bl_device_ops *ops = net->dev->ops;
    int64_t out_numel = bl_shape_numel(&net->output);
    if (correct)
        *correct = 0;
    if (net->loss == BL_LOSS_CROSS_ENTROPY) {
        int rc = check_labels(ctx, net, batch, targets);
        if (rc != BL_OK)
            return rc;
        ops->copy(net->dev, net->targets, targets, (size_t)batch * sizeof(int32_t));
        *loss_sum = ops->xent_forward(net->dev, batch, out_numel, net->out_last, net->targets,
                                      net->probs, correct);
    } else {
        ops->copy(net->dev, net->targets, targets, (size_t)(batch * out_numel) * sizeof(float));
        /* per-sample loss: the mean over the sample's output values */
        *loss_sum = ops->mse_forward(net->dev, batch * out_numel, net->out_last, net->targets) /
                    (double)out_numel;
    }
    net->have_loss = true;
    return BL_OK;
}

int bl_net_backward(bl_ctx *ctx, bl_net *net, int64_t batch, float loss_scale, bool accumulate)
{
    if (!net)
        return bl_error(ctx, BL_EINVAL, "bl_net_backward: net is NULL");
    if (!net->have_loss || !net->fwd_training)
        return bl_error(ctx, BL_EINVAL,
                        "bl_net_backward: needs a training forward followed by bl_net_loss");
    if (batch != net->fwd_batch)
        return bl_error(ctx, BL_ESHAPE,
                        "bl_net_backward: batch %" PRId64 " but the last forward had %" PRId64,
                        batch, net->fwd_batch);
    const bl_device_ops *ops = net->dev->ops;
    int64_t out_numel = bl_shape_numel(&net->output);
    float *d = net->dbuf[0];
    if (net->loss == BL_LOSS_CROSS_ENTROPY)
        ops->xent_backward(net->dev, batch, out_numel, net->probs, net->targets, loss_scale, d);
    else
        ops->mse_backward(net->dev, batch * out_numel, net->out_last, net->targets,
                          2.0f * loss_scale / (float)out_numel, d);

    /* Layers before the first one with parameters need no gradient: the first trainable layer
     * gets d_in = NULL and the ones before it are not called. */
    for (int i = net->n_layers - 1; i >= net->first_trainable; i--) {
        bl_layer *l = net->layers[i];
        float *d_in = NULL;
        if (i > net->first_trainable)
            d_in = l->alias_input ? d : (d == net->dbuf[0] ? net->dbuf[1] : net->dbuf[0]);
        int rc = l->ops->backward(l, ctx, batch, accumulate, net->ins_at[i], net->outs_at[i], d,
                                  d_in);
        if (rc != BL_OK) {
            if (!strstr(bl_errmsg(ctx), l->name))
                bl_error_prefix(ctx, "layer %s (%s) backward", l->name, l->ops->kind);
            return rc;
        }
        d = d_in;
    }
    return BL_OK;
}

bl_device *bl_net_device(const bl_net *net)
{
    return net ? net->dev : NULL;
}

size_t bl_net_num_params(const bl_net *net)
{
    return net ? net->n_params : 0;
}

float *bl_net_params(bl_net *net)
{
    return net ? net->params : NULL;
}

float *bl_net_grads(bl_net *net)
{
    return net ? net->grads : NULL;
}

size_t bl_net_num_state(const bl_net *net)
{
    return net ? net->n_state : 0;
}

float *bl_net_state(bl_net *net)
{
    return net ? net->state : NULL;
}

const bl_param_segment *bl_net_segments(const bl_net *net, size_t *count)
{
    if (count)
        *count = net ? net->n_segments : 0;
    return net ? net->segments : NULL;
}

int bl_net_num_layers(const bl_net *net)
{
    return net ? net->n_layers : 0;
}

bl_layer *bl_net_layer(bl_net *net, int index)
{
    if (!net || index < 0 || index >= net->n_layers)
        return NULL;
    return net->layers[index];
}

int64_t bl_net_max_batch(const bl_net *net)
{
    return net ? net->max_batch : 0;
}

bl_loss_kind bl_net_loss_kind(const bl_net *net)
{
    return net ? net->loss : BL_LOSS_CROSS_ENTROPY;
}

size_t bl_net_bytes(const bl_net *net)
{
    if (!net)
        return 0;
    return (2 * net->n_params + net->n_state) * sizeof(float) + net->batch_bytes;
}

/* snprintf into buf at *len, counting what would have been written when buf is full. */
static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...) BL_PRINTF(4, 5);
static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*len < cap ? buf + *len : NULL, *len < cap ? cap - *len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n;
}

size_t bl_net_describe(const bl_net *net, char *buf, size_t cap)
{
    if (buf && cap)
        buf[0] = '\0';
    if (!buf)
        cap = 0;
    if (!net)
        return 0;
    size_t len = 0;
    char shape[64];
    appendf(buf, cap, &len, "%-16s %-10s %-18s %12s\n", "layer", "kind", "output", "params");
    appendf(buf, cap, &len, "%-16s %-10s %-18s %12s\n", "input", "",
            bl_shape_format(&net->input, shape, sizeof shape), "");
    size_t total = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const bl_layer *l = net->layers[i];
        appendf(buf, cap, &len, "%-16s %-10s %-18s %12zu\n", l->name, l->ops->kind,
                bl_shape_format(&l->out, shape, sizeof shape), l->n_params);
        total += l->n_params;
    }
    appendf(buf, cap, &len, "loss: %s; %zu parameters", net->built ? loss_name(net->loss)
                                                                    : "(not built)", total);
    if (net->n_state)
        appendf(buf, cap, &len, "; %zu state values", net->n_state);
    appendf(buf, cap, &len, "\n");
    if (cap)
        buf[len < cap ? len : cap - 1] = '\0';
    return len;
}

/* batchlab — layers with forward and backward, and the network container.
 *
 * A network (bl_net) is a sequence of layers on one device followed by a loss. All trainable
 * parameters live in one flat block, their gradients in a second block of the same length, and
 * non-trainable state (batch-norm running statistics) in a third, so optimizers, gradient
 * norms, checkpoints and all-reduce work on flat arrays. Activations and per-layer scratch are
 * sized once for the largest batch (bl_net_reserve); forward and backward then allocate nothing.
 *
 * Shapes: a sample is [F] (features) or [C, H, W] (images); a batch adds a leading dimension.
 *
 * Gradient convention (as in llm.c): parameter gradients are written (=) when `accumulate` is
 * false and added (+=) when it is true, which is how micro-batches accumulate into one update;
 * gradients with respect to a layer's input are always written (=).
 *
 * A model plugin may add its own layer type: fill a bl_layer_ops and create the layer with
 * bl_layer_new. Built-in layers use exactly the same interface.
 */
#ifndef BATCHLAB_NN_H
#define BATCHLAB_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchlab/abi.h"
#include "batchlab/device.h"
#include "batchlab/error.h"
#include "batchlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-sample shape: ndim 1 → [features]; ndim 3 → [channels, height, width]. */
typedef struct bl_shape {
    int ndim;
    int64_t dim[3];
} bl_shape;

/* Number of values in one sample of this shape. */
BL_EXPORT int64_t bl_shape_numel(const bl_shape *s);
/* Writes "[1, 28, 28]" into buf (NUL-terminated) and returns buf. */
BL_EXPORT char *bl_shape_format(const bl_shape *s, char *buf, size_t cap);

typedef struct bl_layer bl_layer;

/* Operations of a layer type. `size` is sizeof(bl_layer_ops) when the layer was built; fields
 * are only ever appended, and the host reads one only when `size` says it is there.
 * Required: kind, setup, forward, backward. Optional: init, destroy. */
typedef struct bl_layer_ops {
    uint32_t size;
    const char *kind; /* "linear", "conv2d", ... (static string) */

    /* Called once when the layer is added: read self->in, set self->out, declare parameters
     * with bl_layer_declare_param, and set n_state, ws_per_sample, ws_fixed and alias_input.
     * Return an error (naming the layer and the shapes) when the input does not fit. */
    int (*setup)(bl_layer *self, bl_ctx *ctx);

    /* Initializes this layer's parameters and state in host memory (arrays of the lengths
     * declared in setup; params in declaration order). NULL: parameters start at zero. */
    void (*init)(bl_layer *self, float *params, float *state, bl_rng *rng);

    /* out[batch × out] from in[batch × in]. `training` selects e.g. batch-norm statistics and
     * dropout. May keep what backward needs in self->ws. */
    int (*forward)(bl_layer *self, bl_ctx *ctx, int64_t batch, bool training, const float *in,
                   float *out);

    /* Given d_out, writes d_in (unless d_in is NULL: the first layer needs no input gradient)
     * and writes or accumulates the parameter gradients into self->grads. `in` and `out` are
     * the values of the last forward call, which was a training one. */
    int (*backward)(bl_layer *self, bl_ctx *ctx, int64_t batch, bool accumulate,
                    const float *in, const float *out, const float *d_out, float *d_in);

    /* Frees self->impl. Called exactly once, by bl_layer_free. */
    void (*destroy)(bl_layer *self);
} bl_layer_ops;

#define BL_LAYER_MAX_PARAMS 4

/* One named parameter tensor of a layer, as a range of the network's flat block. */
typedef struct bl_param_info {
    const char *name;  /* "weight", "bias", "gamma", "beta" (static string) */
    size_t offset;     /* within the layer's params; the net adds the layer's own offset */
    size_t count;
    bool decay;        /* false for biases and normalization parameters */
    int64_t fan_in;    /* for initialization and LARS/LAMB bookkeeping; 0 if not meaningful */
} bl_param_info;

/* A layer. ABI: allocated and filled by the host (bl_layer_new), fields only appended; a
 * layer type reads a field added after ABI 2 only when BL_HAS_FIELD(self, bl_layer, field)
 * is true. bl_param_info and bl_shape keep their layout for the whole ABI. */
struct bl_layer {
    uint32_t size;           /* sizeof(bl_layer) of the host (read-only) */
    const bl_layer_ops *ops; /* read-only */
    void *impl;              /* private to the layer type */
    char name[48];           /* "linear1"; set by the net when empty */

    /* Set by the net before setup (read-only to the layer): */
    bl_shape in;
    bl_device *dev;
    int index;               /* position in the net */

    /* Set by setup: */
    bl_shape out;
    bl_param_info param[BL_LAYER_MAX_PARAMS];
    int n_param_tensors;
    size_t n_params;         /* sum of param[].count */
    size_t n_state;          /* non-trainable floats (running statistics) */
    size_t ws_per_sample;    /* scratch floats per sample kept from forward to backward */
    size_t ws_fixed;         /* scratch floats independent of the batch */
    bool alias_input;        /* output is the input reinterpreted (flatten): no buffer, no copy;
                              * bl_net_build also sets it on a ReLU after a built-in linear,
                              * conv2d, batchnorm or maxpool2d layer, which then computes in
                              * place over that layer's output */

    /* Set by the net once memory exists (device pointers; read-only to the layer): */
    float *params, *grads, *state, *ws;
    int64_t max_batch;
    uint64_t seed;           /* per-layer seed for stochastic layers */
    uint64_t counter;        /* advanced by stochastic layers at each training forward */
};

/* Creates a layer of a custom type. `impl` is owned by the layer from then on (even on error,
 * where ops->destroy is called on it). On success *out is a layer for bl_net_add. */
BL_EXPORT int bl_layer_new(bl_ctx *ctx, const bl_layer_ops *ops, void *impl, const char *name,
                           bl_layer **out);

/* Frees a layer that was never added to a net (a net frees its own layers); NULL allowed. */
BL_EXPORT void bl_layer_free(bl_layer *layer);

/* For use inside setup: declares the next parameter tensor of `count` floats. Fails when more
 * than BL_LAYER_MAX_PARAMS are declared. */
BL_EXPORT int bl_layer_declare_param(bl_layer *layer, bl_ctx *ctx, const char *name,
                                     size_t count, bool decay, int64_t fan_in);

/* Built-in layers. Each returns a new layer in *out (freed by the net once added, or with
 * bl_layer_free), or an error naming the bad argument. Initialization follows PyTorch:
 * Kaiming-uniform weights (bound 1/sqrt(fan_in)) and biases uniform in ±1/sqrt(fan_in). */
BL_EXPORT int bl_linear(bl_ctx *ctx, int64_t out_features, bool bias, bl_layer **out);
BL_EXPORT int bl_activation_layer(bl_ctx *ctx, bl_activation act, bl_layer **out);
BL_EXPORT int bl_dropout(bl_ctx *ctx, float p, bl_layer **out);           /* 0 ≤ p < 1 */
BL_EXPORT int bl_flatten(bl_ctx *ctx, bl_layer **out);
BL_EXPORT int bl_conv2d(bl_ctx *ctx, int64_t out_channels, int64_t kernel, int64_t stride,
                        int64_t padding, bool bias, bl_layer **out);
BL_EXPORT int bl_maxpool2d(bl_ctx *ctx, int64_t kernel, int64_t stride, bl_layer **out);
/* Batch normalization over features ([F] input) or channels ([C,H,W] input). `ghost_batch`
 * > 0 normalizes over consecutive sub-batches of that many samples (Hoffer et al. 2017; a last
 * shorter sub-batch is normalized on its own); 0 uses the whole batch. */
BL_EXPORT int bl_batchnorm(bl_ctx *ctx, float momentum, float eps, int64_t ghost_batch,
                           bl_layer **out);

/* Parses an activation name ("relu", "tanh", "sigmoid", "gelu"); BL_EINVAL otherwise. */
BL_EXPORT int bl_activation_parse(bl_ctx *ctx, const char *name, bl_activation *out);

typedef enum {
    BL_LOSS_CROSS_ENTROPY = 0, /* softmax + NLL over int32 class labels; output = classes */
    BL_LOSS_MSE = 1            /* mean over all output values of (y − t)², float targets */
} bl_loss_kind;

typedef struct bl_net bl_net;

/* A flat parameter segment of the built network (one per parameter tensor). */
typedef struct bl_param_segment {
    size_t offset, count;
    bool decay;
    int layer;               /* index of the owning layer */
    const char *name;        /* "weight", ... */
} bl_param_segment;

/* A new, empty network for samples of shape `input`. On success *out is freed with
 * bl_net_free. */
BL_EXPORT int bl_net_new(bl_ctx *ctx, bl_device *dev, const bl_shape *input, bl_net **out);

/* Frees the network, its layers and all its device memory; NULL allowed. */
BL_EXPORT void bl_net_free(bl_net *net);

/* Appends a layer, which the net owns from then on, also when this fails (the layer is freed).
 * Runs the layer's setup on the current output shape; a shape that does not fit is an error
 * naming the layer. Not allowed after bl_net_build. */
BL_EXPORT int bl_net_add(bl_ctx *ctx, bl_net *net, bl_layer *layer);

/* Registers a function the net calls when it is freed, after its layers are gone (a plugin
 * loader uses it to keep a shared object loaded while layers from it exist). */
BL_EXPORT int bl_net_on_free(bl_ctx *ctx, bl_net *net, void (*fn)(void *), void *arg);

/* Output shape of the layers added so far (the input shape when there are none). */
BL_EXPORT const bl_shape *bl_net_output_shape(const bl_net *net);

/* Finishes the network: checks the output against the loss (cross-entropy needs a [classes]
 * output with classes ≥ 2), allocates the parameter, gradient and state blocks and
 * initializes them from `seed` (stream BL_STREAM_INIT). The same seed gives the same weights. */
BL_EXPORT int bl_net_build(bl_ctx *ctx, bl_net *net, bl_loss_kind loss, uint64_t seed);

/* Sizes activations and scratch for batches of up to max_batch samples. Calling it again with a
 * larger value reallocates; a smaller or equal value does nothing. */
BL_EXPORT int bl_net_reserve(bl_ctx *ctx, bl_net *net, int64_t max_batch);

/* Forward pass over x[batch × input numel] (device memory). 1 ≤ batch ≤ reserved maximum.
 * On success *out (may be NULL) points at the net's output [batch × output numel], valid until
 * the next forward. */
BL_EXPORT int bl_net_forward(bl_ctx *ctx, bl_net *net, const float *x, int64_t batch,
                             bool training, const float **out);

/* Loss of the last forward against targets (device memory: int32 labels [batch] for
 * cross-entropy, floats [batch × output] for MSE). *loss_sum gets the summed per-sample loss
 * (divide by batch for the mean); *correct (may be NULL) gets the number of correct argmax
 * predictions (cross-entropy only; 0 for MSE). */
BL_EXPORT int bl_net_loss(bl_ctx *ctx, bl_net *net, int64_t batch, const void *targets,
                          double *loss_sum, int64_t *correct);

/* Backward pass after bl_net_loss with training forward: gradients of `loss_scale` × summed loss
 * (use 1/batch for the mean loss, 1/logical batch when accumulating micro-batches). With
 * accumulate=false the gradient block is overwritten, with true it is added to. */
BL_EXPORT int bl_net_backward(bl_ctx *ctx, bl_net *net, int64_t batch, float loss_scale,
                              bool accumulate);

/* Accessors (valid after bl_net_build; device pointers). */
BL_EXPORT bl_device *bl_net_device(const bl_net *net);
BL_EXPORT size_t bl_net_num_params(const bl_net *net);
BL_EXPORT float *bl_net_params(bl_net *net);
BL_EXPORT float *bl_net_grads(bl_net *net);
BL_EXPORT size_t bl_net_num_state(const bl_net *net);
BL_EXPORT float *bl_net_state(bl_net *net);
BL_EXPORT const bl_param_segment *bl_net_segments(const bl_net *net, size_t *count);
BL_EXPORT int bl_net_num_layers(const bl_net *net);
BL_EXPORT bl_layer *bl_net_layer(bl_net *net, int index);
BL_EXPORT int64_t bl_net_max_batch(const bl_net *net);
BL_EXPORT bl_loss_kind bl_net_loss_kind(const bl_net *net);
/* Bytes of device memory the net holds now (parameters, gradients, state, activations). */
BL_EXPORT size_t bl_net_bytes(const bl_net *net);

/* Writes a multi-line human-readable description (one line per layer: name, output shape,
 * parameter count) into buf, always NUL-terminated. Returns the length it needed. */
BL_EXPORT size_t bl_net_describe(const bl_net *net, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif

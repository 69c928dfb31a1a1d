/* batchlab — optimizers over a network's flat parameter and gradient blocks.
 *
 * Update rules (g = gradient, w = parameter, t = step counted from 1, lr = the effective
 * learning rate passed to bl_optim_step):
 * - SGD (as torch.optim.SGD): g' = g + wd·w; v = μ·v + (1 − dampening)·g' (v = g' at t = 1);
 *   d = g' + μ·v if Nesterov else v; w −= lr·d.
 * - Adam (torch.optim.Adam, L2 decay): g' = g + wd·w; m = β1·m + (1−β1)·g'; v = β2·v + (1−β2)·g'²;
 *   w −= lr · m̂ / (sqrt(v̂) + ε) with m̂ = m/(1−β1^t), v̂ = v/(1−β2^t).
 * - AdamW (decoupled decay, Loshchilov & Hutter): as Adam on g, then w −= lr·wd·w.
 * - LARS (You et al. 2017): per parameter tensor with decay, local rate
 *   λ = η·|w| / (|g| + wd·|w|) (1 when either norm is 0); g' = λ·(g + wd·w); then SGD momentum
 *   with lr. Tensors without decay (biases, normalization) use λ = 1 and no decay.
 * - LAMB (You et al. 2019): u = m̂/(sqrt(v̂) + ε) + wd·w (wd only on tensors with decay);
 *   per tensor r = |w|/|u| (1 when either is 0); w −= lr·r·u.
 * Gradient clipping (clip_norm > 0) scales the whole gradient block by
 * min(1, clip_norm / global_norm) before the update, global_norm over all parameters.
 */
#ifndef BATCHLAB_OPTIM_H
#define BATCHLAB_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchlab/device.h"
#include "batchlab/error.h"
#include "batchlab/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BL_OPTIM_SGD = 0,
    BL_OPTIM_ADAM = 1,
    BL_OPTIM_ADAMW = 2,
    BL_OPTIM_LARS = 3,
    BL_OPTIM_LAMB = 4
} bl_optim_kind;

typedef struct bl_optim_config {
    bl_optim_kind kind;
    double lr;                /* base learning rate (what LR rules scale) */
    double momentum;          /* SGD, LARS */
    double dampening;         /* SGD */
    bool nesterov;            /* SGD, LARS */
    double weight_decay;
    double beta1, beta2, eps; /* Adam, AdamW, LAMB */
    double trust_coefficient; /* LARS η */
    double clip_norm;         /* global gradient-norm clipping; 0 = off */
} bl_optim_config;

/* The defaults of PyTorch (and of the papers for LARS/LAMB) for `kind`:
 * SGD lr 0.01, momentum 0; Adam/AdamW lr 0.001, β (0.9, 0.999), ε 1e-8, AdamW wd 0.01;
 * LARS lr 0.1, momentum 0.9, η 0.001, wd 5e-4; LAMB lr 0.001, β (0.9, 0.999), ε 1e-6, wd 0.01. */
BL_EXPORT bl_optim_config bl_optim_defaults(bl_optim_kind kind);

/* "sgd", "adam", "adamw", "lars", "lamb" → kind; BL_EINVAL with the list otherwise. */
BL_EXPORT int bl_optim_parse(bl_ctx *ctx, const char *name, bl_optim_kind *out);
BL_EXPORT const char *bl_optim_name(bl_optim_kind kind);

/* Checks a configuration (lr > 0, 0 ≤ momentum < 1, 0 ≤ β < 1, ε > 0, wd ≥ 0, clip ≥ 0);
 * the message names the optimizer and the field. */
BL_EXPORT int bl_optim_validate(bl_ctx *ctx, const bl_optim_config *cfg);

/* Whether the optimizer `kind` reads the configuration field `field` (its name in the stored
 * configuration: "lr", "momentum", "beta1", ...): all read lr, weight_decay and clip_norm; SGD
 * momentum, dampening, nesterov; LARS momentum, nesterov, trust_coefficient; Adam, AdamW and
 * LAMB beta1, beta2, eps. False for unknown names. */
BL_EXPORT bool bl_optim_uses_field(bl_optim_kind kind, const char *field);

typedef struct bl_optim bl_optim;

/* A new optimizer for `net` (after bl_net_build), with zeroed state on the net's device.
 * The configuration is copied. On success *out is freed with bl_optim_free. */
BL_EXPORT int bl_optim_new(bl_ctx *ctx, bl_net *net, const bl_optim_config *cfg,
                           bl_optim **out);
BL_EXPORT void bl_optim_free(bl_optim *opt);

/* One update of the net's parameters from its gradient block with learning rate `lr`.
 * The gradient block may be modified (clipping, decay folded in). *grad_norm (may be NULL)
 * receives the global gradient norm before clipping; it is computed only when asked for or
 * when clipping is on. Allocates nothing. */
BL_EXPORT int bl_optim_step(bl_ctx *ctx, bl_optim *opt, double lr, double *grad_norm);

/* Number of updates made so far. */
BL_EXPORT int64_t bl_optim_steps(const bl_optim *opt);

/* Optimizer state as floats (momentum / moment buffers), for checkpoints and for restoring
 * state after trial steps. bl_optim_state_size gives the length; save copies the state and the
 * step count to host memory, load puts them back. */
BL_EXPORT size_t bl_optim_state_size(const bl_optim *opt);
BL_EXPORT int bl_optim_save(bl_ctx *ctx, const bl_optim *opt, float *host, int64_t *steps);
BL_EXPORT int bl_optim_load(bl_ctx *ctx, bl_optim *opt, const float *host, int64_t steps);

/* Zeroes the state and the step count. */
BL_EXPORT void bl_optim_reset(bl_optim *opt);

BL_EXPORT const bl_optim_config *bl_optim_get_config(const bl_optim *opt);

#ifdef __cplusplus
}
#endif
#endif

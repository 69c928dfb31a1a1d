/* Optimizers over a network's flat parameter and gradient blocks (see batchlab/optim.h for the
 * update rules). All arithmetic goes through the device's operations, so the same code runs on
 * every backend; this file only decides which kernels to launch with which scalars.
 *
 * Weight decay and parameter tensors declared with decay = false (biases, normalization):
 * - SGD, Adam and AdamW decay every parameter, as torch.optim does by default (PyTorch users
 *   who exclude biases build separate parameter groups; a single group decays everything).
 *   The decay flag of a segment is therefore ignored by these three.
 * - LARS and LAMB follow optim.h and their papers: tensors with decay = false get no decay
 *   (and, for LARS, a local rate of 1); LAMB still applies its trust ratio to them.
 *
 * A step allocates nothing: the state (momentum or moment buffers), the scratch block for
 * the Adam-family direction and the reduction slots are allocated once, in bl_optim_new.
 *
 * Norms stay on the device: the sumsq kernels write into `red` (device memory), and the step
 * reads the slots back once per phase that needs them (the clipping norm, which must be known
 * before the update; the per-tensor norms of LARS or LAMB, all taken before any update).
 */
#include "batchlab/optim.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

struct bl_optim {
    bl_optim_config cfg;          /* copied at creation */
    bl_net *net;
    bl_device *dev;
    size_t n;                     /* number of parameters */
    const bl_param_segment *seg;  /* the net's parameter tensors, in block order */
    size_t n_seg;
    /* SGD, LARS: velocity [n]. Adam, AdamW, LAMB: first moment m [n], then second moment
     * v [n]. Zero floats for plain SGD (momentum 0), which keeps no state, as in PyTorch. */
    float *state;
    size_t state_floats;
    float *dir;                   /* [n] scratch: Adam-family update direction; else NULL */
    double *red;                  /* [n_red] device: reduction slots (norms) */
    double *red_host;             /* [n_red] host: their read-back */
    size_t n_red;                 /* 1 + 2·n_seg */
    int64_t steps;                /* updates made so far */
};

static bool is_adam_family(bl_optim_kind kind)
{
    return kind == BL_OPTIM_ADAM || kind == BL_OPTIM_ADAMW || kind == BL_OPTIM_LAMB;
}

/* LARS and LAMB work per parameter tensor: the segments must tile [0, n) in order. */
static int check_segments(bl_ctx *ctx, const bl_optim *opt)
{
    const char *name = bl_optim_name(opt->cfg.kind);
    if (!opt->seg || opt->n_seg == 0)
        return bl_error(ctx, BL_EINVAL, "optimizer %s: the network reports no parameter tensors",
                        name);
    size_t end = 0;
    for (size_t i = 0; i < opt->n_seg; i++) {
        const bl_param_segment *s = &opt->seg[i];
        if (s->offset != end || s->count > opt->n - s->offset)
            return bl_error(ctx, BL_EINVAL,
                            "optimizer %s: parameter tensor %zu (layer %d, %s) at offset %zu "
                            "with %zu values does not follow the previous one (ends at %zu of "
                            "%zu)",
                            name, i, s->layer, s->name ? s->name : "?", s->offset, s->count, end,
                            opt->n);
        end = s->offset + s->count;
    }
    if (end != opt->n)
        return bl_error(ctx, BL_EINVAL,
                        "optimizer %s: parameter tensors cover %zu of %zu parameters", name, end,
                        opt->n);
    return BL_OK;
}

static int alloc_zeroed(bl_ctx *ctx, bl_device *dev, size_t floats, float **out)
{
    void *p = NULL;
    int rc = bl_device_alloc(ctx, dev, floats * sizeof(float), &p);
    if (rc != BL_OK)
        return rc;
    dev->ops->fill(dev, (int64_t)floats, 0.0f, p);
    *out = p;
    return BL_OK;
}

int bl_optim_new(bl_ctx *ctx, bl_net *net, const bl_optim_config *cfg, bl_optim **out)
{
    if (!net || !cfg || !out)
        return bl_error(ctx, BL_EINVAL, "optimizer: net, configuration and output must not be "
                                        "NULL");
    int rc = bl_optim_validate(ctx, cfg);
    if (rc != BL_OK)
        return rc;
    const char *name = bl_optim_name(cfg->kind);
    size_t n = bl_net_num_params(net);
    if (n == 0 || !bl_net_params(net) || !bl_net_grads(net))
        return bl_error(ctx, BL_EINVAL,
                        "optimizer %s: the network has no parameters (is it built?)", name);

    /* The update kernels are the newest fields of the ops table; an older backend lacks them. */
    const bl_device_ops *ops = bl_net_device(net)->ops;
    if (ops->size < offsetof(bl_device_ops, adam_direction) + sizeof ops->adam_direction)
        return bl_error(ctx, BL_EUNSUPPORTED,
                        "optimizer %s: device %s has no optimizer kernels (its operation table "
                        "is %u bytes, older than this library's)",
                        name, ops->name, (unsigned)ops->size);

    bl_optim *opt = calloc(1, sizeof *opt);
    if (!opt)
        return bl_error(ctx, BL_ENOMEM, "optimizer %s: out of memory", name);
    opt->cfg = *cfg;
    opt->net = net;
    opt->dev = bl_net_device(net);
    opt->n = n;
    opt->seg = bl_net_segments(net, &opt->n_seg);

    if (cfg->kind == BL_OPTIM_LARS || cfg->kind == BL_OPTIM_LAMB) {
        rc = check_segments(ctx, opt);
        if (rc != BL_OK)
            goto fail;
    }

    switch (cfg->kind) {
    case BL_OPTIM_SGD:
        opt->state_floats = cfg->momentum > 0 ? n : 0;
        break;
    case BL_OPTIM_LARS:
        opt->state_floats = n;
        break;
    case BL_OPTIM_ADAM:
    case BL_OPTIM_ADAMW:
    case BL_OPTIM_LAMB:
        opt->state_floats = 2 * n;
        break;
    }
    if (opt->state_floats > 0 &&
        (rc = alloc_zeroed(ctx, opt->dev, opt->state_floats, &opt->state)) != BL_OK)
        goto fail;
    if (is_adam_family(cfg->kind) && (rc = alloc_zeroed(ctx, opt->dev, n, &opt->dir)) != BL_OK)
        goto fail;
    opt->n_red = 1 + 2 * opt->n_seg;
    opt->red_host = calloc(opt->n_red, sizeof *opt->red_host);
    if (!opt->red_host) {
        rc = bl_error(ctx, BL_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = alloc_zeroed(ctx, opt->dev, 2 * opt->n_red, (float **)&opt->red)) != BL_OK)
        goto fail; /* doubles zeroed as pairs of float zeros */
    *out = opt;
    return BL_OK;

fail:
    bl_error_prefix(ctx, "optimizer %s", name);
    bl_optim_free(opt);
    return rc;
}

void bl_optim_free(bl_optim *opt)
{
    if (!opt)
        return;
    bl_device_release(opt->dev, opt->state, opt->state_floats * sizeof(float));
    bl_device_release(opt->dev, opt->dir, opt->dir ? opt->n * sizeof(float) : 0);
    bl_device_release(opt->dev, opt->red, opt->n_red * sizeof(double));
    free(opt->red_host);
    free(opt);
}

/* ---- update rules; t is the number of this step, counted from 1 ---------------------------- */

static void step_sgd(bl_optim *opt, float *w, float *g, float lr, int64_t t)
{
    const bl_optim_config *c = &opt->cfg;
    bl_device *dev = opt->dev;
    if (!opt->state) {
        /* Momentum 0 keeps no velocity (as in PyTorch), and sgd_update needs one, so:
         * g += wd·w, then w −= lr·g; one pass without decay, two with. */
        if (c->weight_decay > 0)
            dev->ops->axpy(dev, (int64_t)opt->n, (float)c->weight_decay, w, g);
        dev->ops->axpy(dev, (int64_t)opt->n, -lr, g, w);
        return;
    }
    /* PyTorch starts the velocity at g' (no dampening) on the first step: with v = 0, passing
     * dampening 0 does exactly that. One fused pass over the parameters. */
    float dampening = t == 1 ? 0.0f : (float)c->dampening;
    dev->ops->sgd_update(dev, (int64_t)opt->n, lr, (float)c->momentum, dampening, c->nesterov,
                         (float)c->weight_decay, g, opt->state, w);
}

/* Reads the first `count` reduction slots back into red_host: the one wait of a phase. */
static int read_slots(bl_ctx *ctx, bl_optim *opt, size_t count)
{
    return bl_device_download(ctx, opt->dev, opt->red_host, opt->red, count * sizeof(double));
}

static int step_lars(bl_ctx *ctx, bl_optim *opt, float *w, float *g, float lr)
{
    const bl_optim_config *c = &opt->cfg;
    bl_device *dev = opt->dev;
    /* every norm first (segments are disjoint, so this is the same as norm-then-update per
     * segment), then one read-back */
    for (size_t i = 0; i < opt->n_seg; i++) {
        const bl_param_segment *s = &opt->seg[i];
        if (s->decay) {
            dev->ops->sumsq(dev, (int64_t)s->count, w + s->offset, &opt->red[1 + 2 * i]);
            dev->ops->sumsq(dev, (int64_t)s->count, g + s->offset, &opt->red[2 + 2 * i]);
        }
    }
    int rc = read_slots(ctx, opt, opt->n_red);
    if (rc != BL_OK)
        return rc;
    for (size_t i = 0; i < opt->n_seg; i++) {
        const bl_param_segment *s = &opt->seg[i];
        int64_t cnt = (int64_t)s->count;
        float *ws = w + s->offset, *gs = g + s->offset, *vs = opt->state + s->offset;
        float lambda = 1.0f, wd = 0.0f;
        if (s->decay) {
            double wn = sqrt(opt->red_host[1 + 2 * i]);
            double gn = sqrt(opt->red_host[2 + 2 * i]);
            if (wn > 0 && gn > 0)
                lambda = (float)(c->trust_coefficient * wn / (gn + c->weight_decay * wn));
            /* g' = λ·(g + wd·w) = (λ·g) + (λ·wd)·w: scale g, let the kernel add the decay. */
            if (lambda != 1.0f)
                dev->ops->scale(dev, cnt, lambda, gs);
            wd = lambda * (float)c->weight_decay;
        }
        /* No dampening for LARS, so v = g' on the first step falls out of v = 0. */
        dev->ops->sgd_update(dev, cnt, lr, (float)c->momentum, 0.0f, c->nesterov, wd, gs, vs,
                             ws);
    }
    return BL_OK;
}

static void step_adam(bl_optim *opt, float *w, float *g, float lr, int64_t t)
{
    const bl_optim_config *c = &opt->cfg;
    bl_device *dev = opt->dev;
    int64_t n = (int64_t)opt->n;
    float bias1 = (float)(1.0 - pow(c->beta1, (double)t));
    float bias2 = (float)(1.0 - pow(c->beta2, (double)t));
    float wd_decoupled = 0.0f;
    if (c->kind == BL_OPTIM_ADAM) {
        if (c->weight_decay > 0) /* L2: g' = g + wd·w feeds the moments */
            dev->ops->axpy(dev, n, (float)c->weight_decay, w, g);
    } else {
        /* AdamW: w −= lr·(m̂/(sqrt(v̂)+ε) + wd·w), the same as PyTorch's w ·= (1 − lr·wd)
         * followed by the Adam step, since the Adam step does not depend on w. */
        wd_decoupled = (float)c->weight_decay;
    }
    float *m = opt->state, *v = opt->state + opt->n;
    dev->ops->adam_direction(dev, n, (float)c->beta1, (float)c->beta2, (float)c->eps, bias1,
                             bias2, wd_decoupled, g, w, m, v, opt->dir);
    dev->ops->axpy(dev, n, -lr, opt->dir, w);
}

static int step_lamb(bl_ctx *ctx, bl_optim *opt, float *w, float *g, float lr, int64_t t)
{
    const bl_optim_config *c = &opt->cfg;
    bl_device *dev = opt->dev;
    float bias1 = (float)(1.0 - pow(c->beta1, (double)t));
    float bias2 = (float)(1.0 - pow(c->beta2, (double)t));
    float *m = opt->state, *v = opt->state + opt->n;
    /* directions and norms of every segment, one read-back, then the updates (segments are
     * disjoint: the same result as doing each segment in turn) */
    for (size_t i = 0; i < opt->n_seg; i++) {
        const bl_param_segment *s = &opt->seg[i];
        int64_t cnt = (int64_t)s->count;
        size_t o = s->offset;
        float wd = s->decay ? (float)c->weight_decay : 0.0f;
        dev->ops->adam_direction(dev, cnt, (float)c->beta1, (float)c->beta2, (float)c->eps,
                                 bias1, bias2, wd, g + o, w + o, m + o, v + o, opt->dir + o);
        dev->ops->sumsq(dev, cnt, w + o, &opt->red[1 + 2 * i]);
        dev->ops->sumsq(dev, cnt, opt->dir + o, &opt->red[2 + 2 * i]);
    }
    int rc = read_slots(ctx, opt, opt->n_red);
    if (rc != BL_OK)
        return rc;
    for (size_t i = 0; i < opt->n_seg; i++) {
        const bl_param_segment *s = &opt->seg[i];
        size_t o = s->offset;
        double wn = sqrt(opt->red_host[1 + 2 * i]);
        double un = sqrt(opt->red_host[2 + 2 * i]);
        double r = (wn > 0 && un > 0) ? wn / un : 1.0;
        dev->ops->axpy(dev, (int64_t)s->count, (float)(-(double)lr * r), opt->dir + o, w + o);
    }
    return BL_OK;
}

int bl_optim_step(bl_ctx *ctx, bl_optim *opt, double lr, double *grad_norm)
{
    if (!opt)
        return bl_error(ctx, BL_EINVAL, "optimizer: NULL optimizer");
    const char *name = bl_optim_name(opt->cfg.kind);
    if (!(lr >= 0 && isfinite(lr)))
        return bl_error(ctx, BL_EINVAL, "optimizer %s: step lr must be >= 0 and finite, got %g",
                        name, lr);
    bl_device *dev = opt->dev;
    float *w = bl_net_params(opt->net), *g = bl_net_grads(opt->net);
    int64_t n = (int64_t)opt->n;

    /* The global norm costs a pass (and a read-back); only when asked for or when clipping. */
    double clip = opt->cfg.clip_norm;
    if (clip > 0 || grad_norm) {
        dev->ops->sumsq(dev, n, g, &opt->red[0]);
        int rc = read_slots(ctx, opt, 1);
        if (rc != BL_OK)
            return bl_error_prefix(ctx, "optimizer %s", name);
        double norm = sqrt(opt->red_host[0]);
        if (grad_norm)
            *grad_norm = norm;
        if (!isfinite(norm))
            return bl_error(ctx, BL_EDIVERGED,
                            "optimizer %s: gradient norm is not finite (%g) before step %lld; "
                            "parameters not updated",
                            name, norm, (long long)(opt->steps + 1));
        if (clip > 0 && norm > clip)
            dev->ops->scale(dev, n, (float)(clip / norm), g);
    }

    int64_t t = opt->steps + 1;
    float flr = (float)lr;
    int rc = BL_OK;
    switch (opt->cfg.kind) {
    case BL_OPTIM_SGD:
        step_sgd(opt, w, g, flr, t);
        break;
    case BL_OPTIM_LARS:
        rc = step_lars(ctx, opt, w, g, flr);
        break;
    case BL_OPTIM_ADAM:
    case BL_OPTIM_ADAMW:
        step_adam(opt, w, g, flr, t);
        break;
    case BL_OPTIM_LAMB:
        rc = step_lamb(ctx, opt, w, g, flr, t);
        break;
    }
    if (rc != BL_OK)
        return bl_error_prefix(ctx, "optimizer %s", name);
    opt->steps = t;
    return BL_OK;
}

int64_t bl_optim_steps(const bl_optim *opt)
{
    return opt ? opt->steps : 0;
}

size_t bl_optim_state_size(const bl_optim *opt)
{
    return opt ? opt->state_floats : 0;
}

int bl_optim_save(bl_ctx *ctx, const bl_optim *opt, float *host, int64_t *steps)
{
    if (!opt || (!host && opt->state_floats > 0))
        return bl_error(ctx, BL_EINVAL, "optimizer save: optimizer and buffer must not be NULL");
    if (opt->state_floats > 0) {
        int rc = bl_device_download(ctx, opt->dev, host, opt->state,
                                    opt->state_floats * sizeof(float));
        if (rc != BL_OK)
            return bl_error_prefix(ctx, "optimizer %s: saving state",
                                   bl_optim_name(opt->cfg.kind));
    }
    if (steps)
        *steps = opt->steps;
    return BL_OK;
}

int bl_optim_load(bl_ctx *ctx, bl_optim *opt, const float *host, int64_t steps)
{
    if (!opt || (!host && opt->state_floats > 0))
        return bl_error(ctx, BL_EINVAL, "optimizer load: optimizer and buffer must not be NULL");
    if (steps < 0)
        return bl_error(ctx, BL_EINVAL, "optimizer %s: load: step count must be >= 0, got %lld",
                        bl_optim_name(opt->cfg.kind), (long long)steps);
    if (opt->state_floats > 0) {
        int rc = bl_device_upload(ctx, opt->dev, opt->state, host,
                                  opt->state_floats * sizeof(float));
        if (rc != BL_OK)
            return bl_error_prefix(ctx, "optimizer %s: loading state",
                                   bl_optim_name(opt->cfg.kind));
    }
    opt->steps = steps;
    return BL_OK;
}

void bl_optim_reset(bl_optim *opt)
{
    if (!opt)
        return;
    if (opt->state_floats > 0)
        opt->dev->ops->fill(opt->dev, (int64_t)opt->state_floats, 0.0f, opt->state);
    opt->steps = 0;
}

const bl_optim_config *bl_optim_get_config(const bl_optim *opt)
{
    return opt ? &opt->cfg : NULL;
}

/* Optimizer configurations: defaults, names and validation (see batchlab/optim.h). */
#include "batchlab/optim.h"

#include <math.h>
#include <string.h>

static const char *const optim_names[] = {
    [BL_OPTIM_SGD] = "sgd",
    [BL_OPTIM_ADAM] = "adam",
    [BL_OPTIM_ADAMW] = "adamw",
    [BL_OPTIM_LARS] = "lars",
    [BL_OPTIM_LAMB] = "lamb",
};
#define N_OPTIM_KINDS (sizeof optim_names / sizeof optim_names[0])

bl_optim_config bl_optim_defaults(bl_optim_kind kind)
{
    bl_optim_config c = {.kind = kind,
                         .lr = 0.01,
                         .momentum = 0.0,
                         .dampening = 0.0,
                         .nesterov = false,
                         .weight_decay = 0.0,
                         .beta1 = 0.9,
                         .beta2 = 0.999,
                         .eps = 1e-8,
                         .trust_coefficient = 0.001,
                         .clip_norm = 0.0};
    switch (kind) {
    case BL_OPTIM_SGD:
        break;
    case BL_OPTIM_ADAM:
        c.lr = 0.001;
        break;
    case BL_OPTIM_ADAMW:
        c.lr = 0.001;
        c.weight_decay = 0.01;
        break;
    case BL_OPTIM_LARS:
        c.lr = 0.1;
        c.momentum = 0.9;
        c.weight_decay = 5e-4;
        break;
    case BL_OPTIM_LAMB:
        c.lr = 0.001;
        c.eps = 1e-6;
        c.weight_decay = 0.01;
        break;
    }
    return c;
}

bool bl_optim_uses_field(bl_optim_kind kind, const char *f)
{
    bool momentum = kind == BL_OPTIM_SGD || kind == BL_OPTIM_LARS;
    bool betas = kind == BL_OPTIM_ADAM || kind == BL_OPTIM_ADAMW || kind == BL_OPTIM_LAMB;
    if (!f || (unsigned)kind >= N_OPTIM_KINDS)
        return false;
    if (strcmp(f, "lr") == 0 || strcmp(f, "weight_decay") == 0 || strcmp(f, "clip_norm") == 0)
        return true;
    if (strcmp(f, "momentum") == 0 || strcmp(f, "nesterov") == 0)
        return momentum;
    if (strcmp(f, "dampening") == 0)
        return kind == BL_OPTIM_SGD;
    if (strcmp(f, "trust_coefficient") == 0)
        return kind == BL_OPTIM_LARS;
    if (strcmp(f, "beta1") == 0 || strcmp(f, "beta2") == 0 || strcmp(f, "eps") == 0)
        return betas;
    return false;
}

const char *bl_optim_name(bl_optim_kind kind)
{
    if ((unsigned)kind < N_OPTIM_KINDS)
        return optim_names[kind];
    return "unknown";
}

int bl_optim_parse(bl_ctx *ctx, const char *name, bl_optim_kind *out)
{
    if (!name || !out)
        return bl_error(ctx, BL_EINVAL, "optimizer: name and output must not be NULL");
    for (size_t i = 0; i < N_OPTIM_KINDS; i++) {
        if (strcmp(name, optim_names[i]) == 0) {
            *out = (bl_optim_kind)i;
            return BL_OK;
        }
    }
    return bl_error(ctx, BL_EINVAL,
                    "unknown optimizer \"%s\" (expected sgd, adam, adamw, lars or lamb)", name);
}

/* Each check is written so that NaN fails it (comparisons with NaN are false). */
static int bad(bl_ctx *ctx, const bl_optim_config *cfg, const char *field, const char *rule,
               double got)
{
    return bl_error(ctx, BL_EOPTION, "optimizer %s: %s must be %s, got %g",
                    bl_optim_name(cfg->kind), field, rule, got);
}

int bl_optim_validate(bl_ctx *ctx, const bl_optim_config *cfg)
{
    if (!cfg)
        return bl_error(ctx, BL_EINVAL, "optimizer: configuration must not be NULL");
    if ((unsigned)cfg->kind >= N_OPTIM_KINDS)
        return bl_error(ctx, BL_EOPTION, "optimizer: unknown kind %d", (int)cfg->kind);

    /* Fields every optimizer reads. */
    if (!(cfg->lr > 0 && isfinite(cfg->lr)))
        return bad(ctx, cfg, "lr", "> 0 and finite", cfg->lr);
    if (!(cfg->weight_decay >= 0 && isfinite(cfg->weight_decay)))
        return bad(ctx, cfg, "weight_decay", ">= 0 and finite", cfg->weight_decay);
    if (!(cfg->clip_norm >= 0 && isfinite(cfg->clip_norm)))
        return bad(ctx, cfg, "clip_norm", ">= 0 and finite (0 = off)", cfg->clip_norm);

    /* Fields only some optimizers read; the others are ignored, not checked. */
    bool uses_momentum = cfg->kind == BL_OPTIM_SGD || cfg->kind == BL_OPTIM_LARS;
    bool uses_betas = cfg->kind == BL_OPTIM_ADAM || cfg->kind == BL_OPTIM_ADAMW ||
                      cfg->kind == BL_OPTIM_LAMB;
    if (uses_momentum) {
        if (!(cfg->momentum >= 0 && cfg->momentum < 1))
            return bad(ctx, cfg, "momentum", "in [0, 1)", cfg->momentum);
        if (cfg->nesterov && !(cfg->momentum > 0))
            return bl_error(ctx, BL_EOPTION,
                            "optimizer %s: nesterov needs momentum > 0, got momentum %g",
                            bl_optim_name(cfg->kind), cfg->momentum);
    }
    if (cfg->kind == BL_OPTIM_SGD) {
        if (!(cfg->dampening >= 0 && cfg->dampening <= 1))
            return bad(ctx, cfg, "dampening", "in [0, 1]", cfg->dampening);
        if (cfg->nesterov && cfg->dampening != 0)
            return bl_error(ctx, BL_EOPTION,
                            "optimizer sgd: nesterov needs dampening 0, got dampening %g",
                            cfg->dampening);
    }
    if (cfg->kind == BL_OPTIM_LARS) {
        if (!(cfg->trust_coefficient > 0 && isfinite(cfg->trust_coefficient)))
            return bad(ctx, cfg, "trust_coefficient", "> 0 and finite",
                       cfg->trust_coefficient);
    }
    if (uses_betas) {
        if (!(cfg->beta1 >= 0 && cfg->beta1 < 1))
            return bad(ctx, cfg, "beta1", "in [0, 1)", cfg->beta1);
        if (!(cfg->beta2 >= 0 && cfg->beta2 < 1))
            return bad(ctx, cfg, "beta2", "in [0, 1)", cfg->beta2);
        if (!(cfg->eps > 0 && isfinite(cfg->eps)))
            return bad(ctx, cfg, "eps", "> 0 and finite", cfg->eps);
    }
    return BL_OK;
}

/* The effective learning rate of a step:
 *   lr = optim.lr · scale(B) · warmup · schedule · factor
 * scale: 1, B/B₀ (Goyal et al. 2017) or sqrt(B/B₀) (Hoffer et al. 2017), recomputed whenever
 * the batch changes. warmup: from lr/scale up to lr linearly over the warmup period (Goyal's
 * gradual warmup; from 0 when there is no scaling above 1). schedule: progress p is measured in
 * epochs (or steps when the budget is in steps), so it stays right when the batch changes. */
#include <math.h>

#include "engine/engine.h"

int bl__lr_validate(bl_ctx *ctx, const bl_train_config *cfg, int64_t base_batch)
{
    if (cfg->lr_scaling != BL_LR_SCALE_NONE && base_batch < 1)
        return bl_error(ctx, BL_EOPTION, "lr_scaling: base_batch must be ≥ 1, got %lld",
                        (long long)base_batch);
    if (cfg->warmup_epochs < 0 || cfg->warmup_steps < 0)
        return bl_error(ctx, BL_EOPTION, "lr_scaling: warmup must be ≥ 0");
    switch (cfg->lr_schedule) {
    case BL_LR_CONSTANT:
        break;
    case BL_LR_STEP:
        if (!(cfg->lr_gamma > 0))
            return bl_error(ctx, BL_EOPTION, "lr_schedule step: gamma must be > 0, got %g",
                            cfg->lr_gamma);
        for (int i = 1; i < cfg->lr_milestone_count; i++)
            if (!(cfg->lr_milestones[i] > cfg->lr_milestones[i - 1]))
                return bl_error(ctx, BL_EOPTION,
                                "lr_schedule step: milestones must increase (%g then %g)",
                                cfg->lr_milestones[i - 1], cfg->lr_milestones[i]);
        break;
    case BL_LR_COSINE:
    case BL_LR_LINEAR:
        if (!(cfg->epochs > 0) && cfg->max_steps <= 0)
            return bl_error(ctx, BL_EOPTION,
                            "lr_schedule %s needs a budget in epochs or max_steps to decay over",
                            cfg->lr_schedule == BL_LR_COSINE ? "cosine" : "linear");
        break;
    default:
        return bl_error(ctx, BL_EOPTION, "lr_schedule: unknown kind %d", (int)cfg->lr_schedule);
    }
    return BL_OK;
}

double bl__lr_scale(bl_lr_scaling rule, double batch, double base_batch)
{
    if (rule == BL_LR_SCALE_LINEAR)
        return batch / base_batch;
    if (rule == BL_LR_SCALE_SQRT)
        return sqrt(batch / base_batch);
    return 1.0;
}

static double progress(const bl_train_config *cfg, int64_t train_size, int64_t step,
                       int64_t samples)
{
    double p;
    if (cfg->epochs > 0)
        p = (double)samples / ((double)train_size * cfg->epochs);
    else
        p = (double)step / (double)cfg->max_steps;
    return p < 0 ? 0 : p > 1 ? 1 : p;
}

double bl__lr_at(const bl_train_config *cfg, int64_t base_batch, int64_t train_size,
                 int64_t batch, int64_t step, int64_t samples, double factor)
{
    double scale = bl__lr_scale(cfg->lr_scaling, (double)batch, (double)base_batch);

    double warm = 1.0;
    double warm_p = 1.0;
    if (cfg->warmup_steps > 0)
        warm_p = (double)(step + 1) / (double)cfg->warmup_steps;
    else if (cfg->warmup_epochs > 0)
        warm_p = (double)(samples + batch) / ((double)train_size * cfg->warmup_epochs);
    if (warm_p < 1.0) {
        double from = scale > 1.0 ? 1.0 / scale : 0.0;
        warm = from + (1.0 - from) * warm_p;
    }

    double sched = 1.0;
    switch (cfg->lr_schedule) {
    case BL_LR_STEP: {
        double epoch = (double)samples / (double)train_size;
        for (int i = 0; i < cfg->lr_milestone_count; i++)
            if (epoch >= cfg->lr_milestones[i])
                sched *= cfg->lr_gamma;
        break;
    }
    case BL_LR_COSINE:
        sched = 0.5 * (1.0 + cos(3.141592653589793 * progress(cfg, train_size, step, samples)));
        break;
    case BL_LR_LINEAR:
        sched = 1.0 - progress(cfg, train_size, step, samples);
        break;
    default:
        break;
    }
    return cfg->optim.lr * scale * warm * sched * factor;
}

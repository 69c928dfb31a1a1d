/* The max-batch finder: see find_batch.h. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/find_batch.h"
#include "batchlab/model.h"
#include "batchlab/train.h"
#include "base/clock.h"

bl_find_batch_config bl_find_batch_defaults(void)
{
    bl_find_batch_config c;
    memset(&c, 0, sizeof c);
    c.optim = bl_optim_defaults(BL_OPTIM_SGD);
    c.seed = 1;
    c.mode = BL_FIND_POWER;
    c.init = 2;
    c.max = 8192;
    c.max_trials = 25;
    c.steps_per_trial = 3;
    c.margin = 0.05;
    return c;
}

int bl_find_mode_parse(bl_ctx *ctx, const char *name, bl_find_mode *out)
{
    if (name && strcmp(name, "power") == 0) {
        *out = BL_FIND_POWER;
        return BL_OK;
    }
    if (name && strcmp(name, "binsearch") == 0) {
        *out = BL_FIND_BINSEARCH;
        return BL_OK;
    }
    return bl_error(ctx, BL_EOPTION, "find-batch: unknown mode '%s'; accepted: power, binsearch",
                    name ? name : "(null)");
}

int bl_parse_size(bl_ctx *ctx, const char *text, size_t *out)
{
    char *end = NULL;
    errno = 0;
    double v = text ? strtod(text, &end) : 0;
    double mult = 1;
    if (end && *end) {
        switch (tolower((unsigned char)*end)) {
        case 'k': mult = 1024.0; end++; break;
        case 'm': mult = 1024.0 * 1024.0; end++; break;
        case 'g': mult = 1024.0 * 1024.0 * 1024.0; end++; break;
        case 't': mult = 1024.0 * 1024.0 * 1024.0 * 1024.0; end++; break;
        default: break;
        }
        if (mult > 1 && tolower((unsigned char)*end) == 'i')
            end++;
        if (tolower((unsigned char)*end) == 'b')
            end++;
    }
    if (!text || end == text || *end || errno || !(v > 0) || !(v * mult < 1e19))
        return bl_error(ctx, BL_EOPTION,
                        "'%s' is not a memory size (expected e.g. 1048576, 512MB or 2G)",
                        text ? text : "(null)");
    *out = (size_t)(v * mult);
    return BL_OK;
}

/* One trial: returns 1 when it fits, 0 when it ran out of memory, or an error. The trial's
 * memory is measured, and limited to cfg->budget_bytes, by a watch: the device's own
 * budget_bytes and peak_bytes, which other users of a shared device read, stay untouched. */
static int trial(bl_ctx *ctx, const bl_find_batch_config *cfg, int64_t batch, bl_find_trial *t)
{
    bl_device *dev = cfg->dev;
    bl_device_watch watch;
    bl_device_watch_begin(dev, &watch, cfg->budget_bytes, BL_DEVICE_WATCH_PRIVATE);
    double t0 = bl__now();
    t->batch = batch;

    bl_net *net = NULL;
    int rc = bl_model_build(ctx, cfg->model, cfg->model_opts, bl_dataset_info(cfg->data), dev,
                            cfg->seed, &net);
    bl_run_result res;
    memset(&res, 0, sizeof res);
    if (rc == BL_OK) {
        bl_train_config tc = bl_train_defaults();
        tc.net = net;
        tc.data = cfg->data;
        tc.optim = cfg->optim;
        tc.seed = cfg->seed;
        tc.batch = batch;
        tc.max_steps = cfg->steps_per_trial;
        tc.skip_eval = true;
        tc.skip_test = true;
        tc.eval_unit = BL_EVAL_STEPS;
        tc.eval_every = (double)cfg->steps_per_trial;
        rc = bl_train(ctx, &tc, &res);
        if (rc == BL_OK && res.status == BL_RUN_FAILED)
            rc = bl_error(ctx, BL_EINVAL, "%s", res.error);
        bl_run_result_free(&res);
    }
    bl_net_free(net);
    bl_device_watch_end(dev, &watch);
    t->peak_bytes = watch.peak - watch.base;
    t->seconds = bl__now() - t0;
    if (rc == BL_ENOMEM) {
        t->fits = 0;
        return 0;
    }
    if (rc != BL_OK)
        return bl_error_prefix(ctx, "find-batch: trial at batch %lld", (long long)batch);
    t->fits = 1;
    return 1;
}

int bl_find_max_batch(bl_ctx *ctx, const bl_find_batch_config *cfg, bl_find_batch_result *out)
{
    memset(out, 0, sizeof *out);
    if (!cfg || !cfg->model || !cfg->data || !cfg->dev)
        return bl_error(ctx, BL_EINVAL, "find-batch: a model, a dataset and a device are needed");
    if (cfg->init < 1 || cfg->max < cfg->init)
        return bl_error(ctx, BL_EOPTION, "find-batch: need 1 ≤ init ≤ max (init %lld, max %lld)",
                        (long long)cfg->init, (long long)cfg->max);
    if (cfg->max_trials < 1 || cfg->max_trials > BL_FIND_MAX_TRIALS)
        return bl_error(ctx, BL_EOPTION, "find-batch: max_trials must be in [1, %d], got %d",
                        BL_FIND_MAX_TRIALS, cfg->max_trials);
    if (cfg->steps_per_trial < 1)
        return bl_error(ctx, BL_EOPTION, "find-batch: steps_per_trial must be ≥ 1");
    if (!(cfg->margin >= 0 && cfg->margin < 1))
        return bl_error(ctx, BL_EOPTION, "find-batch: margin must be in [0, 1), got %g",
                        cfg->margin);
    const bl_device *dev = cfg->dev;
    /* host memory does not run out before the machine swaps: a budget must stop the search */
    if (cfg->budget_bytes == 0 && dev->budget_bytes == 0 &&
        (bl_device_caps(dev) & BL_DEVICE_CAP_HOST_ADDRESSABLE))
        return bl_error(ctx, BL_EOPTION,
                        "find-batch: on the CPU a memory budget is needed (e.g. --budget 512MB)");

    int64_t lo = 0, hi = 0; /* largest fit, smallest failure (0 = none yet) */
    int64_t batch = cfg->init;
    int rc = BL_OK;
    while (out->trial_count < cfg->max_trials) {
        bl_find_trial *t = &out->trials[out->trial_count++];
        int fits = trial(ctx, cfg, batch, t);
        if (fits < 0) {
            rc = fits;
            break;
        }
        if (fits) {
            lo = batch;
            if (batch >= cfg->max) {
                out->hit_max = true;
                break;
            }
        } else {
            hi = batch;
        }
        int64_t next;
        if (hi == 0) {
            next = batch * 2 > cfg->max ? cfg->max : batch * 2;
        } else if (lo == 0) {
            next = batch / 2; /* nothing fit yet: halve */
            if (next < 1)
                break;
        } else if (cfg->mode == BL_FIND_POWER || hi - lo <= 1) {
            break;
        } else {
            next = lo + (hi - lo) / 2;
        }
        batch = next;
    }
    if (rc != BL_OK)
        return rc;
    if (lo == 0) {
        size_t need = out->trial_count ? out->trials[out->trial_count - 1].peak_bytes : 0;
        return bl_error(ctx, BL_ENOMEM,
                        "find-batch: not even batch %lld fits the memory budget (a trial "
                        "reached %zu bytes before failing)",
                        (long long)batch, need);
    }
    out->largest = lo;
    out->recommended = (int64_t)((double)lo * (1.0 - cfg->margin));
    if (out->recommended < 1)
        out->recommended = 1;
    return BL_OK;
}

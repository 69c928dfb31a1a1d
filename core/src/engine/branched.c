/* Branched training (batchlab/branched.h): a base run paused at a few points through bl_run,
 * and from each point's snapshot one branch per batch multiplier k, each trained with bl_run
 * for the same number of samples. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "batchlab/branched.h"
#include "batchlab/snapshot.h"
#include "batchlab/sweep.h"
#include "engine/engine.h"

/* No evaluation until the end of a run: the cadence's next point is never reached (a branch
 * continues the base run's cadence, restored from the snapshot, in the same unit). */
#define NEVER 1e18

static const int64_t default_ks[] = {1, 2, 4, 8, 16};

bl_branched_config bl_branched_defaults(void)
{
    bl_branched_config c;
    memset(&c, 0, sizeof c);
    c.n_points = 3;
    c.ks = default_ks;
    c.n_ks = sizeof default_ks / sizeof default_ks[0];
    c.lr_rule = BL_LR_SCALE_LINEAR;
    c.tolerance = 0.01;
    c.measure = BL_BRANCH_MEASURE_AUTO;
    c.evals = 1;
    return c;
}

static const char *const measure_names[] = {"auto", "val_loss", "train_loss"};

int bl_branch_measure_parse(bl_ctx *ctx, const char *name, bl_branch_measure *out)
{
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, measure_names[i]) == 0) {
            *out = (bl_branch_measure)i;
            return BL_OK;
        }
    return bl_error(ctx, BL_EOPTION, "'measure' must be auto, val_loss or train_loss, got '%s'",
                    name ? name : "(null)");
}

const char *bl_branch_measure_name(bl_branch_measure m)
{
    return (unsigned)m < 3 ? measure_names[m] : "?";
}

/* ---- checks and points ------------------------------------------------------------------------ */

static int check_base(bl_ctx *ctx, const bl_run_plan *p)
{
    const bl_train_config *t = &p->train;
    if (!p->model || !t->data)
        return bl_error(ctx, BL_EINVAL, "critical batch: the base run needs a model and a "
                        "dataset");
    if (t->batch < 1)
        return bl_error(ctx, BL_EOPTION, "critical batch: 'batch' (the base batch B0) must be "
                        "≥ 1, got %lld", (long long)t->batch);
    if (p->scheduler_plugin || t->scheduler || t->batch_fn)
        return bl_error(ctx, BL_EOPTION, "critical batch: 'batch' must be a constant batch B0 "
                        "for the base run, not a schedule");
    if (!(t->optim.lr > 0) || !isfinite(t->optim.lr))
        return bl_error(ctx, BL_EOPTION, "critical batch: the optimizer's 'lr' must be > 0, got "
                        "%g", t->optim.lr);
    if (t->max_seconds > 0)
        return bl_error(ctx, BL_EOPTION, "critical batch: 'max_seconds' is not taken: give "
                        "the base run's horizon in epochs, max_steps or max_samples");
    if (t->drop_last)
        return bl_error(ctx, BL_EOPTION, "critical batch: 'drop_last' is not supported");
    if (p->checkpoint_every > 0 || p->checkpoint_seconds > 0 || p->checkpoint || p->save ||
        p->init || p->resume || t->resume_from)
        return bl_error(ctx, BL_EOPTION, "critical batch: checkpoints, save, init and resume "
                        "are not taken by the base run");
    if (t->on_point || t->criterion || t->on_snapshot || t->on_final_snapshot)
        return bl_error(ctx, BL_EOPTION, "critical batch: the base run takes no callbacks "
                        "(stop, on_point, snapshots)");
    return BL_OK;
}

/* Steps of batch B0 (partial batches at each epoch's end) to reach `samples`, and back. */
static int64_t steps_for(int64_t samples, int64_t n, int64_t b0)
{
    int64_t per_epoch = (n + b0 - 1) / b0;
    return samples / n * per_epoch + (samples % n + b0 - 1) / b0;
}

static int64_t samples_at(int64_t steps, int64_t n, int64_t b0)
{
    int64_t per_epoch = (n + b0 - 1) / b0;
    int64_t rest = steps % per_epoch * b0;
    return steps / per_epoch * n + (rest < n ? rest : n);
}

/* The base run's horizon in samples (the smallest of its budgets); 0 = none. */
static int64_t horizon(const bl_train_config *t, int64_t n)
{
    int64_t h = 0;
    if (t->epochs > 0)
        h = (int64_t)floor(t->epochs * (double)n + 1e-9);
    if (t->max_steps > 0) {
        int64_t s = samples_at(t->max_steps, n, t->batch);
        h = h > 0 && h < s ? h : s;
    }
    if (t->max_samples > 0)
        h = h > 0 && h < t->max_samples ? h : t->max_samples;
    return h;
}

/* The snapshot steps, increasing and unique, into steps[] (*count of them). */
static int place_points(bl_ctx *ctx, const bl_branched_config *c, int64_t n, int64_t h,
                        int64_t *steps, size_t *count)
{
    int64_t b0 = c->base->train.batch;
    int64_t want[BL_BRANCH_MAX_POINTS];
    size_t m;
    if (c->points) {
        if (c->n_given < 1 || c->n_given > BL_BRANCH_MAX_POINTS)
            return bl_error(ctx, BL_EOPTION, "critical batch: 'points' must hold 1 to %d "
                            "points, got %zu", BL_BRANCH_MAX_POINTS, c->n_given);
        for (size_t i = 0; i < c->n_given; i++) {
            if (c->points[i] < 1 || (i > 0 && c->points[i] <= c->points[i - 1]))
                return bl_error(ctx, BL_EOPTION, "critical batch: 'points' must be increasing "
                                "sample counts ≥ 1 (point %zu is %lld)", i + 1,
                                (long long)c->points[i]);
            want[i] = c->points[i];
        }
        m = c->n_given;
    } else {
        if (c->n_points < 1 || c->n_points > BL_BRANCH_MAX_POINTS)
            return bl_error(ctx, BL_EOPTION, "critical batch: 'n_points' must be in 1..%d, "
                            "got %d", BL_BRANCH_MAX_POINTS, c->n_points);
        if (h <= 0)
            return bl_error(ctx, BL_EOPTION, "critical batch: the base run needs a budget "
                            "('epochs', 'max_steps' or 'max_samples') to place 'n_points' in, "
                            "or give 'points'");
        int64_t last = h - c->branch_samples;
        if (last < b0)
            return bl_error(ctx, BL_EOPTION, "critical batch: 'branch_samples' (%lld) leaves "
                            "no room for a point in the base run's %lld samples",
                            (long long)c->branch_samples, (long long)h);
        m = (size_t)c->n_points;
        for (size_t i = 0; i < m; i++)
            want[i] = (int64_t)ldexp((double)last, -(int)(m - 1 - i));
    }
    *count = 0;
    for (size_t i = 0; i < m; i++) {
        if (h > 0 && want[i] + c->branch_samples > h)
            return bl_error(ctx, BL_EOPTION, "critical batch: 'points': point %zu (%lld "
                            "samples) + branch_samples (%lld) passes the base run's budget of "
                            "%lld samples", i + 1, (long long)want[i],
                            (long long)c->branch_samples, (long long)h);
        int64_t s = steps_for(want[i], n, b0);
        if (s < 1)
            s = 1;
        if (*count == 0 || s > steps[*count - 1])
            steps[(*count)++] = s;
    }
    return BL_OK;
}

static int check_config(bl_ctx *ctx, const bl_branched_config *c, int64_t n)
{
    if (c->branch_samples < 1)
        return bl_error(ctx, BL_EOPTION, "critical batch: 'branch_samples' (Δ, the samples "
                        "each branch trains) must be ≥ 1, got %lld",
                        (long long)c->branch_samples);
    if (!(c->tolerance >= 0) || !isfinite(c->tolerance))
        return bl_error(ctx, BL_EOPTION, "critical batch: 'tolerance' must be a number ≥ 0, "
                        "got %g", c->tolerance);
    if (!c->ks || c->n_ks < 2 || c->n_ks > BL_BRANCH_MAX_KS)
        return bl_error(ctx, BL_EOPTION, "critical batch: 'ks' must hold 2 to %d batch "
                        "multipliers", BL_BRANCH_MAX_KS);
    if (c->ks[0] != 1)
        return bl_error(ctx, BL_EOPTION, "critical batch: 'ks' must start at 1 (the branch "
                        "every other is compared with), got %lld", (long long)c->ks[0]);
    for (size_t i = 1; i < c->n_ks; i++)
        if (c->ks[i] <= c->ks[i - 1])
            return bl_error(ctx, BL_EOPTION, "critical batch: 'ks' must be strictly "
                            "increasing, got %lld after %lld", (long long)c->ks[i],
                            (long long)c->ks[i - 1]);
    if (c->base->train.batch * c->ks[1] > n)
        return bl_error(ctx, BL_EOPTION, "critical batch: 'ks': %lld × batch %lld passes the "
                        "%lld training samples", (long long)c->ks[1],
                        (long long)c->base->train.batch, (long long)n);
    for (size_t i = 0; c->lrs && i < c->n_ks; i++)
        if (!(c->lrs[i] > 0) || !isfinite(c->lrs[i]))
            return bl_error(ctx, BL_EOPTION, "critical batch: 'lrs': the LR of k = %lld must "
                            "be > 0, got %g", (long long)c->ks[i], c->lrs[i]);
    if ((unsigned)c->lr_rule > BL_LR_SCALE_SQRT)
        return bl_error(ctx, BL_EOPTION, "critical batch: 'lr_rule' must be none, linear or "
                        "sqrt");
    if (c->evals < 1 || c->evals > 64)
        return bl_error(ctx, BL_EOPTION, "critical batch: 'evals' must be in 1..64, got %d",
                        c->evals);
    if ((unsigned)c->measure > BL_BRANCH_MEASURE_TRAIN)
        return bl_error(ctx, BL_EOPTION, "critical batch: unknown 'measure'");
    return BL_OK;
}

/* ---- the runs ---------------------------------------------------------------------------------- */

typedef struct keeper {
    bl_snapshot **snaps;
    size_t count, want;
} keeper;

static int keep_snapshot(void *user, bl_ctx *ctx, const bl_snapshot *snap)
{
    keeper *k = user;
    if (k->count >= k->want)
        return 1;
    int rc = bl_snapshot_copy(ctx, snap, &k->snaps[k->count]);
    if (rc != BL_OK)
        return rc;
    k->count++;
    return k->count == k->want ? 1 : 0;   /* pause at the last point */
}

/* The mean training loss over the steps that end past `from` samples. */
typedef struct tail {
    int64_t from;
    double sum;
    int64_t count;
} tail;

static void tail_progress(void *user, const bl_train_state *state, double loss, int64_t total)
{
    (void)total;
    tail *t = user;
    if (state->samples > t->from) {
        t->sum += loss * (double)state->batch;
        t->count += state->batch;
    }
}

/* A configuration for a run without evaluation until its end and without outputs. */
static void quiet_cadence(bl_train_config *t)
{
    t->eval_unit = BL_EVAL_STEPS;
    t->eval_every = NEVER;
    t->skip_test = true;
    t->train_eval_samples = 0;
    t->has_target = false;
    t->stop_at_target = false;
}

static int keep_final(void *user, bl_ctx *ctx, const bl_snapshot *snap)
{
    bl_snapshot **keep = user;
    return bl_snapshot_copy(ctx, snap, keep) == BL_OK ? 0 : -1;
}

/* One branch: from `snap`, batch k·B0 at peak LR `lr`, for branch_samples. With the
 * validation measure and c->evals > 1 the branch is trained in legs — the first half, then
 * evals equal parts of the second half — each a bl_run continuing the previous leg's final
 * snapshot and evaluated at its end; the steps are the same as in one piece (a snapshot
 * restores exactly and an evaluation changes no training state), only the evaluations are
 * added. *loss is the mean of the leg ends' validation losses. */
static int run_branch(bl_ctx *ctx, const bl_branched_config *c, const bl_snapshot *snap,
                      const bl_snapshot_info *at, int64_t k, double lr,
                      bl_branch_measure measure, double *loss, int64_t *trained)
{
    bl_run_plan p = *c->base;
    bl_train_config *t = &p.train;
    quiet_cadence(t);
    t->skip_eval = measure == BL_BRANCH_MEASURE_TRAIN;
    t->batch = k * c->base->train.batch;
    t->optim.lr = lr;
    t->lr_scaling = BL_LR_SCALE_NONE;
    t->base_batch = 0;
    int64_t delta = c->branch_samples, end = at->samples + delta;
    tail tl = {end - delta / 4, 0, 0};
    t->on_progress = tail_progress;
    t->progress_user = &tl;
    int evals = measure == BL_BRANCH_MEASURE_VAL && c->evals > 1 ? c->evals : 1;
    int legs = evals > 1 ? evals + 1 : 1;
    bl_snapshot *from = NULL, *next = NULL;
    double val_sum = 0;
    bool diverged = false;
    int rc = BL_OK;
    bl_run_result r;
    memset(&r, 0, sizeof r);
    for (int leg = 0; leg < legs && rc == BL_OK && !diverged; leg++) {
        bool last = leg == legs - 1;
        t->resume_from = from ? from : snap;
        t->max_samples = last ? end
                         : at->samples + delta / 2 + (int64_t)leg * (delta - delta / 2) / evals;
        t->skip_eval = measure == BL_BRANCH_MEASURE_TRAIN || (legs > 1 && leg == 0);
        t->on_final_snapshot = last ? NULL : keep_final;
        t->snapshot_user = &next;
        bl_run_result_free(&r);
        rc = bl_run(ctx, &p, NULL, 0, &r);
        if (rc == BL_OK && r.status == BL_RUN_FAILED)
            rc = bl_error(ctx, BL_EINVAL, "%s", r.error);
        if (rc == BL_OK && r.status == BL_RUN_INTERRUPTED)
            rc = bl_error(ctx, BL_EINTERRUPTED, "interrupted");
        diverged = rc == BL_OK && r.status == BL_RUN_DIVERGED;
        if (rc == BL_OK && !t->skip_eval)
            val_sum += r.final.val_loss;
        bl_snapshot_free(from);
        from = next;
        next = NULL;
    }
    bl_snapshot_free(from);
    if (rc != BL_OK) {
        bl_run_result_free(&r);
        return bl_error_prefix(ctx, "critical batch: the branch with k = %lld from step %lld",
                               (long long)k, (long long)at->step);
    }
    *trained = r.samples - at->samples;
    if (diverged)
        *loss = INFINITY;
    else if (measure == BL_BRANCH_MEASURE_VAL)
        *loss = val_sum / evals;
    else
        *loss = tl.count > 0 ? tl.sum / (double)tl.count : NAN;
    if (isnan(*loss))
        *loss = INFINITY;
    bl_run_result_free(&r);
    return BL_OK;
}

/* ---- the branches as the work items of a sweep (batchlab/sweep.h) ------------------------- */

typedef struct branches {
    const bl_branched_config *c;
    bl_branched_result *out;
    bl_snapshot **snaps;
    const bl_snapshot_info *at;
} branches;

/* Item `index`: point index / n_ks, branch index % n_ks; its loss and samples go into out. */
static int branch_run(void *user, bl_ctx *ctx, size_t index, bl_sweep_point *p)
{
    branches *b = user;
    size_t i = index / b->out->n_ks, j = index % b->out->n_ks;
    bl_branch_point *pt = &b->out->points[i];
    int rc = run_branch(ctx, b->c, b->snaps[i], &b->at[i], b->out->ks[j], b->out->lrs[j],
                        b->out->measure, &pt->loss[j], &pt->branch_samples[j]);
    p->status = BL_SWEEP_COMPLETED;
    return rc;
}

static int branch_done(void *user, bl_ctx *ctx, size_t index, const bl_sweep_point *p,
                       size_t total)
{
    branches *b = user;
    size_t i = index / b->out->n_ks, j = index % b->out->n_ks;
    if (b->c->on_branch)
        b->c->on_branch(b->c->user, (int)i, b->out->ks[j], b->out->points[i].loss[j]);
    return BL_OK;
}

/* Another rank's branch: {loss, samples trained} */
typedef struct branch_wire {
    double loss;
    int64_t trained;
} branch_wire;

static int branch_pack(void *user, bl_ctx *ctx, size_t index, int rc, void **data, size_t *len)
{
    branches *b = user;
    size_t i = index / b->out->n_ks, j = index % b->out->n_ks;
    branch_wire *w = malloc(sizeof *w);
    if (!w)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    *w = (branch_wire){b->out->points[i].loss[j], b->out->points[i].branch_samples[j]};
    *data = w;
    *len = sizeof *w;
    return BL_OK;
}

static int branch_unpack(void *user, bl_ctx *ctx, size_t index, int rc, const char *msg,
                         const void *data, size_t len, bl_sweep_point *p)
{
    branches *b = user;
    if (rc != BL_OK)
        return bl_error(ctx, rc, "%s", msg);
    if (len != sizeof(branch_wire))
        return bl_error(ctx, BL_EIO, "critical batch: a branch's result from another rank is "
                        "malformed");
    branch_wire w;
    memcpy(&w, data, sizeof w);
    size_t i = index / b->out->n_ks, j = index % b->out->n_ks;
    b->out->points[i].loss[j] = w.loss;
    b->out->points[i].branch_samples[j] = w.trained;
    return BL_OK;
}

/* b_crit, lo, hi and capped of a point from its losses. */
static void judge(bl_branch_point *pt, const bl_branched_result *out, double tolerance)
{
    double ref = pt->loss[0];
    size_t last = 0;
    bool outside = false;
    for (size_t i = 1; i < out->n_ks; i++) {
        double l = pt->loss[i];
        bool within = isfinite(ref) && isfinite(l) && l <= ref + tolerance * fabs(ref);
        if (!within) {
            outside = true;
            pt->hi = out->ks[i] * out->base_batch;
            break;
        }
        last = i;
    }
    pt->b_crit = pt->lo = out->ks[last] * out->base_batch;
    pt->capped = !outside;
    if (!outside)
        pt->hi = 0;
}

static void make_schedule(bl_branched_result *out, double optim_lr)
{
    int64_t cur = out->base_batch;
    out->schedule[0] = (bl_branch_breakpoint){0, cur, out->lrs[0] / optim_lr};
    out->n_schedule = 1;
    for (size_t i = 0; i < out->n_points; i++) {
        const bl_branch_point *pt = &out->points[i];
        if (pt->b_crit <= cur)
            continue;
        cur = pt->b_crit;
        size_t ki = 0;
        while (ki + 1 < out->n_ks && out->ks[ki] * out->base_batch < cur)
            ki++;
        out->schedule[out->n_schedule++] =
            (bl_branch_breakpoint){pt->samples, cur, out->lrs[ki] / optim_lr};
    }
}

int bl_branched_run(bl_ctx *ctx, const bl_branched_config *c, bl_branched_result *out)
{
    memset(out, 0, sizeof *out);
    if (!c || !c->base)
        return bl_error(ctx, BL_EINVAL, "critical batch: no base run");
    int rc = check_base(ctx, c->base);
    if (rc != BL_OK)
        return rc;
    const bl_train_config *bt = &c->base->train;
    const bl_data_info *info = bl_dataset_info(bt->data);
    int64_t n = info->count[BL_SPLIT_TRAIN];
    if ((rc = check_config(ctx, c, n)) != BL_OK)
        return rc;
    double t0 = bl__now();

    out->base_batch = bt->batch;
    int64_t base_ref = bt->base_batch > 0 ? bt->base_batch : bt->batch;
    out->base_lr = bt->optim.lr * bl__lr_scale(bt->lr_scaling, (double)bt->batch,
                                               (double)base_ref);
    for (size_t i = 0; i < c->n_ks && c->ks[i] * bt->batch <= n; i++) {
        int64_t k = c->ks[i];
        out->ks[i] = k;
        out->lrs[i] = c->lrs ? c->lrs[i]
                             : out->base_lr * bl__lr_scale(c->lr_rule, (double)k, 1.0);
        out->n_ks = i + 1;
    }
    out->measure = c->measure;
    if (out->measure == BL_BRANCH_MEASURE_AUTO)
        out->measure = info->count[BL_SPLIT_VALIDATION] > 0 && !bt->skip_eval
                           ? BL_BRANCH_MEASURE_VAL
                           : BL_BRANCH_MEASURE_TRAIN;
    if (out->measure == BL_BRANCH_MEASURE_VAL && info->count[BL_SPLIT_VALIDATION] == 0)
        return bl_error(ctx, BL_EOPTION, "critical batch: 'measure' val_loss needs a dataset "
                        "with a validation split");

    int64_t steps[BL_BRANCH_MAX_POINTS];
    size_t np = 0;
    if ((rc = place_points(ctx, c, n, horizon(bt, n), steps, &np)) != BL_OK)
        return rc;

    /* the base run, paused at the last point */
    bl_snapshot *snaps[BL_BRANCH_MAX_POINTS] = {NULL};
    keeper kp = {snaps, 0, np};
    bl_run_plan bp = *c->base;
    quiet_cadence(&bp.train);
    bp.train.skip_eval = true;
    bp.train.snapshot_steps = steps;
    bp.train.snapshot_step_count = np;
    bp.train.on_snapshot = keep_snapshot;
    bp.train.snapshot_user = &kp;
    bl_run_result br;
    rc = bl_run(ctx, &bp, NULL, 0, &br);
    if (rc == BL_OK && br.status == BL_RUN_INTERRUPTED)
        rc = bl_error(ctx, BL_EINTERRUPTED, "critical batch: interrupted");
    if (rc == BL_OK && kp.count < np)
        rc = bl_error(ctx, BL_EINVAL, "critical batch: the base run ended (%s%s%s) at step "
                      "%lld, before point %zu (step %lld)", br.stopped_by,
                      br.error[0] ? ": " : "", br.error, (long long)br.steps, kp.count + 1,
                      (long long)steps[kp.count]);
    bl_run_result_free(&br);

    /* the branches: point i's branch j is work item i·n_ks + j of a sweep, so that under
     * MPI the ranks share them (every rank ran the base run, and holds the snapshots) */
    bl_snapshot_info at[BL_BRANCH_MAX_POINTS];
    for (size_t i = 0; rc == BL_OK && i < np; i++) {
        bl_branch_point *pt = &out->points[i];
        if ((rc = bl_snapshot_get_info(ctx, snaps[i], &at[i])) != BL_OK)
            break;
        pt->step = at[i].step;
        pt->samples = at[i].samples;
        pt->epoch = at[i].epoch_progress;
        for (size_t j = 0; j < BL_BRANCH_MAX_KS; j++)
            pt->loss[j] = NAN;
    }
    if (rc == BL_OK) {
        branches b = {c, out, snaps, at};
        bl_sweep_options so = {.points = np * out->n_ks};
        bl_sweep_hooks sh = {.user = &b, .run = branch_run, .on_point = branch_done,
                             .pack = branch_pack, .unpack = branch_unpack};
        bl_sweep_executor dist;
        bl_sweep_summary ss;
        rc = bl_sweep_run(ctx, &so, &sh, bl_sweep_distributed(1, &dist) ? &dist : NULL, &ss);
        bl_sweep_summary_free(&ss);
    }
    for (size_t i = 0; rc == BL_OK && i < np; i++) {
        judge(&out->points[i], out, c->tolerance);
        out->n_points = i + 1;
    }
    for (size_t i = 0; i < np; i++)
        bl_snapshot_free(snaps[i]);
    if (rc != BL_OK)
        return rc;
    make_schedule(out, bt->optim.lr);
    const bl_branch_point *last = &out->points[out->n_points - 1];
    out->estimate = last->b_crit;
    out->estimate_lo = last->lo;
    out->estimate_hi = last->hi;
    out->seconds = bl__now() - t0;
    return BL_OK;
}

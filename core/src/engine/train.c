/* The step loop. See train.h for the contract; engine.h for the pieces it uses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batchlab/train.h"
#include "base/clock.h"
#include "base/grow.h"
#include "engine/data_parallel.h"
#include "engine/engine.h"

bl_train_config bl_train_defaults(void)
{
    bl_train_config c;
    memset(&c, 0, sizeof c);
    c.optim = bl_optim_defaults(BL_OPTIM_SGD);
    c.seed = 1;
    c.lr_gamma = 0.1;
    c.eval_unit = BL_EVAL_EPOCHS;
    c.eval_every = 1;
    c.train_eval_samples = 2000;
    c.gns_chunks = 4;
    c.gns_ema = 0.95;
    c.target_higher_better = true;
    c.diverge_loss_factor = 3;
    c.diverge_chance_evals = 3;
    c.diverge_chance_margin = 0.02;
    return c;
}

const char *bl_run_status_name(bl_run_status status)
{
    switch (status) {
    case BL_RUN_RUNNING: return "running";
    case BL_RUN_COMPLETED: return "completed";
    case BL_RUN_FAILED: return "failed";
    case BL_RUN_DIVERGED: return "diverged";
    case BL_RUN_INTERRUPTED: return "interrupted";
    case BL_RUN_CRASHED: return "crashed";
    case BL_RUN_TIMED_OUT: return "timed_out";
    }
    return "unknown";
}

void bl_run_result_free(bl_run_result *result)
{
    if (!result)
        return;
    free(result->history);
    result->history = NULL;
    result->history_count = 0;
}

/* ---- the state of one run ------------------------------------------------------------------ */

typedef struct run {
    const bl_train_config *cfg;
    bl_ctx *ctx;
    bl_net *net;
    bl_device *dev;
    bl_optim *opt;
    bl__loader loader;
    bool loader_open;
    bl_run_result *res;
    const bl_data_info *info;
    bool classify;
    int64_t n_train, x_numel;
    int64_t max_batch, chunk_max, eval_batch, base_batch;
    bool growable;          /* a batch function without max_batch: buffers follow its batches */

    /* evaluation buffers (device) and index list (host) */
    float *eval_x;
    void *eval_y;
    float *eval_x_host;     /* staging for devices other than the CPU, else NULL */
    void *eval_y_host;
    int64_t *eval_idx;
    size_t eval_x_bytes, eval_y_bytes;

    /* data-parallel (engine/data_parallel.h): the reducer, and what the last step agreed */
    const bl_reducer *dp;
    bl__dp_step dp_step;

    /* gradient noise scale */
    bool gns_on;
    bl__gns gns;
    float *grad_acc;        /* device [n_params] when gns_on */

    /* clocks and counters */
    double train_time, eval_time;
    int64_t pos;            /* position in the current epoch's permutation */
    int64_t epoch;          /* completed epochs */
    double loss_sum;        /* training loss since the last point */
    int64_t loss_count;
    int64_t correct_sum;    /* samples the steps since the last point classified right */
    bool correct_unknown;   /* resumed from a snapshot without that count: no train accuracy
                               at the next point */
    int64_t point_samples;  /* samples at the last point */
    double point_time;      /* training time at the last point */
    double next_eval;       /* in the unit of cfg->eval_unit */
    bl_train_state state;
    bl_eval_point last;
    bool have_last;
    size_t history_cap;

    /* divergence at evaluation points: the loss of the first steps (the start) and of the
     * steps since the last point judged (the window), each a sum over samples */
    double ref_loss_sum, win_loss_sum;
    int64_t ref_count, win_count;   /* samples */
    bool ref_done;
    int64_t win_from;       /* the first step of the window */
    int64_t chance_run;     /* consecutive points at chance after the first epoch */
    bool diverged;          /* a point showed divergence (status, step and error are set) */

    /* the robust per-step time: the last steps' times and the batch last asked for */
    bl__step_times step_times;
    int64_t last_asked;
    double last_asked_lr;   /* the LR of a full step of last_asked (what points report) */

    /* snapshots (batchlab/snapshot.h) */
    bl_snapshot *snap;      /* the buffer every snapshot of the run is made in */
    size_t snap_next;       /* next index into cfg->snapshot_steps */
    double snap_time;       /* training time of the last snapshot */
    bool paused;            /* on_snapshot stopped the run */
} run;

/* The start, and each window judged against it, span at least this many samples, so that
 * the noise of a few small batches is never taken for divergence (train.h). */
enum { DIVERGE_SAMPLES = 512 };

static double epoch_progress(const run *r)
{
    return (double)r->epoch + (double)r->pos / (double)r->n_train;
}

/* ---- evaluation ---------------------------------------------------------------------------- */

/* Mean loss and accuracy over the first `count` samples (in index order) of a split. */
static int evaluate_split(run *r, bl_split split, int64_t count, double *loss, double *acc)
{
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t start = 0; start < count; start += r->eval_batch) {
        int64_t n = count - start < r->eval_batch ? count - start : r->eval_batch;
        for (int64_t i = 0; i < n; i++)
            r->eval_idx[i] = start + i;
        /* on the CPU device memory is host memory: gather in place; elsewhere stage */
        float *x = r->eval_x_host ? r->eval_x_host : r->eval_x;
        void *y = r->eval_y_host ? r->eval_y_host : r->eval_y;
        int rc = bl_dataset_gather(r->ctx, r->cfg->data, split, r->eval_idx, n, x, y);
        if (rc == BL_OK && r->eval_x_host) {
            size_t y_bytes = r->eval_y_bytes / (size_t)r->eval_batch * (size_t)n;
            rc = bl_device_upload(r->ctx, r->dev, r->eval_x, x,
                                  (size_t)(n * r->x_numel) * sizeof(float));
            if (rc == BL_OK)
                rc = bl_device_upload(r->ctx, r->dev, r->eval_y, y, y_bytes);
        }
        if (rc != BL_OK)
            return bl_error_prefix(r->ctx, "evaluating the %s split", bl_split_name(split));
        double batch_loss = 0;
        int64_t batch_correct = 0;
        rc = bl_net_forward(r->ctx, r->net, r->eval_x, n, false, NULL);
        if (rc == BL_OK)
            rc = bl_net_loss(r->ctx, r->net, n, r->eval_y, &batch_loss, &batch_correct);
        if (rc != BL_OK)
            return rc;
        loss_sum += batch_loss;
        correct += batch_correct;
    }
    *loss = count > 0 ? loss_sum / (double)count : NAN;
    *acc = (count > 0 && r->classify) ? (double)correct / (double)count : NAN;
    return BL_OK;
}

static int append_history(run *r, const bl_eval_point *p)
{
    bl_run_result *res = r->res;
    bl_eval_point *h =
        bl__grow(res->history, &r->history_cap, res->history_count + 1, sizeof *h);
    if (!h)
        return bl_error(r->ctx, BL_ENOMEM, "out of memory for the run history");
    res->history = h;
    res->history[res->history_count++] = *p;
    return BL_OK;
}

/* Whether point p shows divergence (train.h, diverge_loss_factor); if so marks the run
 * diverged with the reason. */
static bool check_divergence(run *r, const bl_eval_point *p)
{
    const bl_train_config *cfg = r->cfg;
    bl_run_result *res = r->res;
    double ref = r->ref_count > 0 ? r->ref_loss_sum / (double)r->ref_count : NAN;
    /* a net that starts trained has a tiny first loss; for classification nothing below the
     * loss of a uniform guess, ln(classes), is taken as the start */
    if (r->classify && isfinite(ref) && ref < log((double)r->info->classes))
        ref = log((double)r->info->classes);
    bool why_loss = false;
    double win = NAN;
    int64_t win_from = r->win_from;
    if (r->ref_done && r->win_count >= DIVERGE_SAMPLES) {
        win = r->win_loss_sum / (double)r->win_count;
        why_loss = cfg->diverge_loss_factor > 0 && isfinite(ref) && ref > 0 &&
                   win > cfg->diverge_loss_factor * ref;
        r->win_loss_sum = 0;
        r->win_count = 0;
        r->win_from = p->step + 1;
    }
    bool why_chance = false;
    double chance = r->classify ? 1.0 / (double)r->info->classes : NAN;
    if (cfg->diverge_chance_evals > 0 && r->classify && p->epoch >= 1 - 1e-9) {
        if (p->val_accuracy <= chance + cfg->diverge_chance_margin)   /* NaN: not at chance */
            r->chance_run++;
        else
            r->chance_run = 0;
        why_chance = r->chance_run >= cfg->diverge_chance_evals;
    }
    if (!why_loss && !why_chance)
        return false;
    r->diverged = true;
    res->diverged_step = p->step;
    if (why_loss)
        snprintf(res->error, sizeof res->error,
                 "the training loss %.3g (mean over steps %lld-%lld) is more than %g× its "
                 "starting value %.3g (batch %lld, lr %g)",
                 win, (long long)win_from, (long long)p->step, cfg->diverge_loss_factor, ref,
                 (long long)p->batch, p->lr);
    else
        snprintf(res->error, sizeof res->error,
                 "validation accuracy %.3f at chance (1/%lld classes) for %lld evaluations, up "
                 "to step %lld (batch %lld, lr %g)",
                 p->val_accuracy, (long long)r->info->classes, (long long)r->chance_run,
                 (long long)p->step, (long long)p->batch, p->lr);
    return true;
}

/* Makes an evaluation point now. Returns 1 when the run should stop (target, criterion,
 * divergence: r->diverged), 0 to go on, or an error. */
static int make_point(run *r, const char **stop_reason)
{
    const bl_train_config *cfg = r->cfg;
    /* the evaluation (and a callback) uses the dataset, which the prefetch of the next batch
     * may be using: one thread at a time (dataset.h). That gather is training time. */
    double t0 = bl__now();
    bl__loader_quiesce(&r->loader);
    r->train_time += bl__now() - t0;
    t0 = bl__now();
    bl_eval_point p;
    p.step = r->state.step;
    p.samples = r->state.samples;
    p.epoch = epoch_progress(r);
    p.wall = r->train_time;
    /* the scheduled batch and its LR, not an epoch's partial rest (a point at an epoch end
     * would otherwise show the leftover, e.g. 40 of a batch of 64, and its scaled LR) */
    p.batch = r->last_asked > 0 ? r->last_asked : r->state.batch;
    p.lr = r->last_asked > 0 ? r->last_asked_lr : r->state.lr;
    p.train_loss = r->loss_count > 0 ? r->loss_sum / (double)r->loss_count : NAN;
    double dt = r->train_time - r->point_time;
    p.samples_per_sec = dt > 0 ? (double)(r->state.samples - r->point_samples) / dt : NAN;
    p.gns = r->gns_on ? bl__gns_value(&r->gns) : NAN;
    p.val_loss = p.val_accuracy = NAN;
    /* from the steps (train.h, bl_train_acc_source): the samples of train_loss */
    p.train_accuracy = r->classify && cfg->train_eval_samples > 0 &&
                               cfg->train_accuracy_from == BL_TRAIN_ACC_STEPS &&
                               r->loss_count > 0 && !r->correct_unknown
                           ? (double)r->correct_sum / (double)r->loss_count
                           : NAN;

    int rc = BL_OK;
    int64_t n_val = cfg->skip_eval ? 0 : r->info->count[BL_SPLIT_VALIDATION];
    if (n_val > 0)
        rc = evaluate_split(r, BL_SPLIT_VALIDATION, n_val, &p.val_loss, &p.val_accuracy);
    int64_t n_sub = cfg->train_eval_samples < r->n_train ? cfg->train_eval_samples : r->n_train;
    if (cfg->skip_eval || cfg->train_accuracy_from != BL_TRAIN_ACC_SUBSET)
        n_sub = 0;
    if (rc == BL_OK && n_sub > 0) {
        double sub_loss;
        rc = evaluate_split(r, BL_SPLIT_TRAIN, n_sub, &sub_loss, &p.train_accuracy);
        if (rc == BL_OK && !r->classify)
            p.train_accuracy = NAN;
    }
    r->eval_time += bl__now() - t0;
    if (rc != BL_OK)
        return rc;

    r->loss_sum = 0;
    r->loss_count = 0;
    r->correct_sum = 0;
    r->correct_unknown = false;
    r->point_samples = r->state.samples;
    r->point_time = r->train_time;
    r->last = p;
    r->have_last = true;
    r->state.last = &r->last;
    if ((rc = append_history(r, &p)) != BL_OK)
        return rc;

    if (cfg->on_point && (rc = cfg->on_point(cfg->point_user, r->ctx, &p)) < 0)
        return rc;

    if (check_divergence(r, &p)) {
        *stop_reason = "diverged";
        return 1;
    }
    bl_run_result *res = r->res;
    if (cfg->has_target && res->steps_to_target < 0) {
        /* every point before the previous one is short of the target: the window of the last
         * two holds the bracket */
        size_t n = res->history_count, from = n >= 2 ? n - 2 : 0;
        bl_target_crossing x;
        if (bl_target_crossing_find(res->history + from, n - from, cfg->target_metric,
                                    cfg->target_value, cfg->target_higher_better, &x)) {
            /* time_to_target (steps × the median step time) is set when the run ends */
            res->wall_time_to_target = x.wall;
            res->steps_to_target = x.steps;
            res->samples_to_target = x.samples;
            res->epochs_to_target = x.epochs;
            res->steps_to_target_error = x.steps_error;
            if (cfg->stop_at_target) {
                *stop_reason = "target";
                return 1;
            }
        }
    }
    if (cfg->criterion) {
        const char *reason = NULL;
        rc = cfg->criterion(cfg->criterion_user, r->ctx, &p, &reason);
        if (rc < 0)
            return rc;
        if (rc > 0) {
            *stop_reason = reason ? reason : "criterion";
            return 1;
        }
    }
    return 0;
}

/* The point after `at`, in the unit of cfg->eval_unit: eval_every later, or for BL_EVAL_AUTO
 * the next step of the growing cadence (train.h). */
static double next_point(const bl_train_config *cfg, double at)
{
    if (cfg->eval_unit != BL_EVAL_AUTO)
        return at + cfg->eval_every;
    double grown = ceil(at * (1 + 1 / cfg->eval_every) - 1e-9);
    return grown > at + 1 ? grown : at + 1;
}

/* Whether an evaluation point is due after the step just done. */
static bool eval_due(run *r)
{
    double now;
    switch (r->cfg->eval_unit) {
    case BL_EVAL_STEPS: now = (double)r->state.step; break;
    case BL_EVAL_SAMPLES: now = (double)r->state.samples; break;
    case BL_EVAL_AUTO: now = (double)r->state.step; break;
    default: now = epoch_progress(r); break;
    }
    if (now + 1e-9 < r->next_eval)
        return false;
    while (r->next_eval <= now + 1e-9)
        r->next_eval = next_point(r->cfg, r->next_eval);
    return true;
}

/* ---- one optimizer step -------------------------------------------------------------------- */

/* Forward + backward over rows [offset, offset+n) of the batch held in slot s; adds the
 * chunk's summed loss to *loss_sum and its correctly classified samples to r->correct_sum. */
static int chunk_pass(run *r, const bl__slot *slot, int64_t offset, int64_t n, float loss_scale,
                      bool accumulate, double *loss_sum)
{
    const float *x = slot->x + offset * r->x_numel;
    const char *y = (const char *)slot->y + offset * r->loader.y_bytes_per_sample;
    double l = 0;
    int64_t correct = 0;
    int rc = bl_net_forward(r->ctx, r->net, x, n, true, NULL);
    if (rc == BL_OK)
        rc = bl_net_loss(r->ctx, r->net, n, y, &l, &correct);
    if (rc == BL_OK && isfinite(l))
        rc = bl_net_backward(r->ctx, r->net, n, loss_scale, accumulate);
    *loss_sum += l;
    r->correct_sum += correct;
    return rc;
}

/* Gradients of the mean loss over the B samples of slot s, into the net's gradient block;
 * measures the noise scale on the way when it is on. Returns the summed loss in *loss_sum. */
static int compute_gradients(run *r, const bl__slot *slot, int64_t B, double *loss_sum)
{
    const bl_device_ops *ops = r->dev->ops;
    float inv_b = 1.0f / (float)B;
    *loss_sum = 0;
    int64_t chunk = r->cfg->micro_batch > 0 ? r->cfg->micro_batch : B;
    int64_t k = B / chunk;

    if (r->gns_on) {
        /* k equal chunks for the statistics: the micro-batches, or gns_chunks pieces */
        if (r->cfg->micro_batch <= 0)
            chunk = B / r->cfg->gns_chunks;
        k = chunk > 0 ? B / chunk : 0;
    }
    if (!r->gns_on || k < 2) {
        /* plain path: accumulate micro-batches straight into the gradient block */
        int64_t step_chunk = r->cfg->micro_batch > 0 ? r->cfg->micro_batch : B;
        for (int64_t off = 0; off < B; off += step_chunk) {
            int64_t n = B - off < step_chunk ? B - off : step_chunk;
            int rc = chunk_pass(r, slot, off, n, inv_b, off > 0, loss_sum);
            if (rc != BL_OK || !isfinite(*loss_sum))
                return rc;
        }
        return BL_OK;
    }

    /* measuring path: each chunk's mean gradient g_i alone in the gradient block, its squared
     * norm taken, then added into grad_acc with weight b/B (so grad_acc ends as the batch's
     * mean gradient) */
    size_t np = bl_net_num_params(r->net);
    float *grads = bl_net_grads(r->net);
    float inv_chunk = 1.0f / (float)chunk;
    for (int64_t i = 0; i < k; i++) {
        int rc = chunk_pass(r, slot, i * chunk, chunk, inv_chunk, false, loss_sum);
        if (rc != BL_OK || !isfinite(*loss_sum))
            return rc;
        ops->sumsq(r->dev, (int64_t)np, grads, bl__gns_slot(&r->gns, i));
        if (i == 0) {
            ops->copy(r->dev, r->grad_acc, grads, np * sizeof(float));
            ops->scale(r->dev, (int64_t)np, (float)chunk * inv_b, r->grad_acc);
        } else {
            ops->axpy(r->dev, (int64_t)np, (float)chunk * inv_b, grads, r->grad_acc);
        }
    }
    /* mean of the k chunk gradients = grad_acc · B/(k·chunk) */
    double f = (double)B / (double)(k * chunk);
    ops->sumsq(r->dev, (int64_t)np, r->grad_acc, bl__gns_slot(&r->gns, k));
    int rc = bl__gns_collect(r->ctx, &r->gns, k, chunk, f); /* the one read-back */
    if (rc != BL_OK)
        return rc;

    int64_t rest = B - k * chunk;
    if (rest > 0) {
        rc = chunk_pass(r, slot, k * chunk, rest, inv_b, false, loss_sum);
        if (rc != BL_OK || !isfinite(*loss_sum))
            return rc;
        ops->axpy(r->dev, (int64_t)np, 1.0f, grads, r->grad_acc);
    }
    ops->copy(r->dev, grads, r->grad_acc, np * sizeof(float));
    return BL_OK;
}

/* ---- the batch source ---------------------------------------------------------------------- */

static int out_of_memory(run *r, int64_t reserve);

/* A batch function without max_batch asked for `batch`, more than any before: the net's
 * buffers and the loader's slots grow to it (train.h). Once per new maximum; a run whose
 * batches repeat never comes here again. */
static int grow_buffers(run *r, int64_t batch)
{
    const bl_train_config *cfg = r->cfg;
    /* a step never takes more than the training set: hold no more than that */
    int64_t hold = batch < r->n_train ? batch : r->n_train;
    int64_t chunk = cfg->micro_batch > 0 && cfg->micro_batch < hold ? cfg->micro_batch : hold;
    int rc;
    if (chunk > r->chunk_max) {
        r->chunk_max = chunk;
        int64_t reserve = chunk > r->eval_batch ? chunk : r->eval_batch;
        if ((rc = bl_net_reserve(r->ctx, r->net, reserve)) != BL_OK)
            return rc == BL_ENOMEM ? out_of_memory(r, reserve) : rc;
    }
    if (hold > r->loader.capacity && (rc = bl__loader_grow(r->ctx, &r->loader, hold)) != BL_OK)
        return rc;
    r->max_batch = batch;
    bl_log(r->ctx, BL_LOG_DEBUG, "train: buffers grown to batch %lld at step %lld",
           (long long)batch, (long long)r->state.step + 1);
    return BL_OK;
}

static int next_batch(run *r, int64_t *batch, double *factor)
{
    const bl_train_config *cfg = r->cfg;
    *factor = 1.0;
    r->state.gns = r->gns_on ? bl__gns_value(&r->gns) : NAN;
    int rc = BL_OK;
    if (cfg->scheduler) {
        rc = bl_scheduler_next(r->ctx, cfg->scheduler, &r->state, batch, factor);
    } else if (cfg->batch_fn) {
        rc = cfg->batch_fn(cfg->batch_user, r->ctx, &r->state, batch, factor);
    } else {
        *batch = cfg->batch;
    }
    if (rc != BL_OK)
        return rc;
    if (*batch > r->max_batch && r->growable && (rc = grow_buffers(r, *batch)) != BL_OK)
        return rc;
    if (*batch < 1 || *batch > r->max_batch)
        return bl_error(r->ctx, BL_EINVAL,
                        "the schedule asked for batch %lld, outside [1, %lld] (max_batch)",
                        (long long)*batch, (long long)r->max_batch);
    if (!(*factor > 0) || !isfinite(*factor))
        return bl_error(r->ctx, BL_EINVAL, "the schedule returned a bad LR factor %g",
                        *factor);
    return BL_OK;
}

/* ---- snapshots ----------------------------------------------------------------------------- */

/* The run's variables for snapshot.c (engine.h, bl__run_vars): out, and back in. */
static void vars_get(run *r, bl__run_vars *v)
{
    *v = (bl__run_vars){
        .net = r->net, .opt = r->opt, .loader = &r->loader, .gns = &r->gns,
        .step_times = &r->step_times, .scheduler = r->cfg->scheduler, .res = r->res,
        .history_cap = &r->history_cap, .n_train = r->n_train, .state = r->state,
        .train_time = r->train_time, .eval_time = r->eval_time, .pos = r->pos,
        .epoch = r->epoch, .loss_sum = r->loss_sum, .loss_count = r->loss_count,
        .correct_sum = r->correct_sum,
        .point_samples = r->point_samples, .point_time = r->point_time,
        .next_eval = r->next_eval, .last = r->last, .have_last = r->have_last,
        .ref_loss_sum = r->ref_loss_sum, .win_loss_sum = r->win_loss_sum,
        .ref_count = r->ref_count, .win_count = r->win_count, .win_from = r->win_from,
        .chance_run = r->chance_run, .ref_done = r->ref_done, .diverged = r->diverged,
        .last_asked = r->last_asked};
}

static void vars_set(run *r, const bl__run_vars *v)
{
    r->state = v->state;
    r->state.last = v->have_last ? &r->last : NULL;
    r->train_time = v->train_time;
    r->eval_time = v->eval_time;
    r->pos = v->pos;
    r->epoch = v->epoch;
    r->loss_sum = v->loss_sum;
    r->loss_count = v->loss_count;
    r->correct_unknown = v->correct_sum < 0;
    r->correct_sum = v->correct_sum < 0 ? 0 : v->correct_sum;
    r->point_samples = v->point_samples;
    r->point_time = v->point_time;
    r->next_eval = v->next_eval;
    r->last = v->last;
    r->have_last = v->have_last;
    r->ref_loss_sum = v->ref_loss_sum;
    r->win_loss_sum = v->win_loss_sum;
    r->ref_count = v->ref_count;
    r->win_count = v->win_count;
    r->win_from = v->win_from;
    r->chance_run = v->chance_run;
    r->ref_done = v->ref_done;
    r->diverged = v->diverged;
    r->last_asked = v->last_asked;
}

/* Continues from `snap` (after setup made every buffer). */
static int restore(run *r, const bl_snapshot *snap)
{
    bl__run_vars v;
    vars_get(r, &v);
    int rc = bl__snapshot_restore(r->ctx, snap, &v);
    if (rc != BL_OK)
        return rc;
    vars_set(r, &v);
    r->snap_time = r->train_time;
    r->res->resumed_step = r->state.step;
    return BL_OK;
}

/* Whether a snapshot is asked for after the step just done. */
static bool snapshot_due(run *r)
{
    const bl_train_config *cfg = r->cfg;
    if (!cfg->on_snapshot)
        return false;
    int64_t step = r->state.step;
    bool due = false;
    while (r->snap_next < cfg->snapshot_step_count && cfg->snapshot_steps[r->snap_next] <= step)
        due |= cfg->snapshot_steps[r->snap_next++] == step;
    if (cfg->snapshot_every > 0 && step % cfg->snapshot_every == 0)
        due = true;
    if (cfg->snapshot_seconds > 0 && r->train_time - r->snap_time >= cfg->snapshot_seconds)
        due = true;
    return due;
}

/* Captures the state and hands it to fn; returns fn's answer (0, 1) or an error. */
static int take_snapshot(run *r, bl_snapshot_fn fn)
{
    bl__run_vars v;
    vars_get(r, &v);
    int rc = bl__snapshot_capture(r->ctx, &v, r->cfg->snapshot_tag, r->snap);
    r->snap_time = r->train_time;
    if (rc != BL_OK)
        return rc;
    rc = fn(r->cfg->snapshot_user, r->ctx, r->snap);
    return rc < 0 ? rc : rc > 0 ? 1 : 0;
}

/* ---- set-up and tear-down ------------------------------------------------------------------ */

static int check_config(bl_ctx *ctx, const bl_train_config *cfg)
{
    if (!cfg->net || !cfg->data)
        return bl_error(ctx, BL_EINVAL, "bl_train: a net and a dataset are required");
    if (!(cfg->epochs > 0) && cfg->max_steps <= 0 && !(cfg->max_seconds > 0) &&
        cfg->max_samples <= 0)
        return bl_error(ctx, BL_EOPTION,
                        "train: no budget: give epochs, max_steps or max_seconds");
    if (cfg->epochs < 0 || cfg->max_steps < 0 || cfg->max_seconds < 0 || cfg->max_samples < 0)
        return bl_error(ctx, BL_EOPTION, "train: epochs, max_steps and max_seconds must be ≥ 0");
    if (cfg->snapshot_every < 0 || !(cfg->snapshot_seconds >= 0) ||
        (cfg->snapshot_step_count > 0 && !cfg->snapshot_steps))
        return bl_error(ctx, BL_EOPTION, "train: snapshot_every and snapshot_seconds must be ≥ 0 "
                        "and snapshot_steps given with its count");
    if (cfg->scheduler && cfg->batch_fn)
        return bl_error(ctx, BL_EOPTION, "train: give a scheduler or a batch function, not both");
    if (!cfg->scheduler && !cfg->batch_fn && cfg->batch < 1)
        return bl_error(ctx, BL_EOPTION, "train: batch must be ≥ 1, got %lld",
                        (long long)cfg->batch);
    if (cfg->max_batch < 0)
        return bl_error(ctx, BL_EOPTION, "train: max_batch must be ≥ 0 (0: buffers grow with "
                        "the batches of a batch function), got %lld", (long long)cfg->max_batch);
    if (cfg->micro_batch < 0)
        return bl_error(ctx, BL_EOPTION, "train: micro_batch must be ≥ 0");
    if ((unsigned)cfg->prefetch > BL_PREFETCH_OFF)
        return bl_error(ctx, BL_EOPTION, "train: prefetch must be auto, on or off");
    if ((unsigned)cfg->data_placement > BL_DATA_RESIDENT)
        return bl_error(ctx, BL_EOPTION, "train: data_placement must be auto, staged or resident");
    if (cfg->gns_chunks < 2 && (cfg->measure_gns || cfg->scheduler))
        return bl_error(ctx, BL_EOPTION, "train: gns_chunks must be ≥ 2, got %d",
                        cfg->gns_chunks);
    if (!(cfg->gns_ema >= 0 && cfg->gns_ema < 1))
        return bl_error(ctx, BL_EOPTION, "train: gns_ema must be in [0, 1), got %g",
                        cfg->gns_ema);
    if ((unsigned)cfg->eval_unit > BL_EVAL_AUTO)
        return bl_error(ctx, BL_EOPTION, "train: eval_unit must be epochs, steps, samples or "
                        "auto");
    if (!(cfg->eval_every > 0))
        return bl_error(ctx, BL_EOPTION, "train: eval_every must be > 0, got %g",
                        cfg->eval_every);
    if (cfg->eval_batch < 0 || cfg->train_eval_samples < 0)
        return bl_error(ctx, BL_EOPTION, "train: eval_batch and train_eval_samples must be ≥ 0");
    if ((unsigned)cfg->train_accuracy_from > BL_TRAIN_ACC_SUBSET)
        return bl_error(ctx, BL_EOPTION, "train: train_accuracy_from must be steps or subset");
    if (!(cfg->diverge_loss_factor >= 0) || cfg->diverge_chance_evals < 0 ||
        !(cfg->diverge_chance_margin >= 0 && cfg->diverge_chance_margin <= 1))
        return bl_error(ctx, BL_EOPTION,
                        "train: diverge_loss_factor and diverge_chance_evals must be ≥ 0 and "
                        "diverge_chance_margin in [0, 1], got %g, %lld, %g",
                        cfg->diverge_loss_factor, (long long)cfg->diverge_chance_evals,
                        cfg->diverge_chance_margin);
    return bl_optim_validate(ctx, &cfg->optim);
}

/* The net's buffers for `reserve` samples did not fit: says which batch, and what to do,
 * instead of the allocator's internal call. */
static int out_of_memory(run *r, int64_t reserve)
{
    char why[512];
    const char *msg = bl_errmsg(r->ctx);
    const char *colon = strncmp(msg, "bl_net_reserve(", 15) == 0 ? strstr(msg, "): ") : NULL;
    snprintf(why, sizeof why, "%s", colon ? colon + 3 : msg);
    bool eval = reserve != r->chunk_max;
    return bl_error(r->ctx, BL_ENOMEM,
                    "train: %s %lld does not fit in memory (%s); give a smaller %s, or "
                    "micro_batch = N to accumulate gradients over chunks of N samples "
                    "(batchlab find-batch finds the largest batch that fits)",
                    eval ? "the evaluation batch" : r->cfg->batch_fn ? "max_batch" : "batch",
                    (long long)reserve, why,
                    eval ? "eval_batch" : r->cfg->batch_fn ? "max_batch" : "batch");
}

static bl__prefetch prefetch_how(const bl_train_config *cfg, const bl_device *dev)
{
    if (cfg->prefetch != BL_PREFETCH_AUTO)
        return cfg->prefetch == BL_PREFETCH_ON ? BL__PREFETCH_THREAD : BL__PREFETCH_NONE;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return dev->host_threads < cores ? BL__PREFETCH_THREAD : BL__PREFETCH_BACKGROUND;
}

static int setup(run *r)
{
    const bl_train_config *cfg = r->cfg;
    bl_ctx *ctx = r->ctx;
    r->net = cfg->net;
    r->dev = bl_net_device(r->net);
    r->info = bl_dataset_info(cfg->data);
    r->classify = r->info->classes >= 2;
    r->n_train = r->info->count[BL_SPLIT_TRAIN];
    r->x_numel = bl_shape_numel(&r->info->sample);
    if (r->n_train < 1)
        return bl_error(ctx, BL_EINVAL, "train: the dataset has no training samples");
    if (r->classify != (bl_net_loss_kind(r->net) == BL_LOSS_CROSS_ENTROPY))
        return bl_error(ctx, BL_EINVAL,
                        "train: the model's loss does not fit the data (%s data, %s loss)",
                        r->classify ? "classification" : "regression",
                        bl_net_loss_kind(r->net) == BL_LOSS_MSE ? "MSE" : "cross-entropy");

    r->growable = cfg->batch_fn && cfg->max_batch == 0;
    r->max_batch = cfg->scheduler ? bl_scheduler_max_batch(cfg->scheduler)
                   : r->growable  ? (cfg->batch > 0 ? cfg->batch : 1)  /* grows (train.h) */
                   : cfg->batch_fn ? cfg->max_batch
                                   : cfg->batch;
    if (r->growable && cfg->lr_scaling != BL_LR_SCALE_NONE && cfg->base_batch <= 0 &&
        cfg->batch <= 0)
        return bl_error(ctx, BL_EOPTION,
                        "train: lr_scaling with a batch function that declares no max_batch "
                        "needs base_batch (the batch the LR is given for)");
    if (r->max_batch < 1)
        return bl_error(ctx, BL_EINVAL, "train: the schedule's largest batch is %lld",
                        (long long)r->max_batch);
    if (cfg->drop_last && r->max_batch > r->n_train && !cfg->scheduler && !cfg->batch_fn)
        return bl_error(ctx, BL_EOPTION,
                        "train: batch %lld is larger than the %lld training samples and "
                        "drop_last is on: no step could run",
                        (long long)r->max_batch, (long long)r->n_train);
    r->base_batch = cfg->base_batch > 0 ? cfg->base_batch
                    : cfg->batch > 0    ? cfg->batch
                                        : r->max_batch;
    int rc = bl__lr_validate(ctx, cfg, r->base_batch);
    if (rc != BL_OK)
        return rc;

    r->dp = cfg->reducer && cfg->reducer->ranks > 1 ? cfg->reducer : NULL;
    r->gns_on = cfg->measure_gns || (cfg->scheduler && bl_scheduler_needs_gns(cfg->scheduler));
    if (r->growable && r->gns_on && cfg->micro_batch > 0)
        return bl_error(ctx, BL_EOPTION,
                        "train: the noise scale over micro-batches needs the batch function's "
                        "max_batch (its slots are sized for it)");
    bl__gns_init(&r->gns, cfg->gns_ema);

    r->chunk_max = cfg->micro_batch > 0 && cfg->micro_batch < r->max_batch ? cfg->micro_batch
                                                                          : r->max_batch;
    r->eval_batch = cfg->skip_eval      ? 1
                    : cfg->eval_batch > 0 ? cfg->eval_batch
                    : r->chunk_max > 256  ? r->chunk_max
                                          : 256;
    /* Evaluation never needs more rows than the largest split it evaluates (issue 15: 2 rows
     * of 2M features reserved 256 rows of buffers). Every split still fits one chunk when it
     * did before, so the results do not change. */
    int64_t eval_rows = 1;
    if (!cfg->skip_eval) {
        int64_t sub = cfg->train_accuracy_from != BL_TRAIN_ACC_SUBSET ? 0
                      : cfg->train_eval_samples < r->n_train ? cfg->train_eval_samples
                                                             : r->n_train;
        int64_t test = cfg->skip_test ? 0 : r->info->count[BL_SPLIT_TEST];
        int64_t val = r->info->count[BL_SPLIT_VALIDATION];
        eval_rows = val > sub ? val : sub;
        eval_rows = test > eval_rows ? test : eval_rows;
        eval_rows = eval_rows < 1 ? 1 : eval_rows;
    }
    if (r->eval_batch > eval_rows)
        r->eval_batch = eval_rows;
    int64_t reserve = r->chunk_max > r->eval_batch ? r->chunk_max : r->eval_batch;
    if ((rc = bl_net_reserve(ctx, r->net, reserve)) != BL_OK)
        return rc == BL_ENOMEM ? out_of_memory(r, reserve) : rc;
    if ((rc = bl_optim_new(ctx, r->net, &cfg->optim, &r->opt)) != BL_OK)
        return rc;
    if (r->gns_on &&
        (rc = bl_device_alloc(ctx, r->dev, bl_net_num_params(r->net) * sizeof(float),
                              (void **)&r->grad_acc)) != BL_OK)
        return rc;
    /* norm slots for the most chunks a step can have: B/micro_batch, or B/⌊B/gns_chunks⌋ */
    if (r->gns_on && (rc = bl__gns_reserve(ctx, &r->gns, r->dev,
                                           (cfg->micro_batch > 0 ? r->max_batch / cfg->micro_batch
                                                                 : 2 * cfg->gns_chunks) +
                                               1)) != BL_OK)
        return rc;

    r->eval_x_bytes = (size_t)(r->eval_batch * r->x_numel) * sizeof(float);
    r->eval_y_bytes = (size_t)r->eval_batch *
                      (r->classify ? sizeof(int32_t) : (size_t)r->info->target_dim * sizeof(float));
    if ((rc = bl_device_alloc(ctx, r->dev, r->eval_x_bytes, (void **)&r->eval_x)) != BL_OK ||
        (rc = bl_device_alloc(ctx, r->dev, r->eval_y_bytes, &r->eval_y)) != BL_OK)
        return rc;
    r->eval_idx = malloc((size_t)r->eval_batch * sizeof *r->eval_idx);
    bool staged = !(bl_device_caps(r->dev) & BL_DEVICE_CAP_HOST_ADDRESSABLE);
    if (staged) {
        r->eval_x_host = malloc(r->eval_x_bytes);
        r->eval_y_host = malloc(r->eval_y_bytes);
    }
    if (!r->eval_idx || (staged && (!r->eval_x_host || !r->eval_y_host)))
        return bl_error(ctx, BL_ENOMEM, "train: out of memory");

    if ((rc = bl__loader_open(ctx, &r->loader, cfg->data, r->dev, r->max_batch, cfg->seed,
                              prefetch_how(cfg, r->dev), cfg->data_placement)) !=
        BL_OK)
        return rc;
    r->loader_open = true;
    if ((rc = bl__step_times_reserve(ctx, &r->step_times, BL__STEP_TIMES_KEPT)) != BL_OK)
        return rc;

    r->state.train_size = r->n_train;
    r->state.batch = cfg->batch > 0 ? cfg->batch : 0;
    r->state.lr = cfg->optim.lr;
    r->state.gns = NAN;
    r->next_eval = cfg->eval_unit == BL_EVAL_AUTO ? 1 : cfg->eval_every;
    r->win_from = 1;
    if (cfg->on_snapshot || cfg->on_final_snapshot) {
        r->snap = bl__snapshot_new();
        if (!r->snap)
            return bl_error(ctx, BL_ENOMEM, "train: out of memory");
    }
    if (cfg->resume_from)
        return restore(r, cfg->resume_from);
    return BL_OK;
}

static void teardown(run *r)
{
    if (r->loader_open)
        bl__loader_close(&r->loader);
    bl_optim_free(r->opt);
    if (r->dev) {
        bl_device_release(r->dev, r->grad_acc, bl_net_num_params(r->net) * sizeof(float));
        bl__gns_release(&r->gns);
        bl_device_release(r->dev, r->eval_x, r->eval_x_bytes);
        bl_device_release(r->dev, r->eval_y, r->eval_y_bytes);
    }
    free(r->eval_idx);
    free(r->eval_x_host);
    free(r->eval_y_host);
    bl__step_times_release(&r->step_times);
    bl_snapshot_free(r->snap);
}

static void init_result(bl_run_result *res)
{
    memset(res, 0, sizeof *res);
    res->status = BL_RUN_FAILED;
    res->test_loss = res->test_accuracy = NAN;
    res->time_to_target = res->wall_time_to_target = res->epochs_to_target = NAN;
    res->step_time_median = NAN;
    res->steps_to_target = res->samples_to_target = res->steps_to_target_error = -1;
    res->diverged_step = -1;
    res->resumed_step = -1;
    bl_eval_point *f = &res->final;
    f->train_loss = f->train_accuracy = f->val_loss = f->val_accuracy = NAN;
    f->gns = f->samples_per_sec = f->lr = NAN;
}

static void set_reason(bl_run_result *res, const char *reason)
{
    snprintf(res->stopped_by, sizeof res->stopped_by, "%s", reason);
}

/* ---- the loop ------------------------------------------------------------------------------ */

/* Returns BL_OK with *stop set and res->status/stopped_by filled when the run ends normally,
 * or an error (the run failed). */
static int loop(run *r)
{
    const bl_train_config *cfg = r->cfg;
    bl_run_result *res = r->res;
    const char *stop = NULL;
    int64_t pending_batch = 0;
    double pending_factor = 1.0;
    int cur = 0;
    int rc;

    for (;;) {
        /* epoch boundary */
        if (r->pos >= r->n_train) {
            r->epoch++;
            r->pos = 0;
            r->state.epoch = r->epoch;
            r->state.epoch_progress = (double)r->epoch;
            bl__loader_new_epoch(&r->loader);
        }
        /* budgets */
        if (cfg->epochs > 0 && epoch_progress(r) >= cfg->epochs - 1e-12)
            stop = "epochs";
        else if (cfg->max_steps > 0 && r->state.step >= cfg->max_steps)
            stop = "max_steps";
        else if (cfg->max_samples > 0 && r->state.samples >= cfg->max_samples)
            stop = "max_samples";
        else if (cfg->max_seconds > 0 &&
                 (r->dp ? r->dp_step.time : r->train_time) >= cfg->max_seconds)
            stop = "max_seconds";
        else if (r->dp ? r->dp_step.interrupt : cfg->interrupt && *cfg->interrupt) {
            res->status = BL_RUN_INTERRUPTED;
            set_reason(res, "interrupt");
            return BL_OK;
        }
        if (stop)
            break;

        double t0 = bl__now();
        int64_t B = pending_batch;
        double factor = pending_factor;
        if (B == 0 && (rc = next_batch(r, &B, &factor)) != BL_OK)
            return rc;
        int64_t remaining = r->n_train - r->pos;
        if (cfg->drop_last && remaining < B) {
            if (r->pos == 0)
                return bl_error(r->ctx, BL_EINVAL,
                                "batch %lld is larger than the %lld training samples and "
                                "drop_last is on",
                                (long long)B, (long long)r->n_train);
            /* the rest of this epoch is dropped; the batch carries over to the next */
            pending_batch = B;
            pending_factor = factor;
            r->train_time += bl__now() - t0;
            r->pos = r->n_train;
            if (cfg->eval_unit == BL_EVAL_EPOCHS && eval_due(r)) {
                if ((rc = make_point(r, &stop)) < 0)
                    return rc;
                if (rc > 0)
                    break;
            }
            continue;
        }
        pending_batch = 0;
        int64_t n = remaining < B ? remaining : B;

        if ((rc = bl__loader_fill(r->ctx, &r->loader, cur, r->pos, n)) != BL_OK)
            return rc;
        bl__loader_prefetch(&r->loader, 1 - cur, r->pos + n, B);

        double lr = bl__lr_at(cfg, r->base_batch, r->n_train, n, r->state.step,
                              r->state.samples, factor);
        double loss_sum;
        if (r->dp) {              /* data-parallel: this rank's share, one sum over ranks */
            r->dp_step = (bl__dp_step){cfg->interrupt && *cfg->interrupt, r->train_time};
            rc = bl__dp_gradients(r->ctx, r->dp, r->net, r->loader.slot[cur].x,
                                  r->loader.slot[cur].y, r->x_numel,
                                  (size_t)r->loader.y_bytes_per_sample, n, cfg->micro_batch,
                                  r->gns_on ? &r->gns : NULL, &r->dp_step, &loss_sum);
        } else {
            rc = compute_gradients(r, &r->loader.slot[cur], n, &loss_sum);
        }
        if (rc != BL_OK)
            return rc;
        if (!isfinite(loss_sum)) {
            r->train_time += bl__now() - t0;
            res->status = BL_RUN_DIVERGED;
            res->diverged_step = r->state.step + 1;
            snprintf(res->error, sizeof res->error,
                     "the training loss became %s at step %lld (batch %lld, lr %g)",
                     isnan(loss_sum) ? "NaN" : "infinite", (long long)(r->state.step + 1),
                     (long long)n, lr);
            set_reason(res, "diverged");
            return BL_OK;
        }
        if ((rc = bl_optim_step(r->ctx, r->opt, lr, NULL)) != BL_OK)
            return rc;

        r->pos += n;
        r->state.step++;
        r->state.samples += n;
        r->state.batch = n;
        r->state.lr = lr;
        r->state.epoch_progress = epoch_progress(r);
        r->loss_sum += loss_sum;
        r->loss_count += n;
        if (!r->ref_done) {
            r->ref_loss_sum += loss_sum;
            r->ref_count += n;
            r->ref_done = r->ref_count >= DIVERGE_SAMPLES;
        }
        r->win_loss_sum += loss_sum;
        r->win_count += n;
        if (n > res->max_batch_used)
            res->max_batch_used = n;
        cur = 1 - cur;
        double dt = bl__now() - t0;
        r->train_time += dt;
        bl__step_times_push(&r->step_times, dt, n);
        r->last_asked = B;
        r->last_asked_lr = n == B ? lr
                                  : bl__lr_at(cfg, r->base_batch, r->n_train, B,
                                              r->state.step - 1, r->state.samples - n, factor);
        r->state.wall = r->train_time;

        if (cfg->on_progress)
            cfg->on_progress(cfg->progress_user, &r->state, loss_sum / (double)n,
                             cfg->epochs > 0 ? (int64_t)(cfg->epochs * (double)r->n_train) : 0);
        if (eval_due(r)) {
            if ((rc = make_point(r, &stop)) < 0)
                return rc;
            if (rc > 0)
                break;
        }
        if (snapshot_due(r)) {
            if ((rc = take_snapshot(r, r->cfg->on_snapshot)) < 0)
                return rc;
            if (rc > 0) {
                r->paused = true;
                stop = "snapshot";
                break;
            }
        }
    }

    /* a last point at the end of the run, unless one was just made (or a snapshot paused it:
     * its state is the one handed out) */
    if (!r->paused && (!r->have_last || r->last.step != r->state.step)) {
        const char *late = NULL;
        if ((rc = make_point(r, &late)) < 0)
            return rc;
    }
    res->status = r->diverged ? BL_RUN_DIVERGED : BL_RUN_COMPLETED;
    set_reason(res, r->diverged ? "diverged" : stop);
    return BL_OK;
}

/* step_time_median and the robust time_to_target (train.h): the median over the kept steps
 * of the batch last asked for (all kept steps when none of them was that full batch: every
 * step was an epoch's partial rest), times the interpolated steps to target. */
static void set_robust_time(run *r)
{
    bl_run_result *res = r->res;
    double m = bl__step_times_median(&r->step_times, r->last_asked);
    if (isnan(m))
        m = bl__step_times_median(&r->step_times, 0);
    res->step_time_median = m;
    if (res->steps_to_target >= 0)
        res->time_to_target = isnan(m) ? res->wall_time_to_target
                                        : (double)res->steps_to_target * m;
}

int bl_train(bl_ctx *ctx, const bl_train_config *cfg, bl_run_result *result)
{
    if (!result)
        return bl_error(ctx, BL_EINVAL, "bl_train: result is NULL");
    init_result(result);
    if (!cfg)
        return bl_error(ctx, BL_EINVAL, "bl_train: cfg is NULL");
    int rc = check_config(ctx, cfg);
    if (rc != BL_OK) {
        snprintf(result->error, sizeof result->error, "%s", bl_errmsg(ctx));
        set_reason(result, "error");
        return rc;
    }
    run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.ctx = ctx;
    r.res = result;
    bl_device *dev = bl_net_device(cfg->net);
    bl_device_watch watch; /* the run's peak, without touching the device's own peak_bytes */
    bl_device_watch_begin(dev, &watch, 0, 0);

    rc = setup(&r);
    if (rc != BL_OK) {
        snprintf(result->error, sizeof result->error, "%s", bl_errmsg(ctx));
        set_reason(result, "error");
        teardown(&r);
        bl_device_watch_end(dev, &watch);
        return rc;
    }
    rc = loop(&r);
    if (rc == BL_OK && cfg->on_final_snapshot &&
        (result->status == BL_RUN_COMPLETED || result->status == BL_RUN_INTERRUPTED)) {
        rc = take_snapshot(&r, cfg->on_final_snapshot);
        rc = rc > 0 ? BL_OK : rc;
    }
    if (rc == BL_OK && result->status == BL_RUN_COMPLETED && !r.paused && !cfg->skip_test &&
        !cfg->skip_eval && r.info->count[BL_SPLIT_TEST] > 0) {
        double t0 = bl__now();
        rc = evaluate_split(&r, BL_SPLIT_TEST, r.info->count[BL_SPLIT_TEST], &result->test_loss,
                            &result->test_accuracy);
        r.eval_time += bl__now() - t0;
    }
    if (rc != BL_OK) {
        result->status = BL_RUN_FAILED;
        snprintf(result->error, sizeof result->error, "%s", bl_errmsg(ctx));
        set_reason(result, "error");
    }
    result->steps = r.state.step;
    result->samples = r.state.samples;
    result->epochs = (double)r.epoch + (double)r.pos / (double)r.n_train;
    result->time = r.train_time;
    set_robust_time(&r);
    result->eval_time = r.eval_time;
    if (r.have_last)
        result->final = r.last;
    result->peak_device_bytes = watch.peak;
    teardown(&r);
    bl_device_watch_end(dev, &watch);
    return BL_OK;
}

/* The probe: a prediction of the best batch size from a short noise-scale run and step times
 * (batchlab/probe.h). Every run goes through bl_run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/find_batch.h"
#include "batchlab/probe.h"
#include "base/clock.h"
#include "base/duration.h"
#include "engine/engine.h"

/* Evaluation points of the noise run: about this many. */
enum { NOISE_POINTS = 25, MAX_LADDER = 64, MAX_OUTPUTS = 16 };

bl_probe_config bl_probe_defaults(void)
{
    bl_probe_config c;
    memset(&c, 0, sizeof c);
    c.probe_steps = 300;
    c.warmup_steps = 3;
    c.time_steps = 10;
    c.rounds = 2;
    c.min_batch = 1;
    c.max_batch = 4096;
    c.tie_fraction = 0.10;
    return c;
}

const char *bl_probe_s_min_basis_name(bl_probe_s_min_basis basis)
{
    switch (basis) {
    case BL_PROBE_S_MIN_TARGET: return "target";
    case BL_PROBE_S_MIN_EXTRAPOLATED: return "extrapolated";
    case BL_PROBE_S_MIN_NONE: break;
    }
    return "none";
}

void bl_probe_result_free(bl_probe_result *r)
{
    if (!r)
        return;
    free(r->points);
    free(r->within);
    memset(r, 0, sizeof *r);
}

/* ---- checks -------------------------------------------------------------------------------- */

static int check(bl_ctx *ctx, const bl_run_plan *plan, const bl_probe_config *c)
{
    const bl_train_config *t = &plan->train;
    if (!plan->model || !t->data)
        return bl_error(ctx, BL_EOPTION, "probe: a model and a dataset are needed");
    if (t->scheduler || t->batch_fn || plan->scheduler_plugin)
        return bl_error(ctx, BL_EOPTION,
                        "probe: 'batch' must be a number (the batch the noise scale is "
                        "measured at), not a schedule");
    if (t->on_point)
        return bl_error(ctx, BL_EOPTION, "probe: the plan's on_point must be NULL");
    if (c->n_outputs > MAX_OUTPUTS)
        return bl_error(ctx, BL_EOPTION, "probe: at most %d outputs, got %zu", MAX_OUTPUTS,
                        c->n_outputs);
    if (!t->has_target)
        return bl_error(ctx, BL_EOPTION,
                        "probe: a 'target' is needed (e.g. target = {val_loss = 0.1}): the "
                        "prediction is of the time to reach it");
    int64_t chunks = t->gns_chunks > 0 ? t->gns_chunks : 4;
    if (t->micro_batch > 0)
        return bl_error(ctx, BL_EOPTION,
                        "probe: micro_batch is not supported (the noise scale is measured from "
                        "chunks of one batch)");
    if (t->batch < 2 * chunks)
        return bl_error(ctx, BL_EOPTION,
                        "probe: 'batch' %lld is too small to measure the noise scale: it needs "
                        "at least 2 × gns_chunks = %lld samples",
                        (long long)t->batch, (long long)(2 * chunks));
    if (c->probe_steps < 20)
        return bl_error(ctx, BL_EOPTION, "probe: 'probe_steps' must be ≥ 20, got %lld",
                        (long long)c->probe_steps);
    if (c->rounds < 1 || c->rounds > 16)
        return bl_error(ctx, BL_EOPTION, "probe: 'rounds' must be in [1, 16], got %d",
                        c->rounds);
    if (c->time_steps < 3 || c->warmup_steps < 0)
        return bl_error(ctx, BL_EOPTION,
                        "probe: 'time_steps' must be ≥ 3 and 'warmup_steps' ≥ 0, got %lld and "
                        "%lld", (long long)c->time_steps, (long long)c->warmup_steps);
    if (c->min_batch < 1 || c->max_batch < c->min_batch)
        return bl_error(ctx, BL_EOPTION,
                        "probe: need 1 ≤ min_batch ≤ max_batch, got %lld and %lld",
                        (long long)c->min_batch, (long long)c->max_batch);
    if (!(c->tie_fraction >= 0 && c->tie_fraction < 10))
        return bl_error(ctx, BL_EOPTION, "probe: 'tie_fraction' must be in [0, 10), got %g",
                        c->tie_fraction);
    int64_t n_train = bl_dataset_info(t->data)->count[BL_SPLIT_TRAIN];
    if (c->batches) {
        if (c->batch_count < 1 || c->batch_count > MAX_LADDER)
            return bl_error(ctx, BL_EOPTION, "probe: 'batches' must hold 1 to %d batch sizes",
                            MAX_LADDER);
        for (size_t i = 0; i < c->batch_count; i++) {
            int64_t b = c->batches[i];
            if (b < 1 || b > n_train)
                return bl_error(ctx, BL_EOPTION,
                                "probe: batches[%zu] = %lld must be in [1, %lld] (the training "
                                "samples)", i + 1, (long long)b, (long long)n_train);
            if (i > 0 && b <= c->batches[i - 1])
                return bl_error(ctx, BL_EOPTION,
                                "probe: 'batches' must be increasing (batches[%zu] = %lld after "
                                "%lld)", i + 1, (long long)b, (long long)c->batches[i - 1]);
        }
    }
    return BL_OK;
}

/* The error for a run that did not end as it should: interrupted, failed or diverged. */
static int run_error(bl_ctx *ctx, int rc, const bl_run_result *r, const char *what)
{
    if (rc != BL_OK)
        return bl_error_prefix(ctx, "probe: %s", what);
    if (r->status == BL_RUN_INTERRUPTED)
        return bl_error(ctx, BL_EINTERRUPTED, "probe: interrupted during %s", what);
    if (r->status == BL_RUN_DIVERGED)
        return bl_error(ctx, BL_EDIVERGED,
                        "probe: %s diverged (%s); lower the learning rate or change the "
                        "batch", what, r->error);
    return bl_error(ctx, BL_EINVAL, "probe: %s failed: %s", what, r->error);
}

/* ---- 1. the noise run ---------------------------------------------------------------------- */

/* S(b) extrapolated from the progress of the target's metric over the run's later half
 * (from its first point there to its last that have the metric): the recent rate, not the
 * fast start's; NAN when the metric did not move towards the target. */
static double extrapolate_steps(const bl_run_result *r, const bl_train_config *t)
{
    const bl_eval_point *first = NULL, *last = NULL;
    for (size_t i = 0; i < r->history_count; i++) {
        double v = bl_eval_point_metric(&r->history[i], t->target_metric);
        if (!isfinite(v) || 2 * r->history[i].step < r->steps)
            continue;
        if (!first)
            first = &r->history[i];
        last = &r->history[i];
    }
    if (!first || last->step <= first->step)
        return NAN;
    double dir = t->target_higher_better ? 1.0 : -1.0;
    double m0 = bl_eval_point_metric(first, t->target_metric);
    double m1 = bl_eval_point_metric(last, t->target_metric);
    double rate = dir * (m1 - m0) / (double)(last->step - first->step);
    double remaining = dir * (t->target_value - m1);
    if (!(rate > 0) || !(remaining > 0))
        return NAN;
    return (double)last->step + remaining / rate;
}

static int noise_run(bl_ctx *ctx, const bl_run_plan *plan, const bl_probe_config *c,
                     bl_probe_result *out)
{
    bl_run_plan p = *plan;
    bl_train_config *t = &p.train;
    t->epochs = 0;
    t->max_seconds = 0;
    t->max_steps = c->probe_steps;
    t->measure_gns = true;
    t->stop_at_target = false;
    t->criterion = NULL;
    t->eval_unit = BL_EVAL_STEPS;
    t->eval_every = (double)((c->probe_steps + NOISE_POINTS - 1) / NOISE_POINTS);
    t->skip_test = true;
    p.label = "probe: noise scale";
    p.config_json = NULL;

    bl_run_result r;
    int rc = bl_run(ctx, &p, c->outputs, c->n_outputs, &r);
    if (rc != BL_OK || r.status != BL_RUN_COMPLETED) {
        char what[96];
        snprintf(what, sizeof what, "the noise-scale run at batch %lld", (long long)t->batch);
        rc = run_error(ctx, rc, &r, what);
        bl_run_result_free(&r);
        return rc;
    }
    /* the median of the smoothed B_simple over the points of the later half */
    double gns[NOISE_POINTS * 2 + 2];
    size_t n = 0;
    for (size_t i = 0; i < r.history_count && n < sizeof gns / sizeof gns[0]; i++) {
        const bl_eval_point *pt = &r.history[i];
        if (2 * pt->step > r.steps && isfinite(pt->gns) && pt->gns > 0)
            gns[n++] = pt->gns;
    }
    out->noise_batch = t->batch;
    out->noise_steps = r.steps;
    out->gns_points = (int64_t)n;
    out->b_noise = bl__median(gns, n, gns);
    if (n == 0) {
        bl_run_result_free(&r);
        return bl_error(ctx, BL_EINVAL,
                        "probe: the noise scale could not be measured at batch %lld over %lld "
                        "steps (the estimate of |G|² was never positive: the gradient is "
                        "drowned in noise); try a larger 'batch' or more 'probe_steps'",
                        (long long)t->batch, (long long)r.steps);
    }
    if (r.steps_to_target >= 0) {
        out->noise_steps_to_target = (double)r.steps_to_target;
        out->s_min_basis = BL_PROBE_S_MIN_TARGET;
    } else {
        out->noise_steps_to_target = extrapolate_steps(&r, t);
        out->s_min_basis = isfinite(out->noise_steps_to_target) ? BL_PROBE_S_MIN_EXTRAPOLATED
                                                               : BL_PROBE_S_MIN_NONE;
    }
    out->s_min = out->noise_steps_to_target / (1.0 + out->b_noise / (double)t->batch);
    bl_run_result_free(&r);
    return BL_OK;
}

/* ---- 2. step times ------------------------------------------------------------------------- */

/* An output that times the steps of the timing runs: per-step training time from the state's
 * wall clock, kept after the warmup in the engine's step-time ring, each with its batch. One
 * ring for every run of the probe (sized once for all of them), so a batch's median spans
 * its rounds. */
typedef struct timer {
    bl__step_times ring;
    int64_t warmup, batch;
    int64_t timed;            /* steps kept by the current run */
    double last_wall;
    bl_progress_fn chained;   /* the on_progress an earlier output installed */
    void *chained_user;
} timer;

static void timer_progress(void *user, const bl_train_state *s, double loss, int64_t total)
{
    timer *tm = user;
    double dt = s->wall - tm->last_wall;
    tm->last_wall = s->wall;
    if (s->step > tm->warmup && s->batch == tm->batch) {
        bl__step_times_push(&tm->ring, dt, s->batch);
        tm->timed++;
    }
    if (tm->chained)
        tm->chained(tm->chained_user, s, loss, total);
}

static int timer_begin(void *self, bl_ctx *ctx, const bl_run_info *info)
{
    (void)ctx;
    timer *tm = self;
    tm->chained = info->train->on_progress;
    tm->chained_user = info->train->progress_user;
    info->train->on_progress = timer_progress;
    info->train->progress_user = tm;
    tm->last_wall = 0;
    tm->timed = 0;
    return BL_OK;
}

/* The ladder of batches to time: given, or powers of two from min_batch up to the cap. */
static size_t ladder(const bl_probe_config *c, int64_t cap, int64_t *b)
{
    if (c->batches) {
        memcpy(b, c->batches, c->batch_count * sizeof *b);
        return c->batch_count;
    }
    size_t n = 0;
    for (int64_t x = c->min_batch; x <= cap && n < MAX_LADDER; x *= 2)
        b[n++] = x;
    return n;
}

/* The largest batch that fits the budget, by the max-batch finder, on the plan's device. */
static int find_largest(bl_ctx *ctx, const bl_run_plan *plan, const bl_probe_config *c,
                        int64_t cap, int64_t *largest)
{
    bl_find_batch_config f = bl_find_batch_defaults();
    f.model = plan->model;
    f.model_opts = plan->model_opts;
    f.data = plan->train.data;
    f.optim = plan->train.optim;
    f.seed = plan->train.seed;
    f.init = c->min_batch;
    f.max = cap;
    f.margin = 0;
    f.budget_bytes = c->budget_bytes;
    int rc = bl_device_open_threads(ctx, plan->device ? plan->device : "cpu", plan->threads,
                                    &f.dev);
    if (rc != BL_OK)
        return rc;
    bl_find_batch_result *r = malloc(sizeof *r);
    if (!r) {
        bl_device_free(f.dev);
        return bl_error(ctx, BL_ENOMEM, "probe: out of memory");
    }
    rc = bl_find_max_batch(ctx, &f, r);
    if (rc == BL_OK)
        *largest = r->largest;
    else
        bl_error_prefix(ctx, "probe");
    free(r);
    bl_device_free(f.dev);
    return rc;
}

/* One timing run of batch B (its steps go into tm's ring); *fits false (and BL_OK) when it
 * ran out of memory. */
static int time_batch(bl_ctx *ctx, const bl_run_plan *plan, const bl_probe_config *c,
                      timer *tm, bl_run_output *outputs, size_t n_outputs, int64_t B,
                      bl_probe_point *pt, bool *fits)
{
    bl_run_plan p = *plan;
    bl_train_config *t = &p.train;
    t->batch = B;
    t->epochs = 0;
    t->max_seconds = 0;
    t->max_steps = c->warmup_steps + c->time_steps;
    t->measure_gns = false;
    t->has_target = false;
    t->stop_at_target = false;
    t->criterion = NULL;
    t->skip_eval = true;
    t->skip_test = true;
    t->eval_unit = BL_EVAL_STEPS;
    t->eval_every = (double)t->max_steps;
    t->drop_last = true;         /* every timed step is a full batch */
    /* the LR does not change a step's cost; keep it where the plan trains stably */
    t->lr_scaling = BL_LR_SCALE_NONE;
    t->warmup_epochs = 0;
    t->warmup_steps = 0;
    t->lr_schedule = BL_LR_CONSTANT;
    t->diverge_loss_factor = 0;
    t->diverge_chance_evals = 0;
    p.label = "probe: step time";
    p.config_json = NULL;
    tm->warmup = c->warmup_steps;
    tm->batch = B;

    bl_run_result r;
    int rc = bl_run(ctx, &p, outputs, n_outputs, &r);
    *fits = true;
    if (rc == BL_ENOMEM || (c->budget_bytes > 0 && r.peak_device_bytes > c->budget_bytes)) {
        *fits = false;
        bl_run_result_free(&r);
        bl_clear_error(ctx);
        return BL_OK;
    }
    char what[96];
    snprintf(what, sizeof what, "the step-time run at batch %lld", (long long)B);
    /* a run that diverged still timed its steps before it */
    if (rc != BL_OK || (r.status != BL_RUN_COMPLETED &&
                        !(r.status == BL_RUN_DIVERGED && tm->timed > 0))) {
        rc = run_error(ctx, rc, &r, what);
        bl_run_result_free(&r);
        return rc;
    }
    pt->batch = B;
    pt->timed_steps += tm->timed;
    if (r.peak_device_bytes > pt->peak_bytes)
        pt->peak_bytes = r.peak_device_bytes;
    bl_run_result_free(&r);
    return BL_OK;
}

static int step_times(bl_ctx *ctx, const bl_run_plan *plan, const bl_probe_config *c,
                      bl_probe_result *out)
{
    int64_t n_train = bl_dataset_info(plan->train.data)->count[BL_SPLIT_TRAIN];
    int64_t cap = c->max_batch < n_train ? c->max_batch : n_train;
    int rc;
    if (c->budget_bytes > 0 && !c->batches) {
        if (cap < c->min_batch)
            return bl_error(ctx, BL_EOPTION,
                            "probe: min_batch %lld is above the %lld training samples",
                            (long long)c->min_batch, (long long)n_train);
        if ((rc = find_largest(ctx, plan, c, cap, &out->largest_fit)) != BL_OK)
            return rc;
        cap = out->largest_fit;
    }
    int64_t batches[MAX_LADDER];
    size_t n = ladder(c, cap, batches);
    if (n == 0)
        return bl_error(ctx, BL_EOPTION,
                        "probe: no batch to time: min_batch %lld is above the largest batch "
                        "%lld (max_batch, the training samples, the memory budget)",
                        (long long)c->min_batch, (long long)cap);
    out->points = calloc(n, sizeof *out->points);
    if (!out->points)
        return bl_error(ctx, BL_ENOMEM, "probe: out of memory");

    /* the caller's outputs, then the timer (which chains to their on_progress) */
    bl_run_output outputs[MAX_OUTPUTS + 1];
    size_t n_out = c->n_outputs;
    if (n_out)
        memcpy(outputs, c->outputs, n_out * sizeof *outputs);
    timer tm;
    memset(&tm, 0, sizeof tm);
    size_t per_batch = (size_t)c->time_steps * (size_t)c->rounds;
    if ((rc = bl__step_times_reserve(ctx, &tm.ring, n * per_batch)) != BL_OK)
        return rc;
    outputs[n_out++] = (bl_run_output){.name = "probe timer", .self = &tm, .begin = timer_begin};

    /* round 0 climbs the ladder until a batch does not fit; later rounds go down and up it
     * again, so that a stretch of load on the machine falls on different batches each time */
    for (int round = 0; round < c->rounds && rc == BL_OK; round++) {
        size_t ladder = round == 0 ? n : out->count;   /* the batches this round times */
        for (size_t k = 0; k < ladder; k++) {
            size_t i = round % 2 ? ladder - 1 - k : k;
            bool fits;
            rc = time_batch(ctx, plan, c, &tm, outputs, n_out, batches[i], &out->points[i],
                            &fits);
            if (rc != BL_OK)
                break;
            if (!fits) {
                if (i == 0)
                    rc = bl_error(ctx, BL_ENOMEM, "probe: not even batch %lld fits in memory",
                                  (long long)batches[i]);
                break;
            }
            if (round == 0)
                out->count++;
        }
    }
    for (size_t i = 0; i < out->count && rc == BL_OK; i++) {
        bl_probe_point *pt = &out->points[i];
        pt->step_time = bl__step_times_median(&tm.ring, pt->batch);
        if (!(pt->step_time > 0))
            rc = bl_error(ctx, BL_EINVAL, "probe: the step-time runs at batch %lld timed no step",
                          (long long)pt->batch);
    }
    bl__step_times_release(&tm.ring);
    return rc;
}

/* ---- 3. the prediction --------------------------------------------------------------------- */

static int predict(bl_ctx *ctx, const bl_probe_config *c, bl_probe_result *out)
{
    double best = INFINITY;
    for (size_t i = 0; i < out->count; i++) {
        bl_probe_point *p = &out->points[i];
        double factor = 1.0 + out->b_noise / (double)p->batch;   /* S(B) / S_min */
        p->relative_time = factor * p->step_time;
        p->steps = out->s_min * factor;
        p->time = p->steps * p->step_time;
        if (p->relative_time < best) {
            best = p->relative_time;
            out->best_batch = p->batch;
        }
    }
    out->within = malloc(out->count * sizeof *out->within);
    if (!out->within)
        return bl_error(ctx, BL_ENOMEM, "probe: out of memory");
    for (size_t i = 0; i < out->count; i++) {
        bl_probe_point *p = &out->points[i];
        p->relative_time /= best;
        p->within = p->relative_time <= 1.0 + c->tie_fraction + 1e-12;
        if (p->within)
            out->within[out->within_count++] = p->batch;
    }
    return BL_OK;
}

int bl_probe(bl_ctx *ctx, const bl_run_plan *plan, const bl_probe_config *cfg,
             bl_probe_result *out)
{
    memset(out, 0, sizeof *out);
    out->b_noise = out->s_min = out->noise_steps_to_target = NAN;
    bl_probe_config c = cfg ? *cfg : bl_probe_defaults();
    if (!plan)
        return bl_error(ctx, BL_EINVAL, "probe: plan is NULL");
    double t0 = bl__now();
    int rc = check(ctx, plan, &c);
    if (rc == BL_OK)
        rc = noise_run(ctx, plan, &c, out);
    if (rc == BL_OK)
        rc = step_times(ctx, plan, &c, out);
    if (rc == BL_OK)
        rc = predict(ctx, &c, out);
    if (rc != BL_OK) {
        bl_probe_result_free(out);
        return rc;
    }
    out->seconds = bl__now() - t0;
    return BL_OK;
}

/* ---- the sentence -------------------------------------------------------------------------- */

const char *bl_probe_summary(const bl_probe_result *r, double tie_fraction, char *buf,
                             size_t size)
{
    if (!buf || size == 0)
        return buf;
    char secs[32];
    size_t n = 0;
#define PUT(...)                                                                          \
    do {                                                                                  \
        int w_ = snprintf(buf + n, size - n, __VA_ARGS__);                                \
        n = w_ < 0 ? n : (size_t)w_ >= size - n ? size - 1 : n + (size_t)w_;              \
    } while (0)
    buf[0] = '\0';
    const bl_probe_point *best = NULL;
    for (size_t i = 0; i < r->count; i++)
        if (r->points[i].batch == r->best_batch)
            best = &r->points[i];
    if (!best) {
        PUT("no prediction");
        return buf;
    }
    PUT("predicted best batch %lld", (long long)r->best_batch);
    if (isfinite(best->time))
        PUT(" (≈ %s to the target)", bl__format_seconds(secs, sizeof secs, best->time));
    /* the batches within: a range when they are neighbours on the curve, else a list */
    size_t first = r->count, last = 0, k = 0;
    for (size_t i = 0; i < r->count; i++)
        if (r->points[i].within) {
            first = i < first ? i : first;
            last = i;
            k++;
        }
    int pct = (int)lround(tie_fraction * 100);
    if (k <= 1)
        PUT("; no other batch within %d%%", pct);
    else if (last - first + 1 == k)
        PUT("; %lld–%lld within %d%%", (long long)r->points[first].batch,
            (long long)r->points[last].batch, pct);
    else {
        PUT("; ");
        for (size_t i = 0, m = 0; i < r->count; i++)
            if (r->points[i].within)
                PUT("%s%lld", m++ ? ", " : "", (long long)r->points[i].batch);
        PUT(" within %d%%", pct);
    }
    PUT("; B_noise ≈ %.3g (measured at batch %lld)", r->b_noise, (long long)r->noise_batch);
    if (r->s_min_basis == BL_PROBE_S_MIN_TARGET)
        PUT(", S_min ≈ %.0f steps (from the probe's own run to the target)", r->s_min);
    else if (r->s_min_basis == BL_PROBE_S_MIN_EXTRAPOLATED)
        PUT(", S_min ≈ %.0f steps (extrapolated: the probe did not reach the target, so "
            "times are likely too short)", r->s_min);
    else
        PUT("; S_min unknown (the probe made no progress towards the target): only relative "
            "times");
#undef PUT
    return buf;
}

/* Writes a sample results store for tests/cli/report.sh:
 *   report_sample DB
 * Experiment "bs-sweep": batches 16, 32, 64 and 128 with seeds 1 and 2 whose validation
 * accuracy reaches 0.85 after about S(B) = 1000 + 64000/B steps (so B_crit ≈ 64), at
 * 0.004 + 0.00012·B seconds per step; the seed-1 runs measure the gradient noise scale; the
 * configurations carry "target": {"metric": "val_accuracy", "at_least": 0.85} and the runs
 * their recorded time/steps to target. Also a ramp schedule 16→128, a failed run (batch 256),
 * a diverged one (batch 512, NaN loss) and a run labelled <script>alert(1)</script> &"'.
 * Experiment "other": one run. Prints nothing; exits 1 with a message on error. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "batchlab/store.h"

#define MAX_POINTS 64
#define EVIL "<script>alert(1)</script> &\"'"

typedef struct sample {
    const char *label, *config;
    double batch;            /* NAN: the ramp */
    int seed;
    bl_run_status status;
    bool gns;
} sample;

static int batch_at(const sample *s, int64_t step, int64_t total)
{
    if (!isnan(s->batch))
        return (int)s->batch;
    return 16 << (int)(4 * step / (total + 1));        /* 16, 32, 64, 128 */
}

/* Makes one run; points every tenth of S(B), for 1.5·S(B) steps. */
static int make_run(bl_ctx *ctx, bl_store *st, int64_t exp_id, const sample *s)
{
    double b = isnan(s->batch) ? 48 : s->batch;          /* the ramp behaves like ~48 */
    /* accuracy rises from 0.1 to `top` (a bit lower for larger batches) */
    double target_steps = 1000 + 64000 / b;
    double top = 0.935 - 0.006 * log2(b) - 0.002 * s->seed;
    double tau = target_steps / log((top - 0.1) / (top - 0.85)) * (1 + 0.06 * (s->seed - 1.5));
    int64_t every = (int64_t)(target_steps / 10), total = (int64_t)(1.5 * target_steps);
    int npoints = s->status == BL_RUN_COMPLETED ? (int)(total / every) : 4;
    int64_t run;
    if (bl_store_run_begin(ctx, st, exp_id, s->label, s->config, (uint64_t)s->seed, &run))
        return -1;
    bl_run_result res = {.status = s->status, .diverged_step = -1, .steps_to_target = -1,
                         .samples_to_target = -1, .time_to_target = NAN,
                         .wall_time_to_target = NAN, .step_time_median = NAN,
                         .epochs_to_target = NAN, .test_loss = NAN, .test_accuracy = NAN};
    bl_eval_point hist[MAX_POINTS];
    double wall = 0;
    int64_t samples = 0, prev = 0;
    for (int i = 1; i <= npoints; i++) {
        int64_t step = i * every;
        for (int64_t k = prev; k < step; k++) {
            int bk = batch_at(s, k, total);
            samples += bk;
            wall += 0.004 + 0.00012 * bk;
        }
        prev = step;
        double acc = top - (top - 0.1) * exp(-(double)step / tau);
        bl_eval_point p = {.step = step, .samples = samples, .epoch = samples / 50000.0,
                           .wall = wall, .batch = batch_at(s, step - 1, total),
                           .lr = 0.05 * batch_at(s, step - 1, total) / 32,
                           .train_loss = 0.25 + 2.05 * exp(-(double)step / (0.8 * tau)),
                           .train_accuracy = acc + 0.01, .val_loss = 0.3 + 1.9 *
                           exp(-(double)step / tau), .val_accuracy = acc,
                           .gns = s->gns ? 20 + 60.0 * step / total : NAN,
                           .samples_per_sec = 1 / (0.004 / b + 0.00012)};
        if (s->status == BL_RUN_DIVERGED && i == npoints) {
            p.train_loss = NAN;
            p.val_loss = p.val_accuracy = NAN;
            res.diverged_step = step;
        }
        if (acc >= 0.85 && res.steps_to_target < 0 && s->status == BL_RUN_COMPLETED) {
            res.steps_to_target = step;
            res.samples_to_target = samples;
            res.time_to_target = res.wall_time_to_target = wall;
            res.epochs_to_target = p.epoch;
        }
        if (bl_store_add_point(ctx, st, run, &p))
            return -1;
        hist[i - 1] = p;
        res.final = p;
        res.steps = step;
        res.samples = samples;
        res.epochs = p.epoch;
        res.time = wall;
    }
    res.history = hist;                  /* all added already: run_end adds none */
    res.history_count = (size_t)npoints;
    res.eval_time = 0.1 * npoints;
    res.max_batch_used = isnan(s->batch) ? 128 : (int64_t)s->batch;
    if (s->status == BL_RUN_COMPLETED) {
        snprintf(res.stopped_by, sizeof res.stopped_by, "epochs");
        res.test_accuracy = res.final.val_accuracy - 0.01;
        res.test_loss = res.final.val_loss + 0.02;
    } else if (s->status == BL_RUN_FAILED) {
        snprintf(res.stopped_by, sizeof res.stopped_by, "error");
        snprintf(res.error, sizeof res.error, "out of memory <allocating> 2 GiB");
    } else {
        snprintf(res.stopped_by, sizeof res.stopped_by, "diverged");
        snprintf(res.error, sizeof res.error, "the loss became NaN");
    }
    return bl_store_run_end(ctx, st, run, &res);
}

#define CFG(b, lr) "{\"batch\":" #b ",\"model\":{\"name\":\"mlp\"},\"optimizer\":{\"name\":" \
                   "\"sgd\",\"lr\":" #lr "},\"target\":{\"metric\":\"val_accuracy\"," \
                   "\"at_least\":0.85}}"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: report_sample DB\n");
        return 2;
    }
    static const sample runs[] = {
        {"bs-sweep batch=16 seed=1", CFG(16, 0.025), 16, 1, BL_RUN_COMPLETED, true},
        {"bs-sweep batch=16 seed=2", CFG(16, 0.025), 16, 2, BL_RUN_COMPLETED, false},
        {"bs-sweep batch=32 seed=1", CFG(32, 0.05), 32, 1, BL_RUN_COMPLETED, true},
        {"bs-sweep batch=32 seed=2", CFG(32, 0.05), 32, 2, BL_RUN_COMPLETED, false},
        {"bs-sweep batch=64 seed=1", CFG(64, 0.1), 64, 1, BL_RUN_COMPLETED, true},
        {EVIL, CFG(64, 0.1), 64, 2, BL_RUN_COMPLETED, false},
        {"bs-sweep batch=128 seed=1", CFG(128, 0.2), 128, 1, BL_RUN_COMPLETED, true},
        {"bs-sweep batch=128 seed=2", CFG(128, 0.2), 128, 2, BL_RUN_COMPLETED, false},
        {"bs-sweep ramp", "{\"batch\":{\"name\":\"ramp\",\"from\":16,\"to\":128},"
                          "\"optimizer\":{\"lr\":0.05}}", NAN, 1, BL_RUN_COMPLETED, false},
        {"bs-sweep batch=256 seed=1", CFG(256, 0.4), 256, 1, BL_RUN_FAILED, false},
        {"bs-sweep batch=512 seed=1", CFG(512, 0.8), 512, 1, BL_RUN_DIVERGED, false},
    };
    bl_ctx *ctx = bl_ctx_new();
    bl_store *st = NULL;
    int64_t sweep, other;
    if (!ctx)
        return 1;
    int rc = bl_store_open(ctx, argv[1], &st);
    if (rc == BL_OK)
        rc = bl_store_experiment(ctx, st, "bs-sweep", &sweep);
    for (size_t i = 0; rc == BL_OK && i < sizeof runs / sizeof *runs; i++)
        rc = make_run(ctx, st, sweep, &runs[i]);
    if (rc == BL_OK)
        rc = bl_store_experiment(ctx, st, "other", &other);
    if (rc == BL_OK) {
        sample s = {"other run", "{\"batch\":8}", 8, 1, BL_RUN_COMPLETED, false};
        rc = make_run(ctx, st, other, &s);
    }
    if (rc != BL_OK)
        fprintf(stderr, "report_sample: %s\n", bl_errmsg(ctx));
    bl_store_close(st);
    bl_ctx_free(ctx);
    return rc == BL_OK ? 0 : 1;
}

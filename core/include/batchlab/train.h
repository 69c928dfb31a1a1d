/* batchlab — the training engine: one training run.
 *
 * bl_train runs the step loop in C: a seeded permutation per epoch, a batch size that may
 * change at every step (a constant, a scheduler plugin or a callback), gradient accumulation
 * over micro-batches, the gradient noise scale, LR scaling rules, warmup and LR schedules,
 * evaluation points, targets, divergence detection and interrupts. Buffers are sized once for
 * the largest batch of the run (or, for a batch function that declares no max_batch, grow when
 * a larger batch first appears); a second thread can gather the next batch while a step
 * computes (bl_prefetch_mode).
 *
 * Time is split: `time` counts training (data wait, forward, backward, update, schedule
 * calls); `eval_time` counts evaluation. Each step's training time is kept (the last 4096
 * steps, in a ring sized before the loop), and the run reports their median as
 * step_time_median. time_to_target is steps_to_target × step_time_median, a figure that does
 * not follow machine noise (a step slowed by another process moves the mean, not the median);
 * the raw training wall time to the target is wall_time_to_target.
 */
#ifndef BATCHLAB_TRAIN_H
#define BATCHLAB_TRAIN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "batchlab/dataset.h"
#include "batchlab/error.h"
#include "batchlab/nn.h"
#include "batchlab/optim.h"
#include "batchlab/scheduler.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BL_LR_SCALE_NONE = 0,
    BL_LR_SCALE_LINEAR = 1, /* lr · B / base_batch (Goyal et al. 2017) */
    BL_LR_SCALE_SQRT = 2    /* lr · sqrt(B / base_batch) (Hoffer et al. 2017) */
} bl_lr_scaling;

typedef enum {
    BL_LR_CONSTANT = 0,
    BL_LR_STEP = 1,   /* × lr_gamma at each epoch in lr_milestones */
    BL_LR_COSINE = 2, /* ½(1 + cos(π·p)), p = progress through the planned epochs */
    BL_LR_LINEAR = 3  /* 1 − p */
} bl_lr_schedule;

typedef enum {
    BL_EVAL_EPOCHS = 0,  /* every eval_every epochs (and at the end) */
    BL_EVAL_STEPS = 1,   /* every eval_every steps */
    BL_EVAL_SAMPLES = 2, /* every eval_every training samples */
    /* A cadence that adapts to the run ("auto"): points after steps s_1 = 1 and
     * s_{k+1} = max(s_k + 1, ⌈s_k · (1 + 1/N)⌉) with N = eval_every (default 8): every step up
     * to step N, then each point about 1/N further than the one before. Whatever the batch
     * size, a target first met at step S is bracketed within about S/N steps (a relative
     * resolution of 1/N), and a run gets about N·(1 + ln(S/N)) points before it — every
     * point before S when S ≤ N. Points grow logarithmically with the run's length: a run of
     * 10 000 steps gets about 65 with N = 8. */
    BL_EVAL_AUTO = 3
} bl_eval_unit;

/* How the next batch is gathered while a step computes. A thread of its own pays when a host
 * core is free: with a GPU, or a CPU device that uses fewer threads than the machine has
 * cores. On a CPU device using every core such a thread would take a core from the kernels;
 * there the device's own threads gather the next batch in the gaps between the step's kernels
 * instead (bl_device_ops.host_background), in pieces of a few microseconds. Results never
 * depend on it, and the gathers of one dataset never overlap (evaluation waits for them). */
typedef enum {
    BL_PREFETCH_AUTO = 0, /* a thread when a host core is free, else between kernels */
    BL_PREFETCH_ON = 1,   /* a thread */
    BL_PREFETCH_OFF = 2   /* none: each step gathers its batch first */
} bl_prefetch_mode;

/* Where the training split's samples live on a device whose memory the host cannot address
 * (a GPU). Resident: uploaded once (as bytes where the dataset stores bytes) and each batch
 * gathered on the device by index from the epoch's permutation, uploaded once per epoch.
 * Staged: gathered on the host into pinned memory and copied per batch. Both give the same
 * batches, bit for bit. A host-addressable device (the CPU) always gathers on the host. */
typedef enum {
    BL_DATA_AUTO = 0,     /* resident when it takes at most half of the device's free memory */
    BL_DATA_STAGED = 1,
    BL_DATA_RESIDENT = 2  /* resident whatever it takes (out of memory is an error) */
} bl_data_placement;

/* Where a point's train_accuracy comes from (when train_eval_samples > 0). */
typedef enum {
    /* The training steps since the previous point: each sample scored by the forward pass of
     * its own step, before that step's update and in training mode (dropout on) — the same
     * samples and the same moment as train_loss, at no extra cost. */
    BL_TRAIN_ACC_STEPS = 0,
    /* An extra evaluation pass at each point over the first train_eval_samples training
     * samples (a fixed subset, evaluation mode, the parameters of the point). */
    BL_TRAIN_ACC_SUBSET = 1
} bl_train_acc_source;

typedef enum {
    BL_RUN_RUNNING = 0,
    BL_RUN_COMPLETED = 1,   /* reached its budget, a target or a stop criterion */
    BL_RUN_FAILED = 2,      /* an error (message in the result) */
    BL_RUN_DIVERGED = 3,    /* loss or gradient became NaN or infinite, the loss grew far
                               above its start, or the accuracy stayed at chance (see
                               diverge_loss_factor); the reason is in `error` */
    BL_RUN_INTERRUPTED = 4, /* the user stopped it (SIGINT, SIGTERM, SIGHUP) */
    BL_RUN_CRASHED = 5,     /* an isolated run's process died: a signal (its name in `error`),
                               an abort, or an exit without a result (batchlab/sweep.h) */
    BL_RUN_TIMED_OUT = 6    /* an isolated run ran past its `timeout` and was stopped */
} bl_run_status;

/* "running", "completed", "failed", "diverged", "interrupted", "crashed", "timed_out". */
BL_EXPORT const char *bl_run_status_name(bl_run_status status);

/* Metrics a target or a report can name. */
typedef enum {
    BL_METRIC_VAL_ACCURACY = 0,
    BL_METRIC_VAL_LOSS = 1,
    BL_METRIC_TRAIN_LOSS = 2,
    BL_METRIC_TRAIN_ACCURACY = 3
} bl_metric;

/* "val_accuracy", "val_loss", "train_loss", "train_accuracy" → metric; BL_EOPTION otherwise,
 * suggesting the nearest name. */
BL_EXPORT int bl_metric_parse(bl_ctx *ctx, const char *name, bl_metric *out);
BL_EXPORT const char *bl_metric_name(bl_metric metric);
BL_EXPORT double bl_eval_point_metric(const bl_eval_point *p, bl_metric metric);
/* The one rule for a metric's direction when nothing says otherwise: higher is better for an
 * accuracy (any name containing "accuracy", so names read back from a store or given by a
 * script follow it too), lower for everything else (losses). NULL → false. */
BL_EXPORT bool bl_metric_name_higher_is_better(const char *name);

/* Where a run first reached a target, read off its evaluation points. The metric is only
 * known at evaluation points, so the crossing is interpolated linearly, on the metric's scale,
 * between the last point short of the target and the first point at or past it (in the
 * target's direction): with f = (target − v_before) / (v_at − v_before), each quantity is
 * before + f·(at − before); steps and samples are rounded to the nearest integer. The
 * crossing lies somewhere in that bracket, so `steps_error` is its full width in steps (the
 * evaluation resolution, not half of it). When the first point is already at the target, the
 * bracket is [0, its step]: the estimate is that point (step, samples, epoch, wall) and
 * steps_error is its step. When the point before has no value of the metric (NaN), the
 * estimate is the point at the target, with the same bracket width. */
typedef struct bl_target_crossing {
    int64_t steps, samples;         /* interpolated, rounded */
    double epochs, wall;            /* interpolated; wall in training seconds */
    int64_t steps_error;            /* width of the bracket in steps (≥ 0) */
} bl_target_crossing;

/* The first of points[0 .. count) whose `metric` is at or past `target` (≥ when
 * higher_better, ≤ otherwise; NaN never is), and the crossing before it as above. Returns true
 * and fills *out when one is, false (out untouched) when the target is not reached. The one
 * rule for steps and time to target: the step loop applies it as each point is made, the
 * report to stored points. */
BL_EXPORT bool bl_target_crossing_find(const bl_eval_point *points, size_t count,
                                       bl_metric metric, double target, bool higher_better,
                                       bl_target_crossing *out);

/* The full state of a run after a step (batchlab/snapshot.h). */
typedef struct bl_snapshot bl_snapshot;

/* Receives a snapshot of the run (on_snapshot / on_final_snapshot below). `snap` is borrowed:
 * valid only during the call (keep it with bl_snapshot_copy, or write it with
 * bl_snapshot_write). From on_snapshot: return 0 to go on, 1 to stop the run there (status
 * completed, stopped_by "snapshot"; no further evaluation point and no test evaluation are
 * made, so the state handed out is exactly the state the run ends in), or a negative error
 * code (the run fails with the message in ctx). From on_final_snapshot, 1 is the same as 0. */
typedef int (*bl_snapshot_fn)(void *user, bl_ctx *ctx, const bl_snapshot *snap);

/* Chooses the next batch (and an LR factor, 1 when untouched) before each step. */
typedef int (*bl_batch_fn)(void *user, bl_ctx *ctx, const bl_train_state *state,
                           int64_t *batch, double *lr_factor);
/* Called at each evaluation point; return 0 to go on, 1 to stop (set *reason to a static or
 * user-owned string that stays valid until the run returns), or a negative error code (the
 * run fails with the message in ctx). */
typedef int (*bl_criterion_fn)(void *user, bl_ctx *ctx, const bl_eval_point *point,
                               const char **reason);
/* Observes each evaluation point as it is made (store, event files, progress). A negative
 * return fails the run with the message in ctx. */
typedef int (*bl_point_fn)(void *user, bl_ctx *ctx, const bl_eval_point *point);
/* Progress after each step (cheap; called with the current state), for live progress lines. */
typedef void (*bl_progress_fn)(void *user, const bl_train_state *state, double loss,
                               int64_t total_samples);

typedef struct bl_train_config {
    /* What to train (borrowed; must outlive the call). */
    bl_net *net;
    bl_dataset *data;
    bl_optim_config optim;
    uint64_t seed;                  /* permutations and dropout */

    /* Budget: the run ends at the first limit reached; at least one must be set (or
     * max_samples, below). */
    double epochs;                  /* may be fractional; 0 = no limit */
    int64_t max_steps;              /* 0 = no limit */
    double max_seconds;             /* training wall time; 0 = no limit */

    /* The batch size: a constant, or a scheduler, or a callback (exactly one of the last two
     * may be set; they override `batch`, which is then the initial batch of the state). */
    int64_t batch;
    bl_scheduler *scheduler;        /* borrowed */
    bl_batch_fn batch_fn;
    void *batch_user;
    int64_t max_batch;              /* the largest batch batch_fn may return; 0: not known, so
                                       the buffers grow when a larger batch than any before
                                       first appears (once per new maximum, never in steady
                                       state; the evaluation batch is then eval_batch or 256) */
    bool drop_last;                 /* drop an epoch's last partial batch (default: keep) */
    int64_t micro_batch;            /* > 0: accumulate gradients over chunks of this size */
    bl_prefetch_mode prefetch;      /* default auto */
    bl_data_placement data_placement; /* default auto */

    /* Learning rate: lr = optim.lr · scaling(B) · warmup · schedule · factor of the batch
     * source. */
    bl_lr_scaling lr_scaling;
    int64_t base_batch;             /* reference batch of the scaling rule; 0 = the run's
                                       initial batch */
    double warmup_epochs;           /* gradual warmup (Goyal et al.): from lr/scale to lr */
    int64_t warmup_steps;           /* alternative to warmup_epochs */
    bl_lr_schedule lr_schedule;
    double lr_gamma;                /* BL_LR_STEP factor (default 0.1) */
    const double *lr_milestones;    /* BL_LR_STEP epochs, increasing (borrowed) */
    int lr_milestone_count;

    /* Evaluation. */
    bl_eval_unit eval_unit;         /* default: every epoch */
    double eval_every;              /* in eval_unit (default 1); BL_EVAL_AUTO: N above */
    int64_t eval_batch;             /* batch for evaluation (default 0: the largest training
                                       chunk, at least 256; see batchlab/run_spec.h) */
    int64_t train_eval_samples;     /* 0: no train accuracy; else the size of the fixed
                                       training subset of BL_TRAIN_ACC_SUBSET (default 2000) */
    bl_train_acc_source train_accuracy_from; /* default steps (BL_TRAIN_ACC_STEPS) */
    bool skip_test;                 /* do not evaluate the test split at the end */
    bool skip_eval;                 /* no validation or train-subset evaluation at all: points
                                       carry only training figures (benchmarks, trials) */

    /* Gradient noise scale (McCandlish et al. 2018): measured when asked or when the
     * scheduler needs it, from k = gns_chunks chunks of each batch (or the micro-batches). */
    bool measure_gns;
    int gns_chunks;                 /* default 4 */
    double gns_ema;                 /* EMA factor β (default 0.95) */

    /* Data-parallel training under MPI (docs/distributed.md): with data_parallel, bl_run trains
     * the run together with the other ranks of its communicator (the world, or its group in a
     * sweep), each on its share of every batch, and sets `reducer` (NULL: this process alone;
     * a front end leaves it NULL). With a reducer the noise scale is measured from the
     * per-rank gradients (k = ranks) instead of gns_chunks. */
    bool data_parallel;
    const struct bl_reducer *reducer;

    /* Target: reached at the first evaluation point where `metric` ≥ (higher_better) or ≤
     * target; the *_to_target figures are interpolated before it (bl_target_crossing_find). */
    bool has_target;
    bl_metric target_metric;
    double target_value;
    bool target_higher_better;
    bool stop_at_target;

    /* Divergence: besides a non-finite loss (always), the run ends as diverged at an
     * evaluation point when
     *  - its training loss is more than diverge_loss_factor × the starting loss; both are
     *    means over whole steps of at least 512 samples (the start: the run's first steps;
     *    the loss judged: the steps since the last point judged, so with frequent points only
     *    some are judged, and the noise of small batches never counts); the starting loss is
     *    for classification at least ln(classes), the loss of a uniform guess, so that a net
     *    that starts trained is not flagged for noise around a tiny loss; default 3; 0 = off;
     *  - or, for classification with a validation split, the validation accuracy has been at
     *    most 1/classes + diverge_chance_margin at diverge_chance_evals consecutive points
     *    made after the first epoch (points before it do not count: a healthy run may sit at
     *    chance while it starts); default 3; 0 = off. */
    double diverge_loss_factor;     /* default 3; 0 = off */
    int64_t diverge_chance_evals;   /* default 3; 0 = off */
    double diverge_chance_margin;   /* default 0.02 */

    /* Callbacks (all optional). */
    bl_criterion_fn criterion;
    void *criterion_user;
    bl_point_fn on_point;
    void *point_user;
    bl_progress_fn on_progress;
    void *progress_user;

    /* When non-NULL and set to non-zero (e.g. by a SIGINT handler), the run finishes the
     * current step, records an evaluation point and returns with status interrupted. */
    volatile sig_atomic_t *interrupt;

    /* Snapshots (batchlab/snapshot.h). on_snapshot is called with the state after a step
     * when that step is in snapshot_steps, or a multiple of snapshot_every, or when
     * snapshot_seconds of training time passed since the last snapshot (or the start); the
     * step's evaluation point, if one was due, is made first. on_final_snapshot is called once
     * with the state the run ends in when it completed or was interrupted (not when it
     * failed or diverged), before the test split is evaluated. Taking a snapshot copies the
     * state to host memory (excluded from `time`); the buffer is reused from one to the next.
     * snapshot_tag (may be NULL) is stored in every snapshot (bl_snapshot_tag): a caller puts
     * the run's configuration there to recognise its own checkpoints. */
    bl_snapshot_fn on_snapshot;
    bl_snapshot_fn on_final_snapshot;
    void *snapshot_user;            /* for both */
    int64_t snapshot_every;         /* steps; 0 = off */
    double snapshot_seconds;        /* training seconds; 0 = off */
    const int64_t *snapshot_steps;  /* increasing (borrowed); steps already done are skipped */
    size_t snapshot_step_count;
    const char *snapshot_tag;
    /* Start from this state instead of from scratch (borrowed; see batchlab/snapshot.h for
     * what must match). The net's weights, the optimizer, the data position, the streams, the
     * counters, the history and the schedule's state come from the snapshot; everything the
     * configuration says (batch, LR, budget, evaluation, callbacks) applies from the next
     * step on. Budgets count from the start of the original run. */
    const bl_snapshot *resume_from;
    /* Budget in training samples (counted like max_steps, from the start of the original
     * run); the run stops after the first step that reaches it. 0 = no limit. */
    int64_t max_samples;
} bl_train_config;

/* A configuration with the defaults above (no budget, batch 0: the caller fills those). */
BL_EXPORT bl_train_config bl_train_defaults(void);

typedef struct bl_run_result {
    bl_run_status status;
    char stopped_by[128];           /* "epochs", "max_steps", "max_samples", "max_seconds",
                                       "target", a criterion's reason, "snapshot",
                                       "interrupt", "diverged", "error" */
    char error[1024];               /* message when failed / diverged (why it diverged) */
    int64_t steps, samples;
    double epochs;                  /* fractional */
    double time, eval_time;         /* seconds */
    bl_eval_point final;            /* the last evaluation point */
    double test_loss, test_accuracy;/* NAN when there is no test split */
    int64_t diverged_step;          /* -1 unless diverged: the step of the non-finite loss, or
                                       of the evaluation point that showed the divergence */
    /* Robust per-step time, seconds: the median training time of a step (data wait, forward,
     * backward, update, as `time` counts) over the last 4096 steps of the batch size last
     * asked for (the final batch of a run whose batch changes; an epoch's partial last batch
     * is a different size and does not count, unless no full step was kept); NAN when no step
     * ran. */
    double step_time_median;
    /* Target (has_target): interpolated between evaluation points (bl_target_crossing_find);
     * NAN / -1 when not reached. steps_to_target_error: the width in steps of the bracket the
     * crossing lies in (the evaluation resolution), -1 when not reached.
     * time_to_target = steps_to_target × step_time_median (the robust time: what sweeps,
     * recommendations and reports compare); wall_time_to_target: the training wall time at
     * the crossing, interpolated like the steps (follows machine noise). When no step time
     * is known time_to_target is the wall time. */
    double time_to_target, wall_time_to_target, epochs_to_target;
    int64_t steps_to_target, samples_to_target;
    int64_t steps_to_target_error;
    /* Every evaluation point in order; owned by the result. */
    bl_eval_point *history;
    size_t history_count;
    int64_t max_batch_used;         /* largest batch of any step */
    size_t peak_device_bytes;       /* device memory peak during the run */
    int64_t resumed_step;           /* the step of the snapshot the run continued from
                                       (resume_from), -1 when it started from scratch */
} bl_run_result;

/* Runs one training run. Returns BL_OK whenever the run itself could be carried out — also when
 * it diverged, was interrupted or failed inside a callback: look at result->status. Returns an
 * error (and leaves status failed) only for a configuration that cannot start (no budget, bad
 * batch, missing pieces, out of memory before the first step). `result` is always initialized
 * and must be released with bl_run_result_free. The net's parameters are trained in place. */
BL_EXPORT int bl_train(bl_ctx *ctx, const bl_train_config *cfg, bl_run_result *result);

BL_EXPORT void bl_run_result_free(bl_run_result *result);

/* Progress on stderr for one run.
 *
 * Live (a terminal): one line redrawn in place ("\r", the line, clear to the end of the line)
 * at most 5 times a second, cut to the terminal's width (never wrapped; the width is asked of
 * stderr with TIOCGWINSZ at each redraw, else $COLUMNS, else 80): label, "run i/n" in a sweep,
 * epoch, the smoothed training loss (an exponential moving average over about the last 50
 * steps), the latest evaluation's accuracy (or loss), the run's ETA and the sweep's ETA, then
 * step, batch and throughput while the width allows. At each evaluation point the line is
 * redrawn with it, and at the end it shows the final evaluation and the run's status and ends
 * with a newline.
 * Plain (not a terminal, e.g. a log file): one line per evaluation point (and at most one every
 * `interval` seconds between points), and a final line for every run, whatever stopped it.
 *
 * Install bl_progress_print as on_progress with user = a bl_progress_printer, and call
 * bl_progress_point at each evaluation point and bl_progress_end once the run is over (the
 * progress output of batchlab/run.h does all three). */
typedef struct bl_progress_printer {
    const char *label;              /* run label shown at the start of the line (borrowed) */
    bool live;                      /* rewrite one line (terminal) instead of printing lines */
    double interval;                /* plain lines: seconds between lines without a point
                                       (default 30) */
    int width;                      /* live: columns (0 = the terminal's) */
    /* the budget, for the run's ETA (0 = none): the first limit reached ends the run */
    int64_t planned_samples, max_steps;
    double max_seconds;
    /* in a sweep: this is run `run_index` (1-based) of `run_count` (0 = not in a sweep), and
     * the sweep's earlier runs took `sweep_elapsed` seconds (for the sweep's ETA) */
    int run_index, run_count;
    double sweep_elapsed;
    /* private */
    double last_print, start, loss_ema;
    int64_t loss_steps;
    bl_eval_point last;
    bool have_last, open_line;
    bl_train_state state;
} bl_progress_printer;
BL_EXPORT void bl_progress_print(void *printer, const bl_train_state *state, double loss,
                                 int64_t total_samples);
/* An evaluation point: shown at once (a plain line, or the live line redrawn with it). */
BL_EXPORT void bl_progress_point(bl_progress_printer *printer, const bl_eval_point *point);
/* The end of the run: the final line (status, stop reason, the final evaluation, the test
 * accuracy when measured), ended with a newline. */
BL_EXPORT void bl_progress_end(bl_progress_printer *printer, const bl_run_result *result);
/* The line as it would be printed, cut to `width` columns (0 = no limit), into buf; for
 * tests. `final` = the line of bl_progress_end for `result`. */
BL_EXPORT void bl_progress_format(const bl_progress_printer *printer, int width,
                                  const bl_run_result *final, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif

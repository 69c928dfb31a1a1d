/* batchlab — the critical batch size measured by branched training (Merrill et al. 2025,
 * "Critical Batch Size Revisited"), and the batch-size warmup schedule derived from it.
 *
 * A base run (constant batch B0) is trained through the run orchestrator (bl_run) and paused
 * at a few points, each kept as an exact training-state snapshot (batchlab/snapshot.h). From
 * every point, branches continue the run with batch k·B0 for each k of `ks` (1 first), the
 * learning rate set by a rule (linear: lr·k, sqrt: lr·√k, none: lr) or given per k, for the
 * same number of training samples Δ (`branch_samples`). Branches see the same samples in the
 * same order (they continue the snapshot's shuffle stream), so they differ only in how those
 * samples are batched. The loss each branch reaches is compared with the k = 1 branch: the
 * local critical batch size at the point is the largest k·B0 whose loss is at most
 * (1 + tolerance) × the k = 1 loss, scanning k upwards and stopping at the first k outside
 * (a diverged branch is outside). Its uncertainty is the bracket [lo, hi): lo the critical
 * batch found, hi the first k·B0 outside the tolerance; when every k was within, the value is
 * capped (a lower bound: hi unknown, 0).
 *
 * The loss compared (bl_branch_measure): by default the validation loss at the end of the
 * branch (or the mean of `evals` of them over its second half), on the whole validation split — the same fixed samples for every k, measured on the
 * parameters every branch ends with after exactly the same training samples. The alternative,
 * the mean training loss over the branch's last quarter, averages over many steps but each
 * step's loss is taken before its update, on parameters on average k·B0/2 samples old, which
 * biases it against large k; it is used when the dataset has no validation split.
 *
 * The k = 1 branch with the LR rule's factor 1 is the base run continued: it trains exactly as
 * the base run would have (bit for bit: test_branched checks it).
 *
 * Nothing is recorded in the results store; outputs are not called.
 */
#ifndef BATCHLAB_BRANCHED_H
#define BATCHLAB_BRANCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchlab/error.h"
#include "batchlab/run.h"
#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BL_BRANCH_MEASURE_AUTO = 0,  /* val_loss when there is a validation split, else train */
    BL_BRANCH_MEASURE_VAL = 1,   /* validation loss at the end of the branch */
    BL_BRANCH_MEASURE_TRAIN = 2  /* mean training loss over the branch's last quarter */
} bl_branch_measure;

/* "auto", "val_loss", "train_loss" → measure; BL_EOPTION otherwise. */
BL_EXPORT int bl_branch_measure_parse(bl_ctx *ctx, const char *name, bl_branch_measure *out);
BL_EXPORT const char *bl_branch_measure_name(bl_branch_measure m);

#define BL_BRANCH_MAX_KS 32
#define BL_BRANCH_MAX_POINTS 64

typedef struct bl_branched_config {
    /* The base run (borrowed): a plan as bl_run takes it, with a constant batch B0 =
     * base->train.batch (no scheduler, no batch function), a budget in epochs, max_steps
     * and/or max_samples (the horizon the points are placed in; max_seconds is refused), no
     * checkpoints, save or init. Its outputs are none: the base run and the branches are
     * trained with bl_run and no outputs. The plan's evaluation cadence is replaced (the base
     * run is only evaluated at its end, each branch at its end). */
    const bl_run_plan *base;
    /* The points, in training samples of the base run (each rounded to a whole step of B0,
     * at least one step; increasing after rounding): given, or n_points placed geometrically
     * (factor 2 apart) ending at the horizon minus branch_samples. */
    const int64_t *points;
    size_t n_given;
    int n_points;                  /* when points is NULL; default 3 */
    /* Batch multipliers, strictly increasing, starting at 1 (default 1, 2, 4, 8, 16); a k
     * whose batch k·B0 exceeds the training set is dropped. */
    const int64_t *ks;
    size_t n_ks;
    bl_lr_scaling lr_rule;         /* the branch LR: lr·k, lr·√k, or lr (default linear) */
    const double *lrs;             /* or given: lrs[i] is the peak LR of k = ks[i] (n_ks
                                      entries; NULL: the rule) */
    int64_t branch_samples;        /* Δ: training samples of every branch (required, ≥ 1) */
    double tolerance;              /* relative; default 0.01 */
    bl_branch_measure measure;
    /* With the validation measure: the loss is the mean of `evals` validation losses, taken
     * at equal steps over the second half of the branch (the last at its end), which averages
     * out some of the noise of the trajectory's end point; each costs one pass over the
     * validation split. Default 1 (the end only). */
    int evals;
    /* Called after every branch (may be NULL): progress for a front end. */
    void (*on_branch)(void *user, int point, int64_t k, double loss);
    void *user;
} bl_branched_config;

BL_EXPORT bl_branched_config bl_branched_defaults(void);

/* One point of the base run and its branches. */
typedef struct bl_branch_point {
    int64_t step, samples;         /* of the base run at the snapshot */
    double epoch;
    double loss[BL_BRANCH_MAX_KS]; /* per k (result.ks; every k is run, also past the first
                                      outside the tolerance); +inf for a diverged branch;
                                      NAN past result.n_ks */
    int64_t branch_samples[BL_BRANCH_MAX_KS]; /* samples each branch actually trained (a step
                                      may overshoot Δ by less than one batch) */
    int64_t b_crit;                /* the local critical batch size, k·B0 */
    int64_t lo, hi;                /* bracket: lo = b_crit, hi = first k·B0 outside (0 when
                                      capped) */
    bool capped;                   /* every k was within: b_crit is a lower bound */
} bl_branch_point;

/* One breakpoint of the warmup schedule: from `samples` on, batch `batch` and the LR factor
 * `lr_factor` (on the base run's optimizer LR, with lr_scaling none). */
typedef struct bl_branch_breakpoint {
    int64_t samples;
    int64_t batch;
    double lr_factor;
} bl_branch_breakpoint;

typedef struct bl_branched_result {
    int64_t base_batch;            /* B0 */
    double base_lr;                /* the base run's peak LR at B0 (optimizer LR × its scaling) */
    bl_branch_measure measure;     /* the measure used (never auto) */
    size_t n_ks;
    int64_t ks[BL_BRANCH_MAX_KS];
    double lrs[BL_BRANCH_MAX_KS];  /* the peak LR of each branch */
    size_t n_points;
    bl_branch_point points[BL_BRANCH_MAX_POINTS];
    /* The batch-size warmup: starts at B0 (samples 0); at each point whose b_crit is above the
     * current batch, the batch becomes that b_crit (with the default ks, powers of two: the
     * batch doubles, once or more, where the measured critical batch has grown past it).
     * Monotone. */
    size_t n_schedule;
    bl_branch_breakpoint schedule[BL_BRANCH_MAX_POINTS + 1];
    /* The estimate a recommendation takes (bl_recommend_options.branched_*): the last point's
     * b_crit, lo and hi (hi 0 when capped) — the critical batch latest in training, which is
     * what the batch of the rest of a run should follow. */
    int64_t estimate, estimate_lo, estimate_hi;
    double seconds;                /* wall time of the whole measurement */
} bl_branched_result;

/* Runs the base run and every branch. Returns BL_OK with *out filled, or an error: a bad
 * configuration (BL_EOPTION, the message names the setting: "branch_samples", "ks",
 * "points", "lrs", "tolerance", "batch", "max_seconds", ...), the base run not reaching a point
 * (failed or diverged: BL_EINVAL with its error), or an error from bl_run. */
BL_EXPORT int bl_branched_run(bl_ctx *ctx, const bl_branched_config *cfg,
                              bl_branched_result *out);

#ifdef __cplusplus
}
#endif
#endif

/* batchlab — the learning rate tuned per point of a sweep, by successive halving, with repeats
 * over seeds; and the fit of the optimal LR per batch, ε_opt(B) = ε_max / (1 + B_noise/B).
 *
 * A tuned sweep has `groups` points (each point of the grid: usually one batch size) and, for
 * each, `factors` candidate learning rates (the caller's factors × the LR its scaling rule
 * gives; the tuner only sees their indices). Successive halving (Jamieson & Talwalkar 2016;
 * Li et al. 2018, Hyperband) picks the best per group:
 *
 *   rung 0:   every candidate, trained with budget η^-(R-1) of the full run (seed 0)
 *   rung j+1: the best max(1, ⌊n_j/η⌋) of rung j's completed trials (n_j: rung j's planned
 *             count), trained afresh with budget η^-(R-1-j-1)
 *   rung R-1: full budget; its best trial is the group's winner and counts
 *   repeats:  the winner's LR trained with seeds 1 … seeds-1 (full budget); these count too
 *
 * With range_test, an LR range test (Smith 2017) runs first, one per group (seed 0): a short
 * run whose LR grows exponentially; the centre hook reads the LR it suggests (bl_lr_range_pick)
 * as a multiple of the group's LR, and that group's candidates are its factors × that centre.
 *
 * A trial that diverges or fails is dropped at its rung (it never counts and is never
 * promoted). Trials are ranked within their group and rung: by the caller's score hook when
 * given (a finite score ranks ahead of none; then by the rule below), else reached-the-target
 * ahead of not, reached ones by steps_to_target (within one batch size the order of the time
 * to target, without its step-time noise; time_to_target when the steps are not known), the
 * others by final val_loss (NaN last); ties keep the earlier candidate (factor order).
 *
 * The range tests, every rung and the repeats are each one bl_sweep_run through the executor
 * given, so an executor that runs points elsewhere (a child process, an MPI rank) runs trials
 * like any run; a rung's points are its trials, group-major, candidates in factor order. The
 * counted runs are then scored and the best one picked by the sweep's own rule (bl_sweep_run's
 * scoring over them, in group order, seed order: the same default score and ties as an
 * untuned sweep).
 */
#ifndef BATCHLAB_TUNE_H
#define BATCHLAB_TUNE_H

#include <stdbool.h>
#include <stddef.h>

#include "batchlab/error.h"
#include "batchlab/sweep.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BL_TUNE_MAX_RUNGS 16

typedef struct bl_tune_options {
    size_t groups;           /* points whose LR is tuned (≥ 1) */
    size_t factors;          /* candidate LRs per group (≥ 1) */
    double eta;              /* the halving rate, ≥ 2 (0: 3) */
    size_t rungs;            /* 1 … BL_TUNE_MAX_RUNGS (0: 1 + ⌊log_η factors⌋, so the last
                                rung has one trial); 1: every candidate at full budget */
    size_t seeds;            /* runs per group with the winner's LR (≥ 1; 0: 1) */
    bool higher_is_better;   /* for the score hook's scores */
    bool range_test;         /* an LR range test per group first (needs the centre hook) */
} bl_tune_options;

/* One run of a tuned sweep: a trial (a candidate at a rung) or a repeat (the winner's LR with
 * another seed). */
typedef struct bl_tune_entry {
    size_t group;            /* the grid point, 0 … groups-1 */
    size_t factor;           /* the candidate, 0 … factors-1 */
    size_t seed;             /* seed index: 0 for trials, 1 … seeds-1 for repeats */
    size_t rung;             /* 0 … rungs-1 (repeats: rungs-1) */
    double budget;           /* fraction of the full budget: η^-(rungs-1-rung) (repeats: 1) */
    bool repeat;             /* a repeat (counts; not a trial) */
    bool range;              /* the group's LR range test (factor 0, rung 0; never counts) */
    double centre;           /* the candidates' factor is multiplied by this (1 without a
                                range test) */
    bool best;               /* counts: the group's winner at the last rung, or a repeat */
    bl_sweep_point point;    /* what came of it; score set for counted runs that have one */
} bl_tune_entry;

typedef struct bl_tune_group {
    size_t winner;           /* index into runs of the winning trial; SIZE_MAX when every
                                candidate diverged or failed */
    size_t factor;           /* the winner's candidate; SIZE_MAX without a winner */
    size_t trials;           /* trial runs of the group (all rungs) */
    size_t abandoned;        /* candidates that did not run at the last rung */
    size_t range_run;        /* index into runs of its range test; SIZE_MAX: none */
    double centre;           /* what the range test suggests, × the group's LR; 1 without */
} bl_tune_group;

/* The caller's side; every hook returns 0 or a negative BL_E… code (message in ctx) that ends
 * the tuning with that code (BL_EINTERRUPTED: the interrupt). `index` is the run's index in
 * the summary's runs (the order runs are handed out: rung 0 of every group, rung 1, …, then
 * the repeats); `r` describes it. */
typedef struct bl_tune_hooks {
    void *user;
    /* Required: trains run `index` and fills *out (pre-set: status FAILED, NaN numbers); a
     * run that fails is not an error (status FAILED, return 0). */
    int (*run)(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r,
               bl_sweep_point *out);
    /* Optional: called once each run is recorded (r->point is what came of it). */
    int (*on_run)(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r);
    /* Optional: the run's score (NaN or ±inf: none), for ranking trials and for the counted
     * runs' scores; without it the sweep's default score (bl_sweep_summary) is used. */
    int (*score)(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r, double *score);
    /* Required with range_test: the range test run `index` was recorded; set *centre to the LR
     * it suggests as a multiple of the group's LR (NaN, ≤ 0 or ±inf: none, the centre stays
     * 1). */
    int (*centre)(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r,
                  double *centre);
    /* Optional: bl_sweep_hooks' pack and unpack for run `index` (an executor that runs it in
     * another process: bl_sweep_distributed). */
    int (*pack)(void *user, bl_ctx *ctx, size_t index, int rc, void **data, size_t *len);
    int (*unpack)(void *user, bl_ctx *ctx, size_t index, int rc, const char *msg,
                  const void *data, size_t len, bl_sweep_point *p);
} bl_tune_hooks;

typedef struct bl_tune_summary {
    size_t n_runs;           /* runs recorded */
    size_t planned;          /* runs planned when no trial diverges or fails (≥ n_runs) */
    bl_tune_entry *runs;       /* in the order run (see bl_tune_hooks); owned */
    size_t n_groups;
    bl_tune_group *groups;   /* per group; owned */
    size_t rungs;            /* the rungs used */
    double eta;              /* the halving rate used */
    size_t counted;          /* runs with best = true */
    size_t failed;           /* runs with status FAILED */
    size_t resumed;          /* runs marked resumed */
    size_t best;             /* index into runs of the best counted run; SIZE_MAX when none */
    double best_score;       /* NaN when none */
} bl_tune_summary;

/* Runs a tuned sweep through `executor` (NULL: bl_sweep_inprocess()). Returns 0 with *out
 * filled; or the negative code that ended it (a hook's, BL_ENOMEM, BL_EINVAL for bad options:
 * the message names the option) with *out filled as far as it got. Either way the caller
 * releases *out with bl_tune_summary_free. */
BL_EXPORT int bl_tune_run(bl_ctx *ctx, const bl_tune_options *opts, const bl_tune_hooks *hooks,
                          const bl_sweep_executor *executor, bl_tune_summary *out);

/* Releases what bl_tune_entry gave; a zeroed summary is fine, and so is a second call. */
BL_EXPORT void bl_tune_summary_free(bl_tune_summary *summary);

/* ---- the optimal LR per batch -------------------------------------------------------------- */

/* ε_opt(B) = ε_max / (1 + B_noise/B) (McCandlish et al. 2018, eq. 2.8 for SGD) fitted to the
 * tuned (B, ε) pairs. Written 1/ε = a + b/B with a = 1/ε_max, b = B_noise/ε_max, it is linear
 * in 1/B; a and b minimise Σ (1 − ε_i (a + b/B_i))², the squared *relative* errors of the
 * predicted LR to first order (the tuned LRs come from a multiplicative grid, so their errors
 * are relative). R² is on log ε. */
typedef struct bl_lr_fit {
    double eps_max;          /* 1/a: the LR as B → ∞; INFINITY when a ≤ 0 */
    double b_noise;          /* b/a: the batch where ε_opt is half of ε_max; NaN when a ≤ 0 */
    double r2;               /* of log ε (1 − SS_res/SS_tot); NaN when every ε is the same */
    size_t n;                /* pairs fitted */
    bool valid;              /* a > 0 and b ≥ 0: a maximum LR within reach, B_noise ≥ 0 */
} bl_lr_fit;

/* The learning rate an LR range test suggests (Smith 2017, "Cyclical learning rates"): n
 * points (lr[i] > 0 increasing, the training loss at it), the loss smoothed over a window of 5
 * points; the curve is cut where the smoothed loss first exceeds 4 × its lowest so far or is
 * not finite (it blew up); *pick is the LR of the steepest descent of the smoothed loss against
 * log lr before the cut, NaN when the loss never falls there. BL_EINVAL when n < 5 or an lr is
 * not positive, finite and increasing (the message says which). */
BL_EXPORT int bl_lr_range_pick(bl_ctx *ctx, const double *lr, const double *loss, size_t n,
                               double *pick);

/* Fits the n pairs (batch[i] > 0, lr[i] > 0, both finite) with at least 3 distinct batch
 * sizes. BL_EINVAL (the message names the pair or says why) otherwise; *out is then
 * untouched. */
BL_EXPORT int bl_fit_lr(bl_ctx *ctx, const double *batch, const double *lr, size_t n,
                        bl_lr_fit *out);

#ifdef __cplusplus
}
#endif
#endif

/* batchlab — a cheap prediction of the best batch size before a full sweep (the probe).
 *
 * From one run plan (model, dataset, optimizer, LR scaling rule, device, seed, target; the
 * plan's `batch` is the batch the probe trains at), bl_probe runs through the orchestrator
 * (bl_run, so nets and devices are built the one way):
 *
 *  1. the noise run: probe_steps steps at the plan's batch b with the gradient noise scale
 *     measured (batchlab/train.h: measure_gns, EMA over steps), an evaluation point every
 *     ⌈probe_steps / 25⌉ steps. B_noise is the median of the smoothed B_simple = tr(Σ)/|G|²
 *     over the points of the run's later half (the EMA needs time to settle, and B_simple
 *     grows as training goes on: the later value is the one that governs the approach to a
 *     target). The run is not stopped at the target, so the estimate always has its steps.
 *  2. timing runs: powers of two from min_batch up to the largest that fits (see max_batch
 *     and budget_bytes), or the batches given, in `rounds` passes over the ladder (up, down,
 *     up, ...: a stretch of load on the machine falls on different batches in each), each run
 *     warmup_steps untimed steps then time_steps timed ones. A batch's step time is the
 *     median of its timed steps over all rounds — taken with the engine's step-time ring, as
 *     a run's own step_time_median is.
 *  3. the prediction (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training"):
 *        S(B) = S_min (1 + B_noise / B),   time(B) = S(B) × step_time(B),
 *     the best batch is the one of least predicted time, and every batch within
 *     `tie_fraction` (10%) of that time is reported as well.
 *
 * S_min. The noise run gives S(b), the steps it took to reach the target at its batch b
 * (interpolated between evaluation points, bl_target_crossing_find), and the model gives
 * S_min = S(b) / (1 + B_noise/b). When the noise run does not reach the target, S(b) is
 * extrapolated linearly from the run's progress on the target's metric over its later half
 * (its first evaluation point there to its last): a lower bound when progress slows down, as
 * it usually does
 * (s_min_basis says which). When the metric did not move towards the target, S_min (and so
 * every S and time) is NAN, but the ranking still stands: see below.
 *
 * Assumptions and limits, stated so a user can judge the answer:
 *  - B_simple stands for B_noise (exact when the Hessian is a multiple of the identity;
 *    McCandlish et al. §2.2). It is measured at one batch and one stretch of training; B_noise
 *    grows during training, so the prediction is for a target reached near where the probe
 *    measured it. A target far beyond the probe makes B_noise (and the best batch) too small.
 *  - The model assumes the learning rate is near its best at every batch size. The probe uses
 *    the plan's rule (lr_scaling); with a rule that is far from the best LR at some batch, the
 *    measured steps there will be worse than predicted.
 *  - S_min only scales every S(B) and time(B) alike: the best batch and the batches within
 *    tie_fraction depend only on B_noise and the step times, never on S_min.
 *  - Step times are medians of short runs on this machine now; the data loading and the
 *    evaluation a real run does are not counted (both are the same for every batch size per
 *    sample, to first order).
 *
 * Memory: with budget_bytes > 0 the max-batch finder (batchlab/find_batch.h) bounds the
 * ladder first; on any device a timing run that runs out of memory ends the ladder there.
 * Without a budget on the CPU nothing bounds it but max_batch and the training split's size.
 */
#ifndef BATCHLAB_PROBE_H
#define BATCHLAB_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "batchlab/error.h"
#include "batchlab/run.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_probe_config {
    int64_t probe_steps;      /* steps of the noise run (default 300, ≥ 20) */
    int64_t warmup_steps;     /* untimed steps before each timing (default 3) */
    int64_t time_steps;       /* timed steps per batch and round (default 10, ≥ 3) */
    int rounds;               /* timing runs per batch (default 2, in [1, 16]) */
    int64_t min_batch;        /* smallest batch of the power-of-two ladder (default 1) */
    int64_t max_batch;        /* largest batch tried (default 4096); the training split's size
                                 also bounds it */
    size_t budget_bytes;      /* memory budget: the finder bounds the ladder, and a timing run
                                 that exceeds it ends the ladder (or the batches given) there;
                                 0 = none */
    const int64_t *batches;   /* the batches to time instead of the ladder (borrowed; each ≥ 1
                                 and ≤ the training split; increasing); NULL = the ladder */
    size_t batch_count;
    double tie_fraction;      /* "within 10%": default 0.10 */
    /* At most 16 outputs given to every run of the probe (e.g. progress lines;
     * batchlab/run.h), in front of the probe's own; borrowed. */
    bl_run_output *outputs;
    size_t n_outputs;
} bl_probe_config;

BL_EXPORT bl_probe_config bl_probe_defaults(void);

/* How S_min was obtained. */
typedef enum {
    BL_PROBE_S_MIN_NONE = 0,         /* unknown: S and time are NAN (the ranking stands) */
    BL_PROBE_S_MIN_TARGET = 1,       /* the noise run reached the target */
    BL_PROBE_S_MIN_EXTRAPOLATED = 2  /* extrapolated from the noise run's progress */
} bl_probe_s_min_basis;

/* "none", "target", "extrapolated". */
BL_EXPORT const char *bl_probe_s_min_basis_name(bl_probe_s_min_basis basis);

/* One batch of the predicted curve. */
typedef struct bl_probe_point {
    int64_t batch;
    double steps;             /* S(B), NAN when S_min is unknown */
    double step_time;         /* seconds: median of the timed steps */
    double time;              /* S(B) × step_time, NAN when S_min is unknown */
    double relative_time;     /* time / the best time: (1 + B_noise/B) · step_time, divided by
                                 the least of those; known even without S_min */
    int64_t timed_steps;      /* steps the median was taken over (all rounds) */
    size_t peak_bytes;        /* device memory of its timing runs (the most) */
    bool within;              /* relative_time ≤ 1 + tie_fraction */
} bl_probe_point;

typedef struct bl_probe_result {
    int64_t best_batch;
    double b_noise;           /* the median smoothed B_simple of the noise run's later half */
    int64_t noise_batch;      /* the batch b the noise run trained at */
    int64_t noise_steps;      /* steps it ran */
    int64_t gns_points;       /* evaluation points its B_noise is the median of */
    double s_min;             /* NAN with basis none */
    bl_probe_s_min_basis s_min_basis;
    double noise_steps_to_target; /* S(b): measured or extrapolated; NAN when unknown */
    int64_t largest_fit;      /* the finder's largest batch (budget given), else 0 */
    bl_probe_point *points;   /* [count], by increasing batch; owned */
    size_t count;
    int64_t *within;          /* [within_count] the batches within tie_fraction of the best,
                                 increasing (the best among them); owned */
    size_t within_count;
    double seconds;           /* the probe's own cost: wall time of everything above */
} bl_probe_result;

/* Runs the probe for `plan` (borrowed, not modified; its train.batch must be a constant ≥
 * 2 × gns_chunks, its train.has_target set, no scheduler or batch function, no on_point: the
 * budget keys epochs / max_steps / max_seconds and the evaluation cadence are the probe's
 * own). `cfg` may be NULL (defaults). On success *out holds a result the caller releases with
 * bl_probe_result_free. Errors (message in ctx; *out then zeroed and needs no freeing):
 * BL_EOPTION for a bad plan or configuration (naming the key), the error of a run that could
 * not start, BL_EDIVERGED when the noise run diverged (the plan's LR is unstable at its
 * batch), BL_EINVAL when it measured no noise scale or a run failed, BL_EINTERRUPTED when the
 * plan's interrupt flag was raised, BL_ENOMEM when not even the first batch fits. */
BL_EXPORT int bl_probe(bl_ctx *ctx, const bl_run_plan *plan, const bl_probe_config *cfg,
                       bl_probe_result *out);

/* The one plain sentence of a result, for a terminal or a script: "predicted best batch 256
 * (≈ 12.3 s to the target); 128–512 within 10%; B_noise ≈ 41 (measured at batch 32),
 * S_min ≈ 85 steps (from the probe's own run to the target)". `tie_fraction` is the one the
 * probe used (for the "10%"). Writes at most `size` bytes into buf (NUL-terminated, cut when
 * too long) and returns buf. */
BL_EXPORT const char *bl_probe_summary(const bl_probe_result *r, double tie_fraction, char *buf,
                                       size_t size);

/* Releases what bl_probe gave; a zeroed result is allowed. */
BL_EXPORT void bl_probe_result_free(bl_probe_result *r);

#ifdef __cplusplus
}
#endif
#endif

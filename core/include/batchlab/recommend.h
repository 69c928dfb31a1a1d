/* batchlab — the recommendation after a sweep, the critical batch size three ways, and the fit
 * of steps-to-target S(B) = S_min + E_min/B (McCandlish et al. 2018; Shallue et al. 2018;
 * Zhang et al. 2024; Merrill et al. 2025). docs/recommend.md explains it for users.
 *
 * The only implementation: Lua scripts reach it as bl.recommend / bl.fit_steps (and through
 * scripts/batchlab/recommend.lua, a thin wrapper); `batchlab report` draws it.
 *
 * Candidates. Every fixed batch size is a candidate, and so is every batch-size schedule (by
 * its name): a schedule's time to target is measured like a fixed batch's. Runs that are
 * tuning trials (bl_rec_run.trial: not the best LR of their batch) are left out; the runs that
 * count are the rest.
 *
 * The spread. Per candidate, over its completed runs that reached the target (seeds, repeats):
 * the median time-to-target and a bootstrap 95 % interval of that median (BL_REC_RESAMPLES
 * resamples of the sorted times with the fixed seed BL_REC_SEED: the same times give the same
 * interval, in any order).
 *
 * The rule (by time to target, when some candidate reached the target):
 *  1. best = the candidate with the lowest median time-to-target (equal medians: the smaller
 *     batch, fixed batches before schedules).
 *  2. The relative margin m = max(BL_REC_TIE_MARGIN (5 %), the typical relative spread: the
 *     median over candidates with 2 or more reaching runs of (hi − lo) / (2 · median)).
 *  3. A candidate c is tied with the best when median_c ≤ median_best · (1 + m), or when its
 *     interval overlaps the best's (lo_c ≤ hi_best). A 3 % gap is therefore never a win.
 *  4. The pick: the smallest fixed batch among the tied; a schedule is picked only when no
 *     fixed batch is tied (then the best, which is that schedule).
 * When no candidate reached the target: the fixed batch with the best final metric
 * (val_accuracy by default), else the smallest completed fixed batch (no measured basis).
 *
 * Regimes (per fixed batch with steps-to-target). B0 = the smallest such batch; the sample
 * overhead o(B) = S(B)·B / (S(B0)·B0) − 1 measures the samples spent beyond perfect scaling
 * from B0 (the dashed line of the report's chart). The fit's regime from r = B / B_crit:
 * perfect scaling r < 0.5, near the critical batch size 0.5 ≤ r ≤ 2, diminishing returns
 * 2 < r ≤ 8, plateau r > 8; an invalid fit: perfect scaling when S_min ≤ 0 < E_min (steps ∝
 * 1/B throughout), plateau when E_min ≤ 0. The data overrule it: a batch above B0 with
 * o ≤ BL_REC_OVERHEAD (20 %) is in the perfect-scaling regime whatever the fit says; one with
 * o > 20 % is not, and when the fit calls it perfect scaling, is untrusted or absent, o places
 * it: o ≤ 2 near the critical batch size, o ≤ 8 diminishing returns, beyond that plateau. B0
 * itself takes the fit's regime (unknown without one).
 *
 * The critical batch size, three ways (bl_cbs):
 *  (a) the fit over the candidates' steps-to-target (per batch the fewest steps of its runs),
 *      with a bootstrap interval for B_crit (runs resampled within each batch when some batch
 *      has several; else the points resampled), and the 20 %-overhead batch B_20 (Zhang et
 *      al. 2024): where o(B), interpolated in log B between measured batches, first exceeds
 *      20 % (infinite: beyond the largest batch measured). The fit is not trusted when any of
 *      its points has an evaluation resolution (the bracket of steps around the crossing)
 *      wider than 20 % of its steps — coarser than the 20 % overhead that defines B_20 — and
 *      flagged when fewer than 4 batch sizes went into it;
 *  (b) the gradient noise scale B_simple: per run the median over the later half of its
 *      points (bl_gns_summary), over runs the median with a bootstrap interval;
 *  (c) branched training (Merrill et al. 2025), given by the caller (bl_recommend_options).
 *
 * The Pareto front: candidates not dominated in (median time-to-target ↓, median final
 * validation accuracy ↑, median generalization gap train − val accuracy ↓), comparing the
 * objectives both candidates have; a candidate that never reached the target is not on it.
 */
#ifndef BATCHLAB_RECOMMEND_H
#define BATCHLAB_RECOMMEND_H

#include <stdbool.h>
#include <stddef.h>

#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The least-squares fit of S = S_min + E_min · (1/B). */
typedef struct bl_steps_fit {
    double s_min;     /* intercept: the fewest steps any batch could need */
    double e_min;     /* slope: the fewest samples (steps × batch) any batch could need */
    double r2;        /* coefficient of determination (1 when all steps are equal) */
    double b_crit;    /* E_min / S_min when valid, else NAN */
    size_t n;         /* points fitted */
    bool valid;       /* S_min > 0 and E_min > 0 */
} bl_steps_fit;

/* Fits the n points (batch[i] > 0, steps[i]), n ≥ 2 with at least two distinct batches.
 * BL_EINVAL (message says which point or why) otherwise; *out is then untouched. */
BL_EXPORT int bl_fit_steps(bl_ctx *ctx, const double *batch, const double *steps, size_t n,
                           bl_steps_fit *out);

/* One run as the recommendation sees it. Fields after `metric` were appended: zero means
 * "unknown" for each of them (so older initializers keep working). */
typedef struct bl_rec_run {
    double batch;            /* NAN for a schedule (its candidate is `schedule`) */
    bool completed;          /* status "completed"; other runs only count in `runs` */
    double time_to_target;   /* seconds; NAN or negative when not reached */
    double steps_to_target;  /* NAN or negative when not reached */
    double metric;           /* final value of the fallback metric; NAN when unknown */
    const char *schedule;    /* a schedule's name (borrowed during the call); NULL or "" for
                                an unnamed schedule ("schedule") */
    bool trial;              /* an LR-tuning trial that is not its batch's best: left out */
    double lr;               /* its learning rate (the tuned one); ≤ 0 or NAN: unknown */
    double steps_error;      /* evaluation resolution of steps_to_target; ≤ 0/NAN: unknown */
    double gns;              /* its B_simple summary (bl_gns_summary); ≤ 0/NAN: unknown */
    bool has_accuracy;       /* val_accuracy and train_accuracy are set */
    double val_accuracy, train_accuracy;   /* final (NAN each when not measured) */
} bl_rec_run;

/* Where a batch lies relative to the critical batch size (see "Regimes" above). */
typedef enum {
    BL_REGIME_UNKNOWN = 0,
    BL_REGIME_PERFECT_SCALING = 1,
    BL_REGIME_CRITICAL = 2,
    BL_REGIME_DIMINISHING = 3,
    BL_REGIME_PLATEAU = 4
} bl_regime;

/* One candidate: a fixed batch size or a schedule (the summary the rule works on). */
typedef struct bl_rec_batch {
    double batch;            /* NAN for a schedule */
    int runs, completed, reached;   /* counted runs (trials left out), completed, reached */
    double time_to_target;   /* median over its runs that reached the target; NAN if none */
    double steps_to_target;  /* fewest steps over its runs; NAN if none */
    double metric;           /* best final metric of its completed runs; NAN if none */
    size_t fastest;          /* index (into the runs given) of its fastest run to the target,
                                else of its run with the best metric, else of its first
                                completed run; SIZE_MAX when it has no completed run */
    char *schedule;          /* the schedule's name (owned); NULL for a fixed batch */
    int trials;              /* tuning trials left out */
    double time_lo, time_hi; /* bootstrap 95 % interval of the median time; NAN if none */
    double steps_error;      /* resolution of steps_to_target (of the run that gave it);
                                NAN when unknown */
    double val_accuracy;     /* median final validation accuracy of its completed runs */
    double gap;              /* median generalization gap, train − val accuracy */
    double lr;               /* median learning rate of its runs (the tuned LR per batch) */
    double gns;              /* median B_simple of its runs */
    double overhead;         /* o(B) (see above); NAN for schedules and unreached batches */
    bl_regime regime;        /* fixed batches with steps-to-target; else UNKNOWN */
    bool tied;               /* in the tied-best set */
    bool pareto;             /* on the Pareto front */
} bl_rec_batch;

/* The critical batch size three ways. Intervals are bootstrap 95 % percentile intervals; an
 * end may be INFINITY (e.g. resampled fits with S_min ≤ 0). NAN: not measured. */
typedef struct bl_cbs {
    bool has_fit;            /* (a): a fit was made (≥ 3 batch sizes with steps-to-target) */
    bl_steps_fit fit;
    double b_crit_lo, b_crit_hi;
    bool fit_trusted;        /* valid, and every point resolved to 20 % or better */
    bool few_points;         /* fewer than 4 batch sizes in the fit */
    double resolution;       /* largest steps_error / steps over the fitted points; NAN */
    double b_ref;            /* B0, the batch perfect scaling is measured from */
    double b20, b20_lo, b20_hi;   /* the 20 %-overhead batch; INFINITY: above the largest */
    size_t gns_runs;         /* (b): runs with a noise scale */
    double gns, gns_lo, gns_hi;
    bool has_branched;       /* (c): given by the caller */
    double branched, branched_lo, branched_hi;
} bl_cbs;

typedef enum {
    BL_REC_BY_TARGET = 0,    /* rule 1: fastest median time-to-target */
    BL_REC_BY_METRIC = 1,    /* rule 2: best final metric */
    BL_REC_FALLBACK = 2      /* no run reports the metric: the smallest completed batch */
} bl_rec_basis;

/* "unknown", "perfect scaling", "near the critical batch size", "diminishing returns",
 * "plateau". */
BL_EXPORT const char *bl_regime_name(bl_regime regime);

typedef struct bl_recommend_options {
    const char *metric;      /* the fallback metric's name, for the text (NULL: val_accuracy) */
    bool higher_better;      /* for the metric (true for accuracies) */
    bool has_branched;       /* a branched-training estimate (Merrill et al. 2025) to report */
    double branched_batch, branched_lo, branched_hi;   /* lo/hi NAN when not known */
} bl_recommend_options;

enum { BL_REC_RESAMPLES = 2000 };            /* bootstrap resamples */
#define BL_REC_SEED 0x62617463686c6162ULL   /* "batchlab": the bootstrap's fixed seed */
#define BL_REC_TIE_MARGIN 0.05               /* the smallest relative margin of a tie */
#define BL_REC_OVERHEAD 0.2                  /* Zhang et al.'s 20 % */

typedef struct bl_recommendation {
    double batch;            /* the recommended batch size; NAN when the pick is a schedule */
    bl_rec_basis basis;
    size_t run;              /* index of a representative run of that batch (see fastest) */
    double time_to_target;   /* its median time-to-target (BY_TARGET), else NAN */
    double metric;           /* its best metric (BY_METRIC), else NAN */
    bl_rec_batch *by_batch;  /* one per candidate: fixed batches ascending, then schedules
                                by name; owned */
    size_t batch_count;
    bool has_fit;            /* a fit was made (≥ 3 batch sizes with steps-to-target) */
    bl_steps_fit fit;
    bl_regime regime;        /* the pick's */
    char *reason;            /* one paragraph of plain UTF-8 text (not escaped); owned */
    /* appended */
    size_t pick;             /* index into by_batch of the pick */
    size_t best;             /* index of the fastest candidate (SIZE_MAX: none reached) */
    size_t tied_count;
    double tie_margin;       /* the relative margin m of the rule */
    bl_cbs cbs;
    char *sentence;          /* one plain sentence a user can act on; owned */
} bl_recommendation;

/* The median of v[0 .. n) (sorts v in place); NAN when n == 0. */
BL_EXPORT double bl_median(double *v, size_t n);

/* The bootstrap 95 % interval of the median of v[0 .. n) (see the spread above; v is not
 * changed). n == 0: NAN, NAN. BL_ENOMEM (nothing in ctx: the caller says what failed). */
BL_EXPORT int bl_bootstrap_median(const double *v, size_t n, double *lo, double *hi);

/* A run's gradient noise scale: the median of the finite, positive gns[i] whose step[i] is in
 * the later half of the run (step ≥ the last step / 2); NAN when none. */
BL_EXPORT double bl_gns_summary(const double *step, const double *gns, size_t n);

/* Recommends a batch size (or schedule) from n runs (see the header comment). `opts` may be
 * NULL (val_accuracy, higher is better). On success *out holds a recommendation the caller
 * releases with bl_recommendation_free. BL_ENOTFOUND when no counted completed run has a
 * numeric batch size and no schedule reached the target, BL_ENOMEM; on error *out is zeroed
 * and needs no freeing. */
BL_EXPORT int bl_recommend(bl_ctx *ctx, const bl_rec_run *runs, size_t n,
                           const bl_recommend_options *opts, bl_recommendation *out);

/* The recommendation as one JSON object (what the results store keeps with an experiment):
 * pick, batch, schedule, basis, regime, sentence, reason, tie_margin, tied and pareto (lists
 * of labels), candidates (one object per candidate, the fields of bl_rec_batch) and cbs.
 * NaN is null, ±infinity the strings "inf"/"-inf". On success *out is a new string the caller
 * frees with free(). BL_EINVAL for a NULL or empty recommendation, BL_ENOMEM. */
BL_EXPORT int bl_recommendation_json(const bl_recommendation *rec, char **out);

/* Releases what bl_recommend gave; a zeroed or NULL recommendation is allowed. */
BL_EXPORT void bl_recommendation_free(bl_recommendation *rec);

#ifdef __cplusplus
}
#endif
#endif

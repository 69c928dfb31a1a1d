/* batchlab — a batch-size recommendation from the runs of a sweep, and the fit of
 * steps-to-target S(B) = S_min + E_min/B (McCandlish et al. 2018; Shallue et al. 2018).
 *
 * The only implementation: Lua scripts reach it as bl.recommend / bl.fit_steps (and through
 * scripts/batchlab/recommend.lua, a thin wrapper). The rule:
 *  1. Among completed runs that reached the target, the batch size with the lowest median
 *     time-to-target over its runs wins (ties go to the smaller batch).
 *  2. If no run reached the target, the batch of the completed run with the best final value
 *     of a metric (val_accuracy by default) wins.
 *  Runs whose batch is not a number (a schedule: batch NAN) are left out.
 *
 * When steps-to-target is known for at least 3 batch sizes (per batch: the fewest steps any
 * of its completed runs needed), S(B) = S_min + E_min/B is fitted by least squares on 1/B and
 * the critical batch size B_crit = E_min/S_min is reported: below it doubling the batch nearly
 * halves the steps (perfect scaling), above it the steps approach S_min (diminishing returns,
 * then a plateau).
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

/* One run as the recommendation sees it. */
typedef struct bl_rec_run {
    double batch;            /* NAN for a schedule (left out) */
    bool completed;          /* status "completed"; other runs only count in `runs` */
    double time_to_target;   /* seconds; NAN or negative when not reached */
    double steps_to_target;  /* NAN or negative when not reached */
    double metric;           /* final value of the fallback metric; NAN when unknown */
} bl_rec_run;

/* One batch size (the summary the rule works on). */
typedef struct bl_rec_batch {
    double batch;
    int runs, completed, reached;
    double time_to_target;   /* median over its runs that reached the target; NAN if none */
    double steps_to_target;  /* fewest steps over its runs; NAN if none */
    double metric;           /* best final metric of its completed runs; NAN if none */
    size_t fastest;          /* index (into the runs given) of its fastest run to the target,
                                else of its run with the best metric, else of its first
                                completed run; SIZE_MAX when it has no completed run */
} bl_rec_batch;

typedef enum {
    BL_REC_BY_TARGET = 0,    /* rule 1: fastest median time-to-target */
    BL_REC_BY_METRIC = 1,    /* rule 2: best final metric */
    BL_REC_FALLBACK = 2      /* no run reports the metric: the smallest completed batch */
} bl_rec_basis;

/* Where the chosen batch lies relative to B_crit (r = batch / B_crit, rounded to 2 digits as
 * shown): perfect scaling r < 0.5; near B_crit 0.5 ≤ r ≤ 2; diminishing returns 2 < r ≤ 8;
 * plateau r > 8 (steps within 12% of S_min). Without a valid fit: UNKNOWN, or PERFECT_SCALING
 * when S_min ≤ 0 < E_min (steps ∝ 1/B throughout), PLATEAU when E_min ≤ 0 (the steps did not
 * fall as the batch grew). */
typedef enum {
    BL_REGIME_UNKNOWN = 0,
    BL_REGIME_PERFECT_SCALING = 1,
    BL_REGIME_CRITICAL = 2,
    BL_REGIME_DIMINISHING = 3,
    BL_REGIME_PLATEAU = 4
} bl_regime;

/* "unknown", "perfect scaling", "near the critical batch size", "diminishing returns",
 * "plateau". */
BL_EXPORT const char *bl_regime_name(bl_regime regime);

typedef struct bl_recommend_options {
    const char *metric;      /* the fallback metric's name, for the text (NULL: val_accuracy) */
    bool higher_better;      /* for the metric (true for accuracies) */
} bl_recommend_options;

typedef struct bl_recommendation {
    double batch;            /* the recommended batch size */
    bl_rec_basis basis;
    size_t run;              /* index of a representative run of that batch (see fastest) */
    double time_to_target;   /* its median time-to-target (BY_TARGET), else NAN */
    double metric;           /* its best metric (BY_METRIC), else NAN */
    bl_rec_batch *by_batch;  /* one per batch size, ascending; owned */
    size_t batch_count;
    bool has_fit;            /* a fit was made (≥ 3 batch sizes with steps-to-target) */
    bl_steps_fit fit;
    bl_regime regime;
    char *reason;            /* one paragraph of plain UTF-8 text (not escaped); owned */
} bl_recommendation;

/* Recommends a batch size from n runs (see the header comment). `opts` may be NULL
 * (val_accuracy, higher is better). On success *out holds a recommendation the caller releases
 * with bl_recommendation_free. BL_ENOTFOUND when no completed run has a numeric batch size,
 * BL_ENOMEM; on error *out is zeroed and needs no freeing. */
BL_EXPORT int bl_recommend(bl_ctx *ctx, const bl_rec_run *runs, size_t n,
                           const bl_recommend_options *opts, bl_recommendation *out);

/* Releases what bl_recommend gave; a zeroed or NULL recommendation is allowed. */
BL_EXPORT void bl_recommendation_free(bl_recommendation *rec);

#ifdef __cplusplus
}
#endif
#endif

/* Internal: the statistics behind the recommendation (recommend_stats.c), used by recommend.c. */
#ifndef BATCHLAB_RECOMMEND_INTERNAL_H
#define BATCHLAB_RECOMMEND_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "batchlab/recommend.h"

/* One fixed batch size's steps-to-target: the reached runs' steps, ascending (borrowed). */
typedef struct bl__rec_steps {
    double batch;
    const double *steps;
    size_t count;            /* ≥ 1 */
    double error;            /* relative evaluation resolution of the fewest steps; NAN */
} bl__rec_steps;

/* The 20 %-overhead batch over n points ascending in batch (steps > 0): where
 * S(B)·B / (S(B0)·B0) − 1 first exceeds BL_REC_OVERHEAD, interpolated in log B; INFINITY when
 * it never does; NAN for n < 2. */
double bl__rec_b20(const double *batch, const double *steps, size_t n);

/* Fills cbs->has_fit, fit, b_crit_lo/hi, fit_trusted, few_points, resolution, b_ref, b20 and
 * its interval from the nb batches (ascending, nb ≥ 1). BL_ENOMEM when out of memory (cbs is
 * then partly filled). */
int bl__rec_cbs_fit(bl_cbs *cbs, const bl__rec_steps *b, size_t nb);

/* The fit's B_crit for the ordering of resamples: E/S when valid, INFINITY when S_min ≤ 0 <
 * E_min (steps ∝ 1/B), 0 when E_min ≤ 0. */
double bl__rec_fit_bcrit(const bl_steps_fit *f);

/* The type-7 quantile p of sorted v[0 .. n) (n ≥ 1). */
double bl__rec_quantile(const double *v, size_t n, double p);

#endif

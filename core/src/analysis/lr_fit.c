/* The fit of the optimal LR per batch, ε_opt(B) = ε_max / (1 + B_noise/B) (batchlab/tune.h):
 * 1/ε = a + b/B by least squares on the relative errors of ε; and the LR an LR range test
 * suggests. */
#include <math.h>
#include <stdlib.h>

#include "batchlab/tune.h"

int bl_fit_lr(bl_ctx *ctx, const double *batch, const double *lr, size_t n, bl_lr_fit *out)
{
    if (!out || (n > 0 && (!batch || !lr)))
        return bl_error(ctx, BL_EINVAL, "bl_fit_lr: NULL argument");
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(batch[i] > 0) || !isfinite(batch[i]) || !(lr[i] > 0) || !isfinite(lr[i]))
            return bl_error(ctx, BL_EINVAL, "fit_lr: pair %zu must have a batch > 0 and an "
                            "lr > 0 (got batch %g, lr %g)", i + 1, batch[i], lr[i]);
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = batch[k] == batch[i];
        distinct += !seen;
    }
    if (distinct < 3)
        return bl_error(ctx, BL_EINVAL, "fit_lr: needs the tuned LR of at least 3 batch sizes, "
                        "got %zu", distinct);
    /* minimise Σ (1 − a p_i − b q_i)², p = ε, q = ε/B: the normal equations */
    double spp = 0, spq = 0, sqq = 0, sp = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        double p = lr[i], q = lr[i] / batch[i];
        spp += p * p;
        spq += p * q;
        sqq += q * q;
        sp += p;
        sq += q;
    }
    double det = spp * sqq - spq * spq;
    double a, b;
    if (fabs(det) <= 1e-12 * spp * sqq) {
        /* q ∝ p cannot happen with distinct batches; keep a defined answer anyway */
        a = sp / spp;
        b = 0;
    } else {
        a = (sp * sqq - sq * spq) / det;
        b = (spp * sq - spq * sp) / det;
    }
    double mean = 0;
    for (size_t i = 0; i < n; i++)
        mean += log(lr[i]);
    mean /= (double)n;
    double ss_res = 0, ss_tot = 0;
    for (size_t i = 0; i < n; i++) {
        double pred = a + b / batch[i];   /* 1/ε̂ */
        double d = log(lr[i]) - mean;
        ss_tot += d * d;
        double e = pred > 0 ? log(lr[i]) + log(pred) : INFINITY;   /* log ε − log ε̂ */
        ss_res += e * e;
    }
    *out = (bl_lr_fit){
        .eps_max = a > 0 ? 1 / a : INFINITY,
        .b_noise = a > 0 ? b / a : NAN,
        .r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : NAN,
        .n = n,
        .valid = a > 0 && b >= 0,
    };
    return BL_OK;
}

#define RANGE_WINDOW 5          /* points in the smoothing window */
#define RANGE_BLOWUP 4.0        /* the curve ends where the loss exceeds this × its lowest */

int bl_lr_range_pick(bl_ctx *ctx, const double *lr, const double *loss, size_t n, double *pick)
{
    if (!pick || (n > 0 && (!lr || !loss)))
        return bl_error(ctx, BL_EINVAL, "bl_lr_range_pick: NULL argument");
    if (n < RANGE_WINDOW)
        return bl_error(ctx, BL_EINVAL, "LR range test: needs at least %d points, got %zu",
                        RANGE_WINDOW, n);
    for (size_t i = 0; i < n; i++)
        if (!(lr[i] > 0) || !isfinite(lr[i]) || (i > 0 && !(lr[i] > lr[i - 1])))
            return bl_error(ctx, BL_EINVAL, "LR range test: point %zu's lr (%g) must be "
                            "positive, finite and above the previous one", i + 1, lr[i]);
    double *sm = malloc(n * sizeof *sm);
    if (!sm)
        return bl_error(ctx, BL_ENOMEM, "out of memory in the LR range test");
    /* centred moving average (shorter at the ends); a non-finite loss poisons its window */
    size_t h = RANGE_WINDOW / 2, end = n;
    double lowest = INFINITY;
    for (size_t i = 0; i < n && end == n; i++) {
        size_t a = i >= h ? i - h : 0, b = i + h < n ? i + h : n - 1;
        double sum = 0;
        for (size_t k = a; k <= b; k++)
            sum += loss[k];
        sm[i] = sum / (double)(b - a + 1);
        if (!isfinite(sm[i]) || sm[i] > RANGE_BLOWUP * lowest)
            end = i;                 /* blew up: the curve before i */
        else if (sm[i] < lowest)
            lowest = sm[i];
    }
    double best_slope = 0;
    *pick = NAN;
    for (size_t i = 1; i + 1 < end; i++) {
        double slope = (sm[i + 1] - sm[i - 1]) / (log(lr[i + 1]) - log(lr[i - 1]));
        if (slope < best_slope) {
            best_slope = slope;
            *pick = lr[i];
        }
    }
    free(sm);
    return BL_OK;
}

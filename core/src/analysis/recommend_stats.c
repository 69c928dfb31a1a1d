/* The statistics behind the recommendation (batchlab/recommend.h): medians, the seeded
 * bootstrap, the gradient noise scale summary, the fit's interval and the 20 %-overhead batch.
 * Deterministic: a fixed seed and a fixed resample count, and values sorted before resampling,
 * so the same runs give the same intervals in any order and on any machine. */
#include "analysis/recommend_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* splitmix64 (Steele, Lea and Flood 2014): small, fast, and the same everywhere. */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static size_t pick(uint64_t *s, size_t n)
{
    return (size_t)((double)(next(s) >> 11) * 0x1p-53 * (double)n);
}

double bl_median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bl__rec_quantile(const double *v, size_t n, double p)
{
    double h = (double)(n - 1) * p;
    size_t k = (size_t)floor(h);
    if (k + 1 >= n)
        return v[n - 1];
    if (isinf(v[k]) || isinf(v[k + 1]))
        return h - (double)k > 0 ? v[k + 1] : v[k];
    return v[k] + (h - (double)k) * (v[k + 1] - v[k]);
}

int bl_bootstrap_median(const double *v, size_t n, double *lo, double *hi)
{
    *lo = *hi = NAN;
    if (n == 0)
        return BL_OK;
    double *sorted = malloc(n * sizeof *sorted), *draw = malloc(n * sizeof *draw);
    double *med = malloc(BL_REC_RESAMPLES * sizeof *med);
    if (!sorted || !draw || !med) {
        free(sorted), free(draw), free(med);
        return BL_ENOMEM;
    }
    memcpy(sorted, v, n * sizeof *v);
    qsort(sorted, n, sizeof *sorted, cmp_double);
    uint64_t s = BL_REC_SEED;
    for (int r = 0; r < BL_REC_RESAMPLES; r++) {
        for (size_t i = 0; i < n; i++)
            draw[i] = sorted[pick(&s, n)];
        med[r] = bl_median(draw, n);
    }
    qsort(med, BL_REC_RESAMPLES, sizeof *med, cmp_double);
    *lo = bl__rec_quantile(med, BL_REC_RESAMPLES, 0.025);
    *hi = bl__rec_quantile(med, BL_REC_RESAMPLES, 0.975);
    free(sorted), free(draw), free(med);
    return BL_OK;
}

double bl_gns_summary(const double *step, const double *gns, size_t n)
{
    double last = -INFINITY;
    for (size_t i = 0; i < n; i++)
        last = step[i] > last ? step[i] : last;
    double *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return NAN;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (step[i] >= last / 2 && isfinite(gns[i]) && gns[i] > 0)
            v[m++] = gns[i];
    double med = bl_median(v, m);
    free(v);
    return med;
}

double bl__rec_fit_bcrit(const bl_steps_fit *f)
{
    if (f->valid)
        return f->b_crit;
    return f->e_min > 0 ? INFINITY : 0;
}

double bl__rec_b20(const double *batch, const double *steps, size_t n)
{
    if (n < 2)
        return NAN;
    double ref = steps[0] * batch[0], prev = 0;
    for (size_t i = 1; i < n; i++) {
        double o = steps[i] * batch[i] / ref - 1;
        if (o > BL_REC_OVERHEAD) {
            double t = (BL_REC_OVERHEAD - prev) / (o - prev);
            return exp(log(batch[i - 1]) + t * (log(batch[i]) - log(batch[i - 1])));
        }
        prev = o;                        /* ≤ 20 %: the crossing is not before batch[i] */
    }
    return INFINITY;
}

/* The fewest steps per batch of one resample. Stratified (runs resampled within each batch)
 * when some batch has several runs; else the points themselves are resampled, duplicates
 * dropped (a resample needs 3 distinct batches, and B0 for B_20). Returns the points made. */
static size_t resample(uint64_t *s, const bl__rec_steps *b, size_t nb, bool stratified,
                       double *bx, double *sy, bool *has_ref)
{
    if (stratified) {
        for (size_t k = 0; k < nb; k++) {
            double m = INFINITY;
            for (size_t i = 0; i < b[k].count; i++) {
                double v = b[k].steps[pick(s, b[k].count)];
                m = v < m ? v : m;
            }
            bx[k] = b[k].batch;
            sy[k] = m;
        }
        *has_ref = true;
        return nb;
    }
    bool *in = calloc(nb, sizeof *in);
    if (!in)
        return 0;
    for (size_t i = 0; i < nb; i++)
        in[pick(s, nb)] = true;
    size_t m = 0;
    for (size_t k = 0; k < nb; k++)
        if (in[k]) {
            bx[m] = b[k].batch;
            sy[m++] = b[k].steps[0];
        }
    *has_ref = in[0];
    free(in);
    return m;
}

int bl__rec_cbs_fit(bl_cbs *cbs, const bl__rec_steps *b, size_t nb)
{
    cbs->b_crit_lo = cbs->b_crit_hi = cbs->resolution = NAN;
    cbs->b20 = cbs->b20_lo = cbs->b20_hi = cbs->b_ref = NAN;
    if (nb == 0)
        return BL_OK;
    cbs->b_ref = b[0].batch;
    double *bx = malloc(nb * sizeof *bx), *sy = malloc(nb * sizeof *sy);
    double *bc = malloc(BL_REC_RESAMPLES * sizeof *bc);
    double *b20 = malloc(BL_REC_RESAMPLES * sizeof *b20);
    if (!bx || !sy || !bc || !b20) {
        free(bx), free(sy), free(bc), free(b20);
        return BL_ENOMEM;
    }
    bool stratified = false;
    for (size_t k = 0; k < nb; k++) {
        bx[k] = b[k].batch;
        sy[k] = b[k].steps[0];
        stratified |= b[k].count > 1;
        if (isfinite(b[k].error) && !(b[k].error <= cbs->resolution))
            cbs->resolution = b[k].error;
    }
    cbs->b20 = bl__rec_b20(bx, sy, nb);
    if (nb >= 3 && bl_fit_steps(NULL, bx, sy, nb, &cbs->fit) == BL_OK) {
        cbs->has_fit = true;
        cbs->few_points = nb < 4;
        cbs->fit_trusted = cbs->fit.valid && !(cbs->resolution > BL_REC_OVERHEAD);
    }
    uint64_t s = BL_REC_SEED;
    size_t nc = 0, n20 = 0;
    for (int r = 0; r < BL_REC_RESAMPLES && (cbs->has_fit || nb >= 2); r++) {
        bool has_ref = false;
        size_t m = resample(&s, b, nb, stratified, bx, sy, &has_ref);
        bl_steps_fit f;
        if (cbs->has_fit && m >= 3 && bl_fit_steps(NULL, bx, sy, m, &f) == BL_OK)
            bc[nc++] = bl__rec_fit_bcrit(&f);
        if (has_ref && m >= 2)
            b20[n20++] = bl__rec_b20(bx, sy, m);
    }
    if (nc > 0) {
        qsort(bc, nc, sizeof *bc, cmp_double);
        cbs->b_crit_lo = bl__rec_quantile(bc, nc, 0.025);
        cbs->b_crit_hi = bl__rec_quantile(bc, nc, 0.975);
    }
    if (n20 > 0) {
        qsort(b20, n20, sizeof *b20, cmp_double);
        cbs->b20_lo = bl__rec_quantile(b20, n20, 0.025);
        cbs->b20_hi = bl__rec_quantile(b20, n20, 0.975);
    }
    free(bx), free(sy), free(bc), free(b20);
    return BL_OK;
}

/* The batch-size recommendation and the S(B) = S_min + E_min/B fit (batchlab/recommend.h):
 * the only implementation. Lua reaches it as bl.recommend / bl.fit_steps (l_recommend.c;
 * scripts/batchlab/recommend.lua is a thin wrapper), so a sweep's script and `batchlab report`
 * recommend the same batch in the same words. */
#include "batchlab/recommend.h"
#include "base/strbuf.h"

#include "base/duration.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the fit ------------------------------------------------------------------------------ */

int bl_fit_steps(bl_ctx *ctx, const double *batch, const double *steps, size_t n,
                 bl_steps_fit *out)
{
    if ((!batch || !steps) && n > 0)
        return bl_error(ctx, BL_EINVAL, "bl_fit_steps: NULL argument");
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_fit_steps: NULL argument");
    double sx = 0, sy = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(batch[i]) || batch[i] <= 0 || !isfinite(steps[i]))
            return bl_error(ctx, BL_EINVAL, "bl_fit_steps: point %zu must have a batch > 0 "
                            "and finite steps (got batch %g, steps %g)", i + 1, batch[i],
                            steps[i]);
        sx += 1 / batch[i];
        sy += steps[i];
    }
    if (n < 2)
        return bl_error(ctx, BL_EINVAL, "need at least 2 batch sizes to fit "
                        "S(B) = S_min + E_min/B, got %zu", n);
    double mx = sx / (double)n, my = sy / (double)n, sxx = 0, sxy = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = 1 / batch[i] - mx, dy = steps[i] - my;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if (sxx == 0)
        return bl_error(ctx, BL_EINVAL, "cannot fit S(B) = S_min + E_min/B: all points have "
                        "the same batch size");
    bl_steps_fit f = {.e_min = sxy / sxx, .n = n};
    f.s_min = my - f.e_min * mx;
    double ss_res = 0;
    for (size_t i = 0; i < n; i++) {
        double r = steps[i] - (f.s_min + f.e_min / batch[i]);
        ss_res += r * r;
    }
    f.r2 = syy > 0 ? 1 - ss_res / syy : 1;
    f.valid = f.s_min > 0 && f.e_min > 0;
    f.b_crit = f.valid ? f.e_min / f.s_min : NAN;
    *out = f;
    return BL_OK;
}

const char *bl_regime_name(bl_regime regime)
{
    switch (regime) {
    case BL_REGIME_PERFECT_SCALING: return "perfect scaling";
    case BL_REGIME_CRITICAL: return "near the critical batch size";
    case BL_REGIME_DIMINISHING: return "diminishing returns";
    case BL_REGIME_PLATEAU: return "plateau";
    default: return "unknown";
    }
}

/* ---- text --------------------------------------------------------------------------------- */

typedef bl__sbuf text;

static void add(text *t, const char *fmt, ...) BL_PRINTF(2, 3);
static void add(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bl__sb_vprintf(t, fmt, ap);
    va_end(ap);
}

/* Whole numbers from 100 up, else 3 significant digits. */
static const char *num(char *buf, size_t cap, double v)
{
    snprintf(buf, cap, fabs(v) >= 100 ? "%.0f" : "%.3g", v);
    return buf;
}

static const char *bnum(char *buf, size_t cap, double batch)
{
    snprintf(buf, cap, "%.15g", batch);
    return buf;
}

/* ---- the rule ----------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static bool reached(double v)
{
    return isfinite(v) && v >= 0;
}

static bool better(double v, double than, bool higher)
{
    return isnan(than) || (higher ? v > than : v < than);
}

/* Groups the runs by batch size (ascending). *times is scratch space for the medians. */
static int summarize(const bl_rec_run *runs, size_t n, bool higher, bl_rec_batch **out,
                     size_t *count)
{
    bl_rec_batch *g = calloc(n ? n : 1, sizeof *g);
    double *times = malloc((n ? n : 1) * sizeof *times);
    if (!g || !times) {
        free(g);
        free(times);
        return BL_ENOMEM;
    }
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        double b = runs[i].batch;
        if (!isfinite(b))
            continue;
        size_t k = 0;
        while (k < ng && g[k].batch != b)
            k++;
        if (k == ng)
            g[ng++] = (bl_rec_batch){.batch = b, .time_to_target = NAN,
                                     .steps_to_target = NAN, .metric = NAN,
                                     .fastest = SIZE_MAX};
    }
    qsort(g, ng, sizeof *g, cmp_double);        /* batch is the first member */
    for (size_t k = 0; k < ng; k++) {
        size_t nt = 0, fastest = SIZE_MAX, by_metric = SIZE_MAX, any = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            const bl_rec_run *r = &runs[i];
            if (r->batch != g[k].batch)
                continue;
            g[k].runs++;
            if (!r->completed)
                continue;
            g[k].completed++;
            if (any == SIZE_MAX)
                any = i;
            if (reached(r->time_to_target)) {
                g[k].reached++;
                times[nt++] = r->time_to_target;
                if (fastest == SIZE_MAX || r->time_to_target < runs[fastest].time_to_target)
                    fastest = i;
            }
            if (reached(r->steps_to_target) &&
                (isnan(g[k].steps_to_target) || r->steps_to_target < g[k].steps_to_target))
                g[k].steps_to_target = r->steps_to_target;
            if (isfinite(r->metric) && better(r->metric, g[k].metric, higher)) {
                g[k].metric = r->metric;
                by_metric = i;
            }
        }
        if (nt > 0) {
            qsort(times, nt, sizeof *times, cmp_double);
            g[k].time_to_target = nt % 2 ? times[nt / 2] : (times[nt / 2 - 1] + times[nt / 2]) / 2;
        }
        g[k].fastest = fastest != SIZE_MAX ? fastest : by_metric != SIZE_MAX ? by_metric : any;
    }
    free(times);
    *out = g;
    *count = ng;
    return BL_OK;
}

/* "batch 16", "batches 16, 32 and 64"; capitalized when `cap`. */
static void list_batches(text *t, const double *b, size_t n, bool cap)
{
    char buf[32];
    add(t, "%s%s ", cap ? "B" : "b", n == 1 ? "atch" : "atches");
    for (size_t i = 0; i < n; i++)
        add(t, "%s%s", i == 0 ? "" : i + 1 == n ? " and " : ", ", bnum(buf, sizeof buf, b[i]));
}

/* The sentences about the fit, and the regime. */
static void fit_text(bl_recommendation *rec, text *t)
{
    double bs[64], ss[64];
    size_t np = 0;
    for (size_t k = 0; k < rec->batch_count && np < 64; k++)
        if (!isnan(rec->by_batch[k].steps_to_target)) {
            bs[np] = rec->by_batch[k].batch;
            ss[np++] = rec->by_batch[k].steps_to_target;
        }
    if (np < 3 || bl_fit_steps(NULL, bs, ss, np, &rec->fit) != BL_OK)
        return;
    rec->has_fit = true;
    const bl_steps_fit *f = &rec->fit;
    char a[32], b[32], c[32], d[32];
    bnum(a, sizeof a, bs[0]);
    bnum(b, sizeof b, bs[np - 1]);
    if (!f->valid) {
        if (f->e_min > 0) {
            rec->regime = BL_REGIME_PERFECT_SCALING;
            add(t, " Steps-to-target fell in proportion to 1/B across all %zu batch sizes (%s to "
                "%s; fitting S(B) = S_min + E_min/B gives S_min \u2248 %s, i.e. none measurable): "
                "training is in the perfect-scaling regime throughout, and the critical batch "
                "size, where diminishing returns begin, lies above %s. Larger batches are worth "
                "trying if they keep the time per step.", f->n, a, b, num(c, sizeof c, f->s_min),
                b);
        } else {
            rec->regime = BL_REGIME_PLATEAU;
            add(t, " Steps-to-target did not fall as the batch grew from %s to %s (fitting "
                "S(B) = S_min + E_min/B gives E_min \u2248 %s \u2264 0): every batch measured is "
                "in the regime of diminishing returns, so the critical batch size lies below %s "
                "and smaller batches cost no more steps.", a, b, num(c, sizeof c, f->e_min), a);
        }
        return;
    }
    add(t, " Fitting steps-to-target S(B) = S_min + E_min/B over %zu batch sizes gives "
        "S_min \u2248 %s steps and E_min \u2248 %s samples (R\u00b2 = %.3f), so the critical "
        "batch size is B_crit = E_min/S_min \u2248 %s. Below B_crit training is in the "
        "perfect-scaling regime: doubling the batch nearly halves the steps to the target. "
        "Above it lies the regime of diminishing returns: the steps approach S_min and a larger "
        "batch mostly spends more samples.", f->n, num(c, sizeof c, f->s_min),
        num(d, sizeof d, f->e_min), f->r2, num(a, sizeof a, f->b_crit));
    bnum(a, sizeof a, bs[0]);
    if (f->b_crit > bs[np - 1] || f->b_crit < bs[0])
        add(t, " (B_crit lies outside the batch sizes measured, %s to %s: an extrapolation.)",
            a, b);
    char r_text[32];
    snprintf(r_text, sizeof r_text, "%.2g", rec->batch / f->b_crit);
    double r = strtod(r_text, NULL);           /* as shown: "2×" is "close to", not above */
    bnum(a, sizeof a, rec->batch);
    num(b, sizeof b, r);
    if (r < 0.5) {
        rec->regime = BL_REGIME_PERFECT_SCALING;
        add(t, " Batch %s is %s\u00d7 B_crit, in the perfect-scaling regime: a larger batch "
            "would need proportionally fewer steps, so it may pay off if it keeps the time per "
            "step.", a, b);
    } else if (r <= 2) {
        rec->regime = BL_REGIME_CRITICAL;
        add(t, " Batch %s is close to B_crit (%s\u00d7), where the two regimes meet and steps "
            "and samples are traded evenly.", a, b);
    } else if (r <= 8) {
        rec->regime = BL_REGIME_DIMINISHING;
        add(t, " Batch %s is %s\u00d7 B_crit, in the diminishing-returns regime: its lead comes "
            "from faster steps on this machine, not from needing fewer samples.", a, b);
    } else {
        rec->regime = BL_REGIME_PLATEAU;
        add(t, " Batch %s is %s\u00d7 B_crit, on the plateau: it needs within %.0f%% of the "
            "fewest steps S_min, so a larger batch saves almost no steps; its lead comes from "
            "faster steps on this machine.", a, b, 100 / r);
    }
}

int bl_recommend(bl_ctx *ctx, const bl_rec_run *runs, size_t n,
                 const bl_recommend_options *opts, bl_recommendation *out)
{
    if (!out || (!runs && n > 0))
        return bl_error(ctx, BL_EINVAL, "bl_recommend: NULL argument");
    memset(out, 0, sizeof *out);
    const char *metric = opts && opts->metric ? opts->metric : "val_accuracy";
    bool higher = opts ? opts->higher_better : true;
    bl_recommendation rec = {.batch = NAN, .run = SIZE_MAX, .time_to_target = NAN,
                             .metric = NAN};
    if (summarize(runs, n, higher, &rec.by_batch, &rec.batch_count) != BL_OK)
        return bl_error(ctx, BL_ENOMEM, "out of memory making a recommendation");

    const bl_rec_batch *best = NULL, *second = NULL;
    double never[64];
    size_t nnever = 0;
    int completed = 0;
    for (size_t k = 0; k < rec.batch_count; k++) {
        const bl_rec_batch *g = &rec.by_batch[k];
        completed += g->completed;
        if (!isnan(g->time_to_target)) {       /* ascending batch: ties keep the smaller */
            if (!best || g->time_to_target < best->time_to_target) {
                second = best;
                best = g;
            } else if (!second || g->time_to_target < second->time_to_target) {
                second = g;
            }
        } else if (g->completed > 0 && nnever < 64) {
            never[nnever++] = g->batch;
        }
    }
    if (completed == 0) {
        bl_recommendation_free(&rec);
        return bl_error(ctx, BL_ENOTFOUND, "no completed run with a numeric batch size to "
                        "recommend from");
    }

    text t = {0};
    char a[32], b[32];
    if (best) {
        rec.batch = best->batch;
        rec.basis = BL_REC_BY_TARGET;
        rec.run = best->fastest;
        rec.time_to_target = best->time_to_target;
        add(&t, "Batch %s reached the target fastest, with ", bnum(a, sizeof a, best->batch));
        if (best->reached > 1)
            add(&t, "a median time-to-target of %s over %d runs",
                bl__format_seconds(b, sizeof b, best->time_to_target), best->reached);
        else
            add(&t, "a time-to-target of %s",
                bl__format_seconds(b, sizeof b, best->time_to_target));
        if (best->reached < best->runs)
            add(&t, " (%d of its %d runs reached it)", best->reached, best->runs);
        if (second) {
            add(&t, "; the next best, batch %s, took %s (%.0f%% longer).",
                bnum(a, sizeof a, second->batch),
                bl__format_seconds(b, sizeof b, second->time_to_target),
                (second->time_to_target / best->time_to_target - 1) * 100);
            if (nnever > 0) {
                add(&t, " ");
                list_batches(&t, never, nnever, true);
                add(&t, " never reached it.");
            }
        } else {
            add(&t, "; no other batch size reached the target.");
        }
    } else {
        for (size_t k = 0; k < rec.batch_count; k++) {
            const bl_rec_batch *g = &rec.by_batch[k];
            if (!isnan(g->metric) && (!best || better(g->metric, best->metric, higher)))
                best = g;
        }
        if (!best) {
            for (size_t k = 0; k < rec.batch_count && !best; k++)
                if (rec.by_batch[k].completed > 0)
                    best = &rec.by_batch[k];
            rec.basis = BL_REC_FALLBACK;
            add(&t, "No run reached the target and none reports %s; batch %s is only the "
                "smallest completed batch size, not a measured choice.", metric,
                bnum(a, sizeof a, best->batch));
        } else {
            rec.basis = BL_REC_BY_METRIC;
            rec.metric = best->metric;
            if (strstr(metric, "accuracy"))
                snprintf(b, sizeof b, "%.2f%%", best->metric * 100);
            else
                num(b, sizeof b, best->metric);
            add(&t, "No run reached the target; batch %s had the best final %s (%s), so it is "
                "the safest choice until a longer budget or a lower target separates the batch "
                "sizes.", bnum(a, sizeof a, best->batch), metric, b);
        }
        rec.batch = best->batch;
        rec.run = best->fastest;
    }
    fit_text(&rec, &t);
    if (t.failed) {
        free(t.p);
        bl_recommendation_free(&rec);
        return bl_error(ctx, BL_ENOMEM, "out of memory making a recommendation");
    }
    rec.reason = t.p;
    *out = rec;
    return BL_OK;
}

void bl_recommendation_free(bl_recommendation *rec)
{
    if (!rec)
        return;
    free(rec->by_batch);
    free(rec->reason);
    memset(rec, 0, sizeof *rec);
}

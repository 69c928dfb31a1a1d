/* The batch-size recommendation and the S(B) = S_min + E_min/B fit (batchlab/recommend.h):
 * the only implementation. Lua reaches it as bl.recommend / bl.fit_steps (l_recommend.c;
 * scripts/batchlab/recommend.lua is a thin wrapper), so a sweep's script and `batchlab report`
 * recommend the same batch in the same words. The statistics are in recommend_stats.c. */
#include "batchlab/recommend.h"
#include "analysis/recommend_internal.h"
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

/* ---- the candidates ----------------------------------------------------------------------- */

static bool reached(double v)
{
    return isfinite(v) && v >= 0;
}

static bool better(double v, double than, bool higher)
{
    return isnan(than) || (higher ? v > than : v < than);
}

static const char *sched_name(const bl_rec_run *r)
{
    return r->schedule && *r->schedule ? r->schedule : "schedule";
}

static bool same_candidate(const bl_rec_batch *g, const bl_rec_run *r)
{
    if (isfinite(r->batch))
        return g->batch == r->batch;
    return !isfinite(g->batch) && strcmp(g->schedule, sched_name(r)) == 0;
}

/* Fixed batches ascending, then schedules by name. */
static int cmp_candidate(const void *a, const void *b)
{
    const bl_rec_batch *x = a, *y = b;
    bool fx = isfinite(x->batch), fy = isfinite(y->batch);
    if (fx != fy)
        return fx ? -1 : 1;
    if (fx)
        return x->batch < y->batch ? -1 : x->batch > y->batch;
    return strcmp(x->schedule, y->schedule);
}

/* The median of get(run) over the counted, completed runs of candidate g (NaN values left
 * out); `scratch` holds n values. */
typedef double (*run_value)(const bl_rec_run *r);
static double v_lr(const bl_rec_run *r)
{
    return r->lr > 0 ? r->lr : NAN;
}

static double v_gns(const bl_rec_run *r)
{
    return r->gns > 0 ? r->gns : NAN;
}

static double v_val(const bl_rec_run *r)
{
    return r->has_accuracy ? r->val_accuracy : NAN;
}

static double v_gap(const bl_rec_run *r)
{
    return r->has_accuracy ? r->train_accuracy - r->val_accuracy : NAN;
}

static double median_of(const bl_rec_run *runs, size_t n, const bl_rec_batch *g, run_value get,
                        double *scratch)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const bl_rec_run *r = &runs[i];
        if (r->trial || !r->completed || !same_candidate(g, r))
            continue;
        double v = get(r);
        if (isfinite(v))
            scratch[m++] = v;
    }
    return bl_median(scratch, m);
}

/* Groups the counted runs by candidate and summarizes each. */
static int summarize(const bl_rec_run *runs, size_t n, bool higher, bl_recommendation *rec)
{
    bl_rec_batch *g = calloc(n ? n : 1, sizeof *g);
    double *times = malloc((n ? n : 1) * sizeof *times);
    rec->by_batch = g;
    if (!g || !times) {
        free(times);
        return BL_ENOMEM;
    }
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < ng && !same_candidate(&g[k], &runs[i]))
            k++;
        if (k < ng)
            continue;
        g[ng] = (bl_rec_batch){.batch = isfinite(runs[i].batch) ? runs[i].batch : NAN,
                               .time_to_target = NAN, .steps_to_target = NAN, .metric = NAN,
                               .fastest = SIZE_MAX, .time_lo = NAN, .time_hi = NAN,
                               .steps_error = NAN, .overhead = NAN};
        if (!isfinite(runs[i].batch) && !(g[ng].schedule = strdup(sched_name(&runs[i])))) {
            rec->batch_count = ng;
            free(times);
            return BL_ENOMEM;
        }
        ng++;
    }
    rec->batch_count = ng;
    qsort(g, ng, sizeof *g, cmp_candidate);
    for (size_t k = 0; k < ng; k++) {
        size_t nt = 0, fastest = SIZE_MAX, by_metric = SIZE_MAX, any = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            const bl_rec_run *r = &runs[i];
            if (!same_candidate(&g[k], r))
                continue;
            if (r->trial) {
                g[k].trials++;
                continue;
            }
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
                (isnan(g[k].steps_to_target) || r->steps_to_target < g[k].steps_to_target)) {
                g[k].steps_to_target = r->steps_to_target;
                g[k].steps_error = r->steps_error > 0 ? r->steps_error : NAN;
            }
            if (isfinite(r->metric) && better(r->metric, g[k].metric, higher)) {
                g[k].metric = r->metric;
                by_metric = i;
            }
        }
        if (bl_bootstrap_median(times, nt, &g[k].time_lo, &g[k].time_hi) != BL_OK) {
            free(times);
            return BL_ENOMEM;
        }
        g[k].time_to_target = bl_median(times, nt);
        g[k].fastest = fastest != SIZE_MAX ? fastest : by_metric != SIZE_MAX ? by_metric : any;
        g[k].lr = median_of(runs, n, &g[k], v_lr, times);
        g[k].gns = median_of(runs, n, &g[k], v_gns, times);
        g[k].val_accuracy = median_of(runs, n, &g[k], v_val, times);
        g[k].gap = median_of(runs, n, &g[k], v_gap, times);
    }
    free(times);
    return BL_OK;
}

/* ---- the tied set, the pick, the Pareto front --------------------------------------------- */

/* Marks the tied set and returns the pick (see the header's rule); rec->best is set. */
static size_t choose_by_time(bl_recommendation *rec)
{
    bl_rec_batch *g = rec->by_batch;
    size_t best = SIZE_MAX;
    for (size_t k = 0; k < rec->batch_count; k++)        /* in order: ties keep the first */
        if (!isnan(g[k].time_to_target) &&
            (best == SIZE_MAX || g[k].time_to_target < g[best].time_to_target))
            best = k;
    rec->best = best;
    double spread[256];
    size_t ns = 0;
    for (size_t k = 0; k < rec->batch_count && ns < 256; k++)
        if (g[k].reached >= 2 && g[k].time_to_target > 0)
            spread[ns++] = (g[k].time_hi - g[k].time_lo) / (2 * g[k].time_to_target);
    double noise = bl_median(spread, ns);
    rec->tie_margin = ns > 0 && noise > BL_REC_TIE_MARGIN ? noise : BL_REC_TIE_MARGIN;
    size_t pick = SIZE_MAX;
    for (size_t k = 0; k < rec->batch_count; k++) {
        if (isnan(g[k].time_to_target))
            continue;
        g[k].tied = k == best ||
                    g[k].time_to_target <= g[best].time_to_target * (1 + rec->tie_margin) ||
                    g[k].time_lo <= g[best].time_hi;
        rec->tied_count += g[k].tied;
        if (g[k].tied && pick == SIZE_MAX && isfinite(g[k].batch))
            pick = k;                                    /* ascending: the smallest batch */
    }
    return pick != SIZE_MAX ? pick : best;
}

/* a dominates b: no worse in every objective both have, better in one. */
static bool dominates(const bl_rec_batch *a, const bl_rec_batch *b)
{
    double av[3] = {a->time_to_target, -a->val_accuracy, a->gap};
    double bv[3] = {b->time_to_target, -b->val_accuracy, b->gap};
    bool strictly = false;
    for (int i = 0; i < 3; i++) {
        if (isnan(av[i]) || isnan(bv[i]))
            continue;
        if (av[i] > bv[i])
            return false;
        strictly |= av[i] < bv[i];
    }
    return strictly;
}

static void pareto(bl_recommendation *rec)
{
    for (size_t k = 0; k < rec->batch_count; k++) {
        bl_rec_batch *g = &rec->by_batch[k];
        if (isnan(g->time_to_target))
            continue;
        g->pareto = true;
        for (size_t j = 0; j < rec->batch_count && g->pareto; j++)
            if (j != k && !isnan(rec->by_batch[j].time_to_target) &&
                dominates(&rec->by_batch[j], g))
                g->pareto = false;
    }
}

/* ---- the critical batch size -------------------------------------------------------------- */

static int critical_batch(bl_recommendation *rec, const bl_rec_run *runs, size_t n,
                          const bl_recommend_options *o)
{
    bl_cbs *c = &rec->cbs;
    size_t nb = 0;
    for (size_t k = 0; k < rec->batch_count; k++)
        nb += isfinite(rec->by_batch[k].batch) && !isnan(rec->by_batch[k].steps_to_target);
    bl__rec_steps *b = calloc(nb ? nb : 1, sizeof *b);
    double *vals = malloc((n ? n : 1) * sizeof *vals);
    if (!b || !vals) {
        free(b), free(vals);
        return BL_ENOMEM;
    }
    size_t m = 0, used = 0;
    for (size_t k = 0; k < rec->batch_count; k++) {
        const bl_rec_batch *g = &rec->by_batch[k];
        if (!isfinite(g->batch) || isnan(g->steps_to_target))
            continue;
        double *v = vals + used;
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++)
            if (!runs[i].trial && runs[i].completed && runs[i].batch == g->batch &&
                reached(runs[i].steps_to_target))
                v[cnt++] = runs[i].steps_to_target;
        bl_median(v, cnt);                                 /* sorts */
        used += cnt;
        b[m++] = (bl__rec_steps){.batch = g->batch, .steps = v, .count = cnt,
                                 .error = g->steps_error / g->steps_to_target};
    }
    int rc = bl__rec_cbs_fit(c, b, m);
    free(b);
    if (rc == BL_OK) {
        size_t ng = 0;
        for (size_t i = 0; i < n; i++)
            if (!runs[i].trial && runs[i].completed && runs[i].gns > 0 && isfinite(runs[i].gns))
                vals[ng++] = runs[i].gns;
        c->gns_runs = ng;
        rc = bl_bootstrap_median(vals, ng, &c->gns_lo, &c->gns_hi);
        c->gns = bl_median(vals, ng);
    }
    free(vals);
    c->has_branched = o && o->has_branched && o->branched_batch > 0;
    c->branched = c->has_branched ? o->branched_batch : NAN;
    c->branched_lo = c->has_branched ? o->branched_lo : NAN;
    c->branched_hi = c->has_branched ? o->branched_hi : NAN;
    rec->has_fit = c->has_fit;
    rec->fit = c->fit;
    return rc;
}

/* The fit's regime for batch b (see the header). */
static bl_regime fit_regime(const bl_cbs *c, double b)
{
    if (!c->has_fit)
        return BL_REGIME_UNKNOWN;
    if (!c->fit.valid)
        return c->fit.e_min > 0 ? BL_REGIME_PERFECT_SCALING : BL_REGIME_PLATEAU;
    if (!c->fit_trusted)
        return BL_REGIME_UNKNOWN;
    char r_text[32];
    snprintf(r_text, sizeof r_text, "%.2g", b / c->fit.b_crit);
    double r = strtod(r_text, NULL);           /* as shown: "2×" is "close to", not above */
    return r < 0.5 ? BL_REGIME_PERFECT_SCALING : r <= 2 ? BL_REGIME_CRITICAL
           : r <= 8 ? BL_REGIME_DIMINISHING : BL_REGIME_PLATEAU;
}

static void regimes(bl_recommendation *rec)
{
    const bl_cbs *c = &rec->cbs;
    double s0 = NAN, b0 = NAN;
    for (size_t k = 0; k < rec->batch_count; k++) {
        bl_rec_batch *g = &rec->by_batch[k];
        if (!isfinite(g->batch) || isnan(g->steps_to_target))
            continue;
        if (isnan(b0)) {
            b0 = g->batch;
            s0 = g->steps_to_target;
        }
        g->overhead = g->steps_to_target * g->batch / (s0 * b0) - 1;
        bl_regime fr = fit_regime(c, g->batch);
        if (g->batch == b0)
            g->regime = fr;
        else if (g->overhead <= BL_REC_OVERHEAD)
            g->regime = BL_REGIME_PERFECT_SCALING;
        else if (fr == BL_REGIME_UNKNOWN || fr == BL_REGIME_PERFECT_SCALING)
            g->regime = g->overhead <= 2 ? BL_REGIME_CRITICAL
                        : g->overhead <= 8 ? BL_REGIME_DIMINISHING : BL_REGIME_PLATEAU;
        else
            g->regime = fr;
    }
}

/* ---- text --------------------------------------------------------------------------------- */

/* "batch 64" or "schedule ramp". */
static const char *label(char *buf, size_t cap, const bl_rec_batch *g, bool cap_first)
{
    if (isfinite(g->batch))
        snprintf(buf, cap, "%satch %.15g", cap_first ? "B" : "b", g->batch);
    else
        snprintf(buf, cap, "%schedule %s", cap_first ? "S" : "s", g->schedule);
    return buf;
}

/* "batch 16", "batches 16, 32 and 64" (capitalized when `cap`). */
static void list_batches(text *t, const double *b, size_t n, bool cap)
{
    char buf[32];
    add(t, "%s%s ", cap ? "B" : "b", n == 1 ? "atch" : "atches");
    for (size_t i = 0; i < n; i++)
        add(t, "%s%s", i == 0 ? "" : i + 1 == n ? " and " : ", ", bnum(buf, sizeof buf, b[i]));
}

/* The tied candidates: "batches 32 and 64", or "batch 32, schedule ramp and batch 64". */
static void list_tied(text *t, const bl_recommendation *rec, bool cap)
{
    double b[64];
    size_t nb = 0, shown = 0;
    bool all_fixed = true;
    for (size_t k = 0; k < rec->batch_count; k++)
        if (rec->by_batch[k].tied) {
            all_fixed &= isfinite(rec->by_batch[k].batch);
            if (nb < 64)
                b[nb++] = rec->by_batch[k].batch;
        }
    if (all_fixed) {
        list_batches(t, b, nb, cap);
        return;
    }
    char buf[96];
    for (size_t k = 0; k < rec->batch_count; k++)
        if (rec->by_batch[k].tied) {
            add(t, "%s%s", shown == 0 ? "" : shown + 1 == rec->tied_count ? " and " : ", ",
                label(buf, sizeof buf, &rec->by_batch[k], cap && shown == 0));
            shown++;
        }
}

static void time_text(text *t, const bl_rec_batch *g)
{
    char a[32], b[32];
    if (g->reached > 1) {
        add(t, "a median time-to-target of %s over %d runs",
            bl__format_seconds(a, sizeof a, g->time_to_target), g->reached);
        if (g->time_lo < g->time_hi)
            add(t, " (95%% interval %s to %s)", bl__format_seconds(a, sizeof a, g->time_lo),
                bl__format_seconds(b, sizeof b, g->time_hi));
    } else {
        add(t, "a time-to-target of %s", bl__format_seconds(a, sizeof a, g->time_to_target));
    }
    if (g->reached < g->runs)
        add(t, " (%d of its %d runs reached it)", g->reached, g->runs);
}

/* The sentences about the fit. */
static void fit_text(const bl_recommendation *rec, text *t)
{
    const bl_cbs *c = &rec->cbs;
    if (!c->has_fit)
        return;
    const bl_steps_fit *f = &c->fit;
    double lo = NAN, hi = NAN;
    for (size_t k = 0; k < rec->batch_count; k++)
        if (isfinite(rec->by_batch[k].batch) && !isnan(rec->by_batch[k].steps_to_target)) {
            hi = rec->by_batch[k].batch;
            lo = isnan(lo) ? hi : lo;
        }
    char a[32], b[32], c1[32], d[32];
    bnum(a, sizeof a, lo);
    bnum(b, sizeof b, hi);
    if (!f->valid) {
        if (f->e_min > 0)
            add(t, " Steps-to-target fell in proportion to 1/B across all %zu batch sizes (%s "
                "to %s; fitting S(B) = S_min + E_min/B gives S_min \u2248 %s, i.e. none "
                "measurable): training is in the perfect-scaling regime throughout, and the "
                "critical batch size, where diminishing returns begin, lies above %s. Larger "
                "batches are worth trying if they keep the time per step.", f->n, a, b,
                num(c1, sizeof c1, f->s_min), b);
        else
            add(t, " Steps-to-target did not fall as the batch grew from %s to %s (fitting "
                "S(B) = S_min + E_min/B gives E_min \u2248 %s \u2264 0): every batch measured "
                "is in the regime of diminishing returns, so the critical batch size lies "
                "below %s and smaller batches cost no more steps.", a, b,
                num(c1, sizeof c1, f->e_min), a);
        return;
    }
    add(t, " Fitting steps-to-target S(B) = S_min + E_min/B over %zu batch sizes gives "
        "S_min \u2248 %s steps and E_min \u2248 %s samples (R\u00b2 = %.3f, n = %zu), so the "
        "critical batch size is B_crit = E_min/S_min \u2248 %s", f->n,
        num(c1, sizeof c1, f->s_min), num(d, sizeof d, f->e_min), f->r2, f->n,
        num(a, sizeof a, f->b_crit));
    if (isfinite(c->b_crit_lo) && c->b_crit_lo < c->b_crit_hi)
        add(t, " (95%% bootstrap interval %s to %s)", num(a, sizeof a, c->b_crit_lo),
            isinf(c->b_crit_hi) ? "\u221e" : num(d, sizeof d, c->b_crit_hi));
    add(t, ". Below B_crit training is in the perfect-scaling regime: doubling the batch "
        "nearly halves the steps to the target. Above it lies the regime of diminishing "
        "returns: the steps approach S_min and a larger batch mostly spends more samples.");
    bnum(a, sizeof a, lo);
    if (f->b_crit > hi * (1 + 1e-9) || f->b_crit < lo * (1 - 1e-9))
        add(t, " (B_crit lies outside the batch sizes measured, %s to %s: an extrapolation.)",
            a, b);
    if (c->few_points)
        add(t, " Only %zu batch sizes went into the fit: with fewer than 4, R\u00b2 says "
            "little.", f->n);
    if (!c->fit_trusted)
        add(t, " The fit is not trusted: the evaluation points bracket the crossing to within "
            "%.0f%% of the steps, coarser than the 20%% overhead that separates perfect "
            "scaling from the critical batch size; evaluate more often (eval_every) to "
            "resolve it.", c->resolution * 100);
}

/* The sentence about the pick's regime. */
static void regime_text(const bl_recommendation *rec, text *t)
{
    if (rec->pick == SIZE_MAX)
        return;
    const bl_rec_batch *g = &rec->by_batch[rec->pick];
    const bl_cbs *c = &rec->cbs;
    if (!isfinite(g->batch) || g->regime == BL_REGIME_UNKNOWN)
        return;
    char a[32], b[32], r0[32];
    bnum(a, sizeof a, g->batch);
    bnum(r0, sizeof r0, c->b_ref);
    bl_regime fr = fit_regime(c, g->batch);
    bool by_fit = c->has_fit && c->fit.valid && c->fit_trusted && fr == g->regime;
    if (!by_fit && g->batch != c->b_ref && isfinite(g->overhead)) {
        double o = g->overhead * 100;
        if (g->regime == BL_REGIME_PERFECT_SCALING)
            add(t, " Batch %s needs %.0f%% %s samples than perfect scaling from batch %s "
                "predicts (within 20%%), so it is in the perfect-scaling regime%s: a larger "
                "batch would need proportionally fewer steps, so it may pay off if it keeps "
                "the time per step.", a, fabs(o), o < 0 ? "fewer" : "more", r0,
                c->has_fit && c->fit.valid ? ", whatever the fit's B_crit suggests" : "");
        else
            add(t, " Batch %s needs %.0f%% more samples than perfect scaling from batch %s "
                "predicts: %s.", a, o, r0,
                g->regime == BL_REGIME_CRITICAL
                    ? "it is near the critical batch size, where steps and samples are "
                      "traded evenly"
                : g->regime == BL_REGIME_DIMINISHING
                    ? "it is in the diminishing-returns regime; its lead comes from faster "
                      "steps on this machine, not from needing fewer samples"
                    : "it is on the plateau; a larger batch saves almost no steps");
        return;
    }
    if (!c->has_fit || !c->fit.valid)
        return;                                  /* the fit's text said it */
    double r = g->batch / c->fit.b_crit;
    snprintf(b, sizeof b, "%.2g", r);
    r = strtod(b, NULL);
    num(b, sizeof b, r);
    if (g->regime == BL_REGIME_PERFECT_SCALING)
        add(t, " Batch %s is %s\u00d7 B_crit, in the perfect-scaling regime: a larger batch "
            "would need proportionally fewer steps, so it may pay off if it keeps the time per "
            "step.", a, b);
    else if (g->regime == BL_REGIME_CRITICAL)
        add(t, " Batch %s is close to B_crit (%s\u00d7), where the two regimes meet and steps "
            "and samples are traded evenly.", a, b);
    else if (g->regime == BL_REGIME_DIMINISHING)
        add(t, " Batch %s is %s\u00d7 B_crit, in the diminishing-returns regime: its lead comes "
            "from faster steps on this machine, not from needing fewer samples.", a, b);
    else
        add(t, " Batch %s is %s\u00d7 B_crit, on the plateau: it needs within %.0f%% of the "
            "fewest steps S_min, so a larger batch saves almost no steps; its lead comes from "
            "faster steps on this machine.", a, b, 100 / r);
}

/* "The critical batch size three ways: ..." */
static void cbs_text(const bl_recommendation *rec, text *t)
{
    const bl_cbs *c = &rec->cbs;
    char a[32], b[32], d[32];
    if (isfinite(c->b20) || isinf(c->b20)) {
        add(t, " The 20%%-overhead batch (Zhang et al. 2024; steps 20%% above perfect scaling "
            "from batch %s) is ", bnum(d, sizeof d, c->b_ref));
        if (isinf(c->b20))
            add(t, "above the largest batch measured.");
        else if (c->b20_lo < c->b20_hi)
            add(t, "B_20 \u2248 %s (95%% interval %s to %s).", num(a, sizeof a, c->b20),
                num(b, sizeof b, c->b20_lo),
                isinf(c->b20_hi) ? "\u221e" : num(d, sizeof d, c->b20_hi));
        else
            add(t, "B_20 \u2248 %s.", num(a, sizeof a, c->b20));
    }
    if (c->gns_runs > 0) {
        add(t, " The gradient noise scale B_simple (median over the later half of training) is "
            "%s", num(a, sizeof a, c->gns));
        if (c->gns_runs > 1)
            add(t, " over %zu runs", c->gns_runs);
        if (c->gns_lo < c->gns_hi)
            add(t, " (95%% interval %s to %s)", num(b, sizeof b, c->gns_lo),
                num(d, sizeof d, c->gns_hi));
        add(t, ".");
    }
    if (c->has_branched) {
        add(t, " Branched training (Merrill et al. 2025) puts it at %s",
            num(a, sizeof a, c->branched));
        if (isfinite(c->branched_lo) && isfinite(c->branched_hi))
            add(t, " (%s to %s)", num(b, sizeof b, c->branched_lo),
                num(d, sizeof d, c->branched_hi));
        add(t, ".");
    }
}

/* The one sentence to act on. */
static void sentence(const bl_recommendation *rec, const char *metric, text *t)
{
    char a[96], b[32];
    const bl_rec_batch *g = &rec->by_batch[rec->pick];
    label(a, sizeof a, g, false);
    if (rec->basis == BL_REC_BY_TARGET) {
        add(t, "Use %s", a);
        if (isfinite(g->lr))
            add(t, " at learning rate %s", num(b, sizeof b, g->lr));
        if (rec->tied_count > 1) {
            add(t, ": it reaches the target as fast as any candidate measured (");
            list_tied(t, rec, false);
            add(t, " are tied within the spread) and is the %s of them.",
                isfinite(g->batch) ? "smallest batch" : "fastest");
        } else {
            const bl_rec_batch *next = NULL;
            for (size_t k = 0; k < rec->batch_count; k++) {
                const bl_rec_batch *h = &rec->by_batch[k];
                if (k != rec->pick && !isnan(h->time_to_target) &&
                    (!next || h->time_to_target < next->time_to_target))
                    next = h;
            }
            add(t, ": it reached the target fastest");
            if (next)
                add(t, ", the next best (%s) taking %.0f%% longer, beyond the %.0f%% margin "
                    "and the spread.", label(a, sizeof a, next, false),
                    (next->time_to_target / g->time_to_target - 1) * 100,
                    rec->tie_margin * 100);
            else
                add(t, ", the only candidate that reached it.");
        }
    } else if (rec->basis == BL_REC_BY_METRIC) {
        add(t, "No run reached the target: %s had the best final %s, so use it for now, and "
            "lower the target or give a longer budget to tell the batch sizes apart.", a,
            metric);
    } else {
        add(t, "No run reached the target or reported %s: %s is only the smallest completed "
            "batch size, not a measured choice; sweep again with a reachable target.", metric,
            a);
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
                             .metric = NAN, .pick = SIZE_MAX, .best = SIZE_MAX};
    if (summarize(runs, n, higher, &rec) != BL_OK) {
        bl_recommendation_free(&rec);
        return bl_error(ctx, BL_ENOMEM, "out of memory making a recommendation");
    }

    size_t pick = choose_by_time(&rec);
    if (pick != SIZE_MAX) {
        rec.basis = BL_REC_BY_TARGET;
    } else {
        for (size_t k = 0; k < rec.batch_count; k++) {
            const bl_rec_batch *g = &rec.by_batch[k];
            if (isfinite(g->batch) && g->completed > 0 && !isnan(g->metric) &&
                (pick == SIZE_MAX || better(g->metric, rec.by_batch[pick].metric, higher)))
                pick = k;
        }
        rec.basis = BL_REC_BY_METRIC;
        for (size_t k = 0; k < rec.batch_count && pick == SIZE_MAX; k++)
            if (isfinite(rec.by_batch[k].batch) && rec.by_batch[k].completed > 0) {
                pick = k;
                rec.basis = BL_REC_FALLBACK;
            }
    }
    if (pick == SIZE_MAX) {
        bl_recommendation_free(&rec);
        return bl_error(ctx, BL_ENOTFOUND, "no completed run with a numeric batch size to "
                        "recommend from");
    }
    rec.pick = pick;
    const bl_rec_batch *p = &rec.by_batch[pick];
    rec.batch = p->batch;
    rec.run = p->fastest;
    if (rec.basis == BL_REC_BY_TARGET)
        rec.time_to_target = p->time_to_target;
    else if (rec.basis == BL_REC_BY_METRIC)
        rec.metric = p->metric;
    if (critical_batch(&rec, runs, n, opts) != BL_OK) {
        bl_recommendation_free(&rec);
        return bl_error(ctx, BL_ENOMEM, "out of memory making a recommendation");
    }
    regimes(&rec);
    pareto(&rec);
    rec.regime = p->regime;

    text t = {0}, one = {0};
    char a[96], b[32];
    double never[64];
    size_t nnever = 0;
    for (size_t k = 0; k < rec.batch_count; k++)
        if (isfinite(rec.by_batch[k].batch) && isnan(rec.by_batch[k].time_to_target) &&
            rec.by_batch[k].completed > 0 && nnever < 64)
            never[nnever++] = rec.by_batch[k].batch;
    if (rec.basis == BL_REC_BY_TARGET) {
        const bl_rec_batch *best = &rec.by_batch[rec.best];
        if (rec.tied_count > 1) {
            list_tied(&t, &rec, true);
            add(&t, " are tied for the fastest time to the target: each is within %.0f%% of "
                "the fastest or its 95%% interval overlaps the fastest's, so their "
                "difference is not distinguishable from the spread. The fastest, %s, has ",
                rec.tie_margin * 100, label(a, sizeof a, best, false));
            time_text(&t, best);
            add(&t, ". %s, the %s of them, is recommended.", label(a, sizeof a, p, true),
                isfinite(p->batch) ? "smallest batch" : "fastest");
        } else {
            add(&t, "%s reached the target fastest, with ", label(a, sizeof a, p, true));
            time_text(&t, p);
            const bl_rec_batch *second = NULL;
            for (size_t k = 0; k < rec.batch_count; k++) {
                const bl_rec_batch *g = &rec.by_batch[k];
                if (k != pick && !isnan(g->time_to_target) &&
                    (!second || g->time_to_target < second->time_to_target))
                    second = g;
            }
            if (second)
                add(&t, "; the next best, %s, took %s (%.0f%% longer, beyond the %.0f%% "
                    "margin and the spread).", label(a, sizeof a, second, false),
                    bl__format_seconds(b, sizeof b, second->time_to_target),
                    (second->time_to_target / p->time_to_target - 1) * 100,
                    rec.tie_margin * 100);
            else
                add(&t, "; no other candidate reached the target.");
        }
        if (nnever > 0) {
            add(&t, " ");
            list_batches(&t, never, nnever, true);
            add(&t, " never reached it.");
        }
    } else if (rec.basis == BL_REC_BY_METRIC) {
        if (strstr(metric, "accuracy"))
            snprintf(b, sizeof b, "%.2f%%", p->metric * 100);
        else
            num(b, sizeof b, p->metric);
        add(&t, "No run reached the target; batch %s had the best final %s (%s), so it is "
            "the safest choice until a longer budget or a lower target separates the batch "
            "sizes.", bnum(a, sizeof a, p->batch), metric, b);
    } else {
        add(&t, "No run reached the target and none reports %s; batch %s is only the "
            "smallest completed batch size, not a measured choice.", metric,
            bnum(a, sizeof a, p->batch));
    }
    fit_text(&rec, &t);
    regime_text(&rec, &t);
    cbs_text(&rec, &t);
    sentence(&rec, metric, &one);
    if (t.failed || one.failed) {
        free(t.p);
        free(one.p);
        bl_recommendation_free(&rec);
        return bl_error(ctx, BL_ENOMEM, "out of memory making a recommendation");
    }
    rec.reason = t.p;
    rec.sentence = one.p;
    *out = rec;
    return BL_OK;
}

void bl_recommendation_free(bl_recommendation *rec)
{
    if (!rec)
        return;
    for (size_t k = 0; rec->by_batch && k < rec->batch_count; k++)
        free(rec->by_batch[k].schedule);
    free(rec->by_batch);
    free(rec->reason);
    free(rec->sentence);
    memset(rec, 0, sizeof *rec);
}

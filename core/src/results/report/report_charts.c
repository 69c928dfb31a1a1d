/* The chart sections of the HTML report: training curves, steps- and time-to-target against
 * the batch size, final accuracy against the batch size, the gradient noise scale. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "results/report/report_internal.h"
#include "results/report/svg_chart.h"

enum { X_STEP, X_WALL, X_SAMPLES };
enum { Y_LOSS, Y_VAL_ACC, Y_GNS, Y_BATCH, Y_LR };
enum { C_SUMMARY = 0, C_TIED = 1, C_FIT = 3, C_REFERENCE = 7 };   /* palette indexes */
enum { MAX_DRAWN = 600 };                              /* points drawn per training curve */

/* Writes the chart and frees it; BL_ENOMEM when it could not be made. A chart with nothing
 * to draw is left out of the page. */
static int emit(FILE *out, bl__chart *c)
{
    if (!c)
        return BL_ENOMEM;
    int rc = bl__chart_drawable(c) > 0 ? bl__chart_write(c, out) : BL_OK;
    bl__chart_free(c);
    return rc;
}

static void caption(FILE *out, const char *text)
{
    fprintf(out, "<p class=\"caption\">%s</p>\n", text);   /* our own text, not escaped */
}

/* ---- curves over training ----------------------------------------------------------------- */

static double y_of(const bl_eval_point *p, int which)
{
    switch (which) {
    case Y_LOSS: return p->train_loss;
    case Y_VAL_ACC: return p->val_accuracy;
    case Y_GNS: return p->gns;
    case Y_BATCH: return p->batch > 0 ? (double)p->batch : NAN;
    default: return p->lr > 0 ? p->lr : NAN;
    }
}

static double x_of(const bl_eval_point *p, int which)
{
    return which == X_STEP ? (double)p->step : which == X_WALL ? p->wall : (double)p->samples;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A cap for the y axis from robust quantiles of the values (5% and 95%, nearest rank): the
 * 95% quantile plus the spread between the two (in log space on a log axis), or NAN when no
 * value lies above it (nothing to clip). One spike then no longer flattens every curve. */
static double robust_cap(const bl__rdata *d, int yw, bl__scale ys)
{
    size_t n = 0;
    for (size_t i = 0; i < d->run_count; i++)
        n += d->runs[i].point_count;
    double *v = malloc((n + 1) * sizeof *v);
    if (!v)
        return NAN;                                  /* no cap: the chart is still right */
    size_t m = 0;
    for (size_t i = 0; i < d->run_count; i++)
        for (size_t k = 0; k < d->runs[i].point_count; k++) {
            double y = y_of(&d->runs[i].points[k], yw);
            if (isfinite(y) && (ys == BL__SCALE_LINEAR || y > 0))
                v[m++] = ys == BL__SCALE_LOG ? log(y) : y;
        }
    double cap = NAN;
    if (m >= 5) {
        qsort(v, m, sizeof *v, cmp_double);
        double lo = v[(size_t)(0.05 * (double)(m - 1))], hi = v[(size_t)(0.95 * (double)(m - 1))];
        double limit = hi + (hi > lo ? hi - lo : fabs(hi) * 0.5 + 1e-12);
        if (v[m - 1] > limit)
            cap = ys == BL__SCALE_LOG ? exp(limit) : limit;
    }
    free(v);
    return cap;
}

/* Logarithmic when every value is positive and they span more than a factor `ratio`. */
static bl__scale auto_scale(const bl__rdata *d, int yw, double ratio)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < d->run_count; i++)
        for (size_t k = 0; k < d->runs[i].point_count; k++) {
            double v = y_of(&d->runs[i].points[k], yw);
            if (!isfinite(v))
                continue;
            if (v <= 0)
                return BL__SCALE_LINEAR;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    return lo < hi && hi / lo > ratio ? BL__SCALE_LOG : BL__SCALE_LINEAR;
}

/* One line per run, coloured by its group; the first run of a group names it in the legend. */
static bl__chart *curves(const bl__rdata *d, const char *id, const char *title,
                         const char *x_label, const char *y_label, int xw, int yw)
{
    bl__scale ys = yw == Y_VAL_ACC                  ? BL__SCALE_LINEAR
                   : yw == Y_BATCH || yw == Y_LR ? auto_scale(d, yw, 4)
                                                 : auto_scale(d, yw, 30);
    bl__chart *c = bl__chart_new(id, title, x_label, y_label, BL__SCALE_LINEAR, ys);
    if (c && (yw == Y_LOSS || yw == Y_GNS))
        bl__chart_ymax(c, robust_cap(d, yw, ys));
    bool *named = calloc(d->group_count ? d->group_count : 1, sizeof *named);
    size_t cap = 1;
    for (size_t i = 0; i < d->run_count; i++)
        cap = d->runs[i].point_count > cap ? d->runs[i].point_count : cap;
    double *x = malloc(cap * sizeof *x), *y = malloc(cap * sizeof *y);
    if (!c || !named || !x || !y) {
        bl__chart_free(c);
        c = NULL;
    }
    for (size_t i = 0; c && i < d->run_count; i++) {
        const bl__rrun *r = &d->runs[i];
        /* At most about MAX_DRAWN points a line (every stride-th, the last, and the gaps), so
         * a run evaluated every few steps does not make a page of megabytes. */
        size_t stride = r->point_count / MAX_DRAWN + 1, m = 0, drawn = 0;
        for (size_t k = 0; k < r->point_count; k++) {
            const bl_eval_point *p = &r->points[k];
            double v = y_of(p, yw);
            if (k % stride != 0 && k + 1 != r->point_count && isfinite(v))
                continue;
            x[m] = x_of(p, xw);
            y[m] = v;
            drawn += isfinite(v) && (ys == BL__SCALE_LINEAR || v > 0);
            m++;
        }
        if (drawn == 0)
            continue;                    /* e.g. no noise scale measured: not in the legend */
        const char *legend = named[r->group] ? NULL : d->groups[r->group].legend;
        named[r->group] = true;
        unsigned style = BL__LINE | (m <= 3 ? BL__MARKERS : 0);
        bl__chart_series(c, legend, r->group, style, x, y, m);
        char name[320];
        snprintf(name, sizeof name, "run %lld, %s", (long long)r->id, d->groups[r->group].legend);
        bl__chart_name_last(c, name);
    }
    free(named);
    free(x);
    free(y);
    return c;
}

int bl__report_curves(FILE *out, const bl__rdata *d)
{
    fputs("<section id=\"training\">\n<h2>Training</h2>\n", out);
    caption(out, "One line per run, one colour per batch size or schedule (runs with other "
                 "seeds share their batch&#39;s colour); hover a line for its values. Against "
                 "samples seen, runs of different batch sizes compare fairly; against steps a "
                 "large batch&#39;s few steps crowd the left edge. Wall time counts training "
                 "only, not evaluation. A loss far above the rest (a spike) is clipped at the "
                 "top and marked with a triangle.");
    fputs("<div class=\"charts\">\n", out);
    int rc = emit(out, curves(d, "loss-samples", "Training loss vs samples seen",
                              "samples seen", "training loss", X_SAMPLES, Y_LOSS));
    if (rc == BL_OK)
        rc = emit(out, curves(d, "loss-step", "Training loss vs step", "step",
                              "training loss", X_STEP, Y_LOSS));
    if (rc == BL_OK)
        rc = emit(out, curves(d, "loss-wall", "Training loss vs wall time",
                              "training time (s)", "training loss", X_WALL, Y_LOSS));
    if (rc == BL_OK)
        rc = emit(out, curves(d, "val-step", "Validation accuracy vs step", "step",
                              "validation accuracy", X_STEP, Y_VAL_ACC));
    fputs("</div>\n</section>\n", out);
    return rc;
}

int bl__report_schedule_charts(FILE *out, const bl__rdata *d)
{
    fputs("<section id=\"schedules\">\n<h2>Batch size and learning rate over training</h2>\n",
          out);
    caption(out, "The batch size each run asked for, and its effective learning rate, at each "
                 "evaluation point against the samples seen: a fixed batch is a flat line, a "
                 "schedule shows how and when it grew.");
    fputs("<div class=\"charts\">\n", out);
    int rc = emit(out, curves(d, "batch-samples", "Batch size vs samples seen", "samples seen",
                              "batch size", X_SAMPLES, Y_BATCH));
    if (rc == BL_OK)
        rc = emit(out, curves(d, "lr-samples", "Learning rate vs samples seen", "samples seen",
                              "learning rate", X_SAMPLES, Y_LR));
    fputs("</div>\n</section>\n", out);
    return rc;
}

int bl__report_gns_chart(FILE *out, const bl__rdata *d)
{
    fputs("<section id=\"gns\">\n<h2>Gradient noise scale</h2>\n", out);
    if (!d->any_gns) {
        caption(out, "The gradient noise scale was not measured in these runs (train with "
                     "<code>measure_gns = true</code> to see it here).");
        fputs("</section>\n", out);
        return BL_OK;
    }
    caption(out, "B_simple = tr(&Sigma;)/|G|&sup2; (McCandlish et al. 2018), smoothed, at each "
                 "evaluation point. It estimates the critical batch size and usually grows "
                 "as the loss falls.");
    int rc = emit(out, curves(d, "gns-step", "Gradient noise scale vs step", "step",
                              "B_simple", X_STEP, Y_GNS));
    fputs("</section>\n", out);
    return rc;
}

/* ---- against the batch size --------------------------------------------------------------- */

/* The distinct numeric batches of the runs, ascending (for the x ticks). */
static size_t batch_ticks(const bl__rdata *d, double *out, size_t cap)
{
    size_t n = 0;
    for (size_t k = 0; k < d->group_count && n < cap; k++)
        if (isfinite(d->groups[k].batch) && (n == 0 || out[n - 1] != d->groups[k].batch))
            out[n++] = d->groups[k].batch;
    return n;
}

/* A chart of `value` (steps or time to target) per batch: the per-batch summary, each run
 * faint, the perfect-scaling line through the smallest batch, the fit and B_crit. */
static bl__chart *target_chart(const bl__rdata *d, const bl_recommendation *rec, bool steps)
{
    bl__chart *c = bl__chart_new(steps ? "steps-target" : "time-target",
                                 steps ? "Steps to target vs batch size"
                                       : "Time to target vs batch size",
                                 "batch size", steps ? "steps to target" : "time to target (s)",
                                 BL__SCALE_LOG, BL__SCALE_LOG);
    size_t n = rec->batch_count;
    double *bx = malloc((n + 1) * sizeof *bx), *by = malloc((n + 1) * sizeof *by);
    double *rx = malloc((d->run_count + 1) * sizeof *rx);
    double *ry = malloc((d->run_count + 1) * sizeof *ry);
    if (!c || !bx || !by || !rx || !ry) {
        bl__chart_free(c);
        free(bx), free(by), free(rx), free(ry);
        return NULL;
    }
    size_t m = 0, nr = 0;
    double tx[64], ty[64];                              /* the tied set (time chart) */
    size_t nt = 0;
    for (size_t k = 0; k < n; k++) {
        double v = steps ? rec->by_batch[k].steps_to_target : rec->by_batch[k].time_to_target;
        if (!isnan(v) && isfinite(rec->by_batch[k].batch)) {
            bx[m] = rec->by_batch[k].batch;
            by[m++] = v;
            if (rec->by_batch[k].tied && nt < 64) {
                tx[nt] = bx[m - 1];
                ty[nt++] = v;
            }
        }
    }
    for (size_t i = 0; i < d->run_count; i++) {
        const bl__rrun *r = &d->runs[i];
        double v = steps ? r->steps_to_target : r->time_to_target;
        if (isfinite(r->batch) && r->status == BL_RUN_COMPLETED && !isnan(v)) {
            rx[nr] = r->batch;
            ry[nr++] = v;
        }
    }
    bl__chart_series(c, "each run", C_SUMMARY, BL__MARKERS | BL__FAINT, rx, ry, nr);
    bl__chart_series(c, steps ? "fewest steps per batch" : "median per batch", C_SUMMARY,
                     BL__LINE | BL__MARKERS, bx, by, m);
    if (!steps && nt > 0)
        bl__chart_series(c, "tied best", C_TIED, BL__MARKERS, tx, ty, nt);
    double lo = m ? bx[0] : NAN, hi = m ? bx[m - 1] : NAN;
    const bl_steps_fit *f = rec->has_fit ? &rec->fit : NULL;
    bool mark = f && f->valid && f->b_crit >= lo / 8 && f->b_crit <= hi * 8;
    double x0 = mark && f->b_crit < lo ? f->b_crit : lo, x1 = mark && f->b_crit > hi ? f->b_crit
                                                                                    : hi;
    if (m >= 2) {
        double px[2] = {x0, x1}, py[2] = {by[0] * bx[0] / x0, by[0] * bx[0] / x1};
        bl__chart_series(c, "slope \u22121 (perfect)", C_REFERENCE,
                         BL__LINE | BL__DASHED, px, py, 2);
    }
    if (steps && f) {
        enum { K = 48 };
        double fx[K], fy[K];
        for (int i = 0; i < K; i++) {
            fx[i] = x0 * pow(x1 / x0, (double)i / (K - 1));
            fy[i] = f->s_min + f->e_min / fx[i];
        }
        bl__chart_series(c, "fit S_min + E_min/B", C_FIT, BL__LINE, fx, fy, K);
    }
    if (mark) {
        char label[64];
        snprintf(label, sizeof label, "B_crit \u2248 %.3g", f->b_crit);
        bl__chart_xmark(c, f->b_crit, label);
    }
    double ticks[64];
    bl__chart_xticks(c, ticks, batch_ticks(d, ticks, 64));
    free(bx), free(by), free(rx), free(ry);
    return c;
}

int bl__report_target_charts(FILE *out, const bl__rdata *d, const bl_recommendation *rec)
{
    fputs("<section id=\"target\">\n<h2>Steps and time to target</h2>\n", out);
    size_t reached = 0;
    for (size_t k = 0; rec && k < rec->batch_count; k++)
        reached += !isnan(rec->by_batch[k].steps_to_target) ||
                   !isnan(rec->by_batch[k].time_to_target);
    if (d->target_mode == BL__TARGET_NONE) {
        caption(out, "No target was given (<code>--target</code>) and none was recorded with "
                     "the runs, so there are no steps- or time-to-target charts.");
    } else if (reached == 0) {
        caption(out, "No completed run with a fixed batch size reached the target, so there "
                     "is nothing to draw here.");
    } else {
        caption(out, "Log&ndash;log axes, completed runs with a fixed batch size. Per batch: "
                     "the fewest steps over its runs (Shallue et al. 2018) and the median "
                     "time. A slope of &minus;1 (the dashed grey line through the smallest "
                     "batch) is perfect scaling; flatter is diminishing returns, flat is a "
                     "plateau.");
        if (!rec->has_fit)
            caption(out, "The fit of S(B) = S_min + E_min/B needs steps-to-target at three "
                         "or more batch sizes.");
        fputs("<div class=\"charts\">\n", out);
        int rc = emit(out, target_chart(d, rec, true));
        if (rc == BL_OK)
            rc = emit(out, target_chart(d, rec, false));
        fputs("</div>\n", out);
        if (rc != BL_OK)
            return rc;
    }
    fputs("</section>\n", out);
    return BL_OK;
}

int bl__report_accuracy_chart(FILE *out, const bl__rdata *d)
{
    fputs("<section id=\"accuracy\">\n<h2>Final validation accuracy vs batch size</h2>\n", out);
    double ticks[64];
    size_t nb = batch_ticks(d, ticks, 64);
    bl__chart *c = bl__chart_new("acc-batch", "Final validation accuracy vs batch size",
                                 "batch size", "final validation accuracy", BL__SCALE_LOG,
                                 BL__SCALE_LINEAR);
    double *rx = malloc((d->run_count + 1) * sizeof *rx);
    double *ry = malloc((d->run_count + 1) * sizeof *ry);
    double lo[64], hi[64], mean[64], bx[64];
    size_t nr = 0, m = 0;
    for (size_t b = 0; c && rx && ry && b < nb; b++) {
        double sum = 0, mn = INFINITY, mx = -INFINITY;
        int count = 0;
        for (size_t i = 0; i < d->run_count; i++) {
            const bl__rrun *r = &d->runs[i];
            if (r->batch != ticks[b] || r->status != BL_RUN_COMPLETED ||
                !isfinite(r->val_accuracy))
                continue;
            rx[nr] = r->batch;
            ry[nr++] = r->val_accuracy;
            sum += r->val_accuracy;
            mn = r->val_accuracy < mn ? r->val_accuracy : mn;
            mx = r->val_accuracy > mx ? r->val_accuracy : mx;
            count++;
        }
        if (count > 0) {
            bx[m] = ticks[b];
            lo[m] = mn;
            hi[m] = mx;
            mean[m++] = sum / count;
        }
    }
    int rc = BL_ENOMEM;
    if (c && rx && ry) {
        caption(out, "Completed runs with a fixed batch size: each run (faint), the mean over "
                     "its seeds (dots, joined) and the range from the worst to the best seed "
                     "(bars).");
        bl__chart_bars(c, C_SUMMARY, bx, lo, hi, m);
        bl__chart_series(c, "each run", C_SUMMARY, BL__MARKERS | BL__FAINT, rx, ry, nr);
        bl__chart_series(c, "mean over seeds", C_SUMMARY, BL__LINE | BL__MARKERS, bx, mean, m);
        bl__chart_xticks(c, ticks, nb);
        rc = emit(out, c);
        c = NULL;
    }
    bl__chart_free(c);
    free(rx);
    free(ry);
    fputs("</section>\n", out);
    return rc;
}

/* ---- the critical batch size, three ways; the Pareto front --------------------------------- */

int bl__report_cbs_chart(FILE *out, const bl__rdata *d, const bl_recommendation *rec)
{
    (void)d;
    if (!rec)
        return BL_OK;
    const bl_cbs *cb = &rec->cbs;
    double v[4] = {cb->has_fit && cb->fit.valid ? cb->fit.b_crit : NAN, cb->b20, cb->gns,
                   cb->has_branched ? cb->branched : NAN};
    double lo[4] = {cb->b_crit_lo, cb->b20_lo, cb->gns_lo, cb->branched_lo};
    double hi[4] = {cb->b_crit_hi, cb->b20_hi, cb->gns_hi, cb->branched_hi};
    static const char *const names[4] = {"1: fit B_crit = E_min/S_min",
                                         "2: 20% overhead B_20", "3: noise scale B_simple",
                                         "4: branched training"};
    double top = 0;
    for (int i = 0; i < 4; i++) {
        top = isfinite(v[i]) && v[i] > top ? v[i] : top;
        top = isfinite(hi[i]) && hi[i] > top ? hi[i] : top;
    }
    fputs("<section id=\"cbs\">\n<h2>Critical batch size, three ways</h2>\n", out);
    if (top <= 0) {
        caption(out, "None of the estimates could be made: the fit needs steps-to-target at "
                     "three or more batch sizes, B_20 at two, the noise scale "
                     "<code>measure_gns = true</code>.");
        fputs("</section>\n", out);
        return BL_OK;
    }
    caption(out, "Each estimate with its 95% interval (bars): 1, the fit of S(B) = S_min + "
                 "E_min/B over steps-to-target (bootstrap); 2, the batch where steps exceed "
                 "perfect scaling from the smallest batch by 20% (Zhang et al. 2024; "
                 "bootstrap); 3, the gradient noise scale over the later half of training "
                 "(bootstrap over runs); 4, branched training (Merrill et al. 2025), when "
                 "measured. A bar reaching the top is unbounded (an infinite end, or B_20 "
                 "above the largest batch measured).");
    bl__chart *c = bl__chart_new("cbs-three", "Critical batch size, three ways", "estimate",
                                 "batch size", BL__SCALE_LINEAR, BL__SCALE_LOG);
    for (int i = 0; c && i < 4; i++) {
        double x = i + 1, y = isinf(v[i]) ? top * 4 : v[i];
        double l = isinf(lo[i]) ? top * 4 : lo[i], h = isinf(hi[i]) ? top * 4 : hi[i];
        if (!isfinite(y) || y <= 0)
            continue;
        bl__chart_series(c, names[i], i + 1, BL__MARKERS, &x, &y, 1);
        if (isfinite(l) && isfinite(h) && l > 0)
            bl__chart_bars(c, i + 1, &x, &l, &h, 1);
    }
    double ticks[4] = {1, 2, 3, 4};
    if (c)
        bl__chart_xticks(c, ticks, 4);
    int rc = emit(out, c);
    fputs("</section>\n", out);
    return rc;
}

int bl__report_pareto_chart(FILE *out, const bl__rdata *d, const bl_recommendation *rec)
{
    (void)d;
    size_t n = rec ? rec->batch_count : 0, na = 0, nf = 0;
    double ax[256], ay[256], fx[256], fy[256];
    for (size_t k = 0; k < n && na < 256; k++) {
        const bl_rec_batch *g = &rec->by_batch[k];
        if (isnan(g->time_to_target) || isnan(g->val_accuracy))
            continue;
        ax[na] = g->time_to_target;
        ay[na++] = g->val_accuracy;
        if (g->pareto) {
            size_t j = nf++;                              /* insert by time */
            while (j > 0 && fx[j - 1] > g->time_to_target) {
                fx[j] = fx[j - 1];
                fy[j] = fy[j - 1];
                j--;
            }
            fx[j] = g->time_to_target;
            fy[j] = g->val_accuracy;
        }
    }
    if (na == 0)
        return BL_OK;
    fputs("<section id=\"pareto\">\n<h2>Pareto front</h2>\n", out);
    caption(out, "Each candidate's median time to target against its median final validation "
                 "accuracy. The front (joined) holds the candidates no other beats in time, "
                 "accuracy and generalization gap (train &minus; validation accuracy) at "
                 "once; the list above marks them.");
    bl__chart *c = bl__chart_new("pareto-front", "Time to target vs final validation accuracy",
                                 "time to target (s)", "final validation accuracy",
                                 BL__SCALE_LOG, BL__SCALE_LINEAR);
    bl__chart_series(c, "candidates", C_SUMMARY, BL__MARKERS | BL__FAINT, ax, ay, na);
    bl__chart_series(c, "Pareto front", C_TIED, BL__LINE | BL__MARKERS, fx, fy, nf);
    int rc = emit(out, c);
    fputs("</section>\n", out);
    return rc;
}

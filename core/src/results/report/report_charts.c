/* The chart sections of the HTML report: training curves, steps- and time-to-target against
 * the batch size, final accuracy against the batch size, the gradient noise scale. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "results/report/report_internal.h"
#include "results/report/svg_chart.h"

enum { X_STEP, X_WALL };
enum { Y_LOSS, Y_VAL_ACC, Y_GNS };
enum { C_SUMMARY = 0, C_FIT = 3, C_REFERENCE = 7 };   /* palette indexes of the batch charts */
enum { MAX_DRAWN = 600 };                              /* points drawn per training curve */

/* Writes the chart and frees it; BL_ENOMEM when it could not be made. */
static int emit(FILE *out, bl__chart *c)
{
    if (!c)
        return BL_ENOMEM;
    int rc = bl__chart_write(c, out);
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
    return which == Y_LOSS ? p->train_loss : which == Y_VAL_ACC ? p->val_accuracy : p->gns;
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
    bl__scale ys = yw == Y_VAL_ACC ? BL__SCALE_LINEAR : auto_scale(d, yw, 30);
    bl__chart *c = bl__chart_new(id, title, x_label, y_label, BL__SCALE_LINEAR, ys);
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
            x[m] = xw == X_STEP ? (double)p->step : p->wall;
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
                 "seeds share their batch&#39;s colour). Wall time counts training only, not "
                 "evaluation.");
    fputs("<div class=\"charts\">\n", out);
    int rc = emit(out, curves(d, "loss-step", "Training loss vs step", "step",
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
    for (size_t k = 0; k < n; k++) {
        double v = steps ? rec->by_batch[k].steps_to_target : rec->by_batch[k].time_to_target;
        if (!isnan(v)) {
            bx[m] = rec->by_batch[k].batch;
            by[m++] = v;
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

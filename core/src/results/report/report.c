/* The HTML report of a sweep (batchlab/report.h): the page, the recommendation and the table
 * of runs. The data comes from report_data.c, the charts from report_charts.c. */
#include "batchlab/report.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/duration.h"
#include "base/outfile.h"
#include "batchlab/version.h"
#include "results/report/report_internal.h"
#include "results/report/svg_chart.h"

bl_report_options bl_report_defaults(void)
{
    return (bl_report_options){.target_metric = BL_METRIC_VAL_ACCURACY};
}

#define esc bl__html_puts

static const char style[] =
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;"
    "margin:1.5em auto;max-width:1460px;padding:0 1em}\n"
    "h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;"
    "border-bottom:1px solid #ddd;padding-bottom:.2em}\n"
    ".meta{color:#555}.caption{color:#444;max-width:75em}code{background:#f3f3f3;"
    "padding:0 .25em}\n"
    ".verdict{font-size:1.1em;background:#eef5fb;border-left:4px solid #1f77b4;"
    "padding:.5em .8em}\n"
    ".charts{display:flex;flex-wrap:wrap;gap:8px}\n"
    "svg.chart{background:#fff;border:1px solid #e3e3e3;flex:1 1 540px;width:100%;"
    "max-width:720px;height:auto}\n"
    "svg.chart text{font-family:system-ui,sans-serif;fill:#333}\n"
    "svg.chart .title{font-size:14px;font-weight:600}svg.chart .tick{font-size:11px;"
    "fill:#555}\n"
    "svg.chart .label,svg.chart .legend{font-size:12px}svg.chart .marklabel{font-size:12px;"
    "fill:#d62728}\n"
    "svg.chart .grid line{stroke:#ececec}svg.chart .frame{fill:none;stroke:#aaa}\n"
    "svg.chart .mark{stroke:#d62728;stroke-width:1.2;stroke-dasharray:4 3}\n"
    "table.runs{border-collapse:collapse;font-size:13px}\n"
    "table.runs th,table.runs td{padding:3px 8px;border-bottom:1px solid #e5e5e5;"
    "text-align:right;white-space:nowrap}\n"
    "table.runs td.t,table.runs th.t{text-align:left}\n"
    "table.runs th{cursor:pointer;background:#f6f6f6;user-select:none}\n"
    "table.runs th[aria-sort=ascending]::after{content:' \\25B2'}\n"
    "table.runs th[aria-sort=descending]::after{content:' \\25BC'}\n"
    "table.runs tr.best{background:#eef5fb}\n"
    ".s-failed,.s-diverged{color:#b00}.s-interrupted,.s-running{color:#a60}\n"
    ".tied,.pareto{font-size:.8em;padding:0 .35em;border-radius:3px;background:#eef5fb;"
    "border:1px solid #1f77b4}.pareto{background:#f3fbee;border-color:#2ca02c}\n"
    "ul.cands li.pick{font-weight:600}\n";

/* Sorts a table.runs by the clicked column: numbers by data-v, missing values last. */
static const char script[] =
    "document.querySelectorAll('table.runs').forEach(function (t) {\n"
    "  var heads = t.tHead.rows[0].cells;\n"
    "  Array.prototype.forEach.call(heads, function (th, col) {\n"
    "    function sort() {\n"
    "      var asc = th.getAttribute('aria-sort') !== 'ascending';\n"
    "      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); "
    "});\n"
    "      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');\n"
    "      var num = th.getAttribute('data-type') === 'num', body = t.tBodies[0];\n"
    "      var rows = Array.prototype.slice.call(body.rows);\n"
    "      function key(r) {\n"
    "        var c = r.cells[col], v = c.getAttribute('data-v');\n"
    "        return v === null ? c.textContent : v;\n"
    "      }\n"
    "      rows.sort(function (a, b) {\n"
    "        var x = key(a), y = key(b);\n"
    "        if (x === '' || y === '') return (x === '') - (y === '');\n"
    "        var d = num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);\n"
    "        return asc ? d : -d;\n"
    "      });\n"
    "      rows.forEach(function (r) { body.appendChild(r); });\n"
    "    }\n"
    "    th.addEventListener('click', sort);\n"
    "    th.addEventListener('keydown', function (e) {\n"
    "      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sort(); }\n"
    "    });\n"
    "  });\n"
    "});\n";

/* Every duration of the page in one unit and one format: bl__format_seconds ("0.90 s",
 * "12.3 s", "2m 05s"). */
static const char *seconds(char *buf, size_t cap, double v)
{
    return bl__format_seconds(buf, cap, v);
}

/* ---- the recommendation ------------------------------------------------------------------- */

/* "123", "1.23e+04", or "∞". */
static const char *bnum(char *buf, size_t cap, double v)
{
    if (isinf(v))
        snprintf(buf, cap, "&infin;");
    else
        snprintf(buf, cap, "%.3g", v);
    return buf;
}

/* The critical batch size, three ways, in words (the chart is in report_charts.c). */
static void cbs_paragraph(FILE *out, const bl_recommendation *rec)
{
    const bl_cbs *c = &rec->cbs;
    char a[32], b[32], x[32];
    fputs("<ul class=\"cbs\">\n", out);
    if (c->has_fit && c->fit.valid)
        fprintf(out, "<li>Fit of S(B) = S_min + E_min/B (McCandlish et al. 2018): B_crit "
                "&asymp; %s (95%% interval %s&ndash;%s; R&sup2; = %.3f, n = %zu)%s%s</li>\n",
                bnum(x, sizeof x, c->fit.b_crit), bnum(a, sizeof a, c->b_crit_lo),
                bnum(b, sizeof b, c->b_crit_hi), c->fit.r2, c->fit.n,
                c->few_points ? " &mdash; fewer than 4 batch sizes: R&sup2; says little" : "",
                c->fit_trusted ? "" : " &mdash; <strong>not trusted</strong>: the evaluation "
                                      "is too coarse to resolve the steps (see above)");
    else if (c->has_fit)
        fputs("<li>Fit of S(B) = S_min + E_min/B: no B_crit inside the range (see above)."
              "</li>\n", out);
    else
        fputs("<li>Fit of S(B) = S_min + E_min/B: needs steps-to-target at three or more "
              "batch sizes.</li>\n", out);
    if (isfinite(c->b20) || isinf(c->b20))
        fprintf(out, "<li>20%%-overhead batch (Zhang et al. 2024), steps 20%% above perfect "
                "scaling from batch %g: B_20 &asymp; %s (95%% interval %s&ndash;%s)</li>\n",
                c->b_ref, bnum(x, sizeof x, c->b20), bnum(a, sizeof a, c->b20_lo),
                bnum(b, sizeof b, c->b20_hi));
    if (c->gns_runs > 0) {
        fprintf(out, "<li>The gradient noise scale B_simple, measured in %zu run%s (median "
                "over the later half of each run): %s", c->gns_runs,
                c->gns_runs > 1 ? "s" : "", bnum(x, sizeof x, c->gns));
        if (c->gns_lo < c->gns_hi)
            fprintf(out, " (95%% interval %s&ndash;%s)", bnum(a, sizeof a, c->gns_lo),
                    bnum(b, sizeof b, c->gns_hi));
        fputs("</li>\n", out);
    } else
        fputs("<li>Gradient noise scale: not measured (train with <code>measure_gns = "
              "true</code>).</li>\n", out);
    if (c->has_branched)
        fprintf(out, "<li>Branched training (Merrill et al. 2025): %s (%s&ndash;%s)</li>\n",
                bnum(x, sizeof x, c->branched), bnum(a, sizeof a, c->branched_lo),
                bnum(b, sizeof b, c->branched_hi));
    fputs("</ul>\n", out);
}

/* One line per candidate: its spread, tie, Pareto front, regime, accuracy, LR. */
static void candidates(FILE *out, const bl_recommendation *rec)
{
    char a[32], b[32], c[32];
    fputs("<p>Candidates (the tied-best set is marked <span class=\"tied\">tied</span>, the "
          "Pareto front of time to target, final validation accuracy and generalization gap "
          "<span class=\"pareto\">Pareto</span>):</p>\n<ul class=\"cands\">\n", out);
    for (size_t k = 0; k < rec->batch_count; k++) {
        const bl_rec_batch *g = &rec->by_batch[k];
        fputs(k == rec->pick ? "<li class=\"pick\">" : "<li>", out);
        if (isfinite(g->batch)) {
            fprintf(out, "batch %g", g->batch);
        } else {
            fputs("schedule ", out);
            esc(out, g->schedule);
        }
        if (!isnan(g->time_to_target)) {
            fprintf(out, ": %s to the target", seconds(a, sizeof a, g->time_to_target));
            if (g->reached > 1)
                fprintf(out, " (median of %d, 95%% interval %s&ndash;%s)", g->reached,
                        seconds(b, sizeof b, g->time_lo), seconds(c, sizeof c, g->time_hi));
        } else {
            fputs(": did not reach the target", out);
        }
        if (g->tied)
            fputs(" <span class=\"tied\">tied</span>", out);
        if (g->pareto)
            fputs(" <span class=\"pareto\">Pareto</span>", out);
        if (g->regime != BL_REGIME_UNKNOWN)
            fprintf(out, " &middot; %s", bl_regime_name(g->regime));
        if (isfinite(g->overhead) && g->overhead != 0)
            fprintf(out, " (%+.0f%% samples vs perfect scaling)", g->overhead * 100);
        if (!isnan(g->val_accuracy))
            fprintf(out, " &middot; val acc %.2f%%", g->val_accuracy * 100);
        if (!isnan(g->gap))
            fprintf(out, " &middot; gap %+.2f pts", g->gap * 100);
        if (!isnan(g->lr))
            fprintf(out, " &middot; lr %.4g", g->lr);
        if (g->trials > 0)
            fprintf(out, " &middot; %d tuning trial%s left out", g->trials,
                    g->trials > 1 ? "s" : "");
        fputs("</li>\n", out);
    }
    fputs("</ul>\n", out);
}

/* Schedules are candidates like fixed batches; say how the fastest did. */
static void schedule_paragraph(FILE *out, const bl__rdata *d, const bl_recommendation *rec)
{
    const bl__rrun *best = NULL;
    for (size_t i = 0; i < d->run_count; i++) {
        const bl__rrun *r = &d->runs[i];
        if (isnan(r->batch) && r->status == BL_RUN_COMPLETED && !isnan(r->time_to_target) &&
            (!best || r->time_to_target < best->time_to_target))
            best = r;
    }
    char a[32], b[32];
    fputs("<p>Runs with a batch-size schedule are candidates like fixed batch sizes, their "
          "time to target measured the same way.", out);
    if (best) {
        fputs(" The fastest schedule to the target, ", out);
        esc(out, best->batch_text);
        fprintf(out, " (run %lld), took %s", (long long)best->id,
                seconds(a, sizeof a, best->time_to_target));
        if (rec && rec->basis == BL_REC_BY_TARGET && isfinite(rec->batch))
            fprintf(out, ", %s than batch %g (%s)",
                    best->time_to_target < rec->time_to_target ? "faster" : "slower",
                    rec->batch, seconds(b, sizeof b, rec->time_to_target));
        fputs(".", out);
    } else if (d->target_mode != BL__TARGET_NONE) {
        fputs(" No schedule run reached the target.", out);
    }
    fputs("</p>\n", out);
}

static void recommendation(FILE *out, const bl__rdata *d, const bl_recommendation *rec,
                           const char *why_none)
{
    char buf[64];
    fputs("<section id=\"recommendation\">\n<h2>Recommendation</h2>\n", out);
    if (!rec) {
        fputs("<p class=\"verdict\">No recommendation: ", out);
        esc(out, why_none);
        fputs(".</p>\n", out);
    } else {
        const bl_rec_batch *p = &rec->by_batch[rec->pick];
        if (isfinite(p->batch)) {
            fprintf(out, "<p class=\"verdict\">Recommended batch size: <strong>%g</strong>",
                    rec->batch);
        } else {
            fputs("<p class=\"verdict\">Recommended schedule: <strong>", out);
            esc(out, p->schedule);
            fputs("</strong>", out);
        }
        if (rec->basis == BL_REC_BY_TARGET)
            fprintf(out, " &mdash; %s to the target (%s)",
                    rec->tied_count > 1 ? "the smallest of the tied fastest" : "fastest",
                    seconds(buf, sizeof buf, rec->time_to_target));
        else if (rec->basis == BL_REC_BY_METRIC)
            fprintf(out, " &mdash; best final validation accuracy (%.2f%%)", rec->metric * 100);
        else
            fputs(" &mdash; no measured basis", out);
        if (rec->regime != BL_REGIME_UNKNOWN)
            fprintf(out, " &middot; regime: <strong>%s</strong>", bl_regime_name(rec->regime));
        else if (isfinite(p->batch))
            fputs(" &middot; regime: not known (it needs steps-to-target at two or more "
                  "batch sizes)", out);
        if (rec->has_fit && rec->fit.valid)
            fprintf(out, " &middot; B_crit &asymp; %.3g (R&sup2; = %.3f, n = %zu)",
                    rec->fit.b_crit, rec->fit.r2, rec->fit.n);
        fputs("</p>\n<p><strong>", out);
        esc(out, rec->sentence);
        fputs("</strong></p>\n<p>", out);
        esc(out, rec->reason);
        fputs("</p>\n", out);
        candidates(out, rec);
        fputs("<p>The critical batch size, three ways:</p>\n", out);
        cbs_paragraph(out, rec);
    }
    if (d->any_schedule)
        schedule_paragraph(out, d, rec);
    fputs("</section>\n", out);
}

/* ---- the table ---------------------------------------------------------------------------- */

/* A number cell with `decimals` decimals; decimals < 0: seconds, as everywhere on the page. */
static void td_num(FILE *out, double v, int decimals)
{
    char buf[64];
    if (!isfinite(v))
        fputs("<td data-v=\"\">&mdash;</td>", out);
    else if (decimals < 0)
        fprintf(out, "<td data-v=\"%.17g\">%s</td>", v, seconds(buf, sizeof buf, v));
    else
        fprintf(out, "<td data-v=\"%.17g\">%.*f</td>", v, decimals < 0 ? 2 : decimals, v);
}

/* A text cell; `title` (may be NULL or "") becomes its tooltip. */
static void td_text(FILE *out, const char *s, const char *cls, const char *title)
{
    fprintf(out, "<td class=\"t%s%s\"", cls ? " " : "", cls ? cls : "");
    if (title && *title) {
        fputs(" title=\"", out);
        esc(out, title);
        fputs("\"", out);
    }
    fputs(">", out);
    if (s && *s)
        esc(out, s);
    else
        fputs("&mdash;", out);
    fputs("</td>", out);
}

static void runs_table(FILE *out, const bl__rdata *d, size_t best)
{
    static const char *const heads[] = {"ID", "Label", "Status", "Batch / schedule", "Base LR",
                                        "Seed", "Steps", "Time", "Val acc", "Test acc",
                                        "Time to target", "Steps to target"};
    /* Label and status sort as text; the batch column by its number (schedules last). */
    static const char *const kind[] = {" data-type=\"num\"", " class=\"t\"", " class=\"t\"",
                                       " class=\"t\" data-type=\"num\""};
    fputs("<section id=\"runs\">\n<h2>Runs</h2>\n<p class=\"caption\">Click a column to sort "
          "(again to reverse); &mdash; marks what was not recorded or not reached.",
          out);
    if (best != SIZE_MAX)
        fputs(" The highlighted row is the run behind the recommendation.", out);
    fputs("</p>\n<table class=\"runs\">\n<thead><tr>", out);
    for (size_t c = 0; c < sizeof heads / sizeof *heads; c++)
        fprintf(out, "<th tabindex=\"0\"%s>%s</th>", c < 4 ? kind[c] : " data-type=\"num\"",
                heads[c]);
    fputs("</tr></thead>\n<tbody>\n", out);
    for (size_t i = 0; i < d->run_count; i++) {
        const bl__rrun *r = &d->runs[i];
        char cls[32];
        fprintf(out, "<tr%s>", i == best ? " class=\"best\"" : "");
        fprintf(out, "<td data-v=\"%lld\">%lld</td>", (long long)r->id, (long long)r->id);
        td_text(out, r->label, NULL, NULL);
        snprintf(cls, sizeof cls, "s-%s", bl_run_status_name(r->status));
        td_text(out, bl_run_status_name(r->status), cls, r->error);
        if (isfinite(r->batch))
            fprintf(out, "<td class=\"t\" data-v=\"%.17g\">", r->batch);
        else
            fputs("<td class=\"t\" data-v=\"\">", out);
        esc(out, r->batch_text[0] ? r->batch_text : "?");
        fputs("</td>", out);
        if (r->lr_text[0]) {
            fprintf(out, "<td data-v=\"%.17g\">", r->lr);
            esc(out, r->lr_text);
            fputs("</td>", out);
        } else {
            td_num(out, NAN, 0);
        }
        fprintf(out, "<td data-v=\"%llu\">%llu</td>", (unsigned long long)r->seed,
                (unsigned long long)r->seed);
        td_num(out, r->steps >= 0 ? (double)r->steps : NAN, 0);
        td_num(out, r->time, -1);
        td_num(out, r->val_accuracy, 4);
        td_num(out, r->test_accuracy, 4);
        td_num(out, r->time_to_target, -1);
        td_num(out, r->steps_to_target, 0);
        fputs("</tr>\n", out);
    }
    fputs("</tbody>\n</table>\n</section>\n", out);
}

/* ---- the page ----------------------------------------------------------------------------- */

static int write_page(bl_ctx *ctx, const bl__rdata *d, const bl_report_options *o, FILE *out)
{
    bl_rec_run *in = calloc(d->run_count, sizeof *in);
    if (!in)
        return bl_error(ctx, BL_ENOMEM, "out of memory writing the report");
    for (size_t i = 0; i < d->run_count; i++) {
        const bl__rrun *r = &d->runs[i];
        in[i] = (bl_rec_run){.batch = r->batch, .completed = r->status == BL_RUN_COMPLETED,
                             .time_to_target = r->time_to_target,
                             .steps_to_target = r->steps_to_target,
                             .metric = r->val_accuracy, .schedule = r->batch_text,
                             .lr = r->peak_lr > 0 ? r->peak_lr : r->lr,
                             .steps_error = r->steps_error, .gns = r->gns,
                             .has_accuracy = true, .val_accuracy = r->val_accuracy,
                             .train_accuracy = r->train_accuracy};
    }
    bl_recommendation rec;
    bl_recommend_options ro = {.metric = "val_accuracy", .higher_better = true};
    int rrc = bl_recommend(ctx, in, d->run_count, &ro, &rec);
    free(in);
    if (rrc == BL_ENOMEM)
        return rrc;
    char why[256] = "";
    if (rrc != BL_OK)
        snprintf(why, sizeof why, "%s", bl_errmsg(ctx));
    bl_clear_error(ctx);
    const bl_recommendation *rp = rrc == BL_OK ? &rec : NULL;

    size_t completed = 0;
    for (size_t i = 0; i < d->run_count; i++)
        completed += d->runs[i].status == BL_RUN_COMPLETED;
    const char *title = o->title ? o->title : d->experiment;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta name=\"generator\" content=\"batchlab\">\n", out);
    if (o->refresh_seconds > 0)
        fprintf(out, "<meta http-equiv=\"refresh\" content=\"%d\">\n", o->refresh_seconds);
    fputs("<title>", out);
    if (title) {
        esc(out, title);
        fputs(" &mdash; ", out);
    }
    fprintf(out, "batchlab report</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", style);
    if (o->title) {
        esc(out, o->title);
    } else {
        fputs("Batch-size report", out);
        if (d->experiment) {
            fputs(": ", out);
            esc(out, d->experiment);
        }
    }
    fputs("</h1>\n<p class=\"meta\">Results store <code>", out);
    esc(out, d->store_path);
    fprintf(out, "</code> &middot; %zu run%s (%zu completed) &middot; target: ", d->run_count,
            d->run_count == 1 ? "" : "s", completed);
    if (d->target_mode == BL__TARGET_NONE)
        fputs("none", out);
    else if (d->target_text[0])
        esc(out, d->target_text);
    else
        fputs("as recorded with the runs", out);
    if (d->target_mode == BL__TARGET_OPTION)
        fputs(" (given for this report)", out);
    else if (d->target_mode == BL__TARGET_RECORDED)
        fputs(" (recorded with the runs)", out);
    else if (d->target_mode == BL__TARGET_UNIFIED)
        fputs(" (the runs recorded different targets; each is measured against the strictest "
              "of them, so that no median mixes targets)", out);
    char when[64] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(when, sizeof when, " on %Y-%m-%d %H:%M UTC", &tm);
    fprintf(out, " &middot; made by batchlab %s%s</p>\n", bl_version(), when);

    recommendation(out, d, rp, why);
    int rc = bl__report_curves(out, d);
    if (rc == BL_OK)
        rc = bl__report_schedule_charts(out, d);
    if (rc == BL_OK)
        rc = bl__report_target_charts(out, d, rp);
    if (rc == BL_OK)
        rc = bl__report_accuracy_chart(out, d);
    if (rc == BL_OK)
        rc = bl__report_gns_chart(out, d);
    if (rc == BL_OK)
        rc = bl__report_cbs_chart(out, d, rp);
    if (rc == BL_OK)
        rc = bl__report_pareto_chart(out, d, rp);
    if (rc == BL_OK)
        runs_table(out, d, rp ? rp->run : SIZE_MAX);
    fprintf(out, "<script>\n%s</script>\n</body>\n</html>\n", script);
    if (rp)
        bl_recommendation_free(&rec);
    if (rc != BL_OK)
        return bl_error(ctx, rc, "out of memory writing the report");
    if (fflush(out) != 0 || ferror(out))
        return bl_error(ctx, BL_EIO, "writing the report failed: %s", strerror(errno));
    return BL_OK;
}

int bl_report_write(bl_ctx *ctx, bl_store *store, const bl_report_options *opts, FILE *out)
{
    if (!store || !out)
        return bl_error(ctx, BL_EINVAL, "bl_report_write: NULL argument");
    bl_report_options defaults = bl_report_defaults();
    bl__rdata d;
    int rc = bl__report_gather(ctx, store, opts ? opts : &defaults, &d);
    if (rc != BL_OK)
        return rc;
    rc = write_page(ctx, &d, opts ? opts : &defaults, out);
    bl__report_data_free(&d);
    return rc;
}

int bl_report_write_file(bl_ctx *ctx, bl_store *store, const bl_report_options *opts,
                         const char *path)
{
    if (!store || !path || !*path)
        return bl_error(ctx, BL_EINVAL, "bl_report_write_file: NULL argument");
    bl_report_options defaults = bl_report_defaults();
    if (!opts)
        opts = &defaults;
    bl__rdata d;
    int rc = bl__report_gather(ctx, store, opts, &d);
    if (rc != BL_OK)
        return rc;
    bl__outfile file;
    rc = bl__outfile_open(ctx, path, &file);
    if (rc != BL_OK) {
        bl__report_data_free(&d);
        return rc;
    }
    rc = write_page(ctx, &d, opts, file.f);
    if (rc == BL_EIO)
        bl_error_prefix(ctx, "report '%s'", path);
    if (rc == BL_OK)
        rc = bl__outfile_commit(ctx, &file);
    bl__outfile_abort(&file);
    bl__report_data_free(&d);
    return rc;
}

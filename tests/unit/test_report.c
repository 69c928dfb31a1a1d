/* The HTML report: the S(B) fit and the recommendation rule (the one implementation;
 * bl.recommend and scripts/batchlab/recommend.lua use it too) on synthetic data, the SVG chart
 * writer (its functions are internal), HTML escaping, and whole reports made from stores
 * written with the store API. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batchlab/recommend.h"
#include "batchlab/report.h"
#include "batchlab/store.h"
#include "testutil.h"

#include "results/report/svg_chart.h" /* internal: linked from batchlab_internal */

#define EVIL "<script>alert(1)</script> &\"'"
#define EVIL_ESCAPED "&lt;script&gt;alert(1)&lt;/script&gt; &amp;&quot;&#39;"

static int ctx_setup(void **state)
{
    *state = bl_ctx_new();
    return *state ? 0 : -1;
}

static int ctx_teardown(void **state)
{
    bl_ctx_free(*state);
    return 0;
}

/* |a - b| ≤ eps (cmocka 1.1 has no assert_double_equal). */
#define assert_near(a, b, eps) near_(a, b, eps, #a, __LINE__)
static void near_(double a, double b, double eps, const char *what, int line)
{
    if (!(fabs(a - b) <= eps))
        fail_msg("line %d: %s = %.17g, expected %.17g (within %g)", line, what, a, b, eps);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

/* ---- the fit -------------------------------------------------------------------------------- */

static void test_fit_exact(void **state)
{
    bl_ctx *ctx = *state;
    double b[] = {16, 32, 64, 128, 256}, s[5];
    for (int i = 0; i < 5; i++)
        s[i] = 1000 + 64000 / b[i];
    bl_steps_fit f;
    BL_ASSERT_OK(ctx, bl_fit_steps(ctx, b, s, 5, &f));
    assert_true(f.valid);
    assert_int_equal(f.n, 5);
    assert_near(f.s_min, 1000, 1e-6);
    assert_near(f.e_min, 64000, 1e-6);
    assert_near(f.b_crit, 64, 1e-9);
    assert_near(f.r2, 1, 1e-12);
}

static void test_fit_invalid_and_errors(void **state)
{
    bl_ctx *ctx = *state;
    double b[] = {16, 32, 64}, s[3];
    bl_steps_fit f;
    for (int i = 0; i < 3; i++)
        s[i] = 64000 / b[i] - 50;                /* steps ∝ 1/B and then some: S_min < 0 */
    BL_ASSERT_OK(ctx, bl_fit_steps(ctx, b, s, 3, &f));
    assert_false(f.valid);
    assert_true(isnan(f.b_crit));
    assert_near(f.s_min, -50, 1e-6);
    for (int i = 0; i < 3; i++)
        s[i] = 500;                              /* no gain at all: E_min = 0 */
    BL_ASSERT_OK(ctx, bl_fit_steps(ctx, b, s, 3, &f));
    assert_false(f.valid);
    assert_near(f.r2, 1, 0);

    BL_ASSERT_ERR(ctx, BL_EINVAL, "at least 2", bl_fit_steps(ctx, b, s, 1, &f));
    double same[] = {32, 32};
    BL_ASSERT_ERR(ctx, BL_EINVAL, "same batch", bl_fit_steps(ctx, same, s, 2, &f));
    double bad[] = {16, 0};
    BL_ASSERT_ERR(ctx, BL_EINVAL, "point 2", bl_fit_steps(ctx, bad, s, 2, &f));
}

/* ---- the recommendation --------------------------------------------------------------------- */

/* A completed run of batch b that reached the target after S(B) = 1000 + 64000/B steps
 * (scaled by `slow`) at `per_step` seconds per step. */
static bl_rec_run reached(double b, double slow, double per_step)
{
    double steps = (1000 + 64000 / b) * slow;
    return (bl_rec_run){.batch = b, .completed = true, .steps_to_target = steps,
                        .time_to_target = steps * per_step, .metric = 0.9};
}

static void test_recommend_by_target(void **state)
{
    bl_ctx *ctx = *state;
    bl_rec_run runs[12];
    size_t n = 0;
    double b[] = {16, 32, 64, 128};
    for (int i = 0; i < 4; i++) {
        double per_step = 0.004 + 0.00012 * b[i];
        runs[n++] = reached(b[i], 1.0, per_step);
        runs[n++] = reached(b[i], 1.1, per_step);
    }
    runs[n++] = (bl_rec_run){.batch = NAN, .completed = true, .time_to_target = 100,
                             .steps_to_target = 1, .metric = 0.99,
                             .schedule = "ramp"};               /* a slow schedule */
    runs[n++] = (bl_rec_run){.batch = 256, .completed = false, .time_to_target = 0.5,
                             .steps_to_target = 10, .metric = 0.99};    /* failed */
    runs[n++] = (bl_rec_run){.batch = 512, .completed = true, .time_to_target = NAN,
                             .steps_to_target = -1, .metric = 0.5};     /* never reached */
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, n, NULL, &r));
    /* medians: 16 → 31.08, 32 → 24.70, 64 → 24.53, 128 → 30.49: 32 and 64 are within 1 %
     * (tied), and the pick is the smaller of the two */
    assert_near(r.batch, 32, 0);
    assert_int_equal(r.basis, BL_REC_BY_TARGET);
    assert_int_equal(r.run, 2);                  /* the fastest run of batch 32 */
    assert_near(r.time_to_target, 3000 * 1.05 * (0.004 + 0.00012 * 32), 1e-9);
    assert_int_equal(r.batch_count, 7);          /* 16 … 512 and the schedule */
    assert_int_equal(r.tied_count, 2);
    assert_true(r.by_batch[1].tied && r.by_batch[2].tied);
    assert_false(r.by_batch[0].tied || r.by_batch[3].tied || r.by_batch[6].tied);
    assert_int_equal(r.best, 2);                 /* batch 64 is the fastest by 1 % */
    assert_int_equal(r.pick, 1);
    assert_string_equal(r.by_batch[6].schedule, "ramp");
    assert_true(isnan(r.by_batch[6].batch));
    assert_int_equal(r.by_batch[4].runs, 1);
    assert_int_equal(r.by_batch[4].completed, 0);
    assert_true(r.has_fit);
    assert_int_equal(r.fit.n, 4);
    assert_near(r.fit.b_crit, 64, 1e-6);
    /* batch 32 spends exactly 20 % more samples than perfect scaling from 16: perfect scaling
     * by the data, whatever the fit's r = 0.5 says */
    assert_near(r.by_batch[1].overhead, 0.2, 1e-12);
    assert_int_equal(r.regime, BL_REGIME_PERFECT_SCALING);
    assert_int_equal(r.by_batch[2].regime, BL_REGIME_CRITICAL);
    /* Word for word what bl.recommend (and so batchlab.recommend) says for the same runs. */
    assert_true(bl_test_contains(
        r.reason,
        "Batches 32 and 64 are tied for the fastest time to the target: each is within 5% of "
        "the fastest or its 95% interval overlaps the fastest's, so their difference is not "
        "distinguishable from the spread. The fastest, batch 64, has a median time-to-target "
        "of 24.5 s over 2 runs (95% interval 23.4 s to 25.7 s). Batch 32, the smallest batch "
        "of them, is recommended. Batch 512 never reached it. Fitting steps-to-target S(B) = "
        "S_min + E_min/B over 4 batch sizes gives S_min \u2248 1000 steps and E_min \u2248 "
        "64000 samples (R\u00b2 = 1.000, n = 4), so the critical batch size is B_crit = "
        "E_min/S_min \u2248 64 (95% bootstrap interval 51.1 to 86.6)."));
    assert_true(bl_test_contains(
        r.reason, "Batch 32 needs 20% more samples than perfect scaling from batch 16 "
                  "predicts (within 20%), so it is in the perfect-scaling regime"));
    assert_true(bl_test_contains(r.reason, "Only 4 batch sizes") == false);
    assert_string_equal(r.sentence, "Use batch 32: it reaches the target as fast as any "
                                    "candidate measured (batches 32 and 64 are tied within "
                                    "the spread) and is the smallest batch of them.");
    bl_recommendation_free(&r);
    bl_recommendation_free(&r);                  /* twice is harmless */
}

static void test_recommend_ties_and_regimes(void **state)
{
    bl_ctx *ctx = *state;
    /* Equal times: the smaller batch wins. Steps fall faster than 1/B: S_min < 0, perfect
     * scaling throughout. */
    bl_rec_run runs[3] = {
        {.batch = 64, .completed = true, .time_to_target = 10, .steps_to_target = 900},
        {.batch = 32, .completed = true, .time_to_target = 10, .steps_to_target = 1900},
        {.batch = 128, .completed = true, .time_to_target = 12, .steps_to_target = 400},
    };
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 3, NULL, &r));
    assert_near(r.batch, 32, 0);
    assert_true(r.has_fit);
    assert_false(r.fit.valid);
    assert_int_equal(r.regime, BL_REGIME_PERFECT_SCALING);
    assert_true(bl_test_contains(r.reason, "perfect-scaling regime throughout"));
    assert_true(bl_test_contains(r.reason, "Batches 32 and 64 are tied"));
    assert_int_equal(r.tied_count, 2);
    bl_recommendation_free(&r);

    /* B_crit = 4: batch 64 is 16× B_crit, on the plateau. */
    for (int i = 0; i < 3; i++) {
        runs[i].steps_to_target = 1000 + 4000 / runs[i].batch;
        runs[i].time_to_target = runs[i].batch == 64 ? 5 : 9;
    }
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 3, NULL, &r));
    assert_near(r.batch, 64, 0);
    assert_near(r.fit.b_crit, 4, 1e-9);
    assert_int_equal(r.regime, BL_REGIME_PLATEAU);
    assert_true(bl_test_contains(r.reason, "on the plateau"));
    assert_string_equal(bl_regime_name(r.regime), "plateau");
    bl_recommendation_free(&r);

    /* Only two batches reached it: no fit; the regime from the data alone (batch 64 spends
     * 89 % more samples than perfect scaling from 32). */
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 2, NULL, &r));
    assert_false(r.has_fit);
    assert_int_equal(r.regime, BL_REGIME_CRITICAL);
    assert_true(bl_test_contains(r.reason, "; the next best, batch 32, took 9.00 s (80% "
                                           "longer, beyond the 5% margin and the spread)."));
    assert_true(bl_test_contains(r.reason, "Batch 64 needs 89% more samples than perfect "
                                           "scaling from batch 32 predicts"));
    bl_recommendation_free(&r);
}

static void test_recommend_by_metric(void **state)
{
    bl_ctx *ctx = *state;
    bl_rec_run runs[4] = {
        {.batch = 16, .completed = true, .time_to_target = NAN, .steps_to_target = NAN,
         .metric = 0.88},
        {.batch = 32, .completed = true, .time_to_target = -1, .steps_to_target = -1,
         .metric = 0.91},
        {.batch = 64, .completed = false, .time_to_target = NAN, .steps_to_target = NAN,
         .metric = 0.95},                                      /* interrupted: ignored */
        {.batch = 32, .completed = true, .time_to_target = NAN, .steps_to_target = NAN,
         .metric = 0.85},
    };
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 4, NULL, &r));
    assert_near(r.batch, 32, 0);
    assert_int_equal(r.basis, BL_REC_BY_METRIC);
    assert_int_equal(r.run, 1);
    assert_near(r.metric, 0.91, 0);
    assert_string_equal(r.reason, "No run reached the target; batch 32 had the best final "
                                  "val_accuracy (91.00%), so it is the safest choice until a "
                                  "longer budget or a lower target separates the batch sizes.");
    bl_recommendation_free(&r);

    /* A loss: lower is better. */
    bl_recommend_options o = {.metric = "val_loss", .higher_better = false};
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 4, &o, &r));
    assert_near(r.batch, 32, 0);
    assert_near(r.metric, 0.85, 0);
    assert_true(bl_test_contains(r.reason, "best final val_loss (0.85)"));
    bl_recommendation_free(&r);

    /* No metric at all: the smallest completed batch, said to be no measured choice. */
    for (int i = 0; i < 4; i++)
        runs[i].metric = NAN;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 4, NULL, &r));
    assert_near(r.batch, 16, 0);
    assert_int_equal(r.basis, BL_REC_FALLBACK);
    assert_true(bl_test_contains(r.reason, "not a measured choice"));
    bl_recommendation_free(&r);

    /* Nothing to recommend from. */
    bl_rec_run only_schedules[1] = {{.batch = NAN, .completed = true, .metric = 0.9,
                                     .time_to_target = NAN}};   /* never reached */
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no completed run",
                  bl_recommend(ctx, only_schedules, 1, NULL, &r));
    assert_null(r.reason);
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no completed run", bl_recommend(ctx, NULL, 0, NULL, &r));
}

/* ---- the chart writer and escaping ---------------------------------------------------------- */

/* Writes the chart into a new string (the caller frees it). */
static char *chart_text(bl__chart *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(bl__chart_write(c, f), BL_OK);
    assert_int_equal(fclose(f), 0);
    /* A copy: GCC 12 at -O3 takes the stream's buffer for a pointer into this frame
     * (-Wdangling-pointer, a false alarm that -DBATCHLAB_WERROR=ON turns into an error). */
    char *text = strdup(buf);
    assert_non_null(text);
    free(buf);
    return text;
}

static void test_escape(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    bl__html_puts(f, EVIL);
    bl__html_puts(f, NULL);
    bl__html_puts(f, " caf\u00e9");
    fclose(f);
    assert_string_equal(buf, EVIL_ESCAPED " caf\u00e9");
    free(buf);
}

static void test_chart(void **state)
{
    bl__chart *c = bl__chart_new("t1", "Loss " EVIL, "step", "loss", BL__SCALE_LINEAR,
                                 BL__SCALE_LOG);
    assert_non_null(c);
    double x[] = {0, 100, 200, 300, 400, 500}, y[] = {2.3, 1.1, NAN, 0.4, -1, 0.2};
    bl__chart_series(c, "batch 64 " EVIL, 0, BL__LINE, x, y, 6);
    bl__chart_series(c, NULL, 0, BL__LINE | BL__FAINT, x, y, 2);   /* no legend entry */
    assert_int_equal(bl__chart_drawable(c), 6);   /* NaN and -1 (log axis) are gaps */
    char *svg = chart_text(c);
    assert_int_equal(count(svg, "<svg"), 1);
    assert_int_equal(count(svg, "</svg>"), 1);
    assert_true(bl_test_contains(svg, "Loss " EVIL_ESCAPED));
    assert_false(bl_test_contains(svg, "<script"));
    assert_false(bl_test_contains(svg, "http"));
    /* The first line breaks at the NaN and at -1: three pieces, each starting with M. */
    const char *path = strstr(svg, "stroke-width=\"1.8\"");
    assert_non_null(path);
    const char *end = strstr(path, "/>");
    int moves = 0;
    for (const char *p = path; p < end; p++)
        moves += p[0] == ' ' && p[1] == 'M';
    assert_int_equal(moves, 3);
    assert_int_equal(count(svg, "<title>batch 64"), 1);       /* one legend entry */
    assert_true(bl_test_contains(svg, ">1</text>"));          /* log ticks 0.2 … 2 */
    free(svg);
    bl__chart_free(c);

    /* Log-log with the batches as ticks, a marker, bars; and an empty chart. */
    c = bl__chart_new("t2", "Steps", "batch size", "steps", BL__SCALE_LOG, BL__SCALE_LOG);
    double b[] = {16, 32, 64}, s[] = {5000, 3000, 2000}, lo[] = {4800, 2900, 1900};
    bl__chart_series(c, "fewest", 1, BL__LINE | BL__MARKERS, b, s, 3);
    bl__chart_bars(c, 1, b, lo, s, 3);
    bl__chart_xmark(c, 64, "B_crit \u2248 64");
    bl__chart_xticks(c, b, 3);
    svg = chart_text(c);
    assert_true(bl_test_contains(svg, ">16</text>"));
    assert_true(bl_test_contains(svg, ">32</text>"));
    assert_true(bl_test_contains(svg, ">64</text>"));
    assert_int_equal(count(svg, "<circle"), 4);               /* 3 markers + the legend's */
    assert_true(bl_test_contains(svg, "class=\"mark\""));
    assert_true(bl_test_contains(svg, "(log)"));
    free(svg);
    bl__chart_free(c);

    c = bl__chart_new("t3", NULL, NULL, NULL, BL__SCALE_LINEAR, BL__SCALE_LINEAR);
    double nan[] = {NAN};
    bl__chart_series(c, "nothing", 0, BL__LINE, nan, nan, 1);
    svg = chart_text(c);
    assert_true(bl_test_contains(svg, "no data"));
    free(svg);
    bl__chart_free(c);
}

/* ---- reports from a store ------------------------------------------------------------------- */

static const char *fresh_path(const char *name)
{
    static char path[2][1200];
    static int k;
    char *p = path[k++ % 2];
    snprintf(p, sizeof path[0], "%s/%s", bl_test_tmpdir("report"), name);
    unlink(p);
    return p;
}

/* One run of batch b (NAN: a ramp schedule) with 12 points; val accuracy reaches 0.85 at
 * about S(B) = 1000 + 64000/B steps. */
static void add_run(bl_ctx *ctx, bl_store *st, int64_t exp_id, const char *label, double b,
                    int seed, bl_run_status status)
{
    char cfg[256];
    if (isnan(b))
        snprintf(cfg, sizeof cfg, "{\"batch\":{\"name\":\"ramp\",\"from\":16,\"to\":64},"
                                  "\"lr\":0.1}");
    else
        snprintf(cfg, sizeof cfg, "{\"batch\":%g,\"optimizer\":{\"name\":\"sgd\","
                                  "\"lr\":0.05}}", b);
    int64_t run;
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, st, exp_id, label, cfg, (uint64_t)seed, &run));
    double bb = isnan(b) ? 32 : b, target = 1000 + 64000 / bb;
    double tau = target / log(0.82 / 0.07) * (seed == 1 ? 1 : 1.05);
    bl_eval_point hist[12];
    bl_run_result res = {.status = status, .diverged_step = -1, .steps_to_target = -1,
                         .samples_to_target = -1, .time_to_target = NAN,
                         .wall_time_to_target = NAN, .step_time_median = NAN,
                         .epochs_to_target = NAN, .test_loss = NAN, .test_accuracy = 0.8};
    for (int i = 0; i < 12; i++) {
        int64_t step = (int64_t)((i + 1) * target / 8);
        double acc = 0.92 - 0.82 * exp(-(double)step / tau);
        hist[i] = (bl_eval_point){.step = step, .samples = step * (int64_t)bb,
                                  .epoch = step * bb / 50000, .wall = step * (0.004 + 1e-4 * bb),
                                  .batch = isnan(b) ? 16 << (i / 4) : (int64_t)b, .lr = 0.05,
                                  .train_loss = 2 * exp(-(double)step / tau) + 0.2,
                                  .train_accuracy = acc, .val_loss = NAN,
                                  .val_accuracy = acc, .gns = b == 32 ? 10.0 * (i + 1) : NAN,
                                  .samples_per_sec = 1000};
        if (i == 5)
            hist[i].train_loss = NAN;                          /* a gap in the line */
        BL_ASSERT_OK(ctx, bl_store_add_point(ctx, st, run, &hist[i]));
    }
    res.history = hist;
    res.history_count = 12;
    res.final = hist[11];
    res.steps = hist[11].step;
    res.time = hist[11].wall;
    BL_ASSERT_OK(ctx, bl_store_run_end(ctx, st, run, &res));
}

/* Reads a whole file into a new string. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The structural checks every report must pass. */
static void check_page(const char *html)
{
    assert_true(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    assert_true(bl_test_contains(html, "</html>\n"));
    assert_int_equal(count(html, "<svg"), count(html, "</svg>"));
    assert_int_equal(count(html, "<section"), count(html, "</section>"));
    assert_int_equal(count(html, "<table"), 1);
    assert_int_equal(count(html, "</table>"), 1);
    assert_int_equal(count(html, "<script"), 1);              /* the table sorter only */
    assert_false(bl_test_contains(html, "http://"));
    assert_false(bl_test_contains(html, "https://"));
    assert_false(bl_test_contains(html, "src="));
    assert_false(bl_test_contains(html, "<link"));
    assert_false(bl_test_contains(html, "@import"));
}

static void test_report_from_store(void **state)
{
    bl_ctx *ctx = *state;
    const char *db = fresh_path("sweep.db");
    bl_store *st;
    int64_t exp;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, db, &st));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, st, "sweep " EVIL, &exp));
    add_run(ctx, st, exp, "b16 s1", 16, 1, BL_RUN_COMPLETED);
    add_run(ctx, st, exp, "b16 s2", 16, 2, BL_RUN_COMPLETED);
    add_run(ctx, st, exp, EVIL, 32, 1, BL_RUN_COMPLETED);
    add_run(ctx, st, exp, "b32 s2", 32, 2, BL_RUN_COMPLETED);
    add_run(ctx, st, exp, "b64 s1", 64, 1, BL_RUN_COMPLETED);
    add_run(ctx, st, exp, "b64 s2", 64, 2, BL_RUN_DIVERGED);
    add_run(ctx, st, exp, "ramp", NAN, 1, BL_RUN_COMPLETED);

    /* No target given and none recorded: the target charts are left out, and the rule falls
     * back to the final accuracy. */
    const char *out = fresh_path("plain.html");
    bl_report_options o = bl_report_defaults();
    o.experiment = "sweep " EVIL;
    BL_ASSERT_OK(ctx, bl_report_write_file(ctx, st, &o, out));
    char *html = slurp(out);
    check_page(html);
    assert_true(bl_test_contains(html, "No target was given"));
    assert_false(bl_test_contains(html, "id=\"steps-target\""));
    assert_true(bl_test_contains(html, "Recommended batch size: <strong>"));
    assert_true(bl_test_contains(html, "No run reached the target"));
    assert_true(bl_test_contains(html, EVIL_ESCAPED));
    assert_false(bl_test_contains(html, EVIL));
    assert_true(bl_test_contains(html, "ramp (from=16, to=64)"));
    assert_true(bl_test_contains(html, "id=\"gns-step\""));
    assert_int_equal(count(html, "<tr"), 8);                  /* the header and 7 runs */
    free(html);

    /* With a target: steps and time to target, the fit, B_crit. */
    o.has_target = true;
    o.target = 0.85;
    BL_ASSERT_OK(ctx, bl_report_write_file(ctx, st, &o, out));
    html = slurp(out);
    check_page(html);
    assert_true(bl_test_contains(html, "val_accuracy \u2265 0.85"));
    assert_true(bl_test_contains(html, "id=\"steps-target\""));
    assert_true(bl_test_contains(html, "id=\"time-target\""));
    assert_true(bl_test_contains(html, "Batch 64 and schedule ramp (from=16, to=64) are tied "
                                       "for the fastest time to the target"));
    assert_true(bl_test_contains(html, "<li class=\"pick\">batch 64: "));
    assert_true(bl_test_contains(html, "id=\"cbs-three\""));
    assert_true(bl_test_contains(html, "id=\"pareto-front\""));
    assert_false(bl_test_contains(html, "an extrapolation"));     /* B_crit = 64 = the top */
    assert_true(bl_test_contains(html, "B_crit = E_min/S_min"));
    assert_true(bl_test_contains(html, "B_crit \u2248"));
    assert_true(bl_test_contains(html, "The gradient noise scale B_simple, measured in 2 runs"));
    assert_true(bl_test_contains(html, "The fastest schedule to the target"));
    assert_true(bl_test_contains(html, "<svg class=\"chart\" id=\"acc-batch\""));
    free(html);

    /* To a FILE, and a loss target that nothing reaches. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    o.target_metric = BL_METRIC_TRAIN_LOSS;
    o.target = 0.01;
    o.title = "My <title>";
    BL_ASSERT_OK(ctx, bl_report_write(ctx, st, &o, f));
    fclose(f);
    check_page(buf);
    assert_true(bl_test_contains(buf, "<h1>My &lt;title&gt;</h1>"));
    assert_true(bl_test_contains(buf, "train_loss \u2264 0.01"));
    assert_true(bl_test_contains(buf, "No completed run with a fixed batch size reached"));
    free(buf);
    bl_store_close(st);
}

/* A run of batch b whose points reach val_accuracy 0.85 at step `hit` (linearly), with the
 * wall clock running `wall_per_step` per step and a median step time `median`. */
static void add_timed_run(bl_ctx *ctx, bl_store *st, int64_t exp_id, int b, int64_t hit,
                          double wall_per_step, double median)
{
    char cfg[128], label[32];
    snprintf(cfg, sizeof cfg, "{\"batch\":%d,\"optimizer\":{\"name\":\"sgd\",\"lr\":0.05}}", b);
    snprintf(label, sizeof label, "b%d", b);
    int64_t run;
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, st, exp_id, label, cfg, 1, &run));
    bl_eval_point hist[4];
    for (int i = 0; i < 4; i++) {
        int64_t step = hit * (i + 1) / 2;                   /* hit/2, hit, 3hit/2, 2hit */
        hist[i] = (bl_eval_point){.step = step, .samples = step * b, .epoch = step * b / 5e4,
                                  .wall = (double)step * wall_per_step, .batch = b, .lr = 0.05,
                                  .train_loss = 1, .train_accuracy = NAN, .val_loss = 1,
                                  .val_accuracy = 0.85 * (double)step / (double)hit,
                                  .gns = NAN, .samples_per_sec = NAN};
        BL_ASSERT_OK(ctx, bl_store_add_point(ctx, st, run, &hist[i]));
    }
    bl_run_result res = {.status = BL_RUN_COMPLETED, .diverged_step = -1, .history = hist,
                         .history_count = 4, .final = hist[3], .steps = hist[3].step,
                         .time = hist[3].wall, .steps_to_target = hit,
                         .samples_to_target = hit * b, .steps_to_target_error = hit / 2,
                         .time_to_target = (double)hit * median, .step_time_median = median,
                         .wall_time_to_target = (double)hit * wall_per_step,
                         .epochs_to_target = hist[1].epoch, .test_loss = NAN,
                         .test_accuracy = NAN};
    BL_ASSERT_OK(ctx, bl_store_run_end(ctx, st, run, &res));
}

/* The report ranks by the robust time to target (steps × median step time), also under a
 * target of its own: batch 64 had a noisy machine (its wall clock ran 1 s a step) but takes
 * 1 ms a step, so its 1000 steps (1 s) beat batch 128's 600 steps of 10 ms (6 s), though by the
 * wall clock (1000 s against 6 s) batch 128 would win. */
static void test_report_uses_robust_time(void **state)
{
    bl_ctx *ctx = *state;
    const char *db = fresh_path("robust.db");
    bl_store *st;
    int64_t exp;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, db, &st));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, st, "robust", &exp));
    add_timed_run(ctx, st, exp, 64, 1000, 1.0, 0.001);
    add_timed_run(ctx, st, exp, 128, 600, 0.01, 0.01);
    for (int own = 0; own < 2; own++) {
        bl_report_options o = bl_report_defaults();
        o.experiment = "robust";
        if (own) {                      /* the report's own target: recomputed from points */
            o.has_target = true;
            o.target = 0.85;
        }
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        BL_ASSERT_OK(ctx, bl_report_write(ctx, st, &o, f));
        fclose(f);
        if (!bl_test_contains(buf, "Recommended batch size: <strong>64</strong>"))
            fail_msg("own target %d: not batch 64", own);
        free(buf);
    }
    bl_store_close(st);
}

static void test_report_errors(void **state)
{
    bl_ctx *ctx = *state;
    const char *db = fresh_path("errors.db");
    bl_store *st;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, db, &st));
    const char *out = fresh_path("never.html");
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "holds no runs", bl_report_write_file(ctx, st, NULL, out));
    assert_int_equal(access(out, F_OK), -1);                  /* nothing written */

    int64_t a, b;
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, st, "alpha", &a));
    bl_report_options o = bl_report_defaults();
    o.experiment = "alpha";
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "'alpha'", bl_report_write_file(ctx, st, &o, out));
    o.experiment = "nope";
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "nope", bl_report_write_file(ctx, st, &o, out));

    add_run(ctx, st, a, "a1", 16, 1, BL_RUN_COMPLETED);
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, st, "beta", &b));
    add_run(ctx, st, b, "b1", 32, 1, BL_RUN_COMPLETED);
    BL_ASSERT_ERR(ctx, BL_EINVAL, "'alpha', 'beta'", bl_report_write_file(ctx, st, NULL, out));
    assert_int_equal(access(out, F_OK), -1);

    o.experiment = "beta";
    o.has_target = true;
    o.target = NAN;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "finite", bl_report_write_file(ctx, st, &o, out));
    o.has_target = false;
    BL_ASSERT_ERR(ctx, BL_EIO, "no-such-dir", bl_report_write_file(ctx, st, &o,
                                                                    "/no-such-dir/r.html"));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "NULL", bl_report_write(ctx, st, &o, NULL));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "NULL", bl_report_write(ctx, NULL, &o, stdout));
    /* One experiment with one batch: a report, with a recommendation but no fit. */
    BL_ASSERT_OK(ctx, bl_report_write_file(ctx, st, &o, out));
    char *html = slurp(out);
    check_page(html);
    assert_true(bl_test_contains(html, "Recommended batch size: <strong>32</strong>"));
    assert_true(bl_test_contains(html, "regime: not known"));
    free(html);
    bl_store_close(st);
}

/* A run evaluated 5000 times is drawn with at most ~600 points a line. */
static void test_report_long_run(void **state)
{
    bl_ctx *ctx = *state;
    const char *db = fresh_path("long.db");
    bl_store *st;
    int64_t run;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, db, &st));
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, st, 0, "long", "{\"batch\":8}", 1, &run));
    enum { N = 5000 };
    bl_eval_point *h = calloc(N, sizeof *h);
    assert_non_null(h);
    for (int i = 0; i < N; i++)
        h[i] = (bl_eval_point){.step = i + 1, .wall = 0.01 * (i + 1), .batch = 8,
                               .train_loss = 1.0 / (i + 1), .val_accuracy = 0.5,
                               .val_loss = NAN, .gns = NAN, .train_accuracy = NAN};
    bl_run_result res = {.status = BL_RUN_COMPLETED, .history = h, .history_count = N,
                         .final = h[N - 1], .steps = N, .diverged_step = -1,
                         .steps_to_target = -1, .samples_to_target = -1,
                         .time_to_target = NAN, .epochs_to_target = NAN, .test_loss = NAN,
                         .test_accuracy = NAN, .wall_time_to_target = NAN,
                         .step_time_median = NAN};
    BL_ASSERT_OK(ctx, bl_store_run_end(ctx, st, run, &res));   /* all points, one commit */
    free(h);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    BL_ASSERT_OK(ctx, bl_report_write(ctx, st, NULL, f));
    fclose(f);
    check_page(buf);
    const char *chart = strstr(buf, "id=\"loss-step\""), *end = strstr(chart, "</svg>");
    size_t segments = 0;
    for (const char *p = chart; p < end; p++)
        segments += p[0] == ' ' && p[1] == 'L';
    assert_true(segments >= 500 && segments <= 700);
    assert_true(len < 200000);
    free(buf);
    bl_store_close(st);
}

/* A run with `n` points whose batch follows `batch` (NULL: 32 throughout) and whose training
 * loss is `loss` at every point but `spike` (a huge value there; -1: none). */
static int64_t add_view_run(bl_ctx *ctx, bl_store *st, int64_t exp_id, const char *cfg,
                            const int64_t *batch, int n, int spike, double val)
{
    int64_t run;
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, st, exp_id, "v", cfg, 1, &run));
    bl_eval_point h[16];
    int64_t samples = 0;
    for (int i = 0; i < n; i++) {
        int64_t b = batch ? batch[i] : 32;
        samples += b * 10;
        h[i] = (bl_eval_point){.step = 10 * (i + 1), .samples = samples, .wall = 0.1 * (i + 1),
                               .batch = b, .lr = 0.01 * (double)b / 32,
                               .train_loss = i == spike ? 1e6 : 2.0 / (i + 1),
                               .train_accuracy = NAN, .val_loss = NAN, .val_accuracy = val,
                               .gns = NAN, .samples_per_sec = NAN};
        BL_ASSERT_OK(ctx, bl_store_add_point(ctx, st, run, &h[i]));
    }
    bl_run_result res = {.status = BL_RUN_COMPLETED, .diverged_step = -1, .history = h,
                         .history_count = (size_t)n, .final = h[n - 1], .steps = h[n - 1].step,
                         .time = h[n - 1].wall, .steps_to_target = -1,
                         .samples_to_target = -1, .time_to_target = NAN,
                         .wall_time_to_target = NAN, .step_time_median = NAN,
                         .epochs_to_target = NAN, .test_loss = NAN, .test_accuracy = NAN};
    BL_ASSERT_OK(ctx, bl_store_run_end(ctx, st, run, &res));
    return run;
}

/* The chart with this id, as a new string ("" when the page has none). */
static char *chart_of(const char *html, const char *id)
{
    char key[64];
    snprintf(key, sizeof key, "id=\"%s\"", id);
    const char *a = strstr(html, key);
    const char *b = a ? strstr(a, "</svg>") : NULL;
    size_t n = a && b ? (size_t)(b - a) : 0;
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, a ? a : "", n);
    s[n] = '\0';
    return s;
}

/* Issue 14, found 8: the batch size and the LR over training, the loss against samples with a
 * spike clipped, values on hover, whole legends, and no empty chart. */
static void test_report_views(void **state)
{
    bl_ctx *ctx = *state;
    const char *db = fresh_path("views.db");
    bl_store *st;
    int64_t exp;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, db, &st));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, st, "views", &exp));
    static const int64_t grow[8] = {16, 16, 32, 32, 64, 64, 128, 128};
    add_view_run(ctx, st, exp, "{\"batch\":32,\"lr\":0.01}", NULL, 8, 3, NAN);
    add_view_run(ctx, st, exp, "{\"batch\":{\"name\":\"double_every\",\"batch\":16,"
                               "\"every\":2,\"max\":128},\"lr\":0.01}", grow, 8, -1, NAN);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    BL_ASSERT_OK(ctx, bl_report_write(ctx, st, NULL, f));
    fclose(f);
    check_page(buf);

    /* The batch size over training: the schedule's 16 → 128 against the samples seen. */
    char *c = chart_of(buf, "batch-samples");
    assert_true(bl_test_contains(c, "<title>samples seen 160, batch size 16 (run 2,"));
    assert_true(bl_test_contains(c, "batch size 128 (run 2,"));
    assert_true(bl_test_contains(c, "batch size 32 (run 1,"));
    free(c);
    c = chart_of(buf, "lr-samples");
    assert_true(bl_test_contains(c, "learning rate 0.04 (run 2,"));
    free(c);

    /* The loss against samples, its 1e6 spike clipped and marked: the axis stays near 2. */
    c = chart_of(buf, "loss-samples");
    assert_true(bl_test_contains(c, "class=\"clipped\""));
    assert_true(bl_test_contains(c, "<title>clipped: samples seen 1280, training loss 1e+06"));
    assert_false(bl_test_contains(c, "e5</text>"));
    assert_false(bl_test_contains(c, "e6</text>"));
    assert_false(bl_test_contains(c, "00000</text>"));
    free(c);

    /* The legend is whole, wrapped onto lines, never cut. */
    c = chart_of(buf, "loss-step");
    assert_true(bl_test_contains(c, "<tspan"));
    assert_true(bl_test_contains(c, "max=128)</tspan>"));
    assert_false(bl_test_contains(c, "\u2026"));
    free(c);

    /* No validation accuracy was measured: no empty chart is drawn in its place. */
    assert_false(bl_test_contains(buf, "no data"));
    assert_false(bl_test_contains(buf, "id=\"val-step\""));
    free(buf);
    bl_store_close(st);
}

/* A report written to memory (the test fails on an error). */
static char *report_text(bl_ctx *ctx, bl_store *st, const bl_report_options *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    BL_ASSERT_OK(ctx, bl_report_write(ctx, st, o, f));
    fclose(f);
    check_page(buf);
    return buf;
}

/* A run of batch b recording `target` (val_accuracy ≥ target) whose accuracy grows by 0.1 an
 * evaluation, 100 steps apart, at `median` seconds a step. */
static void add_target_run(bl_ctx *ctx, bl_store *st, int64_t exp_id, int b, double target,
                           double median)
{
    char cfg[128];
    snprintf(cfg, sizeof cfg, "{\"batch\":%d,\"lr\":0.1,\"target\":%g}", b, target);
    int64_t run;
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, st, exp_id, "t", cfg, 1, &run));
    bl_eval_point h[10];
    int64_t hit = -1;
    for (int i = 0; i < 10; i++) {
        h[i] = (bl_eval_point){.step = 100 * (i + 1), .samples = 100 * (i + 1) * b,
                               .wall = median * 100 * (i + 1), .batch = b, .lr = 0.1,
                               .train_loss = 1, .train_accuracy = NAN, .val_loss = NAN,
                               .val_accuracy = 0.5 + 0.04 * (i + 1), .gns = NAN,
                               .samples_per_sec = NAN};
        if (hit < 0 && h[i].val_accuracy >= target - 1e-12)
            hit = h[i].step;
        BL_ASSERT_OK(ctx, bl_store_add_point(ctx, st, run, &h[i]));
    }
    bl_run_result res = {.status = BL_RUN_COMPLETED, .diverged_step = -1, .history = h,
                         .history_count = 10, .final = h[9], .steps = h[9].step,
                         .time = h[9].wall, .steps_to_target = hit,
                         .samples_to_target = hit * b, .time_to_target = (double)hit * median,
                         .wall_time_to_target = (double)hit * median, .step_time_median = median,
                         .epochs_to_target = NAN, .test_loss = NAN, .test_accuracy = NAN};
    BL_ASSERT_OK(ctx, bl_store_run_end(ctx, st, run, &res));
}

/* Issue 14, found 8: runs outside an experiment can be reported (experiment ""), runs with
 * different targets are not merged into one median, every duration is in seconds with one
 * format, and the page refreshes itself only when asked (report --watch). */
static void test_report_outside_targets_units(void **state)
{
    bl_ctx *ctx = *state;
    const char *db = fresh_path("outside.db");
    bl_store *st;
    int64_t exp;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, db, &st));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, st, "named", &exp));
    add_timed_run(ctx, st, exp, 32, 1000, 0.001, 0.001);
    add_target_run(ctx, st, 0, 64, 0.70, 0.000896);     /* reaches 0.70 at step 500 */
    add_target_run(ctx, st, 0, 64, 0.82, 0.000896);     /* reaches 0.82 at step 800 */
    add_target_run(ctx, st, 0, 128, 0.82, 0.001);

    BL_ASSERT_ERR(ctx, BL_EINVAL, "--experiment ''", bl_report_write(ctx, st, NULL, stdout));
    bl_report_options o = bl_report_defaults();
    o.experiment = "";
    char *html = report_text(ctx, st, &o);
    assert_int_equal(count(html, "<tr"), 4);               /* the header and the 3 outside */
    assert_true(bl_test_contains(html, "<h1>Batch-size report</h1>"));
    /* Targets 0.70 and 0.82: every run measured against 0.82, batch 64 in 800 steps each. */
    assert_true(bl_test_contains(html, "val_accuracy \u2265 0.82 (the runs recorded different "
                                       "targets"));
    assert_true(bl_test_contains(html, "<li class=\"pick\">batch 64: 0.72 s to the target"));
    assert_false(bl_test_contains(html, "median of 2, 95% interval 0.45 s"));
    /* One unit, one format: 0.896 s is "0.90 s", never "896 ms" or a bare 0.896. */
    assert_true(bl_test_contains(html, ">0.90 s</td>"));
    assert_false(bl_test_contains(html, " ms"));
    assert_false(bl_test_contains(html, ">0.896<"));
    assert_false(bl_test_contains(html, "http-equiv"));
    free(html);

    o.refresh_seconds = 3;
    html = report_text(ctx, st, &o);
    assert_true(bl_test_contains(html, "<meta http-equiv=\"refresh\" content=\"3\">"));
    free(html);

    bl_store_close(st);
    db = fresh_path("named_only.db");
    BL_ASSERT_OK(ctx, bl_store_open(ctx, db, &st));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, st, "named", &exp));
    add_timed_run(ctx, st, exp, 32, 1000, 0.001, 0.001);
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "outside an experiment", bl_report_write(ctx, st, &o,
                                                                               stdout));
    bl_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_exact),
        cmocka_unit_test(test_fit_invalid_and_errors),
        cmocka_unit_test(test_recommend_by_target),
        cmocka_unit_test(test_recommend_ties_and_regimes),
        cmocka_unit_test(test_recommend_by_metric),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_chart),
        cmocka_unit_test(test_report_from_store),
        cmocka_unit_test(test_report_uses_robust_time),
        cmocka_unit_test(test_report_errors),
        cmocka_unit_test(test_report_long_run),
        cmocka_unit_test(test_report_views),
        cmocka_unit_test(test_report_outside_targets_units),
    };
    return cmocka_run_group_tests(tests, ctx_setup, ctx_teardown);
}

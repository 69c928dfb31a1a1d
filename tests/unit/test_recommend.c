/* The recommendation after a sweep (batchlab/recommend.h): the seeded bootstrap, the tied-set
 * rule and the pick, schedules as candidates, LR-tuning trials left out, the Pareto front, the
 * 20 %-overhead batch, the regime that agrees with the chart, a fit the evaluation cadence
 * cannot resolve, and the gradient noise scale summary. (The wording of whole explanations and
 * the report are in test_report.c.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/recommend.h"
#include "testutil.h"

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

#define assert_near(a, b, eps) near_(a, b, eps, #a, __LINE__)
static void near_(double a, double b, double eps, const char *what, int line)
{
    if (!(fabs(a - b) <= eps))
        fail_msg("line %d: %s = %.17g, expected %.17g (within %g)", line, what, a, b, eps);
}

/* A completed run of batch b that reached the target after `steps` steps in `t` seconds. */
static bl_rec_run run(double b, double steps, double t)
{
    return (bl_rec_run){.batch = b, .completed = true, .time_to_target = t,
                        .steps_to_target = steps, .metric = NAN};
}

static void bootstrap_is_deterministic(void **state)
{
    (void)state;
    double a[] = {10, 12, 11, 15, 9, 10.5}, b[] = {15, 9, 10.5, 12, 10, 11};
    double lo1, hi1, lo2, hi2, lo3, hi3;
    assert_int_equal(bl_bootstrap_median(a, 6, &lo1, &hi1), BL_OK);
    assert_int_equal(bl_bootstrap_median(a, 6, &lo2, &hi2), BL_OK);
    assert_int_equal(bl_bootstrap_median(b, 6, &lo3, &hi3), BL_OK);   /* another order */
    assert_true(lo1 == lo2 && hi1 == hi2 && lo1 == lo3 && hi1 == hi3);
    double m[6];
    memcpy(m, a, sizeof m);
    double med = bl_median(m, 6);
    assert_near(med, 10.75, 0);
    assert_true(lo1 < med && med < hi1);
    assert_true(lo1 >= 9 && hi1 <= 15);
    assert_near(a[0], 10, 0);                              /* not changed */
    assert_int_equal(bl_bootstrap_median(a, 1, &lo1, &hi1), BL_OK);
    assert_true(lo1 == 10 && hi1 == 10);
    assert_int_equal(bl_bootstrap_median(a, 0, &lo1, &hi1), BL_OK);
    assert_true(isnan(lo1) && isnan(hi1));
    assert_true(isnan(bl_median(m, 0)));
}

/* The found bug: batch 256 "won" by 3 %. Within the 5 % margin the two are tied and the
 * smaller batch is picked; 6 % apart, the faster wins. */
static void three_percent_is_a_tie(void **state)
{
    bl_ctx *ctx = *state;
    bl_rec_run runs[2] = {run(16, 1000, 10.3), run(256, 100, 10.0)};
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 2, NULL, &r));
    assert_near(r.batch, 16, 0);
    assert_int_equal(r.tied_count, 2);
    assert_int_equal(r.best, 1);
    assert_int_equal(r.pick, 0);
    assert_near(r.tie_margin, BL_REC_TIE_MARGIN, 0);
    assert_true(bl_test_contains(r.reason, "Batches 16 and 256 are tied"));
    assert_true(bl_test_contains(r.sentence, "Use batch 16: it reaches the target as fast as"));
    bl_recommendation_free(&r);

    runs[0].time_to_target = 10.6;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 2, NULL, &r));
    assert_near(r.batch, 256, 0);
    assert_int_equal(r.tied_count, 1);
    assert_true(bl_test_contains(r.reason, "(6% longer, beyond the 5% margin"));
    bl_recommendation_free(&r);
}

/* With repeats: overlapping intervals tie even when the medians are 15 % apart; the margin
 * grows with the typical spread. */
static void overlapping_intervals_tie(void **state)
{
    bl_ctx *ctx = *state;
    bl_rec_run runs[] = {run(64, 100, 10), run(64, 100, 10.1), run(64, 100, 10.2),
                         run(128, 60, 10.1), run(128, 60, 11.5), run(128, 60, 13),
                         run(256, 40, 18), run(256, 40, 20.2), run(256, 40, 24)};
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 9, NULL, &r));
    assert_int_equal(r.tied_count, 2);
    assert_true(r.by_batch[0].tied && r.by_batch[1].tied && !r.by_batch[2].tied);
    assert_near(r.batch, 64, 0);
    assert_near(r.by_batch[1].time_to_target, 11.5, 0);
    assert_true(r.by_batch[1].time_lo <= r.by_batch[0].time_hi);
    assert_true(r.tie_margin > BL_REC_TIE_MARGIN);   /* batches 128 and 256 are noisy */
    bl_recommendation_free(&r);
    /* the same runs in another order: the same intervals, tie and pick */
    bl_rec_run rev[9];
    for (int i = 0; i < 9; i++)
        rev[i] = runs[8 - i];
    bl_recommendation q;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 9, NULL, &r));
    BL_ASSERT_OK(ctx, bl_recommend(ctx, rev, 9, NULL, &q));
    assert_int_equal(q.pick, r.pick);
    assert_int_equal(q.tied_count, r.tied_count);
    for (size_t k = 0; k < r.batch_count; k++) {
        assert_true(q.by_batch[k].time_lo == r.by_batch[k].time_lo);
        assert_true(q.by_batch[k].time_hi == r.by_batch[k].time_hi);
    }
    assert_true(q.cbs.b20_lo == r.cbs.b20_lo && q.cbs.b20_hi == r.cbs.b20_hi);
    bl_recommendation_free(&r);
    bl_recommendation_free(&q);
}

/* Schedules are candidates by name; one is picked only when no fixed batch is tied. */
static void schedules_are_candidates(void **state)
{
    bl_ctx *ctx = *state;
    bl_rec_run runs[4] = {run(32, 500, 10), run(64, 300, 11), run(NAN, 200, 6),
                          run(NAN, 250, 30)};
    runs[2].schedule = "ramp";
    runs[3].schedule = "";                                 /* unnamed */
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 4, NULL, &r));
    assert_int_equal(r.batch_count, 4);
    assert_string_equal(r.by_batch[2].schedule, "ramp");
    assert_string_equal(r.by_batch[3].schedule, "schedule");
    assert_true(isnan(r.batch));
    assert_int_equal(r.pick, 2);
    assert_int_equal(r.regime, BL_REGIME_UNKNOWN);
    assert_true(bl_test_contains(r.reason, "Schedule ramp reached the target fastest"));
    assert_true(bl_test_contains(r.sentence, "Use schedule ramp"));
    bl_recommendation_free(&r);

    runs[2].time_to_target = 10.2;                         /* tied with batch 32 */
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 4, NULL, &r));
    assert_near(r.batch, 32, 0);
    assert_true(r.by_batch[2].tied);
    assert_true(bl_test_contains(r.reason, "Batch 32 and schedule ramp are tied"));
    bl_recommendation_free(&r);

    /* only schedules, none reached: nothing to recommend */
    runs[2].time_to_target = runs[3].time_to_target = NAN;
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no completed run", bl_recommend(ctx, runs + 2, 2, NULL, &r));
}

/* An LR-tuned sweep: trials that are not their batch's best are left out; the tuned LR per
 * batch is reported. */
static void tuning_trials_left_out(void **state)
{
    bl_ctx *ctx = *state;
    bl_rec_run runs[4] = {run(16, 1000, 1), run(16, 2000, 20), run(64, 400, 10),
                          run(64, 300, 9)};
    runs[0].trial = true;                   /* a fast trial: must not win for batch 16 */
    runs[0].lr = 0.4;
    runs[1].lr = 0.1;
    runs[2].trial = true;
    runs[2].lr = 0.2;
    runs[3].lr = 0.3;
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 4, NULL, &r));
    assert_near(r.batch, 64, 0);
    assert_int_equal(r.by_batch[0].runs, 1);
    assert_int_equal(r.by_batch[0].trials, 1);
    assert_near(r.by_batch[0].time_to_target, 20, 0);
    assert_near(r.by_batch[0].steps_to_target, 2000, 0);
    assert_near(r.by_batch[0].lr, 0.1, 0);
    assert_near(r.by_batch[1].lr, 0.3, 0);
    assert_true(bl_test_contains(r.sentence, "Use batch 64 at learning rate 0.3"));
    bl_recommendation_free(&r);
}

static void pareto_front(void **state)
{
    bl_ctx *ctx = *state;
    bl_rec_run runs[4] = {run(16, 1000, 10), run(32, 600, 12), run(64, 400, 13),
                          run(128, 300, NAN)};
    double val[4] = {0.90, 0.92, 0.89, 0.95}, gap[4] = {0.02, 0.01, 0.03, 0};
    for (int i = 0; i < 4; i++) {
        runs[i].has_accuracy = true;
        runs[i].val_accuracy = val[i];
        runs[i].train_accuracy = val[i] + gap[i];
    }
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 4, NULL, &r));
    assert_true(r.by_batch[0].pareto);                     /* fastest */
    assert_true(r.by_batch[1].pareto);                     /* most accurate, smallest gap */
    assert_false(r.by_batch[2].pareto);                    /* 16 beats it in all three */
    assert_false(r.by_batch[3].pareto);                    /* never reached the target */
    assert_near(r.by_batch[2].gap, 0.03, 1e-12);
    bl_recommendation_free(&r);
}

/* Zhang et al.'s 20 % definition, relative to the smallest batch: for S = 1000 + 64000/B from
 * B0 = 16 the overhead is (1000 B + 64000)/80000 − 1, which is 20 % at B = 32 (= 1.2 B0 +
 * 0.2 B_crit). Steps ∝ 1/B never cross it. */
static void twenty_percent_batch(void **state)
{
    bl_ctx *ctx = *state;
    bl_rec_run runs[7];
    double b = 16;
    for (int i = 0; i < 7; i++, b *= 2)
        runs[i] = run(b, 1000 + 64000 / b, 1000 / b);
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 7, NULL, &r));
    assert_near(r.cbs.b_ref, 16, 0);
    assert_near(r.cbs.b20, 32, 1e-9);
    assert_near(r.cbs.fit.b_crit, 64, 1e-9);
    assert_true(r.cbs.fit_trusted);
    assert_false(r.cbs.few_points);
    assert_true(r.cbs.b_crit_lo <= 64 && 64 <= r.cbs.b_crit_hi);
    assert_near(r.by_batch[1].overhead, 0.2, 1e-12);
    assert_int_equal(r.by_batch[1].regime, BL_REGIME_PERFECT_SCALING);
    assert_int_equal(r.by_batch[2].regime, BL_REGIME_CRITICAL);        /* r = 1 */
    assert_int_equal(r.by_batch[6].regime, BL_REGIME_PLATEAU);         /* r = 16 */
    bl_recommendation_free(&r);

    b = 16;
    for (int i = 0; i < 7; i++, b *= 2)
        runs[i] = run(b, 64000 / b, 1);
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 7, NULL, &r));
    assert_true(isinf(r.cbs.b20));
    assert_true(bl_test_contains(r.reason, "is above the largest batch measured"));
    bl_recommendation_free(&r);
}

/* The found bug: the fit gave B_crit ≈ 531 and called batch 512 "near the critical batch
 * size" while the chart showed it on the perfect-scaling line through the smallest batch. */
static void regime_agrees_with_the_chart(void **state)
{
    bl_ctx *ctx = *state;
    bl_rec_run runs[4] = {run(64, 1000, 10), run(128, 640, 6.4), run(256, 420, 4.2),
                          run(512, 125, 1.25)};
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 4, NULL, &r));
    assert_near(r.batch, 512, 0);
    assert_near(r.fit.b_crit, 531, 1);                     /* r = 0.96: "near" by the fit */
    assert_near(r.by_batch[3].overhead, 0, 1e-12);         /* on the line */
    assert_int_equal(r.regime, BL_REGIME_PERFECT_SCALING);
    assert_false(bl_test_contains(r.reason, "close to B_crit"));
    assert_false(bl_test_contains(r.reason, "near the critical batch size"));
    assert_true(bl_test_contains(r.reason, "Batch 512 needs 0% more samples than perfect "
                                           "scaling from batch 64 predicts (within 20%)"));
    /* batch 256, 68 % above the line, is not perfect scaling whatever the fit says (r 0.48) */
    assert_int_equal(r.by_batch[2].regime, BL_REGIME_CRITICAL);
    bl_recommendation_free(&r);
}

/* Steps bracketed by evaluations 32 % of the steps apart cannot resolve a 20 % overhead: the
 * fit is reported, but not trusted, and the regime comes from the data. */
static void coarse_cadence_is_not_trusted(void **state)
{
    bl_ctx *ctx = *state;
    bl_rec_run runs[4];
    double b = 16;
    for (int i = 0; i < 4; i++, b *= 2) {
        runs[i] = run(b, 1000 + 64000 / b, (1000 + 64000 / b) / 100);
        runs[i].steps_error = 0.1 * runs[i].steps_to_target;
    }
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 4, NULL, &r));
    assert_true(r.cbs.fit_trusted);
    assert_near(r.cbs.resolution, 0.1, 1e-12);
    bl_recommendation_free(&r);
    runs[2].steps_error = 0.32 * runs[2].steps_to_target;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 4, NULL, &r));
    assert_false(r.cbs.fit_trusted);
    assert_near(r.cbs.resolution, 0.32, 1e-12);
    assert_true(bl_test_contains(r.reason, "The fit is not trusted: the evaluation points "
                                           "bracket the crossing to within 32% of the steps"));
    /* batch 128 (r = 2 by the fit) is placed by its overhead, 140 %: near the CBS */
    assert_int_equal(r.regime, BL_REGIME_CRITICAL);
    assert_true(bl_test_contains(r.reason, "Batch 128 needs 140% more samples"));
    bl_recommendation_free(&r);
    /* three points: flagged */
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 3, NULL, &r));
    assert_true(r.cbs.few_points);
    assert_true(bl_test_contains(r.reason, "Only 3 batch sizes went into the fit"));
    bl_recommendation_free(&r);
}

static void noise_scale_and_branched(void **state)
{
    bl_ctx *ctx = *state;
    double step[6] = {10, 20, 30, 40, 50, 60}, gns[6] = {1, 2, 100, 40, NAN, 60};
    assert_near(bl_gns_summary(step, gns, 6), 60, 0);      /* steps 30..60: 100, 40, 60 */
    assert_true(isnan(bl_gns_summary(step, gns, 0)));
    bl_rec_run runs[3] = {run(16, 1000, 10), run(32, 600, 12), run(64, 400, 13)};
    runs[0].gns = 50;
    runs[1].gns = 70;
    runs[2].gns = -1;                                      /* unknown */
    bl_recommend_options o = {.higher_better = true, .has_branched = true,
                              .branched_batch = 48, .branched_lo = 32, .branched_hi = NAN};
    bl_recommendation r;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 3, &o, &r));
    assert_int_equal(r.cbs.gns_runs, 2);
    assert_near(r.cbs.gns, 60, 0);
    assert_true(r.cbs.gns_lo >= 50 && r.cbs.gns_hi <= 70 && r.cbs.gns_lo < r.cbs.gns_hi);
    assert_true(r.cbs.has_branched);
    assert_near(r.cbs.branched, 48, 0);
    assert_true(bl_test_contains(r.reason, "Branched training (Merrill et al. 2025) puts it at "
                                           "48."));
    bl_recommendation_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bootstrap_is_deterministic),
        cmocka_unit_test(three_percent_is_a_tie),
        cmocka_unit_test(overlapping_intervals_tie),
        cmocka_unit_test(schedules_are_candidates),
        cmocka_unit_test(tuning_trials_left_out),
        cmocka_unit_test(pareto_front),
        cmocka_unit_test(twenty_percent_batch),
        cmocka_unit_test(regime_agrees_with_the_chart),
        cmocka_unit_test(coarse_cadence_is_not_trusted),
        cmocka_unit_test(noise_scale_and_branched),
    };
    return cmocka_run_group_tests(tests, ctx_setup, ctx_teardown);
}

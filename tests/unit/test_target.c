/* Steps and time to a target (bl_target_crossing_find, train.h): linear interpolation between
 * the last evaluation point short of the target and the first at or past it, on the metric's
 * scale and in the target's direction, with the gap between the two points as the error. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include "testutil.h"

/* A point at `step` of batch 32, 100 steps an epoch, 2 s a step, with accuracy `acc` and
 * validation loss `loss`. */
static bl_eval_point at(int64_t step, double acc, double loss)
{
    return (bl_eval_point){.step = step, .samples = 32 * step, .epoch = (double)step / 100,
                           .wall = 2.0 * (double)step, .batch = 32, .lr = 0.1,
                           .train_loss = NAN, .train_accuracy = NAN, .val_loss = loss,
                           .val_accuracy = acc, .gns = NAN, .samples_per_sec = NAN};
}

static void interpolates_between_the_points_around_the_crossing(void **state)
{
    (void)state;
    const bl_eval_point h[] = {at(10, 0.5, 1.0), at(20, 0.7, 0.6), at(40, 0.9, 0.2),
                               at(60, 0.95, 0.1)};
    bl_target_crossing c;
    /* accuracy at least 0.8: between step 20 (0.7) and step 40 (0.9), halfway */
    assert_true(bl_target_crossing_find(h, 4, BL_METRIC_VAL_ACCURACY, 0.8, true, &c));
    assert_int_equal(c.steps, 30);
    assert_int_equal(c.samples, 960);
    assert_true(fabs(c.epochs - 0.30) < 1e-12);
    assert_true(fabs(c.wall - 60.0) < 1e-12);
    assert_int_equal(c.steps_error, 20);            /* the gap, not half of it */

    /* loss at most 0.5 (lower is better): between 0.6 (step 20) and 0.2 (step 40), a quarter
     * of the way: step 25; samples 800 */
    assert_true(bl_target_crossing_find(h, 4, BL_METRIC_VAL_LOSS, 0.5, false, &c));
    assert_int_equal(c.steps, 25);
    assert_int_equal(c.samples, 800);
    assert_true(fabs(c.wall - 50.0) < 1e-12);
    assert_int_equal(c.steps_error, 20);

    /* exactly at a point's value: that point */
    assert_true(bl_target_crossing_find(h, 4, BL_METRIC_VAL_ACCURACY, 0.9, true, &c));
    assert_int_equal(c.steps, 40);
    assert_int_equal(c.steps_error, 20);

    /* rounded to the nearest step: 0.5 + (0.56 − 0.5)/(0.7 − 0.5) · 10 = step 13 */
    assert_true(bl_target_crossing_find(h, 4, BL_METRIC_VAL_ACCURACY, 0.56, true, &c));
    assert_int_equal(c.steps, 13);
    assert_int_equal(c.samples, 416);
    assert_true(fabs(c.wall - 26.0) < 1e-9);
    assert_int_equal(c.steps_error, 10);
}

static void first_point_already_at_target(void **state)
{
    (void)state;
    const bl_eval_point h[] = {at(25, 0.85, 0.3), at(50, 0.9, 0.2)};
    bl_target_crossing c;
    /* nothing before it was measured: the point itself, the crossing anywhere in [0, 25] */
    assert_true(bl_target_crossing_find(h, 2, BL_METRIC_VAL_ACCURACY, 0.8, true, &c));
    assert_int_equal(c.steps, 25);
    assert_int_equal(c.samples, 800);
    assert_true(c.epochs == 0.25 && c.wall == 50.0);
    assert_int_equal(c.steps_error, 25);
}

static void not_reached_or_not_measured(void **state)
{
    (void)state;
    const bl_eval_point h[] = {at(10, 0.5, 1.0), at(20, NAN, NAN), at(30, 0.9, 0.2)};
    bl_target_crossing c = {.steps = -7};
    assert_false(bl_target_crossing_find(h, 3, BL_METRIC_VAL_ACCURACY, 0.95, true, &c));
    assert_int_equal(c.steps, -7);                  /* untouched */
    assert_false(bl_target_crossing_find(h, 0, BL_METRIC_VAL_ACCURACY, 0.1, true, &c));
    /* a metric the points do not carry (NaN) is never at a target */
    assert_false(bl_target_crossing_find(h, 3, BL_METRIC_TRAIN_LOSS, 1e300, false, &c));
    /* the point before the crossing has no value: the point at the target, with the gap */
    assert_true(bl_target_crossing_find(h, 3, BL_METRIC_VAL_ACCURACY, 0.8, true, &c));
    assert_int_equal(c.steps, 30);
    assert_int_equal(c.steps_error, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(interpolates_between_the_points_around_the_crossing),
        cmocka_unit_test(first_point_already_at_target),
        cmocka_unit_test(not_reached_or_not_measured),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

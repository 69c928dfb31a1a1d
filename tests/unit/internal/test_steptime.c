/* The robust per-step time (engine.h, train.h step_time_median): the median of the kept step
 * times depends only on the times (not their order), ignores slow outliers, keeps only the
 * last `cap` steps, and filters by batch. */
#include <math.h>
#include <stdlib.h>

#include "engine/engine.h"
#include "testutil.h"

static void median_of_values(void **state)
{
    (void)state;
    double scratch[8];
    const double odd[] = {0.3, 0.1, 0.2};
    const double even[] = {4, 1, 3, 2};
    assert_true(bl__median(odd, 3, scratch) == 0.2);
    assert_true(bl__median(even, 4, scratch) == 2.5);
    assert_true(isnan(bl__median(odd, 0, scratch)));
    assert_true(odd[0] == 0.3 && even[0] == 4);             /* the input is not touched */
}

/* Steps of 10 ms with every fifth one slowed to 50-250 ms (another process on the machine):
 * the mean moves by 40%+, the median stays 10 ms, in whichever order the steps came. */
static void outliers_do_not_move_it(void **state)
{
    bl_ctx *ctx = *state;
    enum { N = 100 };
    double times[N], mean = 0;
    for (int i = 0; i < N; i++) {
        times[i] = i % 5 == 4 ? 0.05 * (1 + i % 5 + (i / 5) % 5) : 0.010 + 1e-6 * (i % 3);
        mean += times[i] / N;
    }
    bl__step_times s, t;
    BL_ASSERT_OK(ctx, bl__step_times_reserve(ctx, &s, N));
    BL_ASSERT_OK(ctx, bl__step_times_reserve(ctx, &t, N));
    for (int i = 0; i < N; i++) {
        bl__step_times_push(&s, times[i], 32);
        bl__step_times_push(&t, times[(i * 37) % N], 32);   /* the same times, shuffled */
    }
    double m = bl__step_times_median(&s, 32);
    assert_true(fabs(m - 0.010) <= 2e-6);
    assert_true(mean > 1.4 * m);
    assert_true(bl__step_times_median(&t, 32) == m);          /* bit-identical */
    assert_true(bl__step_times_median(&s, 32) == m);          /* asking again changes nothing */
    /* time to target = steps × median: 1000 steps ≈ 10 s, whatever the slow steps did */
    assert_true(fabs(1000 * m - 10.0) < 0.01);
    bl__step_times_release(&s);
    bl__step_times_release(&t);
}

/* The ring keeps the last cap steps; the median is over the steps of one batch (all when 0). */
static void ring_and_batch_filter(void **state)
{
    bl_ctx *ctx = *state;
    bl__step_times s;
    BL_ASSERT_OK(ctx, bl__step_times_reserve(ctx, &s, 4));
    assert_true(isnan(bl__step_times_median(&s, 0)));
    bl__step_times_push(&s, 9, 16);
    bl__step_times_push(&s, 9, 16);
    bl__step_times_push(&s, 1, 64);
    bl__step_times_push(&s, 2, 64);
    bl__step_times_push(&s, 3, 64);     /* overwrites the first 9 */
    bl__step_times_push(&s, 5, 8);      /* overwrites the second 9 */
    assert_int_equal(s.n, 4);
    assert_true(bl__step_times_median(&s, 64) == 2);
    assert_true(bl__step_times_median(&s, 0) == 2.5);
    assert_true(isnan(bl__step_times_median(&s, 16)));
    bl__step_times_release(&s);
    bl__step_times_release(&s);         /* safe twice */
}

static int setup(void **state)
{
    *state = bl_ctx_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    bl_ctx_free(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(median_of_values),
        cmocka_unit_test(outliers_do_not_move_it),
        cmocka_unit_test(ring_and_batch_filter),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

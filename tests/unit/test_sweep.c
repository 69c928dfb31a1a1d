/* The sweep core (batchlab/sweep.h): grid order, points run in order, a failed point does not
 * stop the sweep, an interrupt does, scores and the best point (ties), the resume hook, and
 * an executor of its own going through the same seam. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "batchlab/sweep.h"
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

/* ---- the grid ------------------------------------------------------------------------------ */

static void test_grid_order(void **state)
{
    bl_ctx *ctx = *state;
    /* given as seed, batch: sorted batch, seed; batch slowest, values in the order given */
    const char *names[] = {"seed", "batch"};
    size_t len[] = {2, 3};
    bl_grid g;
    BL_ASSERT_OK(ctx, bl_grid_init(ctx, &g, names, len, 2));
    assert_int_equal(g.total, 6);
    assert_int_equal(g.order[0], 1);   /* batch */
    assert_int_equal(g.order[1], 0);   /* seed */
    const size_t want[6][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}, {2, 1}};
    for (size_t i = 0; i < 6; i++) {
        size_t at[2];
        bl_grid_point(&g, i, at);
        assert_int_equal(at[0], want[i][0]);
        assert_int_equal(at[1], want[i][1]);
    }
    bl_grid_free(&g);
    bl_grid_free(&g);                  /* twice is harmless */

    BL_ASSERT_OK(ctx, bl_grid_init(ctx, &g, NULL, NULL, 0));
    assert_int_equal(g.total, 1);      /* no keys: one point, the base */
    bl_grid_free(&g);

    size_t empty[] = {2, 0};
    BL_ASSERT_ERR(ctx, BL_EINVAL, "'batch' must be a non-empty list",
                  bl_grid_init(ctx, &g, names, empty, 2));
    size_t huge[] = {(size_t)1 << 30, (size_t)1 << 30};
    BL_ASSERT_ERR(ctx, BL_EINVAL, "too large", bl_grid_init(ctx, &g, names, huge, 2));
}

/* ---- a scripted sweep ---------------------------------------------------------------------- */

typedef struct script {
    size_t n;
    bl_sweep_status status[8];
    double loss[8], ttt[8];       /* NAN: none */
    int rc[8];                    /* what the run hook returns */
    bool finished[8];             /* for the resume hook */
    size_t ran[8], nran;          /* the order run() saw */
    size_t seen[8], nseen;        /* the order on_point() saw */
} script;

static int run_hook(void *user, bl_ctx *ctx, size_t index, bl_sweep_point *out)
{
    script *s = user;
    assert_int_equal(out->status, BL_SWEEP_FAILED);   /* pre-set */
    assert_true(isnan(out->val_loss));
    s->ran[s->nran++] = index;
    if (s->rc[index])
        return bl_error(ctx, s->rc[index], "stopped at point %zu", index);
    out->status = s->status[index];
    out->val_loss = s->loss[index];
    out->has_target_time = !isnan(s->ttt[index]);
    out->time_to_target = s->ttt[index];
    return BL_OK;
}

static int resume_hook(void *user, bl_ctx *ctx, size_t index, bl_sweep_point *out,
                       bool *found)
{
    script *s = user;
    if (!s->finished[index])
        return BL_OK;
    *found = true;
    out->status = BL_SWEEP_COMPLETED;
    out->val_loss = s->loss[index];
    return BL_OK;
}

static int on_point_hook(void *user, bl_ctx *ctx, size_t index, const bl_sweep_point *p,
                         size_t total)
{
    script *s = user;
    assert_int_equal(total, s->n);
    s->seen[s->nseen++] = index;
    return BL_OK;
}

static script make(size_t n)
{
    script s = {.n = n};
    for (size_t i = 0; i < n; i++) {
        s.status[i] = BL_SWEEP_COMPLETED;
        s.loss[i] = 1.0 + (double)i;
        s.ttt[i] = NAN;
    }
    return s;
}

static void test_order_and_failed_point(void **state)
{
    bl_ctx *ctx = *state;
    script s = make(5);
    s.status[1] = BL_SWEEP_FAILED;
    s.status[3] = BL_SWEEP_OTHER;       /* diverged: neither failed nor scored */
    s.loss[4] = 0.5;
    bl_sweep_hooks h = {.user = &s, .run = run_hook, .on_point = on_point_hook};
    bl_sweep_options o = {.points = 5};
    bl_sweep_summary sum;
    BL_ASSERT_OK(ctx, bl_sweep_run(ctx, &o, &h, NULL, &sum));
    assert_int_equal(s.nran, 5);
    assert_int_equal(s.nseen, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(s.ran[i], i);
        assert_int_equal(s.seen[i], i);
    }
    assert_int_equal(sum.total, 5);
    assert_int_equal(sum.done, 5);
    assert_int_equal(sum.failed, 1);
    assert_int_equal(sum.resumed, 0);
    assert_true(isnan(sum.points[1].score));
    assert_true(isnan(sum.points[3].score));
    assert_true(sum.points[0].score == 1.0);
    assert_int_equal(sum.best, 4);      /* the lowest val_loss */
    assert_true(sum.best_score == 0.5);
    bl_sweep_summary_free(&sum);
    bl_sweep_summary_free(&sum);
}

static void test_interrupt_stops(void **state)
{
    bl_ctx *ctx = *state;
    script s = make(4);
    s.rc[2] = BL_EINTERRUPTED;
    bl_sweep_hooks h = {.user = &s, .run = run_hook, .on_point = on_point_hook};
    bl_sweep_options o = {.points = 4};
    bl_sweep_summary sum;
    BL_ASSERT_ERR(ctx, BL_EINTERRUPTED, "stopped at point 2", bl_sweep_run(ctx, &o, &h, NULL,
                                                                           &sum));
    assert_int_equal(s.nran, 3);        /* point 3 never ran */
    assert_int_equal(sum.done, 2);
    assert_int_equal(sum.best, SIZE_MAX);
    bl_sweep_summary_free(&sum);
}

static void test_best_ties_and_target(void **state)
{
    bl_ctx *ctx = *state;
    /* ties keep the earlier point, lower and higher alike */
    script s = make(4);
    s.loss[0] = 3, s.loss[1] = 2, s.loss[2] = 2, s.loss[3] = 3;
    bl_sweep_hooks h = {.user = &s, .run = run_hook};
    bl_sweep_options o = {.points = 4};
    bl_sweep_summary sum;
    BL_ASSERT_OK(ctx, bl_sweep_run(ctx, &o, &h, NULL, &sum));
    assert_int_equal(sum.best, 1);
    bl_sweep_summary_free(&sum);
    s = make(4);
    s.loss[0] = 3, s.loss[1] = 2, s.loss[2] = 2, s.loss[3] = 3;
    o.higher_is_better = true;
    BL_ASSERT_OK(ctx, bl_sweep_run(ctx, &o, &h, NULL, &sum));
    assert_int_equal(sum.best, 0);
    bl_sweep_summary_free(&sum);

    /* one run with a target time: time_to_target is the score of all, unreached ones none */
    s = make(3);
    s.ttt[0] = NAN, s.ttt[1] = 7.0, s.ttt[2] = 5.0;
    s.loss[0] = 0.1;                    /* best loss, but the score is the time now */
    o.higher_is_better = false;
    o.points = 3;
    BL_ASSERT_OK(ctx, bl_sweep_run(ctx, &o, &h, NULL, &sum));
    assert_true(isnan(sum.points[0].score));
    assert_true(sum.points[1].score == 7.0);
    assert_int_equal(sum.best, 2);
    bl_sweep_summary_free(&sum);

    /* nothing completed: no best */
    s = make(2);
    o.points = 2;
    s.status[0] = s.status[1] = BL_SWEEP_FAILED;
    BL_ASSERT_OK(ctx, bl_sweep_run(ctx, &o, &h, NULL, &sum));
    assert_int_equal(sum.best, SIZE_MAX);
    assert_true(isnan(sum.best_score));
    assert_int_equal(sum.failed, 2);
    bl_sweep_summary_free(&sum);
}

static int score_hook(void *user, bl_ctx *ctx, size_t index, const bl_sweep_point *p,
                      double *score)
{
    if (index == 2)
        return bl_error(ctx, BL_ESCRIPT, "bad score");
    *score = index == 1 ? NAN : 10.0 - (double)index;
    return BL_OK;
}

static void test_score_hook(void **state)
{
    bl_ctx *ctx = *state;
    script s = make(2);
    bl_sweep_hooks h = {.user = &s, .run = run_hook, .score = score_hook};
    bl_sweep_options o = {.points = 2};
    bl_sweep_summary sum;
    BL_ASSERT_OK(ctx, bl_sweep_run(ctx, &o, &h, NULL, &sum));
    assert_int_equal(sum.best, 0);      /* point 1's NaN leaves it out */
    assert_true(isnan(sum.points[1].score));
    bl_sweep_summary_free(&sum);
    s = make(3);
    o.points = 3;
    BL_ASSERT_ERR(ctx, BL_ESCRIPT, "bad score", bl_sweep_run(ctx, &o, &h, NULL, &sum));
    bl_sweep_summary_free(&sum);
}

static void test_resume_hook(void **state)
{
    bl_ctx *ctx = *state;
    script s = make(3);
    s.finished[0] = s.finished[2] = true;
    s.loss[2] = 0.25;
    bl_sweep_hooks h = {.user = &s, .run = run_hook, .resume = resume_hook,
                        .on_point = on_point_hook};
    bl_sweep_options o = {.points = 3};
    bl_sweep_summary sum;
    BL_ASSERT_OK(ctx, bl_sweep_run(ctx, &o, &h, NULL, &sum));
    assert_int_equal(s.nran, 1);        /* only point 1 trained */
    assert_int_equal(s.ran[0], 1);
    assert_int_equal(s.nseen, 3);       /* every point recorded */
    assert_int_equal(sum.resumed, 2);
    assert_true(sum.points[0].resumed && !sum.points[1].resumed && sum.points[2].resumed);
    assert_int_equal(sum.best, 2);      /* a resumed run competes like any other */
    bl_sweep_summary_free(&sum);
}

/* An executor of its own through the seam: runs the points in reverse, as a work queue with
 * out-of-order completion would record them; the summary is the same. */
static int reverse_execute(const bl_sweep_executor *self, bl_sweep *sw, bl_ctx *ctx)
{
    size_t idx[8], n = 0, i;
    while (bl_sweep_next_index(sw, &i))
        idx[n++] = i;
    while (n-- > 0) {
        bl_sweep_point p;
        int rc = bl_sweep_run_point(sw, ctx, idx[n], &p);
        if (rc == BL_OK)
            rc = bl_sweep_record(sw, ctx, idx[n], &p);
        if (rc != BL_OK)
            return rc;
    }
    return BL_OK;
}

static int forgetful_execute(const bl_sweep_executor *self, bl_sweep *sw, bl_ctx *ctx)
{
    size_t i;
    bl_sweep_point p;
    if (bl_sweep_next_index(sw, &i) && bl_sweep_run_point(sw, ctx, i, &p) == BL_OK) {
        int rc = bl_sweep_record(sw, ctx, i, &p);
        if (rc == BL_OK)
            rc = bl_sweep_record(sw, ctx, i, &p);   /* a second time: refused */
        return rc;
    }
    return BL_OK;
}

static void test_executor_seam(void **state)
{
    bl_ctx *ctx = *state;
    script s = make(4);
    s.loss[1] = 0.5;
    bl_sweep_hooks h = {.user = &s, .run = run_hook, .on_point = on_point_hook};
    bl_sweep_options o = {.points = 4};
    bl_sweep_executor rev = {"reverse", reverse_execute, NULL};
    bl_sweep_summary sum;
    BL_ASSERT_OK(ctx, bl_sweep_run(ctx, &o, &h, &rev, &sum));
    assert_int_equal(s.seen[0], 3);
    assert_int_equal(sum.best, 1);
    assert_true(sum.points[2].score == 3.0);
    bl_sweep_summary_free(&sum);

    s = make(4);
    bl_sweep_executor bad = {"forgetful", forgetful_execute, NULL};
    BL_ASSERT_ERR(ctx, BL_EINVAL, "recorded already", bl_sweep_run(ctx, &o, &h, &bad, &sum));
    bl_sweep_summary_free(&sum);
    BL_ASSERT_ERR(ctx, BL_EINVAL, "run hook", bl_sweep_run(ctx, &o, &(bl_sweep_hooks){0}, NULL,
                                                           &sum));
    bl_sweep_summary_free(&sum);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_order),
        cmocka_unit_test(test_order_and_failed_point),
        cmocka_unit_test(test_interrupt_stops),
        cmocka_unit_test(test_best_ties_and_target),
        cmocka_unit_test(test_score_hook),
        cmocka_unit_test(test_resume_hook),
        cmocka_unit_test(test_executor_seam),
    };
    return cmocka_run_group_tests(tests, ctx_setup, ctx_teardown);
}

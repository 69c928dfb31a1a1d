/* A data-parallel step (engine/data_parallel.h) when one rank fails: the failing rank still
 * joins the step's first sum (the others wait in it), with its failure flagged, and returns its
 * own error; a rank that learns there of another's failure ends the run with BL_EIO. Neither
 * goes on to the gradient sum. A fake reducer stands for the other rank. */
#include <stdlib.h>
#include <string.h>

#include "engine/data_parallel.h"
#include "testutil.h"

typedef struct fake {
    bl_reducer red;
    int f64_calls, f32_calls;
    double other_failed;  /* what the other rank adds to the last value of the f64 sum */
    double seen_failed;   /* this rank's flag, as it came to the sum */
} fake;

static int sum_f64(const bl_reducer *self, bl_ctx *ctx, double *buf, size_t n)
{
    (void)ctx;
    fake *f = self->state;
    f->f64_calls++;
    f->seen_failed = buf[n - 1];
    buf[n - 1] += f->other_failed;
    return BL_OK;
}

static int sum_f32(const bl_reducer *self, bl_ctx *ctx, float *buf, size_t n)
{
    (void)ctx;
    (void)buf;
    (void)n;
    fake *f = self->state;
    f->f32_calls++;
    return BL_OK;
}

static void fake_init(fake *f, double other_failed)
{
    memset(f, 0, sizeof *f);
    f->red = (bl_reducer){.size = sizeof(bl_reducer), .ranks = 2, .rank = 0,
                          .sum_f32 = sum_f32, .sum_f64 = sum_f64, .state = f};
    f->other_failed = other_failed;
}

enum { IN = 3, B = 16 };

/* A 3 → 2 linear net reserved for `rows` samples. */
static bl_net *small_net(bl_test_env *env, int64_t rows)
{
    bl_shape in = {.ndim = 1, .dim = {IN}};
    bl_net *net = NULL;
    bl_layer *lin = NULL;
    BL_ASSERT_OK(env->ctx, bl_net_new(env->ctx, env->dev, &in, &net));
    BL_ASSERT_OK(env->ctx, bl_linear(env->ctx, 2, true, &lin));
    BL_ASSERT_OK(env->ctx, bl_net_add(env->ctx, net, lin));
    BL_ASSERT_OK(env->ctx, bl_net_build(env->ctx, net, BL_LOSS_MSE, 1));
    BL_ASSERT_OK(env->ctx, bl_net_reserve(env->ctx, net, rows));
    return net;
}

static int step(bl_test_env *env, fake *f, bl_net *net)
{
    static float x[B * IN], y[B * 2];
    for (int i = 0; i < B * IN; i++)
        x[i] = (float)(i % 7) * 0.1f;
    bl__dp_step st = {false, 1.0};
    double loss = 0;
    return bl__dp_gradients(env->ctx, &f->red, net, x, y, IN, 2 * sizeof(float), B, 0, NULL,
                            &st, &loss);
}

/* This rank's share (8 rows) exceeds what its net holds (4): its forward fails. */
static void test_failing_rank_joins_the_sum(void **state)
{
    bl_test_env *env = *state;
    bl_net *net = small_net(env, 4);
    fake f;
    fake_init(&f, 0);
    assert_int_equal(step(env, &f, net), BL_ESHAPE);
    assert_int_equal(f.f64_calls, 1);
    assert_true(f.seen_failed == 1.0);
    assert_int_equal(f.f32_calls, 0);
    bl_net_free(net);
}

static void test_other_rank_failure_ends_the_step(void **state)
{
    bl_test_env *env = *state;
    bl_net *net = small_net(env, B);
    fake f;
    fake_init(&f, 1.0);
    assert_int_equal(step(env, &f, net), BL_EIO);
    assert_true(bl_test_contains(bl_errmsg(env->ctx), "another rank"));
    assert_int_equal(f.f64_calls, 1);
    assert_true(f.seen_failed == 0.0);
    assert_int_equal(f.f32_calls, 0);

    fake_init(&f, 0); /* no failure anywhere: both sums */
    assert_int_equal(step(env, &f, net), BL_OK);
    assert_int_equal(f.f64_calls, 1);
    assert_int_equal(f.f32_calls, 1);
    bl_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failing_rank_joins_the_sum),
        cmocka_unit_test(test_other_rank_failure_ends_the_step),
    };
    return cmocka_run_group_tests(tests, bl_test_setup, bl_test_teardown);
}

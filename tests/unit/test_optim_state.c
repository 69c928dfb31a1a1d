/* Optimizers beyond the rules: clipping, state save/load/reset, validation, divergence, and
 * that a step allocates nothing and SGD with momentum is one fused kernel launch. (Split from
 * test_optim.c; the fixture and the reference are in optimutil.c.) */
#include "optimutil.h"
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_clipping(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_SGD);
    c.clip_norm = 0.2;
    bl_optim *opt = NULL;
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
    double g[NP] = {3, 0, 0, 0, 0, 0, 4, 0}; /* norm 5 */
    set_params(fx, W0);
    set_grads(fx, g);
    double norm = 0;
    BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 1.0, &norm));
    assert_true(fabs(norm - 5.0) < 1e-6);
    double after[NP], w[NP];
    get_grads(fx, after);
    get_params(fx, w);
    for (int i = 0; i < NP; i++) {
        assert_true(fabs(after[i] - g[i] * 0.04) < 1e-7);
        assert_true(fabs(w[i] - (W0[i] - g[i] * 0.04)) < 1e-6);
    }
    /* Below the threshold nothing is scaled; without a norm pointer it still clips. */
    double small[NP] = {0.1, 0, 0, 0, 0, 0, 0, 0};
    set_grads(fx, small);
    BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 1.0, &norm));
    assert_true(fabs(norm - 0.1) < 1e-7);
    get_grads(fx, after);
    assert_true(after[0] == (double)(float)0.1);
    set_grads(fx, g);
    BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 1.0, NULL));
    get_grads(fx, after);
    assert_true(fabs(after[6] - 0.16) < 1e-7);
    bl_optim_free(opt);

    /* Every rule, 3 steps, with clipping active on some steps. */
    for (int k = 0; k < 5; k++) {
        c = bl_optim_defaults((bl_optim_kind)k);
        c.clip_norm = 0.5;
        if (k == BL_OPTIM_SGD)
            c.momentum = 0.9;
        check_rule(fx, &c, 0.05, 1e-6);
    }
}

/* Save after 2 steps, take 3 more, load and take the same 3 again: the same parameters. */
static void test_save_load_reset(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    for (int k = 0; k < 5; k++) {
        bl_optim_config c = bl_optim_defaults((bl_optim_kind)k);
        if (k == BL_OPTIM_SGD)
            c.momentum = 0.9;
        bl_optim *opt = NULL;
        BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
        size_t ns = bl_optim_state_size(opt);
        assert_int_equal(ns, (k == BL_OPTIM_SGD || k == BL_OPTIM_LARS) ? NP : 2 * NP);
        float saved[2 * NP], other[2 * NP];
        set_params(fx, W0);
        for (int s = 0; s < 2; s++) {
            set_grads(fx, G[s]);
            BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.01, NULL));
        }
        double w_saved[NP], first[NP], second[NP];
        int64_t steps = -1;
        BL_ASSERT_OK(ctx, bl_optim_save(ctx, opt, saved, &steps));
        assert_int_equal(steps, 2);
        get_params(fx, w_saved);
        for (int s = 0; s < 3; s++) {
            set_grads(fx, G[(s + 2) % 3]);
            BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.01, NULL));
        }
        get_params(fx, first);
        assert_int_equal(bl_optim_steps(opt), 5);
        BL_ASSERT_OK(ctx, bl_optim_save(ctx, opt, other, NULL));
        assert_true(memcmp(saved, other, ns * sizeof(float)) != 0);

        BL_ASSERT_OK(ctx, bl_optim_load(ctx, opt, saved, steps));
        assert_int_equal(bl_optim_steps(opt), 2);
        set_params(fx, w_saved);
        for (int s = 0; s < 3; s++) {
            set_grads(fx, G[(s + 2) % 3]);
            BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.01, NULL));
        }
        get_params(fx, second);
        assert_memory_equal(first, second, sizeof first);

        /* reset: zero state and count; stepping again follows a fresh optimizer's path */
        bl_optim_reset(opt);
        assert_int_equal(bl_optim_steps(opt), 0);
        BL_ASSERT_OK(ctx, bl_optim_save(ctx, opt, other, &steps));
        assert_int_equal(steps, 0);
        for (size_t i = 0; i < ns; i++)
            assert_true(other[i] == 0.0f);
        ref r;
        ref_init(&r, &c);
        set_params(fx, W0);
        for (int s = 0; s < 3; s++) {
            set_grads(fx, G[s]);
            BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.01, NULL));
            ref_step(&r, G[s], 0.01);
        }
        get_params(fx, first);
        assert_close(first, r.w, NP, 1e-6, "after reset");

        BL_ASSERT_ERR(ctx, BL_EINVAL, "step count", bl_optim_load(ctx, opt, saved, -1));
        bl_optim_free(opt);
    }
}

static void test_validation(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_SGD);
    c.momentum = 1.5;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer sgd: momentum must be in [0, 1), got 1.5",
                  bl_optim_validate(ctx, &c));
    bl_optim *opt = NULL;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "momentum", bl_optim_new(ctx, fx->net, &c, &opt));
    assert_null(opt);

    c = bl_optim_defaults(BL_OPTIM_SGD);
    c.lr = 0;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer sgd: lr must be > 0", bl_optim_validate(ctx, &c));
    c.lr = NAN;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer sgd: lr", bl_optim_validate(ctx, &c));
    c = bl_optim_defaults(BL_OPTIM_SGD);
    c.nesterov = true;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer sgd: nesterov needs momentum > 0",
                  bl_optim_validate(ctx, &c));
    c.momentum = 0.9;
    c.dampening = 0.1;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "nesterov needs dampening 0", bl_optim_validate(ctx, &c));
    c.nesterov = false;
    c.dampening = 2;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer sgd: dampening must be in [0, 1], got 2",
                  bl_optim_validate(ctx, &c));

    c = bl_optim_defaults(BL_OPTIM_ADAMW);
    c.weight_decay = -0.1;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer adamw: weight_decay must be >= 0 and finite, got -0.1",
                  bl_optim_validate(ctx, &c));
    c = bl_optim_defaults(BL_OPTIM_ADAM);
    c.beta1 = 1;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer adam: beta1 must be in [0, 1), got 1",
                  bl_optim_validate(ctx, &c));
    c = bl_optim_defaults(BL_OPTIM_LAMB);
    c.beta2 = -0.5;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer lamb: beta2", bl_optim_validate(ctx, &c));
    c = bl_optim_defaults(BL_OPTIM_LAMB);
    c.eps = 0;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer lamb: eps must be > 0", bl_optim_validate(ctx, &c));
    c = bl_optim_defaults(BL_OPTIM_LARS);
    c.clip_norm = -1;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer lars: clip_norm must be >= 0",
                  bl_optim_validate(ctx, &c));
    c = bl_optim_defaults(BL_OPTIM_LARS);
    c.trust_coefficient = 0;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer lars: trust_coefficient",
                  bl_optim_validate(ctx, &c));
    c = bl_optim_defaults(BL_OPTIM_LARS);
    c.momentum = -0.1;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "optimizer lars: momentum must be in [0, 1)",
                  bl_optim_validate(ctx, &c));
    c.kind = (bl_optim_kind)42;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "unknown kind 42", bl_optim_validate(ctx, &c));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "NULL", bl_optim_validate(ctx, NULL));

    /* fields an optimizer does not use are not checked */
    c = bl_optim_defaults(BL_OPTIM_ADAM);
    c.momentum = 7;
    BL_ASSERT_OK(ctx, bl_optim_validate(ctx, &c));

    /* a step with a bad learning rate changes nothing */
    c = bl_optim_defaults(BL_OPTIM_SGD);
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "optimizer sgd: step lr", bl_optim_step(ctx, opt, -1, NULL));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "step lr", bl_optim_step(ctx, opt, INFINITY, NULL));
    assert_int_equal(bl_optim_steps(opt), 0);
    assert_int_equal(bl_optim_get_config(opt)->kind, BL_OPTIM_SGD);
    assert_true(bl_optim_get_config(opt)->lr == 0.01);
    bl_optim_free(opt);
}

/* A non-finite gradient norm stops the step before any parameter changes. */
static void test_diverged(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_ADAM);
    c.clip_norm = 1;
    bl_optim *opt = NULL;
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
    double g[NP] = {0.1, NAN, 0, 0, 0, 0, 0, 0};
    set_params(fx, W0);
    set_grads(fx, g);
    double norm = 0;
    BL_ASSERT_ERR(ctx, BL_EDIVERGED, "optimizer adam: gradient norm is not finite",
                  bl_optim_step(ctx, opt, 0.01, &norm));
    assert_true(isnan(norm));
    assert_int_equal(bl_optim_steps(opt), 0);
    double w[NP];
    get_params(fx, w);
    for (int i = 0; i < NP; i++)
        assert_true(w[i] == (double)(float)W0[i]);
    bl_optim_free(opt);
}

/* ---- launch counting: wrap the device's operation table ---------------------------------- */

static const bl_device_ops *real_ops;
static int n_sgd_update, n_other;

static void c_sgd_update(bl_device *dev, int64_t n, float lr, float momentum, float dampening,
                         bool nesterov, float weight_decay, const float *grad, float *velocity,
                         float *param)
{
    n_sgd_update++;
    real_ops->sgd_update(dev, n, lr, momentum, dampening, nesterov, weight_decay, grad, velocity,
                         param);
}
static void c_axpy(bl_device *dev, int64_t n, float alpha, const float *x, float *y)
{
    n_other++;
    real_ops->axpy(dev, n, alpha, x, y);
}
static void c_scale(bl_device *dev, int64_t n, float alpha, float *x)
{
    n_other++;
    real_ops->scale(dev, n, alpha, x);
}
static void c_sumsq(bl_device *dev, int64_t n, const float *x, double *out)
{
    n_other++;
    real_ops->sumsq(dev, n, x, out);
}
static void c_dot(bl_device *dev, int64_t n, const float *x, const float *y, double *out)
{
    n_other++;
    real_ops->dot(dev, n, x, y, out);
}
static void c_fill(bl_device *dev, int64_t n, float value, float *x)
{
    n_other++;
    real_ops->fill(dev, n, value, x);
}
static int c_copy(bl_device *dev, void *dst, const void *src, size_t bytes)
{
    n_other++;
    return real_ops->copy(dev, dst, src, bytes);
}
static void c_adam_direction(bl_device *dev, int64_t n, float beta1, float beta2, float eps,
                             float bias1, float bias2, float weight_decay, const float *grad,
                             const float *param, float *m, float *v, float *dir)
{
    n_other++;
    real_ops->adam_direction(dev, n, beta1, beta2, eps, bias1, bias2, weight_decay, grad, param,
                             m, v, dir);
}

/* SGD with momentum, no clipping, no norm asked: exactly one sgd_update over all parameters. */
static void test_sgd_momentum_is_one_fused_pass(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    bl_device *dev = fx->env->dev;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_SGD);
    c.momentum = 0.9;
    c.weight_decay = 1e-4;
    c.nesterov = true;
    bl_optim *opt = NULL;
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
    set_params(fx, W0);
    set_grads(fx, G[0]);

    real_ops = dev->ops;
    bl_device_ops counting = *real_ops;
    counting.sgd_update = c_sgd_update;
    counting.axpy = c_axpy;
    counting.scale = c_scale;
    counting.sumsq = c_sumsq;
    counting.dot = c_dot;
    counting.fill = c_fill;
    counting.copy = c_copy;
    counting.adam_direction = c_adam_direction;
    dev->ops = &counting;
    n_sgd_update = n_other = 0;
    for (int s = 0; s < 3; s++)
        BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.1, NULL));
    int fused = n_sgd_update, other = n_other;
    n_sgd_update = n_other = 0;
    double norm;
    BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.1, &norm)); /* asked for: one sumsq more */
    int with_norm_sgd = n_sgd_update, with_norm_other = n_other;
    dev->ops = real_ops;

    assert_int_equal(fused, 3);
    assert_int_equal(other, 0);
    assert_int_equal(with_norm_sgd, 1);
    assert_int_equal(with_norm_other, 1);
    bl_optim_free(opt);
}

/* No optimizer allocates in step: device allocation counters are unchanged across steps. */
static void test_step_allocates_nothing(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    bl_device *dev = fx->env->dev;
    for (int k = 0; k < 5; k++) {
        bl_optim_config c = bl_optim_defaults((bl_optim_kind)k);
        c.clip_norm = 0.3;
        bl_optim *opt = NULL;
        BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
        size_t count = dev->alloc_count, bytes = dev->bytes_in_use, peak = dev->peak_bytes;
        set_params(fx, W0);
        for (int s = 0; s < 3; s++) {
            set_grads(fx, G[s]);
            double norm;
            BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.01, &norm));
        }
        assert_int_equal(dev->alloc_count, count);
        assert_int_equal(dev->bytes_in_use, bytes);
        assert_int_equal(dev->peak_bytes, peak);
        bl_optim_free(opt);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clipping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diverged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sgd_momentum_is_one_fused_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_allocates_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Optimizers: every rule against a double-precision reference written from optim.h (and
 * torch.optim), Nesterov, dampening, AdamW vs Adam decay, the LARS and LAMB trust ratios with
 * their no-decay and zero-norm paths. Clipping, state, validation and launch counts are in
 * test_optim_state.c; the fixture and the reference in optimutil.c. */
#include "optimutil.h"
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tests ------------------------------------------------------------------------------- */

static void test_net_layout(void **state)
{
    fixture *fx = *state;
    size_t nseg = 0;
    const bl_param_segment *seg = bl_net_segments(fx->net, &nseg);
    assert_int_equal(bl_net_num_params(fx->net), NP);
    assert_int_equal(nseg, 2);
    assert_int_equal(seg[0].offset, 0);
    assert_int_equal(seg[0].count, W_END);
    assert_true(seg[0].decay);
    assert_int_equal(seg[1].offset, W_END);
    assert_int_equal(seg[1].count, NP - W_END);
    assert_false(seg[1].decay);
}

static void test_defaults_and_names(void **state)
{
    bl_ctx *ctx = ((fixture *)*state)->env->ctx;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_SGD);
    assert_true(c.lr == 0.01 && c.momentum == 0 && c.weight_decay == 0 && c.clip_norm == 0);
    c = bl_optim_defaults(BL_OPTIM_ADAM);
    assert_true(c.lr == 0.001 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8 &&
                c.weight_decay == 0);
    c = bl_optim_defaults(BL_OPTIM_ADAMW);
    assert_true(c.lr == 0.001 && c.weight_decay == 0.01 && c.eps == 1e-8);
    c = bl_optim_defaults(BL_OPTIM_LARS);
    assert_true(c.lr == 0.1 && c.momentum == 0.9 && c.trust_coefficient == 0.001 &&
                c.weight_decay == 5e-4);
    c = bl_optim_defaults(BL_OPTIM_LAMB);
    assert_true(c.lr == 0.001 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-6 &&
                c.weight_decay == 0.01);

    const char *names[] = {"sgd", "adam", "adamw", "lars", "lamb"};
    for (int k = 0; k < 5; k++) {
        bl_optim_kind kind;
        BL_ASSERT_OK(ctx, bl_optim_parse(ctx, names[k], &kind));
        assert_int_equal(kind, k);
        assert_string_equal(bl_optim_name(kind), names[k]);
        bl_optim_config d = bl_optim_defaults(kind);
        assert_int_equal(d.kind, kind);
        BL_ASSERT_OK(ctx, bl_optim_validate(ctx, &d));
    }
    bl_optim_kind kind;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "unknown optimizer \"rmsprop\"",
                  bl_optim_parse(ctx, "rmsprop", &kind));
    assert_true(bl_test_contains(bl_errmsg(ctx), "sgd, adam, adamw, lars or lamb"));
}

/* Hand-computed: SGD, momentum 0.9, lr 0.1, g = 1 every step, from w = 1 (bias):
 * v = 1, 1.9, 2.71; w = 0.9, 0.71, 0.439. And Adam's first step moves by lr·g/(|g| + ε). */
static void test_hand_values(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_SGD);
    c.lr = 0.1;
    c.momentum = 0.9;
    bl_optim *opt = NULL;
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
    const double ones[NP] = {1, 1, 1, 1, 1, 1, 1, 1};
    set_params(fx, ones);
    const double want[3] = {0.9, 0.71, 0.439};
    for (int k = 0; k < 3; k++) {
        set_grads(fx, ones);
        BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.1, NULL));
        double w[NP];
        get_params(fx, w);
        for (int i = 0; i < NP; i++)
            assert_true(fabs(w[i] - want[k]) < 1e-6);
    }
    assert_int_equal(bl_optim_state_size(opt), NP);
    bl_optim_free(opt);

    c = bl_optim_defaults(BL_OPTIM_ADAM);
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
    set_params(fx, W0);
    set_grads(fx, G[0]);
    BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.01, NULL));
    double w[NP];
    get_params(fx, w);
    for (int i = 0; i < NP; i++) {
        double want_i = W0[i] - 0.01 * G[0][i] / (fabs(G[0][i]) + 1e-8);
        assert_true(fabs(w[i] - want_i) < 1e-6);
    }
    assert_int_equal(bl_optim_state_size(opt), 2 * NP);
    bl_optim_free(opt);
}

static void test_sgd(void **state)
{
    fixture *fx = *state;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_SGD);
    check_rule(fx, &c, 0.1, 1e-6); /* plain */
    c.weight_decay = 0.1;
    check_rule(fx, &c, 0.1, 1e-6); /* plain with decay (no state) */
    c.momentum = 0.9;
    c.weight_decay = 0.01;
    check_rule(fx, &c, 0.1, 1e-6); /* momentum, decay on every tensor as in PyTorch */
}

static void test_sgd_dampening(void **state)
{
    fixture *fx = *state;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_SGD);
    c.momentum = 0.9;
    c.dampening = 0.5;
    c.weight_decay = 1e-3;
    check_rule(fx, &c, 0.1, 1e-6);
    /* dampening applies from step 2 on; momentum 0 ignores it (as torch.optim.SGD) */
    c.momentum = 0;
    check_rule(fx, &c, 0.1, 1e-6);
}

static void test_sgd_nesterov(void **state)
{
    fixture *fx = *state;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_SGD);
    c.momentum = 0.9;
    c.nesterov = true;
    c.weight_decay = 1e-3;
    check_rule(fx, &c, 0.1, 1e-6);
}

static void test_adam(void **state)
{
    fixture *fx = *state;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_ADAM);
    check_rule(fx, &c, 0.01, 1e-6);
    c.weight_decay = 0.1;
    c.beta1 = 0.8;
    c.beta2 = 0.99;
    check_rule(fx, &c, 0.01, 1e-6);
}

static void test_adamw(void **state)
{
    fixture *fx = *state;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_ADAMW);
    check_rule(fx, &c, 0.01, 1e-6);
    c.weight_decay = 0.5;
    check_rule(fx, &c, 0.01, 1e-6);
}

/* With the same decay, Adam (L2 in the gradient) and AdamW (decoupled) differ; with none
 * they agree exactly. */
static void test_adam_vs_adamw_decay(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    double out[2][2][NP]; /* [wd 0 | 0.5][adam | adamw] */
    for (int d = 0; d < 2; d++) {
        for (int k = 0; k < 2; k++) {
            bl_optim_config c = bl_optim_defaults(k ? BL_OPTIM_ADAMW : BL_OPTIM_ADAM);
            c.weight_decay = d ? 0.5 : 0.0;
            bl_optim *opt = NULL;
            BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
            set_params(fx, W0);
            for (int s = 0; s < 3; s++) {
                set_grads(fx, G[s]);
                BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.01, NULL));
            }
            get_params(fx, out[d][k]);
            bl_optim_free(opt);
        }
    }
    assert_memory_equal(out[0][0], out[0][1], sizeof out[0][0]);
    double max_diff = 0;
    for (int i = 0; i < NP; i++)
        max_diff = fmax(max_diff, fabs(out[1][0][i] - out[1][1][i]));
    assert_true(max_diff > 1e-3);
}

static void test_lars(void **state)
{
    fixture *fx = *state;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_LARS);
    check_rule(fx, &c, 0.1, 1e-6);
    c.trust_coefficient = 0.02;
    c.weight_decay = 0.01;
    check_rule(fx, &c, 0.5, 1e-6);
    c.nesterov = true;
    check_rule(fx, &c, 0.5, 1e-6);
}

/* First LARS step by hand: the weight gets λ·(g + wd·w) with λ = η|w|/(|g| + wd|w|); the bias
 * (decay = false) gets plain g, no decay, however large wd is. */
static void test_lars_trust_ratio_and_no_decay(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_LARS);
    c.trust_coefficient = 0.05;
    c.weight_decay = 0.3;
    bl_optim *opt = NULL;
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
    set_params(fx, W0);
    set_grads(fx, G[0]);
    BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 1.0, NULL));
    double w[NP];
    get_params(fx, w);
    double wn = 0, gn = 0;
    for (int i = 0; i < W_END; i++) {
        wn += W0[i] * W0[i];
        gn += G[0][i] * G[0][i];
    }
    wn = sqrt(wn);
    gn = sqrt(gn);
    double lambda = 0.05 * wn / (gn + 0.3 * wn);
    for (int i = 0; i < W_END; i++)
        assert_true(fabs(w[i] - (W0[i] - lambda * (G[0][i] + 0.3 * W0[i]))) < 1e-6);
    for (int i = W_END; i < NP; i++)
        assert_true(fabs(w[i] - (W0[i] - G[0][i])) < 1e-6);
    bl_optim_free(opt);

    /* Zero gradient on the weight: λ = 1, so the weight moves by the decay alone. */
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
    double g[NP] = {0, 0, 0, 0, 0, 0, 0.4, -0.1};
    set_params(fx, W0);
    set_grads(fx, g);
    BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 1.0, NULL));
    get_params(fx, w);
    for (int i = 0; i < W_END; i++)
        assert_true(fabs(w[i] - W0[i] * (1 - 0.3)) < 1e-6);
    bl_optim_free(opt);
}

static void test_lamb(void **state)
{
    fixture *fx = *state;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_LAMB);
    check_rule(fx, &c, 0.01, 1e-6);
    c.weight_decay = 0.2;
    c.beta1 = 0.5;
    check_rule(fx, &c, 0.05, 1e-6);
}

/* LAMB's trust ratio by hand on step 1 (u = sign(g) + wd·w up to ε), and its zero-norm
 * cases: |w| = 0 gives r = 1; |u| = 0 (no gradient, no decay: the bias) leaves w as is. */
static void test_lamb_trust_ratio(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    bl_optim_config c = bl_optim_defaults(BL_OPTIM_LAMB);
    c.weight_decay = 0.1;
    c.eps = 1e-12;
    bl_optim *opt = NULL;
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
    set_params(fx, W0);
    set_grads(fx, G[2]); /* G[2][4] = 0: u there is wd·w only */
    BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.1, NULL));
    double w[NP], u[NP];
    get_params(fx, w);
    double wn = 0, un = 0;
    for (int i = 0; i < W_END; i++) {
        double sign = G[2][i] > 0 ? 1 : G[2][i] < 0 ? -1 : 0;
        u[i] = sign + 0.1 * W0[i];
        wn += W0[i] * W0[i];
        un += u[i] * u[i];
    }
    double r = sqrt(wn) / sqrt(un);
    for (int i = 0; i < W_END; i++)
        assert_true(fabs(w[i] - (W0[i] - 0.1 * r * u[i])) < 1e-6);
    /* bias: no decay, u = sign(g), r = |b|/|u| */
    double bn = hypot(W0[6], W0[7]), bun = sqrt(2.0);
    for (int i = W_END; i < NP; i++) {
        double sign = G[2][i] > 0 ? 1 : -1;
        assert_true(fabs(w[i] - (W0[i] - 0.1 * (bn / bun) * sign)) < 1e-6);
    }
    bl_optim_free(opt);

    /* |w| = 0 on the weight; zero gradient on the bias. */
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, &c, &opt));
    double w0[NP] = {0, 0, 0, 0, 0, 0, 0.3, -0.2};
    double g[NP] = {0.1, -0.2, 0.3, 0.05, -0.15, 0.25, 0, 0};
    set_params(fx, w0);
    set_grads(fx, g);
    BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, 0.1, NULL));
    get_params(fx, w);
    for (int i = 0; i < W_END; i++)
        assert_true(fabs(w[i] - (-0.1 * (g[i] > 0 ? 1 : -1))) < 1e-6); /* r = 1 */
    assert_true(w[6] == (double)(float)0.3 && w[7] == (double)(float)-0.2);
    bl_optim_free(opt);
}

/* Clipping: the reported norm is the one before clipping; the gradient block is scaled to
 * clip_norm when larger, left alone when not; every rule sees the clipped gradient. */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_net_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hand_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sgd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sgd_dampening, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sgd_nesterov, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adam, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adamw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adam_vs_adamw_decay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lars_trust_ratio_and_no_decay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lamb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lamb_trust_ratio, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

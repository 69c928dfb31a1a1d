/* Optimizers: every rule against a double-precision reference written from optim.h (and
 * torch.optim), Nesterov, dampening, AdamW vs Adam decay, the LARS and LAMB trust ratios with
 * their no-decay and zero-norm paths, clipping, state save/load/reset, validation, and that a
 * step allocates nothing and SGD with momentum is one fused kernel launch. */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tiny net: one linear layer 3 → 2 with bias. Flat block: weight [2×3] (decay) at 0, then
 * bias [2] (no decay) at 6. */
#define NP 8
#define W_END 6

static const double W0[NP] = {0.5, -0.3, 0.8, -1.2, 0.7, 0.1, 0.05, -0.4};
static const double G[3][NP] = {
    {0.1, -0.2, 0.3, 0.05, -0.15, 0.25, 0.4, -0.1},
    {-0.05, 0.1, 0.2, -0.3, 0.12, -0.07, 0.3, 0.2},
    {0.2, 0.15, -0.1, 0.08, 0.0, -0.22, -0.25, 0.05},
};
static const double LR_FACTOR[3] = {1.0, 0.9, 0.8}; /* the lr changes between steps */

typedef struct fixture {
    bl_test_env *env;
    bl_net *net;
} fixture;

static int teardown(void **state);

static int setup(void **state)
{
    void *env = NULL;
    if (bl_test_setup(&env) != 0)
        return -1;
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) {
        bl_test_teardown(&env);
        return -1;
    }
    fx->env = env;
    *state = fx;
    bl_ctx *ctx = fx->env->ctx;
    bl_shape in = {.ndim = 1, .dim = {3}};
    bl_layer *lin = NULL;
    if (bl_net_new(ctx, fx->env->dev, &in, &fx->net) != BL_OK ||
        bl_linear(ctx, 2, true, &lin) != BL_OK || bl_net_add(ctx, fx->net, lin) != BL_OK ||
        bl_net_build(ctx, fx->net, BL_LOSS_MSE, 1) != BL_OK) {
        fprintf(stderr, "cannot build the test net: %s\n", bl_errmsg(ctx));
        teardown(state);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (fx) {
        bl_net_free(fx->net);
        void *env = fx->env;
        bl_test_teardown(&env);
        free(fx);
    }
    *state = NULL;
    return 0;
}

static void put(fixture *fx, float *dst, const double *src, size_t n)
{
    float tmp[NP];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (float)src[i];
    BL_ASSERT_OK(fx->env->ctx, bl_device_upload(fx->env->ctx, fx->env->dev, dst, tmp,
                                                n * sizeof(float)));
}

static void get(fixture *fx, double *dst, const float *src, size_t n)
{
    float tmp[NP];
    BL_ASSERT_OK(fx->env->ctx, bl_device_download(fx->env->ctx, fx->env->dev, tmp, src,
                                                  n * sizeof(float)));
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[i];
}

static void set_params(fixture *fx, const double *w) { put(fx, bl_net_params(fx->net), w, NP); }
static void set_grads(fixture *fx, const double *g) { put(fx, bl_net_grads(fx->net), g, NP); }
static void get_params(fixture *fx, double *w) { get(fx, w, bl_net_params(fx->net), NP); }
static void get_grads(fixture *fx, double *g) { get(fx, g, bl_net_grads(fx->net), NP); }

static void assert_close(const double *got, const double *want, size_t n, double tol,
                         const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        if (!(err <= tol * (1.0 + fabs(want[i]))))
            fail_msg("%s: value %zu is %.9g, expected %.9g (error %.3g)", what, i, got[i],
                     want[i], err);
    }
}

/* ---- the reference: double precision, one parameter at a time ----------------------------- */

typedef struct ref {
    bl_optim_config c;
    double w[NP], buf[NP], m[NP], v[NP];
    int t;
    double last_norm;
} ref;

static void ref_init(ref *r, const bl_optim_config *c)
{
    memset(r, 0, sizeof *r);
    r->c = *c;
    memcpy(r->w, W0, sizeof W0);
}

static double norm_of(const double *x, size_t lo, size_t hi)
{
    double s = 0;
    for (size_t i = lo; i < hi; i++)
        s += x[i] * x[i];
    return sqrt(s);
}

static void ref_step(ref *r, const double *g_in, double lr)
{
    const bl_optim_config *c = &r->c;
    double g[NP];
    memcpy(g, g_in, sizeof g);
    r->last_norm = norm_of(g, 0, NP);
    if (c->clip_norm > 0 && r->last_norm > c->clip_norm)
        for (int i = 0; i < NP; i++)
            g[i] *= c->clip_norm / r->last_norm;
    r->t++;
    const size_t seg_lo[2] = {0, W_END}, seg_hi[2] = {W_END, NP};
    const bool seg_decay[2] = {true, false};
    double bc1 = 1 - pow(c->beta1, r->t), bc2 = 1 - pow(c->beta2, r->t);

    switch (c->kind) {
    case BL_OPTIM_SGD: /* torch.optim.SGD */
        for (int i = 0; i < NP; i++) {
            double gp = g[i] + c->weight_decay * r->w[i], d = gp;
            if (c->momentum != 0) {
                r->buf[i] = r->t == 1 ? gp : c->momentum * r->buf[i] + (1 - c->dampening) * gp;
                d = c->nesterov ? gp + c->momentum * r->buf[i] : r->buf[i];
            }
            r->w[i] -= lr * d;
        }
        break;
    case BL_OPTIM_ADAM:
    case BL_OPTIM_ADAMW: /* torch.optim.Adam / AdamW (decay applied to w first) */
        for (int i = 0; i < NP; i++) {
            double gp = g[i];
            if (c->kind == BL_OPTIM_ADAMW)
                r->w[i] *= 1 - lr * c->weight_decay;
            else
                gp += c->weight_decay * r->w[i];
            r->m[i] = c->beta1 * r->m[i] + (1 - c->beta1) * gp;
            r->v[i] = c->beta2 * r->v[i] + (1 - c->beta2) * gp * gp;
            r->w[i] -= lr * (r->m[i] / bc1) / (sqrt(r->v[i] / bc2) + c->eps);
        }
        break;
    case BL_OPTIM_LARS:
        for (int s = 0; s < 2; s++) {
            double lambda = 1, wd = 0;
            if (seg_decay[s]) {
                double wn = norm_of(r->w, seg_lo[s], seg_hi[s]);
                double gn = norm_of(g, seg_lo[s], seg_hi[s]);
                if (wn > 0 && gn > 0)
                    lambda = c->trust_coefficient * wn / (gn + c->weight_decay * wn);
                wd = c->weight_decay;
            }
            for (size_t i = seg_lo[s]; i < seg_hi[s]; i++) {
                double gp = lambda * (g[i] + wd * r->w[i]);
                r->buf[i] = r->t == 1 ? gp : c->momentum * r->buf[i] + gp;
                double d = c->nesterov ? gp + c->momentum * r->buf[i] : r->buf[i];
                r->w[i] -= lr * d;
            }
        }
        break;
    case BL_OPTIM_LAMB:
        for (int s = 0; s < 2; s++) {
            double u[NP] = {0};
            for (size_t i = seg_lo[s]; i < seg_hi[s]; i++) {
                r->m[i] = c->beta1 * r->m[i] + (1 - c->beta1) * g[i];
                r->v[i] = c->beta2 * r->v[i] + (1 - c->beta2) * g[i] * g[i];
                u[i] = (r->m[i] / bc1) / (sqrt(r->v[i] / bc2) + c->eps);
                if (seg_decay[s])
                    u[i] += c->weight_decay * r->w[i];
            }
            double wn = norm_of(r->w, seg_lo[s], seg_hi[s]);
            double un = norm_of(u, seg_lo[s], seg_hi[s]);
            double ratio = (wn > 0 && un > 0) ? wn / un : 1;
            for (size_t i = seg_lo[s]; i < seg_hi[s]; i++)
                r->w[i] -= lr * ratio * u[i];
        }
        break;
    }
}

/* Runs 3 steps of `cfg` on the test net and compares with the reference after each. */
static void check_rule(fixture *fx, const bl_optim_config *cfg, double lr, double tol)
{
    bl_ctx *ctx = fx->env->ctx;
    bl_optim *opt = NULL;
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, cfg, &opt));
    ref r;
    ref_init(&r, cfg);
    set_params(fx, W0);
    char what[96];
    for (int k = 0; k < 3; k++) {
        set_grads(fx, G[k]);
        double norm = -1;
        BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, lr * LR_FACTOR[k], &norm));
        ref_step(&r, G[k], lr * LR_FACTOR[k]);
        double w[NP];
        get_params(fx, w);
        snprintf(what, sizeof what, "%s step %d", bl_optim_name(cfg->kind), k + 1);
        assert_close(w, r.w, NP, tol, what);
        assert_true(fabs(norm - r.last_norm) <= 1e-6 * r.last_norm);
    }
    assert_int_equal(bl_optim_steps(opt), 3);
    bl_optim_free(opt);
}

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
        cmocka_unit_test_setup_teardown(test_clipping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diverged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sgd_momentum_is_one_fused_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_allocates_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Image and normalization layers (conv2d, maxpool2d, batchnorm); their CPU kernels are tested
 * in test_image_kernels.c, a LeNet-like net built from them in test_lenet.c.
 *
 * Layers are checked three ways: forward against a naive double-precision reference,
 * backward (input AND parameter gradients) against CENTRAL finite differences of that double
 * reference, and the = / += gradient convention.
 *
 * Tolerances (elementwise, |got − want| ≤ atol + rtol·|want|):
 *   kernels and forward vs double reference:  atol 1e-5, rtol 1e-4 (float32 rounding of sums of
 *                                              tens of terms is ~1e-6)
 *   backward vs central differences:          atol 1e-4, rtol 1e-3, step h = 1e-6 on the double
 *                                              reference, loss L = Σ r·y with r = d_out
 *                                              (truncation ~h² and rounding ~1e-16/h are both
 *                                              far below the float32 error of the layer)
 * Max-pool inputs are distinct values at least 1e-3 apart, so a step of 1e-6 never changes a
 * window's winner.
 *
 * The device is the CPU: device pointers are host pointers, so tests read and write them
 * directly.
 */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FWD_ATOL 1e-5
#define FWD_RTOL 1e-4
#define GRAD_ATOL 1e-4
#define GRAD_RTOL 1e-3
#define FD_STEP 1e-6

/* ---- a layer driven without a net --------------------------------------------------------- */

typedef struct rig {
    bl_layer *layer;
    int64_t batch, in_n, out_n; /* in_n, out_n: per sample */
    size_t ws_n;
    float *x, *y, *dy, *dx;
} rig;

/* Sets the layer up on `in` at position `index` and binds freshly allocated memory for up to
 * `batch` samples; parameters and state come from the layer's init with `seed`. */
static void rig_open(bl_test_env *env, rig *r, bl_layer *layer, bl_shape in, int index,
                     int64_t batch, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    r->layer = layer;
    r->batch = batch;
    layer->in = in;
    layer->dev = env->dev;
    layer->index = index;
    snprintf(layer->name, sizeof layer->name, "rig%d", index);
    BL_ASSERT_OK(env->ctx, layer->ops->setup(layer, env->ctx));
    size_t off = 0;
    for (int t = 0; t < layer->n_param_tensors; t++) {
        assert_int_equal(layer->param[t].offset, off); /* references assume this layout */
        off += layer->param[t].count;
    }
    assert_int_equal(off, layer->n_params);
    layer->params = bl_test_dev_floats(env, layer->n_params);
    layer->grads = bl_test_dev_floats(env, layer->n_params);
    layer->state = bl_test_dev_floats(env, layer->n_state);
    r->ws_n = layer->ws_fixed + layer->ws_per_sample * (size_t)batch;
    layer->ws = bl_test_dev_floats(env, r->ws_n);
    bl_test_fill_value(layer->ws, r->ws_n, NAN); /* nothing may be read before it is written */
    layer->max_batch = batch;
    bl_test_fill_value(layer->params, layer->n_params, 0);
    bl_test_fill_value(layer->state, layer->n_state, 0);
    if (layer->ops->init) {
        bl_rng rng;
        bl_rng_seed(&rng, seed, BL_STREAM_INIT);
        layer->ops->init(layer, layer->params, layer->state, &rng);
    }
    r->in_n = bl_shape_numel(&layer->in);
    r->out_n = bl_shape_numel(&layer->out);
    r->x = bl_test_dev_floats(env, (size_t)(batch * r->in_n));
    r->dx = bl_test_dev_floats(env, (size_t)(batch * r->in_n));
    r->y = bl_test_dev_floats(env, (size_t)(batch * r->out_n));
    r->dy = bl_test_dev_floats(env, (size_t)(batch * r->out_n));
}

static void rig_close(bl_test_env *env, rig *r)
{
    bl_layer_free(r->layer);
    bl_test_release_all(env);
    memset(r, 0, sizeof *r);
}

/* Double-precision forward of a layer: y[batch × out] from x[batch × in] and params. */
typedef void (*ref_forward_fn)(const void *spec, int64_t batch, const double *x,
                               const double *params, double *y);

/* Σ r·y_ref(x, params) */
static double ref_loss(ref_forward_fn f, const void *spec, int64_t batch, const double *x,
                       const double *params, const double *r, double *y, size_t out_n)
{
    f(spec, batch, x, params, y);
    double s = 0;
    for (size_t i = 0; i < out_n; i++)
        s += r[i] * y[i];
    return s;
}

/* Central difference of ref_loss with respect to v[i], for every i < n. */
static void central_diff(ref_forward_fn f, const void *spec, int64_t batch, double *x,
                         double *params, const double *r, double *y, size_t out_n, double *v,
                         size_t n, double *grad)
{
    for (size_t i = 0; i < n; i++) {
        const double keep = v[i];
        v[i] = keep + FD_STEP;
        double lp = ref_loss(f, spec, batch, x, params, r, y, out_n);
        v[i] = keep - FD_STEP;
        double lm = ref_loss(f, spec, batch, x, params, r, y, out_n);
        v[i] = keep;
        grad[i] = (lp - lm) / (2 * FD_STEP);
    }
}

/* The full check on a bound rig: forward vs reference, backward vs central differences,
 * parameter gradients = then +=, and backward without d_in. Params are randomized in
 * [-1, 1] unless keep_params; x is uniform in [-1, 1], or distinct values when `distinct`. */
static void gradcheck(bl_test_env *env, rig *r, ref_forward_fn f, const void *spec,
                      bool distinct, bool keep_params, const char *label)
{
    bl_layer *L = r->layer;
    bl_ctx *ctx = env->ctx;
    const int64_t B = r->batch;
    const size_t xn = (size_t)(B * r->in_n), yn = (size_t)(B * r->out_n), pn = L->n_params;
    bl_rng rng;
    bl_rng_seed(&rng, 99, BL_STREAM_USER);
    if (distinct)
        bl_test_fill_distinct(r->x, xn, &rng);
    else
        bl_test_fill_uniform(r->x, xn, &rng, -1, 1);
    if (!keep_params)
        bl_test_fill_uniform(L->params, pn, &rng, -1, 1);
    bl_test_fill_uniform(r->dy, yn, &rng, -1, 1);

    double *xd = bl_test_host_doubles(xn);
    double *pd = bl_test_host_doubles(pn);
    double *rd = bl_test_host_doubles(yn);
    double *yd = bl_test_host_doubles(yn);
    double *gx = bl_test_host_doubles(xn);
    double *gp = bl_test_host_doubles(pn);
    bl_test_to_double(r->x, xd, xn);
    bl_test_to_double(L->params, pd, pn);
    bl_test_to_double(r->dy, rd, yn);
    char what[128];

    BL_ASSERT_OK(ctx, L->ops->forward(L, ctx, B, true, r->x, r->y));
    f(spec, B, xd, pd, yd);
    snprintf(what, sizeof what, "%s forward", label);
    bl_test_check_close(what, r->y, yd, yn, FWD_ATOL, FWD_RTOL);

    bl_test_fill_value(r->dx, xn, NAN);
    bl_test_fill_value(L->grads, pn, 12345.0f); /* accumulate = false must overwrite */
    BL_ASSERT_OK(ctx, L->ops->backward(L, ctx, B, false, r->x, r->y, r->dy, r->dx));
    central_diff(f, spec, B, xd, pd, rd, yd, yn, xd, xn, gx);
    central_diff(f, spec, B, xd, pd, rd, yd, yn, pd, pn, gp);
    snprintf(what, sizeof what, "%s d_in", label);
    bl_test_check_close(what, r->dx, gx, xn, GRAD_ATOL, GRAD_RTOL);
    snprintf(what, sizeof what, "%s param grads", label);
    bl_test_check_close(what, L->grads, gp, pn, GRAD_ATOL, GRAD_RTOL);

    /* accumulate = true adds the same gradient again; d_in is written, not added */
    float *g1 = malloc((pn ? pn : 1) * sizeof *g1), *dx1 = malloc(xn * sizeof *dx1);
    assert_non_null(g1);
    assert_non_null(dx1);
    memcpy(g1, L->grads, pn * sizeof *g1);
    memcpy(dx1, r->dx, xn * sizeof *dx1);
    BL_ASSERT_OK(ctx, L->ops->backward(L, ctx, B, true, r->x, r->y, r->dy, r->dx));
    for (size_t i = 0; i < pn; i++)
        gp[i] = 2.0 * g1[i];
    snprintf(what, sizeof what, "%s accumulated grads", label);
    bl_test_check_close(what, L->grads, gp, pn, 1e-6, 1e-6);
    snprintf(what, sizeof what, "%s d_in on accumulate", label);
    bl_test_check_equal_f(what, r->dx, dx1, xn);

    /* no d_in (the net's first trainable layer, at any index): the same parameter gradients */
    BL_ASSERT_OK(ctx, L->ops->backward(L, ctx, B, false, r->x, r->y, r->dy, NULL));
    snprintf(what, sizeof what, "%s grads without d_in", label);
    bl_test_check_equal_f(what, L->grads, g1, pn);
    free(g1), free(dx1), free(xd), free(pd), free(rd), free(yd), free(gx), free(gp);
}

/* ---- conv2d ------------------------------------------------------------------------------- */

typedef struct conv_spec {
    int64_t C, H, W, O, k, s, p;
    bool bias;
} conv_spec;

static int64_t conv_out(int64_t n, int64_t k, int64_t s, int64_t p)
{
    return (n + 2 * p - k) / s + 1;
}

static void conv_ref(const void *spec, int64_t batch, const double *x, const double *params,
                     double *y)
{
    const conv_spec *c = spec;
    const int64_t OH = conv_out(c->H, c->k, c->s, c->p), OW = conv_out(c->W, c->k, c->s, c->p);
    const int64_t K = c->C * c->k * c->k;
    const double *w = params, *b = params + c->O * K;
    for (int64_t n = 0; n < batch; n++)
        for (int64_t o = 0; o < c->O; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double s = c->bias ? b[o] : 0.0;
                    for (int64_t ci = 0; ci < c->C; ci++)
                        for (int64_t ki = 0; ki < c->k; ki++)
                            for (int64_t kj = 0; kj < c->k; kj++) {
                                int64_t ih = oh * c->s - c->p + ki, iw = ow * c->s - c->p + kj;
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W)
                                    continue;
                                s += w[o * K + (ci * c->k + ki) * c->k + kj] *
                                     x[((n * c->C + ci) * c->H + ih) * c->W + iw];
                            }
                    y[((n * c->O + o) * OH + oh) * OW + ow] = s;
                }
}

static void test_conv2d_gradcheck(void **state)
{
    bl_test_env *env = *state;
    static const conv_spec cases[] = {
        /* C  H  W  O  k  s  p  bias */
        {2, 5, 7, 3, 3, 1, 0, true},  /* stride 1, no padding, non-square */
        {2, 6, 5, 4, 3, 2, 1, true},  /* stride 2, padding 1 */
        {3, 4, 4, 2, 1, 1, 0, true},  /* 1×1: the direct path without im2col */
        {2, 5, 5, 2, 1, 2, 0, true},  /* 1×1 with stride 2 goes through im2col */
        {1, 7, 6, 2, 2, 2, 1, false}, /* even kernel, no bias */
        {2, 5, 5, 3, 5, 1, 2, true},  /* kernel as large as the input */
        {1, 9, 4, 2, 3, 3, 0, true},  /* stride 3, tall */
        {2, 4, 6, 3, 3, 1, 1, false}, /* "same" padding */
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const conv_spec *c = &cases[t];
        bl_layer *layer = NULL;
        BL_ASSERT_OK(env->ctx, bl_conv2d(env->ctx, c->O, c->k, c->s, c->p, c->bias, &layer));
        rig r;
        rig_open(env, &r, layer, (bl_shape){3, {c->C, c->H, c->W}}, 0, 3, 5);
        assert_int_equal(layer->out.ndim, 3);
        assert_int_equal(layer->out.dim[0], c->O);
        assert_int_equal(layer->out.dim[1], conv_out(c->H, c->k, c->s, c->p));
        assert_int_equal(layer->out.dim[2], conv_out(c->W, c->k, c->s, c->p));
        assert_int_equal(layer->n_params, c->O * c->C * c->k * c->k + (c->bias ? c->O : 0));
        char label[64];
        snprintf(label, sizeof label, "conv2d case %zu", t);
        gradcheck(env, &r, conv_ref, c, false, false, label);
        rig_close(env, &r);
    }
}

static void test_conv2d_init_follows_pytorch(void **state)
{
    bl_test_env *env = *state;
    bl_layer *layer = NULL;
    BL_ASSERT_OK(env->ctx, bl_conv2d(env->ctx, 4, 3, 1, 1, true, &layer));
    rig r;
    rig_open(env, &r, layer, (bl_shape){3, {2, 5, 5}}, 0, 1, 42);
    assert_string_equal(layer->param[0].name, "weight");
    assert_true(layer->param[0].decay);
    assert_int_equal(layer->param[0].fan_in, 18);
    assert_string_equal(layer->param[1].name, "bias");
    assert_false(layer->param[1].decay);
    /* weight then bias, each U(±1/sqrt(fan_in)) drawn in order from the init stream */
    bl_rng rng;
    bl_rng_seed(&rng, 42, BL_STREAM_INIT);
    const double bound = 1.0 / sqrt(18.0);
    for (size_t i = 0; i < layer->n_params; i++) {
        float want = (float)((2.0 * bl_rng_uniform(&rng) - 1.0) * bound);
        assert_float_equal(layer->params[i], want, 1e-7);
        assert_true(fabs(layer->params[i]) <= bound);
    }
    rig_close(env, &r);
}

/* ---- maxpool2d ---------------------------------------------------------------------------- */

typedef struct pool_spec {
    int64_t C, H, W, k, s;
} pool_spec;

static void pool_ref(const void *spec, int64_t batch, const double *x, const double *params,
                     double *y)
{
    (void)params;
    const pool_spec *p = spec;
    const int64_t OH = (p->H - p->k) / p->s + 1, OW = (p->W - p->k) / p->s + 1;
    for (int64_t q = 0; q < batch * p->C; q++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                double best = -INFINITY;
                for (int64_t ki = 0; ki < p->k; ki++)
                    for (int64_t kj = 0; kj < p->k; kj++) {
                        double v = x[(q * p->H + oh * p->s + ki) * p->W + ow * p->s + kj];
                        best = v > best ? v : best;
                    }
                y[(q * OH + oh) * OW + ow] = best;
            }
}

static void test_maxpool2d_gradcheck(void **state)
{
    bl_test_env *env = *state;
    static const pool_spec cases[] = {
        {2, 4, 6, 2, 2}, {1, 5, 7, 3, 1}, {3, 7, 5, 3, 2}, {2, 5, 5, 2, 1}, {1, 6, 6, 3, 3},
        {2, 5, 4, 1, 2},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const pool_spec *p = &cases[t];
        bl_layer *layer = NULL;
        BL_ASSERT_OK(env->ctx, bl_maxpool2d(env->ctx, p->k, p->s, &layer));
        rig r;
        rig_open(env, &r, layer, (bl_shape){3, {p->C, p->H, p->W}}, 0, 3, 1);
        assert_int_equal(layer->n_params, 0);
        assert_int_equal(layer->out.dim[1], (p->H - p->k) / p->s + 1);
        assert_int_equal(layer->out.dim[2], (p->W - p->k) / p->s + 1);
        char label[64];
        snprintf(label, sizeof label, "maxpool2d case %zu", t);
        gradcheck(env, &r, pool_ref, p, true, true, label);
        /* eval forward gives the same values */
        float *y_train = malloc((size_t)(r.batch * r.out_n) * sizeof(float));
        assert_non_null(y_train);
        memcpy(y_train, r.y, (size_t)(r.batch * r.out_n) * sizeof(float));
        BL_ASSERT_OK(env->ctx, layer->ops->forward(layer, env->ctx, r.batch, false, r.x, r.y));
        bl_test_check_equal_f("maxpool eval", r.y, y_train, (size_t)(r.batch * r.out_n));
        free(y_train);
        rig_close(env, &r);
    }
}

/* ---- batchnorm ---------------------------------------------------------------------------- */

typedef struct bn_spec {
    int64_t C, inner, ghost;
    double eps;
} bn_spec;

/* Training-mode batch norm in double, with ghost sub-batches; params = gamma [C], beta [C]. */
static void bn_ref(const void *spec, int64_t batch, const double *x, const double *params,
                   double *y)
{
    const bn_spec *b = spec;
    const int64_t C = b->C, inner = b->inner;
    const int64_t g = b->ghost > 0 && b->ghost < batch ? b->ghost : batch;
    for (int64_t s = 0; s < batch; s += g) {
        const int64_t nb = batch - s < g ? batch - s : g;
        for (int64_t c = 0; c < C; c++) {
            double sum = 0, sq = 0;
            for (int64_t o = s; o < s + nb; o++)
                for (int64_t i = 0; i < inner; i++)
                    sum += x[(o * C + c) * inner + i];
            const double mu = sum / (double)(nb * inner);
            for (int64_t o = s; o < s + nb; o++)
                for (int64_t i = 0; i < inner; i++) {
                    double d = x[(o * C + c) * inner + i] - mu;
                    sq += d * d;
                }
            const double is = 1.0 / sqrt(sq / (double)(nb * inner) + b->eps);
            for (int64_t o = s; o < s + nb; o++)
                for (int64_t i = 0; i < inner; i++) {
                    int64_t k = (o * C + c) * inner + i;
                    y[k] = (x[k] - mu) * is * params[c] + params[C + c];
                }
        }
    }
}

static void test_batchnorm_gradcheck(void **state)
{
    bl_test_env *env = *state;
    static const struct {
        bl_shape in;
        int64_t batch, ghost;
    } cases[] = {
        {{1, {5, 1, 1}}, 6, 0}, {{1, {5, 1, 1}}, 6, 2}, {{1, {5, 1, 1}}, 8, 3},
        {{1, {4, 1, 1}}, 7, 2}, /* last sub-batch of one sample: y = beta, no NaN */
        {{3, {3, 2, 3}}, 4, 0}, {{3, {3, 2, 3}}, 4, 2}, {{3, {3, 2, 3}}, 7, 3},
        {{3, {2, 3, 1}}, 5, 4}, {{3, {2, 2, 2}}, 3, 9}, /* ghost larger than the batch */
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        bl_layer *layer = NULL;
        BL_ASSERT_OK(env->ctx, bl_batchnorm(env->ctx, 0.1f, 1e-5f, cases[t].ghost, &layer));
        rig r;
        rig_open(env, &r, layer, cases[t].in, 0, cases[t].batch, 1);
        bn_spec spec = {cases[t].in.dim[0], 1, cases[t].ghost, (double)1e-5f};
        if (cases[t].in.ndim == 3)
            spec.inner = cases[t].in.dim[1] * cases[t].in.dim[2];
        assert_int_equal(layer->n_params, 2 * spec.C);
        assert_int_equal(layer->n_state, 2 * spec.C);
        char label[64];
        snprintf(label, sizeof label, "batchnorm case %zu", t);
        gradcheck(env, &r, bn_ref, &spec, false, false, label);
        rig_close(env, &r);
    }
}

static void test_batchnorm_init_and_eval_uses_running_stats(void **state)
{
    bl_test_env *env = *state;
    bl_layer *layer = NULL;
    BL_ASSERT_OK(env->ctx, bl_batchnorm(env->ctx, 0.1f, 1e-3f, 0, &layer));
    rig r;
    rig_open(env, &r, layer, (bl_shape){3, {3, 2, 2}}, 1, 4, 1);
    assert_string_equal(layer->param[0].name, "gamma");
    assert_false(layer->param[0].decay);
    assert_string_equal(layer->param[1].name, "beta");
    assert_false(layer->param[1].decay);
    for (int c = 0; c < 3; c++) {
        assert_float_equal(layer->params[c], 1.0f, 0);     /* gamma */
        assert_float_equal(layer->params[3 + c], 0.0f, 0); /* beta */
        assert_float_equal(layer->state[c], 0.0f, 0);      /* running mean */
        assert_float_equal(layer->state[3 + c], 1.0f, 0);  /* running var */
    }
    bl_rng rng;
    bl_rng_seed(&rng, 3, BL_STREAM_USER);
    bl_test_fill_uniform(layer->params, 6, &rng, -1, 1);
    const float rm[3] = {0.5f, -1.0f, 2.0f}, rv[3] = {0.25f, 4.0f, 1.0f};
    memcpy(layer->state, rm, sizeof rm);
    memcpy(layer->state + 3, rv, sizeof rv);
    const size_t n = 4 * 12;
    bl_test_fill_uniform(r.x, n, &rng, -3, 3);
    double *want = bl_test_host_doubles(n);
    for (size_t k = 0; k < n; k++) {
        size_t c = (k / 4) % 3;
        want[k] = (r.x[k] - rm[c]) / sqrt(rv[c] + 1e-3) * layer->params[c] + layer->params[3 + c];
    }
    BL_ASSERT_OK(env->ctx, layer->ops->forward(layer, env->ctx, 4, false, r.x, r.y));
    bl_test_check_close("bn eval", r.y, want, n, FWD_ATOL, FWD_RTOL);
    bl_test_check_equal_f("running mean untouched by eval", layer->state, rm, 3);
    bl_test_check_equal_f("running var untouched by eval", layer->state + 3, rv, 3);
    free(want);
    rig_close(env, &r);
}

/* PyTorch (BatchNorm1d, momentum 0.1): running = 0.9·running + 0.1·batch statistic, with the
 * unbiased variance. Worked by hand for two features and two steps:
 *   step 1  f0 = [1, 2, 3, 4]: mean 2.5, unbiased var 5/3 → rm 0.25, rv 0.9 + 1/6 = 1.0666667
 *           f1 = [2, 2, 2, 2]: mean 2,   var 0           → rm 0.2,  rv 0.9
 *   step 2  f0 = [0, 0, 2, 2]: mean 1,   var 4/3 → rm 0.325, rv 0.96 + 0.1333333 = 1.0933333
 *           f1 = [-1, 1, -1, 1]: mean 0, var 4/3 → rm 0.18,  rv 0.81 + 0.1333333 = 0.9433333 */
static void test_batchnorm_running_stats_match_pytorch(void **state)
{
    bl_test_env *env = *state;
    bl_layer *layer = NULL;
    BL_ASSERT_OK(env->ctx, bl_batchnorm(env->ctx, 0.1f, 1e-5f, 0, &layer));
    rig r;
    rig_open(env, &r, layer, (bl_shape){1, {2, 1, 1}}, 1, 4, 1);
    const float step1[8] = {1, 2, 2, 2, 3, 2, 4, 2}, step2[8] = {0, -1, 0, 1, 2, -1, 2, 1};
    memcpy(r.x, step1, sizeof step1);
    BL_ASSERT_OK(env->ctx, layer->ops->forward(layer, env->ctx, 4, true, r.x, r.y));
    const double want1[4] = {0.25, 0.2, 0.9 + 0.1 * 5.0 / 3.0, 0.9};
    bl_test_check_close("running stats after step 1", layer->state, want1, 4, 1e-6, 1e-6);
    /* the constant feature normalizes to beta = 0 */
    for (int o = 0; o < 4; o++)
        assert_float_equal(r.y[o * 2 + 1], 0.0f, 0);
    memcpy(r.x, step2, sizeof step2);
    BL_ASSERT_OK(env->ctx, layer->ops->forward(layer, env->ctx, 4, true, r.x, r.y));
    const double want2[4] = {0.325, 0.18, 0.9 * want1[2] + 0.4 / 3.0, 0.81 + 0.4 / 3.0};
    bl_test_check_close("running stats after step 2", layer->state, want2, 4, 1e-6, 1e-6);
    assert_float_equal(want2[2], 1.0933333, 1e-6);
    assert_float_equal(want2[3], 0.9433333, 1e-6);
    rig_close(env, &r);
}

/* Ghost batch 2 over a batch of 4, one feature x = [1, 3, 0, 4]:
 *   sub-batch [1, 3]: mean 2, biased var 1, unbiased 2 → rm 0.2,              rv 0.9 + 0.2 = 1.1
 *   sub-batch [0, 4]: mean 2, biased var 4, unbiased 8 → rm 0.18 + 0.2 = 0.38, rv 0.99 + 0.8 = 1.79
 *   y = [−1, 1]/sqrt(1 + eps) and [−2, 2]/sqrt(4 + eps) (gamma 1, beta 0). */
static void test_ghost_batchnorm_updates_per_sub_batch(void **state)
{
    bl_test_env *env = *state;
    bl_layer *layer = NULL;
    BL_ASSERT_OK(env->ctx, bl_batchnorm(env->ctx, 0.1f, 1e-5f, 2, &layer));
    rig r;
    rig_open(env, &r, layer, (bl_shape){1, {1, 1, 1}}, 1, 4, 1);
    const float x[4] = {1, 3, 0, 4};
    memcpy(r.x, x, sizeof x);
    BL_ASSERT_OK(env->ctx, layer->ops->forward(layer, env->ctx, 4, true, r.x, r.y));
    const double want_state[2] = {0.38, 1.79};
    bl_test_check_close("ghost running stats", layer->state, want_state, 2, 1e-6, 1e-6);
    const double e = (double)1e-5f;
    const double want_y[4] = {-1 / sqrt(1 + e), 1 / sqrt(1 + e), -2 / sqrt(4 + e), 2 / sqrt(4 + e)};
    bl_test_check_close("ghost y", r.y, want_y, 4, 1e-6, 1e-6);
    rig_close(env, &r);
}

/* ghost_batch = batch (and larger) is plain batch norm, bit for bit. */
static void test_ghost_batchnorm_full_equals_plain(void **state)
{
    bl_test_env *env = *state;
    const bl_shape shapes[2] = {{1, {6, 1, 1}}, {3, {3, 2, 2}}};
    const int64_t B = 6;
    for (int s = 0; s < 2; s++) {
        const int64_t ghosts[3] = {0, B, B + 5};
        const int64_t C = shapes[s].dim[0];
        const size_t n = (size_t)(B * bl_shape_numel(&shapes[s]));
        const size_t sizes[4] = {n, n, (size_t)(2 * C), (size_t)(2 * C)};
        static const char *names[4] = {"y", "dx", "grads", "running stats"};
        float *out[3][4]; /* y, dx, grads, state for each ghost value */
        for (int gi = 0; gi < 3; gi++) {
            bl_layer *layer = NULL;
            BL_ASSERT_OK(env->ctx, bl_batchnorm(env->ctx, 0.1f, 1e-5f, ghosts[gi], &layer));
            rig r;
            rig_open(env, &r, layer, shapes[s], 0, B, 1);
            bl_rng rng;
            bl_rng_seed(&rng, 7, BL_STREAM_USER);
            bl_test_fill_uniform(r.x, n, &rng, -1, 1);
            bl_test_fill_uniform(r.dy, n, &rng, -1, 1);
            bl_test_fill_uniform(layer->params, layer->n_params, &rng, 0.5f, 1.5f);
            BL_ASSERT_OK(env->ctx, layer->ops->forward(layer, env->ctx, B, true, r.x, r.y));
            BL_ASSERT_OK(env->ctx,
                         layer->ops->backward(layer, env->ctx, B, false, r.x, r.y, r.dy, r.dx));
            const float *src[4] = {r.y, r.dx, layer->grads, layer->state};
            for (int k = 0; k < 4; k++) {
                out[gi][k] = malloc(sizes[k] * sizeof(float));
                assert_non_null(out[gi][k]);
                memcpy(out[gi][k], src[k], sizes[k] * sizeof(float));
            }
            rig_close(env, &r);
        }
        for (int gi = 1; gi < 3; gi++)
            for (int k = 0; k < 4; k++)
                bl_test_check_equal_f(names[k], out[gi][k], out[0][k], sizes[k]);
        for (int gi = 0; gi < 3; gi++)
            for (int k = 0; k < 4; k++)
                free(out[gi][k]);
    }
}

/* ---- errors ------------------------------------------------------------------------------- */

/* Runs setup of `layer` (named `name`) on `in` and expects `code` with both needles. */
static void expect_setup_error(bl_test_env *env, bl_layer *layer, const char *name, bl_shape in,
                               int code, const char *needle1, const char *needle2)
{
    layer->in = in;
    layer->dev = env->dev;
    layer->index = 1;
    snprintf(layer->name, sizeof layer->name, "%s", name);
    bl_clear_error(env->ctx);
    BL_ASSERT_ERR(env->ctx, code, needle1, layer->ops->setup(layer, env->ctx));
    if (!bl_test_contains(bl_errmsg(env->ctx), needle2))
        fail_msg("message \"%s\" lacks \"%s\"", bl_errmsg(env->ctx), needle2);
    if (!bl_test_contains(bl_errmsg(env->ctx), name))
        fail_msg("message \"%s\" does not name the layer %s", bl_errmsg(env->ctx), name);
    bl_layer_free(layer);
}

static void test_bad_arguments_and_shapes(void **state)
{
    bl_test_env *env = *state;
    bl_ctx *ctx = env->ctx;
    bl_layer *l = NULL;

    /* zero and negative sizes */
    BL_ASSERT_ERR(ctx, BL_EINVAL, "out_channels", bl_conv2d(ctx, 0, 3, 1, 0, true, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "kernel", bl_conv2d(ctx, 4, 0, 1, 0, true, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "stride", bl_conv2d(ctx, 4, 3, -1, 0, true, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "padding", bl_conv2d(ctx, 4, 3, 1, -2, true, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "conv2d", bl_conv2d(ctx, -4, 3, 1, 0, true, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "kernel", bl_maxpool2d(ctx, 0, 2, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "stride", bl_maxpool2d(ctx, 2, 0, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "maxpool2d", bl_maxpool2d(ctx, -2, 2, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "ghost_batch", bl_batchnorm(ctx, 0.1f, 1e-5f, -1, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "momentum", bl_batchnorm(ctx, -0.1f, 1e-5f, 0, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "momentum", bl_batchnorm(ctx, 1.5f, 1e-5f, 0, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "momentum", bl_batchnorm(ctx, NAN, 1e-5f, 0, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "eps", bl_batchnorm(ctx, 0.1f, 0.0f, 0, &l));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "eps", bl_batchnorm(ctx, 0.1f, -1e-5f, 0, &l));
    assert_null(l);

    /* conv2d on a [F] input */
    BL_ASSERT_OK(ctx, bl_conv2d(ctx, 4, 3, 1, 0, true, &l));
    expect_setup_error(env, l, "convF", (bl_shape){1, {10, 1, 1}}, BL_ESHAPE, "conv2d", "[10]");
    /* kernel larger than the padded input */
    BL_ASSERT_OK(ctx, bl_conv2d(ctx, 4, 5, 1, 0, true, &l));
    expect_setup_error(env, l, "convK", (bl_shape){3, {1, 3, 3}}, BL_ESHAPE, "[1, 3, 3]", "5x5");
    BL_ASSERT_OK(ctx, bl_conv2d(ctx, 4, 6, 1, 1, true, &l));
    expect_setup_error(env, l, "convP", (bl_shape){3, {2, 9, 3}}, BL_ESHAPE, "[2, 9, 3]",
                       "padded by 1");
    /* zero-sized input dimension */
    BL_ASSERT_OK(ctx, bl_conv2d(ctx, 4, 1, 1, 0, true, &l));
    expect_setup_error(env, l, "convZ", (bl_shape){3, {1, 0, 3}}, BL_ESHAPE, "conv2d", "[1, 0, 3]");
    /* a kernel that fits only thanks to the padding is fine */
    BL_ASSERT_OK(ctx, bl_conv2d(ctx, 4, 5, 1, 1, true, &l));
    l->in = (bl_shape){3, {1, 3, 3}};
    l->dev = env->dev;
    BL_ASSERT_OK(ctx, l->ops->setup(l, ctx));
    assert_int_equal(l->out.dim[1], 1);
    bl_layer_free(l);

    BL_ASSERT_OK(ctx, bl_maxpool2d(ctx, 2, 2, &l));
    expect_setup_error(env, l, "poolF", (bl_shape){1, {12, 1, 1}}, BL_ESHAPE, "maxpool2d", "[12]");
    BL_ASSERT_OK(ctx, bl_maxpool2d(ctx, 3, 1, &l));
    expect_setup_error(env, l, "poolK", (bl_shape){3, {2, 2, 5}}, BL_ESHAPE, "[2, 2, 5]", "3x3");
    BL_ASSERT_OK(ctx, bl_batchnorm(ctx, 0.1f, 1e-5f, 0, &l));
    expect_setup_error(env, l, "bnZ", (bl_shape){1, {0, 1, 1}}, BL_ESHAPE, "batchnorm", "[0]");
    BL_ASSERT_OK(ctx, bl_batchnorm(ctx, 0.1f, 1e-5f, 0, &l));
    expect_setup_error(env, l, "bn2", (bl_shape){2, {3, 4, 1}}, BL_ESHAPE, "batchnorm", "[3, 4]");
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_gradcheck),
        cmocka_unit_test(test_conv2d_init_follows_pytorch),
        cmocka_unit_test(test_maxpool2d_gradcheck),
        cmocka_unit_test(test_batchnorm_gradcheck),
        cmocka_unit_test(test_batchnorm_init_and_eval_uses_running_stats),
        cmocka_unit_test(test_batchnorm_running_stats_match_pytorch),
        cmocka_unit_test(test_ghost_batchnorm_updates_per_sub_batch),
        cmocka_unit_test(test_ghost_batchnorm_full_equals_plain),
        cmocka_unit_test(test_bad_arguments_and_shapes),
    };
    return cmocka_run_group_tests(tests, bl_test_setup, bl_test_teardown);
}

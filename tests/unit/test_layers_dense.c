/* Dense layers (linear, activations, dropout, flatten): backward against central finite
 * differences, and the gradient conventions (parameter gradients written or accumulated, input
 * gradients always written, d_in = NULL allowed).
 *
 * Method: each layer is driven through its bl_layer_ops exactly as the net drives it. The loss
 * is L = Σ r·y for a fixed random r, summed in double over the float forward output, so that
 * ∂L/∂y = r is what backward receives. For every input and every parameter element,
 * the central difference (L(θ+ε) − L(θ−ε)) / 2ε with ε = 1e-2 is compared with backward's
 * gradient g: |g − fd| ≤ 2e-3·(1 + |fd|). Float rounding of the forward contributes about
 * 1e-7·|y|/ε ≈ 1e-5 and the truncation error ε²·f'''/6 about 2e-5, so the bound has a wide
 * margin while a wrong gradient (a missing term, a transposed product) misses it by far.
 * ReLU inputs are kept at |x| ≥ 0.05 so that x ± ε never crosses the kink.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define EPS 1e-2f
#define TOL 2e-3

typedef struct harness {
    bl_test_env *env;
    bl_layer *layer;
    int64_t batch;
    size_t n_in, n_out;
    float *params, *grads, *state, *ws;
    float *x, *y, *r, *dx; /* device memory (host memory on the CPU device) */
} harness;

static float *dalloc(harness *h, size_t n)
{
    void *p;
    BL_ASSERT_OK(h->env->ctx, bl_device_alloc(h->env->ctx, h->env->dev,
                                              (n ? n : 1) * sizeof(float), &p));
    return p;
}

static void drelease(harness *h, float *p, size_t n)
{
    bl_device_release(h->env->dev, p, (n ? n : 1) * sizeof(float));
}

/* Sets the layer up on `in` as bl_net_add and bl_net_build would, with random x and r. */
static void harness_init(harness *h, bl_test_env *env, bl_layer *layer, bl_shape in,
                         int64_t batch, uint64_t seed)
{
    memset(h, 0, sizeof *h);
    h->env = env;
    h->layer = layer;
    h->batch = batch;
    layer->in = in;
    layer->dev = env->dev;
    if (!layer->name[0])
        strcpy(layer->name, "under_test");
    BL_ASSERT_OK(env->ctx, layer->ops->setup(layer, env->ctx));
    h->n_in = (size_t)(bl_shape_numel(&in) * batch);
    h->n_out = (size_t)(bl_shape_numel(&layer->out) * batch);
    h->params = dalloc(h, layer->n_params);
    h->grads = dalloc(h, layer->n_params);
    h->state = dalloc(h, layer->n_state);
    h->ws = dalloc(h, layer->ws_per_sample * (size_t)batch + layer->ws_fixed);
    h->x = dalloc(h, h->n_in);
    h->y = dalloc(h, h->n_out);
    h->r = dalloc(h, h->n_out);
    h->dx = dalloc(h, h->n_in);
    layer->params = h->params;
    layer->grads = h->grads;
    layer->state = h->state;
    layer->ws = h->ws;
    layer->max_batch = batch;
    layer->seed = seed * 7919 + 1;
    bl_rng rng;
    bl_rng_seed(&rng, seed, BL_STREAM_INIT);
    memset(h->params, 0, layer->n_params * sizeof(float));
    if (layer->ops->init)
        layer->ops->init(layer, h->params, h->state, &rng);
    bl_rng_seed(&rng, seed, BL_STREAM_USER);
    for (size_t i = 0; i < h->n_in; i++)
        h->x[i] = (float)bl_rng_normal(&rng);
    for (size_t i = 0; i < h->n_out; i++)
        h->r[i] = (float)bl_rng_normal(&rng);
}

static void harness_free(harness *h)
{
    drelease(h, h->params, h->layer->n_params);
    drelease(h, h->grads, h->layer->n_params);
    drelease(h, h->state, h->layer->n_state);
    drelease(h, h->ws, h->layer->ws_per_sample * (size_t)h->batch + h->layer->ws_fixed);
    drelease(h, h->x, h->n_in);
    drelease(h, h->y, h->n_out);
    drelease(h, h->r, h->n_out);
    drelease(h, h->dx, h->n_in);
    bl_layer_free(h->layer);
}

/* L = Σ r·y in double after a training forward; the stochastic counter is rewound first, so
 * every evaluation uses the same dropout mask. */
static double loss(harness *h)
{
    h->layer->counter = 0;
    BL_ASSERT_OK(h->env->ctx, h->layer->ops->forward(h->layer, h->env->ctx, h->batch, true,
                                                     h->x, h->y));
    double s = 0.0;
    for (size_t i = 0; i < h->n_out; i++)
        s += (double)h->r[i] * h->y[i];
    return s;
}

static void backward(harness *h, bool accumulate, float *dx)
{
    loss(h);
    BL_ASSERT_OK(h->env->ctx, h->layer->ops->backward(h->layer, h->env->ctx, h->batch,
                                                      accumulate, h->x, h->y, h->r, dx));
}

static void check_one(const char *what, size_t i, double analytic, double fd)
{
    if (!(fabs(analytic - fd) <= TOL * (1.0 + fabs(fd))))
        fail_msg("%s[%zu]: backward %.7g, finite difference %.7g", what, i, analytic, fd);
}

/* Checks d_in and every parameter gradient of the layer against central differences. */
static void check_gradients(harness *h)
{
    size_t np = h->layer->n_params;
    for (size_t i = 0; i < h->n_in; i++)
        h->dx[i] = NAN; /* d_in must be written, never added to */
    for (size_t i = 0; i < np; i++)
        h->grads[i] = NAN; /* with accumulate = false, likewise */
    backward(h, false, h->dx);
    double *dx = malloc((h->n_in + 1) * sizeof *dx), *dp = malloc((np + 1) * sizeof *dp);
    for (size_t i = 0; i < h->n_in; i++)
        dx[i] = h->dx[i];
    for (size_t i = 0; i < np; i++)
        dp[i] = h->grads[i];

    for (size_t i = 0; i < h->n_in; i++) {
        float keep = h->x[i];
        h->x[i] = keep + EPS;
        double up = loss(h);
        h->x[i] = keep - EPS;
        double down = loss(h);
        h->x[i] = keep;
        check_one("d_in", i, dx[i], (up - down) / (2.0 * EPS));
    }
    for (size_t i = 0; i < np; i++) {
        float keep = h->params[i];
        h->params[i] = keep + EPS;
        double up = loss(h);
        h->params[i] = keep - EPS;
        double down = loss(h);
        h->params[i] = keep;
        check_one("d_param", i, dp[i], (up - down) / (2.0 * EPS));
    }

    /* accumulate = true adds the same gradient again; d_in is still written */
    if (np) {
        backward(h, true, h->dx);
        for (size_t i = 0; i < np; i++)
            assert_true(fabs(h->grads[i] - 2.0 * dp[i]) <= 1e-6 * (1.0 + fabs(dp[i])));
        for (size_t i = 0; i < h->n_in; i++)
            assert_true(h->dx[i] == (float)dx[i]);
    }
    /* the first layer of a net gets d_in = NULL; the parameter gradients are still written */
    for (size_t i = 0; i < np; i++)
        h->grads[i] = NAN;
    backward(h, false, NULL);
    for (size_t i = 0; i < np; i++)
        assert_true(h->grads[i] == (float)dp[i]);
    free(dx);
    free(dp);
}

static void test_linear(void **state)
{
    bl_test_env *env = *state;
    /* batch 3 takes the small-batch kernels, batch 40 OpenBLAS */
    static const int64_t batches[2] = {3, 40};
    for (int b = 0; b < 2; b++)
        for (int bias = 0; bias < 2; bias++) {
            bl_layer *l;
            BL_ASSERT_OK(env->ctx, bl_linear(env->ctx, 5, bias, &l));
            harness h;
            harness_init(&h, env, l, (bl_shape){1, {7, 1, 1}}, batches[b], 11);
            assert_string_equal(l->ops->kind, "linear");
            assert_int_equal(l->out.ndim, 1);
            assert_int_equal(l->out.dim[0], 5);
            assert_int_equal(l->n_param_tensors, bias ? 2 : 1);
            assert_int_equal(l->n_params, bias ? 40 : 35);
            assert_string_equal(l->param[0].name, "weight");
            assert_true(l->param[0].decay);
            assert_int_equal(l->param[0].fan_in, 7);
            if (bias) {
                assert_string_equal(l->param[1].name, "bias");
                assert_false(l->param[1].decay);
                assert_int_equal(l->param[1].offset, 35);
            }
            /* PyTorch's init: every value within ±1/sqrt(fan_in), and not all equal */
            float bound = 1.0f / sqrtf(7.0f);
            for (size_t i = 0; i < l->n_params; i++)
                assert_true(fabsf(h.params[i]) <= bound);
            assert_true(h.params[0] != h.params[1]);
            check_gradients(&h);
            harness_free(&h);
        }
}

static void test_linear_errors(void **state)
{
    bl_test_env *env = *state;
    bl_layer *l = NULL;
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "out_features", bl_linear(env->ctx, 0, true, &l));
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "-3", bl_linear(env->ctx, -3, true, &l));
    assert_null(l);
    BL_ASSERT_OK(env->ctx, bl_linear(env->ctx, 4, true, &l));
    strcpy(l->name, "fc9");
    l->in = (bl_shape){3, {1, 28, 28}};
    l->dev = env->dev;
    BL_ASSERT_ERR(env->ctx, BL_ESHAPE, "fc9", l->ops->setup(l, env->ctx));
    assert_true(bl_test_contains(bl_errmsg(env->ctx), "[1, 28, 28]"));
    assert_true(bl_test_contains(bl_errmsg(env->ctx), "flatten"));
    bl_layer_free(l);
}

static void test_activations(void **state)
{
    bl_test_env *env = *state;
    static const char *names[4] = {"relu", "tanh", "sigmoid", "gelu"};
    for (int a = 0; a < 4; a++) {
        bl_activation act;
        BL_ASSERT_OK(env->ctx, bl_activation_parse(env->ctx, names[a], &act));
        assert_int_equal(act, a);
        bl_layer *l;
        BL_ASSERT_OK(env->ctx, bl_activation_layer(env->ctx, act, &l));
        assert_string_equal(l->ops->kind, names[a]);
        harness h;
        harness_init(&h, env, l, (bl_shape){3, {2, 3, 2}}, 4, 5 + (uint64_t)a);
        assert_int_equal(l->out.ndim, 3); /* elementwise: any shape, kept */
        assert_int_equal(l->n_params, 0);
        for (size_t i = 0; i < h.n_in; i++) /* away from ReLU's kink */
            if (fabsf(h.x[i]) < 0.05f)
                h.x[i] = h.x[i] < 0 ? -0.05f - h.x[i] : 0.05f + h.x[i];
        check_gradients(&h);
        harness_free(&h);
    }
    bl_activation act;
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "swish", bl_activation_parse(env->ctx, "swish", &act));
    bl_layer *l = NULL;
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "activation",
                  bl_activation_layer(env->ctx, (bl_activation)9, &l));
    assert_null(l);
}

static void test_dropout(void **state)
{
    bl_test_env *env = *state;
    bl_layer *l;
    BL_ASSERT_OK(env->ctx, bl_dropout(env->ctx, 0.4f, &l));
    harness h;
    harness_init(&h, env, l, (bl_shape){1, {50, 1, 1}}, 6, 3);
    assert_int_equal(l->ws_per_sample, 50); /* the mask */
    check_gradients(&h);                    /* with the mask fixed by rewinding the counter */

    /* about 40 % dropped, the rest scaled by 1/0.6; the counter moves on */
    loss(&h);
    int dropped = 0;
    for (size_t i = 0; i < h.n_out; i++) {
        if (h.y[i] == 0.0f)
            dropped++;
        else
            assert_true(fabsf(h.y[i] - h.x[i] / 0.6f) <= 1e-6f * fabsf(h.x[i]));
    }
    assert_true(dropped > 60 && dropped < 180);
    assert_int_equal(l->counter, 300);
    float first[300];
    memcpy(first, h.y, sizeof first);
    BL_ASSERT_OK(env->ctx, l->ops->forward(l, env->ctx, 6, true, h.x, h.y));
    assert_int_equal(l->counter, 600);
    assert_true(memcmp(first, h.y, sizeof first) != 0); /* the next mask differs */

    /* evaluation: the identity, and the counter stays */
    BL_ASSERT_OK(env->ctx, l->ops->forward(l, env->ctx, 6, false, h.x, h.y));
    assert_memory_equal(h.x, h.y, h.n_in * sizeof(float));
    assert_int_equal(l->counter, 600);
    harness_free(&h);

    /* p = 0 is the identity in training too */
    BL_ASSERT_OK(env->ctx, bl_dropout(env->ctx, 0.0f, &l));
    harness_init(&h, env, l, (bl_shape){1, {10, 1, 1}}, 2, 3);
    loss(&h);
    assert_memory_equal(h.x, h.y, h.n_in * sizeof(float));
    check_gradients(&h);
    harness_free(&h);

    l = NULL;
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "[0, 1)", bl_dropout(env->ctx, 1.0f, &l));
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "[0, 1)", bl_dropout(env->ctx, -0.1f, &l));
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "[0, 1)", bl_dropout(env->ctx, NAN, &l));
    assert_null(l);
}

static void test_flatten(void **state)
{
    bl_test_env *env = *state;
    bl_layer *l;
    BL_ASSERT_OK(env->ctx, bl_flatten(env->ctx, &l));
    harness h;
    harness_init(&h, env, l, (bl_shape){3, {2, 3, 4}}, 3, 1);
    assert_true(l->alias_input);
    assert_int_equal(l->out.ndim, 1);
    assert_int_equal(l->out.dim[0], 24);
    /* called with distinct buffers it copies; the net passes the same buffer (no copy) */
    check_gradients(&h);
    BL_ASSERT_OK(env->ctx, l->ops->forward(l, env->ctx, 3, true, h.x, h.x));
    BL_ASSERT_OK(env->ctx, l->ops->backward(l, env->ctx, 3, false, h.x, h.x, h.r, h.r));
    harness_free(&h);
}

static void test_layer_new_contract(void **state)
{
    bl_test_env *env = *state;
    bl_layer *l = NULL;
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "ops is NULL", bl_layer_new(env->ctx, NULL, NULL, "x", &l));
    bl_layer_ops short_ops = {.size = 8, .kind = "short"};
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "size", bl_layer_new(env->ctx, &short_ops, NULL, NULL, &l));
    assert_null(l);
    char long_name[80];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    bl_layer *lin;
    BL_ASSERT_OK(env->ctx, bl_linear(env->ctx, 3, true, &lin));
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "47",
                  bl_layer_new(env->ctx, lin->ops, malloc(16), long_name, &l));
    /* declaring parameters: at most BL_LAYER_MAX_PARAMS, none empty */
    strcpy(lin->name, "lin");
    for (int i = 0; i < BL_LAYER_MAX_PARAMS; i++)
        BL_ASSERT_OK(env->ctx, bl_layer_declare_param(lin, env->ctx, "p", 2, true, 1));
    assert_int_equal(lin->n_params, 2 * BL_LAYER_MAX_PARAMS);
    assert_int_equal(lin->param[3].offset, 6);
    BL_ASSERT_ERR(env->ctx, BL_EINVAL, "lin",
                  bl_layer_declare_param(lin, env->ctx, "p", 2, true, 1));
    bl_layer_free(lin);
    bl_layer_free(NULL);

    bl_shape s = {3, {1, 28, 28}};
    char buf[32];
    assert_int_equal(bl_shape_numel(&s), 784);
    assert_string_equal(bl_shape_format(&s, buf, sizeof buf), "[1, 28, 28]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),      cmocka_unit_test(test_linear_errors),
        cmocka_unit_test(test_activations), cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_flatten),     cmocka_unit_test(test_layer_new_contract),
    };
    return cmocka_run_group_tests_name("layers_dense", tests, bl_test_setup, bl_test_teardown);
}

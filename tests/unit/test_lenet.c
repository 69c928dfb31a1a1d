/* A LeNet-like net (conv2d, batchnorm, maxpool2d, linear) built through bl_net learns a
 * synthetic bars task, with and without batch normalization; bl_net_add reports a conv shape
 * error. The device is the CPU. (Split from test_layers_image.c.)
 */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a LeNet-like net through bl_net ------------------------------------------------------ */

#define BAR_SIDE 12

/* Noisy 12×12 images with one bright bar: label 0 horizontal, label 1 vertical. */
static void make_bars(bl_rng *rng, int64_t batch, float *x, int32_t *labels)
{
    for (int64_t n = 0; n < batch; n++) {
        const int32_t label = (int32_t)bl_rng_below(rng, 2);
        const int64_t pos = 2 + (int64_t)bl_rng_below(rng, BAR_SIDE - 4);
        float *img = x + n * BAR_SIDE * BAR_SIDE;
        for (int64_t i = 0; i < BAR_SIDE * BAR_SIDE; i++)
            img[i] = 0.3f * (float)bl_rng_normal(rng);
        for (int64_t j = 0; j < BAR_SIDE; j++)
            img[label ? j * BAR_SIDE + pos : pos * BAR_SIDE + j] += 1.0f;
        labels[n] = label;
    }
}

/* `layer` is read only here, after the constructor that produced `rc` has run. */
static void add_layer(bl_ctx *ctx, bl_net *net, int rc, bl_layer **layer)
{
    BL_ASSERT_OK(ctx, rc);
    BL_ASSERT_OK(ctx, bl_net_add(ctx, net, *layer));
}

/* conv-relu-pool-conv-relu-pool-flatten-linear, optionally with batch norm first (index 0, no
 * d_in) and after the second convolution (ghost batches of 8), trained with plain SGD. */
static void train_lenet(bl_test_env *env, bool with_bn)
{
    bl_ctx *ctx = env->ctx;
    const bl_shape in = {3, {1, BAR_SIDE, BAR_SIDE}};
    const int64_t B = 32;
    bl_net *net = NULL;
    bl_layer *l = NULL;
    BL_ASSERT_OK(ctx, bl_net_new(ctx, env->dev, &in, &net));
    if (with_bn)
        add_layer(ctx, net, bl_batchnorm(ctx, 0.1f, 1e-5f, 0, &l), &l);
    add_layer(ctx, net, bl_conv2d(ctx, 4, 3, 1, 1, true, &l), &l);             /* [4, 12, 12] */
    add_layer(ctx, net, bl_activation_layer(ctx, BL_ACT_RELU, &l), &l);
    add_layer(ctx, net, bl_maxpool2d(ctx, 2, 2, &l), &l);                      /* [4, 6, 6] */
    add_layer(ctx, net, bl_conv2d(ctx, 8, 3, 1, 0, true, &l), &l);             /* [8, 4, 4] */
    if (with_bn)
        add_layer(ctx, net, bl_batchnorm(ctx, 0.1f, 1e-5f, 8, &l), &l);
    add_layer(ctx, net, bl_activation_layer(ctx, BL_ACT_RELU, &l), &l);
    add_layer(ctx, net, bl_maxpool2d(ctx, 2, 2, &l), &l);                      /* [8, 2, 2] */
    add_layer(ctx, net, bl_flatten(ctx, &l), &l);                              /* [32] */
    add_layer(ctx, net, bl_linear(ctx, 2, true, &l), &l);
    const bl_shape *out = bl_net_output_shape(net);
    assert_int_equal(out->ndim, 1);
    assert_int_equal(out->dim[0], 2);
    BL_ASSERT_OK(ctx, bl_net_build(ctx, net, BL_LOSS_CROSS_ENTROPY, 1));
    BL_ASSERT_OK(ctx, bl_net_reserve(ctx, net, B));

    float *x = bl_test_dev_floats(env, (size_t)(B * BAR_SIDE * BAR_SIDE));
    int32_t *labels = (int32_t *)(void *)bl_test_dev_floats(env, (size_t)B);
    bl_rng rng;
    bl_rng_seed(&rng, 2024, BL_STREAM_DATA);
    float *params = bl_net_params(net);
    const float *grads = bl_net_grads(net);
    const size_t np = bl_net_num_params(net);
    const float lr = 0.1f;
    double first = 0, last = 0;
    const int steps = 300;
    for (int step = 0; step < steps; step++) {
        make_bars(&rng, B, x, labels);
        double loss = 0;
        BL_ASSERT_OK(ctx, bl_net_forward(ctx, net, x, B, true, NULL));
        BL_ASSERT_OK(ctx, bl_net_loss(ctx, net, B, labels, &loss, NULL));
        BL_ASSERT_OK(ctx, bl_net_backward(ctx, net, B, 1.0f / (float)B, false));
        for (size_t i = 0; i < np; i++)
            params[i] -= lr * grads[i];
        assert_true(isfinite(loss));
        if (step < 20)
            first += loss / B / 20;
        if (step >= steps - 20)
            last += loss / B / 20;
    }
    int64_t correct = 0, seen = 0;
    for (int b = 0; b < 8; b++) {
        int64_t c = 0;
        double loss = 0;
        make_bars(&rng, B, x, labels);
        BL_ASSERT_OK(ctx, bl_net_forward(ctx, net, x, B, false, NULL));
        BL_ASSERT_OK(ctx, bl_net_loss(ctx, net, B, labels, &loss, &c));
        correct += c;
        seen += B;
    }
    const double acc = (double)correct / (double)seen;
    print_message("LeNet%s: mean loss %.4f (first 20 steps) -> %.4f (last 20), eval accuracy "
                  "%.3f\n", with_bn ? "+BN" : "", first, last, acc);
    if (!(last < 0.5 * first) || !(acc >= 0.95))
        fail_msg("LeNet%s did not learn: loss %.4f → %.4f, eval accuracy %.3f",
                 with_bn ? "+BN" : "", first, last, acc);
    bl_test_release_all(env);
    bl_net_free(net);
}

static void test_lenet_learns_through_net(void **state)
{
    train_lenet(*state, false);
    train_lenet(*state, true);
}

/* conv-relu-pool-conv-relu-pool-flatten-linear, or with each ReLU after its pool (`late`, as
 * the cnn model builds it), on 12×12 bars. */
static bl_net *bars_net(bl_test_env *env, bool late, int64_t batch)
{
    bl_ctx *ctx = env->ctx;
    const bl_shape in = {3, {1, BAR_SIDE, BAR_SIDE}};
    bl_net *net = NULL;
    bl_layer *l = NULL;
    BL_ASSERT_OK(ctx, bl_net_new(ctx, env->dev, &in, &net));
    for (int i = 0; i < 2; i++) {
        add_layer(ctx, net, bl_conv2d(ctx, 4 + 4 * i, 3, 1, 1 - i, true, &l), &l);
        if (!late)
            add_layer(ctx, net, bl_activation_layer(ctx, BL_ACT_RELU, &l), &l);
        add_layer(ctx, net, bl_maxpool2d(ctx, 2, 2, &l), &l);
        if (late)
            add_layer(ctx, net, bl_activation_layer(ctx, BL_ACT_RELU, &l), &l);
    }
    add_layer(ctx, net, bl_flatten(ctx, &l), &l);
    add_layer(ctx, net, bl_linear(ctx, 2, true, &l), &l);
    BL_ASSERT_OK(ctx, bl_net_build(ctx, net, BL_LOSS_CROSS_ENTROPY, 1));
    BL_ASSERT_OK(ctx, bl_net_reserve(ctx, net, batch));
    return net;
}

/* A ReLU before a max-pool and one after it train to the same bits: the maxima agree up to the
 * sign of a zero (which no later sum sees) and the gradient reaches the same winners. */
static void test_relu_commutes_with_maxpool(void **state)
{
    bl_test_env *env = *state;
    bl_ctx *ctx = env->ctx;
    const int64_t B = 16;
    bl_net *net[2] = {bars_net(env, false, B), bars_net(env, true, B)};
    const size_t np = bl_net_num_params(net[0]);
    assert_int_equal(bl_net_num_params(net[1]), np);
    assert_memory_equal(bl_net_params(net[0]), bl_net_params(net[1]), np * sizeof(float));
    float *x = bl_test_dev_floats(env, (size_t)(B * BAR_SIDE * BAR_SIDE));
    int32_t *labels = (int32_t *)(void *)bl_test_dev_floats(env, (size_t)B);
    bl_rng rng;
    bl_rng_seed(&rng, 7, BL_STREAM_DATA);
    for (int step = 0; step < 30; step++) {
        make_bars(&rng, B, x, labels);
        for (int k = 0; k < 2; k++) {
            double loss = 0;
            BL_ASSERT_OK(ctx, bl_net_forward(ctx, net[k], x, B, true, NULL));
            BL_ASSERT_OK(ctx, bl_net_loss(ctx, net[k], B, labels, &loss, NULL));
            BL_ASSERT_OK(ctx, bl_net_backward(ctx, net[k], B, 1.0f / (float)B, false));
            float *params = bl_net_params(net[k]);
            const float *grads = bl_net_grads(net[k]);
            for (size_t i = 0; i < np; i++)
                params[i] -= 0.1f * grads[i];
        }
        assert_memory_equal(bl_net_params(net[0]), bl_net_params(net[1]), np * sizeof(float));
    }
    bl_test_release_all(env);
    bl_net_free(net[0]);
    bl_net_free(net[1]);
}

static void test_net_add_reports_conv_shape_error(void **state)
{
    bl_test_env *env = *state;
    bl_net *net = NULL;
    bl_layer *l = NULL;
    const bl_shape in = {1, {10, 1, 1}};
    BL_ASSERT_OK(env->ctx, bl_net_new(env->ctx, env->dev, &in, &net));
    BL_ASSERT_OK(env->ctx, bl_conv2d(env->ctx, 4, 3, 1, 0, true, &l));
    BL_ASSERT_ERR(env->ctx, BL_ESHAPE, "[10]", bl_net_add(env->ctx, net, l));
    if (!bl_test_contains(bl_errmsg(env->ctx), "conv2d"))
        fail_msg("message \"%s\" does not name the layer", bl_errmsg(env->ctx));
    bl_net_free(net);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_add_reports_conv_shape_error),
        cmocka_unit_test(test_lenet_learns_through_net),
        cmocka_unit_test(test_relu_commutes_with_maxpool),
    };
    return cmocka_run_group_tests(tests, bl_test_setup, bl_test_teardown);
}

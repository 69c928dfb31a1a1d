/* Model plugins (plugins/models): each one loaded from the build tree through the registry and
 * built with bl_model_build. The layer lists, output shapes and parameter counts must match
 * numbers counted by hand (LeNet-5 style and small VGG-style defaults of cnn included); a
 * forward pass gives [batch, outputs]; regression data gives target_dim outputs with MSE; bad
 * options and shapes are refused with a message naming the option or shape. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const MODELS[] = {"logreg", "mlp", "cnn"};
#define N_MODELS (sizeof MODELS / sizeof *MODELS)

typedef struct fixture {
    bl_test_env *env;
    bl_registry *reg;
} fixture;

static int teardown(void **state)
{
    fixture *fx = *state;
    if (fx) {
        bl_registry_free(fx->reg);
        void *env = fx->env;
        bl_test_teardown(&env);
        free(fx);
    }
    *state = NULL;
    return 0;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    *state = fx;
    void *env = NULL;
    if (bl_test_setup(&env) != 0) {
        teardown(state);
        return -1;
    }
    fx->env = env;
    if (bl_registry_new(fx->env->ctx, &fx->reg) != BL_OK) {
        teardown(state);
        return -1;
    }
    for (size_t i = 0; i < N_MODELS; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/bl_%s.so", BATCHLAB_BUILD_PLUGIN_DIR, MODELS[i]);
        if (bl_registry_load(fx->env->ctx, fx->reg, path) != BL_OK) {
            fprintf(stderr, "cannot load %s: %s\n", path, bl_errmsg(fx->env->ctx));
            teardown(state);
            return -1;
        }
    }
    return 0;
}

static bl_data_info flat_info(int64_t features, int64_t classes, int64_t target_dim)
{
    bl_data_info info = {.sample = {.ndim = 1, .dim = {features}}, .classes = classes,
                         .target_dim = target_dim, .count = {1000, 100, 100}};
    return info;
}

static bl_data_info image_info(int64_t c, int64_t h, int64_t w, int64_t classes,
                               int64_t target_dim)
{
    bl_data_info info = {.sample = {.ndim = 3, .dim = {c, h, w}}, .classes = classes,
                         .target_dim = target_dim, .count = {1000, 100, 100}};
    return info;
}

/* Builds model `name` for `info` with the NULL-terminated "option=value" assignments that
 * follow. */
static int build(fixture *fx, const char *name, const bl_data_info *info, bl_net **out, ...)
{
    bl_ctx *ctx = fx->env->ctx;
    const bl_plugin *plugin = NULL;
    int rc = bl_registry_find(ctx, fx->reg, BL_PLUGIN_MODEL, name, &plugin);
    if (rc)
        return rc;
    bl_config *cfg = NULL;
    if ((rc = bl_config_new(ctx, &cfg)))
        return rc;
    va_list ap;
    va_start(ap, out);
    for (const char *a; !rc && (a = va_arg(ap, const char *));)
        rc = bl_config_set_assignment(ctx, cfg, a);
    va_end(ap);
    if (!rc)
        rc = bl_model_build(ctx, plugin, cfg, info, fx->env->dev, 1, out);
    bl_config_free(cfg);
    return rc;
}

/* One expected layer: its kind, its per-sample output shape and its parameter count. */
typedef struct want_layer {
    const char *kind;
    int ndim;
    int64_t d0, d1, d2;
    size_t params;
} want_layer;

#define ACT "relu" /* an activation layer's kind is its function */

static void expect_layers(bl_net *net, const want_layer *want, int n, size_t total)
{
    if (bl_net_num_layers(net) != n) {
        char buf[4096];
        bl_net_describe(net, buf, sizeof buf);
        fail_msg("%d layers, expected %d:\n%s", bl_net_num_layers(net), n, buf);
    }
    for (int i = 0; i < n; i++) {
        const bl_layer *l = bl_net_layer(net, i);
        const want_layer *w = &want[i];
        char got[64];
        bl_shape_format(&l->out, got, sizeof got);
        if (strcmp(l->ops->kind, w->kind) != 0 || l->out.ndim != w->ndim ||
            l->out.dim[0] != w->d0 || (w->ndim == 3 && (l->out.dim[1] != w->d1 ||
                                                        l->out.dim[2] != w->d2)) ||
            l->n_params != w->params)
            fail_msg("layer %d: %s %s with %zu parameters; expected %s [%lld%s] with %zu", i,
                     l->ops->kind, got, l->n_params, w->kind, (long long)w->d0,
                     w->ndim == 3 ? ", …" : "", w->params);
    }
    assert_int_equal(bl_net_num_params(net), total);
}

/* A forward pass on `batch` random samples gives finite [batch, outputs] values, and a training
 * step (loss, backward) runs with targets of the right kind. */
static void forward_check(fixture *fx, bl_net *net, const bl_data_info *info, int64_t batch,
                          int64_t outputs)
{
    bl_ctx *ctx = fx->env->ctx;
    bl_device *dev = fx->env->dev;
    const bl_shape *o = bl_net_output_shape(net);
    assert_int_equal(o->ndim, 1);
    assert_int_equal(o->dim[0], outputs);
    assert_int_equal(bl_net_loss_kind(net), info->classes >= 2 ? BL_LOSS_CROSS_ENTROPY
                                                               : BL_LOSS_MSE);

    const int64_t in_numel = bl_shape_numel(&info->sample);
    const size_t x_bytes = (size_t)(batch * in_numel) * sizeof(float);
    const size_t y_bytes = info->classes >= 2 ? (size_t)batch * sizeof(int32_t)
                                              : (size_t)(batch * outputs) * sizeof(float);
    float *x_host = malloc(x_bytes);
    void *y_host = malloc(y_bytes);
    float *out_host = malloc((size_t)(batch * outputs) * sizeof(float));
    assert_true(x_host && y_host && out_host);
    for (int64_t i = 0; i < batch * in_numel; i++)
        x_host[i] = (float)((i * 7919 % 1000) / 1000.0 - 0.5);
    for (int64_t i = 0; i < batch; i++) {
        if (info->classes >= 2)
            ((int32_t *)y_host)[i] = (int32_t)(i % info->classes);
        else
            for (int64_t j = 0; j < outputs; j++)
                ((float *)y_host)[i * outputs + j] = (float)(0.1 * (double)(i - j));
    }

    void *x = NULL, *y = NULL;
    BL_ASSERT_OK(ctx, bl_net_reserve(ctx, net, batch));
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, x_bytes, &x));
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, y_bytes, &y));
    BL_ASSERT_OK(ctx, bl_device_upload(ctx, dev, x, x_host, x_bytes));
    BL_ASSERT_OK(ctx, bl_device_upload(ctx, dev, y, y_host, y_bytes));

    const float *out = NULL;
    BL_ASSERT_OK(ctx, bl_net_forward(ctx, net, x, batch, false, &out));
    BL_ASSERT_OK(ctx, bl_device_download(ctx, dev, out_host, out,
                                         (size_t)(batch * outputs) * sizeof(float)));
    for (int64_t i = 0; i < batch * outputs; i++)
        assert_true(isfinite(out_host[i]));

    double loss = NAN;
    int64_t correct = -1;
    BL_ASSERT_OK(ctx, bl_net_forward(ctx, net, x, batch, true, NULL));
    BL_ASSERT_OK(ctx, bl_net_loss(ctx, net, batch, y, &loss, &correct));
    assert_true(isfinite(loss) && loss > 0);
    assert_true(correct >= 0 && correct <= batch);
    BL_ASSERT_OK(ctx, bl_net_backward(ctx, net, batch, 1.0f / (float)batch, false));

    bl_device_release(dev, x, x_bytes);
    bl_device_release(dev, y, y_bytes);
    free(x_host);
    free(y_host);
    free(out_host);
}

/* ---- descriptors ---------------------------------------------------------------------------- */

static void test_descriptors(void **state)
{
    fixture *fx = *state;
    for (size_t i = 0; i < N_MODELS; i++) {
        const bl_plugin *p = NULL;
        BL_ASSERT_OK(fx->env->ctx, bl_registry_find(fx->env->ctx, fx->reg, BL_PLUGIN_MODEL,
                                                     MODELS[i], &p));
        assert_int_equal(p->abi, BL_PLUGIN_ABI);
        assert_int_equal(p->size, sizeof(bl_plugin));
        assert_string_equal(p->name, MODELS[i]);
        assert_true(p->summary && *p->summary);
        assert_non_null(p->options);
        for (const bl_option *o = p->options; o->name; o++) {
            assert_non_null(o->default_value);
            assert_true(o->help && *o->help);
        }
    }
}

/* ---- logreg --------------------------------------------------------------------------------- */

static void test_logreg(void **state)
{
    fixture *fx = *state;
    bl_net *net = NULL;

    bl_data_info flat = flat_info(784, 10, 1);
    BL_ASSERT_OK(fx->env->ctx, build(fx, "logreg", &flat, &net, NULL));
    const want_layer w[] = {{"flatten", 1, 784, 0, 0, 0}, {"linear", 1, 10, 0, 0, 7850}};
    expect_layers(net, w, 2, 7850);
    forward_check(fx, net, &flat, 5, 10);
    bl_net_free(net);

    bl_data_info img = image_info(1, 28, 28, 10, 1);
    BL_ASSERT_OK(fx->env->ctx, build(fx, "logreg", &img, &net, "bias=false", NULL));
    const want_layer wn[] = {{"flatten", 1, 784, 0, 0, 0}, {"linear", 1, 10, 0, 0, 7840}};
    expect_layers(net, wn, 2, 7840);
    forward_check(fx, net, &img, 3, 10);
    bl_net_free(net);
}

/* ---- mlp ------------------------------------------------------------------------------------ */

static void test_mlp_defaults(void **state)
{
    fixture *fx = *state;
    bl_net *net = NULL;
    /* 784·256+256 = 200,960; 256·128+128 = 32,896; 128·10+10 = 1,290. */
    const want_layer w[] = {
        {"flatten", 1, 784, 0, 0, 0},    {"linear", 1, 256, 0, 0, 200960},
        {ACT, 1, 256, 0, 0, 0},          {"linear", 1, 128, 0, 0, 32896},
        {ACT, 1, 128, 0, 0, 0},          {"linear", 1, 10, 0, 0, 1290},
    };
    bl_data_info flat = flat_info(784, 10, 1);
    BL_ASSERT_OK(fx->env->ctx, build(fx, "mlp", &flat, &net, NULL));
    expect_layers(net, w, 6, 235146);
    forward_check(fx, net, &flat, 8, 10);
    bl_net_free(net);

    bl_data_info img = image_info(1, 28, 28, 10, 1);
    BL_ASSERT_OK(fx->env->ctx, build(fx, "mlp", &img, &net, NULL));
    expect_layers(net, w, 6, 235146);
    forward_check(fx, net, &img, 8, 10);
    bl_net_free(net);
}

static void test_mlp_options(void **state)
{
    fixture *fx = *state;
    bl_net *net = NULL;
    bl_data_info flat = flat_info(784, 10, 1);

    /* linear 784·64+64 = 50,240 → batchnorm γ, β 128 (+128 running stats) → tanh → dropout
     * → linear 64·10+10 = 650. */
    BL_ASSERT_OK(fx->env->ctx, build(fx, "mlp", &flat, &net, "hidden=64", "batch_norm=true",
                                     "activation=tanh", "dropout=0.5", "ghost_batch=4", NULL));
    const want_layer w[] = {
        {"flatten", 1, 784, 0, 0, 0},    {"linear", 1, 64, 0, 0, 50240},
        {"batchnorm", 1, 64, 0, 0, 128}, {"tanh", 1, 64, 0, 0, 0},
        {"dropout", 1, 64, 0, 0, 0},     {"linear", 1, 10, 0, 0, 650},
    };
    expect_layers(net, w, 6, 51018);
    assert_int_equal(bl_net_num_state(net), 128);
    forward_check(fx, net, &flat, 10, 10);
    bl_net_free(net);

    /* No hidden layer: the same network as logreg. */
    BL_ASSERT_OK(fx->env->ctx, build(fx, "mlp", &flat, &net, "hidden=", NULL));
    assert_int_equal(bl_net_num_layers(net), 2);
    assert_int_equal(bl_net_num_params(net), 7850);
    bl_net_free(net);
}

/* ---- cnn ------------------------------------------------------------------------------------ */

/* 1×28×28: the LeNet-5 style default, counted by hand. */
static void test_cnn_lenet(void **state)
{
    fixture *fx = *state;
    bl_net *net = NULL;
    bl_data_info img = image_info(1, 28, 28, 10, 1);
    BL_ASSERT_OK(fx->env->ctx, build(fx, "cnn", &img, &net, NULL));
    const want_layer w[] = {
        {"conv2d", 3, 6, 28, 28, 6 * 1 * 25 + 6},    /* 156 */
        {"maxpool2d", 3, 6, 14, 14, 0},
        {ACT, 3, 6, 14, 14, 0},  /* a ReLU runs after the pool (cnn.c) */
        {"conv2d", 3, 16, 10, 10, 16 * 6 * 25 + 16}, /* 2,416 */
        {"maxpool2d", 3, 16, 5, 5, 0},
        {ACT, 3, 16, 5, 5, 0},
        {"flatten", 1, 400, 0, 0, 0},
        {"linear", 1, 120, 0, 0, 400 * 120 + 120},   /* 48,120 */
        {ACT, 1, 120, 0, 0, 0},
        {"linear", 1, 84, 0, 0, 120 * 84 + 84},      /* 10,164 */
        {ACT, 1, 84, 0, 0, 0},
        {"linear", 1, 10, 0, 0, 84 * 10 + 10},       /* 850 */
    };
    expect_layers(net, w, 12, 61706);
    forward_check(fx, net, &img, 4, 10);
    bl_net_free(net);

    /* With batch norm after every conv and hidden linear layer: + 2·(6 + 16 + 120 + 84). */
    BL_ASSERT_OK(fx->env->ctx, build(fx, "cnn", &img, &net, "batch_norm=true", "dropout=0.25",
                                     NULL));
    assert_int_equal(bl_net_num_layers(net), 12 + 4 + 2);
    assert_int_equal(bl_net_num_params(net), 61706 + 452);
    assert_int_equal(bl_net_num_state(net), 452);
    assert_string_equal(bl_net_layer(net, 1)->ops->kind, "batchnorm");
    assert_string_equal(bl_net_layer(net, 2)->ops->kind, "maxpool2d");
    assert_string_equal(bl_net_layer(net, 3)->ops->kind, "relu");
    forward_check(fx, net, &img, 4, 10);
    bl_net_free(net);

    /* Only a ReLU moves past the pool. */
    BL_ASSERT_OK(fx->env->ctx, build(fx, "cnn", &img, &net, "activation=tanh", NULL));
    assert_string_equal(bl_net_layer(net, 1)->ops->kind, "tanh");
    assert_string_equal(bl_net_layer(net, 2)->ops->kind, "maxpool2d");
    bl_net_free(net);
}

/* 3×32×32: the small VGG-style default, counted by hand. */
static void test_cnn_vgg(void **state)
{
    fixture *fx = *state;
    bl_net *net = NULL;
    bl_data_info img = image_info(3, 32, 32, 10, 1);
    BL_ASSERT_OK(fx->env->ctx, build(fx, "cnn", &img, &net, NULL));
    const want_layer w[] = {
        {"conv2d", 3, 32, 32, 32, 32 * 27 + 32},     /* 896 */
        {ACT, 3, 32, 32, 32, 0},
        {"conv2d", 3, 32, 32, 32, 32 * 288 + 32},    /* 9,248 */
        {"maxpool2d", 3, 32, 16, 16, 0},
        {ACT, 3, 32, 16, 16, 0},
        {"conv2d", 3, 64, 16, 16, 64 * 288 + 64},    /* 18,496 */
        {ACT, 3, 64, 16, 16, 0},
        {"conv2d", 3, 64, 16, 16, 64 * 576 + 64},    /* 36,928 */
        {"maxpool2d", 3, 64, 8, 8, 0},
        {ACT, 3, 64, 8, 8, 0},
        {"conv2d", 3, 128, 8, 8, 128 * 576 + 128},   /* 73,856 */
        {"maxpool2d", 3, 128, 4, 4, 0},
        {ACT, 3, 128, 4, 4, 0},
        {"flatten", 1, 2048, 0, 0, 0},
        {"linear", 1, 256, 0, 0, 2048 * 256 + 256},  /* 524,544 */
        {ACT, 1, 256, 0, 0, 0},
        {"linear", 1, 10, 0, 0, 256 * 10 + 10},      /* 2,570 */
    };
    expect_layers(net, w, 17, 666538);
    forward_check(fx, net, &img, 2, 10);
    bl_net_free(net);

    /* The VGG preset on a 1×28×28 input: pools to 14, 7, 3; flatten 128·3·3 = 1152. */
    bl_data_info gray = image_info(1, 28, 28, 10, 1);
    BL_ASSERT_OK(fx->env->ctx, build(fx, "cnn", &gray, &net, "preset=vgg", NULL));
    assert_int_equal(bl_net_num_layers(net), 17);
    assert_int_equal(bl_net_num_params(net), 436586);
    bl_net_free(net);
}

/* Explicit options override the preset's values. */
static void test_cnn_overrides(void **state)
{
    fixture *fx = *state;
    bl_net *net = NULL;
    bl_data_info img = image_info(1, 28, 28, 10, 1);

    BL_ASSERT_OK(fx->env->ctx, build(fx, "cnn", &img, &net, "channels=8", "kernel=3",
                                     "padding=same", "fc=0", NULL));
    const want_layer w[] = {
        {"conv2d", 3, 8, 28, 28, 8 * 9 + 8},         /* 80 */
        {"maxpool2d", 3, 8, 14, 14, 0},
        {ACT, 3, 8, 14, 14, 0},
        {"flatten", 1, 1568, 0, 0, 0},
        {"linear", 1, 10, 0, 0, 1568 * 10 + 10},     /* 15,690 */
    };
    expect_layers(net, w, 5, 15770);
    forward_check(fx, net, &img, 3, 10);
    bl_net_free(net);

    /* Per-conv padding, no pooling, one hidden fc layer, on a 1×10×10 image. */
    bl_data_info small = image_info(1, 10, 10, 3, 1);
    BL_ASSERT_OK(fx->env->ctx, build(fx, "cnn", &small, &net, "channels=4,4", "kernel=3",
                                     "padding=same,valid", "pool=1", "fc=16",
                                     "activation=gelu", NULL));
    const want_layer ws[] = {
        {"conv2d", 3, 4, 10, 10, 4 * 9 + 4},         /* 40 */
        {"gelu", 3, 4, 10, 10, 0},
        {"conv2d", 3, 4, 8, 8, 4 * 36 + 4},          /* 148 */
        {"gelu", 3, 4, 8, 8, 0},
        {"flatten", 1, 256, 0, 0, 0},
        {"linear", 1, 16, 0, 0, 256 * 16 + 16},      /* 4,112 */
        {"gelu", 1, 16, 0, 0, 0},
        {"linear", 1, 3, 0, 0, 16 * 3 + 3},          /* 51 */
    };
    expect_layers(net, ws, 8, 4351);
    forward_check(fx, net, &small, 3, 3);
    bl_net_free(net);
}

/* ---- regression ----------------------------------------------------------------------------- */

static void test_regression(void **state)
{
    fixture *fx = *state;
    bl_net *net = NULL;
    bl_data_info flat = flat_info(784, 0, 3);
    bl_data_info img = image_info(1, 28, 28, 0, 3);

    BL_ASSERT_OK(fx->env->ctx, build(fx, "logreg", &flat, &net, NULL));
    assert_int_equal(bl_net_num_params(net), 784 * 3 + 3);
    forward_check(fx, net, &flat, 4, 3);
    bl_net_free(net);

    BL_ASSERT_OK(fx->env->ctx, build(fx, "mlp", &flat, &net, NULL));
    assert_int_equal(bl_net_num_params(net), 200960 + 32896 + 128 * 3 + 3);
    forward_check(fx, net, &flat, 4, 3);
    bl_net_free(net);

    BL_ASSERT_OK(fx->env->ctx, build(fx, "cnn", &img, &net, NULL));
    assert_int_equal(bl_net_num_params(net), 61706 - 850 + 84 * 3 + 3);
    forward_check(fx, net, &img, 4, 3);
    bl_net_free(net);
}

/* ---- errors --------------------------------------------------------------------------------- */

static void test_bad_options(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    bl_net *net = NULL;
    bl_data_info flat = flat_info(784, 10, 1);
    bl_data_info img = image_info(1, 28, 28, 10, 1);

    BL_ASSERT_ERR(ctx, BL_EOPTION, "model mlp: option 'dropout' must be in [0, 1), got 1.5",
                  build(fx, "mlp", &flat, &net, "dropout=1.5", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'dropout' must be in [0, 1), got -0.1",
                  build(fx, "mlp", &flat, &net, "dropout=-0.1", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION,
                  "model mlp: option 'activation' must be one of relu, tanh, sigmoid, gelu, got "
                  "'swish'",
                  build(fx, "mlp", &flat, &net, "activation=swish", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'hidden': entry 2 must be in 1..2^31-1, got 0",
                  build(fx, "mlp", &flat, &net, "hidden=128,0", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'ghost_batch' (32) needs batch_norm = true",
                  build(fx, "mlp", &flat, &net, "ghost_batch=32", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'bn_momentum' must be in (0, 1], got 0",
                  build(fx, "mlp", &flat, &net, "batch_norm=true", "bn_momentum=0", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "unknown option 'hiden'",
                  build(fx, "mlp", &flat, &net, "hiden=3", NULL));

    BL_ASSERT_ERR(ctx, BL_EOPTION, "model cnn: option 'preset' must be auto, lenet or vgg, got "
                                   "'resnet'",
                  build(fx, "cnn", &img, &net, "preset=resnet", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION,
                  "option 'padding' has 3 entries but there are 2 conv layers",
                  build(fx, "cnn", &img, &net, "padding=1,2,3", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'padding': entry 2 ('wide') must be same, valid or a "
                                   "number",
                  build(fx, "cnn", &img, &net, "padding=same,wide", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "same padding needs an odd kernel, got kernel 4",
                  build(fx, "cnn", &img, &net, "kernel=4", "padding=same", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'fc': entry 1 must be in 1..2^31-1, got 0",
                  build(fx, "cnn", &img, &net, "fc=0,10", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'channels': entry 1 must be in 1..2^31-1, got -4",
                  build(fx, "cnn", &img, &net, "channels=-4", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'kernel' must be ≥ 1",
                  build(fx, "cnn", &img, &net, "kernel=-3", NULL));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'dropout' must be in [0, 1), got 1",
                  build(fx, "cnn", &img, &net, "dropout=1", NULL));
    assert_null(net);
}

static void test_bad_shapes(void **state)
{
    fixture *fx = *state;
    bl_ctx *ctx = fx->env->ctx;
    bl_net *net = NULL;

    /* A flat sample for a conv net: say so, and point at mlp. */
    bl_data_info flat = flat_info(784, 10, 1);
    BL_ASSERT_ERR(ctx, BL_ESHAPE,
                  "model cnn: sample shape [784] is not an image [C, H, W]",
                  build(fx, "cnn", &flat, &net, NULL));
    assert_true(bl_test_contains(bl_errmsg(ctx), "mlp"));

    /* An image too small for LeNet's second 5×5 conv after one pooling (8 → 4). */
    bl_data_info tiny = image_info(1, 8, 8, 10, 1);
    BL_ASSERT_ERR(ctx, BL_ESHAPE, "model cnn: input [1, 8, 8]",
                  build(fx, "cnn", &tiny, &net, NULL));
    assert_true(bl_test_contains(bl_errmsg(ctx), "conv2d"));

    /* Neither classification nor regression. */
    bl_data_info one_class = flat_info(10, 1, 1);
    for (size_t i = 0; i < N_MODELS - 1; i++)
        BL_ASSERT_ERR(ctx, BL_ESHAPE, "expected classes ≥ 2",
                      build(fx, MODELS[i], &one_class, &net, NULL));
    bl_data_info no_target = flat_info(10, 0, 0);
    BL_ASSERT_ERR(ctx, BL_ESHAPE, "target_dim 0",
                  build(fx, "mlp", &no_target, &net, NULL));
    assert_null(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_logreg),
        cmocka_unit_test(test_mlp_defaults),
        cmocka_unit_test(test_mlp_options),
        cmocka_unit_test(test_cnn_lenet),
        cmocka_unit_test(test_cnn_vgg),
        cmocka_unit_test(test_cnn_overrides),
        cmocka_unit_test(test_regression),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests_name("models", tests, setup, teardown);
}

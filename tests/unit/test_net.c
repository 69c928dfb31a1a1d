/* The network container: learning, reproducibility, errors that name the layer, micro-batch
 * accumulation, loss gradients, bookkeeping, and a training step that allocates nothing.
 *
 * The optimizer here is the device's SGD kernel called directly (one fused update over the
 * flat parameter block), which is all bl_optim's SGD does. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- counting allocations ------------------------------------------------------------------
 * This file defines malloc and friends, forwarding to glibc's own entry points, so that a
 * window of code can be checked for heap allocations (in this program and in every library it
 * uses). Not under AddressSanitizer, which owns malloc itself. */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
#define COUNT_MALLOC 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_long n_allocs;

void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t size);
void free(void *p);
void *aligned_alloc(size_t align, size_t size);
int posix_memalign(void **out, size_t align, size_t size);
void *memalign(size_t align, size_t size);

void *malloc(size_t size)
{
    atomic_fetch_add(&n_allocs, 1);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    atomic_fetch_add(&n_allocs, 1);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    atomic_fetch_add(&n_allocs, 1);
    return __libc_realloc(p, size);
}

void free(void *p)
{
    __libc_free(p);
}

void *aligned_alloc(size_t align, size_t size)
{
    atomic_fetch_add(&n_allocs, 1);
    return __libc_memalign(align, size);
}

void *memalign(size_t align, size_t size)
{
    atomic_fetch_add(&n_allocs, 1);
    return __libc_memalign(align, size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    atomic_fetch_add(&n_allocs, 1);
    void *p = __libc_memalign(align, size);
    if (!p)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}
#endif

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct data {
    int64_t n, features;
    float *x;      /* [n × features] */
    int32_t *y;    /* [n] */
    float *target; /* [n × 2], for MSE */
} data;

/* Two classes separated by a margin along a random direction: y = [w·x > 0]. */
static data make_data(int64_t n, int64_t features, uint64_t seed)
{
    data d = {n, features, malloc((size_t)(n * features) * sizeof(float)),
              malloc((size_t)n * sizeof(int32_t)), malloc((size_t)n * 2 * sizeof(float))};
    bl_rng rng;
    bl_rng_seed(&rng, seed, BL_STREAM_DATA);
    float w[64];
    for (int64_t j = 0; j < features; j++)
        w[j] = (float)bl_rng_normal(&rng);
    for (int64_t i = 0; i < n; i++) {
        double dot;
        do {
            dot = 0.0;
            for (int64_t j = 0; j < features; j++) {
                d.x[i * features + j] = (float)bl_rng_normal(&rng);
                dot += w[j] * d.x[i * features + j];
            }
        } while (fabs(dot) < 0.5); /* keep a margin */
        d.y[i] = dot > 0;
        d.target[2 * i] = (float)(dot <= 0); /* one-hot of the label */
        d.target[2 * i + 1] = (float)(dot > 0);
    }
    return d;
}

static void free_data(data *d)
{
    free(d->x);
    free(d->y);
    free(d->target);
}

/* add(env, net, bl_linear(ctx, 4, true, &l), &l): the layer is read after the constructor ran */
static void add(bl_test_env *env, bl_net *net, int rc, bl_layer **layer)
{
    BL_ASSERT_OK(env->ctx, rc);
    BL_ASSERT_OK(env->ctx, bl_net_add(env->ctx, net, *layer));
}

/* features → 32 → relu → [dropout] → 16 → tanh → 2 */
static bl_net *make_mlp(bl_test_env *env, int64_t features, bool dropout, bl_loss_kind loss,
                        uint64_t seed)
{
    bl_net *net;
    bl_shape in = {1, {features, 1, 1}};
    bl_layer *l;
    BL_ASSERT_OK(env->ctx, bl_net_new(env->ctx, env->dev, &in, &net));
    add(env, net, bl_linear(env->ctx, 32, true, &l), &l);
    add(env, net, bl_activation_layer(env->ctx, BL_ACT_RELU, &l), &l);
    if (dropout)
        add(env, net, bl_dropout(env->ctx, 0.2f, &l), &l);
    add(env, net, bl_linear(env->ctx, 16, true, &l), &l);
    add(env, net, bl_activation_layer(env->ctx, BL_ACT_TANH, &l), &l);
    add(env, net, bl_linear(env->ctx, 2, true, &l), &l);
    BL_ASSERT_OK(env->ctx, bl_net_build(env->ctx, net, loss, seed));
    return net;
}

typedef struct trainer {
    bl_test_env *env;
    bl_net *net;
    float *velocity;
    size_t n;
} trainer;

static trainer make_trainer(bl_test_env *env, bl_net *net)
{
    trainer t = {env, net, NULL, bl_net_num_params(net)};
    void *p;
    BL_ASSERT_OK(env->ctx, bl_device_alloc(env->ctx, env->dev, t.n * sizeof(float), &p));
    t.velocity = p;
    env->dev->ops->fill(env->dev, (int64_t)t.n, 0.0f, t.velocity);
    return t;
}

static void free_trainer(trainer *t)
{
    bl_device_release(t->env->dev, t->velocity, t->n * sizeof(float));
    bl_net_free(t->net);
}

/* One SGD-momentum step on x[batch]; returns the mean loss, *correct the right predictions. */
static double step(trainer *t, const float *x, const void *targets, int64_t batch, float lr,
                   int64_t *correct)
{
    bl_ctx *ctx = t->env->ctx;
    double loss;
    BL_ASSERT_OK(ctx, bl_net_forward(ctx, t->net, x, batch, true, NULL));
    BL_ASSERT_OK(ctx, bl_net_loss(ctx, t->net, batch, targets, &loss, correct));
    BL_ASSERT_OK(ctx, bl_net_backward(ctx, t->net, batch, 1.0f / (float)batch, false));
    t->env->dev->ops->sgd_update(t->env->dev, (int64_t)t->n, lr, 0.9f, 0.0f, false, 0.0f,
                                 bl_net_grads(t->net), t->velocity, bl_net_params(t->net));
    return loss / (double)batch;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_learns_separable_problem(void **state)
{
    bl_test_env *env = *state;
    data d = make_data(256, 10, 1);
    for (int loss_kind = 0; loss_kind < 2; loss_kind++) {
        bl_net *net = make_mlp(env, 10, false, (bl_loss_kind)loss_kind, 3);
        BL_ASSERT_OK(env->ctx, bl_net_reserve(env->ctx, net, 64));
        trainer t = make_trainer(env, net);
        const void *targets = loss_kind == BL_LOSS_CROSS_ENTROPY ? (const void *)d.y
                                                                 : (const void *)d.target;
        double first = 0.0, last = 0.0;
        for (int epoch = 0; epoch < 60; epoch++)
            for (int64_t b = 0; b < 256; b += 64) {
                size_t off = loss_kind == BL_LOSS_CROSS_ENTROPY ? (size_t)b : (size_t)(2 * b);
                const void *tb = loss_kind == BL_LOSS_CROSS_ENTROPY
                                     ? (const void *)(d.y + off)
                                     : (const void *)(d.target + off);
                last = step(&t, d.x + b * 10, tb, 64, 0.05f, NULL);
                if (epoch == 0 && b == 0)
                    first = last;
            }
        assert_true(last < first / 4);
        /* every training sample right, evaluated in inference mode */
        BL_ASSERT_OK(env->ctx, bl_net_reserve(env->ctx, net, 256));
        const float *out;
        BL_ASSERT_OK(env->ctx, bl_net_forward(env->ctx, net, d.x, 256, false, &out));
        int64_t right = 0;
        for (int64_t i = 0; i < 256; i++)
            right += (out[2 * i + 1] > out[2 * i]) == d.y[i];
        if (right != 256)
            fail_msg("loss %d: %lld of 256 right after training", loss_kind, (long long)right);
        if (loss_kind == BL_LOSS_CROSS_ENTROPY) {
            double loss;
            int64_t correct = -1;
            BL_ASSERT_OK(env->ctx, bl_net_loss(env->ctx, net, 256, targets, &loss, &correct));
            assert_int_equal(correct, 256);
        }
        free_trainer(&t);
    }
    free_data(&d);
}

/* 100 steps with dropout, twice from the same seed: the same bits; another seed differs. */
static void train_100(bl_test_env *env, const data *d, uint64_t seed, float *weights)
{
    bl_net *net = make_mlp(env, 10, true, BL_LOSS_CROSS_ENTROPY, seed);
    BL_ASSERT_OK(env->ctx, bl_net_reserve(env->ctx, net, 32));
    trainer t = make_trainer(env, net);
    for (int s = 0; s < 100; s++) {
        int64_t b = (s * 32) % 256;
        step(&t, d->x + b * 10, d->y + b, 32, 0.05f, NULL);
    }
    BL_ASSERT_OK(env->ctx, bl_device_download(env->ctx, env->dev, weights, bl_net_params(net),
                                              t.n * sizeof(float)));
    free_trainer(&t);
}

static void test_same_seed_same_bits(void **state)
{
    bl_test_env *env = *state;
    data d = make_data(256, 10, 2);
    bl_net *probe = make_mlp(env, 10, true, BL_LOSS_CROSS_ENTROPY, 1);
    size_t n = bl_net_num_params(probe);
    assert_int_equal(n, 10 * 32 + 32 + 32 * 16 + 16 + 16 * 2 + 2);
    bl_net_free(probe);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    train_100(env, &d, 42, a);
    train_100(env, &d, 42, b);
    train_100(env, &d, 43, c);
    assert_memory_equal(a, b, n * sizeof *a);
    assert_true(memcmp(a, c, n * sizeof *a) != 0);
    for (size_t i = 0; i < n; i++)
        assert_true(isfinite(a[i]));
    free(a);
    free(b);
    free(c);
    free_data(&d);
}

static void test_errors_name_the_layer(void **state)
{
    bl_test_env *env = *state;
    bl_ctx *ctx = env->ctx;
    bl_net *net;
    bl_shape img = {3, {1, 28, 28}};
    bl_layer *l;
    BL_ASSERT_OK(ctx, bl_net_new(ctx, env->dev, &img, &net));
    add(env, net, bl_activation_layer(ctx, BL_ACT_RELU, &l), &l);
    /* a linear layer on an image: the error names the layer and both shapes */
    BL_ASSERT_OK(ctx, bl_linear(ctx, 10, true, &l));
    BL_ASSERT_ERR(ctx, BL_ESHAPE, "linear1", bl_net_add(ctx, net, l));
    assert_true(bl_test_contains(bl_errmsg(ctx), "[1, 28, 28]"));
    assert_int_equal(bl_net_num_layers(net), 1); /* the failed layer was freed, not added */
    add(env, net, bl_flatten(ctx, &l), &l);
    add(env, net, bl_linear(ctx, 1, true, &l), &l);
    assert_string_equal(bl_net_layer(net, 2)->name, "linear1");
    assert_int_equal(bl_net_output_shape(net)->dim[0], 1);
    /* one output cannot be a cross-entropy */
    BL_ASSERT_ERR(ctx, BL_ESHAPE, "linear1", bl_net_build(ctx, net, BL_LOSS_CROSS_ENTROPY, 1));
    assert_true(bl_test_contains(bl_errmsg(ctx), "2 classes"));
    BL_ASSERT_OK(ctx, bl_net_build(ctx, net, BL_LOSS_MSE, 1));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "already built", bl_net_build(ctx, net, BL_LOSS_MSE, 1));
    BL_ASSERT_OK(ctx, bl_linear(ctx, 3, true, &l));
    strcpy(l->name, "late");
    BL_ASSERT_ERR(ctx, BL_EINVAL, "late", bl_net_add(ctx, net, l));

    float x[4 * 784] = {0}, t[4] = {0};
    BL_ASSERT_ERR(ctx, BL_EINVAL, "bl_net_reserve",
                  bl_net_forward(ctx, net, x, 1, true, NULL)); /* nothing reserved yet */
    BL_ASSERT_ERR(ctx, BL_EINVAL, "max_batch", bl_net_reserve(ctx, net, 0));
    BL_ASSERT_OK(ctx, bl_net_reserve(ctx, net, 2));
    BL_ASSERT_ERR(ctx, BL_ESHAPE, "batch 3", bl_net_forward(ctx, net, x, 3, true, NULL));
    assert_true(bl_test_contains(bl_errmsg(ctx), "2"));
    BL_ASSERT_ERR(ctx, BL_ESHAPE, "batch 0", bl_net_forward(ctx, net, x, 0, true, NULL));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "NULL", bl_net_forward(ctx, net, NULL, 1, true, NULL));
    double loss;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "forward", bl_net_loss(ctx, net, 1, t, &loss, NULL));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "bl_net_loss", bl_net_backward(ctx, net, 1, 1.0f, false));
    BL_ASSERT_OK(ctx, bl_net_reserve(ctx, net, 4)); /* grows */
    assert_int_equal(bl_net_max_batch(net), 4);
    BL_ASSERT_OK(ctx, bl_net_forward(ctx, net, x, 4, false, NULL));
    BL_ASSERT_ERR(ctx, BL_ESHAPE, "batch 3", bl_net_loss(ctx, net, 3, t, &loss, NULL));
    BL_ASSERT_OK(ctx, bl_net_loss(ctx, net, 4, t, &loss, NULL));
    /* an inference forward has nothing to go backward through */
    BL_ASSERT_ERR(ctx, BL_EINVAL, "training", bl_net_backward(ctx, net, 4, 0.25f, false));
    bl_net_free(net);

    /* bad labels are reported with the sample */
    bl_shape vec = {1, {4, 1, 1}};
    BL_ASSERT_OK(ctx, bl_net_new(ctx, env->dev, &vec, &net));
    add(env, net, bl_linear(ctx, 3, true, &l), &l);
    BL_ASSERT_OK(ctx, bl_net_build(ctx, net, BL_LOSS_CROSS_ENTROPY, 1));
    BL_ASSERT_OK(ctx, bl_net_reserve(ctx, net, 2));
    int32_t labels[2] = {0, 3};
    BL_ASSERT_OK(ctx, bl_net_forward(ctx, net, x, 2, true, NULL));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "sample 1", bl_net_loss(ctx, net, 2, labels, &loss, NULL));
    bl_net_free(net);

    BL_ASSERT_ERR(ctx, BL_ESHAPE, "dimensions",
                  bl_net_new(ctx, env->dev, &(bl_shape){2, {3, 3, 1}}, &net));
    BL_ASSERT_ERR(ctx, BL_ESHAPE, "below 1",
                  bl_net_new(ctx, env->dev, &(bl_shape){1, {0, 1, 1}}, &net));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "NULL", bl_net_add(ctx, NULL, NULL));
}

/* Two micro-batches with accumulation give the full batch's gradient (to 1e-5). */
static void test_accumulation(void **state)
{
    bl_test_env *env = *state;
    data d = make_data(48, 10, 4);
    for (int loss_kind = 0; loss_kind < 2; loss_kind++) {
        bl_net *net = make_mlp(env, 10, false, (bl_loss_kind)loss_kind, 9);
        BL_ASSERT_OK(env->ctx, bl_net_reserve(env->ctx, net, 48));
        size_t n = bl_net_num_params(net);
        float *full = malloc(n * sizeof *full);
        const void *t0 = loss_kind ? (const void *)d.target : (const void *)d.y;
        const void *t1 = loss_kind ? (const void *)(d.target + 2 * 20) : (const void *)(d.y + 20);
        double loss;
        BL_ASSERT_OK(env->ctx, bl_net_forward(env->ctx, net, d.x, 48, true, NULL));
        BL_ASSERT_OK(env->ctx, bl_net_loss(env->ctx, net, 48, t0, &loss, NULL));
        BL_ASSERT_OK(env->ctx, bl_net_backward(env->ctx, net, 48, 1.0f / 48, false));
        memcpy(full, bl_net_grads(net), n * sizeof *full);
        /* 20 + 28 samples; the first micro-batch overwrites whatever was there */
        BL_ASSERT_OK(env->ctx, bl_net_forward(env->ctx, net, d.x, 20, true, NULL));
        BL_ASSERT_OK(env->ctx, bl_net_loss(env->ctx, net, 20, t0, &loss, NULL));
        BL_ASSERT_OK(env->ctx, bl_net_backward(env->ctx, net, 20, 1.0f / 48, false));
        BL_ASSERT_OK(env->ctx, bl_net_forward(env->ctx, net, d.x + 200, 28, true, NULL));
        BL_ASSERT_OK(env->ctx, bl_net_loss(env->ctx, net, 28, t1, &loss, NULL));
        BL_ASSERT_OK(env->ctx, bl_net_backward(env->ctx, net, 28, 1.0f / 48, true));
        const float *acc = bl_net_grads(net);
        for (size_t i = 0; i < n; i++)
            if (!(fabsf(acc[i] - full[i]) <= 1e-5f))
                fail_msg("grad[%zu]: accumulated %.8g, full batch %.8g", i, (double)acc[i],
                         (double)full[i]);
        free(full);
        bl_net_free(net);
    }
    free_data(&d);
}

/* The whole net's parameter gradient, loss included, against central differences of the mean
 * loss (computed in double by bl_net_loss): |g − fd| ≤ 2e-3·(1 + |fd|) with ε = 1e-2, as in
 * test_layers_dense.c. Starts with flatten, so the first trainable layer is not layer 0. */
static void test_loss_gradients(void **state)
{
    bl_test_env *env = *state;
    bl_ctx *ctx = env->ctx;
    data d = make_data(6, 8, 5);
    for (int loss_kind = 0; loss_kind < 2; loss_kind++) {
        bl_net *net;
        bl_layer *l;
        BL_ASSERT_OK(ctx, bl_net_new(ctx, env->dev, &(bl_shape){3, {2, 2, 2}}, &net));
        add(env, net, bl_flatten(ctx, &l), &l);
        add(env, net, bl_linear(ctx, 5, true, &l), &l);
        add(env, net, bl_activation_layer(ctx, BL_ACT_GELU, &l), &l);
        add(env, net, bl_linear(ctx, 2, true, &l), &l);
        BL_ASSERT_OK(ctx, bl_net_build(ctx, net, (bl_loss_kind)loss_kind, 2));
        BL_ASSERT_OK(ctx, bl_net_reserve(ctx, net, 6));
        const void *t = loss_kind ? (const void *)d.target : (const void *)d.y;
        double loss;
        BL_ASSERT_OK(ctx, bl_net_forward(ctx, net, d.x, 6, true, NULL));
        BL_ASSERT_OK(ctx, bl_net_loss(ctx, net, 6, t, &loss, NULL));
        BL_ASSERT_OK(ctx, bl_net_backward(ctx, net, 6, 1.0f / 6, false));
        size_t n = bl_net_num_params(net);
        float *w = bl_net_params(net);
        double *g = malloc(n * sizeof *g);
        for (size_t i = 0; i < n; i++)
            g[i] = bl_net_grads(net)[i];
        for (size_t i = 0; i < n; i++) {
            float keep = w[i];
            double up, down;
            w[i] = keep + 1e-2f;
            BL_ASSERT_OK(ctx, bl_net_forward(ctx, net, d.x, 6, true, NULL));
            BL_ASSERT_OK(ctx, bl_net_loss(ctx, net, 6, t, &up, NULL));
            w[i] = keep - 1e-2f;
            BL_ASSERT_OK(ctx, bl_net_forward(ctx, net, d.x, 6, true, NULL));
            BL_ASSERT_OK(ctx, bl_net_loss(ctx, net, 6, t, &down, NULL));
            w[i] = keep;
            double fd = (up - down) / 6 / 2e-2;
            if (!(fabs(g[i] - fd) <= 2e-3 * (1.0 + fabs(fd))))
                fail_msg("%s: grad[%zu] = %.7g, finite difference %.7g",
                         loss_kind ? "mse" : "cross-entropy", i, g[i], fd);
        }
        free(g);
        bl_net_free(net);
    }
    free_data(&d);
}

/* A ReLU of a custom type, which the net never runs in place: the reference for the built-in
 * one, which it runs in place after a linear layer (net.c, relu_in_place). */
static int ref_relu_setup(bl_layer *self, bl_ctx *ctx)
{
    (void)ctx;
    self->out = self->in;
    return BL_OK;
}

static int ref_relu_forward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool training,
                            const float *in, float *out)
{
    (void)ctx;
    (void)training;
    self->dev->ops->act_forward(self->dev, BL_ACT_RELU, batch * bl_shape_numel(&self->in), in,
                                out);
    return BL_OK;
}

static int ref_relu_backward(bl_layer *self, bl_ctx *ctx, int64_t batch, bool accumulate,
                             const float *in, const float *out, const float *d_out, float *d_in)
{
    (void)ctx;
    (void)accumulate;
    if (d_in)
        self->dev->ops->act_backward(self->dev, BL_ACT_RELU, batch * bl_shape_numel(&self->in),
                                     in, out, d_out, d_in);
    return BL_OK;
}

static const bl_layer_ops ref_relu_ops = {.size = sizeof(bl_layer_ops),
                                          .kind = "ref_relu",
                                          .setup = ref_relu_setup,
                                          .forward = ref_relu_forward,
                                          .backward = ref_relu_backward};

/* 6 → relu → linear 12 → relu → linear 7 → tanh → relu → linear 2, with the built-in ReLU or
 * the reference one at all three places */
static bl_net *relu_net(bl_test_env *env, bool reference)
{
    bl_ctx *ctx = env->ctx;
    bl_net *net;
    bl_layer *l;
    BL_ASSERT_OK(ctx, bl_net_new(ctx, env->dev, &(bl_shape){1, {6, 1, 1}}, &net));
    for (int i = 0; i < 7; i++) {
        static const int64_t widths[7] = {0, 12, 0, 7, 0, 0, 2};
        int rc = widths[i] ? bl_linear(ctx, widths[i], true, &l)
                 : i == 4  ? bl_activation_layer(ctx, BL_ACT_TANH, &l)
                 : reference ? bl_layer_new(ctx, &ref_relu_ops, NULL, NULL, &l)
                             : bl_activation_layer(ctx, BL_ACT_RELU, &l);
        add(env, net, rc, &l);
    }
    BL_ASSERT_OK(ctx, bl_net_build(ctx, net, BL_LOSS_CROSS_ENTROPY, 3));
    BL_ASSERT_OK(ctx, bl_net_reserve(ctx, net, 9));
    return net;
}

/* The ReLU right after a linear layer computes in place, the one over the net's input and the
 * one after tanh do not; the outputs, the loss and every gradient keep their bits, the
 * caller's input is left as it was, and the net holds one activation buffer fewer. */
static void test_relu_in_place(void **state)
{
    bl_test_env *env = *state;
    bl_ctx *ctx = env->ctx;
    data d = make_data(9, 6, 4);
    float x_before[9 * 6];
    memcpy(x_before, d.x, sizeof x_before);
    bl_net *net = relu_net(env, false), *ref = relu_net(env, true);
    assert_false(bl_net_layer(net, 0)->alias_input);
    assert_true(bl_net_layer(net, 2)->alias_input);
    assert_false(bl_net_layer(net, 5)->alias_input);
    assert_false(bl_net_layer(ref, 2)->alias_input);
    assert_true(bl_net_bytes(net) < bl_net_bytes(ref));
    for (int pass = 0; pass < 2; pass++) { /* the second after an SGD step on both */
        const float *out, *ref_out;
        double loss, ref_loss;
        BL_ASSERT_OK(ctx, bl_net_forward(ctx, net, d.x, 9, true, &out));
        BL_ASSERT_OK(ctx, bl_net_forward(ctx, ref, d.x, 9, true, &ref_out));
        assert_memory_equal(out, ref_out, 9 * 2 * sizeof *out);
        BL_ASSERT_OK(ctx, bl_net_loss(ctx, net, 9, d.y, &loss, NULL));
        BL_ASSERT_OK(ctx, bl_net_loss(ctx, ref, 9, d.y, &ref_loss, NULL));
        assert_true(loss == ref_loss);
        BL_ASSERT_OK(ctx, bl_net_backward(ctx, net, 9, 1.0f / 9, false));
        BL_ASSERT_OK(ctx, bl_net_backward(ctx, ref, 9, 1.0f / 9, false));
        size_t n = bl_net_num_params(net);
        assert_int_equal(n, bl_net_num_params(ref));
        assert_memory_equal(bl_net_grads(net), bl_net_grads(ref), n * sizeof(float));
        assert_memory_equal(d.x, x_before, sizeof x_before);
        for (size_t i = 0; i < n; i++) {
            bl_net_params(net)[i] -= 0.5f * bl_net_grads(net)[i];
            bl_net_params(ref)[i] -= 0.5f * bl_net_grads(ref)[i];
        }
    }
    bl_net_free(net);
    bl_net_free(ref);
    free_data(&d);
}

static int hook_calls;
static void count_hook(void *arg)
{
    hook_calls += *(int *)arg;
}

static void test_bookkeeping(void **state)
{
    bl_test_env *env = *state;
    bl_ctx *ctx = env->ctx;
    size_t before = env->dev->bytes_in_use;
    bl_net *net = make_mlp(env, 10, true, BL_LOSS_CROSS_ENTROPY, 1);
    static int one = 1, ten = 10;
    BL_ASSERT_OK(ctx, bl_net_on_free(ctx, net, count_hook, &one));
    BL_ASSERT_OK(ctx, bl_net_on_free(ctx, net, count_hook, &ten));
    size_t nseg;
    const bl_param_segment *seg = bl_net_segments(net, &nseg);
    assert_int_equal(nseg, 6);
    size_t expect = 0;
    for (size_t i = 0; i < nseg; i++) {
        assert_int_equal(seg[i].offset, expect);
        assert_int_equal(seg[i].decay, i % 2 == 0);
        assert_string_equal(seg[i].name, i % 2 == 0 ? "weight" : "bias");
        expect += seg[i].count;
    }
    assert_int_equal(expect, bl_net_num_params(net));
    assert_int_equal(seg[2].layer, 3); /* linear, relu, dropout, linear */
    assert_int_equal(bl_net_num_state(net), 0);
    assert_ptr_equal(bl_net_device(net), env->dev);
    assert_int_equal(bl_net_loss_kind(net), BL_LOSS_CROSS_ENTROPY);
    size_t unreserved = bl_net_bytes(net);
    assert_int_equal(unreserved, 2 * bl_net_num_params(net) * sizeof(float));
    BL_ASSERT_OK(ctx, bl_net_reserve(ctx, net, 100));
    assert_true(bl_net_bytes(net) > unreserved + 100 * (32 + 32 + 16 + 16 + 2) * sizeof(float));
    assert_int_equal(env->dev->bytes_in_use, before + bl_net_bytes(net));
    size_t allocs = env->dev->alloc_count;
    BL_ASSERT_OK(ctx, bl_net_reserve(ctx, net, 50)); /* smaller: nothing happens */
    assert_int_equal(env->dev->alloc_count, allocs);

    char buf[1024];
    size_t len = bl_net_describe(net, buf, sizeof buf);
    assert_int_equal(len, strlen(buf));
    assert_true(bl_test_contains(buf, "linear1"));
    assert_true(bl_test_contains(buf, "dropout1"));
    assert_true(bl_test_contains(buf, "linear3"));
    assert_true(bl_test_contains(buf, "352")); /* 10·32 + 32 */
    assert_true(bl_test_contains(buf, "cross-entropy"));
    char tiny[16];
    assert_int_equal(bl_net_describe(net, tiny, sizeof tiny), len); /* the length it needs */
    assert_int_equal(strlen(tiny), 15);

    /* per-layer seeds for stochastic layers differ from each other */
    assert_true(bl_net_layer(net, 2)->seed != bl_net_layer(net, 0)->seed);
    assert_null(bl_net_layer(net, 99));

    hook_calls = 0;
    bl_net_free(net);
    assert_int_equal(hook_calls, 11);
    assert_int_equal(env->dev->bytes_in_use, before); /* everything given back */
    bl_net_free(NULL);
}

/* After the first step, a training step (forward, loss, backward, update) allocates nothing:
 * no device memory and no heap memory anywhere in the process. */
static void test_step_allocates_nothing(void **state)
{
    bl_test_env *env = *state;
    data d = make_data(64, 10, 6);
    for (int threads = 1; threads <= 2; threads++) {
        bl_test_env local = *env;
        if (threads == 2)
            BL_ASSERT_OK(env->ctx, bl_device_cpu_open(env->ctx, 2, &local.dev));
        bl_net *net = make_mlp(&local, 10, true, BL_LOSS_CROSS_ENTROPY, 1);
        BL_ASSERT_OK(env->ctx, bl_net_reserve(env->ctx, net, 64));
        trainer t = make_trainer(&local, net);
        step(&t, d.x, d.y, 64, 0.01f, NULL);
        size_t dev_allocs = local.dev->alloc_count;
#ifdef COUNT_MALLOC
        long heap = atomic_load(&n_allocs);
#endif
        int64_t correct;
        for (int s = 0; s < 20; s++) {
            int64_t b = 1 + (s * 7) % 64; /* every batch size up to the reserve */
            step(&t, d.x, d.y, b, 0.01f, &correct);
        }
        assert_int_equal(local.dev->alloc_count, dev_allocs);
#ifdef COUNT_MALLOC
        long extra = atomic_load(&n_allocs) - heap;
        if (extra != 0)
            fail_msg("%ld heap allocations in 20 training steps (%d threads)", extra, threads);
#endif
        free_trainer(&t);
        if (threads == 2)
            bl_device_free(local.dev);
    }
    free_data(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_separable_problem),
        cmocka_unit_test(test_same_seed_same_bits),
        cmocka_unit_test(test_errors_name_the_layer),
        cmocka_unit_test(test_accumulation),
        cmocka_unit_test(test_loss_gradients),
        cmocka_unit_test(test_relu_in_place),
        cmocka_unit_test(test_bookkeeping),
        cmocka_unit_test(test_step_allocates_nothing),
    };
    return cmocka_run_group_tests_name("net", tests, bl_test_setup, bl_test_teardown);
}

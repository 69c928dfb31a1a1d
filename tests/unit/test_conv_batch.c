/* The CPU backend's whole-batch kernels behind the image layers (issue 13): conv2d_forward and
 * conv2d_backward against naive double-precision references, the same bits on one and on two
 * threads, the conv2d layer's per-image path (a backend without those ops) against them, and
 * the 2×2 max-pool path's NaN and tie rules and its backward against the general rule, and
 * (where the CPU has AVX2/FMA) the forward's and the input gradient's arithmetic order, bit
 * for bit.
 *
 * Tolerance (elementwise, |got − want| ≤ atol + rtol·|want|): atol 1e-5, rtol 1e-4, as in
 * test_image_kernels.c (float32 sums of up to a few hundred terms of size ≤ 1).
 */
#define _POSIX_C_SOURCE 200809L /* setenv */

#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ATOL 1e-5
#define RTOL 1e-4

/* ---- conv2d_forward / conv2d_backward ---------------------------------------------------- */

typedef struct conv_geom {
    int64_t C, H, W, k, s, p, O, batch, slots;
} conv_geom;

static const conv_geom conv_cases[] = {
    /* C  H   W  k  s  p  O  batch slots */
    {1, 28, 28, 5, 1, 2, 6, 5, 8},   /* LeNet C1, fewer images than slots */
    {6, 14, 14, 5, 1, 0, 16, 11, 8}, /* LeNet C3, uneven slots */
    {3, 7, 9, 3, 2, 1, 4, 4, 3},     /* stride 2 and padding */
    {5, 4, 6, 1, 1, 0, 7, 6, 2},     /* 1×1: no columns */
    {2, 5, 3, 2, 1, 1, 3, 1, 1},     /* one image, one slot, padding wider than some rows */
    {17, 3, 3, 3, 1, 1, 20, 9, 4},   /* a weight gradient too large for the own "nt" kernel */
    {8, 20, 20, 3, 1, 1, 12, 3, 2},  /* ... and an output gradient too large for wgrad_t */
    {5, 9, 11, 3, 1, 0, 11, 4, 3},   /* column-free kernels: 16 lanes for 11 outputs, 6 + 3 */
    {7, 8, 8, 2, 1, 0, 5, 3, 2},     /* column-free kernels: 8 lanes for 5 outputs */
    {5, 12, 12, 7, 1, 0, 3, 2, 2},   /* column-free kernels: taps of a row in 6 + 1 */
    {3, 12, 13, 3, 1, 1, 8, 5, 3},   /* direct kernel: 6 + 2 outputs, odd K, a 5-lane tail */
    {2, 30, 30, 3, 1, 0, 7, 3, 2},   /* direct kernel: 6 + 1 outputs, two 16-column tiles */
};

typedef struct conv_ref {
    double *y, *dw, *dx;
} conv_ref;

/* y = conv(x) + bias, dw = Σ dy·colsᵀ (+ dw0), dx = the input gradient, in double. */
static conv_ref naive_conv(const conv_geom *g, const bl_window2d *w, const float *x,
                           const float *weight, const float *bias, const float *dy,
                           const float *dw0)
{
    const int64_t OH = w->out_h, OW = w->out_w, K = g->C * g->k * g->k;
    const int64_t in_n = g->C * g->H * g->W, out_n = g->O * OH * OW;
    conv_ref r = {bl_test_host_doubles((size_t)(g->batch * out_n)),
                  bl_test_host_doubles((size_t)(g->O * K)),
                  bl_test_host_doubles((size_t)(g->batch * in_n))};
    for (int64_t i = 0; i < g->O * K; i++)
        r.dw[i] = dw0 ? dw0[i] : 0.0;
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t o = 0; o < g->O; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    const int64_t yi = n * out_n + (o * OH + oh) * OW + ow;
                    double acc = bias ? bias[o] : 0.0;
                    for (int64_t c = 0; c < g->C; c++)
                        for (int64_t ki = 0; ki < g->k; ki++)
                            for (int64_t kj = 0; kj < g->k; kj++) {
                                const int64_t ih = oh * g->s - g->p + ki, iw = ow * g->s - g->p + kj;
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W)
                                    continue;
                                const int64_t xi = n * in_n + (c * g->H + ih) * g->W + iw;
                                const int64_t wi = o * K + (c * g->k + ki) * g->k + kj;
                                acc += (double)weight[wi] * x[xi];
                                r.dw[wi] += (double)dy[yi] * x[xi];
                                r.dx[xi] += (double)weight[wi] * dy[yi];
                            }
                    r.y[yi] = acc;
                }
    return r;
}

static void check_conv_case(bl_test_env *env, const conv_geom *g, bl_rng *rng)
{
    bl_device *dev = env->dev;
    const bl_window2d w = bl_test_window2d(g->C, g->H, g->W, g->k, g->k, g->s, g->s, g->p, g->p);
    const int64_t K = g->C * g->k * g->k, P = w.out_h * w.out_w;
    const int64_t in_n = g->C * g->H * g->W, out_n = g->O * P;
    float *x = bl_test_dev_floats(env, (size_t)(g->batch * in_n));
    float *weight = bl_test_dev_floats(env, (size_t)(g->O * K));
    float *bias = bl_test_dev_floats(env, (size_t)g->O);
    float *y = bl_test_dev_floats(env, (size_t)(g->batch * out_n));
    float *dy = bl_test_dev_floats(env, (size_t)(g->batch * out_n));
    float *dw = bl_test_dev_floats(env, (size_t)(g->O * K));
    float *dw0 = bl_test_dev_floats(env, (size_t)(g->O * K));
    float *dx = bl_test_dev_floats(env, (size_t)(g->batch * in_n));
    const size_t scratch_n = (size_t)(g->slots * (K * P + g->O * K));
    float *scratch = bl_test_dev_floats(env, scratch_n);
    bl_test_fill_uniform(x, (size_t)(g->batch * in_n), rng, -1, 1);
    bl_test_fill_uniform(weight, (size_t)(g->O * K), rng, -1, 1);
    bl_test_fill_uniform(bias, (size_t)g->O, rng, -1, 1);
    bl_test_fill_uniform(dy, (size_t)(g->batch * out_n), rng, -1, 1);
    bl_test_fill_uniform(dw0, (size_t)(g->O * K), rng, -1, 1);

    /* forward, with and without the bias; outputs and scratch start as NaN: all overwritten */
    conv_ref want = naive_conv(g, &w, x, weight, bias, dy, dw0);
    bl_test_fill_value(y, (size_t)(g->batch * out_n), NAN);
    bl_test_fill_value(scratch, scratch_n, NAN);
    dev->ops->conv2d_forward(dev, &w, g->O, g->batch, x, weight, bias, y, g->slots, scratch);
    bl_test_check_close("conv2d_forward y", y, want.y, (size_t)(g->batch * out_n), ATOL, RTOL);
    double *want_nobias = bl_test_host_doubles((size_t)(g->batch * out_n));
    for (int64_t i = 0; i < g->batch * out_n; i++)
        want_nobias[i] = want.y[i] - bias[(i / P) % g->O];
    dev->ops->conv2d_forward(dev, &w, g->O, g->batch, x, weight, NULL, y, g->slots, scratch);
    bl_test_check_close("conv2d_forward y, no bias", y, want_nobias,
                        (size_t)(g->batch * out_n), ATOL, RTOL);

    /* backward accumulating into dw0 (beta 1), with dx overwritten */
    memcpy(dw, dw0, (size_t)(g->O * K) * sizeof *dw);
    bl_test_fill_value(dx, (size_t)(g->batch * in_n), NAN);
    bl_test_fill_value(scratch, scratch_n, NAN);
    dev->ops->conv2d_backward(dev, &w, g->O, g->batch, x, weight, dy, 1.0f, dw, dx, g->slots,
                              scratch);
    bl_test_check_close("conv2d_backward dweight (+=)", dw, want.dw, (size_t)(g->O * K), ATOL,
                        RTOL);
    bl_test_check_close("conv2d_backward dx", dx, want.dx, (size_t)(g->batch * in_n), ATOL,
                        RTOL);

    /* beta 0 ignores dweight's contents (NaN here); no input gradient asked */
    for (int64_t i = 0; i < g->O * K; i++)
        want.dw[i] -= dw0[i];
    bl_test_fill_value(dw, (size_t)(g->O * K), NAN);
    dev->ops->conv2d_backward(dev, &w, g->O, g->batch, x, weight, dy, 0.0f, dw, NULL, g->slots,
                              scratch);
    bl_test_check_close("conv2d_backward dweight (=)", dw, want.dw, (size_t)(g->O * K), ATOL,
                        RTOL);
    free(want.y), free(want.dw), free(want.dx), free(want_nobias);
    bl_test_release_all(env);
}

static void test_conv_batch_ops_match_naive(void **state)
{
    bl_test_env *env = *state;
    bl_rng rng;
    bl_rng_seed(&rng, 31, BL_STREAM_USER);
    for (size_t t = 0; t < sizeof conv_cases / sizeof conv_cases[0]; t++)
        check_conv_case(env, &conv_cases[t], &rng);
}

/* The slots fix the arithmetic: two threads give the same bits as one. */
static void test_conv_batch_same_bits_on_two_threads(void **state)
{
    bl_test_env *env = *state;
    bl_device *two = NULL;
    BL_ASSERT_OK(env->ctx, bl_device_cpu_open(env->ctx, 2, &two));
    bl_device *devs[2] = {env->dev, two};
    const conv_geom *g = &conv_cases[1];
    const bl_window2d w = bl_test_window2d(g->C, g->H, g->W, g->k, g->k, g->s, g->s, g->p, g->p);
    const int64_t K = g->C * g->k * g->k, P = w.out_h * w.out_w;
    const int64_t in_n = g->C * g->H * g->W, out_n = g->O * P;
    const size_t scratch_n = (size_t)(g->slots * (K * P + g->O * K));
    /* the CPU device's memory is the host's: plain malloc'd buffers serve both devices */
    float *x = malloc((size_t)(g->batch * in_n) * sizeof *x);
    float *weight = malloc((size_t)(g->O * K) * sizeof *weight);
    float *dy = malloc((size_t)(g->batch * out_n) * sizeof *dy);
    float *scratch = malloc(scratch_n * sizeof *scratch);
    float *y[2], *dw[2], *dx[2];
    bl_rng rng;
    bl_rng_seed(&rng, 32, BL_STREAM_USER);
    assert_true(x && weight && dy && scratch);
    bl_test_fill_uniform(x, (size_t)(g->batch * in_n), &rng, -1, 1);
    bl_test_fill_uniform(weight, (size_t)(g->O * K), &rng, -1, 1);
    bl_test_fill_uniform(dy, (size_t)(g->batch * out_n), &rng, -1, 1);
    for (int d = 0; d < 2; d++) {
        y[d] = malloc((size_t)(g->batch * out_n) * sizeof *y[d]);
        dw[d] = malloc((size_t)(g->O * K) * sizeof *dw[d]);
        dx[d] = malloc((size_t)(g->batch * in_n) * sizeof *dx[d]);
        assert_true(y[d] && dw[d] && dx[d]);
        devs[d]->ops->conv2d_forward(devs[d], &w, g->O, g->batch, x, weight, NULL, y[d],
                                     g->slots, scratch);
        devs[d]->ops->conv2d_backward(devs[d], &w, g->O, g->batch, x, weight, dy, 0.0f, dw[d],
                                      dx[d], g->slots, scratch);
    }
    bl_test_check_equal_f("y, 1 vs 2 threads", y[1], y[0], (size_t)(g->batch * out_n));
    bl_test_check_equal_f("dweight, 1 vs 2 threads", dw[1], dw[0], (size_t)(g->O * K));
    bl_test_check_equal_f("dx, 1 vs 2 threads", dx[1], dx[0], (size_t)(g->batch * in_n));
    for (int d = 0; d < 2; d++)
        free(y[d]), free(dw[d]), free(dx[d]);
    free(x), free(weight), free(dy), free(scratch);
    bl_device_free(two);
}

/* With AVX-512 the column-free kernels run layers of 9 to 16 output channels on 16-lane vectors
 * with each output's FMA chain unchanged: the same bits as the AVX2 kernels
 * (BATCHLAB_CPU_AVX512=0), forward and backward, on rows of up to 12 positions and beyond
 * (tiles of 12) and on weights whose K is not a multiple of 12 taps; so do the direct
 * kernels of layers with few input channels (K of 25, 18 and 27 taps: pairs, a single last
 * tap). */
static void test_conv_avx512_same_bits_as_avx2(void **state)
{
    if (!bl_test_has_avx512())
        skip();
    bl_test_env *env = *state;
    bl_device *narrow = bl_test_open_avx2_device(env->ctx);
    bl_device *devs[2] = {env->dev, narrow};
    static const conv_geom cases[] = {
        {6, 14, 14, 5, 1, 0, 16, 11, 8}, /* LeNet C3 */
        {1, 28, 28, 5, 1, 2, 6, 5, 8},   /* LeNet C1: the direct forward, 32 columns */
        {2, 30, 30, 3, 1, 0, 7, 3, 2},   /* direct, 6 + 1 outputs, 28 columns */
        {3, 12, 13, 3, 1, 1, 8, 5, 3},   /* direct, 13 columns: one 16-column tile */
        {5, 9, 11, 3, 1, 0, 11, 4, 3},   /* 11 outputs */
        {3, 9, 20, 3, 1, 0, 9, 3, 2},    /* 9 outputs, rows of 18: 12 + 6 */
        {2, 6, 30, 4, 1, 0, 13, 2, 1},   /* rows of 27: 12 + 12 + 3; K = 32 */
    };
    bl_rng rng;
    bl_rng_seed(&rng, 40, BL_STREAM_USER);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const conv_geom *g = &cases[t];
        const bl_window2d w =
            bl_test_window2d(g->C, g->H, g->W, g->k, g->k, g->s, g->s, g->p, g->p);
        const int64_t K = g->C * g->k * g->k, P = w.out_h * w.out_w;
        const size_t in_n = (size_t)(g->batch * g->C * g->H * g->W);
        const size_t out_n = (size_t)(g->batch * g->O * P), wn = (size_t)(g->O * K);
        float *x = bl_test_dev_floats(env, in_n), *weight = bl_test_dev_floats(env, wn);
        float *bias = bl_test_dev_floats(env, (size_t)g->O), *dy = bl_test_dev_floats(env, out_n);
        float *dw0 = bl_test_dev_floats(env, wn);
        float *scratch = bl_test_dev_floats(env, (size_t)(g->slots * (K * P + g->O * K)));
        float *y[2], *dw[2], *dx[2];
        bl_test_fill_uniform(x, in_n, &rng, -1, 1);
        bl_test_fill_uniform(weight, wn, &rng, -1, 1);
        bl_test_fill_uniform(bias, (size_t)g->O, &rng, -1, 1);
        bl_test_fill_uniform(dy, out_n, &rng, -1, 1);
        bl_test_fill_uniform(dw0, wn, &rng, -1, 1);
        for (int d = 0; d < 2; d++) {
            y[d] = bl_test_dev_floats(env, out_n);
            dw[d] = bl_test_dev_floats(env, wn);
            dx[d] = bl_test_dev_floats(env, in_n);
            memcpy(dw[d], dw0, wn * sizeof *dw0);
            devs[d]->ops->conv2d_forward(devs[d], &w, g->O, g->batch, x, weight, bias, y[d],
                                         g->slots, scratch);
            devs[d]->ops->conv2d_backward(devs[d], &w, g->O, g->batch, x, weight, dy, 1.0f,
                                          dw[d], dx[d], g->slots, scratch);
        }
        bl_test_check_equal_f("y, AVX-512 vs AVX2", y[0], y[1], out_n);
        bl_test_check_equal_f("dweight, AVX-512 vs AVX2", dw[0], dw[1], wn);
        bl_test_check_equal_f("dx, AVX-512 vs AVX2", dx[0], dx[1], in_n);
        /* without an input gradient (the direct weight gradient where it fits) */
        for (int d = 0; d < 2; d++) {
            memcpy(dw[d], dw0, wn * sizeof *dw0);
            devs[d]->ops->conv2d_backward(devs[d], &w, g->O, g->batch, x, weight, dy, 1.0f,
                                          dw[d], NULL, g->slots, scratch);
        }
        bl_test_check_equal_f("dweight without dx, AVX-512 vs AVX2", dw[0], dw[1], wn);
        bl_test_release_all(env);
    }
    bl_device_free(narrow);
}

/* ---- the conv2d layer with and without the batch ops --------------------------------------- */

/* Runs a conv2d layer's forward and backward (accumulating into grads preset to 0.5) on `dev`;
 * the buffers are host memory (both devices are the CPU). */
static void run_layer(bl_test_env *env, bl_device *dev, const conv_geom *g, const float *x,
                      const float *dy, float *y, float *grads, float *dx)
{
    bl_layer *L = NULL;
    BL_ASSERT_OK(env->ctx, bl_conv2d(env->ctx, g->O, g->k, g->s, g->p, true, &L));
    L->in = (bl_shape){3, {g->C, g->H, g->W}};
    L->dev = dev;
    BL_ASSERT_OK(env->ctx, L->ops->setup(L, env->ctx));
    float *params = malloc(L->n_params * sizeof *params);
    float *ws = malloc((L->ws_fixed + L->ws_per_sample * (size_t)g->batch) * sizeof *ws);
    assert_true(params && ws);
    bl_rng rng;
    bl_rng_seed(&rng, 34, BL_STREAM_INIT);
    L->ops->init(L, params, NULL, &rng);
    for (size_t i = 0; i < L->n_params; i++)
        grads[i] = 0.5f;
    L->params = params;
    L->grads = grads;
    L->ws = ws;
    L->max_batch = g->batch;
    BL_ASSERT_OK(env->ctx, L->ops->forward(L, env->ctx, g->batch, true, x, y));
    BL_ASSERT_OK(env->ctx, L->ops->backward(L, env->ctx, g->batch, true, x, y, dy, dx));
    free(params);
    free(ws);
    bl_layer_free(L);
}

/* A backend without conv2d_forward/backward (NULL) gets the per-image path: same results. */
static void test_conv_layer_per_image_path_matches(void **state)
{
    bl_test_env *env = *state;
    bl_device_ops plain_ops = *env->dev->ops;
    plain_ops.conv2d_forward = NULL;
    plain_ops.conv2d_backward = NULL;
    bl_device plain = *env->dev; /* the same CPU device, seen through the reduced table */
    plain.ops = &plain_ops;
    bl_rng rng;
    bl_rng_seed(&rng, 35, BL_STREAM_USER);
    for (size_t t = 0; t < sizeof conv_cases / sizeof conv_cases[0]; t++) {
        const conv_geom *g = &conv_cases[t];
        const bl_window2d w =
            bl_test_window2d(g->C, g->H, g->W, g->k, g->k, g->s, g->s, g->p, g->p);
        const size_t in_n = (size_t)(g->batch * g->C * g->H * g->W);
        const size_t out_n = (size_t)(g->batch * g->O * w.out_h * w.out_w);
        const size_t np = (size_t)(g->O * g->C * g->k * g->k + g->O);
        float *x = malloc(in_n * sizeof *x), *dy = malloc(out_n * sizeof *dy);
        float *y[2], *gr[2], *dx[2];
        assert_true(x && dy);
        bl_test_fill_uniform(x, in_n, &rng, -1, 1);
        bl_test_fill_uniform(dy, out_n, &rng, -1, 1);
        for (int d = 0; d < 2; d++) {
            y[d] = malloc(out_n * sizeof *y[d]);
            gr[d] = malloc(np * sizeof *gr[d]);
            dx[d] = malloc(in_n * sizeof *dx[d]);
            assert_true(y[d] && gr[d] && dx[d]);
            bl_test_fill_value(dx[d], in_n, NAN);
            run_layer(env, d ? &plain : env->dev, g, x, dy, y[d], gr[d], dx[d]);
        }
        double *want = bl_test_host_doubles(in_n > np ? (in_n > out_n ? in_n : out_n)
                                                      : (np > out_n ? np : out_n));
        bl_test_to_double(y[1], want, out_n);
        bl_test_check_close("layer y, batch op vs per image", y[0], want, out_n, ATOL, RTOL);
        bl_test_to_double(gr[1], want, np);
        bl_test_check_close("layer grads, batch op vs per image", gr[0], want, np, ATOL, RTOL);
        bl_test_to_double(dx[1], want, in_n);
        bl_test_check_close("layer dx, batch op vs per image", dx[0], want, in_n, ATOL, RTOL);
        for (int d = 0; d < 2; d++)
            free(y[d]), free(gr[d]), free(dx[d]);
        free(x), free(dy), free(want);
    }
}

/* With AVX2/FMA the CPU forward of up to 16 output channels (the backend's own GEMM kernel on
 * the column matrix, or the direct kernel of cpu_conv_direct.c for few input channels) computes
 * every output as one FMA chain from zero over k = (c, ki, kj) in order, padding included as
 * zeros, and adds the bias afterwards: the same bits as before the direct kernel existed. */
static void test_conv_forward_fma_chain_bits(void **state)
{
    if (!bl_test_has_avx2())
        skip();
    bl_test_env *env = *state;
    bl_device *dev = env->dev;
    bl_rng rng;
    bl_rng_seed(&rng, 37, BL_STREAM_USER);
    for (size_t t = 0; t < sizeof conv_cases / sizeof conv_cases[0]; t++) {
        const conv_geom *g = &conv_cases[t];
        if (g->O > 16)
            continue; /* OpenBLAS's order */
        const bl_window2d w =
            bl_test_window2d(g->C, g->H, g->W, g->k, g->k, g->s, g->s, g->p, g->p);
        const int64_t K = g->C * g->k * g->k, OH = w.out_h, OW = w.out_w, P = OH * OW;
        const int64_t in_n = g->C * g->H * g->W, out_n = g->O * P;
        float *x = bl_test_dev_floats(env, (size_t)(g->batch * in_n));
        float *weight = bl_test_dev_floats(env, (size_t)(g->O * K));
        float *bias = bl_test_dev_floats(env, (size_t)g->O);
        float *y = bl_test_dev_floats(env, (size_t)(g->batch * out_n));
        float *scratch = bl_test_dev_floats(env, (size_t)(g->slots * (K * P + g->O * K)));
        bl_test_fill_uniform(x, (size_t)(g->batch * in_n), &rng, -1, 1);
        bl_test_fill_uniform(weight, (size_t)(g->O * K), &rng, -1, 1);
        bl_test_fill_uniform(bias, (size_t)g->O, &rng, -1, 1);
        dev->ops->conv2d_forward(dev, &w, g->O, g->batch, x, weight, bias, y, g->slots, scratch);
        for (int64_t n = 0; n < g->batch; n++)
            for (int64_t o = 0; o < g->O; o++)
                for (int64_t i = 0; i < P; i++) {
                    const int64_t oh = i / OW, ow = i % OW;
                    float acc = 0.0f;
                    for (int64_t k = 0; k < K; k++) {
                        const int64_t c = k / (g->k * g->k), ki = k / g->k % g->k, kj = k % g->k;
                        const int64_t ih = oh * g->s - g->p + ki, iw = ow * g->s - g->p + kj;
                        const bool in = ih >= 0 && ih < g->H && iw >= 0 && iw < g->W;
                        const float v = in ? x[n * in_n + (c * g->H + ih) * g->W + iw] : 0.0f;
                        acc = fmaf(weight[o * K + k], v, acc);
                    }
                    const float want = acc + bias[o];
                    const float got = y[n * out_n + o * P + i];
                    if (memcmp(&got, &want, sizeof got) != 0)
                        fail_msg("case %zu: y[%lld][%lld][%lld] = %.9g, the FMA chain gives %.9g",
                                 t, (long long)n, (long long)o, (long long)i, (double)got,
                                 (double)want);
                }
        bl_test_release_all(env);
    }
}

/* With AVX2/FMA the CPU input gradient of up to 16 output channels is the columns' gradient
 * (one FMA chain from zero over o per entry, the backend's own GEMM kernel) folded back into
 * the image, each pixel a sum from 0 of the entries that land on it in the order (ki, kj):
 * checked bit for bit, so that a faster fold (the register-row col2im of stride-1 windows)
 * keeps the arithmetic of col2im. */
static void test_conv_backward_dx_order_bits(void **state)
{
    if (!bl_test_has_avx2())
        skip();
    bl_test_env *env = *state;
    bl_device *dev = env->dev;
    bl_rng rng;
    bl_rng_seed(&rng, 38, BL_STREAM_USER);
    /* the shared cases, and widths that need 1, 3 and 4 vectors per image row */
    static const conv_geom extra[] = {
        {2, 6, 7, 3, 1, 1, 5, 2, 2},    /* one vector, padding */
        {3, 9, 21, 4, 1, 2, 6, 3, 2},   /* three vectors, even kernel, padding 2 */
        {1, 5, 32, 5, 1, 0, 16, 2, 1},  /* four vectors, the widest row the fold keeps */
        {2, 4, 33, 3, 1, 1, 3, 2, 2},   /* too wide for it: col2im_image */
    };
    const size_t n_shared = sizeof conv_cases / sizeof conv_cases[0];
    for (size_t t = 0; t < n_shared + sizeof extra / sizeof extra[0]; t++) {
        const conv_geom *g = t < n_shared ? &conv_cases[t] : &extra[t - n_shared];
        if (g->O > 16)
            continue; /* OpenBLAS's order */
        const bl_window2d w =
            bl_test_window2d(g->C, g->H, g->W, g->k, g->k, g->s, g->s, g->p, g->p);
        const int64_t K = g->C * g->k * g->k, OH = w.out_h, OW = w.out_w, P = OH * OW;
        const int64_t in_n = g->C * g->H * g->W, out_n = g->O * P;
        float *x = bl_test_dev_floats(env, (size_t)(g->batch * in_n));
        float *weight = bl_test_dev_floats(env, (size_t)(g->O * K));
        float *dy = bl_test_dev_floats(env, (size_t)(g->batch * out_n));
        float *dw = bl_test_dev_floats(env, (size_t)(g->O * K));
        float *dx = bl_test_dev_floats(env, (size_t)(g->batch * in_n));
        float *scratch = bl_test_dev_floats(env, (size_t)(g->slots * (K * P + g->O * K)));
        bl_test_fill_uniform(x, (size_t)(g->batch * in_n), &rng, -1, 1);
        bl_test_fill_uniform(weight, (size_t)(g->O * K), &rng, -1, 1);
        bl_test_fill_uniform(dy, (size_t)(g->batch * out_n), &rng, -1, 1);
        bl_test_fill_value(dx, (size_t)(g->batch * in_n), NAN);
        dev->ops->conv2d_backward(dev, &w, g->O, g->batch, x, weight, dy, 0.0f, dw, dx,
                                  g->slots, scratch);
        for (int64_t n = 0; n < g->batch; n++)
            for (int64_t c = 0; c < g->C; c++)
                for (int64_t ih = 0; ih < g->H; ih++)
                    for (int64_t iw = 0; iw < g->W; iw++) {
                        float want = 0.0f;
                        for (int64_t ki = 0; ki < g->k; ki++)
                            for (int64_t kj = 0; kj < g->k; kj++) {
                                const int64_t th = ih + g->p - ki, tw = iw + g->p - kj;
                                if (th < 0 || tw < 0 || th % g->s || tw % g->s ||
                                    th / g->s >= OH || tw / g->s >= OW)
                                    continue;
                                const int64_t k = (c * g->k + ki) * g->k + kj;
                                const int64_t i = th / g->s * OW + tw / g->s;
                                float col = 0.0f; /* the columns' gradient at (k, i) */
                                for (int64_t o = 0; o < g->O; o++)
                                    col = fmaf(weight[o * K + k], dy[n * out_n + o * P + i], col);
                                want += col;
                            }
                        const float got = dx[n * in_n + (c * g->H + ih) * g->W + iw];
                        if (got != want) /* (a 1×1 layer skips the 0 +: ±0 are equal here) */
                            fail_msg("case %zu: dx[%lld][%lld][%lld][%lld] = %.9g, want %.9g", t,
                                     (long long)n, (long long)c, (long long)ih, (long long)iw,
                                     (double)got, (double)want);
                    }
        bl_test_release_all(env);
    }
}

/* With AVX2/FMA the weight gradient of the cases below is computed transposed by the backend's
 * own kernels (on the columns, or column-free from the image for stride-1 unpadded layers):
 * per image one FMA chain over the output positions in order, added to the slot's sum of the
 * images before it; the slots' sums added in slot order. Checked bit for bit, so that the
 * column-free kernel keeps the arithmetic of the column product. */
static void test_conv_backward_dweight_order_bits(void **state)
{
    if (!bl_test_has_avx2())
        skip();
    bl_test_env *env = *state;
    bl_device *dev = env->dev;
    bl_rng rng;
    bl_rng_seed(&rng, 39, BL_STREAM_USER);
    static const conv_geom cases[] = {
        {6, 14, 14, 5, 1, 0, 16, 11, 8}, /* LeNet C3: column-free */
        {17, 3, 3, 3, 1, 1, 20, 9, 4},   /* padding, 20 outputs: on the columns */
        {5, 9, 11, 3, 1, 0, 11, 4, 3},   /* column-free, 11 outputs */
        {7, 8, 8, 2, 1, 0, 5, 3, 2},     /* column-free, 5 outputs */
        {5, 12, 12, 7, 1, 0, 3, 2, 2},   /* column-free, 7-wide kernel */
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const conv_geom *g = &cases[t];
        const bl_window2d w =
            bl_test_window2d(g->C, g->H, g->W, g->k, g->k, g->s, g->s, g->p, g->p);
        const int64_t K = g->C * g->k * g->k, OW = w.out_w, P = w.out_h * OW;
        const int64_t in_n = g->C * g->H * g->W, out_n = g->O * P;
        float *x = bl_test_dev_floats(env, (size_t)(g->batch * in_n));
        float *weight = bl_test_dev_floats(env, (size_t)(g->O * K));
        float *dy = bl_test_dev_floats(env, (size_t)(g->batch * out_n));
        float *dw = bl_test_dev_floats(env, (size_t)(g->O * K));
        float *scratch = bl_test_dev_floats(env, (size_t)(g->slots * (K * P + g->O * K)));
        bl_test_fill_uniform(x, (size_t)(g->batch * in_n), &rng, -1, 1);
        bl_test_fill_uniform(weight, (size_t)(g->O * K), &rng, -1, 1);
        bl_test_fill_uniform(dy, (size_t)(g->batch * out_n), &rng, -1, 1);
        bl_test_fill_value(dw, (size_t)(g->O * K), NAN);
        dev->ops->conv2d_backward(dev, &w, g->O, g->batch, x, weight, dy, 0.0f, dw, NULL,
                                  g->slots, scratch);
        for (int64_t o = 0; o < g->O; o++)
            for (int64_t k = 0; k < K; k++) {
                const int64_t c = k / (g->k * g->k), ki = k / g->k % g->k, kj = k % g->k;
                float want = 0.0f;
                bool any = false;
                for (int64_t s = 0; s < g->slots; s++) {
                    const int64_t n0 = s * g->batch / g->slots, n1 = (s + 1) * g->batch / g->slots;
                    float part = 0.0f;
                    for (int64_t n = n0; n < n1; n++) {
                        float acc = 0.0f;
                        for (int64_t i = 0; i < P; i++) {
                            const int64_t ih = i / OW * g->s - g->p + ki;
                            const int64_t iw = i % OW * g->s - g->p + kj;
                            const bool in = ih >= 0 && ih < g->H && iw >= 0 && iw < g->W;
                            const float v = in ? x[n * in_n + (c * g->H + ih) * g->W + iw] : 0.0f;
                            acc = fmaf(v, dy[n * out_n + o * P + i], acc);
                        }
                        part = n == n0 ? acc : acc + part;
                    }
                    if (n1 > n0) {
                        want = any ? want + part : part;
                        any = true;
                    }
                }
                const float got = dw[o * K + k];
                if (memcmp(&got, &want, sizeof got) != 0)
                    fail_msg("case %zu: dweight[%lld][%lld] = %.9g, want %.9g", t, (long long)o,
                             (long long)k, (double)got, (double)want);
            }
        bl_test_release_all(env);
    }
}

/* ---- the 2×2 max-pool path ---------------------------------------------------------------- */

/* The rule every maxpool kernel follows: scanning the window row by row, a value wins when it
 * is larger than the best so far or is NaN (so the last NaN wins, and otherwise the first
 * maximum). */
static void rule_maxpool2(int64_t planes, int64_t H, int64_t W, const float *x, float *y,
                          int32_t *arg)
{
    const int64_t OH = H / 2, OW = W / 2;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                const float *in = x + p * H * W;
                int32_t bi = (int32_t)(2 * oh * W + 2 * ow);
                float best = in[bi];
                for (int64_t i = 0; i < 2; i++)
                    for (int64_t j = 0; j < 2; j++) {
                        const int32_t at = (int32_t)((2 * oh + i) * W + 2 * ow + j);
                        if (in[at] > best || isnan(in[at])) {
                            best = in[at];
                            bi = at;
                        }
                    }
                y[p * OH * OW + oh * OW + ow] = best;
                arg[p * OH * OW + oh * OW + ow] = bi;
            }
}

/* One width of the 2×2 test below. */
static void check_maxpool_2x2(bl_test_env *env, bl_device *dev, int64_t W, bl_rng *rng_in)
{
    const int64_t batch = 3, C = 2, H = 7; /* odd sizes: the last row/column dropped */
    const int64_t planes = batch * C, in_n = planes * H * W, out_n = planes * (H / 2) * (W / 2);
    bl_window2d w = bl_test_window2d(C, H, W, 2, 2, 2, 2, 0, 0);
    float *x = bl_test_dev_floats(env, (size_t)in_n), *y = bl_test_dev_floats(env, (size_t)out_n);
    int32_t *arg = (int32_t *)(void *)bl_test_dev_floats(env, (size_t)out_n);
    float *want_y = malloc((size_t)out_n * sizeof *want_y);
    int32_t *want_arg = malloc((size_t)out_n * sizeof *want_arg);
    assert_true(want_y && want_arg);
    bl_rng rng = *rng_in;
    static const float specials[6] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f};
    for (int64_t i = 0; i < in_n; i++) {
        const uint64_t r = bl_rng_below(&rng, 10);
        /* ties (small integers), some specials (several NaNs per window now and then) */
        x[i] = r < 6 ? (float)bl_rng_below(&rng, 3) : specials[bl_rng_below(&rng, 6)];
    }
    dev->ops->maxpool_forward(dev, &w, batch, x, y, arg);
    rule_maxpool2(planes, H, W, x, want_y, want_arg);
    for (int64_t i = 0; i < out_n; i++) {
        if (arg[i] != want_arg[i])
            fail_msg("W %lld: argmax[%lld] = %d, want %d", (long long)W, (long long)i, arg[i],
                     want_arg[i]);
        if (memcmp(&y[i], &want_y[i], sizeof y[i]) != 0) /* the winner's own bits (NaN, −0) */
            fail_msg("W %lld: y[%lld] = %g, want %g", (long long)W, (long long)i, y[i],
                     want_y[i]);
    }

    /* backward: the same bits as zeroing dx and adding dy at each winner (+0 for a −0 dy),
     * including the odd last row and column that no window covers */
    float *dy = bl_test_dev_floats(env, (size_t)out_n), *dx = bl_test_dev_floats(env, (size_t)in_n);
    float *want_dx = calloc((size_t)in_n, sizeof *want_dx);
    assert_non_null(want_dx);
    bl_test_fill_uniform(dy, (size_t)out_n, &rng, -1, 1);
    for (int64_t i = 0; i < out_n; i += 5)
        dy[i] = -0.0f;
    const int64_t HW = H * W, OHW = (H / 2) * (W / 2);
    for (int64_t i = 0; i < out_n; i++)
        want_dx[(i / OHW) * HW + want_arg[i]] += dy[i];
    bl_test_fill_value(dx, (size_t)in_n, NAN);
    dev->ops->maxpool_backward(dev, &w, batch, dy, arg, dx);
    for (int64_t i = 0; i < in_n; i++)
        if (memcmp(&dx[i], &want_dx[i], sizeof dx[i]) != 0)
            fail_msg("W %lld: dx[%lld] = %g, want %g", (long long)W, (long long)i, dx[i],
                     want_dx[i]);
    free(want_dx);
    free(want_y);
    free(want_arg);
    bl_test_release_all(env);
    *rng_in = rng;
}

/* Rows of 18 outputs (two groups of eight and a tail; one of sixteen and a tail on AVX-512)
 * and of 32 (two groups of sixteen), and the widths of the vector paths' other cases: fewer
 * than eight outputs (LeNet's 10 → 5), exactly eight, 14 (28 → 14), one; on the device's
 * rows and on the AVX2 ones. */
static void test_maxpool_2x2_nan_ties_inf(void **state)
{
    bl_test_env *env = *state;
    bl_rng rng;
    bl_rng_seed(&rng, 33, BL_STREAM_USER);
    static const int64_t widths[] = {37, 10, 11, 16, 28, 2, 3, 65};
    /* the device's rows (AVX-512 where the CPU has it), then the AVX2 ones */
    bl_device *narrow = bl_test_open_avx2_device(env->ctx);
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
            check_maxpool_2x2(env, d ? narrow : env->dev, widths[i], &rng);
    bl_device_free(narrow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_batch_ops_match_naive),
        cmocka_unit_test(test_conv_batch_same_bits_on_two_threads),
        cmocka_unit_test(test_conv_avx512_same_bits_as_avx2),
        cmocka_unit_test(test_conv_layer_per_image_path_matches),
        cmocka_unit_test(test_maxpool_2x2_nan_ties_inf),
        cmocka_unit_test(test_conv_forward_fma_chain_bits),
        cmocka_unit_test(test_conv_backward_dx_order_bits),
        cmocka_unit_test(test_conv_backward_dweight_order_bits),
    };
    return cmocka_run_group_tests(tests, bl_test_setup, bl_test_teardown);
}

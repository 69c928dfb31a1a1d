/* Image and normalization layers (conv2d, maxpool2d, batchnorm) and their CPU kernels.
 *
 * Kernels (im2col/col2im, maxpool, batch norm) are compared with naive references written
 * here; layers are checked three ways: forward against a naive double-precision reference,
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

/* ---- small helpers ------------------------------------------------------------------------ */

/* Device allocations of the current test, released by release_all. */
#define MAX_ALLOCS 64
static struct {
    void *ptr;
    size_t bytes;
} allocs[MAX_ALLOCS];
static int n_allocs;

static float *dev_floats(bl_test_env *env, size_t n)
{
    void *p = NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    BL_ASSERT_OK(env->ctx, bl_device_alloc(env->ctx, env->dev, bytes, &p));
    assert_true(n_allocs < MAX_ALLOCS);
    allocs[n_allocs].ptr = p;
    allocs[n_allocs].bytes = bytes;
    n_allocs++;
    return p;
}

static void release_all(bl_test_env *env)
{
    while (n_allocs > 0) {
        n_allocs--;
        bl_device_release(env->dev, allocs[n_allocs].ptr, allocs[n_allocs].bytes);
    }
}

static double *host_doubles(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

static void fill_uniform(float *p, size_t n, bl_rng *rng, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * bl_rng_uniform(rng);
}

static void fill_value(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        p[i] = v;
}

/* Distinct values 1e-2 apart in random order, centred on 0. */
static void fill_distinct(float *p, size_t n, bl_rng *rng)
{
    int64_t *perm = malloc(n * sizeof *perm);
    assert_non_null(perm);
    bl_rng_permutation(rng, perm, (int64_t)n);
    for (size_t i = 0; i < n; i++)
        p[i] = 0.01f * (float)(perm[i] - (int64_t)n / 2);
    free(perm);
}

static void to_double(const float *src, double *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

static void check_close(const char *what, const float *got, const double *want, size_t n,
                        double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= atol + rtol * fabs(want[i])))
            fail_msg("%s[%zu]: got %.9g, want %.9g (|err| %.3g > %.3g)", what, i,
                     (double)got[i], want[i], err, atol + rtol * fabs(want[i]));
    }
}

static void check_equal_f(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s[%zu]: got %.9g, want %.9g", what, i, (double)got[i], (double)want[i]);
}

static bl_window2d window(int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t sh,
                          int64_t sw, int64_t ph, int64_t pw)
{
    bl_window2d w = {C, H, W, kh, kw, sh, sw, ph, pw, 0, 0};
    w.out_h = (H + 2 * ph - kh) / sh + 1;
    w.out_w = (W + 2 * pw - kw) / sw + 1;
    return w;
}

/* ---- kernels: im2col / col2im ------------------------------------------------------------- */

static const int64_t im2col_cases[][9] = {
    /* C  H  W  kh kw sh sw ph pw */
    {2, 5, 7, 3, 3, 1, 1, 0, 0}, {3, 6, 5, 3, 3, 2, 2, 1, 1}, {1, 4, 9, 2, 3, 2, 1, 1, 0},
    {2, 5, 5, 5, 5, 1, 1, 2, 2}, {1, 3, 3, 1, 1, 1, 1, 0, 0}, {1, 7, 4, 3, 2, 3, 2, 2, 1},
    {2, 3, 3, 1, 1, 1, 1, 1, 1}, {1, 8, 8, 4, 4, 4, 4, 0, 0}, {2, 6, 3, 3, 3, 2, 3, 1, 1},
};

static void test_im2col_col2im_match_naive(void **state)
{
    bl_test_env *env = *state;
    bl_rng rng;
    bl_rng_seed(&rng, 11, BL_STREAM_USER);
    for (size_t t = 0; t < sizeof im2col_cases / sizeof im2col_cases[0]; t++) {
        const int64_t *g = im2col_cases[t];
        bl_window2d w = window(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8]);
        const int64_t img_n = w.channels * w.height * w.width;
        const int64_t rows = w.channels * w.kernel_h * w.kernel_w, P = w.out_h * w.out_w;
        float *img = dev_floats(env, (size_t)img_n), *cols = dev_floats(env, (size_t)(rows * P));
        float *back = dev_floats(env, (size_t)img_n);
        double *want_cols = host_doubles((size_t)(rows * P));
        double *want_img = host_doubles((size_t)img_n);
        fill_uniform(img, (size_t)img_n, &rng, -1, 1);
        fill_value(cols, (size_t)(rows * P), NAN);
        env->dev->ops->im2col(env->dev, &w, img, cols);

        for (int64_t c = 0; c < w.channels; c++)
            for (int64_t ki = 0; ki < w.kernel_h; ki++)
                for (int64_t kj = 0; kj < w.kernel_w; kj++)
                    for (int64_t oh = 0; oh < w.out_h; oh++)
                        for (int64_t ow = 0; ow < w.out_w; ow++) {
                            int64_t ih = oh * w.stride_h - w.pad_h + ki;
                            int64_t iw = ow * w.stride_w - w.pad_w + kj;
                            int64_t r = (c * w.kernel_h + ki) * w.kernel_w + kj;
                            bool in = ih >= 0 && ih < w.height && iw >= 0 && iw < w.width;
                            want_cols[r * P + oh * w.out_w + ow] =
                                in ? img[(c * w.height + ih) * w.width + iw] : 0.0;
                        }
        char what[64];
        snprintf(what, sizeof what, "im2col case %zu", t);
        check_close(what, cols, want_cols, (size_t)(rows * P), 0, 0);

        /* col2im accumulates into an image that already holds values */
        fill_uniform(cols, (size_t)(rows * P), &rng, -1, 1);
        fill_uniform(back, (size_t)img_n, &rng, -1, 1);
        to_double(back, want_img, (size_t)img_n);
        for (int64_t c = 0; c < w.channels; c++)
            for (int64_t ki = 0; ki < w.kernel_h; ki++)
                for (int64_t kj = 0; kj < w.kernel_w; kj++)
                    for (int64_t oh = 0; oh < w.out_h; oh++)
                        for (int64_t ow = 0; ow < w.out_w; ow++) {
                            int64_t ih = oh * w.stride_h - w.pad_h + ki;
                            int64_t iw = ow * w.stride_w - w.pad_w + kj;
                            int64_t r = (c * w.kernel_h + ki) * w.kernel_w + kj;
                            if (ih >= 0 && ih < w.height && iw >= 0 && iw < w.width)
                                want_img[(c * w.height + ih) * w.width + iw] +=
                                    cols[r * P + oh * w.out_w + ow];
                        }
        env->dev->ops->col2im(env->dev, &w, cols, back);
        snprintf(what, sizeof what, "col2im case %zu", t);
        check_close(what, back, want_img, (size_t)img_n, FWD_ATOL, FWD_RTOL);
        free(want_cols);
        free(want_img);
        release_all(env);
    }
}

/* ---- kernels: max pooling ----------------------------------------------------------------- */

static void naive_maxpool(const bl_window2d *w, int64_t batch, const float *x, double *y,
                          int32_t *arg)
{
    const int64_t HW = w->height * w->width, OHW = w->out_h * w->out_w;
    for (int64_t p = 0; p < batch * w->channels; p++)
        for (int64_t oh = 0; oh < w->out_h; oh++)
            for (int64_t ow = 0; ow < w->out_w; ow++) {
                double best = -INFINITY;
                int32_t bi = -1;
                for (int64_t ki = 0; ki < w->kernel_h; ki++)
                    for (int64_t kj = 0; kj < w->kernel_w; kj++) {
                        int64_t ih = oh * w->stride_h - w->pad_h + ki;
                        int64_t iw = ow * w->stride_w - w->pad_w + kj;
                        if (ih < 0 || ih >= w->height || iw < 0 || iw >= w->width)
                            continue;
                        double v = x[p * HW + ih * w->width + iw];
                        if (bi < 0 || v > best) {
                            best = v;
                            bi = (int32_t)(ih * w->width + iw);
                        }
                    }
                y[p * OHW + oh * w->out_w + ow] = best;
                arg[p * OHW + oh * w->out_w + ow] = bi;
            }
}

static void test_maxpool_kernels_match_naive(void **state)
{
    bl_test_env *env = *state;
    static const int64_t cases[][9] = {
        {2, 4, 6, 2, 2, 2, 2, 0, 0}, {1, 5, 7, 3, 3, 1, 1, 0, 0}, {3, 7, 5, 3, 3, 2, 2, 1, 1},
        {2, 5, 6, 2, 3, 1, 2, 0, 1}, {1, 6, 6, 3, 3, 3, 3, 0, 0},
    };
    const int64_t batch = 3;
    bl_rng rng;
    bl_rng_seed(&rng, 12, BL_STREAM_USER);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int64_t *g = cases[t];
        bl_window2d w = window(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8]);
        const int64_t in_n = batch * w.channels * w.height * w.width;
        const int64_t out_n = batch * w.channels * w.out_h * w.out_w;
        float *x = dev_floats(env, (size_t)in_n), *y = dev_floats(env, (size_t)out_n);
        float *dy = dev_floats(env, (size_t)out_n), *dx = dev_floats(env, (size_t)in_n);
        int32_t *arg = (int32_t *)(void *)dev_floats(env, (size_t)out_n);
        int32_t *want_arg = malloc((size_t)out_n * sizeof *want_arg);
        double *want_y = host_doubles((size_t)out_n), *want_dx = host_doubles((size_t)in_n);
        assert_non_null(want_arg);
        /* ties on purpose in half the cases: the first maximum must win */
        if (t % 2)
            for (int64_t i = 0; i < in_n; i++)
                x[i] = (float)(bl_rng_below(&rng, 4));
        else
            fill_uniform(x, (size_t)in_n, &rng, -1, 1);
        env->dev->ops->maxpool_forward(env->dev, &w, batch, x, y, arg);
        naive_maxpool(&w, batch, x, want_y, want_arg);
        check_close("maxpool y", y, want_y, (size_t)out_n, 0, 0);
        for (int64_t i = 0; i < out_n; i++)
            if (arg[i] != want_arg[i])
                fail_msg("case %zu: argmax[%lld] = %d, want %d", t, (long long)i, arg[i],
                         want_arg[i]);

        fill_uniform(dy, (size_t)out_n, &rng, -1, 1);
        fill_value(dx, (size_t)in_n, NAN); /* must be overwritten */
        const int64_t HW = w.height * w.width, OHW = w.out_h * w.out_w;
        for (int64_t i = 0; i < out_n; i++)
            want_dx[(i / OHW) * HW + want_arg[i]] += dy[i];
        env->dev->ops->maxpool_backward(env->dev, &w, batch, dy, arg, dx);
        check_close("maxpool dx", dx, want_dx, (size_t)in_n, FWD_ATOL, FWD_RTOL);
        free(want_arg);
        free(want_y);
        free(want_dx);
        release_all(env);
    }
}

static void test_maxpool_kernel_nan_and_inf(void **state)
{
    bl_test_env *env = *state;
    bl_window2d w = window(1, 2, 4, 2, 2, 2, 2, 0, 0);
    float *x = dev_floats(env, 8), *y = dev_floats(env, 2);
    int32_t *arg = (int32_t *)(void *)dev_floats(env, 2);
    const float in[8] = {1, NAN, -INFINITY, -INFINITY, 3, 2, -INFINITY, -INFINITY};
    memcpy(x, in, sizeof in);
    env->dev->ops->maxpool_forward(env->dev, &w, 1, x, y, arg);
    assert_true(isnan(y[0]));     /* NaN propagates, as in PyTorch */
    assert_int_equal(arg[0], 1);
    assert_true(isinf(y[1]) && y[1] < 0);
    assert_int_equal(arg[1], 2); /* an all −inf window still has a valid winner */
    release_all(env);
}

/* ---- kernels: batch normalization --------------------------------------------------------- */

static void test_bn_kernels_match_naive(void **state)
{
    bl_test_env *env = *state;
    static const int64_t cases[][4] = {
        /* outer C inner offset */
        {5, 3, 1, 0}, {4, 70, 1, 0}, {3, 2, 9, 0}, {2, 67, 5, 0}, {6, 2, 13, 100}, {1, 3, 1, 0},
    };
    const float eps = 1e-5f, momentum = 0.1f;
    bl_rng rng;
    bl_rng_seed(&rng, 13, BL_STREAM_USER);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int64_t outer = cases[t][0], C = cases[t][1], inner = cases[t][2];
        const int64_t n = outer * C * inner, m = outer * inner;
        float *x = dev_floats(env, (size_t)n), *y = dev_floats(env, (size_t)n);
        float *dy = dev_floats(env, (size_t)n), *dx = dev_floats(env, (size_t)n);
        float *gamma = dev_floats(env, (size_t)C), *beta = dev_floats(env, (size_t)C);
        float *rm = dev_floats(env, (size_t)C), *rv = dev_floats(env, (size_t)C);
        float *mean = dev_floats(env, (size_t)C), *invstd = dev_floats(env, (size_t)C);
        float *dg = dev_floats(env, (size_t)C), *db = dev_floats(env, (size_t)C);
        double *wy = host_doubles((size_t)n), *wdx = host_doubles((size_t)n);
        double *wm = host_doubles((size_t)C), *wis = host_doubles((size_t)C);
        double *wrm = host_doubles((size_t)C), *wrv = host_doubles((size_t)C);
        double *wdg = host_doubles((size_t)C), *wdb = host_doubles((size_t)C);
        fill_uniform(x, (size_t)n, &rng, -2, 2);
        for (int64_t i = 0; i < n; i++)
            x[i] += (float)cases[t][3];
        fill_uniform(gamma, (size_t)C, &rng, 0.5f, 1.5f);
        fill_uniform(beta, (size_t)C, &rng, -0.5f, 0.5f);
        fill_uniform(rm, (size_t)C, &rng, -0.5f, 0.5f);
        fill_uniform(rv, (size_t)C, &rng, 0.5f, 1.5f);
        fill_uniform(dy, (size_t)n, &rng, -1, 1);
        fill_uniform(dg, (size_t)C, &rng, -1, 1);
        fill_uniform(db, (size_t)C, &rng, -1, 1);
        double *dg0 = host_doubles((size_t)C), *db0 = host_doubles((size_t)C);
        to_double(dg, dg0, (size_t)C);
        to_double(db, db0, (size_t)C);

        for (int64_t c = 0; c < C; c++) {
            double s = 0, q = 0, sdy = 0, sdyx = 0;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++)
                    s += x[(o * C + c) * inner + i];
            double mu = s / (double)m;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) {
                    double d = x[(o * C + c) * inner + i] - mu;
                    q += d * d;
                }
            double var = q / (double)m, is = 1.0 / sqrt(var + eps);
            wm[c] = mu;
            wis[c] = is;
            wrm[c] = 0.9 * rm[c] + 0.1 * mu;
            wrv[c] = m > 1 ? 0.9 * rv[c] + 0.1 * q / (double)(m - 1) : rv[c];
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) {
                    int64_t k = (o * C + c) * inner + i;
                    wy[k] = (x[k] - mu) * is * gamma[c] + beta[c];
                    sdy += dy[k];
                    sdyx += dy[k] * (x[k] - mu) * is;
                }
            wdb[c] = db[c] + sdy;
            wdg[c] = dg[c] + sdyx;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) {
                    int64_t k = (o * C + c) * inner + i;
                    double xh = (x[k] - mu) * is;
                    wdx[k] = gamma[c] * is * (dy[k] - sdy / (double)m - xh * sdyx / (double)m);
                }
        }
        env->dev->ops->bn_forward_train(env->dev, outer, C, inner, x, gamma, beta, eps, momentum,
                                        rm, rv, mean, invstd, y);
        check_close("bn mean", mean, wm, (size_t)C, FWD_ATOL, FWD_RTOL);
        check_close("bn invstd", invstd, wis, (size_t)C, FWD_ATOL, FWD_RTOL);
        check_close("bn running_mean", rm, wrm, (size_t)C, FWD_ATOL, FWD_RTOL);
        check_close("bn running_var", rv, wrv, (size_t)C, FWD_ATOL, FWD_RTOL);
        check_close("bn y", y, wy, (size_t)n, 1e-4, FWD_RTOL); /* offset-100 case: ulp(100) */

        fill_value(dx, (size_t)n, NAN);
        env->dev->ops->bn_backward(env->dev, outer, C, inner, x, gamma, mean, invstd, dy, dx, dg,
                                   db);
        if (m > 1) /* n = 1: x̂ is 0/0-free but meaningless; only check it is finite */
            check_close("bn dx", dx, wdx, (size_t)n, 1e-4, 1e-3);
        else
            for (int64_t k = 0; k < n; k++)
                assert_true(isfinite(dx[k]));
        check_close("bn dgamma (+=)", dg, wdg, (size_t)C, 1e-4, 1e-3);
        check_close("bn dbeta (+=)", db, wdb, (size_t)C, 1e-4, 1e-3);
        /* dx = NULL: only the parameter gradients, accumulated once more */
        for (int64_t c = 0; c < C; c++) {
            wdg[c] += wdg[c] - dg0[c];
            wdb[c] += wdb[c] - db0[c];
        }
        env->dev->ops->bn_backward(env->dev, outer, C, inner, x, gamma, mean, invstd, dy, NULL,
                                   dg, db);
        check_close("bn dgamma without dx", dg, wdg, (size_t)C, 1e-4, 1e-3);
        check_close("bn dbeta without dx", db, wdb, (size_t)C, 1e-4, 1e-3);

        /* eval: running statistics */
        for (int64_t c = 0; c < C; c++) {
            double a = gamma[c] / sqrt((double)rv[c] + eps);
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) {
                    int64_t k = (o * C + c) * inner + i;
                    wy[k] = (x[k] - rm[c]) * a + beta[c];
                }
        }
        env->dev->ops->bn_forward_eval(env->dev, outer, C, inner, x, gamma, beta, eps, rm, rv, y);
        check_close("bn eval y", y, wy, (size_t)n, 1e-4, FWD_RTOL);

        free(wy), free(wdx), free(wm), free(wis), free(wrm), free(wrv), free(wdg), free(wdb);
        free(dg0), free(db0);
        release_all(env);
    }
}

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
    layer->params = dev_floats(env, layer->n_params);
    layer->grads = dev_floats(env, layer->n_params);
    layer->state = dev_floats(env, layer->n_state);
    r->ws_n = layer->ws_fixed + layer->ws_per_sample * (size_t)batch;
    layer->ws = dev_floats(env, r->ws_n);
    fill_value(layer->ws, r->ws_n, NAN); /* nothing may be read before it is written */
    layer->max_batch = batch;
    fill_value(layer->params, layer->n_params, 0);
    fill_value(layer->state, layer->n_state, 0);
    if (layer->ops->init) {
        bl_rng rng;
        bl_rng_seed(&rng, seed, BL_STREAM_INIT);
        layer->ops->init(layer, layer->params, layer->state, &rng);
    }
    r->in_n = bl_shape_numel(&layer->in);
    r->out_n = bl_shape_numel(&layer->out);
    r->x = dev_floats(env, (size_t)(batch * r->in_n));
    r->dx = dev_floats(env, (size_t)(batch * r->in_n));
    r->y = dev_floats(env, (size_t)(batch * r->out_n));
    r->dy = dev_floats(env, (size_t)(batch * r->out_n));
}

static void rig_close(bl_test_env *env, rig *r)
{
    bl_layer_free(r->layer);
    release_all(env);
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
        fill_distinct(r->x, xn, &rng);
    else
        fill_uniform(r->x, xn, &rng, -1, 1);
    if (!keep_params)
        fill_uniform(L->params, pn, &rng, -1, 1);
    fill_uniform(r->dy, yn, &rng, -1, 1);

    double *xd = host_doubles(xn), *pd = host_doubles(pn), *rd = host_doubles(yn);
    double *yd = host_doubles(yn), *gx = host_doubles(xn), *gp = host_doubles(pn);
    to_double(r->x, xd, xn);
    to_double(L->params, pd, pn);
    to_double(r->dy, rd, yn);
    char what[128];

    BL_ASSERT_OK(ctx, L->ops->forward(L, ctx, B, true, r->x, r->y));
    f(spec, B, xd, pd, yd);
    snprintf(what, sizeof what, "%s forward", label);
    check_close(what, r->y, yd, yn, FWD_ATOL, FWD_RTOL);

    fill_value(r->dx, xn, NAN);
    fill_value(L->grads, pn, 12345.0f); /* accumulate = false must overwrite */
    BL_ASSERT_OK(ctx, L->ops->backward(L, ctx, B, false, r->x, r->y, r->dy, r->dx));
    central_diff(f, spec, B, xd, pd, rd, yd, yn, xd, xn, gx);
    central_diff(f, spec, B, xd, pd, rd, yd, yn, pd, pn, gp);
    snprintf(what, sizeof what, "%s d_in", label);
    check_close(what, r->dx, gx, xn, GRAD_ATOL, GRAD_RTOL);
    snprintf(what, sizeof what, "%s param grads", label);
    check_close(what, L->grads, gp, pn, GRAD_ATOL, GRAD_RTOL);

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
    check_close(what, L->grads, gp, pn, 1e-6, 1e-6);
    snprintf(what, sizeof what, "%s d_in on accumulate", label);
    check_equal_f(what, r->dx, dx1, xn);

    /* no d_in (the net's first trainable layer, at any index): the same parameter gradients */
    BL_ASSERT_OK(ctx, L->ops->backward(L, ctx, B, false, r->x, r->y, r->dy, NULL));
    snprintf(what, sizeof what, "%s grads without d_in", label);
    check_equal_f(what, L->grads, g1, pn);
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
        check_equal_f("maxpool eval", r.y, y_train, (size_t)(r.batch * r.out_n));
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
    fill_uniform(layer->params, 6, &rng, -1, 1);
    const float rm[3] = {0.5f, -1.0f, 2.0f}, rv[3] = {0.25f, 4.0f, 1.0f};
    memcpy(layer->state, rm, sizeof rm);
    memcpy(layer->state + 3, rv, sizeof rv);
    const size_t n = 4 * 12;
    fill_uniform(r.x, n, &rng, -3, 3);
    double *want = host_doubles(n);
    for (size_t k = 0; k < n; k++) {
        size_t c = (k / 4) % 3;
        want[k] = (r.x[k] - rm[c]) / sqrt(rv[c] + 1e-3) * layer->params[c] + layer->params[3 + c];
    }
    BL_ASSERT_OK(env->ctx, layer->ops->forward(layer, env->ctx, 4, false, r.x, r.y));
    check_close("bn eval", r.y, want, n, FWD_ATOL, FWD_RTOL);
    check_equal_f("running mean untouched by eval", layer->state, rm, 3);
    check_equal_f("running var untouched by eval", layer->state + 3, rv, 3);
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
    check_close("running stats after step 1", layer->state, want1, 4, 1e-6, 1e-6);
    /* the constant feature normalizes to beta = 0 */
    for (int o = 0; o < 4; o++)
        assert_float_equal(r.y[o * 2 + 1], 0.0f, 0);
    memcpy(r.x, step2, sizeof step2);
    BL_ASSERT_OK(env->ctx, layer->ops->forward(layer, env->ctx, 4, true, r.x, r.y));
    const double want2[4] = {0.325, 0.18, 0.9 * want1[2] + 0.4 / 3.0, 0.81 + 0.4 / 3.0};
    check_close("running stats after step 2", layer->state, want2, 4, 1e-6, 1e-6);
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
    check_close("ghost running stats", layer->state, want_state, 2, 1e-6, 1e-6);
    const double e = (double)1e-5f;
    const double want_y[4] = {-1 / sqrt(1 + e), 1 / sqrt(1 + e), -2 / sqrt(4 + e), 2 / sqrt(4 + e)};
    check_close("ghost y", r.y, want_y, 4, 1e-6, 1e-6);
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
            fill_uniform(r.x, n, &rng, -1, 1);
            fill_uniform(r.dy, n, &rng, -1, 1);
            fill_uniform(layer->params, layer->n_params, &rng, 0.5f, 1.5f);
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
                check_equal_f(names[k], out[gi][k], out[0][k], sizes[k]);
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

    float *x = dev_floats(env, (size_t)(B * BAR_SIDE * BAR_SIDE));
    int32_t *labels = (int32_t *)(void *)dev_floats(env, (size_t)B);
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
    release_all(env);
    bl_net_free(net);
}

static void test_lenet_learns_through_net(void **state)
{
    train_lenet(*state, false);
    train_lenet(*state, true);
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
        cmocka_unit_test(test_im2col_col2im_match_naive),
        cmocka_unit_test(test_maxpool_kernels_match_naive),
        cmocka_unit_test(test_maxpool_kernel_nan_and_inf),
        cmocka_unit_test(test_bn_kernels_match_naive),
        cmocka_unit_test(test_conv2d_gradcheck),
        cmocka_unit_test(test_conv2d_init_follows_pytorch),
        cmocka_unit_test(test_maxpool2d_gradcheck),
        cmocka_unit_test(test_batchnorm_gradcheck),
        cmocka_unit_test(test_batchnorm_init_and_eval_uses_running_stats),
        cmocka_unit_test(test_batchnorm_running_stats_match_pytorch),
        cmocka_unit_test(test_ghost_batchnorm_updates_per_sub_batch),
        cmocka_unit_test(test_ghost_batchnorm_full_equals_plain),
        cmocka_unit_test(test_bad_arguments_and_shapes),
        cmocka_unit_test(test_net_add_reports_conv_shape_error),
        cmocka_unit_test(test_lenet_learns_through_net),
    };
    return cmocka_run_group_tests(tests, bl_test_setup, bl_test_teardown);
}

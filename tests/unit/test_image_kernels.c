/* The CPU kernels behind the image and normalization layers (im2col/col2im, max pooling,
 * batch normalization), compared with naive references written here.
 *
 * Tolerance (elementwise, |got − want| ≤ atol + rtol·|want|): atol 1e-5, rtol 1e-4 against
 * the double-precision references (float32 rounding of sums of tens of terms is ~1e-6).
 *
 * The device is the CPU: device pointers are host pointers, so tests read and write them
 * directly. (Split from test_layers_image.c; the layers themselves are tested there.)
 */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FWD_ATOL 1e-5
#define FWD_RTOL 1e-4

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
        bl_window2d w = bl_test_window2d(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8]);
        const int64_t img_n = w.channels * w.height * w.width;
        const int64_t rows = w.channels * w.kernel_h * w.kernel_w, P = w.out_h * w.out_w;
        float *img = bl_test_dev_floats(env, (size_t)img_n);
        float *cols = bl_test_dev_floats(env, (size_t)(rows * P));
        float *back = bl_test_dev_floats(env, (size_t)img_n);
        double *want_cols = bl_test_host_doubles((size_t)(rows * P));
        double *want_img = bl_test_host_doubles((size_t)img_n);
        bl_test_fill_uniform(img, (size_t)img_n, &rng, -1, 1);
        bl_test_fill_value(cols, (size_t)(rows * P), NAN);
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
        bl_test_check_close(what, cols, want_cols, (size_t)(rows * P), 0, 0);

        /* col2im accumulates into an image that already holds values */
        bl_test_fill_uniform(cols, (size_t)(rows * P), &rng, -1, 1);
        bl_test_fill_uniform(back, (size_t)img_n, &rng, -1, 1);
        bl_test_to_double(back, want_img, (size_t)img_n);
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
        bl_test_check_close(what, back, want_img, (size_t)img_n, FWD_ATOL, FWD_RTOL);
        free(want_cols);
        free(want_img);
        bl_test_release_all(env);
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
        bl_window2d w = bl_test_window2d(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8]);
        const int64_t in_n = batch * w.channels * w.height * w.width;
        const int64_t out_n = batch * w.channels * w.out_h * w.out_w;
        float *x = bl_test_dev_floats(env, (size_t)in_n);
        float *y = bl_test_dev_floats(env, (size_t)out_n);
        float *dy = bl_test_dev_floats(env, (size_t)out_n);
        float *dx = bl_test_dev_floats(env, (size_t)in_n);
        int32_t *arg = (int32_t *)(void *)bl_test_dev_floats(env, (size_t)out_n);
        int32_t *want_arg = malloc((size_t)out_n * sizeof *want_arg);
        double *want_y = bl_test_host_doubles((size_t)out_n);
        double *want_dx = bl_test_host_doubles((size_t)in_n);
        assert_non_null(want_arg);
        /* ties on purpose in half the cases: the first maximum must win */
        if (t % 2)
            for (int64_t i = 0; i < in_n; i++)
                x[i] = (float)(bl_rng_below(&rng, 4));
        else
            bl_test_fill_uniform(x, (size_t)in_n, &rng, -1, 1);
        env->dev->ops->maxpool_forward(env->dev, &w, batch, x, y, arg);
        naive_maxpool(&w, batch, x, want_y, want_arg);
        bl_test_check_close("maxpool y", y, want_y, (size_t)out_n, 0, 0);
        for (int64_t i = 0; i < out_n; i++)
            if (arg[i] != want_arg[i])
                fail_msg("case %zu: argmax[%lld] = %d, want %d", t, (long long)i, arg[i],
                         want_arg[i]);

        bl_test_fill_uniform(dy, (size_t)out_n, &rng, -1, 1);
        bl_test_fill_value(dx, (size_t)in_n, NAN); /* must be overwritten */
        const int64_t HW = w.height * w.width, OHW = w.out_h * w.out_w;
        for (int64_t i = 0; i < out_n; i++)
            want_dx[(i / OHW) * HW + want_arg[i]] += dy[i];
        env->dev->ops->maxpool_backward(env->dev, &w, batch, dy, arg, dx);
        bl_test_check_close("maxpool dx", dx, want_dx, (size_t)in_n, FWD_ATOL, FWD_RTOL);
        free(want_arg);
        free(want_y);
        free(want_dx);
        bl_test_release_all(env);
    }
}

static void test_maxpool_kernel_nan_and_inf(void **state)
{
    bl_test_env *env = *state;
    bl_window2d w = bl_test_window2d(1, 2, 4, 2, 2, 2, 2, 0, 0);
    float *x = bl_test_dev_floats(env, 8), *y = bl_test_dev_floats(env, 2);
    int32_t *arg = (int32_t *)(void *)bl_test_dev_floats(env, 2);
    const float in[8] = {1, NAN, -INFINITY, -INFINITY, 3, 2, -INFINITY, -INFINITY};
    memcpy(x, in, sizeof in);
    env->dev->ops->maxpool_forward(env->dev, &w, 1, x, y, arg);
    assert_true(isnan(y[0]));     /* NaN propagates, as in PyTorch */
    assert_int_equal(arg[0], 1);
    assert_true(isinf(y[1]) && y[1] < 0);
    assert_int_equal(arg[1], 2); /* an all −inf window still has a valid winner */
    bl_test_release_all(env);
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
        float *x = bl_test_dev_floats(env, (size_t)n), *y = bl_test_dev_floats(env, (size_t)n);
        float *dy = bl_test_dev_floats(env, (size_t)n), *dx = bl_test_dev_floats(env, (size_t)n);
        float *gamma = bl_test_dev_floats(env, (size_t)C);
        float *beta = bl_test_dev_floats(env, (size_t)C);
        float *rm = bl_test_dev_floats(env, (size_t)C), *rv = bl_test_dev_floats(env, (size_t)C);
        float *mean = bl_test_dev_floats(env, (size_t)C);
        float *invstd = bl_test_dev_floats(env, (size_t)C);
        float *dg = bl_test_dev_floats(env, (size_t)C), *db = bl_test_dev_floats(env, (size_t)C);
        double *wy = bl_test_host_doubles((size_t)n), *wdx = bl_test_host_doubles((size_t)n);
        double *wm = bl_test_host_doubles((size_t)C), *wis = bl_test_host_doubles((size_t)C);
        double *wrm = bl_test_host_doubles((size_t)C), *wrv = bl_test_host_doubles((size_t)C);
        double *wdg = bl_test_host_doubles((size_t)C), *wdb = bl_test_host_doubles((size_t)C);
        bl_test_fill_uniform(x, (size_t)n, &rng, -2, 2);
        for (int64_t i = 0; i < n; i++)
            x[i] += (float)cases[t][3];
        bl_test_fill_uniform(gamma, (size_t)C, &rng, 0.5f, 1.5f);
        bl_test_fill_uniform(beta, (size_t)C, &rng, -0.5f, 0.5f);
        bl_test_fill_uniform(rm, (size_t)C, &rng, -0.5f, 0.5f);
        bl_test_fill_uniform(rv, (size_t)C, &rng, 0.5f, 1.5f);
        bl_test_fill_uniform(dy, (size_t)n, &rng, -1, 1);
        bl_test_fill_uniform(dg, (size_t)C, &rng, -1, 1);
        bl_test_fill_uniform(db, (size_t)C, &rng, -1, 1);
        double *dg0 = bl_test_host_doubles((size_t)C), *db0 = bl_test_host_doubles((size_t)C);
        bl_test_to_double(dg, dg0, (size_t)C);
        bl_test_to_double(db, db0, (size_t)C);

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
        bl_test_check_close("bn mean", mean, wm, (size_t)C, FWD_ATOL, FWD_RTOL);
        bl_test_check_close("bn invstd", invstd, wis, (size_t)C, FWD_ATOL, FWD_RTOL);
        bl_test_check_close("bn running_mean", rm, wrm, (size_t)C, FWD_ATOL, FWD_RTOL);
        bl_test_check_close("bn running_var", rv, wrv, (size_t)C, FWD_ATOL, FWD_RTOL);
        /* offset-100 case: ulp(100) */
        bl_test_check_close("bn y", y, wy, (size_t)n, 1e-4, FWD_RTOL);

        bl_test_fill_value(dx, (size_t)n, NAN);
        env->dev->ops->bn_backward(env->dev, outer, C, inner, x, gamma, mean, invstd, dy, dx, dg,
                                   db);
        if (m > 1) /* n = 1: x̂ is 0/0-free but meaningless; only check it is finite */
            bl_test_check_close("bn dx", dx, wdx, (size_t)n, 1e-4, 1e-3);
        else
            for (int64_t k = 0; k < n; k++)
                assert_true(isfinite(dx[k]));
        bl_test_check_close("bn dgamma (+=)", dg, wdg, (size_t)C, 1e-4, 1e-3);
        bl_test_check_close("bn dbeta (+=)", db, wdb, (size_t)C, 1e-4, 1e-3);
        /* dx = NULL: only the parameter gradients, accumulated once more */
        for (int64_t c = 0; c < C; c++) {
            wdg[c] += wdg[c] - dg0[c];
            wdb[c] += wdb[c] - db0[c];
        }
        env->dev->ops->bn_backward(env->dev, outer, C, inner, x, gamma, mean, invstd, dy, NULL,
                                   dg, db);
        bl_test_check_close("bn dgamma without dx", dg, wdg, (size_t)C, 1e-4, 1e-3);
        bl_test_check_close("bn dbeta without dx", db, wdb, (size_t)C, 1e-4, 1e-3);

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
        bl_test_check_close("bn eval y", y, wy, (size_t)n, 1e-4, FWD_RTOL);

        free(wy), free(wdx), free(wm), free(wis), free(wrm), free(wrv), free(wdg), free(wdb);
        free(dg0), free(db0);
        bl_test_release_all(env);
    }
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_im2col_col2im_match_naive),
        cmocka_unit_test(test_maxpool_kernels_match_naive),
        cmocka_unit_test(test_maxpool_kernel_nan_and_inf),
        cmocka_unit_test(test_bn_kernels_match_naive),
    };
    return cmocka_run_group_tests(tests, bl_test_setup, bl_test_teardown);
}

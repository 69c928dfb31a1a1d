/* device/kernel_math.h — the per-element arithmetic the CUDA kernels share with the CPU — is bit
 * for bit what the CPU backend computes: the counter-based RNG (bl_hash_uniform, dropout masks),
 * the four activations forward and backward, and the SGD and Adam updates, on values that
 * reach every branch (the clamps of exp, tanh's small-argument polynomial, NaN, ±inf, the
 * optimizers' special cases), and the byte map of a dataset gather. Runs on the host; the same header compiled by nvcc gives the GPU
 * the same bits (docs/cuda.md: --fmad=false, IEEE division and sqrt). */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "batchlab/device.h"
#include "batchlab/rng.h"
#include "device/kernel_math.h"
#include "testutil.h"

#define N 4096

/* Inputs over the interesting range: a sweep, then the edges. */
static void fill_inputs(float *x, size_t n)
{
    static const float edges[] = {0.0f, -0.0f, 1e-8f, -1e-8f, 0.2499f, 0.25f, -0.25f, 0.2501f,
                                  1.0f, -1.0f, 43.9f, 44.1f, -43.9f, 87.9f, 88.0f, 88.1f,
                                  -86.9f, -87.0f, -87.1f, 100.0f, -100.0f, 1e30f, -1e30f,
                                  INFINITY, -INFINITY, NAN};
    size_t ne = sizeof edges / sizeof *edges;
    for (size_t i = 0; i < n; i++)
        x[i] = i < ne ? edges[i] : -12.0f + 24.0f * (float)(i - ne) / (float)(n - ne);
}

static bl_device *open_cpu(bl_ctx *ctx, int threads)
{
    bl_device *dev = NULL;
    BL_ASSERT_OK(ctx, bl_device_cpu_open(ctx, threads, &dev));
    return dev;
}

static void test_hash_uniform(void **state)
{
    (void)state;
    static const uint64_t seeds[] = {0, 1, 42, 0x9E3779B97F4A7C15ULL, UINT64_MAX};
    for (size_t s = 0; s < sizeof seeds / sizeof *seeds; s++)
        for (uint64_t c = 0; c < 20000; c += 7) {
            uint64_t counter = c * 0x100000001ULL + (c & 1 ? UINT64_MAX - c : c);
            float want = bl_hash_uniform(seeds[s], counter);
            float got = bl__km_hash_uniform(seeds[s], counter);
            if (memcmp(&want, &got, sizeof want) != 0)
                fail_msg("hash_uniform(%llu, %llu): header %.9g, rng.c %.9g",
                         (unsigned long long)seeds[s], (unsigned long long)counter, got, want);
        }
}

static void test_activations(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    static float x[N], y[N], dy[N], got[N], dx[N];
    fill_inputs(x, N);
    for (size_t i = 0; i < N; i++)
        dy[i] = 0.5f + (float)(i % 13) * 0.25f;
    for (int threads = 1; threads <= 2; threads++) {
        bl_device *dev = open_cpu(ctx, threads);
        for (int act = BL_ACT_RELU; act <= BL_ACT_GELU; act++) {
            dev->ops->act_forward(dev, (bl_activation)act, N, x, y);
            for (size_t i = 0; i < N; i++)
                got[i] = bl__km_act_forward(act, x[i]);
            char what[64];
            snprintf(what, sizeof what, "act_forward %d (%d threads)", act, threads);
            bl_test_check_equal_f(what, got, y, N);
            dev->ops->act_backward(dev, (bl_activation)act, N, x, y, dy, dx);
            for (size_t i = 0; i < N; i++)
                got[i] = bl__km_act_backward(act, x[i], y[i], dy[i]);
            snprintf(what, sizeof what, "act_backward %d (%d threads)", act, threads);
            bl_test_check_equal_f(what, got, dx, N);
        }
        bl_device_free(dev);
    }
    bl_ctx_free(ctx);
}

static void test_dropout(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    bl_device *dev = open_cpu(ctx, 2);
    static float x[N], mask[N], y[N], want_mask[N], want_y[N];
    fill_inputs(x, N);
    static const float ps[] = {0.0f, 0.1f, 0.5f, 0.9f};
    for (size_t k = 0; k < sizeof ps / sizeof *ps; k++) {
        uint64_t seed = 1234 + k, counter = 1000003 * k;
        dev->ops->dropout_forward(dev, N, ps[k], seed, counter, x, mask, y);
        float keep = 1.0f / (1.0f - ps[k]);
        for (size_t i = 0; i < N; i++) {
            want_mask[i] = bl__km_dropout_mask(seed, counter, (int64_t)i, ps[k], keep);
            want_y[i] = x[i] * want_mask[i];
        }
        bl_test_check_equal_f("dropout mask", mask, want_mask, N);
        bl_test_check_equal_f("dropout output", y, want_y, N);
    }
    bl_device_free(dev);
    bl_ctx_free(ctx);
}

/* SGD in every branch of the CPU kernel: μ = 0 with and without weight decay, heavy ball with
 * and without decay and dampening, Nesterov. */
static void test_sgd(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    bl_device *dev = open_cpu(ctx, 2);
    enum { M = 1037 };
    static float g[M], v0[M], w0[M], v[M], w[M], vh[M], wh[M];
    bl_rng rng;
    bl_rng_seed(&rng, 7, 1);
    bl_test_fill_uniform(g, M, &rng, -2.0f, 2.0f);
    bl_test_fill_uniform(v0, M, &rng, -1.0f, 1.0f);
    bl_test_fill_uniform(w0, M, &rng, -1.0f, 1.0f);
    static const struct {
        float mu, damp, wd;
        bool nesterov;
    } cases[] = {{0, 0, 0, false},     {0, 0, 0.01f, false},  {0.9f, 0, 0, false},
                 {0.9f, 0.1f, 0, false}, {0.9f, 0, 1e-4f, false}, {0.9f, 0, 0, true},
                 {0.8f, 0.2f, 5e-4f, true}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        memcpy(v, v0, sizeof v);
        memcpy(w, w0, sizeof w);
        memcpy(vh, v0, sizeof vh);
        memcpy(wh, w0, sizeof wh);
        float lr = 0.05f, keep = 1.0f - cases[k].damp;
        dev->ops->sgd_update(dev, M, lr, cases[k].mu, cases[k].damp, cases[k].nesterov,
                             cases[k].wd, g, cases[k].mu == 0.0f ? NULL : v, w);
        for (size_t i = 0; i < M; i++)
            bl__km_sgd_one(lr, cases[k].mu, keep, cases[k].nesterov, cases[k].wd, g[i],
                           cases[k].mu == 0.0f ? NULL : &vh[i], &wh[i]);
        char what[64];
        snprintf(what, sizeof what, "sgd case %zu: param", k);
        bl_test_check_equal_f(what, wh, w, M);
        snprintf(what, sizeof what, "sgd case %zu: velocity", k);
        bl_test_check_equal_f(what, vh, v, M);
    }
    bl_device_free(dev);
    bl_ctx_free(ctx);
}

/* A velocity that would become subnormal is stored as 0 (bl__km_flush_subnormal), in every
 * momentum branch, by the vector body and the scalar tail (an odd length); a normal one is
 * kept. */
static void test_sgd_flushes_subnormal_velocity(void **state)
{
    (void)state;
    bl_ctx *ctx = bl_ctx_new();
    bl_device *dev = open_cpu(ctx, 1);
    enum { M = 37 };
    static const float v_in[4] = {1e-39f, -1e-39f, 1.3e-38f, 2e-38f};
    static const struct {
        float mu, damp;
        bool nesterov;
    } cases[] = {{0.9f, 0, false}, {0.9f, 0.1f, false}, {0.9f, 0, true}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        float g[M] = {0}, v[M], w[M];
        for (int i = 0; i < M; i++) {
            v[i] = v_in[i % 4];
            w[i] = 0.5f;
        }
        dev->ops->sgd_update(dev, M, 0.05f, cases[k].mu, cases[k].damp, cases[k].nesterov, 0.0f,
                             g, v, w);
        for (int i = 0; i < M; i++) {
            /* 0.9 · 1.3e-38 is below FLT_MIN too */
            const float want = i % 4 == 3 ? cases[k].mu * v_in[3] : 0.0f;
            if (memcmp(&v[i], &want, sizeof want) != 0)
                fail_msg("case %zu, value %d: velocity %a, expected %a", k, i, (double)v[i],
                         (double)want);
            assert_true(w[i] == 0.5f);
        }
    }
    bl_device_free(dev);
    bl_ctx_free(ctx);
}

/* Adam's direction, with the CPU's SSE body and scalar tail both reached (an odd length). */
static void test_adam(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    bl_device *dev = open_cpu(ctx, 1);
    enum { M = 1031 };
    static float g[M], w[M], m0[M], v0[M], m[M], v[M], dir[M], mh[M], vh[M], dh[M];
    bl_rng rng;
    bl_rng_seed(&rng, 9, 2);
    bl_test_fill_uniform(g, M, &rng, -3.0f, 3.0f);
    bl_test_fill_uniform(w, M, &rng, -1.0f, 1.0f);
    bl_test_fill_uniform(m0, M, &rng, -0.1f, 0.1f);
    bl_test_fill_uniform(v0, M, &rng, 0.0f, 0.01f);
    static const float wds[] = {0.0f, 0.01f};
    for (int step = 1; step <= 3; step++)
        for (size_t k = 0; k < 2; k++) {
            float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
            float bias1 = 1.0f - powf(b1, (float)step), bias2 = 1.0f - powf(b2, (float)step);
            memcpy(m, m0, sizeof m);
            memcpy(v, v0, sizeof v);
            memcpy(mh, m0, sizeof mh);
            memcpy(vh, v0, sizeof vh);
            dev->ops->adam_direction(dev, M, b1, b2, eps, bias1, bias2, wds[k], g, w, m, v,
                                     dir);
            for (size_t i = 0; i < M; i++)
                bl__km_adam_one(b1, b2, 1.0f - b1, 1.0f - b2, 1.0f / bias1, 1.0f / bias2, eps,
                                wds[k], g[i], w[i], &mh[i], &vh[i], &dh[i]);
            bl_test_check_equal_f("adam m", mh, m, M);
            bl_test_check_equal_f("adam v", vh, v, M);
            bl_test_check_equal_f("adam direction", dh, dir, M);
        }
    bl_device_free(dev);
    bl_ctx_free(ctx);
}

/* Adam's moments that would become subnormal are stored as 0, by the vector body and the
 * scalar tail (an odd length), with and without weight decay; normal ones are kept. */
static void test_adam_flushes_subnormal_moments(void **state)
{
    (void)state;
    bl_ctx *ctx = bl_ctx_new();
    bl_device *dev = open_cpu(ctx, 1);
    enum { M = 37 };
    /* 0.9 · 1.3e-38 and 0.999 · 1.1e-38 are below FLT_MIN; 0.9 · 2e-38 and 0.999 · 2e-38 not */
    static const float m_in[4] = {1e-39f, -1e-39f, 1.3e-38f, 2e-38f};
    static const float v_in[4] = {1e-39f, 1e-40f, 1.1e-38f, 2e-38f};
    static const float wds[] = {0.0f, 0.01f};
    for (size_t k = 0; k < 2; k++) {
        float g[M] = {0}, w[M], m[M], v[M], dir[M];
        for (int i = 0; i < M; i++) {
            m[i] = m_in[i % 4];
            v[i] = v_in[i % 4];
            w[i] = 0.5f;
        }
        dev->ops->adam_direction(dev, M, 0.9f, 0.999f, 1e-8f, 0.5f, 0.25f, wds[k], g, w, m, v,
                                 dir);
        for (int i = 0; i < M; i++) {
            const float want_m = i % 4 == 3 ? 0.9f * m_in[3] : 0.0f;
            const float want_v = i % 4 == 3 ? 0.999f * v_in[3] : 0.0f;
            if (memcmp(&m[i], &want_m, sizeof want_m) != 0 ||
                memcmp(&v[i], &want_v, sizeof want_v) != 0)
                fail_msg("wd %g, value %d: m %a v %a, expected %a %a", (double)wds[k], i,
                         (double)m[i], (double)v[i], (double)want_m, (double)want_v);
        }
    }
    bl_device_free(dev);
    bl_ctx_free(ctx);
}

/* The image kernels one element at a time (what a CUDA thread computes) against the CPU's
 * loops: im2col, col2im into a non-zero image, max pooling with ties, NaN, overlapping windows
 * and a window entirely in the padding, and max-pool backward. */
static void test_image_elements(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    bl_device *dev = open_cpu(ctx, 1);
    bl_rng rng;
    bl_rng_seed(&rng, 5, 3);
    const bl_window2d wins[] = {
        bl_test_window2d(3, 9, 11, 3, 3, 1, 1, 1, 1), bl_test_window2d(2, 10, 7, 3, 2, 2, 3, 1, 0),
        bl_test_window2d(4, 12, 12, 5, 5, 2, 2, 2, 2), bl_test_window2d(2, 8, 8, 2, 2, 2, 2, 0, 0),
        bl_test_window2d(2, 5, 5, 2, 2, 3, 3, 2, 2), /* windows entirely in the padding */
        bl_test_window2d(1, 6, 6, 3, 3, 1, 1, 0, 0), /* stride 1: heavy overlap */
    };
    for (size_t k = 0; k < sizeof wins / sizeof *wins; k++) {
        const bl_window2d *w = &wins[k];
        const int64_t batch = 2;
        int64_t ni = w->channels * w->height * w->width;
        int64_t nc = w->channels * w->kernel_h * w->kernel_w * w->out_h * w->out_w;
        int64_t ny = batch * w->channels * w->out_h * w->out_w;
        float *img = malloc((size_t)(batch * ni) * sizeof *img);
        float *cols = malloc((size_t)nc * sizeof *cols), *elem = malloc((size_t)nc * sizeof *elem);
        float *back = malloc((size_t)ni * sizeof *back), *eback = malloc((size_t)ni * sizeof *eback);
        float *y = malloc((size_t)ny * sizeof *y), *ey = malloc((size_t)ny * sizeof *ey);
        int32_t *arg = malloc((size_t)ny * sizeof *arg), *earg = malloc((size_t)ny * sizeof *earg);
        float *dy = malloc((size_t)ny * sizeof *dy);
        float *dx = malloc((size_t)(batch * ni) * sizeof *dx);
        float *edx = malloc((size_t)(batch * ni) * sizeof *edx);
        assert_true(img && cols && elem && back && eback && y && ey && arg && earg && dy && dx &&
                    edx);
        bl_test_fill_uniform(img, (size_t)(batch * ni), &rng, -1, 1);
        for (int64_t i = 0; i < batch * ni; i += 4)
            img[i] = 0.25f; /* ties */
        img[1] = NAN;
        bl_test_fill_uniform(dy, (size_t)ny, &rng, -1, 1);

        dev->ops->im2col(dev, w, img, cols);
        for (int64_t i = 0; i < nc; i++)
            elem[i] = bl__km_im2col_at(w, img, i);
        bl_test_check_equal_f("im2col element", elem, cols, (size_t)nc);

        bl_test_fill_uniform(back, (size_t)ni, &rng, -1, 1);
        for (int64_t i = 0; i < ni; i++)
            eback[i] = bl__km_col2im_at(w, cols, back[i], i);
        dev->ops->col2im(dev, w, cols, back);
        bl_test_check_equal_f("col2im element", eback, back, (size_t)ni);

        dev->ops->maxpool_forward(dev, w, batch, img, y, arg);
        for (int64_t i = 0; i < ny; i++)
            ey[i] = bl__km_maxpool_at(w, img, i, &earg[i]);
        bl_test_check_equal_f("maxpool element", ey, y, (size_t)ny);
        assert_memory_equal(earg, arg, (size_t)ny * sizeof *arg);

        dev->ops->maxpool_backward(dev, w, batch, dy, arg, dx);
        for (int64_t i = 0; i < batch * ni; i++)
            edx[i] = bl__km_maxpool_grad_at(w, dy, arg, i);
        bl_test_check_equal_f("maxpool gradient element", edx, dx, (size_t)(batch * ni));
        free(img), free(cols), free(elem), free(back), free(eback), free(y), free(ey);
        free(arg), free(earg), free(dy), free(dx), free(edx);
    }
    bl_device_free(dev);
    bl_ctx_free(ctx);
}

/* Cross-entropy's gradient (labels in and out of range) and batch norm in evaluation. */
static void test_loss_and_bn_elements(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    bl_device *dev = open_cpu(ctx, 1);
    bl_rng rng;
    bl_rng_seed(&rng, 6, 3);
    enum { ROWS = 33, CLASSES = 7 };
    static float probs[ROWS * CLASSES], d[ROWS * CLASSES], ed[ROWS * CLASSES];
    int32_t labels[ROWS];
    bl_test_fill_uniform(probs, ROWS * CLASSES, &rng, 0, 1);
    for (int r = 0; r < ROWS; r++)
        labels[r] = r == 5 ? -1 : r == 6 ? CLASSES : (int32_t)bl_rng_below(&rng, CLASSES);
    dev->ops->xent_backward(dev, ROWS, CLASSES, probs, labels, 0.03f, d);
    for (int64_t i = 0; i < ROWS * CLASSES; i++)
        ed[i] = bl__km_xent_grad_at(CLASSES, probs, labels, 0.03f, i);
    bl_test_check_equal_f("xent gradient element", ed, d, ROWS * CLASSES);

    static const int64_t shapes[][3] = {{4, 5, 9}, {16, 70, 1}};
    for (size_t s = 0; s < 2; s++) {
        int64_t outer = shapes[s][0], C = shapes[s][1], inner = shapes[s][2];
        size_t n = (size_t)(outer * C * inner);
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *ey = malloc(n * sizeof *ey);
        float g[70], b[70], rm[70], rv[70];
        assert_true(x && y && ey);
        bl_test_fill_uniform(x, n, &rng, -2, 2);
        bl_test_fill_uniform(g, (size_t)C, &rng, 0.5f, 1.5f);
        bl_test_fill_uniform(b, (size_t)C, &rng, -1, 1);
        bl_test_fill_uniform(rm, (size_t)C, &rng, -0.5f, 0.5f);
        bl_test_fill_uniform(rv, (size_t)C, &rng, 0.5f, 2);
        dev->ops->bn_forward_eval(dev, outer, C, inner, x, g, b, 1e-5f, rm, rv, y);
        for (size_t i = 0; i < n; i++)
            ey[i] = bl__km_bn_eval_at(C, inner, x, g, b, rm, rv, 1e-5f, (int64_t)i);
        bl_test_check_equal_f("batch-norm eval element", ey, y, n);
        free(x), free(y), free(ey);
    }
    bl_device_free(dev);
    bl_ctx_free(ctx);
}

/* The CPU's byte gather (on its pool) against the header's byte map, on every byte value and
 * a scale and offset that round (Fashion-MNIST's standardization). */
static void test_byte_to_float(void **state)
{
    (void)state;
    bl_ctx *ctx = bl_ctx_new();
    bl_device *dev = open_cpu(ctx, 2);
    enum { ROW = 97, ROWS = 300 };
    static uint8_t src[ROWS * ROW];
    static float got[ROWS * ROW], want[ROWS * ROW];
    int64_t idx[ROWS];
    for (int i = 0; i < ROWS * ROW; i++)
        src[i] = (uint8_t)(i * 7 + i / 256);
    for (int r = 0; r < ROWS; r++)
        idx[r] = (r * 37) % ROWS;
    const float scale = 1.0f / (255.0f * 0.353f), offset = -0.286f / 0.353f;
    dev->ops->gather_bytes(dev, ROWS, idx, ROW, src, scale, offset, got);
    for (int r = 0; r < ROWS; r++)
        for (int k = 0; k < ROW; k++)
            want[r * ROW + k] = bl__km_byte_to_float(src[idx[r] * ROW + k], scale, offset);
    bl_test_check_equal_f("byte gather element", want, got, ROWS * ROW);
    bl_device_free(dev);
    bl_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_uniform), cmocka_unit_test(test_activations),
        cmocka_unit_test(test_dropout),      cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_sgd_flushes_subnormal_velocity),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_adam_flushes_subnormal_moments),
        cmocka_unit_test(test_image_elements),
        cmocka_unit_test(test_loss_and_bn_elements),
        cmocka_unit_test(test_byte_to_float),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* device/kernel_math.h — the per-element arithmetic the CUDA kernels share with the CPU — is bit
 * for bit what the CPU backend computes: the counter-based RNG (bl_hash_uniform, dropout masks),
 * the four activations forward and backward, and the SGD and Adam updates, on values that
 * reach every branch (the clamps of exp, tanh's small-argument polynomial, NaN, ±inf, the
 * optimizers' special cases). Runs on the host; the same header compiled by nvcc gives the GPU
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_uniform), cmocka_unit_test(test_activations),
        cmocka_unit_test(test_dropout),      cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adam),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

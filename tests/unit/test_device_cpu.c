/* The CPU device: memory accounting and budget, device names, and every kernel this backend
 * implements itself (not the image/batch-norm ones) against a plain reference loop in double.
 * Kernels run on two devices: one thread, and two threads (so the pool's split is exercised,
 * with sizes above the split threshold). */
#define _POSIX_C_SOURCE 200809L /* setenv */

#include <math.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/device_backend.h"
#include "testutil.h"

/* OpenBLAS's process-wide thread count (not declared by every cblas.h) */
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);

typedef struct fixture {
    bl_test_env *env;
    bl_device *devs[2]; /* 1 thread, 2 threads */
} fixture;

static int setup(void **state)
{
    bl_test_env *env;
    if (bl_test_setup((void **)&env) != 0)
        return -1;
    fixture *f = calloc(1, sizeof *f);
    f->env = env;
    f->devs[0] = env->dev;
    if (bl_device_cpu_open(env->ctx, 2, &f->devs[1]) != BL_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bl_device_free(f->devs[1]);
    void *env = f->env;
    free(f);
    return bl_test_teardown(&env);
}

/* Device memory for n floats (the CPU device's memory is host memory). */
static float *dalloc(fixture *f, bl_device *dev, size_t n)
{
    void *p = NULL;
    BL_ASSERT_OK(f->env->ctx, bl_device_alloc(f->env->ctx, dev, n * sizeof(float) + 4, &p));
    return p;
}

static void dfree(bl_device *dev, void *p, size_t n)
{
    bl_device_release(dev, p, n * sizeof(float) + 4);
}

static void fill_random(float *x, size_t n, uint64_t seed, float scale)
{
    bl_rng rng;
    bl_rng_seed(&rng, seed, BL_STREAM_USER);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)bl_rng_normal(&rng) * scale;
}

/* |got − want| ≤ rel·|want| + abs for every element */
static void assert_close(const float *got, const double *want, size_t n, double rel, double abs,
                         const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= rel * fabs(want[i]) + abs))
            fail_msg("%s[%zu]: got %.9g, want %.9g (error %.3g)", what, i, (double)got[i],
                     want[i], err);
    }
}

/* ---- memory ------------------------------------------------------------------------------- */

static void test_alloc_accounting(void **state)
{
    fixture *f = *state;
    bl_ctx *ctx = f->env->ctx;
    bl_device *dev = f->devs[0];
    size_t in_use = dev->bytes_in_use, count = dev->alloc_count;
    void *a, *b;
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, 1000, &a));
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, 3, &b));
    assert_int_equal((uintptr_t)a % 64, 0);
    assert_int_equal((uintptr_t)b % 64, 0);
    assert_int_equal(dev->bytes_in_use, in_use + 1003);
    assert_true(dev->peak_bytes >= in_use + 1003);
    assert_int_equal(dev->alloc_count, count + 2);
    bl_device_release(dev, a, 1000);
    assert_int_equal(dev->bytes_in_use, in_use + 3);
    bl_device_release(dev, b, 3);
    bl_device_release(dev, NULL, 0);
    assert_int_equal(dev->bytes_in_use, in_use);
    assert_true(dev->peak_bytes >= in_use + 1003); /* the peak stays */

    void *z;
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, 0, &z)); /* zero bytes: a valid pointer */
    assert_non_null(z);
    bl_device_release(dev, z, 0);
}

static void test_budget_enomem(void **state)
{
    fixture *f = *state;
    bl_ctx *ctx = f->env->ctx;
    bl_device *dev = f->devs[0];
    void *keep, *p = (void *)(uintptr_t)0x1;
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, 4096, &keep));
    size_t count = dev->alloc_count, in_use = dev->bytes_in_use;
    dev->budget_bytes = in_use + 10000;
    BL_ASSERT_ERR(ctx, BL_ENOMEM, "budget", bl_device_alloc(ctx, dev, 20000, &p));
    /* the message gives the size asked for, what is in use and the budget */
    assert_true(bl_test_contains(bl_errmsg(ctx), "20000 bytes"));
    assert_true(bl_test_contains(bl_errmsg(ctx), "in use"));
    assert_true(bl_test_contains(bl_errmsg(ctx), "19.5 KiB"));
    assert_ptr_equal(p, (void *)(uintptr_t)0x1);
    assert_int_equal(dev->alloc_count, count);
    assert_int_equal(dev->bytes_in_use, in_use);
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, 10000, &p)); /* exactly up to the budget */
    BL_ASSERT_ERR(ctx, BL_ENOMEM, "budget", bl_device_alloc(ctx, dev, 1, &keep));
    bl_device_release(dev, p, 10000);
    dev->budget_bytes = 0;
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, 1 << 20, &p));
    bl_device_release(dev, p, 1 << 20);
    bl_device_release(dev, keep, 4096);
    /* a size no allocator can give */
    BL_ASSERT_ERR(ctx, BL_ENOMEM, "bytes", bl_device_alloc(ctx, dev, SIZE_MAX - 10, &p));
}

static void test_device_names(void **state)
{
    fixture *f = *state;
    bl_ctx *ctx = f->env->ctx;
    bl_device *dev = NULL;
    BL_ASSERT_OK(ctx, bl_device_open(ctx, "cpu", &dev));
    assert_int_equal(dev->kind, BL_DEVICE_CPU);
    assert_string_equal(dev->ops->name, "cpu");
    assert_int_equal(dev->ops->size, sizeof(bl_device_ops));
    /* through the same descriptor path as a loaded backend */
    assert_string_equal(dev->backend->name, "cpu");
    assert_int_equal(bl_device_caps(dev), BL_DEVICE_CAP_HOST_ADDRESSABLE);
    size_t free_b = 0, total_b = 0;
    BL_ASSERT_OK(ctx, bl_device_memory(ctx, dev, &free_b, &total_b));
    assert_true(total_b > 0 && free_b <= total_b);
    bl_device *other = NULL;
    BL_ASSERT_ERR(ctx, BL_EUNSUPPORTED, "1 device", bl_device_open(ctx, "cpu:1", &other));
    assert_null(other);
    bl_device_free(dev);
    dev = NULL;
    /* "cuda" and "cuda:1" open where the CUDA backend is built and a GPU is there; otherwise
     * the message names the backend's file: the one looked for (built without CUDA) or the
     * one whose probe refused (no driver, no device), and "cuda:1" beyond the count. */
    const char *cuda_names[] = {"cuda", "cuda:1"};
    for (int i = 0; i < 2; i++) {
        int rc = bl_device_open(ctx, cuda_names[i], &dev);
        if (rc == BL_OK) {
            bl_device_free(dev);
            dev = NULL;
            continue;
        }
        assert_int_equal(rc, BL_EUNSUPPORTED);
        if (!bl_test_contains(bl_errmsg(ctx), "libbatchlab-cuda.so") &&
            !bl_test_contains(bl_errmsg(ctx), "cuda:1"))
            fail_msg("%s: message \"%s\" names neither the backend nor the device",
                     cuda_names[i], bl_errmsg(ctx));
    }
    BL_ASSERT_ERR(ctx, BL_EINVAL, "cuda:x", bl_device_open(ctx, "cuda:x", &dev));
    /* any other name is a backend looked up on the plugin search path */
    BL_ASSERT_ERR(ctx, BL_EUNSUPPORTED, "libbatchlab-tpu.so", bl_device_open(ctx, "tpu", &dev));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "../x", bl_device_open(ctx, "../x", &dev));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "NULL", bl_device_open(ctx, NULL, &dev));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "threads", bl_device_cpu_open(ctx, -1, &dev));
    assert_null(dev);
    bl_device_free(NULL);
}

static void test_transfers(void **state)
{
    fixture *f = *state;
    bl_ctx *ctx = f->env->ctx;
    bl_device *dev = f->devs[0];
    float host[100], back[100];
    fill_random(host, 100, 1, 1.0f);
    float *d = dalloc(f, dev, 100), *e = dalloc(f, dev, 100);
    BL_ASSERT_OK(ctx, bl_device_upload(ctx, dev, d, host, sizeof host));
    assert_int_equal(dev->ops->copy(dev, e, d, sizeof host), BL_OK);
    BL_ASSERT_OK(ctx, bl_device_synchronize(ctx, dev));
    BL_ASSERT_OK(ctx, bl_device_status(ctx, dev));
    BL_ASSERT_OK(ctx, bl_device_download(ctx, dev, back, e, sizeof back));
    assert_memory_equal(host, back, sizeof host);
    BL_ASSERT_ERR(ctx, BL_EINVAL, "NULL", bl_device_upload(ctx, dev, NULL, host, 4));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "NULL", bl_device_download(ctx, dev, back, NULL, 4));
    dfree(dev, d, 100);
    dfree(dev, e, 100);
}

/* ---- matrix products ---------------------------------------------------------------------- */

/* One GEMM against a double reference, each leading dimension `pad` floats past its row;
 * C starts as NaN when beta = 0 (it must be ignored), and so do the padding floats. */
static void check_gemm_ld(fixture *f, bl_device *dev, bool ta, bool tb, int64_t m, int64_t n,
                          int64_t k, float alpha, float beta, int64_t pad)
{
    int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    size_t na = (size_t)((ta ? k : m) * lda), nb = (size_t)((tb ? n : k) * ldb),
           nc = (size_t)(m * ldc);
    float *a = dalloc(f, dev, na), *b = dalloc(f, dev, nb), *c = dalloc(f, dev, nc);
    fill_random(a, na, (uint64_t)(m * 131 + k), 1.0f);
    fill_random(b, nb, (uint64_t)(n * 17 + k), 1.0f);
    fill_random(c, nc, 5, 1.0f);
    for (size_t i = 0; i < nc; i++)
        if (beta == 0.0f || (int64_t)i % ldc >= n)
            c[i] = NAN;
    double *want = malloc(nc * sizeof *want), *bound = malloc(nc * sizeof *bound);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0, mag = 0.0;
            for (int64_t p = 0; p < k; p++) {
                double av = ta ? a[p * lda + i] : a[i * lda + p];
                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += av * bv;
                mag += fabs(av * bv);
            }
            double cv = beta == 0.0f ? 0.0 : (double)beta * c[i * ldc + j];
            want[i * ldc + j] = alpha * s + cv;
            bound[i * ldc + j] = 1e-6 * (fabs(alpha) * mag + fabs(cv)) + 1e-6;
        }
    dev->ops->gemm(dev, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    for (size_t i = 0; i < nc; i++)
        if ((int64_t)i % ldc >= n ? !isnan(c[i]) : !(fabs(c[i] - want[i]) <= bound[i]))
            fail_msg("gemm ta=%d tb=%d %lldx%lldx%lld alpha=%g beta=%g: C[%zu] = %.9g, want "
                     "%.9g",
                     ta, tb, (long long)m, (long long)n, (long long)k, (double)alpha,
                     (double)beta, i, (double)c[i], want[i]);
    free(want);
    free(bound);
    dfree(dev, a, na);
    dfree(dev, b, nb);
    dfree(dev, c, nc);
}

static void check_gemm(fixture *f, bl_device *dev, bool ta, bool tb, int64_t m, int64_t n,
                       int64_t k, float alpha, float beta)
{
    check_gemm_ld(f, dev, ta, tb, m, n, k, alpha, beta, 0);
}

static void test_gemm(void **state)
{
    fixture *f = *state;
    /* shapes that take the small-batch kernels (a batch of 1..16, with tails in every
     * dimension) and shapes that go to OpenBLAS, whole or (on two threads) cut into bands of
     * rows or of columns, or with the rows past a multiple of 4 on the own kernel (37, 41,
     * 30, 99 rows: device_cpu.c, gemm_ragged); a 10-wide layer at a large batch, whose own
     * kernel is cut across the batch (1001 rows, and as the gradient 1001 deep); LeNet's
     * 400×120 input gradient at 32, which goes to OpenBLAS's small-matrix kernels */
    static const int64_t shapes[][3] = {{1, 256, 784}, {8, 256, 784}, {3, 13, 37},
                                        {16, 10, 128}, {5, 7, 1},     {1, 1, 1},
                                        {2, 33, 9},    {64, 40, 50},  {130, 70, 90},
                                        {20, 300, 200}, {37, 40, 50}, {41, 33, 70},
                                        {30, 1100, 300}, {99, 40, 50}, {1001, 10, 128},
                                        {32, 400, 120}};
    for (int d = 0; d < 2; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++) {
                int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                bool ta = t & 1, tb = t & 2;
                check_gemm(f, f->devs[d], ta, tb, m, n, k, 1.0f, 0.0f);
                /* the weight-gradient form with a small inner dimension, accumulating */
                check_gemm(f, f->devs[d], ta, tb, n, k, m, 0.5f, 1.0f);
                check_gemm(f, f->devs[d], ta, tb, m, n, k, -2.0f, 0.25f);
            }
    /* weights beyond L2 (500·600 floats) with a batch that is not a multiple of 4: OpenBLAS
     * on a copy padded to a multiple of 4 rows (device_cpu.c, gemm_padded), leading
     * dimensions past the rows so that a wrong offset or a write past a row shows */
    static const int64_t padded[] = {7, 30, 41};
    for (int d = 0; d < 2; d++)
        for (size_t s = 0; s < sizeof padded / sizeof padded[0]; s++)
            for (int t = 0; t < 2; t++) {
                check_gemm_ld(f, f->devs[d], false, t, padded[s], 600, 500, 1.0f, 0.0f, 3);
                check_gemm_ld(f, f->devs[d], false, t, padded[s], 600, 500, -2.0f, 0.25f, 5);
            }
    /* a weight gradient 1100 deep beside a 40×70 gradient: two threads cut it across the
     * batch (parts of 560 and 540) and add the second part to the first (device_cpu.c,
     * gemm_ksplit), with beta 0 and 0.25; with a C wider than its rows it is cut by rows */
    for (int d = 0; d < 2; d++) {
        check_gemm(f, f->devs[d], true, false, 40, 70, 1100, 1.0f, 0.0f);
        check_gemm(f, f->devs[d], true, false, 40, 70, 1100, -2.0f, 0.25f);
        check_gemm_ld(f, f->devs[d], true, false, 40, 70, 1100, 1.0f, 0.5f, 3);
    }
    /* k = 0: C = beta·C */
    check_gemm(f, f->devs[0], false, true, 4, 5, 0, 1.0f, 0.5f);
    check_gemm(f, f->devs[0], false, true, 4, 5, 0, 1.0f, 0.0f);
}

/* A product with a narrow side (a 10-class layer) at a large batch: its own kernel is cut
 * across the long side on two threads (device_cpu.c, gemm_own), and every element is the same
 * sum as on one thread, bit for bit: the forward product (b × 10) and the weight gradient
 * (10 × 128, b deep), with beta 0 and 0.5. */
static void test_gemm_narrow_same_bits(void **state)
{
    fixture *f = *state;
    const int64_t b = 1001, n = 10, k = 128;
    float *a = dalloc(f, f->devs[0], (size_t)(b * k));
    float *w = dalloc(f, f->devs[0], (size_t)(n * k));
    float *y = dalloc(f, f->devs[0], (size_t)(b * n));
    fill_random(a, (size_t)(b * k), 3, 1.0f);
    fill_random(w, (size_t)(n * k), 4, 1.0f);
    fill_random(y, (size_t)(b * n), 6, 1.0f);
    float *c[2], *g[2];
    for (int d = 0; d < 2; d++) {
        c[d] = dalloc(f, f->devs[d], (size_t)(b * n));
        g[d] = dalloc(f, f->devs[d], (size_t)(n * k));
    }
    for (int beta = 0; beta < 2; beta++)
        for (int d = 0; d < 2; d++) {
            fill_random(c[d], (size_t)(b * n), 8, 1.0f);
            fill_random(g[d], (size_t)(n * k), 9, 1.0f);
            bl_device *dev = f->devs[d];
            dev->ops->gemm(dev, false, true, b, n, k, 1.0f, a, k, w, k, 0.5f * (float)beta, c[d],
                           n);
            dev->ops->gemm(dev, true, false, n, k, b, 0.25f, y, n, a, k, 0.5f * (float)beta,
                           g[d], k);
            if (d == 1) {
                assert_memory_equal(c[0], c[1], (size_t)(b * n) * sizeof(float));
                assert_memory_equal(g[0], g[1], (size_t)(n * k) * sizeof(float));
            }
        }
    for (int d = 0; d < 2; d++) {
        dfree(f->devs[d], c[d], (size_t)(b * n));
        dfree(f->devs[d], g[d], (size_t)(n * k));
    }
    dfree(f->devs[0], a, (size_t)(b * k));
    dfree(f->devs[0], w, (size_t)(n * k));
    dfree(f->devs[0], y, (size_t)(b * n));
}

/* The own "rows" kernel's AVX-512 form gives the AVX2 form's bits (BATCHLAB_CPU_AVX512=0 keeps
 * that one): A·B and Aᵀ·B on shapes that take the own kernel (LeNet's fully connected
 * layers at batch 32 and 8, and odd ones: column tails of 1..31, rows past a multiple of 6),
 * with beta 0 and beta 0.5. */
static void test_gemm_avx512_same_bits(void **state)
{
    if (!bl_test_has_avx512())
        skip();
    fixture *f = *state;
    bl_device *narrow = bl_test_open_avx2_device(f->env->ctx);
    bl_device *devs[2] = {f->devs[0], narrow};
    static const struct {
        bool ta;
        int64_t m, n, k;
    } cases[] = {{false, 32, 400, 120}, {false, 32, 120, 84}, {false, 5, 37, 9},
                 {false, 13, 49, 7},    {true, 120, 400, 8},  {true, 84, 120, 8},
                 {true, 13, 45, 3},     {true, 7, 17, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t m = cases[c].m, n = cases[c].n, k = cases[c].k;
        float *a = dalloc(f, f->devs[0], (size_t)(m * k)), *b = dalloc(f, f->devs[0], (size_t)(k * n));
        float *out[2] = {dalloc(f, f->devs[0], (size_t)(m * n)),
                         dalloc(f, f->devs[0], (size_t)(m * n))};
        fill_random(a, (size_t)(m * k), 11, 1.0f);
        fill_random(b, (size_t)(k * n), 12, 1.0f);
        for (int beta = 0; beta < 2; beta++) {
            for (int d = 0; d < 2; d++) {
                fill_random(out[d], (size_t)(m * n), 13, 1.0f);
                devs[d]->ops->gemm(devs[d], cases[c].ta, false, m, n, k, 1.0f, a,
                                   cases[c].ta ? m : k, b, n, 0.5f * (float)beta, out[d], n);
            }
            if (memcmp(out[0], out[1], (size_t)(m * n) * sizeof(float)) != 0)
                fail_msg("case %zu, beta %d: the AVX-512 kernel's bits differ", c, beta);
        }
        dfree(f->devs[0], a, (size_t)(m * k));
        dfree(f->devs[0], b, (size_t)(k * n));
        dfree(f->devs[0], out[0], (size_t)(m * n));
        dfree(f->devs[0], out[1], (size_t)(m * n));
    }
    bl_device_free(narrow);
}

/* sum_kernel's order (device_cpu_vec.c): eight double lanes, the tail on lane 0, then
 * ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)). */
static double lanes8_sum(const float *x, int64_t n)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += (double)x[i + j];
    for (; i < n; i++)
        acc[0] += (double)x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* sum_channels adds, per channel, the images' sums in image order from 0.0, whichever way it
 * splits the work (by images in blocks, or by channels past 2048 of them) and on any number of
 * threads: bit for bit. */
static void test_sum_channels_order(void **state)
{
    fixture *f = *state;
    static const int64_t shapes[][3] = {{7, 29, 700}, {9, 1000, 3}, {3, 2100, 2}, {40, 6, 13}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int64_t outer = shapes[t][0], channels = shapes[t][1], inner = shapes[t][2];
        const size_t n = (size_t)(outer * channels * inner);
        float *x = dalloc(f, f->devs[0], n), *out = dalloc(f, f->devs[0], (size_t)channels);
        float *want = malloc((size_t)channels * sizeof *want);
        assert_non_null(want);
        fill_random(x, n, 21, 1.0f);
        for (int64_t c = 0; c < channels; c++) {
            double s = 0.0;
            for (int64_t o = 0; o < outer; o++)
                s += lanes8_sum(x + (o * channels + c) * inner, inner);
            want[c] = (float)((double)0.5f * 0.25 + s);
        }
        for (int d = 0; d < 2; d++) {
            for (int64_t c = 0; c < channels; c++)
                out[c] = 0.25f;
            f->devs[d]->ops->sum_channels(f->devs[d], outer, channels, inner, x, 0.5f, out);
            if (memcmp(out, want, (size_t)channels * sizeof *out) != 0)
                fail_msg("shape %zu, device %d: sum_channels' bits differ", t, d);
        }
        free(want);
        dfree(f->devs[0], x, n);
        dfree(f->devs[0], out, (size_t)channels);
    }
}

static void test_gemv(void **state)
{
    fixture *f = *state;
    for (int d = 0; d < 2; d++)
        for (int t = 0; t < 2; t++) {
            bl_device *dev = f->devs[d];
            int64_t m = 37, n = 300;
            float *a = dalloc(f, dev, (size_t)(m * n)), *x = dalloc(f, dev, 300),
                  *y = dalloc(f, dev, 300);
            fill_random(a, (size_t)(m * n), 3, 1.0f);
            fill_random(x, 300, 4, 1.0f);
            fill_random(y, 300, 6, 1.0f);
            int64_t len = t ? n : m, inner = t ? m : n;
            double want[300];
            for (int64_t i = 0; i < len; i++) {
                double s = 0.0;
                for (int64_t p = 0; p < inner; p++)
                    s += (double)(t ? a[p * n + i] : a[i * n + p]) * x[p];
                want[i] = 1.5 * s + 0.5 * y[i];
            }
            dev->ops->gemv(dev, t, m, n, 1.5f, a, n, x, 0.5f, y);
            assert_close(y, want, (size_t)len, 1e-5, 1e-4, "gemv");
            dfree(dev, a, (size_t)(m * n));
            dfree(dev, x, 300);
            dfree(dev, y, 300);
        }
}

/* ---- vector kernels ----------------------------------------------------------------------- */

#define BIG 100003 /* above the split threshold of every kernel, and not a multiple of 16 */

static void test_blas1(void **state)
{
    fixture *f = *state;
    for (int d = 0; d < 2; d++) {
        bl_device *dev = f->devs[d];
        const bl_device_ops *ops = dev->ops;
        float *x = dalloc(f, dev, BIG), *y = dalloc(f, dev, BIG);
        double *want = malloc(BIG * sizeof *want);
        fill_random(x, BIG, 1, 1.0f);
        fill_random(y, BIG, 2, 1.0f);

        for (int i = 0; i < BIG; i++)
            want[i] = (double)y[i] + 0.75 * x[i];
        ops->axpy(dev, BIG, 0.75f, x, y);
        assert_close(y, want, BIG, 1e-6, 1e-6, "axpy");

        for (int i = 0; i < BIG; i++)
            want[i] = (double)(y[i] * -3.0f);
        ops->scale(dev, BIG, -3.0f, y);
        assert_close(y, want, BIG, 0.0, 0.0, "scale");

        double dot = 0.0, ss = 0.0;
        for (int i = 0; i < BIG; i++) {
            dot += (double)x[i] * y[i];
            ss += (double)x[i] * x[i];
        }
        double slot[4] = {-1, -1, -1, -1}; /* device memory is host memory on the CPU */
        ops->dot(dev, BIG, x, y, &slot[0]);
        ops->sumsq(dev, BIG, x, &slot[1]);
        ops->dot(dev, 0, x, y, &slot[2]);
        ops->sumsq(dev, 3, x, &slot[3]);
        double got[4];
        BL_ASSERT_OK(f->env->ctx, bl_device_download(f->env->ctx, dev, got, slot, sizeof got));
        assert_true(fabs(got[0] - dot) <= 1e-12 * fabs(dot) + 1e-9);
        assert_true(fabs(got[1] - ss) <= 1e-12 * ss);
        assert_true(got[2] == 0.0);
        assert_true(got[3] == (double)x[0] * x[0] + (double)x[1] * x[1] + (double)x[2] * x[2]);

        ops->fill(dev, BIG, 1.25f, y);
        for (int i = 0; i < BIG; i++)
            assert_true(y[i] == 1.25f);
        ops->fill(dev, BIG, 0.0f, y);
        for (int i = 0; i < BIG; i++)
            assert_true(y[i] == 0.0f);

        for (int i = 0; i < BIG; i++)
            want[i] = (double)(x[i] * x[(i + 7) % BIG]);
        float *z = dalloc(f, dev, BIG);
        for (int i = 0; i < BIG; i++)
            y[i] = x[(i + 7) % BIG];
        ops->mul(dev, BIG, x, y, z);
        assert_close(z, want, BIG, 0.0, 0.0, "mul");
        dfree(dev, z, BIG);
        free(want);
        dfree(dev, x, BIG);
        dfree(dev, y, BIG);
    }
}

static void test_bias_kernels(void **state)
{
    fixture *f = *state;
    const int64_t rows = 700, cols = 203; /* rows·cols above the split threshold */
    size_t n = (size_t)(rows * cols);
    for (int d = 0; d < 2; d++) {
        bl_device *dev = f->devs[d];
        const bl_device_ops *ops = dev->ops;
        float *x = dalloc(f, dev, n), *bias = dalloc(f, dev, (size_t)cols),
              *out = dalloc(f, dev, (size_t)cols);
        double *want = malloc(n * sizeof *want);
        fill_random(x, n, 1, 1.0f);
        fill_random(bias, (size_t)cols, 2, 1.0f);
        for (size_t i = 0; i < n; i++)
            want[i] = (double)(x[i] + bias[i % (size_t)cols]);
        ops->add_bias(dev, rows, cols, bias, x);
        assert_close(x, want, n, 0.0, 0.0, "add_bias");

        /* sum_rows with beta 0 (out starts NaN and must be ignored), 1 and 0.5; each column
         * is summed in row order after beta·out, on any thread count: the same bits as that
         * loop in float (203 columns: blocks of 32 and 8 and a scalar tail, from any chunk
         * start) */
        static const float betas[3] = {0.0f, 1.0f, 0.5f};
        for (int b = 0; b < 3; b++) {
            double colsum[256];
            float in_order[256];
            for (int64_t c = 0; c < cols; c++) {
                out[c] = b == 0 ? NAN : (float)c * 0.1f;
                double s = 0.0;
                for (int64_t r = 0; r < rows; r++)
                    s += x[r * cols + c];
                colsum[c] = s + (b == 0 ? 0.0 : (double)betas[b] * out[c]);
                float fs = b == 0 ? x[c] : betas[b] * out[c] + x[c];
                for (int64_t r = 1; r < rows; r++)
                    fs += x[r * cols + c];
                in_order[c] = fs;
            }
            ops->sum_rows(dev, rows, cols, x, betas[b], out);
            assert_close(out, colsum, (size_t)cols, 1e-5, 1e-4, "sum_rows");
            assert_memory_equal(out, in_order, (size_t)cols * sizeof *out);
        }

        /* per-channel bias and channel sums over [outer, C, inner] */
        const int64_t outer = 7, channels = 29, inner = 700;
        float *img = dalloc(f, dev, (size_t)(outer * channels * inner));
        size_t ni = (size_t)(outer * channels * inner);
        fill_random(img, ni, 3, 1.0f);
        double *wi = malloc(ni * sizeof *wi);
        for (size_t i = 0; i < ni; i++)
            wi[i] = (double)(img[i] + bias[(i / (size_t)inner) % (size_t)channels]);
        ops->add_channel_bias(dev, outer, channels, inner, bias, img);
        assert_close(img, wi, ni, 0.0, 0.0, "add_channel_bias");
        double cs[29];
        for (int64_t c = 0; c < channels; c++) {
            out[c] = 2.0f;
            double s = 0.0;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++)
                    s += img[(o * channels + c) * inner + i];
            cs[c] = s + 0.5 * 2.0;
        }
        ops->sum_channels(dev, outer, channels, inner, img, 0.5f, out);
        assert_close(out, cs, (size_t)channels, 1e-6, 1e-5, "sum_channels");
        for (int64_t c = 0; c < channels; c++)
            out[c] = NAN;
        ops->sum_channels(dev, outer, channels, inner, img, 0.0f, out);
        for (int64_t c = 0; c < channels; c++)
            cs[c] -= 1.0;
        assert_close(out, cs, (size_t)channels, 1e-6, 1e-5, "sum_channels beta=0");
        free(wi);
        dfree(dev, img, ni);
        free(want);
        dfree(dev, x, n);
        dfree(dev, bias, (size_t)cols);
        dfree(dev, out, (size_t)cols);
    }
}

/* ---- activations -------------------------------------------------------------------------- */

static double ref_act(bl_activation act, double x)
{
    switch (act) {
    case BL_ACT_RELU: return x > 0 ? x : 0;
    case BL_ACT_TANH: return tanh(x);
    case BL_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case BL_ACT_GELU: return 0.5 * x * erfc(-x / sqrt(2.0));
    }
    return NAN;
}

static double ref_act_grad(bl_activation act, double x)
{
    switch (act) {
    case BL_ACT_RELU: return x > 0 ? 1 : 0;
    case BL_ACT_TANH: return 1.0 - tanh(x) * tanh(x);
    case BL_ACT_SIGMOID: {
        double s = 1.0 / (1.0 + exp(-x));
        return s * (1.0 - s);
    }
    case BL_ACT_GELU:
        return 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-0.5 * x * x) * 0.39894228040143268;
    }
    return NAN;
}

/* Accuracy: the exp-based activations are within a few float ulps of the double result:
 * relative error ≤ 2e-6 plus 1e-7 absolute (for values near 0); the backward is checked
 * against the derivative at the forward's own output (tanh, sigmoid) or at x. */
static void test_activations(void **state)
{
    fixture *f = *state;
    for (int d = 0; d < 2; d++) {
        bl_device *dev = f->devs[d];
        float *x = dalloc(f, dev, BIG), *y = dalloc(f, dev, BIG), *dy = dalloc(f, dev, BIG),
              *dx = dalloc(f, dev, BIG);
        double *want = malloc(BIG * sizeof *want);
        for (int i = 0; i < BIG; i++)
            x[i] = -12.0f + 24.0f * (float)i / BIG; /* dense over the interesting range */
        static const float special[] = {0.0f, -0.0f, 1e-6f, -1e-6f, 0.2499f, 0.25f,
                                        88.5f, -88.5f, 200.0f, -200.0f, 1e-30f, -87.1f};
        memcpy(x, special, sizeof special);
        fill_random(dy, BIG, 9, 1.0f);
        for (int a = BL_ACT_RELU; a <= BL_ACT_GELU; a++) {
            bl_activation act = (bl_activation)a;
            for (int i = 0; i < BIG; i++)
                want[i] = ref_act(act, x[i]);
            dev->ops->act_forward(dev, act, BIG, x, y);
            assert_close(y, want, BIG, 2e-6, 1e-7, "act_forward");
            for (int i = 0; i < BIG; i++) {
                double g = act == BL_ACT_TANH      ? 1.0 - (double)y[i] * y[i]
                           : act == BL_ACT_SIGMOID ? (double)y[i] * (1.0 - y[i])
                                                   : ref_act_grad(act, x[i]);
                want[i] = dy[i] * g;
            }
            dev->ops->act_backward(dev, act, BIG, x, y, dy, dx);
            /* 1 − y² and y·(1 − y) cancel near saturation: allow a few ulps of 1, times dy */
            assert_close(dx, want, BIG, 2e-6, 1e-6, "act_backward");
            for (int i = 0; i < BIG; i++)
                assert_true(isfinite(y[i]) && isfinite(dx[i]));
        }
        free(want);
        dfree(dev, x, BIG);
        dfree(dev, y, BIG);
        dfree(dev, dy, BIG);
        dfree(dev, dx, BIG);
    }
}

static void test_dropout(void **state)
{
    fixture *f = *state;
    float *masks[2], *ys[2];
    for (int d = 0; d < 2; d++) {
        bl_device *dev = f->devs[d];
        float *x = dalloc(f, dev, BIG);
        masks[d] = dalloc(f, dev, BIG);
        ys[d] = dalloc(f, dev, BIG);
        fill_random(x, BIG, 4, 1.0f);
        const float p = 0.3f;
        dev->ops->dropout_forward(dev, BIG, p, 77, 1000, x, masks[d], ys[d]);
        int kept = 0;
        for (int i = 0; i < BIG; i++) {
            bool keep = bl_hash_uniform(77, 1000 + (uint64_t)i) >= p;
            assert_true(masks[d][i] == (keep ? 1.0f / (1.0f - p) : 0.0f));
            assert_true(ys[d][i] == x[i] * masks[d][i]);
            kept += keep;
        }
        assert_true(fabs((double)kept / BIG - 0.7) < 0.01);
        dfree(dev, x, BIG);
    }
    /* the same mask whatever the number of threads */
    assert_memory_equal(masks[0], masks[1], BIG * sizeof(float));
    assert_memory_equal(ys[0], ys[1], BIG * sizeof(float));
    for (int d = 0; d < 2; d++) {
        dfree(f->devs[d], masks[d], BIG);
        dfree(f->devs[d], ys[d], BIG);
    }
}

/* ---- losses ------------------------------------------------------------------------------- */

static void test_cross_entropy(void **state)
{
    fixture *f = *state;
    const int64_t rows = 3001, classes = 10;
    size_t n = (size_t)(rows * classes);
    for (int d = 0; d < 2; d++) {
        bl_device *dev = f->devs[d];
        float *logits = dalloc(f, dev, n), *probs = dalloc(f, dev, n), *dl = dalloc(f, dev, n);
        int32_t *labels = (int32_t *)dalloc(f, dev, (size_t)rows);
        fill_random(logits, n, 5, 3.0f);
        logits[0] = 1000.0f; /* huge logits: the max is subtracted first */
        logits[1] = -1000.0f;
        for (int64_t c = 0; c < classes; c++)
            logits[classes + c] = 50.0f; /* a tie: the first index is the argmax */
        bl_rng rng;
        bl_rng_seed(&rng, 6, BL_STREAM_USER);
        for (int64_t r = 0; r < rows; r++)
            labels[r] = (int32_t)bl_rng_below(&rng, (uint32_t)classes);
        labels[1] = 0;

        double want_loss = 0.0;
        int64_t want_correct = 0;
        double *want_p = malloc(n * sizeof *want_p);
        for (int64_t r = 0; r < rows; r++) {
            const float *x = logits + r * classes;
            double mx = x[0];
            int64_t best = 0;
            for (int64_t c = 1; c < classes; c++)
                if (x[c] > mx) {
                    mx = x[c];
                    best = c;
                }
            double s = 0.0;
            for (int64_t c = 0; c < classes; c++)
                s += exp(x[c] - mx);
            for (int64_t c = 0; c < classes; c++)
                want_p[r * classes + c] = exp(x[c] - mx) / s;
            want_loss += log(s) + mx - x[labels[r]];
            want_correct += best == labels[r];
        }
        int64_t correct = 5; /* added to, not overwritten */
        double loss = dev->ops->xent_forward(dev, rows, classes, logits, labels, probs, &correct);
        assert_true(fabs(loss - want_loss) <= 1e-6 * want_loss);
        assert_int_equal(correct, 5 + want_correct);
        assert_close(probs, want_p, n, 1e-6, 1e-9, "probs");

        for (size_t i = 0; i < n; i++)
            want_p[i] = ((double)probs[i] - ((int64_t)(i % (size_t)classes) ==
                                                     labels[i / (size_t)classes]
                                                 ? 1.0
                                                 : 0.0)) *
                        0.125;
        dev->ops->xent_backward(dev, rows, classes, probs, labels, 0.125f, dl);
        assert_close(dl, want_p, n, 2e-7, 1e-9, "dlogits");

        /* a label out of range poisons the loss instead of reading past the row */
        labels[7] = 10;
        loss = dev->ops->xent_forward(dev, rows, classes, logits, labels, probs, NULL);
        assert_true(isnan(loss));
        labels[7] = -1;
        dev->ops->xent_backward(dev, rows, classes, probs, labels, 1.0f, dl);
        for (int64_t c = 0; c < classes; c++)
            assert_true(dl[7 * classes + c] == probs[7 * classes + c]);
        free(want_p);
        dfree(dev, logits, n);
        dfree(dev, probs, n);
        dfree(dev, dl, n);
        dfree(dev, labels, (size_t)rows);
    }
}

static void test_mse(void **state)
{
    fixture *f = *state;
    for (int d = 0; d < 2; d++) {
        bl_device *dev = f->devs[d];
        float *y = dalloc(f, dev, BIG), *t = dalloc(f, dev, BIG), *dy = dalloc(f, dev, BIG);
        fill_random(y, BIG, 7, 1.0f);
        fill_random(t, BIG, 8, 1.0f);
        double want = 0.0;
        double *wd = malloc(BIG * sizeof *wd);
        for (int i = 0; i < BIG; i++) {
            double e = (double)y[i] - t[i];
            want += e * e;
            wd[i] = (double)((y[i] - t[i]) * 0.5f);
        }
        assert_true(fabs(dev->ops->mse_forward(dev, BIG, y, t) - want) <= 1e-12 * want);
        dev->ops->mse_backward(dev, BIG, y, t, 0.5f, dy);
        assert_close(dy, wd, BIG, 0.0, 0.0, "mse_backward");
        free(wd);
        dfree(dev, y, BIG);
        dfree(dev, t, BIG);
        dfree(dev, dy, BIG);
    }
}

/* ---- optimizer updates -------------------------------------------------------------------- */

/* optim.h's SGD, one element at a time in the same operation order (so within rounding of the
 * kernel's result: 1e-6 relative allows for a compiler that fuses multiply-adds). */
static void ref_sgd(int64_t n, float lr, float mu, float damp, bool nesterov, float wd,
                    const float *g, float *v, float *w)
{
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] + wd * w[i];
        if (mu == 0.0f) {
            w[i] -= lr * gi;
            continue;
        }
        float vi = mu * v[i] + (1.0f - damp) * gi;
        v[i] = vi;
        w[i] -= lr * (nesterov ? gi + mu * vi : vi);
    }
}

static void test_sgd_update(void **state)
{
    fixture *f = *state;
    static const struct {
        float lr, mu, damp, wd;
        bool nesterov;
    } cases[] = {{0.1f, 0.0f, 0.0f, 0.0f, false}, {0.1f, 0.0f, 0.0f, 0.01f, false},
                 {0.05f, 0.9f, 0.0f, 0.0f, false}, {0.05f, 0.9f, 0.1f, 5e-4f, false},
                 {0.05f, 0.9f, 0.0f, 1e-3f, true}};
    for (int d = 0; d < 2; d++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            bl_device *dev = f->devs[d];
            float *g = dalloc(f, dev, BIG), *v = dalloc(f, dev, BIG), *w = dalloc(f, dev, BIG);
            float *rv = malloc(BIG * sizeof *rv), *rw = malloc(BIG * sizeof *rw);
            fill_random(g, BIG, 1, 1.0f);
            fill_random(v, BIG, 2, 0.1f);
            fill_random(w, BIG, 3, 1.0f);
            memcpy(rv, v, BIG * sizeof *rv);
            memcpy(rw, w, BIG * sizeof *rw);
            for (int step = 0; step < 3; step++) {
                dev->ops->sgd_update(dev, BIG, cases[c].lr, cases[c].mu, cases[c].damp,
                                     cases[c].nesterov, cases[c].wd, g, v, w);
                ref_sgd(BIG, cases[c].lr, cases[c].mu, cases[c].damp, cases[c].nesterov,
                        cases[c].wd, g, rv, rw);
            }
            for (int i = 0; i < BIG; i++) {
                assert_true(fabsf(w[i] - rw[i]) <= 1e-6f * fabsf(rw[i]) + 1e-7f);
                if (cases[c].mu != 0.0f)
                    assert_true(fabsf(v[i] - rv[i]) <= 1e-6f * fabsf(rv[i]) + 1e-7f);
            }
            free(rv);
            free(rw);
            dfree(dev, g, BIG);
            dfree(dev, v, BIG);
            dfree(dev, w, BIG);
        }
}

static void test_adam_direction(void **state)
{
    fixture *f = *state;
    for (int d = 0; d < 2; d++)
        for (int decay = 0; decay < 2; decay++) {
            bl_device *dev = f->devs[d];
            float *g = dalloc(f, dev, BIG), *w = dalloc(f, dev, BIG), *m = dalloc(f, dev, BIG),
                  *v = dalloc(f, dev, BIG), *dir = dalloc(f, dev, BIG);
            fill_random(g, BIG, 1, 1.0f);
            fill_random(w, BIG, 2, 1.0f);
            fill_random(m, BIG, 3, 0.1f);
            for (int i = 0; i < BIG; i++)
                v[i] = m[i] * m[i];
            const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = decay ? 0.01f : 0.0f;
            const float bias1 = 1.0f - 0.9f * 0.9f * 0.9f, bias2 = 1.0f - 0.999f * 0.999f * 0.999f;
            double *wm = malloc(BIG * sizeof *wm), *wv = malloc(BIG * sizeof *wv),
                   *wdir = malloc(BIG * sizeof *wdir);
            for (int i = 0; i < BIG; i++) {
                double mi = (double)b1 * m[i] + (1.0 - (double)b1) * g[i];
                double vi = (double)b2 * v[i] + (1.0 - (double)b2) * (double)g[i] * g[i];
                wm[i] = mi;
                wv[i] = vi;
                wdir[i] = (mi / bias1) / (sqrt(vi / bias2) + eps) + (double)wd * w[i];
            }
            dev->ops->adam_direction(dev, BIG, b1, b2, eps, bias1, bias2, wd, g,
                                     decay ? w : NULL, m, v, dir);
            assert_close(m, wm, BIG, 1e-6, 1e-7, "adam m");
            assert_close(v, wv, BIG, 1e-6, 1e-12, "adam v");
            assert_close(dir, wdir, BIG, 1e-5, 1e-5, "adam dir");
            free(wm);
            free(wv);
            free(wdir);
            dfree(dev, g, BIG);
            dfree(dev, w, BIG);
            dfree(dev, m, BIG);
            dfree(dev, v, BIG);
            dfree(dev, dir, BIG);
        }
}

/* ---- OpenBLAS's process-wide setting ------------------------------------------------------ */

typedef struct blas_watch {
    int expected;
    int stop;
    int changed; /* a different count was seen */
} blas_watch;

static void *watch_blas_threads(void *arg)
{
    blas_watch *w = arg;
    while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE))
        if (openblas_get_num_threads() != w->expected)
            __atomic_store_n(&w->changed, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* The device sets OpenBLAS's thread count once, at open: another thread watching it during
 * GEMMs (large enough to go to OpenBLAS, split over the device's pool) never sees it change. */
/* A sticky fault keeps its code and message whatever the code: an asynchronous out of memory
 * (BL_ENOMEM, a GPU kernel's or cuBLAS's) too, whose value −1 the fault field once also used
 * to mean "being recorded", so that the status said "an earlier operation failed" without the
 * message and with BL_EINVAL. */
static void test_fault_codes(void **state)
{
    bl_ctx *ctx = ((fixture *)*state)->env->ctx;
    static const int codes[] = {BL_ENOMEM, BL_EIO, BL_EINVAL};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        bl_device *dev = NULL;
        BL_ASSERT_OK(ctx, bl_device_cpu_open(ctx, 1, &dev));
        bl_device_fault(dev, codes[i], "kernel %zu failed", i);
        bl_device_fault(dev, BL_EFORMAT, "a later fault"); /* the first one sticks */
        char want[32];
        snprintf(want, sizeof want, "kernel %zu failed", i);
        BL_ASSERT_ERR(ctx, codes[i], want, bl_device_status(ctx, dev));
        BL_ASSERT_ERR(ctx, codes[i], want, bl_device_synchronize(ctx, dev));
        bl_device_free(dev);
    }
}

static void test_blas_threads_set_once(void **state)
{
    fixture *f = *state;
    bl_ctx *ctx = f->env->ctx;
    openblas_set_num_threads(2); /* the program's own choice */
    bl_device *dev = NULL, *dev2 = NULL;
    BL_ASSERT_OK(ctx, bl_device_cpu_open(ctx, 0, &dev));
    assert_int_equal(dev->host_threads, 2); /* threads = 0: OpenBLAS's count, as it was set */
    enum { N = 192 };
    float *a = dalloc(f, dev, N * N), *b = dalloc(f, dev, N * N), *c = dalloc(f, dev, N * N);
    fill_random(a, N * N, 1, 1.0f);
    fill_random(b, N * N, 2, 1.0f);
    blas_watch w = {.expected = openblas_get_num_threads()};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, watch_blas_threads, &w), 0);
    for (int i = 0; i < 40; i++)
        dev->ops->gemm(dev, false, i % 2 == 1, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
    __atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    assert_int_equal(w.changed, 0);
    assert_int_equal(openblas_get_num_threads(), w.expected);
    /* a later device with threads = 0 still gets the program's count, not the 1 set above */
    BL_ASSERT_OK(ctx, bl_device_cpu_open(ctx, 0, &dev2));
    assert_int_equal(dev2->host_threads, 2);
    bl_device_free(dev2);
    dfree(dev, a, N * N);
    dfree(dev, b, N * N);
    dfree(dev, c, N * N);
    bl_device_free(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_accounting), cmocka_unit_test(test_budget_enomem),
        cmocka_unit_test(test_device_names),     cmocka_unit_test(test_transfers),
        cmocka_unit_test(test_gemm),             cmocka_unit_test(test_gemm_narrow_same_bits),
        cmocka_unit_test(test_gemv),
        cmocka_unit_test(test_gemm_avx512_same_bits), cmocka_unit_test(test_sum_channels_order),
        cmocka_unit_test(test_blas1),            cmocka_unit_test(test_bias_kernels),
        cmocka_unit_test(test_activations),      cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_cross_entropy),    cmocka_unit_test(test_mse),
        cmocka_unit_test(test_sgd_update),       cmocka_unit_test(test_adam_direction),
        cmocka_unit_test(test_blas_threads_set_once), cmocka_unit_test(test_fault_codes),
    };
    return cmocka_run_group_tests_name("device_cpu", tests, setup, teardown);
}

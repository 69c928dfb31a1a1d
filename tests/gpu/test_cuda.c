/* The CUDA backend on a GPU (ctest label "gpu"): every operation against the CPU backend within
 * the tolerances of docs/cuda.md, asynchronous uploads with events, a sticky fault, a real
 * out-of-memory, 100 training steps of mlp and cnn against the CPU, and the max-batch finder on
 * real out-of-memory followed by a run at the batch it found.
 *
 * Without a usable CUDA device it prints "SKIP: <why>" (the device open's message: built
 * without CUDA, no driver, no device) and exits 77, which ctest reports as skipped.
 *
 * Tolerances: "exact" means the same bits as the CPU (elementwise kernels, see
 * device/kernel_math.h); sums have the bound given at each check.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "batchlab/batchlab.h"
#include "batchlab/device.h"
#include "batchlab/rng.h"
#include "testutil.h"

static bl_ctx *ctx;
static bl_device *cpu, *gpu;
static bl_rng rng;

/* ---- buffers ------------------------------------------------------------------------------- */

#define MAX_LIVE 256
static void *live[MAX_LIVE];
static size_t live_bytes[MAX_LIVE];
static int n_live;

/* `bytes` of GPU memory, released at the end of the test by release_all. */
static void *galloc(size_t bytes)
{
    void *p = NULL;
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, gpu, bytes, &p));
    assert_true(n_live < MAX_LIVE);
    live[n_live] = p;
    live_bytes[n_live++] = bytes;
    return p;
}

static void release_all(void)
{
    while (n_live > 0) {
        n_live--;
        bl_device_release(gpu, live[n_live], live_bytes[n_live]);
    }
}

/* A GPU copy of host data. */
static void *gcopy(const void *host, size_t bytes)
{
    void *p = galloc(bytes);
    BL_ASSERT_OK(ctx, bl_device_upload(ctx, gpu, p, host, bytes));
    return p;
}

static float *gfloats(const float *host, size_t n)
{
    return gcopy(host, n * sizeof(float));
}

static float *hfloats(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

static float *hrandom(size_t n, float lo, float hi)
{
    float *p = hfloats(n);
    bl_test_fill_uniform(p, n, &rng, lo, hi);
    return p;
}

/* Downloads n floats from the GPU into a new host array. */
static float *fetch(const float *g, size_t n)
{
    float *h = hfloats(n);
    BL_ASSERT_OK(ctx, bl_device_download(ctx, gpu, h, g, n * sizeof *h));
    return h;
}

/* The GPU's g against the CPU's want: bit-identical when atol = rtol = 0 (NaNs match NaNs),
 * else |got − want| ≤ atol + rtol·|want|. */
static void check(const char *what, const float *g, const float *want, size_t n, double atol,
                  double rtol)
{
    float *got = fetch(g, n);
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) && isnan(want[i]))
            continue;
        bool ok = atol == 0 && rtol == 0
                      ? memcmp(&got[i], &want[i], sizeof(float)) == 0
                      : fabs((double)got[i] - want[i]) <= atol + rtol * fabs((double)want[i]);
        if (!ok)
            fail_msg("%s[%zu]: GPU %.9g, CPU %.9g (atol %g, rtol %g)", what, i, (double)got[i],
                     (double)want[i], atol, rtol);
    }
    free(got);
}

static void check_double(const char *what, double got, double want, double rtol)
{
    if (!(fabs(got - want) <= rtol * fabs(want) + 1e-300))
        fail_msg("%s: GPU %.17g, CPU %.17g (rtol %g)", what, got, want, rtol);
}

/* ---- operations ---------------------------------------------------------------------------- */

static void test_gemm(void **state)
{
    (void)state;
    const int64_t m = 37, n = 53, k = 129;
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        int64_t lda = ta ? m + 3 : k + 1, ldb = tb ? k + 2 : n, ldc = n + 5;
        size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb;
        size_t nc = (size_t)m * ldc;
        float *a = hrandom(na, -1, 1), *b = hrandom(nb, -1, 1), *c = hrandom(nc, -1, 1);
        float *ga = gfloats(a, na), *gb = gfloats(b, nb), *gc = gfloats(c, nc);
        cpu->ops->gemm(cpu, ta, tb, m, n, k, 0.7f, a, lda, b, ldb, 0.3f, c, ldc);
        gpu->ops->gemm(gpu, ta, tb, m, n, k, 0.7f, ga, lda, gb, ldb, 0.3f, gc, ldc);
        /* FP32 sums of 129 products in another order: a few ulps of Σ|a·b| ≈ 30 */
        check("gemm", gc, c, nc, 2e-5 * (double)k, 1e-5);
        free(a), free(b), free(c);
    }
    /* gemv, both ways */
    for (int ta = 0; ta < 2; ta++) {
        int64_t lda = n + 2;
        float *a = hrandom((size_t)m * lda, -1, 1);
        float *x = hrandom(ta ? m : n, -1, 1), *y = hrandom(ta ? n : m, -1, 1);
        size_t ny = ta ? n : m;
        float *ga = gfloats(a, (size_t)m * lda), *gx = gfloats(x, ta ? m : n),
              *gy = gfloats(y, ny);
        cpu->ops->gemv(cpu, ta, m, n, 1.5f, a, lda, x, 0.5f, y);
        gpu->ops->gemv(gpu, ta, m, n, 1.5f, ga, lda, gx, 0.5f, gy);
        check("gemv", gy, y, ny, 1e-4, 1e-5);
        free(a), free(x), free(y);
    }
    release_all();
}

/* Inputs with the edges of every branch (see test_kernel_math.c). */
static float *edge_inputs(size_t n)
{
    static const float edges[] = {0.0f, -0.0f, 1e-8f, 0.2499f, 0.25f, -0.25f, 44.1f, 88.1f,
                                  -87.1f, 100.0f, -100.0f, INFINITY, -INFINITY, NAN};
    float *x = hrandom(n, -12, 12);
    for (size_t i = 0; i < sizeof edges / sizeof *edges && i < n; i++)
        x[i] = edges[i];
    return x;
}

static void test_elementwise(void **state)
{
    (void)state;
    const size_t n = 100003; /* odd, more than one block per SM */
    float *x = edge_inputs(n), *y = hrandom(n, -3, 3), *dy = hrandom(n, -1, 1);
    float *gx = gfloats(x, n), *gy = gfloats(y, n), *gdy = gfloats(dy, n);
    float *out = hfloats(n), *gout = galloc(n * sizeof(float));

    cpu->ops->axpy(cpu, n, -0.3f, x, y);
    gpu->ops->axpy(gpu, n, -0.3f, gx, gy);
    check("axpy", gy, y, n, 0, 0);
    cpu->ops->scale(cpu, n, 1.7f, y);
    gpu->ops->scale(gpu, n, 1.7f, gy);
    check("scale", gy, y, n, 0, 0);
    cpu->ops->mul(cpu, n, x, y, out);
    gpu->ops->mul(gpu, n, gx, gy, gout);
    check("mul", gout, out, n, 0, 0);
    cpu->ops->fill(cpu, n, -2.5f, out);
    gpu->ops->fill(gpu, n, -2.5f, gout);
    check("fill", gout, out, n, 0, 0);

    for (int act = BL_ACT_RELU; act <= BL_ACT_GELU; act++) {
        float *fy = hfloats(n), *gfy = galloc(n * sizeof(float));
        cpu->ops->act_forward(cpu, (bl_activation)act, n, x, fy);
        gpu->ops->act_forward(gpu, (bl_activation)act, n, gx, gfy);
        check("act_forward", gfy, fy, n, 0, 0);
        cpu->ops->act_backward(cpu, (bl_activation)act, n, x, fy, dy, out);
        gpu->ops->act_backward(gpu, (bl_activation)act, n, gx, gfy, gdy, gout);
        check("act_backward", gout, out, n, 0, 0);
        free(fy);
    }

    /* dropout: the same masks from the same counter-based RNG */
    float *mask = hfloats(n), *gmask = galloc(n * sizeof(float));
    cpu->ops->dropout_forward(cpu, n, 0.3f, 99, 123456789, x, mask, out);
    gpu->ops->dropout_forward(gpu, n, 0.3f, 99, 123456789, gx, gmask, gout);
    check("dropout mask", gmask, mask, n, 0, 0);
    check("dropout output", gout, out, n, 0, 0);

    /* reductions into device slots, read back once */
    double *slots = galloc(2 * sizeof(double)), host[2], want[2];
    float *fin = hrandom(n, -2, 2), *gfin = gfloats(fin, n);
    cpu->ops->dot(cpu, n, fin, dy, &want[0]);
    cpu->ops->sumsq(cpu, n, fin, &want[1]);
    gpu->ops->dot(gpu, n, gfin, gdy, &slots[0]);
    gpu->ops->sumsq(gpu, n, gfin, &slots[1]);
    BL_ASSERT_OK(ctx, bl_device_download(ctx, gpu, host, slots, sizeof host));
    /* double sums of 1e5 terms in another order; dot may cancel, sumsq cannot */
    check_double("dot", host[0], want[0], 1e-9);
    check_double("sumsq", host[1], want[1], 1e-11);

    /* mse */
    double lc = cpu->ops->mse_forward(cpu, n, fin, dy);
    double lg = gpu->ops->mse_forward(gpu, n, gfin, gdy);
    check_double("mse_forward", lg, lc, 1e-11);
    cpu->ops->mse_backward(cpu, n, fin, dy, 0.01f, out);
    gpu->ops->mse_backward(gpu, n, gfin, gdy, 0.01f, gout);
    check("mse_backward", gout, out, n, 0, 0);
    free(x), free(y), free(dy), free(out), free(mask), free(fin);
    release_all();
}

static void test_bias_and_sums(void **state)
{
    (void)state;
    const int64_t rows = 1000, cols = 77, outer = 9, C = 13, inner = 50;
    float *x = hrandom((size_t)(rows * cols), -1, 1), *bias = hrandom(cols, -1, 1);
    float *gx = gfloats(x, rows * cols), *gbias = gfloats(bias, cols);
    cpu->ops->add_bias(cpu, rows, cols, bias, x);
    gpu->ops->add_bias(gpu, rows, cols, gbias, gx);
    check("add_bias", gx, x, rows * cols, 0, 0);
    for (int k = 0; k < 3; k++) {
        float beta = k == 0 ? 0.0f : k == 1 ? 1.0f : 0.5f;
        float *out = hrandom(cols, -1, 1), *gout = gfloats(out, cols);
        cpu->ops->sum_rows(cpu, rows, cols, x, beta, out);
        gpu->ops->sum_rows(gpu, rows, cols, gx, beta, gout);
        /* the CPU sums 1000 rows in float (error up to ~1e-3 in the worst case, ~1e-4
         * typically), the GPU in double */
        check("sum_rows", gout, out, cols, 5e-4, 1e-5);
        free(out);
    }
    size_t ni = (size_t)(outer * C * inner);
    float *im = hrandom(ni, -1, 1), *cb = hrandom(C, -1, 1);
    float *gim = gfloats(im, ni), *gcb = gfloats(cb, C);
    cpu->ops->add_channel_bias(cpu, outer, C, inner, cb, im);
    gpu->ops->add_channel_bias(gpu, outer, C, inner, gcb, gim);
    check("add_channel_bias", gim, im, ni, 0, 0);
    for (int k = 0; k < 2; k++) {
        float *out = hrandom(C, -1, 1), *gout = gfloats(out, C);
        cpu->ops->sum_channels(cpu, outer, C, inner, im, k ? 0.5f : 0.0f, out);
        gpu->ops->sum_channels(gpu, outer, C, inner, gim, k ? 0.5f : 0.0f, gout);
        check("sum_channels", gout, out, C, 1e-5, 1e-6); /* both in double */
        free(out);
    }
    free(x), free(bias), free(im), free(cb);
    release_all();
}

static void test_xent(void **state)
{
    (void)state;
    static const int64_t shapes[][2] = {{1000, 10}, {257, 37}, {3, 1}};
    for (size_t s = 0; s < 3; s++) {
        int64_t rows = shapes[s][0], classes = shapes[s][1];
        size_t n = (size_t)(rows * classes);
        float *logits = hrandom(n, -6, 6);
        for (int64_t r = 0; r < rows; r += 7) /* ties: the first index wins */
            logits[r * classes + classes - 1] = logits[r * classes];
        int32_t *labels = malloc((size_t)rows * sizeof *labels);
        for (int64_t r = 0; r < rows; r++)
            labels[r] = (int32_t)bl_rng_below(&rng, (uint32_t)classes);
        float *gl = gfloats(logits, n);
        int32_t *glab = gcopy(labels, (size_t)rows * sizeof *labels);
        float *probs = hfloats(n), *gprobs = galloc(n * sizeof(float));
        int64_t cc = 5, gc = 5;
        double lc = cpu->ops->xent_forward(cpu, rows, classes, logits, labels, probs, &cc);
        double lg = gpu->ops->xent_forward(gpu, rows, classes, gl, glab, gprobs, &gc);
        check_double("xent loss", lg, lc, 1e-9);
        assert_int_equal(gc, cc);
        check("xent probs", gprobs, probs, n, 1e-7, 1e-6); /* the double sum's order */
        /* backward from the same probabilities: exact */
        float *gp = gfloats(probs, n), *d = hfloats(n), *gd = galloc(n * sizeof(float));
        cpu->ops->xent_backward(cpu, rows, classes, probs, labels, 1.0f / (float)rows, d);
        gpu->ops->xent_backward(gpu, rows, classes, gp, glab, 1.0f / (float)rows, gd);
        check("xent_backward", gd, d, n, 0, 0);
        free(logits), free(labels), free(probs), free(d);
        release_all();
    }
}

static void test_optimizers(void **state)
{
    (void)state;
    const size_t n = 70001;
    float *g = hrandom(n, -2, 2), *w = hrandom(n, -1, 1), *v = hrandom(n, -1, 1);
    float *gg = gfloats(g, n), *gw = gfloats(w, n), *gv = gfloats(v, n);
    static const struct {
        float mu, damp, wd;
        bool nesterov;
    } cases[] = {{0, 0, 0, false}, {0, 0, 0.01f, false}, {0.9f, 0, 0, false},
                 {0.9f, 0.1f, 1e-4f, false}, {0.9f, 0, 5e-4f, true}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        bool vel = cases[k].mu != 0.0f;
        cpu->ops->sgd_update(cpu, n, 0.05f, cases[k].mu, cases[k].damp, cases[k].nesterov,
                             cases[k].wd, g, vel ? v : NULL, w);
        gpu->ops->sgd_update(gpu, n, 0.05f, cases[k].mu, cases[k].damp, cases[k].nesterov,
                             cases[k].wd, gg, vel ? gv : NULL, gw);
        check("sgd param", gw, w, n, 0, 0);
        check("sgd velocity", gv, v, n, 0, 0);
    }
    float *m = hrandom(n, -0.1f, 0.1f), *s = hrandom(n, 0, 0.01f), *dir = hfloats(n);
    float *gm = gfloats(m, n), *gs = gfloats(s, n), *gdir = galloc(n * sizeof(float));
    for (int step = 1; step <= 2; step++) {
        float b1 = 0.9f, b2 = 0.999f, wd = step == 2 ? 0.01f : 0.0f;
        float bias1 = 1.0f - powf(b1, (float)step), bias2 = 1.0f - powf(b2, (float)step);
        cpu->ops->adam_direction(cpu, n, b1, b2, 1e-8f, bias1, bias2, wd, g, w, m, s, dir);
        gpu->ops->adam_direction(gpu, n, b1, b2, 1e-8f, bias1, bias2, wd, gg, gw, gm, gs, gdir);
        check("adam m", gm, m, n, 0, 0);
        check("adam v", gs, s, n, 0, 0);
        check("adam direction", gdir, dir, n, 0, 0);
    }
    free(g), free(w), free(v), free(m), free(s), free(dir);
    release_all();
}

static void test_images(void **state)
{
    (void)state;
    bl_window2d wins[] = {bl_test_window2d(3, 9, 11, 3, 3, 1, 1, 1, 1),
                          bl_test_window2d(2, 10, 7, 3, 2, 2, 3, 1, 0),
                          bl_test_window2d(4, 12, 12, 5, 5, 2, 2, 2, 2),
                          bl_test_window2d(2, 8, 8, 2, 2, 2, 2, 0, 0)};
    for (size_t k = 0; k < sizeof wins / sizeof *wins; k++) {
        const bl_window2d *w = &wins[k];
        size_t ni = (size_t)(w->channels * w->height * w->width);
        size_t nc = (size_t)(w->channels * w->kernel_h * w->kernel_w * w->out_h * w->out_w);
        float *img = hrandom(ni, -1, 1), *cols = hfloats(nc);
        float *gimg = gfloats(img, ni), *gcols = galloc(nc * sizeof(float));
        cpu->ops->im2col(cpu, w, img, cols);
        gpu->ops->im2col(gpu, w, gimg, gcols);
        check("im2col", gcols, cols, nc, 0, 0);
        /* col2im accumulates into a non-zero image, in the CPU's order: exact */
        float *back = hrandom(ni, -1, 1), *gback = gfloats(back, ni);
        cpu->ops->col2im(cpu, w, cols, back);
        gpu->ops->col2im(gpu, w, gcols, gback);
        check("col2im", gback, back, ni, 0, 0);

        /* max pooling over a batch of 3, with overlapping windows and ties */
        const int64_t batch = 3;
        bl_window2d pw = bl_test_window2d(w->channels, w->height, w->width, 3, 3, 2, 2, 1, 1);
        size_t nx = (size_t)batch * ni, ny = (size_t)(batch * pw.channels * pw.out_h * pw.out_w);
        float *x = hrandom(nx, -1, 1);
        for (size_t i = 0; i < nx; i += 5)
            x[i] = 0.5f; /* ties */
        float *y = hfloats(ny), *gx = gfloats(x, nx), *gy = galloc(ny * sizeof(float));
        int32_t *arg = malloc(ny * sizeof *arg), *garg = galloc(ny * sizeof *arg);
        int32_t *garg_h = malloc(ny * sizeof *arg);
        cpu->ops->maxpool_forward(cpu, &pw, batch, x, y, arg);
        gpu->ops->maxpool_forward(gpu, &pw, batch, gx, gy, garg);
        check("maxpool y", gy, y, ny, 0, 0);
        BL_ASSERT_OK(ctx, bl_device_download(ctx, gpu, garg_h, garg, ny * sizeof *arg));
        assert_memory_equal(garg_h, arg, ny * sizeof *arg);
        float *dy = hrandom(ny, -1, 1), *dx = hfloats(nx);
        float *gdy = gfloats(dy, ny), *gdx = galloc(nx * sizeof(float));
        cpu->ops->maxpool_backward(cpu, &pw, batch, dy, arg, dx);
        gpu->ops->maxpool_backward(gpu, &pw, batch, gdy, garg, gdx);
        check("maxpool dx", gdx, dx, nx, 0, 0);
        free(img), free(cols), free(back), free(x), free(y), free(arg), free(garg_h);
        free(dy), free(dx);
        release_all();
    }
}

/* The CPU reference of conv2d_forward / conv2d_backward: the per-image composition of the ops
 * above (im2col, gemm, add_channel_bias, col2im), which defines their semantics (device.h). */
static void conv_reference(const bl_window2d *w, int64_t O, int64_t batch, const float *x,
                           const float *weight, const float *bias, float *y, const float *dy,
                           float beta, float *dweight, float *dx)
{
    const int64_t K = w->channels * w->kernel_h * w->kernel_w, P = w->out_h * w->out_w;
    const int64_t in_n = w->channels * w->height * w->width;
    float *cols = hfloats((size_t)(K * P));
    if (y) {
        for (int64_t n = 0; n < batch; n++) {
            cpu->ops->im2col(cpu, w, x + n * in_n, cols);
            cpu->ops->gemm(cpu, false, false, O, P, K, 1.0f, weight, K, cols, P, 0.0f,
                           y + n * O * P, P);
        }
        if (bias)
            cpu->ops->add_channel_bias(cpu, batch, O, P, bias, y);
    }
    if (dweight) {
        if (dx)
            cpu->ops->fill(cpu, batch * in_n, 0.0f, dx);
        for (int64_t n = 0; n < batch; n++) {
            cpu->ops->im2col(cpu, w, x + n * in_n, cols);
            cpu->ops->gemm(cpu, false, true, O, K, P, 1.0f, dy + n * O * P, P, cols, P,
                           n == 0 ? beta : 1.0f, dweight, K);
            if (!dx)
                continue;
            cpu->ops->gemm(cpu, true, false, K, P, O, 1.0f, weight, K, dy + n * O * P, P, 0.0f,
                           cols, P);
            cpu->ops->col2im(cpu, w, cols, dx + n * in_n);
        }
    }
    free(cols);
}

static void test_conv2d(void **state)
{
    (void)state;
    /* padding with stride, an uneven stride, the 1×1 direct case; batches that are not a
     * multiple of the slots, and fewer images than slots */
    bl_window2d wins[] = {bl_test_window2d(3, 9, 11, 3, 3, 1, 1, 1, 1),
                          bl_test_window2d(2, 10, 7, 3, 2, 2, 3, 1, 0),
                          bl_test_window2d(5, 6, 7, 1, 1, 1, 1, 0, 0)};
    static const int64_t runs[][3] = {{11, 4, 0}, {3, 8, 1}, {16, 8, 1}}; /* batch, slots, bias */
    const int64_t O = 6;
    assert_non_null(gpu->ops->conv2d_forward);
    assert_non_null(gpu->ops->conv2d_backward);
    for (size_t k = 0; k < sizeof wins / sizeof *wins; k++)
        for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
            const bl_window2d *w = &wins[k];
            const int64_t batch = runs[r][0], slots = runs[r][1];
            const int64_t K = w->channels * w->kernel_h * w->kernel_w;
            const int64_t P = w->out_h * w->out_w, in_n = w->channels * w->height * w->width;
            size_t nx = (size_t)(batch * in_n), ny = (size_t)(batch * O * P);
            size_t nw = (size_t)(O * K), ns = (size_t)(slots * (K * P + O * K));
            float *x = hrandom(nx, -1, 1), *wt = hrandom(nw, -1, 1), *b = hrandom(O, -1, 1);
            const float *bias = runs[r][2] ? b : NULL;
            float *gx = gfloats(x, nx), *gw = gfloats(wt, nw), *gb = gfloats(b, O);
            float *scratch = hrandom(ns, -1, 1), *gscratch = gfloats(scratch, ns); /* garbage */
            float *y = hrandom(ny, -1, 1), *gy = gfloats(y, ny); /* overwritten */
            conv_reference(w, O, batch, x, wt, bias, y, NULL, 0, NULL, NULL);
            gpu->ops->conv2d_forward(gpu, w, O, batch, gx, gw, bias ? gb : NULL, gy, slots,
                                     gscratch);
            /* FP32 sums of K products of values in [−1, 1], as the gemm check */
            check("conv2d y", gy, y, ny, 2e-5 * (double)K, 1e-5);
            /* and against the CPU's own whole-batch op (cpu_conv.c) */
            float *cscratch = hfloats(ns), *cy = hfloats(ny);
            cpu->ops->conv2d_forward(cpu, w, O, batch, x, wt, bias, cy, slots, cscratch);
            check("conv2d y (cpu op)", gy, cy, ny, 2e-5 * (double)K, 1e-5);
            free(cy);

            float *dy = hrandom(ny, -1, 1), *gdy = gfloats(dy, ny);
            for (int mode = 0; mode < 3; mode++) { /* beta 0 with dx, 1 with dx, 0.5 without */
                float beta = mode == 0 ? 0.0f : mode == 1 ? 1.0f : 0.5f;
                bool with_dx = mode < 2;
                float *dw = hrandom(nw, -1, 1), *dx = hrandom(nx, -1, 1);
                if (mode == 0)
                    dw[0] = NAN; /* beta 0 ignores the contents */
                float *gdw = gfloats(dw, nw), *gdx = gfloats(dx, nx); /* dx: overwritten */
                float *dw0 = hfloats(nw);
                memcpy(dw0, dw, nw * sizeof *dw0); /* dweight before, for the CPU op */
                conv_reference(w, O, batch, x, wt, NULL, NULL, dy, beta, dw,
                               with_dx ? dx : NULL);
                gpu->ops->conv2d_backward(gpu, w, O, batch, gx, gw, gdy, beta, gdw,
                                          with_dx ? gdx : NULL, slots, gscratch);
                /* dweight sums batch·P products; dx sums O products per column entry, then up
                 * to kh·kw entries per pixel */
                check("conv2d dweight", gdw, dw, nw, 2e-5 * (double)(batch * P) + 1e-5, 1e-5);
                float *cdw = hfloats(nw), *cdx = hfloats(nx);
                memcpy(cdw, dw0, nw * sizeof *cdw);
                cpu->ops->conv2d_backward(cpu, w, O, batch, x, wt, dy, beta, cdw,
                                          with_dx ? cdx : NULL, slots, cscratch);
                check("conv2d dweight (cpu op)", gdw, cdw, nw,
                      2e-5 * (double)(batch * P) + 1e-5, 1e-5);
                if (with_dx)
                    check("conv2d dx (cpu op)", gdx, cdx, nx,
                          2e-5 * (double)(O * w->kernel_h * w->kernel_w), 1e-5);
                free(cdw), free(cdx), free(dw0);
                if (with_dx)
                    check("conv2d dx", gdx, dx, nx,
                          2e-5 * (double)(O * w->kernel_h * w->kernel_w), 1e-5);
                free(dw), free(dx);
            }
            free(x), free(wt), free(b), free(scratch), free(y), free(dy), free(cscratch);
            release_all();
        }
}

/* The resident loader's gathers: rows by index (4-byte words, and odd sizes byte by byte) and
 * bytes to floats, exact. */
static void test_gather(void **state)
{
    (void)state;
    const int64_t rows = 50, n = 37, len = 29;
    uint8_t *src = malloc((size_t)(rows * len));
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    assert_true(src && idx);
    for (int64_t i = 0; i < rows * len; i++)
        src[i] = (uint8_t)bl_rng_below(&rng, 256);
    for (int64_t i = 0; i < n; i++)
        idx[i] = bl_rng_below(&rng, (uint32_t)rows); /* repeats allowed */
    uint8_t *gsrc = gcopy(src, (size_t)(rows * len));
    int64_t *gidx = gcopy(idx, (size_t)n * sizeof *idx);
    float *x = hfloats((size_t)(n * len)), *gx = galloc((size_t)(n * len) * sizeof(float));
    cpu->ops->gather_bytes(cpu, n, idx, len, src, 1.0f / 255.0f / 0.35f, -0.8f, x);
    gpu->ops->gather_bytes(gpu, n, gidx, len, gsrc, 1.0f / 255.0f / 0.35f, -0.8f, gx);
    check("gather_bytes", gx, x, (size_t)(n * len), 0, 0);
    for (int64_t row_bytes = 4; row_bytes <= 7; row_bytes += 3) { /* words, then bytes */
        int64_t m = rows * len / row_bytes;
        for (int64_t i = 0; i < n; i++)
            idx[i] %= m;
        BL_ASSERT_OK(ctx, bl_device_upload(ctx, gpu, gidx, idx, (size_t)n * sizeof *idx));
        uint8_t *out = malloc((size_t)(n * row_bytes)), *got = malloc((size_t)(n * row_bytes));
        uint8_t *gout = galloc((size_t)(n * row_bytes));
        cpu->ops->gather_rows(cpu, n, idx, row_bytes, src, out);
        gpu->ops->gather_rows(gpu, n, gidx, row_bytes, gsrc, gout);
        BL_ASSERT_OK(ctx, bl_device_download(ctx, gpu, got, gout, (size_t)(n * row_bytes)));
        assert_memory_equal(got, out, (size_t)(n * row_bytes));
        free(out), free(got);
    }
    free(src), free(idx), free(x);
    release_all();
}


static void test_batchnorm(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {{16, 5, 49}, {64, 33, 1}, {1, 3, 1}};
    for (size_t s = 0; s < 3; s++) {
        int64_t outer = shapes[s][0], C = shapes[s][1], inner = shapes[s][2];
        size_t n = (size_t)(outer * C * inner);
        float *x = hrandom(n, -2, 3), *gamma = hrandom(C, 0.5f, 1.5f), *beta = hrandom(C, -1, 1);
        float *rm = hrandom(C, -0.1f, 0.1f), *rv = hrandom(C, 0.9f, 1.1f);
        float *gx = gfloats(x, n), *gg = gfloats(gamma, C), *gb = gfloats(beta, C);
        float *grm = gfloats(rm, C), *grv = gfloats(rv, C);
        float *mean = hfloats(C), *invstd = hfloats(C), *y = hfloats(n);
        float *gmean = galloc(C * sizeof(float)), *ginv = galloc(C * sizeof(float));
        float *gy = galloc(n * sizeof(float));
        cpu->ops->bn_forward_train(cpu, outer, C, inner, x, gamma, beta, 1e-5f, 0.1f, rm, rv,
                                   mean, invstd, y);
        gpu->ops->bn_forward_train(gpu, outer, C, inner, gx, gg, gb, 1e-5f, 0.1f, grm, grv,
                                   gmean, ginv, gy);
        /* double statistics summed in another order, rounded to float */
        check("bn mean", gmean, mean, C, 1e-7, 1e-6);
        check("bn invstd", ginv, invstd, C, 0, 1e-6);
        check("bn running mean", grm, rm, C, 1e-7, 1e-6);
        check("bn running var", grv, rv, C, 0, 1e-6);
        check("bn y", gy, y, n, 1e-5, 1e-5);
        /* eval: exact from the same running statistics */
        float *grm2 = gfloats(rm, C), *grv2 = gfloats(rv, C);
        cpu->ops->bn_forward_eval(cpu, outer, C, inner, x, gamma, beta, 1e-5f, rm, rv, y);
        gpu->ops->bn_forward_eval(gpu, outer, C, inner, gx, gg, gb, 1e-5f, grm2, grv2, gy);
        check("bn eval y", gy, y, n, 0, 0);
        /* backward from the CPU's statistics, with and without dx */
        float *gmean2 = gfloats(mean, C), *ginv2 = gfloats(invstd, C);
        float *dy = hrandom(n, -1, 1), *gdy = gfloats(dy, n);
        for (int with_dx = 0; with_dx < 2; with_dx++) {
            float *dg = hrandom(C, -1, 1), *db = hrandom(C, -1, 1), *dx = hfloats(n);
            float *gdg = gfloats(dg, C), *gdb = gfloats(db, C), *gdx = galloc(n * sizeof(float));
            cpu->ops->bn_backward(cpu, outer, C, inner, x, gamma, mean, invstd, dy,
                                  with_dx ? dx : NULL, dg, db);
            gpu->ops->bn_backward(gpu, outer, C, inner, gx, gg, gmean2, ginv2, gdy,
                                  with_dx ? gdx : NULL, gdg, gdb);
            check("bn dgamma", gdg, dg, C, 1e-5, 1e-5);
            check("bn dbeta", gdb, db, C, 1e-5, 1e-5);
            if (with_dx)
                check("bn dx", gdx, dx, n, 1e-5, 1e-4);
            free(dg), free(db), free(dx);
        }
        free(x), free(gamma), free(beta), free(rm), free(rv), free(mean), free(invstd);
        free(y), free(dy);
        release_all();
    }
}

/* ---- memory, copies, events, faults -------------------------------------------------------- */

static void test_memory_and_events(void **state)
{
    (void)state;
    size_t free_b = 0, total_b = 0;
    BL_ASSERT_OK(ctx, bl_device_memory(ctx, gpu, &free_b, &total_b));
    assert_true(total_b > 0 && free_b <= total_b);
    assert_true(bl_device_caps(gpu) & BL_DEVICE_CAP_ASYNC);
    assert_false(bl_device_caps(gpu) & BL_DEVICE_CAP_HOST_ADDRESSABLE);

    const size_t n = 1 << 20;
    float *stage = NULL;
    BL_ASSERT_OK(ctx, bl_device_host_alloc(ctx, gpu, n * sizeof(float), (void **)&stage));
    bl_test_fill_uniform(stage, n, &rng, -1, 1);
    float *g = galloc(n * sizeof(float));
    bl_device_event *ev = NULL;
    BL_ASSERT_OK(ctx, bl_device_event_new(ctx, gpu, &ev));
    BL_ASSERT_OK(ctx, bl_device_event_wait(ctx, gpu, ev)); /* complete before it is recorded */
    BL_ASSERT_OK(ctx, bl_device_upload_async(ctx, gpu, g, stage, n * sizeof(float), ev));
    BL_ASSERT_OK(ctx, bl_device_event_wait(ctx, gpu, ev));
    check("upload_async", g, stage, n, 0, 0);
    /* a copy on the stream */
    float *g2 = galloc(n * sizeof(float));
    BL_ASSERT_OK(ctx, gpu->ops->copy(gpu, g2, g, n * sizeof(float)));
    check("copy", g2, stage, n, 0, 0);
    bl_device_event_free(gpu, ev);
    bl_device_host_free(gpu, stage);
    release_all();
    BL_ASSERT_OK(ctx, bl_device_synchronize(ctx, gpu));
}

/* More than the device has: a clean BL_ENOMEM, and the device goes on working. */
static void test_out_of_memory(void **state)
{
    (void)state;
    size_t free_b = 0, total_b = 0;
    BL_ASSERT_OK(ctx, bl_device_memory(ctx, gpu, &free_b, &total_b));
    void *p = NULL;
    size_t in_use = gpu->bytes_in_use;
    BL_ASSERT_ERR(ctx, BL_ENOMEM, "out of memory",
                  bl_device_alloc(ctx, gpu, total_b + ((size_t)1 << 30), &p));
    assert_null(p);
    assert_int_equal(gpu->bytes_in_use, in_use);
    BL_ASSERT_OK(ctx, bl_device_status(ctx, gpu));
    float one = 1.0f, *g = gfloats(&one, 1);
    gpu->ops->scale(gpu, 1, 3.0f, g);
    float *back = fetch(g, 1);
    assert_true(*back == 3.0f);
    free(back);
    release_all();
}

/* A cuBLAS call refused (lda too small) becomes the sticky fault, on a device of its own. */
static void test_sticky_fault(void **state)
{
    (void)state;
    bl_device *dev = NULL;
    BL_ASSERT_OK(ctx, bl_device_open(ctx, "cuda", &dev));
    void *d = NULL;
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, 64 * sizeof(float), &d));
    dev->ops->gemm(dev, false, false, 4, 4, 4, 1.0f, d, 1, d, 4, 0.0f, d, 4);
    int rc = bl_device_synchronize(ctx, dev);
    assert_true(rc < 0);
    assert_true(bl_test_contains(bl_errmsg(ctx), "cublasSgemm"));
    float host[4];
    assert_true(bl_device_download(ctx, dev, host, d, sizeof host) < 0); /* sticky */
    bl_device_release(dev, d, 64 * sizeof(float));
    bl_device_free(dev);
}

/* ---- training ------------------------------------------------------------------------------ */

static bl_registry *reg;

static const bl_plugin *plugin(bl_plugin_kind kind, const char *name)
{
    const bl_plugin *p = NULL;
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, kind, name, &p));
    return p;
}

static bl_config *config(const char *const *set)
{
    bl_config *cfg = NULL;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    for (; *set; set++)
        BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, cfg, *set));
    return cfg;
}

/* `steps` steps at `batch`: SGD with momentum and GNS measured (the parity runs), or with
 * `finder` set exactly what a max-batch trial runs (its optimizer, no evaluation), so that the
 * batch the finder recommends is tested on the memory it was measured with. */
static bl_run_result train_steps(bl_device *dev, const bl_plugin *model, const bl_config *opts,
                                 bl_dataset *data, int64_t batch, int64_t steps, bool finder,
                                 bl_data_placement placement)
{
    bl_net *net = NULL;
    BL_ASSERT_OK(ctx, bl_model_build(ctx, model, opts, bl_dataset_info(data), dev, 5, &net));
    bl_train_config c = bl_train_defaults();
    c.net = net;
    c.data = data;
    c.batch = batch;
    c.max_steps = steps;
    c.seed = 7;
    c.data_placement = placement;
    if (finder) {
        c.optim = bl_find_batch_defaults().optim;
        c.skip_eval = true;
        c.skip_test = true;
    } else {
        c.optim = bl_optim_defaults(BL_OPTIM_SGD);
        c.optim.momentum = 0.9;
        c.measure_gns = true;
    }
    bl_run_result r;
    BL_ASSERT_OK(ctx, bl_train(ctx, &c, &r));
    if (r.status != BL_RUN_COMPLETED)
        fail_msg("run on %s: %s", dev->ops->name, r.error);
    bl_net_free(net);
    return r;
}

static void compare_runs(const char *what, bl_dataset *data, const bl_plugin *model,
                         const bl_config *opts)
{
    bl_run_result want = train_steps(cpu, model, opts, data, 32, 100, false, BL_DATA_AUTO);
    bl_run_result got = train_steps(gpu, model, opts, data, 32, 100, false, BL_DATA_AUTO);
    /* the default keeps this small training split on the GPU (gathered there by index); the
     * staged path (gathered on the host, copied per batch) gives the same batches, and the
     * GPU's kernels repeat themselves exactly, so the two runs agree bit for bit */
    bl_run_result staged = train_steps(gpu, model, opts, data, 32, 100, false, BL_DATA_STAGED);
    assert_true(got.final.train_loss == staged.final.train_loss);
    assert_true(got.final.val_loss == staged.final.val_loss);
    assert_true(got.peak_device_bytes > staged.peak_device_bytes); /* the resident split */
    bl_run_result_free(&staged);
    assert_int_equal(got.steps, want.steps);
    /* 100 SGD steps from the same weights, batches and dropout masks; GEMMs and sums round
     * differently, which drifts the losses by far less than this */
    check_double(what, got.final.train_loss, want.final.train_loss, 2e-3);
    check_double(what, got.final.val_loss, want.final.val_loss, 2e-3);
    assert_true(got.peak_device_bytes > 0);
    bl_run_result_free(&got);
    bl_run_result_free(&want);
}

/* Writes a small IDX image set (H×W bytes whose mean brightness depends on the label) to dir. */
static void write_idx(const char *dir, int count, int h, int w)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    FILE *fl = fopen(path, "wb");
    assert_non_null(fi);
    assert_non_null(fl);
    unsigned char hi[16] = {0, 0, 8, 3, (unsigned char)(count >> 24), (unsigned char)(count >> 16),
                            (unsigned char)(count >> 8), (unsigned char)count, 0, 0, 0,
                            (unsigned char)h, 0, 0, 0, (unsigned char)w};
    unsigned char hl[8] = {0, 0, 8, 1, hi[4], hi[5], hi[6], hi[7]};
    fwrite(hi, 1, 16, fi);
    fwrite(hl, 1, 8, fl);
    for (int i = 0; i < count; i++) {
        unsigned char label = (unsigned char)bl_rng_below(&rng, 10);
        fwrite(&label, 1, 1, fl);
        for (int p = 0; p < h * w; p++) {
            unsigned char v = (unsigned char)((p % (label + 2) == 0 ? 200 : 20) +
                                              bl_rng_below(&rng, 40));
            fwrite(&v, 1, 1, fi);
        }
    }
    fclose(fi);
    fclose(fl);
}

static void test_training_parity(void **state)
{
    (void)state;
    BL_ASSERT_OK(ctx, bl_registry_new(ctx, &reg));
    BL_ASSERT_OK(ctx, bl_registry_scan(ctx, reg));

    /* mlp with dropout on blobs */
    static const char *const blobs[] = {"task=blobs", "samples=4000", "dim=32", "classes=4",
                                        "seed=3", "validation=500", "test=0", NULL};
    bl_config *dcfg = config(blobs);
    bl_dataset *data = NULL;
    BL_ASSERT_OK(ctx, bl_dataset_open(ctx, plugin(BL_PLUGIN_DATASET, "synthetic"), dcfg, &data));
    static const char *const mlp[] = {"hidden=64,32", "dropout=0.2", NULL};
    bl_config *mcfg = config(mlp);
    compare_runs("mlp", data, plugin(BL_PLUGIN_MODEL, "mlp"), mcfg);
    bl_config_free(mcfg);
    bl_config_free(dcfg);
    bl_dataset_close(data);

    /* cnn with batch norm (ghost batches), max pooling and dropout on small images */
    const char *dir = bl_test_tmpdir("cuda_idx");
    write_idx(dir, 1200, 12, 12);
    char dirset[1100];
    snprintf(dirset, sizeof dirset, "dir=%s", dir);
    const char *idx[] = {dirset, "validation=200", NULL};
    dcfg = config(idx);
    BL_ASSERT_OK(ctx, bl_dataset_open(ctx, plugin(BL_PLUGIN_DATASET, "idx"), dcfg, &data));
    static const char *const cnn[] = {"channels=4,8", "kernel=3", "padding=same", "pool=2",
                                      "fc=16", "batch_norm=true", "ghost_batch=16",
                                      "dropout=0.25", NULL};
    mcfg = config(cnn);
    compare_runs("cnn", data, plugin(BL_PLUGIN_MODEL, "cnn"), mcfg);
    bl_config_free(mcfg);
    bl_config_free(dcfg);
    bl_dataset_close(data);
    bl_test_rmdir(dir);
}

/* The max-batch finder on real out-of-memory: most of the GPU is taken first (so that the
 * search ends within a few trials on any GPU), the finder searches what is left, and the batch
 * it recommends then trains without running out of memory. */
static void test_find_batch_real_oom(void **state)
{
    (void)state;
    size_t free_b = 0, total_b = 0;
    BL_ASSERT_OK(ctx, bl_device_memory(ctx, gpu, &free_b, &total_b));
    const size_t leave = (size_t)1 << 30; /* 1 GiB for the search */
    void *ballast = NULL;
    size_t ballast_bytes = free_b > leave ? free_b - leave : 0;
    while (ballast_bytes >= ((size_t)1 << 20) &&
           bl_device_alloc(ctx, gpu, ballast_bytes, &ballast) != BL_OK)
        ballast_bytes -= ballast_bytes / 16; /* fragmentation: a little less */
    if (!ballast)
        ballast_bytes = 0;

    static const char *const blobs[] = {"task=blobs", "samples=200000", "dim=256", "classes=10",
                                        "seed=3", "validation=0", "test=0", NULL};
    bl_config *dcfg = config(blobs);
    bl_dataset *data = NULL;
    BL_ASSERT_OK(ctx, bl_dataset_open(ctx, plugin(BL_PLUGIN_DATASET, "synthetic"), dcfg, &data));
    static const char *const wide[] = {"hidden=2048,2048", NULL};
    bl_config *mcfg = config(wide);
    bl_find_batch_config c = bl_find_batch_defaults();
    c.model = plugin(BL_PLUGIN_MODEL, "mlp");
    c.model_opts = mcfg;
    c.data = data;
    c.dev = gpu;
    c.max = 131072;
    c.mode = BL_FIND_BINSEARCH;
    bl_find_batch_result r;
    size_t use = gpu->bytes_in_use;
    BL_ASSERT_OK(ctx, bl_find_max_batch(ctx, &c, &r));
    assert_int_equal(gpu->bytes_in_use, use); /* every trial gave its memory back */
    assert_false(r.hit_max);                  /* it did run out of memory */
    bool failed = false;
    for (int i = 0; i < r.trial_count; i++)
        failed |= !r.trials[i].fits;
    assert_true(failed);
    assert_true(r.recommended >= 1 && r.recommended <= r.largest);
    BL_ASSERT_OK(ctx, bl_device_status(ctx, gpu));
    bl_run_result run = train_steps(gpu, c.model, mcfg, data, r.recommended, 5, true,
                                    BL_DATA_AUTO);
    assert_int_equal(run.steps, 5);
    bl_run_result_free(&run);
    bl_config_free(mcfg);
    bl_config_free(dcfg);
    bl_dataset_close(data);
    if (ballast)
        bl_device_release(gpu, ballast, ballast_bytes);
    bl_registry_free(reg);
    reg = NULL;
}

int main(void)
{
    ctx = bl_ctx_new();
    if (!ctx)
        return 1;
    int rc = bl_device_open(ctx, "cuda", &gpu);
    if (rc != BL_OK) {
        printf("SKIP: %s\n", bl_errmsg(ctx));
        bl_ctx_free(ctx);
        return 77;
    }
    if (bl_device_cpu_open(ctx, 1, &cpu) != BL_OK) {
        fprintf(stderr, "cannot open the CPU device: %s\n", bl_errmsg(ctx));
        return 1;
    }
    bl_rng_seed(&rng, 11, BL_STREAM_USER);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),           cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_bias_and_sums),  cmocka_unit_test(test_xent),
        cmocka_unit_test(test_optimizers),     cmocka_unit_test(test_images),
        cmocka_unit_test(test_conv2d),        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_batchnorm),      cmocka_unit_test(test_memory_and_events),
        cmocka_unit_test(test_out_of_memory),  cmocka_unit_test(test_sticky_fault),
        cmocka_unit_test(test_training_parity), cmocka_unit_test(test_find_batch_real_oom),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    bl_device_free(cpu);
    bl_device_free(gpu);
    bl_ctx_free(ctx);
    return rc;
}

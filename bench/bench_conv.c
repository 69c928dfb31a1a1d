/* bench_conv — conv2d forward+backward throughput on the CPU for LeNet-5's two convolutions.
 *
 *   bench_conv [threads]      (threads: OpenBLAS threads, 0 = leave as is; default 0)
 *
 * FLOPs counted per image: forward 2·O·K·P, backward 4·O·K·P (weight and input gradients),
 * with K = C·k·k and P = out_h·out_w; im2col/col2im and the bias are not counted.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_args.h"
#include "batchlab/batchlab.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *dev_alloc(bl_ctx *ctx, bl_device *dev, size_t floats, size_t *bytes)
{
    void *p = NULL;
    *bytes = (floats ? floats : 1) * sizeof(float);
    if (bl_device_alloc(ctx, dev, *bytes, &p) != BL_OK)
        return NULL;
    return p;
}

/* Times one conv shape at one batch size; prints a line; returns 0 or an error code. */
static int bench(bl_ctx *ctx, bl_device *dev, const char *label, bl_shape in, int64_t out_c,
                 int64_t k, int64_t batch)
{
    bl_layer *L = NULL;
    int rc = bl_conv2d(ctx, out_c, k, 1, 0, true, &L);
    if (rc != BL_OK)
        return rc;
    L->in = in;
    L->dev = dev;
    snprintf(L->name, sizeof L->name, "%s", label);
    if ((rc = L->ops->setup(L, ctx)) != BL_OK) {
        bl_layer_free(L);
        return rc;
    }
    const int64_t in_n = bl_shape_numel(&L->in), out_n = bl_shape_numel(&L->out);
    const size_t counts[7] = {L->n_params, L->n_params, L->ws_fixed + L->ws_per_sample * batch,
                              (size_t)(batch * in_n), (size_t)(batch * in_n),
                              (size_t)(batch * out_n), (size_t)(batch * out_n)};
    float *buf[7] = {0};
    size_t bytes[7] = {0};
    for (int i = 0; i < 7; i++)
        if (!(buf[i] = dev_alloc(ctx, dev, counts[i], &bytes[i])))
            rc = BL_ENOMEM;
    if (rc == BL_OK) {
        size_t host_n = counts[3] > counts[6] ? counts[3] : counts[6];
        host_n = host_n > L->n_params ? host_n : L->n_params;
        float *host = calloc(host_n, sizeof *host);
        bl_rng rng;
        bl_rng_seed(&rng, 1, BL_STREAM_INIT);
        if (host) {
            L->ops->init(L, host, NULL, &rng);
            bl_device_upload(ctx, dev, buf[0], host, L->n_params * sizeof *host);
            for (size_t i = 0; i < host_n; i++)
                host[i] = bl_rng_uniform(&rng) - 0.5f;
            bl_device_upload(ctx, dev, buf[3], host, counts[3] * sizeof *host);
            bl_device_upload(ctx, dev, buf[6], host, counts[6] * sizeof *host);
            free(host);
        }
        L->params = buf[0];
        L->grads = buf[1];
        L->ws = buf[2];
        L->max_batch = batch;
        /* warm up, then run for at least half a second */
        int iters = 0;
        double t0, t;
        for (int w = 0; w < 3; w++) {
            L->ops->forward(L, ctx, batch, true, buf[3], buf[5]);
            L->ops->backward(L, ctx, batch, false, buf[3], buf[5], buf[6], buf[4]);
        }
        dev->ops->synchronize(dev);
        t0 = now();
        while ((t = now()) - t0 < 0.5 || iters < 5) {
            L->ops->forward(L, ctx, batch, true, buf[3], buf[5]);
            L->ops->backward(L, ctx, batch, false, buf[3], buf[5], buf[6], buf[4]);
            dev->ops->synchronize(dev);
            iters++;
        }
        const double K = (double)(in.dim[0] * k * k), P = (double)(L->out.dim[1] * L->out.dim[2]);
        const double flops = 6.0 * (double)out_c * K * P * (double)batch * iters;
        const double sec = t - t0;
        printf("%-28s batch %4lld  %8.3f ms/step  %7.2f GFLOP/s  %9.0f images/s\n", label,
               (long long)batch, 1e3 * sec / iters, flops / sec * 1e-9, batch * iters / sec);
    }
    for (int i = 0; i < 7; i++)
        bl_device_release(dev, buf[i], bytes[i]);
    bl_layer_free(L);
    return rc;
}

static const char usage[] =
    "usage: bench_conv [THREADS]\n"
    "  conv2d forward+backward on the CPU backend, LeNet shapes; THREADS for OpenBLAS\n"
    "  (0, the default: OpenBLAS's own default)\n";

int main(int argc, char **argv)
{
    if (bench_help(argc, argv, usage))
        return 0;
    long threads_arg = 0;
    if (bench_refuse_options("bench_conv", argc, argv) || argc > 2 ||
        (argc > 1 && !bench_long("bench_conv", "THREADS", argv[1], 0, &threads_arg)))
        return 2;
    int threads = (int)threads_arg;
    bl_ctx *ctx = bl_ctx_new();
    bl_device *dev = NULL;
    if (!ctx || bl_device_cpu_open(ctx, threads, &dev) != BL_OK) {
        fprintf(stderr, "bench_conv: cannot open the CPU device: %s\n", bl_errmsg(ctx));
        bl_ctx_free(ctx);
        return 1;
    }
    printf("conv2d forward+backward, CPU, threads %d (0 = OpenBLAS default)\n", threads);
    static const int64_t batches[2] = {32, 128};
    int rc = BL_OK;
    for (int b = 0; b < 2 && rc == BL_OK; b++) {
        rc = bench(ctx, dev, "C1 1x32x32 -> 6, k5", (bl_shape){3, {1, 32, 32}}, 6, 5, batches[b]);
        if (rc == BL_OK)
            rc = bench(ctx, dev, "C3 6x14x14 -> 16, k5", (bl_shape){3, {6, 14, 14}}, 16, 5,
                       batches[b]);
    }
    if (rc != BL_OK)
        fprintf(stderr, "bench_conv: %s\n", bl_errmsg(ctx));
    bl_device_free(dev);
    bl_ctx_free(ctx);
    return rc == BL_OK ? 0 : 1;
}

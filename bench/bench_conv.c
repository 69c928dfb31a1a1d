/* bench_conv — convolutions and a whole LeNet training step on the CPU, as a fraction of the
 * sgemm peak measured in the same run.
 *
 *   bench_conv [--threads 1,2] [--batches 32,128] [--rounds 3] [--seconds 0.3]
 *
 * For each thread count: the peak (one 1024×1024×1024 OpenBLAS sgemm with OpenBLAS itself on
 * that many threads), LeNet's two convolutions (forward + backward through the layer, as a
 * training step runs them: C1 gets no input gradient, being the first layer), and a whole
 * training step of the `cnn` model's LeNet preset on 1×28×28 inputs with 10 classes (forward,
 * cross-entropy, backward, SGD with momentum), in GFLOP/s and as a fraction of that peak.
 * Thread counts and measurements alternate `--rounds` times; the median is printed.
 *
 * FLOPs counted: a product of m×k by k×n is 2·m·n·k. Per image, a convolution's forward is
 * 2·O·K·P (K = C·k·k, P = out_h·out_w), its weight gradient 2·O·K·P and its input gradient
 * 2·O·K·P; a linear layer likewise with K = in, P = 1, O = out. im2col, pooling, activations,
 * the loss and the optimizer are not counted (they are the overhead the fraction shows).
 */
#define _POSIX_C_SOURCE 200809L

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_args.h"
#include "batchlab/batchlab.h"

void openblas_set_num_threads(int num_threads);

#define MAX_LIST 8
#define MAX_ROUNDS 15

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double seconds_per_run = 0.3;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- the peak ------------------------------------------------------------------------------ */

/* GFLOP/s of one 1024³ sgemm with OpenBLAS on `threads` threads (set back to 1 afterwards: the
 * CPU devices run OpenBLAS single-threaded inside their own pools). */
static double sgemm_peak(int threads, float *a, float *b, float *c)
{
    const int n = 1024;
    openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                n);
    int iters = 0;
    double t0 = now(), t;
    while ((t = now()) - t0 < seconds_per_run || iters < 2) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        iters++;
    }
    openblas_set_num_threads(1);
    return 2.0 * n * n * (double)n * iters / (t - t0) * 1e-9;
}

/* ---- one convolution layer ----------------------------------------------------------------- */

typedef struct conv_case {
    const char *label;
    bl_shape in;
    int64_t out_c, k, pad;
    bool first; /* the net's first layer: no input gradient */
} conv_case;

static const conv_case conv_cases[] = {
    {"C1 1x28x28 -> 6, k5 pad 2", {3, {1, 28, 28}}, 6, 5, 2, true},
    {"C3 6x14x14 -> 16, k5", {3, {6, 14, 14}}, 16, 5, 0, false},
};
#define N_CONV (sizeof conv_cases / sizeof conv_cases[0])

static float *dev_floats(bl_ctx *ctx, bl_device *dev, size_t n)
{
    void *p = NULL;
    return bl_device_alloc(ctx, dev, (n ? n : 1) * sizeof(float), &p) == BL_OK ? p : NULL;
}

/* GFLOP/s of forward + backward of one convolution layer at `batch`; < 0 on error. */
static double bench_conv(bl_ctx *ctx, bl_device *dev, const conv_case *cc, int64_t batch)
{
    bl_layer *L = NULL;
    if (bl_conv2d(ctx, cc->out_c, cc->k, 1, cc->pad, true, &L) != BL_OK)
        return -1;
    L->in = cc->in;
    L->dev = dev;
    snprintf(L->name, sizeof L->name, "%s", cc->label);
    if (L->ops->setup(L, ctx) != BL_OK) {
        bl_layer_free(L);
        return -1;
    }
    const int64_t in_n = bl_shape_numel(&L->in), out_n = bl_shape_numel(&L->out);
    const size_t counts[7] = {L->n_params, L->n_params, L->ws_fixed + L->ws_per_sample * batch,
                              (size_t)(batch * in_n), (size_t)(batch * in_n),
                              (size_t)(batch * out_n), (size_t)(batch * out_n)};
    float *buf[7] = {0};
    bool ok = true;
    for (int i = 0; i < 7; i++)
        ok = ok && (buf[i] = dev_floats(ctx, dev, counts[i])) != NULL;
    double gflops = -1;
    if (ok) {
        bl_rng rng;
        bl_rng_seed(&rng, 1, BL_STREAM_INIT);
        L->ops->init(L, buf[0], NULL, &rng); /* the CPU's memory is the host's */
        for (size_t i = 0; i < counts[3]; i++)
            buf[3][i] = bl_rng_uniform(&rng) - 0.5f;
        for (size_t i = 0; i < counts[6]; i++)
            buf[6][i] = bl_rng_uniform(&rng) - 0.5f;
        L->params = buf[0];
        L->grads = buf[1];
        L->ws = buf[2];
        L->max_batch = batch;
        float *d_in = cc->first ? NULL : buf[4];
        int iters = 0;
        double t0 = 0, t = 0;
        for (int w = -2; w < 0 || (t = now()) - t0 < seconds_per_run || iters < 3; w++) {
            if (w == 0)
                t0 = now();
            L->ops->forward(L, ctx, batch, true, buf[3], buf[5]);
            L->ops->backward(L, ctx, batch, false, buf[3], buf[5], buf[6], d_in);
            dev->ops->synchronize(dev);
            if (w >= 0)
                iters++;
        }
        const double K = (double)(cc->in.dim[0] * cc->k * cc->k);
        const double P = (double)(L->out.dim[1] * L->out.dim[2]);
        const double per_image = (cc->first ? 4.0 : 6.0) * (double)cc->out_c * K * P;
        gflops = per_image * (double)batch * iters / (t - t0) * 1e-9;
    }
    for (int i = 0; i < 7; i++)
        bl_device_release(dev, buf[i], counts[i] ? counts[i] * sizeof(float) : sizeof(float));
    bl_layer_free(L);
    return gflops;
}

/* ---- a whole LeNet training step ---------------------------------------------------------- */

/* FLOPs of one sample's training step in the LeNet preset on 1×28×28, 10 classes (see the top;
 * the shapes are those plugins/models/cnn.c documents). */
static double lenet_flops_per_sample(void)
{
    const double c1 = 6.0 * 25 * 784, c3 = 16.0 * 150 * 100; /* O·K·P */
    const double fc = 400.0 * 120 + 120.0 * 84 + 84.0 * 10;  /* in·out */
    return 4 * c1 + 6 * c3 + 6 * fc;
}

/* Samples per second of LeNet training steps at `batch`; < 0 on error. */
static double bench_lenet(bl_ctx *ctx, bl_device *dev, const bl_plugin *cnn, int64_t batch)
{
    bl_data_info info = {.size = sizeof info};
    info.sample = (bl_shape){3, {1, 28, 28}};
    info.classes = 10;
    info.target_dim = 1;
    bl_config *cfg = NULL;
    bl_net *net = NULL;
    if (bl_config_new(ctx, &cfg) != BL_OK ||
        bl_config_set_string(ctx, cfg, "preset", "lenet") != BL_OK ||
        bl_model_build(ctx, cnn, cfg, &info, dev, 1, &net) != BL_OK ||
        bl_net_reserve(ctx, net, batch) != BL_OK) {
        bl_config_free(cfg);
        bl_net_free(net);
        return -1;
    }
    bl_config_free(cfg);
    const size_t np = bl_net_num_params(net);
    float *x = dev_floats(ctx, dev, (size_t)batch * 784), *vel = dev_floats(ctx, dev, np);
    int32_t *y = NULL;
    bl_device_alloc(ctx, dev, (size_t)batch * sizeof *y, (void **)&y);
    double rate = -1;
    if (x && vel && y) {
        bl_rng rng;
        bl_rng_seed(&rng, 2, BL_STREAM_INIT);
        for (int64_t i = 0; i < batch * 784; i++)
            x[i] = bl_rng_uniform(&rng);
        for (int64_t i = 0; i < batch; i++)
            y[i] = (int32_t)(i % 10);
        dev->ops->fill(dev, (int64_t)np, 0.0f, vel);
        int rc = BL_OK, iters = 0;
        double t0 = 0, t = 0;
        for (int w = -2; rc == BL_OK && (w < 0 || (t = now()) - t0 < seconds_per_run ||
                                         iters < 3);
             w++) {
            if (w == 0)
                t0 = now();
            double loss;
            rc = bl_net_forward(ctx, net, x, batch, true, NULL);
            if (rc == BL_OK)
                rc = bl_net_loss(ctx, net, batch, y, &loss, NULL);
            if (rc == BL_OK)
                rc = bl_net_backward(ctx, net, batch, 1.0f / (float)batch, false);
            if (rc == BL_OK)
                dev->ops->sgd_update(dev, (int64_t)np, 0.01f, 0.9f, 0.0f, false, 0.0f,
                                     bl_net_grads(net), vel, bl_net_params(net));
            if (w >= 0)
                iters++;
        }
        if (rc == BL_OK)
            rate = (double)batch * iters / (t - t0);
    }
    bl_device_release(dev, x, (size_t)batch * 784 * sizeof(float));
    bl_device_release(dev, vel, np * sizeof(float));
    bl_device_release(dev, y, (size_t)batch * sizeof *y);
    bl_net_free(net);
    return rate;
}

/* ---- main ---------------------------------------------------------------------------------- */

static const char usage[] =
    "usage: bench_conv [--threads 1,2] [--batches 32,128] [--rounds 3] [--seconds 0.3]\n"
    "  LeNet's convolutions and a whole LeNet-preset training step on the CPU backend, in\n"
    "  GFLOP/s and as a fraction of one big OpenBLAS sgemm measured in the same run on the same\n"
    "  number of threads; the thread counts alternate --rounds times, medians are printed.\n"
    "  --seconds is the time each measurement runs for.\n";

int main(int argc, char **argv)
{
    if (bench_help(argc, argv, usage))
        return 0;
    long threads[MAX_LIST] = {1, 2}, batches[MAX_LIST] = {32, 128}, rounds = 3;
    int n_threads = 2, n_batches = 2;
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = value != NULL;
        if (strcmp(opt, "--threads") != 0 && strcmp(opt, "--batches") != 0 &&
            strcmp(opt, "--rounds") != 0 && strcmp(opt, "--seconds") != 0) {
            fprintf(stderr, "bench_conv: unknown option %s (see --help)\n", opt);
            ok = false;
        } else if (!value)
            fprintf(stderr, "bench_conv: %s needs a value (see --help)\n", opt);
        else if (strcmp(opt, "--threads") == 0)
            ok = (n_threads = bench_list("bench_conv", "--threads", value, 1, threads,
                                         MAX_LIST)) > 0;
        else if (strcmp(opt, "--batches") == 0)
            ok = (n_batches = bench_list("bench_conv", "--batches", value, 1, batches,
                                         MAX_LIST)) > 0;
        else if (strcmp(opt, "--rounds") == 0)
            ok = bench_long("bench_conv", "--rounds", value, 1, &rounds) &&
                 (rounds <= MAX_ROUNDS ||
                  (fprintf(stderr, "bench_conv: --rounds is at most %d\n", MAX_ROUNDS), false));
        else if (strcmp(opt, "--seconds") == 0)
            ok = bench_number("bench_conv", "--seconds", value, 0, 60, &seconds_per_run);
        if (!ok)
            return 2;
    }

    bl_ctx *ctx = bl_ctx_new();
    bl_registry *reg = NULL;
    const bl_plugin *cnn = NULL;
    bl_device *devs[MAX_LIST] = {0};
    const size_t nn = 1024 * 1024;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    int status = 0;
    if (!ctx || !a || !b || !c || bl_registry_new(ctx, &reg) != BL_OK ||
        bl_registry_scan(ctx, reg) != BL_OK ||
        bl_registry_find(ctx, reg, BL_PLUGIN_MODEL, "cnn", &cnn) != BL_OK) {
        fprintf(stderr, "bench_conv: %s\n", ctx ? bl_errmsg(ctx) : "out of memory");
        status = 1;
    }
    for (int t = 0; t < n_threads && status == 0; t++)
        if (bl_device_cpu_open(ctx, (int)threads[t], &devs[t]) != BL_OK) {
            fprintf(stderr, "bench_conv: cannot open the CPU device: %s\n", bl_errmsg(ctx));
            status = 1;
        }
    if (status == 0) {
        for (size_t i = 0; i < nn; i++)
            a[i] = b[i] = (float)(i % 7) * 0.125f - 0.375f;
    }
    /* results[t][0] = peak, then per batch: the convolutions, then LeNet (samples/s) */
    enum { PER_BATCH = N_CONV + 1 };
    static double res[MAX_LIST][1 + MAX_LIST * PER_BATCH][MAX_ROUNDS];
    for (int r = 0; r < rounds && status == 0; r++)
        for (int t = 0; t < n_threads && status == 0; t++) {
            res[t][0][r] = sgemm_peak((int)threads[t], a, b, c);
            for (int bi = 0; bi < n_batches && status == 0; bi++) {
                double *slot = &res[t][1 + bi * PER_BATCH][0];
                for (size_t k = 0; k < N_CONV && status == 0; k++)
                    if ((slot[k * MAX_ROUNDS + r] =
                             bench_conv(ctx, devs[t], &conv_cases[k], batches[bi])) < 0)
                        status = 1;
                if (status == 0 && (slot[N_CONV * MAX_ROUNDS + r] =
                                        bench_lenet(ctx, devs[t], cnn, batches[bi])) < 0)
                    status = 1;
            }
        }
    if (status != 0 && ctx && bl_errmsg(ctx)[0])
        fprintf(stderr, "bench_conv: %s\n", bl_errmsg(ctx));
    if (status == 0) {
        printf("CPU backend, medians of %ld rounds; peak = one 1024^3 OpenBLAS sgemm on the same "
               "threads\n",
               rounds);
        printf("%-7s %-28s %6s %10s %9s %12s\n", "threads", "what", "batch", "GFLOP/s",
               "of peak", "samples/s");
        for (int t = 0; t < n_threads; t++) {
            const double peak = median(res[t][0], (int)rounds);
            printf("%-7ld %-28s %6s %10.1f %9s %12s\n", threads[t], "sgemm peak", "-", peak,
                   "1.00", "-");
            for (int bi = 0; bi < n_batches; bi++) {
                double *slot = &res[t][1 + bi * PER_BATCH][0];
                for (size_t k = 0; k < N_CONV; k++) {
                    const double g = median(slot + k * MAX_ROUNDS, (int)rounds);
                    printf("%-7ld %-28s %6ld %10.1f %9.2f %12s\n", threads[t],
                           conv_cases[k].label, batches[bi], g, g / peak, "-");
                }
                const double rate = median(slot + N_CONV * MAX_ROUNDS, (int)rounds);
                const double g = rate * lenet_flops_per_sample() * 1e-9;
                printf("%-7ld %-28s %6ld %10.1f %9.2f %12.0f\n", threads[t],
                       "LeNet train step", batches[bi], g, g / peak, rate);
            }
        }
    }
    for (int t = 0; t < n_threads; t++)
        bl_device_free(devs[t]);
    bl_registry_free(reg);
    bl_ctx_free(ctx);
    free(a);
    free(b);
    free(c);
    return status;
}

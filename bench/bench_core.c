/* bench_core: training-step throughput of an MLP 784-256-128-10 (linear-relu-linear-relu-linear,
 * cross-entropy, SGD with momentum 0.9) on the CPU device, against what the step's matrix
 * products alone allow.
 *
 * For each batch size three things are timed in alternating rounds of the same run, so that all
 * see the same machine, and the best round of each is reported:
 *   step       forward, loss, backward and SGD update through bl_net on the CPU device;
 *   cblas      the step's GEMMs alone: the same shapes, forward and backward, as plain
 *              cblas_sgemm calls with OpenBLAS's own threading on the same thread count;
 *   device     the same GEMMs alone through the device's gemm (how the step runs them).
 * "fraction" is step / max(cblas, device): the step against the fastest way to do its GEMMs.
 * Data are random (inputs N(0, 1), labels uniform over 10 classes).
 *
 *   bench_core [--threads N] [--seconds S] [--batches 1,8,32,...]
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
int openblas_get_num_threads(void);
char *openblas_get_corename(void);

#define ROUNDS 8
#define MAX_BATCHES 32

static const int64_t widths[4] = {784, 256, 128, 10};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(bl_ctx *ctx, const char *what)
{
    fprintf(stderr, "bench_core: %s: %s\n", what, bl_errmsg(ctx));
    exit(1);
}

static const char usage_text[] =
    "usage: bench_core [--threads N] [--seconds S] [--batches 1,8,32,...]\n";

static void usage(void)
{
    fputs(usage_text, stderr);
    exit(2);
}

typedef struct step_env {
    bl_ctx *ctx;
    bl_device *dev;
    bl_net *net;
    float *x, *velocity; /* device */
    int32_t *labels;     /* device */
    double loss;
} step_env;

static void train_step(step_env *e, int64_t batch)
{
    double loss;
    if (bl_net_forward(e->ctx, e->net, e->x, batch, true, NULL) != BL_OK ||
        bl_net_loss(e->ctx, e->net, batch, e->labels, &loss, NULL) != BL_OK ||
        bl_net_backward(e->ctx, e->net, batch, 1.0f / (float)batch, false) != BL_OK)
        die(e->ctx, "training step");
    e->dev->ops->sgd_update(e->dev, (int64_t)bl_net_num_params(e->net), 0.01f, 0.9f, 0.0f, false,
                            0.0f, bl_net_grads(e->net), e->velocity, bl_net_params(e->net));
    e->loss = loss;
}

/* Buffers for the GEMM-only run: the same shapes as the step's products. */
typedef struct gemm_env {
    float *act[4];  /* [B × widths[i]] activations */
    float *dact[4]; /* their gradients */
    float *w[3], *dw[3];
    bl_device *dev; /* for device_gemm_step */
    int threads;    /* OpenBLAS threads for gemm_step */
} gemm_env;

static void device_gemm_step(gemm_env *g, int64_t b)
{
    const bl_device_ops *ops = g->dev->ops;
    for (int l = 0; l < 3; l++) {
        int64_t in = widths[l], out = widths[l + 1];
        ops->gemm(g->dev, false, true, b, out, in, 1.0f, g->act[l], in, g->w[l], in, 0.0f,
                  g->act[l + 1], out);
    }
    for (int l = 2; l >= 0; l--) {
        int64_t in = widths[l], out = widths[l + 1];
        ops->gemm(g->dev, true, false, out, in, b, 1.0f, g->dact[l + 1], out, g->act[l], in,
                  0.0f, g->dw[l], in);
        if (l > 0)
            ops->gemm(g->dev, false, false, b, in, out, 1.0f, g->dact[l + 1], out, g->w[l], in,
                      0.0f, g->dact[l], in);
    }
}

static void gemm_step(gemm_env *g, int64_t batch)
{
    int b = (int)batch;
    /* OpenBLAS's own threading for this reference; the CPU device set the process-wide count
     * to 1 when it opened (its pool runs OpenBLAS single-threaded), so it is put back after */
    int device_setting = openblas_get_num_threads();
    openblas_set_num_threads(g->threads);
    for (int l = 0; l < 3; l++) { /* forward: Y = X · Wᵀ */
        int in = (int)widths[l], out = (int)widths[l + 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, out, in, 1.0f, g->act[l], in,
                    g->w[l], in, 0.0f, g->act[l + 1], out);
    }
    for (int l = 2; l >= 0; l--) { /* backward: dW = dYᵀ · X; dX = dY · W (not for layer 1) */
        int in = (int)widths[l], out = (int)widths[l + 1];
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, b, 1.0f, g->dact[l + 1],
                    out, g->act[l], in, 0.0f, g->dw[l], in);
        if (l > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, in, out, 1.0f,
                        g->dact[l + 1], out, g->w[l], in, 0.0f, g->dact[l], in);
    }
    openblas_set_num_threads(device_setting);
}

static double step_flops(int64_t batch)
{
    double f = 0.0;
    for (int l = 0; l < 3; l++) {
        double mac = (double)batch * (double)widths[l] * (double)widths[l + 1];
        f += 2.0 * mac * (l > 0 ? 3.0 : 2.0);
    }
    return f;
}

static float *host_floats(size_t n, bl_rng *rng)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "bench_core: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = rng ? (float)bl_rng_normal(rng) * 0.1f : 0.0f;
    return p;
}

/* Runs `steps` iterations at a time until `seconds` have passed; returns steps per second. */
typedef void (*bench_fn)(void *env, int64_t batch);
static void run_train(void *env, int64_t batch)
{
    train_step(env, batch);
}
static void run_gemm(void *env, int64_t batch)
{
    gemm_step(env, batch);
}
static void run_device_gemm(void *env, int64_t batch)
{
    device_gemm_step(env, batch);
}

static double rate(bench_fn fn, void *env, int64_t batch, double seconds)
{
    long steps = 0;
    double t0 = now(), t;
    do {
        fn(env, batch);
        steps++;
        t = now();
    } while (t - t0 < seconds);
    return (double)steps / (t - t0);
}

/* cblas_sgemm alone with OpenBLAS's own threading on `threads` threads (the CPU device set the
 * process-wide count to 1 when it opened; it is put back after). */
static double raw_gflops(int size, double seconds, int threads)
{
    int device_setting = openblas_get_num_threads();
    openblas_set_num_threads(threads);
    size_t n = (size_t)size * (size_t)size;
    bl_rng rng;
    bl_rng_seed(&rng, 7, BL_STREAM_USER);
    float *a = host_floats(n, &rng), *b = host_floats(n, &rng), *c = host_floats(n, NULL);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size, b,
                size, 0.0f, c, size);
    long reps = 0;
    double t0 = now(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size,
                    b, size, 0.0f, c, size);
        reps++;
        t = now();
    } while (t - t0 < seconds);
    free(a);
    free(b);
    free(c);
    openblas_set_num_threads(device_setting);
    return 2.0 * (double)n * size * (double)reps / (t - t0) / 1e9;
}

int main(int argc, char **argv)
{
    int threads = 0;
    double seconds = 1.0;
    int64_t batches[MAX_BATCHES] = {1, 8, 32, 128, 512, 2048};
    int n_batches = 6;
    if (bench_help(argc, argv, usage_text))
        return 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
            if (threads < 1)
                usage();
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
            if (!(seconds > 0.0))
                usage();
        } else if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc) {
            n_batches = 0;
            for (char *s = strtok(argv[++i], ","); s && n_batches < MAX_BATCHES;
                 s = strtok(NULL, ","))
                if ((batches[n_batches++] = atoll(s)) < 1)
                    usage();
        } else {
            usage();
        }
    }
    int64_t max_batch = 1;
    for (int i = 0; i < n_batches; i++)
        max_batch = batches[i] > max_batch ? batches[i] : max_batch;

    step_env e = {0};
    e.ctx = bl_ctx_new();
    if (!e.ctx || bl_device_cpu_open(e.ctx, threads, &e.dev) != BL_OK)
        die(e.ctx, "opening the CPU device");
    threads = e.dev->host_threads;

    /* the network */
    bl_shape input = {1, {784, 1, 1}};
    bl_layer *layer;
    if (bl_net_new(e.ctx, e.dev, &input, &e.net) != BL_OK)
        die(e.ctx, "bl_net_new");
    for (int l = 0; l < 3; l++) {
        if (bl_linear(e.ctx, widths[l + 1], true, &layer) != BL_OK ||
            bl_net_add(e.ctx, e.net, layer) != BL_OK)
            die(e.ctx, "adding a linear layer");
        if (l < 2 && (bl_activation_layer(e.ctx, BL_ACT_RELU, &layer) != BL_OK ||
                      bl_net_add(e.ctx, e.net, layer) != BL_OK))
            die(e.ctx, "adding a relu layer");
    }
    if (bl_net_build(e.ctx, e.net, BL_LOSS_CROSS_ENTROPY, 1) != BL_OK ||
        bl_net_reserve(e.ctx, e.net, max_batch) != BL_OK)
        die(e.ctx, "building the net");

    /* data and momentum */
    size_t n_params = bl_net_num_params(e.net);
    bl_rng rng;
    bl_rng_seed(&rng, 1, BL_STREAM_DATA);
    float *hx = host_floats((size_t)max_batch * 784, &rng);
    for (size_t i = 0; i < (size_t)max_batch * 784; i++)
        hx[i] *= 10.0f;
    int32_t *hl = malloc((size_t)max_batch * sizeof *hl);
    for (int64_t i = 0; i < max_batch; i++)
        hl[i] = (int32_t)bl_rng_below(&rng, 10);
    void *p;
    if (bl_device_alloc(e.ctx, e.dev, (size_t)max_batch * 784 * sizeof(float), &p) != BL_OK)
        die(e.ctx, "alloc");
    e.x = p;
    if (bl_device_alloc(e.ctx, e.dev, (size_t)max_batch * sizeof(int32_t), &p) != BL_OK)
        die(e.ctx, "alloc");
    e.labels = p;
    if (bl_device_alloc(e.ctx, e.dev, n_params * sizeof(float), &p) != BL_OK)
        die(e.ctx, "alloc");
    e.velocity = p;
    e.dev->ops->fill(e.dev, (int64_t)n_params, 0.0f, e.velocity);
    bl_device_upload(e.ctx, e.dev, e.x, hx, (size_t)max_batch * 784 * sizeof(float));
    bl_device_upload(e.ctx, e.dev, e.labels, hl, (size_t)max_batch * sizeof(int32_t));

    /* GEMM-only buffers */
    gemm_env g;
    g.dev = e.dev;
    g.threads = threads;
    for (int l = 0; l < 4; l++) {
        g.act[l] = host_floats((size_t)max_batch * (size_t)widths[l], &rng);
        g.dact[l] = host_floats((size_t)max_batch * (size_t)widths[l], &rng);
    }
    for (int l = 0; l < 3; l++) {
        g.w[l] = host_floats((size_t)(widths[l] * widths[l + 1]), &rng);
        g.dw[l] = host_floats((size_t)(widths[l] * widths[l + 1]), NULL);
    }

    const char *coretype = getenv("OPENBLAS_CORETYPE");
    printf("bench_core: MLP 784-256-128-10, cross-entropy, SGD momentum; %zu parameters\n",
           n_params);
    printf("threads %d, OpenBLAS core %s%s%s, %.2f s per batch size and kind, best of %d "
           "rounds\n",
           threads, openblas_get_corename(), coretype ? ", OPENBLAS_CORETYPE=" : "",
           coretype ? coretype : "", seconds, ROUNDS);
    printf("raw cblas_sgemm 1024x1024x1024: %.1f GFLOP/s\n\n", raw_gflops(1024, 0.5, threads));
    printf("%6s %11s %10s %14s %14s %9s %10s %10s\n", "batch", "samples/s", "step us",
           "cblas smp/s", "device smp/s", "fraction", "step GF/s", "GEMM GF/s");

    for (int bi = 0; bi < n_batches; bi++) {
        int64_t b = batches[bi];
        for (int w = 0; w < 5; w++) { /* warm up: caches, OpenBLAS buffers, thread wake-up */
            train_step(&e, b);
            gemm_step(&g, b);
            device_gemm_step(&g, b);
        }
        double best_step = 0.0, best_cblas = 0.0, best_dev = 0.0;
        for (int r = 0; r < ROUNDS; r++) {
            double s = rate(run_train, &e, b, seconds / ROUNDS);
            double q = rate(run_gemm, &g, b, seconds / ROUNDS);
            double d = rate(run_device_gemm, &g, b, seconds / ROUNDS);
            best_step = s > best_step ? s : best_step;
            best_cblas = q > best_cblas ? q : best_cblas;
            best_dev = d > best_dev ? d : best_dev;
        }
        double flops = step_flops(b);
        double best_gemm = best_cblas > best_dev ? best_cblas : best_dev;
        printf("%6lld %11.0f %10.1f %14.0f %14.0f %9.3f %10.1f %10.1f\n", (long long)b,
               best_step * (double)b, 1e6 / best_step, best_cblas * (double)b,
               best_dev * (double)b, best_step / best_gemm, best_step * flops / 1e9,
               best_gemm * flops / 1e9);
        fflush(stdout);
    }
    printf("\nlast loss %.4f (a sanity check: finite)\n", e.loss / (double)batches[n_batches - 1]);

    for (int l = 0; l < 4; l++) {
        free(g.act[l]);
        free(g.dact[l]);
    }
    for (int l = 0; l < 3; l++) {
        free(g.w[l]);
        free(g.dw[l]);
    }
    free(hx);
    free(hl);
    bl_device_release(e.dev, e.x, (size_t)max_batch * 784 * sizeof(float));
    bl_device_release(e.dev, e.labels, (size_t)max_batch * sizeof(int32_t));
    bl_device_release(e.dev, e.velocity, n_params * sizeof(float));
    bl_net_free(e.net);
    bl_device_free(e.dev);
    bl_ctx_free(e.ctx);
    return 0;
}

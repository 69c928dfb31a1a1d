/* bench_core: training-step throughput of an MLP (784-256-128-10 by default; linear and relu
 * layers, cross-entropy, SGD with momentum 0.9) on the CPU device, against what the step's
 * matrix products alone allow.
 *
 * For each batch size three things are timed in alternating rounds of the same run, so that all
 * see the same machine, and the best round of each is reported:
 *   step       forward, loss, backward and SGD update through bl_net on the CPU device;
 *   cblas      the step's GEMMs alone: the same shapes, forward and backward, as plain
 *              cblas_sgemm calls with OpenBLAS's own threading on the same thread count;
 *   device     the same GEMMs alone through the device's gemm (how the step runs them).
 * "fraction" is step / max(cblas, device): the step against the fastest way to do its GEMMs.
 * Data are random (inputs N(0, 1), labels uniform over the last width's classes).
 *
 * --sweep times the step alone over batch 1, 2, 4, every size from 8 to 48, then 64 … 2048
 * (× 1.5 and × 2 alternately), for 784-256-128-10 and 784-1024-1024-10 (or --widths), in
 * interleaved rounds (every size once per round), and flags every size whose samples/s is
 * more than 5% below the size before it: a throughput cliff. A drop is measured once more, the
 * two sizes alone in alternating rounds, and counted only when it is there again (on a shared
 * virtual machine one size's rounds can all fall in a slow moment). Its figure is the fastest
 * single step seen (batch / shortest step time): on a machine that other programs share, a rate over
 * a whole interval swings by a factor of several, while the fastest step is the one nothing
 * interrupted, the figure a quiet machine gives.
 *
 *   bench_core [--threads N] [--seconds S] [--batches 1,8,32,...] [--widths 784,256,128,10]
 *   bench_core --sweep [--threads N] [--seconds S] [--widths ...]
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
#define MAX_BATCHES 64
#define MAX_WIDTHS 8

/* the MLP's layer widths, input first */
static int64_t widths[MAX_WIDTHS] = {784, 256, 128, 10};
static int n_layers = 3;

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
    "usage: bench_core [--threads N] [--seconds S] [--batches 1,8,32,...] [--widths W,...]\n"
    "       bench_core --sweep [--threads N] [--seconds S] [--widths W,...]\n"
    "  the training step of an MLP (default 784-256-128-10) against its GEMMs alone;\n"
    "  --sweep: step samples/s over batch 1 ... 2048 (every size 8 ... 48) for 784-256-128-10\n"
    "  and 784-1024-1024-10 (or --widths), flagging any drop > 5% from one size to the next\n"
    "  that a side-by-side measurement of the two sizes confirms;\n"
    "  --seconds: time per batch size and kind (sweep: per size, over all rounds)\n";

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
    float *act[MAX_WIDTHS];  /* [B × widths[i]] activations */
    float *dact[MAX_WIDTHS]; /* their gradients */
    float *w[MAX_WIDTHS], *dw[MAX_WIDTHS];
    bl_device *dev; /* for device_gemm_step */
    int threads;    /* OpenBLAS threads for gemm_step */
} gemm_env;

static void device_gemm_step(gemm_env *g, int64_t b)
{
    const bl_device_ops *ops = g->dev->ops;
    for (int l = 0; l < n_layers; l++) {
        int64_t in = widths[l], out = widths[l + 1];
        ops->gemm(g->dev, false, true, b, out, in, 1.0f, g->act[l], in, g->w[l], in, 0.0f,
                  g->act[l + 1], out);
    }
    for (int l = n_layers - 1; l >= 0; l--) {
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
    for (int l = 0; l < n_layers; l++) { /* forward: Y = X · Wᵀ */
        int in = (int)widths[l], out = (int)widths[l + 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, out, in, 1.0f, g->act[l], in,
                    g->w[l], in, 0.0f, g->act[l + 1], out);
    }
    /* backward: dW = dYᵀ · X; dX = dY · W (not for layer 1) */
    for (int l = n_layers - 1; l >= 0; l--) {
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
    for (int l = 0; l < n_layers; l++) {
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

/* The net, its data and the GEMM-only buffers for the current widths, up to max_batch. */
typedef struct bench {
    step_env e;
    gemm_env g;
    int64_t max_batch;
    float *hx;
    int32_t *hl;
} bench;

static void bench_open(bench *b, bl_ctx *ctx, bl_device *dev, int64_t max_batch)
{
    memset(b, 0, sizeof *b);
    step_env *e = &b->e;
    e->ctx = ctx;
    e->dev = dev;
    b->max_batch = max_batch;
    int64_t in = widths[0], classes = widths[n_layers];
    bl_shape input = {1, {in, 1, 1}};
    bl_layer *layer;
    if (bl_net_new(ctx, dev, &input, &e->net) != BL_OK)
        die(ctx, "bl_net_new");
    for (int l = 0; l < n_layers; l++) {
        if (bl_linear(ctx, widths[l + 1], true, &layer) != BL_OK ||
            bl_net_add(ctx, e->net, layer) != BL_OK)
            die(ctx, "adding a linear layer");
        if (l < n_layers - 1 && (bl_activation_layer(ctx, BL_ACT_RELU, &layer) != BL_OK ||
                                 bl_net_add(ctx, e->net, layer) != BL_OK))
            die(ctx, "adding a relu layer");
    }
    if (bl_net_build(ctx, e->net, BL_LOSS_CROSS_ENTROPY, 1) != BL_OK ||
        bl_net_reserve(ctx, e->net, max_batch) != BL_OK)
        die(ctx, "building the net");

    /* data and momentum */
    size_t n_params = bl_net_num_params(e->net);
    bl_rng rng;
    bl_rng_seed(&rng, 1, BL_STREAM_DATA);
    size_t nx = (size_t)max_batch * (size_t)in;
    b->hx = host_floats(nx, &rng);
    for (size_t i = 0; i < nx; i++)
        b->hx[i] *= 10.0f;
    b->hl = malloc((size_t)max_batch * sizeof *b->hl);
    if (!b->hl)
        die(ctx, "out of memory");
    for (int64_t i = 0; i < max_batch; i++)
        b->hl[i] = (int32_t)bl_rng_below(&rng, (uint64_t)classes);
    void *p;
    if (bl_device_alloc(ctx, dev, nx * sizeof(float), &p) != BL_OK)
        die(ctx, "alloc");
    e->x = p;
    if (bl_device_alloc(ctx, dev, (size_t)max_batch * sizeof(int32_t), &p) != BL_OK)
        die(ctx, "alloc");
    e->labels = p;
    if (bl_device_alloc(ctx, dev, n_params * sizeof(float), &p) != BL_OK)
        die(ctx, "alloc");
    e->velocity = p;
    dev->ops->fill(dev, (int64_t)n_params, 0.0f, e->velocity);
    bl_device_upload(ctx, dev, e->x, b->hx, nx * sizeof(float));
    bl_device_upload(ctx, dev, e->labels, b->hl, (size_t)max_batch * sizeof(int32_t));

    /* GEMM-only buffers */
    gemm_env *g = &b->g;
    g->dev = dev;
    g->threads = dev->host_threads;
    for (int l = 0; l <= n_layers; l++) {
        g->act[l] = host_floats((size_t)max_batch * (size_t)widths[l], &rng);
        g->dact[l] = host_floats((size_t)max_batch * (size_t)widths[l], &rng);
    }
    for (int l = 0; l < n_layers; l++) {
        g->w[l] = host_floats((size_t)(widths[l] * widths[l + 1]), &rng);
        g->dw[l] = host_floats((size_t)(widths[l] * widths[l + 1]), NULL);
    }
}

static void bench_close(bench *b)
{
    step_env *e = &b->e;
    for (int l = 0; l <= n_layers; l++) {
        free(b->g.act[l]);
        free(b->g.dact[l]);
    }
    for (int l = 0; l < n_layers; l++) {
        free(b->g.w[l]);
        free(b->g.dw[l]);
    }
    size_t n_params = bl_net_num_params(e->net);
    free(b->hx);
    free(b->hl);
    bl_device_release(e->dev, e->x, (size_t)(b->max_batch * widths[0]) * sizeof(float));
    bl_device_release(e->dev, e->labels, (size_t)b->max_batch * sizeof(int32_t));
    bl_device_release(e->dev, e->velocity, n_params * sizeof(float));
    bl_net_free(e->net);
}

static void print_widths(void)
{
    for (int l = 0; l <= n_layers; l++)
        printf("%s%lld", l ? "-" : "", (long long)widths[l]);
}

/* Step, cblas and device GEMMs side by side at each of the batches. */
static void compare(bl_device *dev, bl_ctx *ctx, const int64_t *batches, int n_batches,
                    double seconds)
{
    int64_t max_batch = 1;
    for (int i = 0; i < n_batches; i++)
        max_batch = batches[i] > max_batch ? batches[i] : max_batch;
    bench bn;
    bench_open(&bn, ctx, dev, max_batch);
    step_env *e = &bn.e;
    gemm_env *g = &bn.g;
    int threads = dev->host_threads;
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    printf("bench_core: MLP ");
    print_widths();
    printf(", cross-entropy, SGD momentum; %zu parameters\n", bl_net_num_params(e->net));
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
            train_step(e, b);
            gemm_step(g, b);
            device_gemm_step(g, b);
        }
        double best_step = 0.0, best_cblas = 0.0, best_dev = 0.0;
        for (int r = 0; r < ROUNDS; r++) {
            double s = rate(run_train, e, b, seconds / ROUNDS);
            double q = rate(run_gemm, g, b, seconds / ROUNDS);
            double d = rate(run_device_gemm, g, b, seconds / ROUNDS);
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
    printf("\nlast loss %.4f (a sanity check: finite)\n", e->loss / (double)batches[n_batches - 1]);
    bench_close(&bn);
}

/* The sweep's batches: 1, 2, 4, 8 … 48, then 64, 96, 128, … 2048. */
static int sweep_batches(int64_t *out)
{
    int n = 0;
    out[n++] = 1;
    out[n++] = 2;
    out[n++] = 4;
    for (int64_t b = 8; b <= 48; b++)
        out[n++] = b;
    for (int64_t b = 64; b <= 2048; b *= 2) {
        out[n++] = b;
        if (b < 2048)
            out[n++] = b + b / 2;
    }
    return n;
}

/* The shortest of the steps run for `seconds` (at least 3). */
static double fastest_step(step_env *e, int64_t batch, double seconds)
{
    double best = 1e300, t0 = now(), t = t0;
    for (int i = 0; i < 3 || t - t0 < seconds; i++) {
        double a = now();
        train_step(e, batch);
        t = now();
        best = t - a < best ? t - a : best;
    }
    return best;
}

/* samples/s of batch b against batch a (a < b), each the fastest step over RECHECK_ROUNDS
 * alternating rounds of `seconds`. */
static double recheck(step_env *e, int64_t a, int64_t b, double seconds)
{
    enum { RECHECK_ROUNDS = 10 };
    double best_a = 1e300, best_b = 1e300;
    for (int r = 0; r < RECHECK_ROUNDS; r++) {
        double ta = fastest_step(e, a, seconds), tb = fastest_step(e, b, seconds);
        best_a = ta < best_a ? ta : best_a;
        best_b = tb < best_b ? tb : best_b;
    }
    return ((double)b / best_b) / ((double)a / best_a);
}

/* The step alone over the sweep's batches; returns the number of drops > 5% that a second,
 * side-by-side measurement confirms. */
static int sweep(bl_device *dev, bl_ctx *ctx, double seconds)
{
    int64_t batches[MAX_BATCHES];
    int nb = sweep_batches(batches);
    enum { SWEEP_ROUNDS = 5 };
    bench bn;
    bench_open(&bn, ctx, dev, batches[nb - 1]);
    step_env *e = &bn.e;
    double best[MAX_BATCHES] = {0};
    for (int bi = 0; bi < nb; bi++)
        for (int w = 0; w < 3; w++)
            train_step(e, batches[bi]);
    /* every size once per round, so that a slow minute of the machine touches all alike */
    for (int r = 0; r < SWEEP_ROUNDS; r++)
        for (int bi = 0; bi < nb; bi++) {
            double s = (double)batches[bi] / fastest_step(e, batches[bi], seconds / SWEEP_ROUNDS);
            best[bi] = s > best[bi] ? s : best[bi];
        }
    printf("MLP ");
    print_widths();
    printf(", %d threads: training-step samples/s of the fastest step, %d rounds of %.3f s\n",
           dev->host_threads, SWEEP_ROUNDS, seconds / SWEEP_ROUNDS);
    printf("%6s %11s %10s %10s %8s\n", "batch", "samples/s", "step us", "GFLOP/s", "vs prev");
    int drops = 0;
    for (int bi = 0; bi < nb; bi++) {
        double ratio = bi > 0 ? best[bi] / best[bi - 1] : 1.0;
        const char *flag = "";
        if (ratio < 0.95) {
            /* a drop is measured again, the two sizes side by side: a slow moment of a shared
             * machine that touched one size's rounds goes away, a kernel's cliff stays */
            double again = recheck(e, batches[bi - 1], batches[bi], seconds / SWEEP_ROUNDS);
            bool drop = again < 0.95;
            drops += drop;
            flag = drop ? "  DROP > 5%, again side by side" : "  (> 5% once; not again side by side)";
            if (drop)
                ratio = again;
        }
        printf("%6lld %11.0f %10.1f %10.1f %8.3f%s\n", (long long)batches[bi], best[bi],
               1e6 * (double)batches[bi] / best[bi],
               best[bi] / (double)batches[bi] * step_flops(batches[bi]) / 1e9, ratio, flag);
    }
    printf("drops > 5%%: %d\n\n", drops);
    fflush(stdout);
    bench_close(&bn);
    return drops;
}

/* The layer count of "in,hidden...,out" (at least 2 widths) into widths[]; -1 after a message. */
static int parse_widths(const char *text)
{
    long given[MAX_WIDTHS];
    int n = bench_list("bench_core", "--widths", text, 1, given, MAX_WIDTHS);
    if (n == 1)
        fprintf(stderr, "bench_core: --widths needs an input and an output width at least\n");
    if (n < 2)
        return -1;
    for (int w = 0; w < n; w++)
        widths[w] = given[w];
    return n - 1;
}

int main(int argc, char **argv)
{
    int threads = 0;
    double seconds = 1.0;
    int64_t batches[MAX_BATCHES] = {1, 8, 32, 128, 512, 2048};
    int n_batches = 6;
    bool sweep_mode = false, widths_given = false;
    if (bench_help(argc, argv, usage_text))
        return 0;
    for (int i = 1; i < argc; i++) {
        long v;
        if (strcmp(argv[i], "--sweep") == 0) {
            sweep_mode = true;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            if (!bench_long("bench_core", "--threads", argv[++i], 1, &v))
                return 2;
            threads = (int)v;
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            if (!bench_number("bench_core", "--seconds", argv[++i], 0, 3600, &seconds))
                return 2;
        } else if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc) {
            long given[MAX_BATCHES];
            n_batches = bench_list("bench_core", "--batches", argv[++i], 1, given, MAX_BATCHES);
            if (n_batches < 0)
                return 2;
            for (int b = 0; b < n_batches; b++)
                batches[b] = given[b];
        } else if (strcmp(argv[i], "--widths") == 0 && i + 1 < argc) {
            if ((n_layers = parse_widths(argv[++i])) < 1)
                return 2;
            widths_given = true;
        } else {
            usage();
        }
    }

    bl_ctx *ctx = bl_ctx_new();
    bl_device *dev;
    if (!ctx || bl_device_cpu_open(ctx, threads, &dev) != BL_OK)
        die(ctx, "opening the CPU device");
    if (!sweep_mode) {
        compare(dev, ctx, batches, n_batches, seconds);
    } else if (widths_given) {
        sweep(dev, ctx, seconds);
    } else {
        static const int64_t shapes[2][4] = {{784, 256, 128, 10}, {784, 1024, 1024, 10}};
        int drops = 0;
        for (int s = 0; s < 2; s++) {
            memcpy(widths, shapes[s], sizeof shapes[s]);
            n_layers = 3;
            drops += sweep(dev, ctx, seconds);
        }
        printf("total drops > 5%%: %d\n", drops);
    }
    bl_device_free(dev);
    bl_ctx_free(ctx);
    return 0;
}

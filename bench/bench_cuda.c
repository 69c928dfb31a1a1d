/* bench_cuda — epoch time of the MLP 784-256-128-10 on a device, batch 32 … 8192, with the
 * training data resident in device memory (issue 11). The same run in PyTorch eager is
 * bench/pytorch_cuda.py; bench/run_cuda_bench.sh runs both side by side.
 *
 *   bench_cuda [--device cuda] [--epochs 3] [--max-batch 8192] [--data DIR] [--engine]
 *
 * Data: Fashion-MNIST's 60,000 training images from DIR (idx plugin, scaled to [0, 1]) when it
 * is there, else 60,000 synthetic 784-value samples with 10 classes. The whole training set is
 * uploaded once, shuffled once on the host first; each step trains on the next contiguous
 * slice (PyTorch's script does the same), so the timed loop is forward, loss (one read-back:
 * the loss the engine records each step), backward and the SGD update (lr 0.05, momentum
 * 0.9). An epoch is ⌊60000 / batch⌋ steps; the table gives the median of --epochs timed
 * epochs after one warm-up epoch. --engine also times one epoch of bl_train at each batch
 * (host-side batches, pinned staging, asynchronous uploads) for comparison.
 *
 * Exit status: 0 measured, 2 bad arguments, 77 no usable device (the reason on stderr).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batchlab/batchlab.h"
#include "batchlab/device_backend.h"
#include "bench_args.h"

#define SAMPLES 60000
#define FEATURES 784
#define CLASSES 10

static const char usage[] =
    "usage: bench_cuda [--device NAME] [--epochs N] [--max-batch N] [--data DIR] [--engine]\n"
    "  MLP 784-256-128-10 epoch time at batch 32, 64, ... up to --max-batch (default 8192)\n"
    "  with the training data resident on the device (default device: cuda).\n"
    "  --epochs N   timed epochs per batch size after one warm-up (default 3; median)\n"
    "  --data DIR   Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist;\n"
    "               synthetic data when it is not there)\n"
    "  --engine     also time one epoch of bl_train (batches uploaded from the host;\n"
    "               needs the Fashion-MNIST files, else the column shows nan)\n"
    "  Exit status 77 when the device cannot be opened (the reason is printed).\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct bench {
    bl_ctx *ctx;
    bl_device *dev;
    bl_registry *reg;
    bl_dataset *data; /* NULL: synthetic */
    const bl_plugin *mlp;
    bl_config *mlp_opts;
    float *x_dev;     /* [SAMPLES, FEATURES] resident */
    int32_t *y_dev;   /* [SAMPLES] */
} bench;

static int fail(bench *b, const char *what)
{
    fprintf(stderr, "bench_cuda: %s: %s\n", what, bl_errmsg(b->ctx));
    return 1;
}

/* The training set on the host, shuffled once, then uploaded. */
static int load_data(bench *b, const char *dir)
{
    float *x = malloc((size_t)SAMPLES * FEATURES * sizeof *x);
    int32_t *y = malloc((size_t)SAMPLES * sizeof *y);
    int64_t *idx = malloc((size_t)SAMPLES * sizeof *idx);
    if (!x || !y || !idx) {
        fprintf(stderr, "bench_cuda: out of host memory\n");
        return 1;
    }
    bl_rng rng;
    bl_rng_seed(&rng, 1, BL_STREAM_SHUFFLE);
    bl_rng_permutation(&rng, idx, SAMPLES);
    const bl_plugin *idxp = NULL;
    bl_config *cfg = NULL;
    char set[1100];
    snprintf(set, sizeof set, "dir=%s", dir);
    if (bl_registry_find(b->ctx, b->reg, BL_PLUGIN_DATASET, "idx", &idxp) == BL_OK &&
        bl_config_new(b->ctx, &cfg) == BL_OK &&
        bl_config_set_assignment(b->ctx, cfg, set) == BL_OK &&
        bl_config_set_assignment(b->ctx, cfg, "normalize=unit") == BL_OK &&
        bl_dataset_open(b->ctx, idxp, cfg, &b->data) == BL_OK &&
        bl_dataset_info(b->data)->count[BL_SPLIT_TRAIN] >= SAMPLES &&
        bl_dataset_gather(b->ctx, b->data, BL_SPLIT_TRAIN, idx, SAMPLES, x, y) == BL_OK) {
        printf("data: Fashion-MNIST training set from %s\n", dir);
    } else {
        printf("data: synthetic (%s not usable: %s)\n", dir, bl_errmsg(b->ctx));
        bl_dataset_close(b->data);
        b->data = NULL;
        for (size_t i = 0; i < (size_t)SAMPLES * FEATURES; i++)
            x[i] = bl_rng_uniform(&rng);
        for (int i = 0; i < SAMPLES; i++)
            y[i] = (int32_t)bl_rng_below(&rng, CLASSES);
    }
    bl_config_free(cfg);
    int rc = bl_device_alloc(b->ctx, b->dev, (size_t)SAMPLES * FEATURES * sizeof *x,
                             (void **)&b->x_dev);
    if (rc == BL_OK)
        rc = bl_device_alloc(b->ctx, b->dev, (size_t)SAMPLES * sizeof *y, (void **)&b->y_dev);
    if (rc == BL_OK)
        rc = bl_device_upload(b->ctx, b->dev, b->x_dev, x, (size_t)SAMPLES * FEATURES * sizeof *x);
    if (rc == BL_OK)
        rc = bl_device_upload(b->ctx, b->dev, b->y_dev, y, (size_t)SAMPLES * sizeof *y);
    free(x);
    free(y);
    free(idx);
    return rc == BL_OK ? 0 : fail(b, "uploading the training set");
}

/* One epoch of resident steps; *loss gets the mean loss of its last step. */
static int epoch(bench *b, bl_net *net, bl_optim *opt, int64_t batch, double *loss)
{
    int64_t steps = SAMPLES / batch;
    for (int64_t s = 0; s < steps; s++) {
        double sum = 0;
        int rc = bl_net_forward(b->ctx, net, b->x_dev + s * batch * FEATURES, batch, true, NULL);
        if (rc == BL_OK)
            rc = bl_net_loss(b->ctx, net, batch, b->y_dev + s * batch, &sum, NULL);
        if (rc == BL_OK)
            rc = bl_net_backward(b->ctx, net, batch, 1.0f / (float)batch, false);
        if (rc == BL_OK)
            rc = bl_optim_step(b->ctx, opt, 0.05, NULL);
        if (rc != BL_OK)
            return rc;
        *loss = sum / (double)batch;
    }
    return bl_device_synchronize(b->ctx, b->dev);
}

/* Median epoch seconds at `batch` (resident), or a negative BL_E… code. */
static int time_resident(bench *b, int64_t batch, int epochs, double *median, double *loss)
{
    bl_data_info info = {.size = sizeof info, .classes = CLASSES, .target_dim = 1};
    info.sample.ndim = 1;
    info.sample.dim[0] = FEATURES;
    info.count[BL_SPLIT_TRAIN] = SAMPLES;
    bl_net *net = NULL;
    bl_optim *opt = NULL;
    int rc = bl_model_build(b->ctx, b->mlp, b->mlp_opts, &info, b->dev, 1, &net);
    if (rc == BL_OK)
        rc = bl_net_reserve(b->ctx, net, batch);
    bl_optim_config oc = bl_optim_defaults(BL_OPTIM_SGD);
    oc.lr = 0.05;
    oc.momentum = 0.9;
    if (rc == BL_OK)
        rc = bl_optim_new(b->ctx, net, &oc, &opt);
    if (rc == BL_OK)
        rc = epoch(b, net, opt, batch, loss); /* warm-up */
    double t[64];
    for (int e = 0; e < epochs && rc == BL_OK; e++) {
        double t0 = now();
        rc = epoch(b, net, opt, batch, loss);
        t[e] = now() - t0;
    }
    if (rc == BL_OK) {
        qsort(t, (size_t)epochs, sizeof *t, cmp_double);
        *median = t[epochs / 2];
    }
    bl_optim_free(opt);
    bl_net_free(net);
    return rc;
}

/* One epoch of bl_train at `batch` (host batches, uploads overlapped by the prefetch thread). */
static int time_engine(bench *b, int64_t batch, double *seconds)
{
    if (!b->data)
        return BL_ENOTFOUND;
    bl_net *net = NULL;
    int rc = bl_model_build(b->ctx, b->mlp, b->mlp_opts, bl_dataset_info(b->data), b->dev, 1,
                            &net);
    if (rc != BL_OK)
        return rc;
    bl_train_config c = bl_train_defaults();
    c.net = net;
    c.data = b->data;
    c.optim = bl_optim_defaults(BL_OPTIM_SGD);
    c.optim.lr = 0.05;
    c.optim.momentum = 0.9;
    c.batch = batch;
    c.epochs = 1;
    c.seed = 1;
    c.skip_eval = true;
    c.skip_test = true;
    bl_run_result r;
    double t0 = now();
    rc = bl_train(b->ctx, &c, &r);
    *seconds = now() - t0;
    if (rc == BL_OK) {
        if (r.status != BL_RUN_COMPLETED)
            rc = bl_error(b->ctx, BL_EINVAL, "%s", r.error);
        bl_run_result_free(&r);
    }
    bl_net_free(net);
    return rc;
}

int main(int argc, char **argv)
{
    if (bench_help(argc, argv, usage))
        return 0;
    const char *device = "cuda", *dir = "/usr/share/datasets/fashion-mnist";
    long epochs = 3, max_batch = 8192;
    bool engine = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool takes = strcmp(a, "--device") == 0 || strcmp(a, "--epochs") == 0 ||
                     strcmp(a, "--max-batch") == 0 || strcmp(a, "--data") == 0;
        if (takes && i + 1 >= argc) {
            fprintf(stderr, "bench_cuda: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--device") == 0)
            device = argv[++i];
        else if (strcmp(a, "--data") == 0)
            dir = argv[++i];
        else if (strcmp(a, "--epochs") == 0) {
            if (!bench_long("bench_cuda", "--epochs", argv[++i], 1, &epochs) || epochs > 64)
                return 2;
        } else if (strcmp(a, "--max-batch") == 0) {
            if (!bench_long("bench_cuda", "--max-batch", argv[++i], 32, &max_batch))
                return 2;
        } else if (strcmp(a, "--engine") == 0)
            engine = true;
        else {
            fprintf(stderr, "bench_cuda: unknown option %s (see --help)\n", a);
            return 2;
        }
    }

    bench b = {0};
    b.ctx = bl_ctx_new();
    if (!b.ctx)
        return 1;
    if (bl_device_open(b.ctx, device, &b.dev) != BL_OK) {
        fprintf(stderr, "bench_cuda: SKIP: %s\n", bl_errmsg(b.ctx));
        bl_ctx_free(b.ctx);
        return 77;
    }
    if (bl_registry_new(b.ctx, &b.reg) != BL_OK || bl_registry_scan(b.ctx, b.reg) != BL_OK ||
        bl_registry_find(b.ctx, b.reg, BL_PLUGIN_MODEL, "mlp", &b.mlp) != BL_OK ||
        bl_config_new(b.ctx, &b.mlp_opts) != BL_OK ||
        bl_config_set_assignment(b.ctx, b.mlp_opts, "hidden=256,128") != BL_OK)
        return fail(&b, "loading the mlp model");
    if (load_data(&b, dir) != 0)
        return 1;
    size_t free_b = 0, total_b = 0;
    bl_device_memory(b.ctx, b.dev, &free_b, &total_b);
    printf("device: %s (%s), %.1f GiB; MLP 784-256-128-10, SGD lr 0.05 momentum 0.9%s\n",
           device, b.dev->backend->version ? b.dev->backend->version : "",
           (double)total_b / (1 << 30), getenv("BATCHLAB_CUDA_TF32") ? ", TF32" : "");
    printf("%8s %8s %12s %12s %10s%s\n", "batch", "steps", "epoch_s", "samples/s", "loss",
           engine ? "   engine_epoch_s" : "");
    int rc = 0;
    for (int64_t batch = 32; batch <= max_batch && rc == 0; batch *= 2) {
        double med = 0, loss = NAN, eng = NAN;
        if (time_resident(&b, batch, (int)epochs, &med, &loss) != BL_OK) {
            rc = fail(&b, "training");
            break;
        }
        if (engine && time_engine(&b, batch, &eng) != BL_OK && b.data) {
            rc = fail(&b, "bl_train");
            break;
        }
        int64_t steps = SAMPLES / batch;
        printf("%8lld %8lld %12.4f %12.0f %10.4f", (long long)batch, (long long)steps, med,
               (double)(steps * batch) / med, loss);
        if (engine)
            printf("   %14.4f", eng);
        printf("\n");
        fflush(stdout);
    }
    printf("peak device memory: %.1f MiB\n", (double)b.dev->peak_bytes / (1 << 20));
    bl_device_release(b.dev, b.x_dev, (size_t)SAMPLES * FEATURES * sizeof(float));
    bl_device_release(b.dev, b.y_dev, (size_t)SAMPLES * sizeof(int32_t));
    bl_config_free(b.mlp_opts);
    bl_dataset_close(b.data);
    bl_registry_free(b.reg);
    bl_device_free(b.dev);
    bl_ctx_free(b.ctx);
    return rc;
}

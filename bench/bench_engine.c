#define _DEFAULT_SOURCE 1
/* Benchmark (not a test): whole epochs through the engine — plugins, data path with prefetch,
 * optimizer — on the real Fashion-MNIST, evaluation off. Prints epoch time and samples/s per
 * batch size for the mlp and cnn models, beside the step-only figure measured in the same
 * process: the same number of forward + loss + backward + SGD steps on one gathered batch
 * (what bench_core times). The two alternate `--rounds` times and the best of each is kept,
 * because timings on a shared machine drift by tens of percent from minute to minute.
 *
 *   bench_engine [--models mlp,cnn] [--batches 8,32,128,512,2048] [--epochs X] [--threads N]
 *                [--rounds 3] [--dir /usr/share/datasets/fashion-mnist] [--fresh]
 *                [--prefetch auto|on|off] [--warmup N]
 *
 * --fresh gathers a new batch for every step-only step (the data path's cost included);
 * --prefetch is bl_train_config.prefetch (train.h): how the engine gathers the next batch;
 * --warmup N: the run's first N steps are not timed (as PyTorch's side of
 * compare_pytorch.sh leaves out its first 5); the timed part is still --epochs of samples.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_args.h"
#include "batchlab/batchlab.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds for `steps` training steps on one batch gathered once: the step-only reference.
 * Its buffers are the device's (aligned, as the engine's batch slots are: a malloc'ed input
 * that was not made the reference vary with the allocator), and 3 steps run untimed first (page
 * faults of fresh buffers, OpenBLAS's first-call set-up). */
static int step_only(bl_ctx *ctx, bl_net *net, bl_dataset *data, int64_t batch, int64_t steps,
                     bool fresh, double *seconds)
{
    enum { WARM_UP = 3 };
    bl_device *dev = bl_net_device(net);
    const bl_data_info *info = bl_dataset_info(data);
    int64_t in = bl_shape_numel(&info->sample);
    size_t x_bytes = (size_t)(batch * in) * sizeof(float);
    float *xs[2] = {NULL, NULL}, *x = NULL;
    int32_t *y = NULL;
    int64_t *idx = malloc((size_t)batch * sizeof *idx);
    int rc = idx ? BL_OK : BL_ENOMEM;
    if (rc == BL_OK)
        rc = bl_device_alloc(ctx, dev, x_bytes, (void **)&xs[0]);
    if (rc == BL_OK)
        rc = bl_device_alloc(ctx, dev, x_bytes, (void **)&xs[1]);
    if (rc == BL_OK)
        rc = bl_device_alloc(ctx, dev, (size_t)batch * sizeof *y, (void **)&y);
    x = xs[0];
    for (int64_t i = 0; rc == BL_OK && i < batch; i++)
        idx[i] = i;
    if (rc == BL_OK)
        rc = bl_dataset_gather(ctx, data, BL_SPLIT_TRAIN, idx, batch, x, y);
    if (rc == BL_OK)
        rc = bl_net_reserve(ctx, net, batch);
    size_t np = bl_net_num_params(net);
    float *vel = NULL;
    if (rc == BL_OK)
        rc = bl_device_alloc(ctx, dev, np * sizeof(float), (void **)&vel);
    if (rc == BL_OK)
        dev->ops->fill(dev, (int64_t)np, 0.0f, vel);
    int64_t n_train = info->count[BL_SPLIT_TRAIN];
    unsigned seed = 1;
    double t0 = now();
    for (int64_t s = -WARM_UP; s < steps && rc == BL_OK; s++) {
        double loss;
        if (s == 0)
            t0 = now();
        if (fresh) {
            x = xs[s & 1];
            for (int64_t i = 0; i < batch; i++)
                idx[i] = (int64_t)(rand_r(&seed) % (unsigned)n_train);
            rc = bl_dataset_gather(ctx, data, BL_SPLIT_TRAIN, idx, batch, x, y);
        }
        if (rc == BL_OK)
            rc = bl_net_forward(ctx, net, x, batch, true, NULL);
        if (rc == BL_OK)
            rc = bl_net_loss(ctx, net, batch, y, &loss, NULL);
        if (rc == BL_OK)
            rc = bl_net_backward(ctx, net, batch, 1.0f / (float)batch, false);
        if (rc == BL_OK)
            dev->ops->sgd_update(dev, (int64_t)np, 0.01f, 0.9f, 0.0f, false, 0.0f,
                                 bl_net_grads(net), vel, bl_net_params(net));
    }
    *seconds = now() - t0;
    bl_device_release(dev, vel, np * sizeof(float));
    bl_device_release(dev, xs[0], x_bytes);
    bl_device_release(dev, xs[1], x_bytes);
    bl_device_release(dev, y, (size_t)batch * sizeof *y);
    free(idx);
    return rc;
}

/* The training time and samples of a run's first `steps` steps (on_progress). */
typedef struct warmup {
    int64_t steps;
    double wall;
    int64_t samples;
} warmup;

static void note_warmup(void *user, const bl_train_state *state, double loss, int64_t total)
{
    warmup *w = user;
    if (state->step == w->steps) {
        w->wall = state->wall;
        w->samples = state->samples;
    }
}

static int die(bl_ctx *ctx, const char *what)
{
    fprintf(stderr, "bench_engine: %s: %s\n", what, bl_errmsg(ctx));
    return 1;
}

static const char usage[] =
    "usage: bench_engine [--models mlp,cnn] [--batches 8,32,128,512,2048] [--epochs X]\n"
    "                    [--threads N] [--rounds 3] [--dir DIR] [--fresh]\n"
    "                    [--prefetch auto|on|off] [--warmup N]\n"
    "  whole epochs through the engine beside the step-only figure, per model and batch;\n"
    "  --fresh gathers a new batch for every step-only step; --prefetch: how the engine\n"
    "  gathers the next batch (auto: a thread when a core is free, else between kernels;\n"
    "  on: a thread; off: at the start of each step); --warmup N: leave the run's first N\n"
    "  steps out of the timing (default 0: a real epoch, first step included)\n";

int main(int argc, char **argv)
{
    const char *models = "mlp,cnn", *dir = "/usr/share/datasets/fashion-mnist";
    const char *batches_text = "8,32,128,512,2048";
    double epochs = 1;
    int threads = 0, rounds = 3;
    int64_t warmup_steps = 0;
    bool fresh = false;
    bl_prefetch_mode prefetch = BL_PREFETCH_AUTO;
    if (bench_help(argc, argv, usage))
        return 0;
    for (int i = 1; i < argc; i++) {
        long v;
        if (strcmp(argv[i], "--fresh") == 0) {
            fresh = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_engine: %s needs a value (see --help)\n", argv[i]);
            return 2;
        }
        const char *value = argv[++i];
        if (strcmp(argv[i - 1], "--models") == 0)
            models = value;
        else if (strcmp(argv[i - 1], "--batches") == 0)
            batches_text = value;
        else if (strcmp(argv[i - 1], "--epochs") == 0) {
            if (!bench_number("bench_engine", "--epochs", value, 0, 1000, &epochs))
                return 2;
        } else if (strcmp(argv[i - 1], "--threads") == 0) {
            if (!bench_long("bench_engine", "--threads", value, 0, &v))
                return 2;
            threads = (int)v;
        } else if (strcmp(argv[i - 1], "--rounds") == 0) {
            if (!bench_long("bench_engine", "--rounds", value, 1, &v))
                return 2;
            rounds = (int)v;
        } else if (strcmp(argv[i - 1], "--warmup") == 0) {
            if (!bench_long("bench_engine", "--warmup", value, 0, &v))
                return 2;
            if (v > 1000000) {
                fprintf(stderr, "bench_engine: --warmup must be at most 1000000 steps, got %ld\n",
                        v);
                return 2;
            }
            warmup_steps = v;
        } else if (strcmp(argv[i - 1], "--dir") == 0) {
            dir = value;
        } else if (strcmp(argv[i - 1], "--prefetch") == 0) {
            if (strcmp(value, "auto") == 0)
                prefetch = BL_PREFETCH_AUTO;
            else if (strcmp(value, "on") == 0)
                prefetch = BL_PREFETCH_ON;
            else if (strcmp(value, "off") == 0)
                prefetch = BL_PREFETCH_OFF;
            else {
                fprintf(stderr, "bench_engine: --prefetch must be auto, on or off, got '%s'\n",
                        value);
                return 2;
            }
        } else {
            fprintf(stderr, "bench_engine: unknown option %s (see --help)\n", argv[i - 1]);
            return 2;
        }
    }
    long batches[32];
    int nb = bench_list("bench_engine", "--batches", batches_text, 1, batches, 32);
    if (nb < 0)
        return 2;

    bl_ctx *ctx = bl_ctx_new();
    bl_device *dev;
    bl_registry *reg;
    if (bl_device_cpu_open(ctx, threads, &dev) != BL_OK)
        return die(ctx, "device");
    if (bl_registry_new(ctx, &reg) != BL_OK || bl_registry_scan(ctx, reg) != BL_OK)
        return die(ctx, "plugins");
    const bl_plugin *idx;
    bl_config *dcfg;
    bl_dataset *data;
    if (bl_registry_find(ctx, reg, BL_PLUGIN_DATASET, "idx", &idx) != BL_OK ||
        bl_config_new(ctx, &dcfg) != BL_OK ||
        bl_config_set_string(ctx, dcfg, "dir", dir) != BL_OK ||
        bl_config_set_number(ctx, dcfg, "validation", 0) != BL_OK ||
        bl_dataset_open(ctx, idx, dcfg, &data) != BL_OK)
        return die(ctx, "dataset");

    printf("%-5s %6s %7s %9s %12s %15s %9s\n", "model", "batch", "steps", "epoch s",
           "samples/s", "step-only smp/s", "fraction");
    char *mcopy = strdup(models), *save = NULL;
    for (char *m = strtok_r(mcopy, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        const bl_plugin *mp;
        if (bl_registry_find(ctx, reg, BL_PLUGIN_MODEL, m, &mp) != BL_OK)
            return die(ctx, m);
        for (int b = 0; b < nb; b++) {
            double best_engine = 1e300, best_steps = 1e300;
            int64_t steps = 0, samples = 0;
            for (int round = 0; round < rounds; round++) {
                bl_net *net;
                if (bl_model_build(ctx, mp, NULL, bl_dataset_info(data), dev, 1, &net) != BL_OK)
                    return die(ctx, m);
                bl_train_config c = bl_train_defaults();
                c.net = net;
                c.data = data;
                c.optim.lr = 0.01;
                c.optim.momentum = 0.9;
                c.batch = batches[b];
                warmup w = {warmup_steps, 0, 0};
                if (warmup_steps > 0) { /* the warm-up's samples, then --epochs of them */
                    int64_t n_train = bl_dataset_info(data)->count[BL_SPLIT_TRAIN];
                    c.max_samples = warmup_steps * batches[b] + (int64_t)(epochs * (double)n_train);
                    c.on_progress = note_warmup;
                    c.progress_user = &w;
                } else {
                    c.epochs = epochs;
                }
                c.skip_eval = true;
                c.prefetch = prefetch;
                c.eval_every = 1e9; /* no point until the end */
                bl_run_result r;
                if (bl_train(ctx, &c, &r) != BL_OK || r.status != BL_RUN_COMPLETED)
                    return die(ctx, r.error[0] ? r.error : "train");
                steps = r.steps - warmup_steps;
                samples = r.samples - w.samples;
                if (r.time - w.wall < best_engine)
                    best_engine = r.time - w.wall;
                bl_run_result_free(&r);
                double t;
                if (step_only(ctx, net, data, batches[b], steps, fresh, &t) != BL_OK)
                    return die(ctx, "step-only loop");
                if (t < best_steps)
                    best_steps = t;
                bl_net_free(net);
            }
            /* the epoch's last batch may be partial: the step-only loop ran full batches */
            double step_rate = (double)(steps * batches[b]) / best_steps;
            double rate = (double)samples / best_engine;
            printf("%-5s %6lld %7lld %9.3f %12.0f %15.0f %9.3f\n", m, (long long)batches[b],
                   (long long)steps, best_engine / epochs, rate, step_rate, rate / step_rate);
            fflush(stdout);
        }
    }
    free(mcopy);
    bl_config_free(dcfg);
    bl_dataset_close(data);
    bl_registry_free(reg);
    bl_device_free(dev);
    bl_ctx_free(ctx);
    return 0;
}

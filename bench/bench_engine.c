/* Benchmark (not a test): whole epochs through the engine — plugins, data path with prefetch,
 * optimizer — on the real Fashion-MNIST, evaluation off. Prints epoch time and samples/s per
 * batch size for the mlp and cnn models, to set beside bench_core's step-only figures.
 *
 *   bench_engine [--models mlp,cnn] [--batches 8,32,128,512,2048] [--epochs X] [--threads N]
 *                [--dir /usr/share/datasets/fashion-mnist]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/batchlab.h"

static int parse_list(const char *text, int64_t *out, int cap)
{
    int n = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && n < cap; tok = strtok_r(NULL, ",", &save))
        out[n++] = atoll(tok);
    free(copy);
    return n;
}

static int die(bl_ctx *ctx, const char *what)
{
    fprintf(stderr, "bench_engine: %s: %s\n", what, bl_errmsg(ctx));
    return 1;
}

int main(int argc, char **argv)
{
    const char *models = "mlp,cnn", *dir = "/usr/share/datasets/fashion-mnist";
    const char *batches_text = "8,32,128,512,2048";
    double epochs = 1;
    int threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--models") == 0)
            models = argv[i + 1];
        else if (strcmp(argv[i], "--batches") == 0)
            batches_text = argv[i + 1];
        else if (strcmp(argv[i], "--epochs") == 0)
            epochs = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--dir") == 0)
            dir = argv[i + 1];
        else {
            fprintf(stderr, "bench_engine: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    int64_t batches[32];
    int nb = parse_list(batches_text, batches, 32);

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

    printf("%-5s %6s %10s %12s %12s\n", "model", "batch", "steps", "epoch s", "samples/s");
    char *mcopy = strdup(models), *save = NULL;
    for (char *m = strtok_r(mcopy, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        const bl_plugin *mp;
        if (bl_registry_find(ctx, reg, BL_PLUGIN_MODEL, m, &mp) != BL_OK)
            return die(ctx, m);
        for (int b = 0; b < nb; b++) {
            bl_net *net;
            if (bl_model_build(ctx, mp, NULL, bl_dataset_info(data), dev, 1, &net) != BL_OK)
                return die(ctx, m);
            bl_train_config c = bl_train_defaults();
            c.net = net;
            c.data = data;
            c.optim.lr = 0.01;
            c.optim.momentum = 0.9;
            c.batch = batches[b];
            c.epochs = epochs;
            c.skip_eval = true;
            c.eval_every = 1e9; /* no point until the end */
            bl_run_result r;
            if (bl_train(ctx, &c, &r) != BL_OK || r.status != BL_RUN_COMPLETED)
                return die(ctx, r.error[0] ? r.error : "train");
            printf("%-5s %6lld %10lld %12.3f %12.0f\n", m, (long long)batches[b],
                   (long long)r.steps, r.time / epochs, (double)r.samples / r.time);
            fflush(stdout);
            bl_run_result_free(&r);
            bl_net_free(net);
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

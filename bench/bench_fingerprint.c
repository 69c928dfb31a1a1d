/* Not a timing: the fingerprint of training results, for the "results unchanged".
 * Trains each model at each batch size and thread count on the real Fashion-MNIST (5,000
 * samples held out for validation; SGD, lr 0.05, momentum 0.9, seed 1, --epochs) and prints the
 * CRC-32 (zlib) of the final weights' bytes beside the final validation loss. Run it before and
 * after a change to a kernel or to how work is split: where the arithmetic order is meant to
 * be unchanged, every hash must match. Across thread counts most match too, but not all:
 * OpenBLAS chooses among its kernels (with other summation orders) by a product's size, so a
 * band of a product cut over two threads can be summed otherwise than the whole product on
 * one (LeNet at batch 300: its last batch of 100, the input gradient 100×120×84). What the
 * project promises is the same numbers for the same threads (docs/distributed.md).
 *
 *   bench_fingerprint [--models mlp,cnn] [--batches 37,300,2048] [--threads 1,2]
 *                     [--epochs X] [--dir /usr/share/datasets/fashion-mnist]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "bench_args.h"
#include "batchlab/batchlab.h"

static const char usage[] =
    "usage: bench_fingerprint [--models mlp,cnn] [--batches 37,300,2048] [--threads 1,2]\n"
    "                         [--epochs X] [--dir DIR]\n"
    "  trains each model, batch and thread count on Fashion-MNIST (seed 1) and prints a hash\n"
    "  of the final weights: equal hashes before and after a change mean the same results\n";

/* Trains `model` and prints its line; 0, or 1 after printing why. */
static int fingerprint(bl_ctx *ctx, bl_registry *reg, bl_dataset *data, const char *model,
                       long batch, long threads, double epochs)
{
    const bl_plugin *mp;
    bl_device *dev = NULL;
    bl_net *net = NULL;
    float *params = NULL;
    bl_run_result r;
    memset(&r, 0, sizeof r);
    int rc = bl_registry_find(ctx, reg, BL_PLUGIN_MODEL, model, &mp);
    if (rc == BL_OK)
        rc = bl_device_cpu_open(ctx, (int)threads, &dev);
    if (rc == BL_OK)
        rc = bl_model_build(ctx, mp, NULL, bl_dataset_info(data), dev, 1, &net);
    if (rc == BL_OK) {
        bl_train_config c = bl_train_defaults();
        c.net = net;
        c.data = data;
        c.optim.lr = 0.05;
        c.optim.momentum = 0.9;
        c.batch = batch;
        c.epochs = epochs;
        c.skip_test = true;
        rc = bl_train(ctx, &c, &r);
    }
    size_t np = net ? bl_net_num_params(net) : 0;
    if (rc == BL_OK && !(params = malloc(np * sizeof *params)))
        rc = bl_error(ctx, BL_ENOMEM, "no memory for %zu weights", np);
    if (rc == BL_OK)
        rc = bl_device_download(ctx, dev, params, bl_net_params(net), np * sizeof *params);
    if (rc == BL_OK)
        printf("%-5s %6ld %7ld  %08lx %12.9g  %s\n", model, batch, threads,
               crc32_z(0, (const Bytef *)params, np * sizeof *params), r.final.val_loss,
               bl_run_status_name(r.status));
    else
        fprintf(stderr, "bench_fingerprint: %s batch %ld threads %ld: %s\n", model, batch,
                threads, bl_errmsg(ctx));
    free(params);
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_device_free(dev);
    return rc == BL_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *models = "mlp,cnn", *dir = "/usr/share/datasets/fashion-mnist";
    const char *batches_text = "37,300,2048", *threads_text = "1,2";
    double epochs = 1;
    if (bench_help(argc, argv, usage))
        return 0;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_fingerprint: %s needs a value (see --help)\n", argv[i]);
            return 2;
        }
        const char *opt = argv[i], *value = argv[i + 1];
        if (strcmp(opt, "--models") == 0)
            models = value;
        else if (strcmp(opt, "--batches") == 0)
            batches_text = value;
        else if (strcmp(opt, "--threads") == 0)
            threads_text = value;
        else if (strcmp(opt, "--dir") == 0)
            dir = value;
        else if (strcmp(opt, "--epochs") == 0) {
            if (!bench_number("bench_fingerprint", "--epochs", value, 0, 100, &epochs))
                return 2;
        } else {
            fprintf(stderr, "bench_fingerprint: unknown option %s (see --help)\n", opt);
            return 2;
        }
    }
    long batches[32], threads[8];
    const char *what = "each batch and thread count";
    int nb = bench_list("bench_fingerprint", what, batches_text, 1, batches, 32);
    int nt = nb > 0 ? bench_list("bench_fingerprint", what, threads_text, 1, threads, 8) : -1;
    if (nb < 0 || nt < 0)
        return 2;
    if (!*models) {
        fprintf(stderr, "bench_fingerprint: --models needs at least one model\n");
        return 2;
    }

    bl_ctx *ctx = bl_ctx_new();
    bl_registry *reg = NULL;
    bl_config *dcfg = NULL;
    bl_dataset *data = NULL;
    const bl_plugin *idx;
    if (!ctx || bl_registry_new(ctx, &reg) != BL_OK || bl_registry_scan(ctx, reg) != BL_OK ||
        bl_registry_find(ctx, reg, BL_PLUGIN_DATASET, "idx", &idx) != BL_OK ||
        bl_config_new(ctx, &dcfg) != BL_OK ||
        bl_config_set_string(ctx, dcfg, "dir", dir) != BL_OK ||
        bl_config_set_number(ctx, dcfg, "validation", 5000) != BL_OK ||
        bl_dataset_open(ctx, idx, dcfg, &data) != BL_OK) {
        fprintf(stderr, "bench_fingerprint: %s\n", ctx ? bl_errmsg(ctx) : "no memory");
        return 1;
    }
    printf("%-5s %6s %7s  %-8s %12s  %s\n", "model", "batch", "threads", "weights",
           "val_loss", "status");
    int failed = 0;
    char *mcopy = strdup(models), *save = NULL;
    for (char *m = strtok_r(mcopy, ",", &save); m; m = strtok_r(NULL, ",", &save))
        for (int b = 0; b < nb; b++)
            for (int t = 0; t < nt; t++)
                failed |= fingerprint(ctx, reg, data, m, batches[b], threads[t], epochs);
    free(mcopy);
    bl_dataset_close(data);
    bl_config_free(dcfg);
    bl_registry_free(reg);
    bl_ctx_free(ctx);
    return failed;
}

/* Benchmark: time to open the real Fashion-MNIST (60,000 + 10,000 gzipped IDX images) with the
 * "idx" dataset plugin, i.e. decompress (or read the decompressed cache), check and build the
 * normalization table. With the cache on (the default), the first open of a fresh cache
 * inflates and writes the entries and the later ones read them (a warm open); with
 * BATCHLAB_CACHE=off every open inflates (a cold open). See docs/loading.md.
 *
 *   bench_idx [dir] [repeats] [normalize]
 *       dir        default /usr/share/datasets/fashion-mnist (apt-get install
 *                  dataset-fashion-mnist)
 *       repeats    default 5; prints every time and the best
 *       normalize  default standard
 *
 * The plugin is found through the registry's search path (BATCHLAB_PLUGIN_PATH, then the build
 * tree). Exit status 0 on success, 1 on error, 77 when the data directory is absent.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "bench_args.h"
#include "batchlab/batchlab.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char usage[] =
    "usage: bench_idx [DIR [REPEATS [NORMALIZE]]]\n"
    "  loads the IDX dataset in DIR (default /usr/share/datasets/fashion-mnist) REPEATS times\n"
    "  (default 5) with the given normalize option (default standard)\n"
    "  the decompressed cache (docs/loading.md) serves every open after the first;\n"
    "  BATCHLAB_CACHE=off bench_idx ... times opens that inflate every time\n";

int main(int argc, char **argv)
{
    if (bench_help(argc, argv, usage))
        return 0;
    long repeats_arg = 5;
    if (bench_refuse_options("bench_idx", argc, argv) || argc > 4 ||
        (argc > 2 && !bench_long("bench_idx", "REPEATS", argv[2], 1, &repeats_arg)))
        return 2;
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    int repeats = (int)repeats_arg;
    const char *normalize = argc > 3 ? argv[3] : "standard";
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "bench_idx: %s is absent (apt-get install dataset-fashion-mnist)\n",
                dir);
        return 77;
    }
    bl_ctx *ctx = bl_ctx_new();
    bl_registry *reg = NULL;
    bl_config *cfg = NULL;
    const bl_plugin *plugin = NULL;
    int status = 1;
    if (!ctx || bl_registry_new(ctx, &reg) || bl_config_new(ctx, &cfg) ||
        bl_config_set_string(ctx, cfg, "dir", dir) ||
        bl_config_set_string(ctx, cfg, "normalize", normalize) ||
        bl_registry_find(ctx, reg, BL_PLUGIN_DATASET, "idx", &plugin)) {
        fprintf(stderr, "bench_idx: %s\n", ctx ? bl_errmsg(ctx) : "out of memory");
        goto done;
    }
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        bl_dataset *ds = NULL;
        double t0 = now();
        int rc = bl_dataset_open(ctx, plugin, cfg, &ds);
        double t = now() - t0;
        if (rc) {
            fprintf(stderr, "bench_idx: %s\n", bl_errmsg(ctx));
            goto done;
        }
        const bl_data_info *info = bl_dataset_info(ds);
        printf("open %d: %.3f s  (train %lld, test %lld, normalize %s)\n", r + 1, t,
               (long long)info->count[BL_SPLIT_TRAIN], (long long)info->count[BL_SPLIT_TEST],
               normalize);
        if (t < best)
            best = t;
        bl_dataset_close(ds);
    }
    printf("best: %.3f s\n", best);
    status = 0;
done:
    bl_config_free(cfg);
    bl_registry_free(reg);
    bl_ctx_free(ctx);
    return status;
}

/* Fuzz target: the IDX dataset reader (plugins/datasets/idx.c, compiled in), plain and gzip.
 * The first byte picks which file the rest becomes (the images or the labels; the other one is
 * a valid file of 2 items), whether it is gzipped here first (so the fuzzer reaches both the
 * plain and the gzip paths even from a plain seed), and a limit. The decompressed cache
 * (plugins/datasets/cache.h) lives in the fuzz folder. */
#include "../../plugins/datasets/idx.c"

#include "fuzz_util.h"

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile g = gzopen(path, "wb1");
    if (!g || (n && gzwrite(g, data, (unsigned)n) != (int)n) || gzclose(g) != Z_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t pick = data[0];
    data++;
    size--;
    static const uint8_t images[16 + 2 * 4] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2,
                                               1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t labels[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 0};
    const char *dir = fuzz_dir();
    char ip[600], lp[600];
    snprintf(ip, sizeof ip, "%s/cache", dir);
    setenv("BATCHLAB_CACHE", ip, 0); /* the decompressed cache in the fuzz folder, not $HOME */
    snprintf(ip, sizeof ip, "%s/train-images-idx3-ubyte", dir);
    snprintf(lp, sizeof lp, "%s/train-labels-idx1-ubyte", dir);
    bool fuzz_labels = pick & 1, gzip = pick & 2;
    const char *target = fuzz_labels ? lp : ip;
    char scratch[600];
    if (gzip)
        write_gz(target, data, size);
    else
        fuzz_write(fuzz_labels ? "train-labels-idx1-ubyte" : "train-images-idx3-ubyte", data,
                   size, scratch, sizeof scratch);
    if (fuzz_labels)
        fuzz_write("train-images-idx3-ubyte", images, sizeof images, ip, sizeof ip);
    else
        fuzz_write("train-labels-idx1-ubyte", labels, sizeof labels, lp, sizeof lp);

    bl_ctx *ctx = bl_ctx_new();
    bl_config *cfg = NULL;
    if (!ctx || bl_config_new(ctx, &cfg) != BL_OK)
        abort();
    bl_config_set_string(ctx, cfg, "dir", dir);
    bl_config_set_int(ctx, cfg, "limit", (pick >> 2) & 3);
    bl_config_set_int(ctx, cfg, "max_decompressed_mb", 16); /* the fuzzer's memory limit */
    bl_config_set_string(ctx, cfg, "normalize", (pick & 16) ? "unit" : "standard");
    bl_dataset *ds = NULL;
    if (bl_dataset_open(ctx, batchlab_plugin(0), cfg, &ds) == BL_OK) {
        const bl_data_info *info = bl_dataset_info(ds);
        int64_t n = info->count[BL_SPLIT_TRAIN];
        size_t px = (size_t)(info->sample.dim[1] * info->sample.dim[2]);
        float *x = malloc(px * sizeof *x);
        int32_t y;
        int64_t idx = n - 1;
        if (x && n > 0)
            bl_dataset_gather(ctx, ds, BL_SPLIT_TRAIN, &idx, 1, x, &y);
        free(x);
        bl_dataset_close(ds);
    }
    bl_config_free(cfg);
    bl_ctx_free(ctx);
    return 0;
}

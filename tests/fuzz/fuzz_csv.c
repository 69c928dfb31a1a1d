/* Fuzz target: the CSV dataset reader (plugins/datasets/csv.c, compiled in) on arbitrary
 * file contents. The first byte picks the options (header, task, label column, separator). */
#include "../../plugins/datasets/csv.c"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t pick = data[0];
    char path[600];
    fuzz_write("data.csv", data + 1, size - 1, path, sizeof path);
    bl_ctx *ctx = bl_ctx_new();
    bl_config *cfg = NULL;
    if (!ctx || bl_config_new(ctx, &cfg) != BL_OK)
        abort();
    static const char *const headers[] = {"auto", "yes", "no", "auto"};
    static const char *const seps[] = {",", ";", "tab", "|"};
    bl_config_set_string(ctx, cfg, "file", path);
    bl_config_set_string(ctx, cfg, "header", headers[pick & 3]);
    bl_config_set_string(ctx, cfg, "separator", seps[(pick >> 2) & 3]);
    bl_config_set_string(ctx, cfg, "task", (pick & 16) ? "regression" : "classification");
    bl_config_set_string(ctx, cfg, "label", (pick & 32) ? "0" : "");
    if (pick & 64)
        bl_config_set_number(ctx, cfg, "validation", 0.25);
    bl_dataset *ds = NULL;
    if (bl_dataset_open(ctx, batchlab_plugin(0), cfg, &ds) == BL_OK) {
        const bl_data_info *info = bl_dataset_info(ds);
        int64_t n = info->count[BL_SPLIT_TRAIN];
        if (n > 0) {
            int64_t idx[2] = {0, n - 1};
            float *x = malloc(2 * (size_t)info->sample.dim[0] * sizeof *x);
            int32_t y[2];
            float t[2];
            if (x)
                bl_dataset_gather(ctx, ds, BL_SPLIT_TRAIN, idx, 2, x,
                                  info->classes ? (void *)y : (void *)t);
            free(x);
        }
        bl_dataset_close(ds);
    }
    bl_config_free(cfg);
    bl_ctx_free(ctx);
    return 0;
}

/* Fuzz target: the CIFAR-10 reader (plugins/datasets/cifar10.c, compiled in). The input is
 * split at its first byte's count: that many bytes (up to 255) become batches.meta.txt, the
 * rest the first records of data_batch_1.bin, which is then extended with zeros (a sparse file)
 * to the exact size — or, when the count is odd, left at its own size, to reach the size check. */
#include "../../plugins/datasets/cifar10.c"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t meta = data[0];
    if (meta > size - 1)
        meta = size - 1;
    char path[600];
    fuzz_write("batches.meta.txt", data + 1, meta, path, sizeof path);
    fuzz_write("data_batch_1.bin", data + 1 + meta, size - 1 - meta, path, sizeof path);
    if (!(data[0] & 1) && truncate(path, CIFAR_FILE_BYTES) != 0)
        abort();
    bl_ctx *ctx = bl_ctx_new();
    bl_config *cfg = NULL;
    if (!ctx || bl_config_new(ctx, &cfg) != BL_OK)
        abort();
    bl_config_set_string(ctx, cfg, "dir", fuzz_dir());
    bl_config_set_int(ctx, cfg, "limit", 2);
    bl_dataset *ds = NULL;
    if (bl_dataset_open(ctx, batchlab_plugin(0), cfg, &ds) == BL_OK) {
        float x[CIFAR_PIXELS];
        int32_t y;
        int64_t idx = 1;
        bl_dataset_gather(ctx, ds, BL_SPLIT_TRAIN, &idx, 1, x, &y);
        bl_dataset_close(ds);
    }
    bl_config_free(cfg);
    bl_ctx_free(ctx);
    return 0;
}

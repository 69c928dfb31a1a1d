/* The "idx" dataset plugin on the real Fashion-MNIST (Debian: apt-get install
 * dataset-fashion-mnist → /usr/share/datasets/fashion-mnist): 60,000 training and 10,000 test
 * images of 28×28, 6,000 / 1,000 per class. Skipped (exit 77) when the data is absent. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "testutil.h"

#define PLUGIN BATCHLAB_BUILD_PLUGIN_DIR "/bl_idx.so"
#define DATA_DIR "/usr/share/datasets/fashion-mnist"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bl_dataset *open_real(bl_ctx *ctx, const char *validation, double *seconds)
{
    bl_registry *reg = NULL;
    const bl_plugin *plugin = NULL;
    bl_config *cfg = NULL;
    BL_ASSERT_OK(ctx, bl_registry_new(ctx, &reg));
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_DATASET, PLUGIN, &plugin));
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, cfg, "dir", DATA_DIR));
    BL_ASSERT_OK(ctx, bl_config_set_text(ctx, cfg, "validation", validation));
    bl_dataset *ds = NULL;
    double t0 = now();
    BL_ASSERT_OK(ctx, bl_dataset_open(ctx, plugin, cfg, &ds));
    *seconds = now() - t0;
    bl_config_free(cfg);
    bl_registry_free(reg); /* the dataset keeps its plugin loaded */
    return ds;
}

/* Label histogram of a whole split; also returns the mean and variance of the values. */
static void histogram(bl_ctx *ctx, bl_dataset *ds, bl_split s, int64_t hist[10], double *mean,
                      double *var)
{
    int64_t n = bl_dataset_info(ds)->count[s];
    enum { CHUNK = 1000 };
    int64_t idx[CHUNK];
    int32_t y[CHUNK];
    float *x = malloc(sizeof(float) * CHUNK * 784);
    assert_non_null(x);
    double sum = 0, sum2 = 0;
    for (int c = 0; c < 10; c++)
        hist[c] = 0;
    for (int64_t start = 0; start < n; start += CHUNK) {
        int64_t k = n - start < CHUNK ? n - start : CHUNK;
        for (int64_t i = 0; i < k; i++)
            idx[i] = start + i;
        BL_ASSERT_OK(ctx, bl_dataset_gather(ctx, ds, s, idx, k, x, y));
        for (int64_t i = 0; i < k; i++) {
            assert_in_range(y[i], 0, 9);
            hist[y[i]]++;
        }
        for (int64_t j = 0; j < k * 784; j++) {
            sum += x[j];
            sum2 += (double)x[j] * x[j];
        }
    }
    free(x);
    *mean = sum / ((double)n * 784);
    *var = sum2 / ((double)n * 784) - *mean * *mean;
}

static void real_fashion_mnist(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    double seconds;
    bl_dataset *ds = open_real(ctx, "0", &seconds);
    printf("    opened Fashion-MNIST (60,000 + 10,000) in %.3f s\n", seconds);
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->sample.ndim, 3);
    assert_int_equal(info->sample.dim[0], 1);
    assert_int_equal(info->sample.dim[1], 28);
    assert_int_equal(info->sample.dim[2], 28);
    assert_int_equal(info->classes, 10);
    assert_int_equal(info->count[BL_SPLIT_TRAIN], 60000);
    assert_int_equal(info->count[BL_SPLIT_VALIDATION], 0);
    assert_int_equal(info->count[BL_SPLIT_TEST], 10000);
    assert_string_equal(info->class_names[0], "T-shirt/top");
    assert_string_equal(info->class_names[9], "Ankle boot");

    int64_t hist[10];
    double mean, var;
    histogram(ctx, ds, BL_SPLIT_TRAIN, hist, &mean, &var);
    for (int c = 0; c < 10; c++)
        assert_int_equal(hist[c], 6000);
    /* standard normalization with the training set's own statistics */
    assert_float_equal(mean, 0.0, 1e-4);
    assert_float_equal(var, 1.0, 1e-3);
    histogram(ctx, ds, BL_SPLIT_TEST, hist, &mean, &var);
    for (int c = 0; c < 10; c++)
        assert_int_equal(hist[c], 1000);
    assert_float_equal(mean, 0.0, 0.05);
    bl_dataset_close(ds);

    /* a validation split of 5,000 leaves 55,000; together still 6,000 per class */
    ds = open_real(ctx, "5000", &seconds);
    info = bl_dataset_info(ds);
    assert_int_equal(info->count[BL_SPLIT_TRAIN], 55000);
    assert_int_equal(info->count[BL_SPLIT_VALIDATION], 5000);
    int64_t h2[10];
    histogram(ctx, ds, BL_SPLIT_TRAIN, hist, &mean, &var);
    histogram(ctx, ds, BL_SPLIT_VALIDATION, h2, &mean, &var);
    for (int c = 0; c < 10; c++) {
        assert_int_equal(hist[c] + h2[c], 6000);
        assert_in_range(h2[c], 350, 650);
    }
    bl_dataset_close(ds);
    bl_ctx_free(ctx);
}

int main(void)
{
    struct stat st;
    if (stat(DATA_DIR, &st) != 0) {
        printf("SKIP: %s is absent (apt-get install dataset-fashion-mnist)\n", DATA_DIR);
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(real_fashion_mnist)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The "cifar10" dataset plugin (plugins/datasets/cifar10.c) on batch files of the exact
 * binary layout written here: shapes, values, per-channel normalization, the validation split
 * and the error paths (missing file, wrong size, label out of range, bad meta file).
 *
 * Each batch file must be exactly 30,730,000 bytes. The files are made sparse (ftruncate, then
 * a few patterned records written at the start; the rest read back as zero records of label 0)
 * and data_batch_2..5 are symlinks to data_batch_1, so the full-size layout costs little disk.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define PLUGIN BATCHLAB_BUILD_PLUGIN_DIR "/bl_cifar10.so"
#define RECORD 3073
#define PIXELS 3072
#define FILE_BYTES 30730000L
#define PATTERNED 100 /* patterned records at the start of each file */

static unsigned char pixel(int base, int r, int c, int j)
{
    int v = (base + r + 7 * j) & 255; /* (c=0, j=0) is base + r */
    return (unsigned char)(c == 0 ? v : c == 1 ? v / 2 : 255 - v / 4); /* channels differ */
}

static int label(int base, int r)
{
    return (base + r) % 10;
}

/* A batch file of `size` bytes whose first `records` records are patterned. */
static void write_batch(const char *dir, const char *name, int base, int records, long size)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, size), 0);
    unsigned char *b = malloc((size_t)records * RECORD);
    assert_non_null(b);
    for (int r = 0; r < records; r++) {
        unsigned char *p = b + (size_t)r * RECORD;
        p[0] = (unsigned char)label(base, r);
        for (int c = 0; c < 3; c++)
            for (int j = 0; j < 1024; j++)
                p[1 + c * 1024 + j] = pixel(base, r, c, j);
    }
    size_t n = (size_t)records * RECORD;
    if ((long)n > size)
        n = (size_t)size;
    assert_int_equal(pwrite(fd, b, n, 0), (ssize_t)n);
    free(b);
    assert_int_equal(close(fd), 0);
}

static void put_byte(const char *dir, const char *name, long offset, unsigned char v)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &v, 1, offset), 1);
    close(fd);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* data_batch_1 patterned (base 0), 2..5 links to it, test_batch patterned with base 100. */
static void write_set(const char *dir, int with_test, int with_meta)
{
    write_batch(dir, "data_batch_1.bin", 0, PATTERNED, FILE_BYTES);
    char target[1200], link[1200];
    snprintf(target, sizeof target, "%s/data_batch_1.bin", dir);
    for (int b = 2; b <= 5; b++) {
        snprintf(link, sizeof link, "%s/data_batch_%d.bin", dir, b);
        unlink(link);
        assert_int_equal(symlink(target, link), 0);
    }
    if (with_test)
        write_batch(dir, "test_batch.bin", 100, 10, FILE_BYTES);
    if (with_meta)
        write_text(dir, "batches.meta.txt", "c0\nc1\nc2\nc3\nc4\nc5\nc6\nc7\nc8\nc9\n\n");
}


/* ---- fixture ------------------------------------------------------------------------------- */

typedef struct fx {
    bl_ctx *ctx;
    bl_registry *reg;
    const bl_plugin *plugin;
    char dir[1024];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (bl_test_load_plugin(PLUGIN, BL_PLUGIN_DATASET, &f->ctx, &f->reg, &f->plugin) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->dir[0])
        bl_test_rmdir(f->dir);
    bl_registry_free(f->reg);
    bl_ctx_free(f->ctx);
    free(f);
    return 0;
}

static const char *make_dir(fx *f, const char *name)
{
    snprintf(f->dir, sizeof f->dir, "%s", bl_test_tmpdir(name));
    return f->dir;
}

static int open_ds(fx *f, bl_dataset **ds, ...)
{
    bl_config *cfg = NULL;
    BL_ASSERT_OK(f->ctx, bl_config_new(f->ctx, &cfg));
    BL_ASSERT_OK(f->ctx, bl_config_set_string(f->ctx, cfg, "dir", f->dir));
    va_list ap;
    va_start(ap, ds);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL)
        BL_ASSERT_OK(f->ctx, bl_config_set_assignment(f->ctx, cfg, a));
    va_end(ap);
    *ds = NULL;
    int rc = bl_dataset_open(f->ctx, f->plugin, cfg, ds);
    bl_config_free(cfg);
    return rc;
}

static void expect_error(fx *f, int code, const char *n1, const char *n2, const char *n3)
{
    bl_dataset *ds = NULL;
    int rc = open_ds(f, &ds, NULL);
    if (rc != code)
        fail_msg("open returned %d, expected %d (%s)", rc, code, bl_errmsg(f->ctx));
    assert_null(ds);
    if (getenv("BL_TEST_VERBOSE"))
        printf("    %s\n", bl_errmsg(f->ctx));
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i] && !bl_test_contains(bl_errmsg(f->ctx), needles[i]))
            fail_msg("message \"%s\" lacks \"%s\"", bl_errmsg(f->ctx), needles[i]);
    bl_test_rmdir(f->dir);
}

/* Checks one gathered sample against record r of a file with pattern `base` (r >= PATTERNED:
 * a zero record), raw values. */
static void check_raw(const float *x, int32_t y, int base, int r)
{
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < 1024; j++)
            assert_float_equal(x[c * 1024 + j], r < PATTERNED ? pixel(base, r, c, j) : 0, 0.0);
    assert_int_equal(y, r < PATTERNED ? label(base, r) : 0);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void full_set(void **state)
{
    fx *f = *state;
    write_set(make_dir(f, "cifar_full"), 1, 1);
    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "normalize=none", NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->sample.ndim, 3);
    assert_int_equal(info->sample.dim[0], 3);
    assert_int_equal(info->sample.dim[1], 32);
    assert_int_equal(info->sample.dim[2], 32);
    assert_int_equal(info->classes, 10);
    assert_int_equal(info->count[BL_SPLIT_TRAIN], 50000);
    assert_int_equal(info->count[BL_SPLIT_VALIDATION], 0);
    assert_int_equal(info->count[BL_SPLIT_TEST], 10000);
    assert_string_equal(info->class_names[0], "c0"); /* from batches.meta.txt */
    assert_string_equal(info->class_names[9], "c9");

    int64_t idx[5] = {0, 99, 100, 10005, 49999};
    int rec[5] = {0, 99, 100, 5, 9999}; /* record within its (linked) batch file */
    float *x = malloc(sizeof(float) * 5 * PIXELS);
    int32_t y[5];
    assert_non_null(x);
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, BL_SPLIT_TRAIN, idx, 5, x, y));
    for (int k = 0; k < 5; k++)
        check_raw(x + k * PIXELS, y[k], 0, rec[k]);
    int64_t t[2] = {9, 3};
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, BL_SPLIT_TEST, t, 2, x, y));
    check_raw(x, y[0], 100, 9);
    check_raw(x + PIXELS, y[1], 100, 3);
    free(x);
    bl_dataset_close(ds);
}

static void defaults_without_meta_or_test(void **state)
{
    fx *f = *state;
    write_set(make_dir(f, "cifar_bare"), 0, 0);
    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "limit=150", NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_string_equal(info->class_names[0], "airplane");
    assert_string_equal(info->class_names[9], "truck");
    assert_int_equal(info->count[BL_SPLIT_TRAIN], 150);
    assert_int_equal(info->count[BL_SPLIT_TEST], 0);
    bl_dataset_close(ds);
}

static void normalization_per_channel(void **state)
{
    fx *f = *state;
    write_set(make_dir(f, "cifar_norm"), 1, 0);
    enum { N = 150 }; /* 100 patterned records and 50 zero records */
    double mean[3], std[3];
    for (int c = 0; c < 3; c++) {
        double s = 0, s2 = 0;
        for (int r = 0; r < PATTERNED; r++)
            for (int j = 0; j < 1024; j++) {
                double v = pixel(0, r, c, j) / 255.0;
                s += v;
                s2 += v * v;
            }
        mean[c] = s / (N * 1024.0);
        std[c] = sqrt(s2 / (N * 1024.0) - mean[c] * mean[c]);
    }
    assert_true(fabs(mean[0] - mean[1]) > 1e-3); /* the channels really differ */

    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "limit=150", NULL)); /* default: standard */
    int64_t idx[2] = {42, 120};
    float x[2 * PIXELS];
    int32_t y[2];
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, BL_SPLIT_TRAIN, idx, 2, x, y));
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < 1024; j++) {
            assert_float_equal(x[c * 1024 + j], (pixel(0, 42, c, j) / 255.0 - mean[c]) / std[c],
                               1e-5);
            assert_float_equal(x[PIXELS + c * 1024 + j], (0.0 - mean[c]) / std[c], 1e-5);
        }
    /* the test split with the training statistics */
    int64_t t[1] = {2};
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, BL_SPLIT_TEST, t, 1, x, y));
    for (int c = 0; c < 3; c++)
        assert_float_equal(x[c * 1024 + 5], (pixel(100, 2, c, 5) / 255.0 - mean[c]) / std[c],
                           1e-5);
    bl_dataset_close(ds);

    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "limit=150", "normalize=unit", NULL));
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, BL_SPLIT_TRAIN, idx, 1, x, y));
    for (int c = 0; c < 3; c++)
        assert_float_equal(x[c * 1024 + 17], pixel(0, 42, c, 17) / 255.0, 1e-7);
    bl_dataset_close(ds);
}

static int split_ids(fx *f, bl_dataset *ds, bl_split s, int *ids)
{
    int n = (int)bl_dataset_info(ds)->count[s];
    float *x = malloc(sizeof(float) * (size_t)n * PIXELS);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    assert_true(x && y && idx);
    for (int i = 0; i < n; i++)
        idx[i] = i;
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, s, idx, n, x, y));
    for (int i = 0; i < n; i++) {
        ids[i] = (int)x[(size_t)i * PIXELS];
        assert_int_equal(y[i], label(0, ids[i]));
    }
    free(x);
    free(y);
    free(idx);
    return n;
}

static void validation_split(void **state)
{
    fx *f = *state;
    write_set(make_dir(f, "cifar_split"), 0, 0);
    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "limit=100", "validation=0.25", "seed=5",
                                 "normalize=none", NULL));
    assert_int_equal(bl_dataset_info(ds)->count[BL_SPLIT_TRAIN], 75);
    assert_int_equal(bl_dataset_info(ds)->count[BL_SPLIT_VALIDATION], 25);
    int tr[100], va[100], va2[100], seen[100] = {0};
    int ntr = split_ids(f, ds, BL_SPLIT_TRAIN, tr), nva = split_ids(f, ds, BL_SPLIT_VALIDATION, va);
    bl_dataset_close(ds);
    for (int i = 0; i < ntr; i++)
        seen[tr[i]]++;
    for (int i = 0; i < nva; i++)
        seen[va[i]]++;
    for (int i = 0; i < 100; i++)
        assert_int_equal(seen[i], 1);
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "limit=100", "validation=25", "seed=5",
                                 "normalize=none", NULL));
    split_ids(f, ds, BL_SPLIT_VALIDATION, va2);
    bl_dataset_close(ds);
    assert_memory_equal(va, va2, sizeof(int) * 25);
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "limit=100", "validation=25", "seed=6",
                                 "normalize=none", NULL));
    split_ids(f, ds, BL_SPLIT_VALIDATION, va2);
    bl_dataset_close(ds);
    assert_memory_not_equal(va, va2, sizeof(int) * 25);
}

static void errors(void **state)
{
    fx *f = *state;
    char path[1200];

    /* a missing training batch: say where the data comes from */
    write_set(make_dir(f, "cifar_missing"), 1, 0);
    snprintf(path, sizeof path, "%s/data_batch_3.bin", f->dir);
    unlink(path);
    expect_error(f, BL_ENOTFOUND, "data_batch_3.bin",
                 "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", NULL);

    /* one byte short; and a file of one record */
    write_set(make_dir(f, "cifar_size"), 1, 0);
    write_batch(f->dir, "data_batch_1.bin", 0, 10, FILE_BYTES - 1);
    expect_error(f, BL_EFORMAT, "data_batch_1.bin: 30729999 bytes", "expected exactly 30730000",
                 NULL);
    write_set(make_dir(f, "cifar_small"), 1, 0);
    write_batch(f->dir, "test_batch.bin", 0, 1, RECORD);
    expect_error(f, BL_EFORMAT, "test_batch.bin: 3073 bytes", "30730000", NULL);

    /* label 10 in record 7 of the training file, 255 in record 3 of the test file */
    write_set(make_dir(f, "cifar_label"), 1, 0);
    put_byte(f->dir, "data_batch_1.bin", 7L * RECORD, 10);
    expect_error(f, BL_EFORMAT, "data_batch_1.bin: byte offset 21511", "label 10 of record 7",
                 "0..9");
    write_set(make_dir(f, "cifar_tlabel"), 1, 0);
    put_byte(f->dir, "test_batch.bin", 3L * RECORD, 255);
    expect_error(f, BL_EFORMAT, "test_batch.bin: byte offset 9219", "label 255", NULL);

    /* a meta file with 3 names */
    write_set(make_dir(f, "cifar_meta"), 0, 0);
    write_text(f->dir, "batches.meta.txt", "cat\ndog\n\nfrog\n");
    expect_error(f, BL_EFORMAT, "batches.meta.txt", "expected 10 class names", "found 3");

    /* options */
    write_set(make_dir(f, "cifar_opts"), 0, 0);
    bl_dataset *ds;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "standard, unit or none",
                  open_ds(f, &ds, "limit=10", "normalize=pca", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "holds out 10 of 10",
                  open_ds(f, &ds, "limit=10", "validation=10", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(full_set, setup, teardown),
        cmocka_unit_test_setup_teardown(defaults_without_meta_or_test, setup, teardown),
        cmocka_unit_test_setup_teardown(normalization_per_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(validation_split, setup, teardown),
        cmocka_unit_test_setup_teardown(errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Bounds of the dataset readers (issue 15, Found 7, 8, 9, 10): special files are refused when
 * opened without hanging (a FIFO with no writer, /dev/zero), a NUL byte inside a CSV cell is an
 * error naming file, line and column, an IDX header with an impossible size is refused with a
 * limit too (it overflowed a signed product: UBSan aborts the sanitizer build without the
 * mend), and a gzip IDX file may not inflate beyond max_decompressed_mb.
 *
 * Every test arms alarm(): without the mends a FIFO blocks open() for ever and /dev/zero is
 * read until memory runs out, and the alarm turns either into a failure. */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

#define CSV BATCHLAB_BUILD_PLUGIN_DIR "/bl_csv.so"
#define IDX BATCHLAB_BUILD_PLUGIN_DIR "/bl_idx.so"
#define CIFAR BATCHLAB_BUILD_PLUGIN_DIR "/bl_cifar10.so"

typedef struct fx {
    bl_ctx *ctx;
    bl_registry *reg;
    const bl_plugin *plugin;
    char dir[1024];
} fx;

static int setup_with(void **state, const char *path)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (bl_test_load_plugin(path, BL_PLUGIN_DATASET, &f->ctx, &f->reg, &f->plugin) != 0)
        return -1;
    alarm(60);
    *state = f;
    return 0;
}

static int setup_csv(void **state)
{
    return setup_with(state, CSV);
}

static int setup_idx(void **state)
{
    return setup_with(state, IDX);
}

static int setup_cifar(void **state)
{
    return setup_with(state, CIFAR);
}

static int teardown(void **state)
{
    fx *f = *state;
    alarm(0);
    if (f->dir[0])
        bl_test_rmdir(f->dir);
    bl_registry_free(f->reg);
    bl_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* Opens the dataset with the given "name=value" options (NULL-ended). */
static int open_ds(fx *f, ...)
{
    bl_config *cfg = NULL;
    BL_ASSERT_OK(f->ctx, bl_config_new(f->ctx, &cfg));
    va_list ap;
    va_start(ap, f);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL)
        BL_ASSERT_OK(f->ctx, bl_config_set_assignment(f->ctx, cfg, a));
    va_end(ap);
    bl_dataset *ds = NULL;
    int rc = bl_dataset_open(f->ctx, f->plugin, cfg, &ds);
    bl_config_free(cfg);
    bl_dataset_close(ds);
    if (rc && getenv("BL_TEST_VERBOSE"))
        printf("    %s\n", bl_errmsg(f->ctx));
    return rc;
}

static void write_bytes(const char *path, int gz, const void *b, size_t n)
{
    if (gz) {
        gzFile g = gzopen(path, "wb9");
        assert_non_null(g);
        assert_int_equal(gzwrite(g, b, (unsigned)n), (int)n);
        assert_int_equal(gzclose(g), Z_OK);
        return;
    }
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX header of `count` images of h×w followed by `data` bytes of zeros. */
static void write_idx_images(const char *path, int gz, uint32_t count, uint32_t h, uint32_t w,
                             size_t data)
{
    unsigned char *b = calloc(16 + data, 1);
    assert_non_null(b);
    memcpy(b, "\0\0\x08\x03", 4);
    put_be32(b + 4, count);
    put_be32(b + 8, h);
    put_be32(b + 12, w);
    write_bytes(path, gz, b, 16 + data);
    free(b);
}

static void write_idx_labels(const char *path, uint32_t count)
{
    unsigned char *b = calloc(8 + count, 1);
    assert_non_null(b);
    memcpy(b, "\0\0\x08\x01", 4);
    put_be32(b + 4, count);
    write_bytes(path, 0, b, 8 + count);
    free(b);
}

/* ---- CSV --------------------------------------------------------------------------------- */

static void csv_fifo_and_devices(void **state)
{
    fx *f = *state;
    snprintf(f->dir, sizeof f->dir, "%s", bl_test_tmpdir("bounds_csv_fifo"));
    char path[1200], opt[1300];
    snprintf(path, sizeof path, "%s/data.csv", f->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    snprintf(opt, sizeof opt, "file=%s", path);
    /* no writer: a blocking open() would wait here for ever */
    BL_ASSERT_ERR(f->ctx, BL_EIO, "data.csv: not a regular file (a FIFO)",
                  open_ds(f, opt, NULL));
    /* a device that never ends */
    BL_ASSERT_ERR(f->ctx, BL_EIO, "/dev/zero: not a regular file (a character device)",
                  open_ds(f, "file=/dev/zero", NULL));
    snprintf(opt, sizeof opt, "file=%s", f->dir);
    BL_ASSERT_ERR(f->ctx, BL_EIO, "not a regular file (a directory)", open_ds(f, opt, NULL));
}

static void csv_nul_in_cell(void **state)
{
    fx *f = *state;
    snprintf(f->dir, sizeof f->dir, "%s", bl_test_tmpdir("bounds_csv_nul"));
    char path[1200], opt[1300];
    snprintf(path, sizeof path, "%s/data.csv", f->dir);
    snprintf(opt, sizeof opt, "file=%s", path);
    static const char text[] = "a,b,c\n1,2,0\n3,0.\0" "835,1\n5,6,0\n";
    write_bytes(path, 0, text, sizeof text - 1);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "data.csv: line 3, column 2: a NUL byte inside a cell",
                  open_ds(f, opt, NULL));
    static const char quoted[] = "a,b,c\n1,2,0\n3,4,\"x\0y\"\n";
    write_bytes(path, 0, quoted, sizeof quoted - 1);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "data.csv: line 3, column 3: a NUL byte inside a cell",
                  open_ds(f, opt, NULL));
    /* the same file without the NUL reads */
    static const char clean[] = "a,b,c\n1,2,0\n3,0.835,1\n5,6,0\n";
    write_bytes(path, 0, clean, sizeof clean - 1);
    BL_ASSERT_OK(f->ctx, open_ds(f, opt, NULL));
}

/* ---- IDX --------------------------------------------------------------------------------- */

static void idx_fifo(void **state)
{
    fx *f = *state;
    snprintf(f->dir, sizeof f->dir, "%s", bl_test_tmpdir("bounds_idx_fifo"));
    char path[1200], opt[1300];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", f->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", f->dir);
    write_idx_labels(path, 2);
    snprintf(opt, sizeof opt, "dir=%s", f->dir);
    BL_ASSERT_ERR(f->ctx, BL_EIO, "train-images-idx3-ubyte: not a regular file (a FIFO)",
                  open_ds(f, opt, NULL));
}

/* Found 10: with a limit, a header whose whole size overflows int64_t was multiplied out in
 * the message (signed overflow; the message showed 7.9e18). */
static void idx_impossible_header_with_limit(void **state)
{
    fx *f = *state;
    snprintf(f->dir, sizeof f->dir, "%s", bl_test_tmpdir("bounds_idx_huge"));
    char path[1200], opt[1300];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", f->dir);
    write_idx_images(path, 0, 0xFFFFFFFFu, 0x40000000u, 0x40000000u, 0);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", f->dir);
    write_idx_labels(path, 2);
    snprintf(opt, sizeof opt, "dir=%s", f->dir);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "byte offset 4: the header declares 4294967295 images "
                  "of 1073741824x1073741824: impossibly large",
                  open_ds(f, opt, "limit=1", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "impossibly large", open_ds(f, opt, NULL));
}

/* Found 7: a gzip file inflating beyond max_decompressed_mb is refused before its data is
 * allocated, with a message naming the option. */
static void idx_gzip_bound(void **state)
{
    fx *f = *state;
    snprintf(f->dir, sizeof f->dir, "%s", bl_test_tmpdir("bounds_idx_gz"));
    char path[1200], opt[1300];
    /* 3 images of 1024×1024 zeros: 3 MiB of data in a few KiB of gzip */
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", f->dir);
    write_idx_images(path, 1, 3, 1024, 1024, (size_t)3 << 20);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", f->dir);
    write_idx_labels(path, 3);
    snprintf(opt, sizeof opt, "dir=%s", f->dir);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "(3145728 data bytes to read after decompression), more "
                  "than max_decompressed_mb = 2 allows",
                  open_ds(f, opt, "max_decompressed_mb=2", NULL));
    BL_ASSERT_OK(f->ctx, open_ds(f, opt, "max_decompressed_mb=3", NULL));
    BL_ASSERT_OK(f->ctx, open_ds(f, opt, NULL)); /* the default: 1024 MiB */
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "max_decompressed_mb = 0",
                  open_ds(f, opt, "max_decompressed_mb=0", NULL));
}

/* ---- CIFAR-10 ------------------------------------------------------------------------------ */

static void cifar_fifo(void **state)
{
    fx *f = *state;
    snprintf(f->dir, sizeof f->dir, "%s", bl_test_tmpdir("bounds_cifar_fifo"));
    char path[1200], opt[1300];
    snprintf(path, sizeof path, "%s/data_batch_1.bin", f->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    snprintf(opt, sizeof opt, "dir=%s", f->dir);
    BL_ASSERT_ERR(f->ctx, BL_EIO, "data_batch_1.bin: not a regular file (a FIFO)",
                  open_ds(f, opt, "limit=1", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(csv_fifo_and_devices, setup_csv, teardown),
        cmocka_unit_test_setup_teardown(csv_nul_in_cell, setup_csv, teardown),
        cmocka_unit_test_setup_teardown(idx_fifo, setup_idx, teardown),
        cmocka_unit_test_setup_teardown(idx_impossible_header_with_limit, setup_idx, teardown),
        cmocka_unit_test_setup_teardown(idx_gzip_bound, setup_idx, teardown),
        cmocka_unit_test_setup_teardown(cifar_fifo, setup_cifar, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The "idx" dataset plugin (plugins/datasets/idx.c) on small IDX files written here, plain and
 * gzipped: shapes, values, normalization, the validation split and every error path. The real
 * Fashion-MNIST is checked by test_dataset_idx_real.c.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

#define PLUGIN BATCHLAB_BUILD_PLUGIN_DIR "/bl_idx.so"
#define H 4
#define W 3
#define PX (H * W)
#define NTRAIN 50
#define NTEST 20

/* ---- writing IDX files --------------------------------------------------------------------- */

static unsigned char train_pixel(int i, int j)
{
    return (unsigned char)((i + 29 * j) % 256); /* pixel 0 of image i is i */
}

static unsigned char test_pixel(int i, int j)
{
    return (unsigned char)((200 + i * 3 + 7 * j) % 256);
}

static int train_label(int i)
{
    return i % 10;
}

static int test_label(int i)
{
    return (i * 3) % 10;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void write_bytes(const char *dir, const char *name, int gz, const unsigned char *b,
                        size_t n)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, gz ? ".gz" : "");
    if (gz) {
        gzFile f = gzopen(path, "wb9");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, b, (unsigned)n), (int)n);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(b, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
    }
}

/* An images file declaring `declared` images of h×w, holding `present` of them. */
static void write_images(const char *dir, const char *name, int gz, uint32_t declared,
                         int present, uint32_t h, uint32_t w, int test_set)
{
    size_t n = 16 + (size_t)present * h * w;
    unsigned char *b = malloc(n);
    assert_non_null(b);
    memcpy(b, "\0\0\x08\x03", 4);
    put_be32(b + 4, declared);
    put_be32(b + 8, h);
    put_be32(b + 12, w);
    for (int i = 0; i < present; i++)
        for (uint32_t j = 0; j < h * w; j++)
            b[16 + (size_t)i * h * w + j] =
                test_set ? test_pixel(i, (int)j) : train_pixel(i, (int)j);
    write_bytes(dir, name, gz, b, n);
    free(b);
}

static void write_labels(const char *dir, const char *name, int gz, uint32_t count,
                         int test_set)
{
    size_t n = 8 + count;
    unsigned char *b = malloc(n);
    assert_non_null(b);
    memcpy(b, "\0\0\x08\x01", 4);
    put_be32(b + 4, count);
    for (uint32_t i = 0; i < count; i++)
        b[8 + i] = (unsigned char)(test_set ? test_label((int)i) : train_label((int)i));
    write_bytes(dir, name, gz, b, n);
    free(b);
}

/* A complete set: training files plain or gzip, test files gzip (or none). */
static void write_set(const char *dir, int gz, int with_test)
{
    write_images(dir, "train-images-idx3-ubyte", gz, NTRAIN, NTRAIN, H, W, 0);
    write_labels(dir, "train-labels-idx1-ubyte", gz, NTRAIN, 0);
    if (with_test) {
        write_images(dir, "t10k-images-idx3-ubyte", 1, NTEST, NTEST, H, W, 1);
        write_labels(dir, "t10k-labels-idx1-ubyte", 1, NTEST, 1);
    }
}

static void remove_file(const char *dir, const char *name)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
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

/* Opens the dataset with dir = f->dir and the given "name=value" options (NULL-ended). */
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

static void assert_msg(fx *f, const char *needle)
{
    if (!bl_test_contains(bl_errmsg(f->ctx), needle))
        fail_msg("message \"%s\" lacks \"%s\"", bl_errmsg(f->ctx), needle);
}

/* Gathers the whole split; *x and *y are malloc'd. */
static void gather_all(fx *f, bl_dataset *ds, bl_split s, float **x, int32_t **y)
{
    int64_t n = bl_dataset_info(ds)->count[s];
    int64_t *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    *x = malloc((size_t)(n ? n : 1) * PX * sizeof **x);
    *y = malloc((size_t)(n ? n : 1) * sizeof **y);
    assert_true(idx && *x && *y);
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, s, idx, n, *x, *y));
    free(idx);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* gather_bytes gives the stored bytes and the map gather applies: (float)byte·scale + offset is
 * gather's float bit for bit, with the labels, for every normalization and split; the CPU
 * device's gather_bytes op (what the resident loader runs) gives the same floats. */
static void bytes_and_their_map(void **state)
{
    fx *f = *state;
    write_set(make_dir(f, "idx_bytes"), 1, 1);
    static const char *const norms[] = {"normalize=none", "normalize=unit", "normalize=standard"};
    bl_device *cpu = NULL;
    BL_ASSERT_OK(f->ctx, bl_device_cpu_open(f->ctx, 1, &cpu));
    for (size_t k = 0; k < 3; k++) {
        bl_dataset *ds;
        BL_ASSERT_OK(f->ctx, open_ds(f, &ds, norms[k], "validation=10", NULL));
        for (int sp = 0; sp < BL_SPLIT_COUNT; sp++) {
            int64_t count = bl_dataset_info(ds)->count[sp];
            if (count == 0)
                continue;
            int64_t idx[4] = {count - 1, 0, count / 2, count - 1};
            float x[4 * PX], got[4 * PX], scale = 0, offset = 0;
            uint8_t b[4 * PX];
            int32_t y[4], yb[4];
            BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, (bl_split)sp, idx, 4, x, y));
            BL_ASSERT_OK(f->ctx, bl_dataset_gather_bytes(f->ctx, ds, (bl_split)sp, idx, 4, b, yb,
                                                         &scale, &offset));
            assert_memory_equal(y, yb, sizeof y);
            for (int j = 0; j < 4 * PX; j++) {
                float v = (float)b[j] * scale + offset;
                assert_memory_equal(&v, &x[j], sizeof v);
            }
            /* the device op, gathering rows 1 and 3 of b by index */
            int64_t rows[2] = {3, 1};
            cpu->ops->gather_bytes(cpu, 2, rows, PX, b, scale, offset, got);
            assert_memory_equal(got, x + 3 * PX, PX * sizeof(float));
            assert_memory_equal(got + PX, x + PX, PX * sizeof(float));
            int32_t lab[2];
            cpu->ops->gather_rows(cpu, 2, rows, sizeof(int32_t), y, lab);
            assert_int_equal(lab[0], y[3]);
            assert_int_equal(lab[1], y[1]);
        }
        int64_t bad[1] = {1 << 30};
        float scale, offset;
        uint8_t b[PX];
        int32_t y[1];
        assert_int_equal(bl_dataset_gather_bytes(f->ctx, ds, BL_SPLIT_TRAIN, bad, 1, b, y,
                                                 &scale, &offset),
                         BL_EINVAL);
        bl_dataset_close(ds);
    }
    bl_device_free(cpu);
}


static void shapes_and_raw_values(void **state)
{
    fx *f = *state;
    write_set(make_dir(f, "idx_raw"), 0, 1);
    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "normalize=none", NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->sample.ndim, 3);
    assert_int_equal(info->sample.dim[0], 1);
    assert_int_equal(info->sample.dim[1], H);
    assert_int_equal(info->sample.dim[2], W);
    assert_int_equal(info->classes, 10);
    assert_int_equal(info->count[BL_SPLIT_TRAIN], NTRAIN);
    assert_int_equal(info->count[BL_SPLIT_VALIDATION], 0);
    assert_int_equal(info->count[BL_SPLIT_TEST], NTEST);
    assert_non_null(info->class_names);
    assert_string_equal(info->class_names[3], "3"); /* not a "fashion" directory: digits */

    int64_t idx[3] = {0, 7, 49};
    float x[3 * PX];
    int32_t y[3];
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, BL_SPLIT_TRAIN, idx, 3, x, y));
    for (int k = 0; k < 3; k++) {
        assert_int_equal(y[k], train_label((int)idx[k]));
        for (int j = 0; j < PX; j++)
            assert_float_equal(x[k * PX + j], train_pixel((int)idx[k], j), 0.0);
    }
    int64_t tidx[2] = {19, 0};
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, BL_SPLIT_TEST, tidx, 2, x, y));
    for (int k = 0; k < 2; k++) {
        assert_int_equal(y[k], test_label((int)tidx[k]));
        for (int j = 0; j < PX; j++)
            assert_float_equal(x[k * PX + j], test_pixel((int)tidx[k], j), 0.0);
    }
    bl_dataset_close(ds);
}

static void unit_and_standard(void **state)
{
    fx *f = *state;
    write_set(make_dir(f, "idx_norm"), 1, 1);
    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "normalize=unit", NULL));
    int64_t idx[1] = {33};
    float x[PX];
    int32_t y[1];
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, BL_SPLIT_TRAIN, idx, 1, x, y));
    for (int j = 0; j < PX; j++)
        assert_float_equal(x[j], train_pixel(33, j) / 255.0, 1e-7);
    bl_dataset_close(ds);

    /* standard: the training set's mean and std of x/255 (population), for every split */
    double s = 0, s2 = 0;
    for (int i = 0; i < NTRAIN; i++)
        for (int j = 0; j < PX; j++) {
            double v = train_pixel(i, j) / 255.0;
            s += v;
            s2 += v * v;
        }
    double n = NTRAIN * PX, mean = s / n, std = sqrt(s2 / n - mean * mean);
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, NULL)); /* the default is standard */
    float *xa;
    int32_t *ya;
    gather_all(f, ds, BL_SPLIT_TRAIN, &xa, &ya);
    double m = 0, v2 = 0;
    for (int i = 0; i < NTRAIN; i++)
        for (int j = 0; j < PX; j++) {
            assert_float_equal(xa[i * PX + j], (train_pixel(i, j) / 255.0 - mean) / std, 1e-5);
            m += xa[i * PX + j];
            v2 += (double)xa[i * PX + j] * xa[i * PX + j];
        }
    assert_float_equal(m / n, 0.0, 1e-5);
    assert_float_equal(v2 / n, 1.0, 1e-4);
    free(xa);
    free(ya);
    int64_t t[1] = {5};
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, BL_SPLIT_TEST, t, 1, x, y));
    for (int j = 0; j < PX; j++)
        assert_float_equal(x[j], (test_pixel(5, j) / 255.0 - mean) / std, 1e-5);
    bl_dataset_close(ds);
}

/* Ids (the first pixel is the image number) of a whole split, with normalize=none. */
static int split_ids(fx *f, bl_dataset *ds, bl_split s, int *ids)
{
    float *x;
    int32_t *y;
    gather_all(f, ds, s, &x, &y);
    int n = (int)bl_dataset_info(ds)->count[s];
    for (int i = 0; i < n; i++) {
        ids[i] = (int)x[i * PX];
        assert_int_equal(y[i], train_label(ids[i]));
    }
    free(x);
    free(y);
    return n;
}

static void validation_split(void **state)
{
    fx *f = *state;
    write_set(make_dir(f, "idx_split"), 0, 0);
    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "normalize=none", "validation=10", "seed=3", NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->count[BL_SPLIT_TRAIN], 40);
    assert_int_equal(info->count[BL_SPLIT_VALIDATION], 10);
    assert_int_equal(info->count[BL_SPLIT_TEST], 0); /* no t10k files */
    int tr[NTRAIN], va[NTRAIN], seen[NTRAIN] = {0};
    int ntr = split_ids(f, ds, BL_SPLIT_TRAIN, tr), nva = split_ids(f, ds, BL_SPLIT_VALIDATION, va);
    bl_dataset_close(ds);
    for (int i = 0; i < ntr; i++) {
        seen[tr[i]]++;
        if (i > 0)
            assert_true(tr[i] > tr[i - 1]); /* source order kept */
    }
    for (int i = 0; i < nva; i++)
        seen[va[i]]++;
    for (int i = 0; i < NTRAIN; i++)
        assert_int_equal(seen[i], 1); /* disjoint, and together everything */

    /* same seed: same split; another seed: another split */
    int va2[NTRAIN];
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "normalize=none", "validation=10", "seed=3", NULL));
    assert_int_equal(split_ids(f, ds, BL_SPLIT_VALIDATION, va2), 10);
    bl_dataset_close(ds);
    assert_memory_equal(va, va2, sizeof(int) * 10);
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "normalize=none", "validation=10", "seed=4", NULL));
    split_ids(f, ds, BL_SPLIT_VALIDATION, va2);
    bl_dataset_close(ds);
    assert_memory_not_equal(va, va2, sizeof(int) * 10);

    /* a fraction */
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "validation=0.2", NULL));
    assert_int_equal(bl_dataset_info(ds)->count[BL_SPLIT_VALIDATION], 10);
    assert_int_equal(bl_dataset_info(ds)->count[BL_SPLIT_TRAIN], 40);
    bl_dataset_close(ds);

    /* standard normalization uses the training split only */
    double s = 0, s2 = 0;
    for (int i = 0; i < ntr; i++)
        for (int j = 0; j < PX; j++) {
            double v = train_pixel(tr[i], j) / 255.0;
            s += v;
            s2 += v * v;
        }
    double n = ntr * PX, mean = s / n, std = sqrt(s2 / n - mean * mean);
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "validation=10", "seed=3", NULL));
    int64_t idx[1] = {0};
    float x[PX];
    int32_t y[1];
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, BL_SPLIT_VALIDATION, idx, 1, x, y));
    for (int j = 0; j < PX; j++)
        assert_float_equal(x[j], (train_pixel(va[0], j) / 255.0 - mean) / std, 1e-5);
    bl_dataset_close(ds);
}

static void gzip_fashion_names_and_limit(void **state)
{
    fx *f = *state;
    write_set(make_dir(f, "Fashion_idx"), 1, 1);
    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "normalize=none", "limit=20", NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_string_equal(info->class_names[0], "T-shirt/top");
    assert_string_equal(info->class_names[9], "Ankle boot");
    assert_int_equal(info->count[BL_SPLIT_TRAIN], 20);
    assert_int_equal(info->count[BL_SPLIT_TEST], NTEST);
    int ids[NTRAIN];
    assert_int_equal(split_ids(f, ds, BL_SPLIT_TRAIN, ids), 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(ids[i], i);
    bl_dataset_close(ds);

    /* the format is recognized by the magic bytes, not by the name */
    remove_file(f->dir, "train-labels-idx1-ubyte.gz");
    write_labels(f->dir, "train-labels-idx1-ubyte", 1, NTRAIN, 0);
    char from[1200], to[1200];
    snprintf(from, sizeof from, "%s/train-labels-idx1-ubyte.gz", f->dir);
    snprintf(to, sizeof to, "%s/train-labels-idx1-ubyte", f->dir);
    assert_int_equal(rename(from, to), 0);
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, NULL));
    assert_int_equal(bl_dataset_info(ds)->count[BL_SPLIT_TRAIN], NTRAIN);
    bl_dataset_close(ds);
}

/* Writes a valid set, then replaces `name` with the bytes b[0..n) (plain or gzip). */
static void corrupt(fx *f, const char *tag, const char *name, int gz, const unsigned char *b,
                    size_t n)
{
    write_set(make_dir(f, tag), 0, 1);
    remove_file(f->dir, name);
    write_bytes(f->dir, name, gz, b, n);
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
    if (n1)
        assert_msg(f, n1);
    if (n2)
        assert_msg(f, n2);
    if (n3)
        assert_msg(f, n3);
    bl_test_rmdir(f->dir);
}

static void bad_headers(void **state)
{
    fx *f = *state;
    unsigned char b[16 + PX];
    memset(b, 0, sizeof b);
    put_be32(b + 4, 1);
    put_be32(b + 8, H);
    put_be32(b + 12, W);

    memcpy(b, "\x12\x34\x08\x03", 4);
    corrupt(f, "idx_magic", "train-images-idx3-ubyte", 0, b, sizeof b);
    expect_error(f, BL_EFORMAT, "train-images-idx3-ubyte", "byte offset 0", "magic 0x00000803");

    memcpy(b, "\x00\x00\x08\x01", 4); /* a labels magic on the images file */
    corrupt(f, "idx_ndim", "train-images-idx3-ubyte", 0, b, sizeof b);
    expect_error(f, BL_EFORMAT, "train-images-idx3-ubyte", "byte offset 3", "expected 3");

    memcpy(b, "\x00\x00\x0D\x03", 4); /* float32 */
    corrupt(f, "idx_type", "train-images-idx3-ubyte", 1, b, sizeof b);
    expect_error(f, BL_EFORMAT, "train-images-idx3-ubyte.gz", "byte offset 2", "0x08");

    /* a header cut short */
    corrupt(f, "idx_short", "train-labels-idx1-ubyte", 0, (const unsigned char *)"\0\0\x08\x01\0", 5);
    expect_error(f, BL_EFORMAT, "train-labels-idx1-ubyte", "byte offset 5", "truncated header");

    /* a zero dimension */
    memcpy(b, "\x00\x00\x08\x03", 4);
    put_be32(b + 12, 0);
    corrupt(f, "idx_zero", "train-images-idx3-ubyte", 0, b, sizeof b);
    expect_error(f, BL_EFORMAT, "train-images-idx3-ubyte", "byte offset 12", "4x0");
}

static void truncated_and_oversized(void **state)
{
    fx *f = *state;
    /* plain: the header declares 50 images, 30 are there: refused before reading */
    write_set(make_dir(f, "idx_trunc"), 0, 1);
    write_images(f->dir, "train-images-idx3-ubyte", 0, NTRAIN, 30, H, W, 0);
    expect_error(f, BL_EFORMAT, "train-images-idx3-ubyte", "byte offset 376", "truncated");

    /* gzip: the decompressed data ends after 30 images */
    write_set(make_dir(f, "idx_truncgz"), 0, 1);
    remove_file(f->dir, "train-images-idx3-ubyte");
    write_images(f->dir, "train-images-idx3-ubyte", 1, NTRAIN, 30, H, W, 0);
    expect_error(f, BL_EFORMAT, "train-images-idx3-ubyte.gz", "byte offset 376 (decompressed)",
                 "truncated");

    /* gzip: the compressed file itself cut in half */
    write_set(make_dir(f, "idx_cutgz"), 0, 1);
    remove_file(f->dir, "train-labels-idx1-ubyte");
    write_labels(f->dir, "train-labels-idx1-ubyte", 1, NTRAIN, 0);
    char path[1200];
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    expect_error(f, BL_EFORMAT, "train-labels-idx1-ubyte.gz", "byte offset", "(decompressed)");

    /* a damaged CRC-32 in the gzip trailer (the last 8 bytes: CRC-32, size) */
    write_set(make_dir(f, "idx_crc"), 0, 1);
    remove_file(f->dir, "train-labels-idx1-ubyte");
    write_labels(f->dir, "train-labels-idx1-ubyte", 1, NTRAIN, 0);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", f->dir);
    assert_int_equal(stat(path, &st), 0);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, (long)st.st_size - 6, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_int_equal(fseek(fp, (long)st.st_size - 6, SEEK_SET), 0);
    fputc(c ^ 0x5A, fp);
    fclose(fp);
    expect_error(f, BL_EFORMAT, "train-labels-idx1-ubyte.gz: byte offset",
                 "corrupt gzip data: incorrect data check", NULL);

    /* impossible sizes are refused before anything is allocated */
    unsigned char b[16];
    memcpy(b, "\x00\x00\x08\x03", 4);
    put_be32(b + 4, 0xFFFFFFFFu);
    put_be32(b + 8, 1000);
    put_be32(b + 12, 1000);
    corrupt(f, "idx_huge", "train-images-idx3-ubyte", 1, b, sizeof b);
    expect_error(f, BL_EFORMAT, "train-images-idx3-ubyte.gz", "4294967295 images", "truncated");
    put_be32(b + 8, 0xFFFFFFFFu);
    put_be32(b + 12, 0xFFFFFFFFu);
    corrupt(f, "idx_huge2", "train-images-idx3-ubyte", 0, b, sizeof b);
    expect_error(f, BL_EFORMAT, "train-images-idx3-ubyte", "byte offset 4", "impossibly large");

    /* more data than the header declares */
    write_set(make_dir(f, "idx_extra"), 0, 1);
    write_images(f->dir, "train-images-idx3-ubyte", 0, NTRAIN - 1, NTRAIN, H, W, 0);
    write_labels(f->dir, "train-labels-idx1-ubyte", 0, NTRAIN - 1, 0);
    expect_error(f, BL_EFORMAT, "train-images-idx3-ubyte", "byte offset 604",
                 "expected the end of the file");
}

static void counts_and_labels(void **state)
{
    fx *f = *state;
    /* 50 images, 49 labels */
    write_set(make_dir(f, "idx_count"), 0, 1);
    write_labels(f->dir, "train-labels-idx1-ubyte", 0, NTRAIN - 1, 0);
    expect_error(f, BL_EFORMAT, "count mismatch", "50 images", "49 labels");

    /* label 10 at item 5 (byte offset 8 + 5) of the gzipped test labels */
    unsigned char b[8 + NTEST];
    memcpy(b, "\x00\x00\x08\x01", 4);
    put_be32(b + 4, NTEST);
    for (int i = 0; i < NTEST; i++)
        b[8 + i] = (unsigned char)test_label(i);
    b[8 + 5] = 10;
    write_set(make_dir(f, "idx_label"), 0, 1);
    remove_file(f->dir, "t10k-labels-idx1-ubyte.gz");
    write_bytes(f->dir, "t10k-labels-idx1-ubyte", 1, b, sizeof b);
    expect_error(f, BL_EFORMAT, "t10k-labels-idx1-ubyte.gz", "byte offset 13 (decompressed)",
                 "label 10");

    /* test images of another size */
    write_set(make_dir(f, "idx_dims"), 0, 1);
    remove_file(f->dir, "t10k-images-idx3-ubyte.gz");
    write_images(f->dir, "t10k-images-idx3-ubyte", 0, NTEST, NTEST, 5, 3, 1);
    expect_error(f, BL_EFORMAT, "t10k-images-idx3-ubyte", "5x3", "4x3");
}

static void missing_files(void **state)
{
    fx *f = *state;
    write_set(make_dir(f, "idx_missing"), 1, 1);
    remove_file(f->dir, "train-labels-idx1-ubyte.gz");
    expect_error(f, BL_ENOTFOUND, "train-labels-idx1-ubyte", f->dir, NULL);

    write_set(make_dir(f, "idx_half_test"), 0, 1);
    remove_file(f->dir, "t10k-labels-idx1-ubyte.gz");
    expect_error(f, BL_ENOTFOUND, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte", NULL);

    snprintf(f->dir, sizeof f->dir, "%s/no-such-dir", BATCHLAB_TEST_DATA_DIR);
    expect_error(f, BL_ENOTFOUND, "no-such-dir", "not a directory", NULL);
    f->dir[0] = '\0';
}

static void bad_options(void **state)
{
    fx *f = *state;
    write_set(make_dir(f, "idx_opts"), 0, 0);
    bl_dataset *ds;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "validation = 50",
                  open_ds(f, &ds, "validation=50", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "whole number", open_ds(f, &ds, "validation=2.5", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "validation", open_ds(f, &ds, "validation=-1", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "standard, unit or none",
                  open_ds(f, &ds, "normalize=zscore", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "limit", open_ds(f, &ds, "limit=-1", NULL));
    /* validation is drawn after the limit */
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "of 10", open_ds(f, &ds, "limit=10", "validation=10", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(shapes_and_raw_values, setup, teardown),
        cmocka_unit_test_setup_teardown(unit_and_standard, setup, teardown),
        cmocka_unit_test_setup_teardown(bytes_and_their_map, setup, teardown),
        cmocka_unit_test_setup_teardown(validation_split, setup, teardown),
        cmocka_unit_test_setup_teardown(gzip_fashion_names_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(truncated_and_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(counts_and_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_files, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Dataset plugin "cifar10": the binary version of CIFAR-10.
 *
 * Files in `dir` (the cifar-10-batches-bin/ directory of
 * https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz):
 *   data_batch_1.bin … data_batch_5.bin  training set (50,000)
 *   test_batch.bin                       test split (optional: absent → no test split)
 *   batches.meta.txt                     class names, one per line (optional)
 * Each .bin file is exactly 30,730,000 bytes: 10,000 records of 1 label byte (0..9) and 3,072
 * pixel bytes (1,024 red, 1,024 green, 1,024 blue, each 32×32 row-major), so samples are
 * [3, 32, 32] (CHW) as stored. The records are kept as read (bytes, 3,073-byte stride) and
 * gather converts through one 256-entry table per channel. "standard" normalization uses the
 * per-channel mean and std of the training split (validation excluded) for every split.
 *
 * The size check is exact (a file of any other size is refused before it is read), which is
 * what catches a truncated download or a file of the Python/Matlab versions.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>

#include "batchlab/plugin_sdk.h"
#include "common.h"

#define CIFAR_CLASSES 10
#define CIFAR_PIXELS 3072                       /* 3 × 32 × 32 */
#define CIFAR_RECORD (1 + CIFAR_PIXELS)         /* 3,073 bytes */
#define CIFAR_PER_FILE 10000
#define CIFAR_FILE_BYTES ((int64_t)CIFAR_RECORD * CIFAR_PER_FILE) /* 30,730,000 */
#define CIFAR_TRAIN_FILES 5
#define CIFAR_URL "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
#define CIFAR_NAME_MAX 64

static const char *const default_names[CIFAR_CLASSES] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

static const bl_option cifar_options[] = {
    {"dir", BL_TYPE_STRING, "/usr/share/datasets/cifar-10-batches-bin",
     "directory with data_batch_1.bin … data_batch_5.bin, test_batch.bin, batches.meta.txt"},
    {"validation", BL_TYPE_NUMBER, "0", BL_DS_HELP_VALIDATION},
    {"seed", BL_TYPE_INT, "1", BL_DS_HELP_SEED},
    {"normalize", BL_TYPE_STRING, "standard",
     "pixel scaling per channel: standard ((x/255 - mean_c)/std_c, training-split "
     "statistics), unit (x/255) or none (0..255)"},
    {"limit", BL_TYPE_INT, "0",
     "use only the first N training samples (0 = all); only the batches needed are read"},
    {NULL, 0, NULL, NULL}};

typedef struct cifar_ds {
    uint8_t *rec[2];                  /* [0] training records, [1] test records (3,073 B) */
    int64_t *map[BL_SPLIT_COUNT];     /* split position → record; NULL = identity */
    int64_t count[BL_SPLIT_COUNT];
    bl_ds_affine norm[3];             /* per channel: byte → normalized float */
    char name_buf[CIFAR_CLASSES][CIFAR_NAME_MAX];
    const char *names[CIFAR_CLASSES];
} cifar_ds;

static void cifar_close(void *handle)
{
    cifar_ds *d = handle;
    if (!d)
        return;
    free(d->rec[0]);
    free(d->rec[1]);
    for (int s = 0; s < BL_SPLIT_COUNT; s++)
        free(d->map[s]);
    free(d);
}

/* Reads the first `records` records of one batch file into dst after checking its size and
 * labels. */
static int read_batch(bl_ctx *ctx, const char *path, uint8_t *dst, int64_t records)
{
    int64_t size;
    int rc;
    FILE *f = bl_ds_fopen_regular(ctx, path, &size, &rc);
    if (!f) {
        if (rc == BL_ENOTFOUND)
            return bl_error(ctx, BL_ENOTFOUND,
                            "missing %s: download and unpack " CIFAR_URL
                            " and point dir at its cifar-10-batches-bin directory",
                            path);
        return rc;
    }
    if (size != CIFAR_FILE_BYTES) {
        fclose(f);
        return bl_error(ctx, BL_EFORMAT,
                        "%s: %lld bytes, expected exactly %lld (10000 records of "
                        "3073 bytes: 1 label byte and 3072 pixel bytes); a truncated download "
                        "or not the binary version (" CIFAR_URL ")",
                        path, (long long)size, (long long)CIFAR_FILE_BYTES);
    }
    size_t want = (size_t)records * CIFAR_RECORD;
    size_t got = fread(dst, 1, want, f);
    int err = ferror(f);
    fclose(f);
    if (got != want)
        return bl_error(ctx, err ? BL_EIO : BL_EFORMAT,
                        "%s: byte offset %zu: %s while reading %zu bytes", path, got,
                        err ? "read error" : "unexpected end of file", want);
    for (int64_t r = 0; r < records; r++) {
        uint8_t label = dst[(size_t)r * CIFAR_RECORD];
        if (label >= CIFAR_CLASSES)
            return bl_error(ctx, BL_EFORMAT,
                            "%s: byte offset %lld: label %u of record %lld out of "
                            "range: expected 0..9",
                            path, (long long)(r * CIFAR_RECORD), label, (long long)r);
    }
    return BL_OK;
}

/* Class names from batches.meta.txt when present: the first 10 non-empty lines (trailing
 * whitespace removed). A file with fewer than 10 names is malformed. */
static int read_meta(bl_ctx *ctx, const char *path, cifar_ds *d)
{
    for (int c = 0; c < CIFAR_CLASSES; c++)
        d->names[c] = default_names[c];
    int64_t size;
    int rc;
    FILE *f = bl_ds_fopen_regular(ctx, path, &size, &rc);
    if (!f) {
        if (rc != BL_ENOTFOUND)
            return rc;
        bl_clear_error(ctx); /* optional: the default names */
        return BL_OK;
    }
    char line[256];
    int found = 0;
    long lineno = 0;
    while (found < CIFAR_CLASSES && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            fclose(f);
            return bl_error(ctx, BL_EFORMAT, "%s: line %ld: longer than %zu "
                            "characters; expected one class name per line", path, lineno,
                            sizeof line - 2);
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                         line[n - 1] == '\t'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        if (n >= CIFAR_NAME_MAX) {
            fclose(f);
            return bl_error(ctx, BL_EFORMAT, "%s: line %ld: class name of %zu "
                            "characters; expected at most %d", path, lineno, n,
                            CIFAR_NAME_MAX - 1);
        }
        memcpy(d->name_buf[found], line, n + 1);
        found++;
    }
    int err = ferror(f);
    fclose(f);
    if (err)
        return bl_error(ctx, BL_EIO, "%s: read error", path);
    if (found < CIFAR_CLASSES)
        return bl_error(ctx, BL_EFORMAT, "%s: line %ld: expected 10 class names (one "
                        "per line), found %d", path, lineno + 1, found);
    for (int c = 0; c < CIFAR_CLASSES; c++)
        d->names[c] = d->name_buf[c];
    return BL_OK;
}

static int cifar_open(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    const char *dir = bl_config_string(opts, "dir");
    double validation = bl_config_number(opts, "validation");
    uint64_t seed = (uint64_t)bl_config_int(opts, "seed");
    int64_t limit = bl_config_int(opts, "limit");
    bl_ds_norm norm = BL_DS_NORM_STANDARD;
    int rc = bl_ds_parse_norm(ctx, bl_config_string(opts, "normalize"), &norm);
    if (rc != BL_OK)
        return rc;
    if (limit < 0)
        return bl_error(ctx, BL_EOPTION, "limit = %lld: expected 0 (all) or a count",
                        (long long)limit);
    if (!dir || !*dir)
        return bl_error(ctx, BL_EOPTION, "dir is empty: give the directory of the "
                        "binary batches (" CIFAR_URL ")");

    int64_t n_train = (int64_t)CIFAR_TRAIN_FILES * CIFAR_PER_FILE;
    if (limit > 0 && limit < n_train)
        n_train = limit;
    size_t cap = strlen(dir) + 32;
    char *path = malloc(cap);
    cifar_ds *d = calloc(1, sizeof *d);
    if (!path || !d) {
        free(path);
        free(d);
        return bl_error(ctx, BL_ENOMEM, "no memory");
    }
    d->rec[0] = malloc((size_t)n_train * CIFAR_RECORD);
    if (!d->rec[0]) {
        rc = bl_error(ctx, BL_ENOMEM, "no memory for %lld training records",
                      (long long)n_train);
        goto fail;
    }
    for (int b = 0; b * (int64_t)CIFAR_PER_FILE < n_train; b++) {
        int64_t first = (int64_t)b * CIFAR_PER_FILE;
        int64_t records = n_train - first < CIFAR_PER_FILE ? n_train - first : CIFAR_PER_FILE;
        snprintf(path, cap, "%s/data_batch_%d.bin", dir, b + 1);
        rc = read_batch(ctx, path, d->rec[0] + (size_t)first * CIFAR_RECORD, records);
        if (rc != BL_OK)
            goto fail;
    }
    snprintf(path, cap, "%s/test_batch.bin", dir);
    struct stat st;
    if (stat(path, &st) == 0) {
        d->rec[1] = malloc((size_t)CIFAR_FILE_BYTES);
        if (!d->rec[1]) {
            rc = bl_error(ctx, BL_ENOMEM, "no memory for the test records");
            goto fail;
        }
        rc = read_batch(ctx, path, d->rec[1], CIFAR_PER_FILE);
        if (rc != BL_OK)
            goto fail;
        d->count[BL_SPLIT_TEST] = CIFAR_PER_FILE;
    }
    snprintf(path, cap, "%s/batches.meta.txt", dir);
    rc = read_meta(ctx, path, d);
    if (rc != BL_OK)
        goto fail;

    int64_t n_val;
    rc = bl_ds_validation_count(ctx, validation, n_train, &n_val);
    if (rc == BL_OK)
        rc = bl_ds_split(ctx, n_train, n_val, seed, &d->map[BL_SPLIT_TRAIN],
                         &d->map[BL_SPLIT_VALIDATION]);
    if (rc != BL_OK)
        goto fail;
    d->count[BL_SPLIT_TRAIN] = n_train - n_val;
    d->count[BL_SPLIT_VALIDATION] = n_val;

    for (int c = 0; c < 3; c++) {
        double mean = 0.0, std = 1.0;
        if (norm == BL_DS_NORM_STANDARD) {
            uint64_t hist[256] = {0};
            for (int64_t i = 0; i < d->count[BL_SPLIT_TRAIN]; i++) {
                const uint8_t *p = d->rec[0] +
                                   (size_t)bl_ds_row(d->map[BL_SPLIT_TRAIN], i) * CIFAR_RECORD +
                                   1 + (size_t)c * 1024;
                for (int j = 0; j < 1024; j++)
                    hist[p[j]]++;
            }
            bl_ds_hist_stats(hist, &mean, &std);
        }
        d->norm[c] = bl_ds_norm_affine(norm, mean, std);
    }
    free(path);
    *handle = d;
    return BL_OK;

fail:
    free(path);
    cifar_close(d);
    return rc;
}

static void cifar_info(void *handle, bl_data_info *out)
{
    const cifar_ds *d = handle;
    bl_data_info_reset(out);
    out->sample.ndim = 3;
    out->sample.dim[0] = 3;
    out->sample.dim[1] = 32;
    out->sample.dim[2] = 32;
    out->classes = CIFAR_CLASSES;
    out->target_dim = 1;
    for (int s = 0; s < BL_SPLIT_COUNT; s++)
        out->count[s] = d->count[s];
    out->class_names = d->names;
}

static int cifar_gather(void *handle, bl_ctx *ctx, bl_split split, const int64_t *idx,
                        int64_t n, float *x, void *y)
{
    const cifar_ds *d = handle;
    if ((unsigned)split >= BL_SPLIT_COUNT)
        return bl_error(ctx, BL_EINVAL, "unknown split %d", (int)split);
    const uint8_t *base = d->rec[split == BL_SPLIT_TEST];
    int32_t *labels = y;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= d->count[split])
            return bl_error(ctx, BL_EINVAL, "sample %lld out of range for the %s "
                            "split of %lld", (long long)idx[i], bl_ds_split_name(split),
                            (long long)d->count[split]);
        const uint8_t *r = base + (size_t)bl_ds_row(d->map[split], idx[i]) * CIFAR_RECORD;
        if (x) {
            float *o = x + (size_t)i * CIFAR_PIXELS;
            for (int c = 0; c < 3; c++)
                bl_ds_bytes_to_floats(r + 1 + c * 1024, o + c * 1024, 1024, d->norm[c]);
        }
        if (labels)
            labels[i] = r[0];
    }
    return BL_OK;
}

static const bl_dataset_ops cifar_ops = {sizeof(bl_dataset_ops), cifar_open, cifar_close,
                                         cifar_info, cifar_gather, NULL, NULL};

static const bl_plugin cifar_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_DATASET, "cifar10", "1.0",
    "CIFAR-10 binary batches (32x32 colour images, 10 classes) with a seeded validation split",
    cifar_options, &cifar_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index);
BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &cifar_plugin : NULL;
}

/* Dataset plugin "idx": MNIST and Fashion-MNIST in the IDX format, plain or gzipped.
 *
 * Files in `dir` (each plain or gzip; gzip is recognized by its magic bytes 1f 8b, not by the
 * name; the names may also end in .gz, and "train-images.idx3-ubyte" is accepted for
 * "train-images-idx3-ubyte"):
 *   train-images-idx3-ubyte  magic 0x00000803, count, H, W, then count×H×W bytes
 *   train-labels-idx1-ubyte  magic 0x00000801, count, then count bytes (0..9)
 *   t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte: the test split (optional: both absent →
 *   no test split).
 * Pixels stay bytes; gather turns them into floats with an affine map (vectorized). The validation
 * split is drawn from the training file (after `limit`), and the "standard" normalization uses
 * the mean and std of the training split (validation excluded) for every split.
 *
 * With `limit` = N > 0 only the first N training images and labels are read (the rest of the
 * files is neither decompressed nor checked); the test files are always read whole.
 *
 * Bounds: a file must be a regular file (opened non-blocking and checked on the descriptor, so
 * a FIFO never hangs); what is read is what the header promises, and a header promising more
 * than the file can hold (plain: its size; gzip: 1032 times its size, deflate's best ratio) is
 * refused before anything is allocated, as is a gzip file whose data would inflate beyond
 * max_decompressed_mb (default 1024 MiB).
 *
 * Samples are [1, H, W]; 10 classes, named after Fashion-MNIST when the directory name
 * contains "fashion" (any case), else "0".."9".
 *
 * Loading a whole gzip file inflates it in one call with libdeflate when the build found it
 * (about twice zlib's speed; the compressed file is then in memory at the same time as the
 * data), else with zlib straight into the final buffer. zlib stays the reference: it always
 * reads the header, serves `limit`, and whenever libdeflate does not produce exactly the
 * declared data it reads the rest itself, so every refusal and its message are zlib's.
 *
 * A gzip file inflating to 1 MiB or more is kept decompressed in the per-user cache (cache.h:
 * $BATCHLAB_CACHE, $XDG_CACHE_HOME/batchlab or ~/.cache/batchlab; checked against the
 * source's size, times and inode and the data's CRC-32); the next open reads that copy. The
 * real Fashion-MNIST (60,000 + 10,000) then opens in a few hundredths of a second (bench_idx;
 * docs/loading.md).
 */
#define _POSIX_C_SOURCE 200809L
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* realpath (cache.h) */
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>
#include <zlib.h>

#include "batchlab/plugin_sdk.h"
#include "common.h"
#include "cache.h"

#define IDX_CLASSES 10
/* Deflate cannot compress better than about 1032:1; a header claiming more data than that
 * from the file's size is rejected before anything is allocated. */
#define IDX_MAX_RATIO 1032
/* Files inflating to less than this are not worth a cache entry (they inflate in ~1 ms). */
#define IDX_CACHE_MIN (1 << 20)

static const char *const fashion_names[IDX_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
static const char *const digit_names[IDX_CLASSES] = {"0", "1", "2", "3", "4",
                                                     "5", "6", "7", "8", "9"};

static const bl_option idx_options[] = {
    {"dir", BL_TYPE_STRING, "/usr/share/datasets/fashion-mnist",
     "directory with train-{images-idx3,labels-idx1}-ubyte[.gz] and optionally t10k-*"},
    {"validation", BL_TYPE_NUMBER, "0", BL_DS_HELP_VALIDATION},
    {"seed", BL_TYPE_INT, "1", BL_DS_HELP_SEED},
    {"normalize", BL_TYPE_STRING, "standard", BL_DS_HELP_NORMALIZE},
    {"limit", BL_TYPE_INT, "0", "use only the first N training samples (0 = all)"},
    {"max_decompressed_mb", BL_TYPE_INT, "1024",
     "largest data a gzip file may inflate to, in MiB (a bound against gzip bombs)"},
    {NULL, 0, NULL, NULL}};

/* ---- one IDX file ----------------------------------------------------------------------- */

typedef struct idx_array {
    const char *path;
    int gzip;         /* the file starts with the gzip magic */
    uint32_t count;   /* items the header declares */
    uint32_t h, w;    /* item dimensions (images only) */
    int64_t n;        /* items read into data (count, or fewer with a limit) */
    size_t header;    /* header bytes: 8 (labels) or 16 (images) */
    const uint8_t *data; /* n items, inside mem */
    uint8_t *mem;        /* the malloc'd block holding data: the whole file when inflated at
                          * once or read from the cache, else the data alone */
} idx_array;

static void idx_array_free(idx_array *a)
{
    free(a->mem);
    a->mem = NULL;
    a->data = NULL;
}

static const char *decompressed(const idx_array *a)
{
    return a->gzip ? " (decompressed)" : "";
}

/* BL_EFORMAT "<file>: byte offset <off>[ (decompressed)]: <what>". */
static int idx_format_error(bl_ctx *ctx, const idx_array *a, int64_t off, const char *fmt, ...)
    BL_PRINTF(4, 5);
static int idx_format_error(bl_ctx *ctx, const idx_array *a, int64_t off, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bl_error(ctx, BL_EFORMAT, "%s: byte offset %lld%s: %s", a->path, (long long)off,
                    decompressed(a), what);
}

/* Reads up to n bytes and returns how many were read (< n at the end of the data); *corrupt
 * is set when zlib reported corrupt data after those bytes (zlib inflates ahead of the reader,
 * so the offset of corrupt data is only where reading stood). */
static int64_t gz_read_all(gzFile gz, uint8_t *buf, int64_t n, int *corrupt)
{
    int64_t got = 0;
    *corrupt = 0;
    while (got < n) {
        int64_t want = n - got;
        if (want > (1 << 30))
            want = 1 << 30;
        int r = gzread(gz, buf + got, (unsigned)want);
        if (r < 0) {
            *corrupt = 1;
            break;
        }
        if (r == 0)
            break;
        got += r;
    }
    return got;
}

static const char *gz_message(gzFile gz)
{
    int errnum = 0;
    const char *m = gzerror(gz, &errnum);
    if (m && m[0] == '<') { /* gzdopen's "<fd:3>: " prefix: the caller names the file */
        const char *c = strstr(m, ": ");
        if (c)
            m = c + 2;
    }
    return m && *m ? m : "read error";
}

#ifdef BATCHLAB_HAVE_LIBDEFLATE
/* The whole gzip file (disk bytes at fd) inflated by libdeflate, member after member, into a
 * new buffer of exactly `end` bytes. NULL when it does not inflate to exactly that (corrupt,
 * short, longer, trailing bytes) or memory is short: zlib then reads it and says what is
 * wrong. */
static uint8_t *idx_inflate_whole(int fd, int64_t disk, int64_t end)
{
    uint8_t *in = bl_alloc_large((size_t)disk);
    uint8_t *out = bl_alloc_large((size_t)end);
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    int ok = in && out && d && bl_ds_read_full(fd, in, (size_t)disk, 0) == 0;
    size_t ipos = 0, opos = 0;
    while (ok && ipos < (size_t)disk) {
        size_t used = 0, made = 0;
        ok = libdeflate_gzip_decompress_ex(d, in + ipos, (size_t)disk - ipos, out + opos,
                                           (size_t)end - opos, &used,
                                           &made) == LIBDEFLATE_SUCCESS &&
             used > 0;
        ipos += used;
        opos += made;
    }
    ok = ok && opos == (size_t)end;
    libdeflate_free_decompressor(d);
    free(in);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}
#endif

/* Loads one IDX file of unsigned bytes with `ndim` dimensions (1: labels, 3: images), at most
 * `limit` items when limit > 0, and from a gzip file at most max_bytes bytes of data. On
 * success a->data holds a->n items. */
static int idx_load(bl_ctx *ctx, const char *path, int ndim, int64_t limit, int64_t max_bytes,
                    idx_array *a)
{
    const char *kind = ndim == 1 ? "labels" : "images";
    memset(a, 0, sizeof *a);
    a->path = path;
    a->header = 4 + 4 * (size_t)ndim;

    int fd;
    int64_t disk;
    int rc = bl_ds_open_regular(ctx, path, &fd, &disk);
    if (rc != BL_OK)
        return rc;
    unsigned char magic[2] = {0, 0};
    if (pread(fd, magic, 2, 0) < 0) {
        int e = errno;
        close(fd);
        return bl_error(ctx, BL_EIO, "cannot read %s: %s", path, strerror(e));
    }
    a->gzip = magic[0] == 0x1f && magic[1] == 0x8b;
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return bl_error(ctx, BL_ENOMEM, "%s: no memory for the zlib reader", path);
    }
    gzbuffer(gz, 1u << 18);

    unsigned char hdr[16];
    int corrupt;
    int64_t got = gz_read_all(gz, hdr, (int64_t)a->header, &corrupt);
    if (corrupt) {
        rc = idx_format_error(ctx, a, got, "corrupt gzip data: %s", gz_message(gz));
        goto done;
    }
    if (got < (int64_t)a->header) {
        rc = idx_format_error(ctx, a, got, "truncated header: expected %zu bytes (IDX %s), "
                              "found %lld", a->header, kind, (long long)got);
        goto done;
    }
    uint32_t m = bl_ds_be32(hdr);
    if (hdr[0] != 0 || hdr[1] != 0) {
        rc = idx_format_error(ctx, a, 0, "expected the IDX magic 0x0000080%d (%s), found "
                              "0x%08x: not an IDX file", ndim, kind, (unsigned)m);
        goto done;
    }
    if (hdr[2] != 0x08) {
        rc = idx_format_error(ctx, a, 2, "type byte 0x%02x: expected 0x08 (unsigned byte; "
                              "magic 0x0000080%d for %s)", hdr[2], ndim, kind);
        goto done;
    }
    if (hdr[3] != ndim) {
        rc = idx_format_error(ctx, a, 3, "%d dimensions: expected %d (magic 0x0000080%d for "
                              "%s)", hdr[3], ndim, ndim, kind);
        goto done;
    }
    a->count = bl_ds_be32(hdr + 4);
    uint64_t item = 1;
    if (ndim == 3) {
        a->h = bl_ds_be32(hdr + 8);
        a->w = bl_ds_be32(hdr + 12);
        if (a->h == 0 || a->w == 0) {
            rc = idx_format_error(ctx, a, a->h == 0 ? 8 : 12, "image size %ux%u: expected "
                                  "both dimensions >= 1", a->h, a->w);
            goto done;
        }
        item = (uint64_t)a->h * a->w;
    }
    /* count < 2^32 and item < 2^64: check the whole file's promise before forming it, with
     * or without a limit (a header that cannot describe any file is refused either way, and
     * every product below then fits in int64_t). */
    if (a->count > 0 && item > (uint64_t)(INT64_MAX / 2) / a->count) {
        rc = idx_format_error(ctx, a, 4, "the header declares %u %s of %ux%u: impossibly "
                              "large", a->count, kind, a->h, a->w);
        goto done;
    }
    int64_t declared = (int64_t)a->count * (int64_t)item; /* data bytes of the whole file */
    a->n = (limit > 0 && limit < (int64_t)a->count) ? limit : (int64_t)a->count;
    int64_t bytes = a->n * (int64_t)item;
    int64_t end = (int64_t)a->header + bytes;
    int64_t capacity = a->gzip ? (disk > (INT64_MAX - 1024) / IDX_MAX_RATIO
                                      ? INT64_MAX
                                      : disk * IDX_MAX_RATIO + 1024)
                               : disk;
    if (end > capacity) {
        rc = idx_format_error(ctx, a, a->gzip ? (int64_t)a->header : disk,
                              "truncated: the header declares %u %s (%lld data bytes after "
                              "the %zu-byte header), but the %s file has only %lld bytes",
                              a->count, kind, (long long)declared, a->header,
                              a->gzip ? "gzip" : "plain", (long long)disk);
        goto done;
    }
    if (a->gzip && bytes > max_bytes) {
        rc = idx_format_error(ctx, a, 4, "the header declares %u %s (%lld data bytes to "
                              "read after decompression), more than max_decompressed_mb = "
                              "%lld allows; raise max_decompressed_mb if the file is genuine "
                              "(a file that inflates far beyond its size may be a gzip bomb)",
                              a->count, kind, (long long)bytes,
                              (long long)(max_bytes >> 20));
        goto done;
    }
    /* The whole of a gzip file: from the cache, else inflated at once (and then cached). */
    int whole = a->gzip && a->n == (int64_t)a->count;
    bl_ds_cache cache;
    int to_cache = whole && end >= IDX_CACHE_MIN && bl_ds_cache_init(&cache, path, fd);
    if (to_cache && (a->mem = bl_ds_cache_read(&cache, (size_t)end, hdr, a->header))) {
        a->data = a->mem + a->header;
        goto done;
    }
    uint8_t *buf;
#ifdef BATCHLAB_HAVE_LIBDEFLATE
    if (whole && (buf = idx_inflate_whole(fd, disk, end))) {
        a->mem = buf;
        a->data = buf + a->header;
        if (memcmp(buf, hdr, a->header) == 0)
            goto loaded;
        idx_array_free(a);
    }
#endif
    a->mem = buf = bl_alloc_large((size_t)bytes);
    a->data = buf;
    if (!buf) {
        rc = bl_error(ctx, BL_ENOMEM, "%s: no memory for %lld bytes of %s", path,
                      (long long)bytes, kind);
        goto done;
    }
    got = gz_read_all(gz, buf, bytes, &corrupt);
    if (corrupt) {
        rc = idx_format_error(ctx, a, (int64_t)a->header + got, "corrupt gzip data: %s",
                              gz_message(gz));
        goto done;
    }
    if (got < bytes) {
        if (ndim == 3)
            rc = idx_format_error(ctx, a, (int64_t)a->header + got,
                                  "truncated: expected %u images of %ux%u (%lld bytes after "
                                  "the header), the data ends after %lld",
                                  a->count, a->h, a->w, (long long)declared,
                                  (long long)got);
        else
            rc = idx_format_error(ctx, a, (int64_t)a->header + got,
                                  "truncated: expected %u labels, the data ends after %lld",
                                  a->count, (long long)got);
        goto done;
    }
    if (a->n == (int64_t)a->count) {
        /* Read on to the end: zlib then checks the gzip CRC, and extra bytes mean the header
         * does not describe the file. */
        unsigned char extra;
        int r = gzread(gz, &extra, 1);
        int errnum = 0;
        gzerror(gz, &errnum);
        if (r < 0 || (r == 0 && errnum != Z_OK)) {
            rc = idx_format_error(ctx, a, end, "corrupt or truncated gzip stream: %s",
                                  gz_message(gz));
            goto done;
        }
        if (r > 0) {
            rc = idx_format_error(ctx, a, end, "expected the end of the file after %u %s, "
                                  "found more data", a->count, kind);
            goto done;
        }
    }
#ifdef BATCHLAB_HAVE_LIBDEFLATE
loaded:
#endif
    if (to_cache)
        bl_ds_cache_write(&cache, fd, a->mem == a->data ? hdr : a->mem, a->header, a->data,
                          (size_t)bytes);
done:
    gzclose(gz);
    if (rc != BL_OK)
        idx_array_free(a);
    return rc;
}

/* Every label < IDX_CLASSES. */
static int idx_check_labels(bl_ctx *ctx, const idx_array *lab)
{
    for (int64_t i = 0; i < lab->n; i++)
        if (lab->data[i] >= IDX_CLASSES)
            return idx_format_error(ctx, lab, (int64_t)lab->header + i,
                                    "label %u of item %lld out of range: expected 0..%d",
                                    lab->data[i], (long long)i, IDX_CLASSES - 1);
    return BL_OK;
}

/* ---- finding the files -------------------------------------------------------------------- */

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Writes into buf the first existing spelling of `base` ("train-images", "idx3") in dir, or
 * the canonical name when none exists; returns whether it exists. */
static int find_file(const char *dir, const char *base, const char *type, char *buf,
                     size_t cap)
{
    static const char *const forms[] = {"%s/%s-%s-ubyte", "%s/%s-%s-ubyte.gz",
                                         "%s/%s.%s-ubyte", "%s/%s.%s-ubyte.gz"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        snprintf(buf, cap, forms[i], dir, base, type);
        if (exists(buf))
            return 1;
    }
    snprintf(buf, cap, forms[0], dir, base, type);
    return 0;
}

static int contains_fashion(const char *dir)
{
    static const char word[] = "fashion";
    size_t n = strlen(dir), k = sizeof word - 1;
    for (size_t i = 0; i + k <= n; i++) {
        size_t j = 0;
        while (j < k && tolower((unsigned char)dir[i + j]) == word[j])
            j++;
        if (j == k)
            return 1;
    }
    return 0;
}

/* ---- the dataset -------------------------------------------------------------------------- */

typedef struct idx_ds {
    const uint8_t *pix[2];            /* [0] training file, [1] test file: rows of h×w bytes */
    const uint8_t *lab[2];            /* labels of those rows */
    uint8_t *mem[4];                  /* the blocks holding pix[0], lab[0], pix[1], lab[1] */
    int64_t *map[BL_SPLIT_COUNT];     /* split position → row; NULL = identity */
    int64_t count[BL_SPLIT_COUNT];
    int64_t h, w;
    bl_ds_affine norm;                /* byte → normalized float */
    const char *const *names;
} idx_ds;

static void idx_close(void *handle)
{
    idx_ds *d = handle;
    if (!d)
        return;
    for (int i = 0; i < 4; i++)
        free(d->mem[i]);
    for (int s = 0; s < BL_SPLIT_COUNT; s++)
        free(d->map[s]);
    free(d);
}

/* The byte histogram of the training split's images. Four tables of 32-bit counters, so that
 * neighbouring bytes do not wait on each other's counter (a third of one table's time on
 * Fashion-MNIST, where the histogram is most of a cached open), added into 64-bit counts
 * before any can wrap. */
static void idx_train_hist(const idx_ds *d, uint64_t hist[256])
{
    enum { CHUNK = 1 << 28, FLUSH = 1 << 30 };
    uint32_t t[4][256];
    memset(t, 0, sizeof t);
    memset(hist, 0, 256 * sizeof *hist);
    size_t px = (size_t)(d->h * d->w), since = 0;
    for (int64_t i = 0; i < d->count[BL_SPLIT_TRAIN]; i++) {
        const uint8_t *row = d->pix[0] + (size_t)bl_ds_row(d->map[BL_SPLIT_TRAIN], i) * px;
        for (size_t off = 0; off < px; off += CHUNK) {
            const uint8_t *p = row + off;
            size_t n = px - off < CHUNK ? px - off : CHUNK, j = 0;
            for (; j + 4 <= n; j += 4) {
                t[0][p[j]]++;
                t[1][p[j + 1]]++;
                t[2][p[j + 2]]++;
                t[3][p[j + 3]]++;
            }
            for (; j < n; j++)
                t[0][p[j]]++;
            since += n;
            if (since >= FLUSH) {
                for (int v = 0; v < 256; v++)
                    hist[v] += (uint64_t)t[0][v] + t[1][v] + t[2][v] + t[3][v];
                memset(t, 0, sizeof t);
                since = 0;
            }
        }
    }
    for (int v = 0; v < 256; v++)
        hist[v] += (uint64_t)t[0][v] + t[1][v] + t[2][v] + t[3][v];
}

/* Loads an images/labels pair and checks that they agree. */
static int load_pair(bl_ctx *ctx, const char *ipath, const char *lpath, int64_t limit,
                     int64_t max_bytes, idx_array *img, idx_array *lab)
{
    int rc = idx_load(ctx, ipath, 3, limit, max_bytes, img);
    if (rc == BL_OK)
        rc = idx_load(ctx, lpath, 1, limit, max_bytes, lab);
    if (rc == BL_OK && img->count != lab->count)
        rc = bl_error(ctx, BL_EFORMAT,
                      "count mismatch: %s declares %u images (byte offset 4) but %s "
                      "declares %u labels (byte offset 4)",
                      ipath, img->count, lpath, lab->count);
    if (rc == BL_OK)
        rc = idx_check_labels(ctx, lab);
    if (rc != BL_OK) {
        idx_array_free(img);
        idx_array_free(lab);
    }
    return rc;
}

static int idx_open(bl_ctx *ctx, const bl_config *opts, void **handle)
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
    int64_t max_mb = bl_config_int(opts, "max_decompressed_mb");
    if (max_mb < 1 || max_mb > (INT64_MAX >> 21))
        return bl_error(ctx, BL_EOPTION, "max_decompressed_mb = %lld: expected a size in MiB "
                        ">= 1", (long long)max_mb);
    int64_t max_bytes = max_mb << 20;
    if (!dir || !*dir)
        return bl_error(ctx, BL_EOPTION, "dir is empty: give the directory of the IDX "
                        "files");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return bl_error(ctx, BL_ENOTFOUND, "dir %s is not a directory (Fashion-MNIST on "
                        "Debian: apt-get install dataset-fashion-mnist)", dir);

    size_t cap = strlen(dir) + 64;
    char *paths = malloc(4 * cap);
    idx_ds *d = calloc(1, sizeof *d);
    if (!paths || !d) {
        free(paths);
        free(d);
        return bl_error(ctx, BL_ENOMEM, "no memory");
    }
    char *tri = paths, *trl = paths + cap, *tei = paths + 2 * cap, *tel = paths + 3 * cap;
    int have_tri = find_file(dir, "train-images", "idx3", tri, cap);
    int have_trl = find_file(dir, "train-labels", "idx1", trl, cap);
    int have_tei = find_file(dir, "t10k-images", "idx3", tei, cap);
    int have_tel = find_file(dir, "t10k-labels", "idx1", tel, cap);
    idx_array img = {0}, lab = {0}, timg = {0}, tlab = {0};
    if (!have_tri || !have_trl) {
        rc = bl_error(ctx, BL_ENOTFOUND,
                      "missing %s[.gz] in %s: expected MNIST/Fashion-MNIST IDX files "
                      "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-*, plain or "
                      ".gz)", !have_tri ? "train-images-idx3-ubyte" : "train-labels-idx1-ubyte",
                      dir);
        goto fail;
    }
    if (have_tei != have_tel) {
        rc = bl_error(ctx, BL_ENOTFOUND, "%s exists but %s[.gz] is missing: the test "
                      "split needs both (or neither)", have_tei ? tei : tel,
                      have_tei ? "t10k-labels-idx1-ubyte" : "t10k-images-idx3-ubyte");
        goto fail;
    }
    rc = load_pair(ctx, tri, trl, limit, max_bytes, &img, &lab);
    if (rc != BL_OK)
        goto fail;
    if (img.n < 1) {
        rc = bl_error(ctx, BL_EFORMAT, "%s: byte offset 4: the training file holds no "
                      "images", tri);
        goto fail;
    }
    if (have_tei) {
        rc = load_pair(ctx, tei, tel, 0, max_bytes, &timg, &tlab);
        if (rc != BL_OK)
            goto fail;
        if (timg.h != img.h || timg.w != img.w) {
            rc = bl_error(ctx, BL_EFORMAT, "%s: byte offset 8: images of %ux%u, but the "
                          "training images (%s) are %ux%u", tei, timg.h, timg.w, tri, img.h,
                          img.w);
            goto fail;
        }
    }
    d->h = img.h;
    d->w = img.w;
    d->pix[0] = img.data;
    d->lab[0] = lab.data;
    d->pix[1] = timg.data;
    d->lab[1] = tlab.data;
    idx_array *moved[4] = {&img, &lab, &timg, &tlab}; /* the order of d->mem */
    for (int i = 0; i < 4; i++) {
        d->mem[i] = moved[i]->mem;
        moved[i]->mem = NULL;
    }
    d->names = contains_fashion(dir) ? fashion_names : digit_names;

    int64_t n_val;
    rc = bl_ds_validation_count(ctx, validation, img.n, &n_val);
    if (rc == BL_OK)
        rc = bl_ds_split(ctx, img.n, n_val, seed, &d->map[BL_SPLIT_TRAIN],
                         &d->map[BL_SPLIT_VALIDATION]);
    if (rc != BL_OK)
        goto fail;
    d->count[BL_SPLIT_TRAIN] = img.n - n_val;
    d->count[BL_SPLIT_VALIDATION] = n_val;
    d->count[BL_SPLIT_TEST] = have_tei ? timg.n : 0;

    double mean = 0.0, std = 1.0;
    if (norm == BL_DS_NORM_STANDARD) {
        uint64_t hist[256];
        idx_train_hist(d, hist);
        bl_ds_hist_stats(hist, &mean, &std);
    }
    d->norm = bl_ds_norm_affine(norm, mean, std);
    free(paths);
    *handle = d;
    return BL_OK;

fail:
    idx_array_free(&img);
    idx_array_free(&lab);
    idx_array_free(&timg);
    idx_array_free(&tlab);
    free(paths);
    idx_close(d);
    return rc;
}

static void idx_info(void *handle, bl_data_info *out)
{
    const idx_ds *d = handle;
    bl_data_info_reset(out);
    out->sample.ndim = 3;
    out->sample.dim[0] = 1;
    out->sample.dim[1] = d->h;
    out->sample.dim[2] = d->w;
    out->classes = IDX_CLASSES;
    out->target_dim = 1;
    for (int s = 0; s < BL_SPLIT_COUNT; s++)
        out->count[s] = d->count[s];
    out->class_names = d->names;
}

/* Asks for the stored row of sample i (of `split`, an index checked or not) to be brought into
 * the cache. */
static void prefetch_sample(const idx_ds *d, bl_split split, int64_t i)
{
    size_t px = (size_t)(d->h * d->w);
    if (i >= 0 && i < d->count[split])
        bl_ds_prefetch(d->pix[split == BL_SPLIT_TEST] + (size_t)bl_ds_row(d->map[split], i) * px,
                       px);
}

static int idx_gather(void *handle, bl_ctx *ctx, bl_split split, const int64_t *idx, int64_t n,
                      float *x, void *y)
{
    const idx_ds *d = handle;
    if ((unsigned)split >= BL_SPLIT_COUNT)
        return bl_error(ctx, BL_EINVAL, "unknown split %d", (int)split);
    int src = split == BL_SPLIT_TEST;
    const int64_t *map = d->map[split];
    size_t px = (size_t)(d->h * d->w);
    int32_t *labels = y;
    /* The first rows are asked for before the loop, each later one BL_DS_PREFETCH_AHEAD samples
     * before its turn. The engine gathers in pieces of about ten samples between kernels; when
     * a piece's first rows were not asked for ahead, most of its samples waited for memory
     * (480 against 290 ns a sample measured in bl.train, bench_engine --batches 128). */
    for (int64_t i = 0; x && i < n && i < BL_DS_PREFETCH_AHEAD; i++)
        prefetch_sample(d, split, idx[i]);
    for (int64_t i = 0; i < n; i++) {
        if (x && i + BL_DS_PREFETCH_AHEAD < n)
            prefetch_sample(d, split, idx[i + BL_DS_PREFETCH_AHEAD]);
        if (idx[i] < 0 || idx[i] >= d->count[split])
            return bl_error(ctx, BL_EINVAL, "sample %lld out of range for the %s split "
                            "of %lld", (long long)idx[i], bl_ds_split_name(split),
                            (long long)d->count[split]);
        int64_t row = bl_ds_row(map, idx[i]);
        const uint8_t *p = d->pix[src] + (size_t)row * px;
        if (x) {
            bl_ds_bytes_to_floats(p, x + (size_t)i * px, px, d->norm);
        }
        if (labels)
            labels[i] = d->lab[src][row];
    }
    return BL_OK;
}

/* The stored bytes of the samples, and the map gather applies to them. */
static int idx_gather_bytes(void *handle, bl_ctx *ctx, bl_split split, const int64_t *idx,
                            int64_t n, uint8_t *x, void *y, float *scale, float *offset)
{
    const idx_ds *d = handle;
    if ((unsigned)split >= BL_SPLIT_COUNT)
        return bl_error(ctx, BL_EINVAL, "unknown split %d", (int)split);
    int src = split == BL_SPLIT_TEST;
    size_t px = (size_t)(d->h * d->w);
    int32_t *labels = y;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= d->count[split])
            return bl_error(ctx, BL_EINVAL, "sample %lld out of range for the %s split "
                            "of %lld", (long long)idx[i], bl_ds_split_name(split),
                            (long long)d->count[split]);
        int64_t row = bl_ds_row(d->map[split], idx[i]);
        memcpy(x + (size_t)i * px, d->pix[src] + (size_t)row * px, px);
        labels[i] = d->lab[src][row];
    }
    *scale = d->norm.scale;
    *offset = d->norm.offset;
    return BL_OK;
}

static const bl_dataset_ops idx_ops = {sizeof(bl_dataset_ops), idx_open, idx_close, idx_info,
                                       idx_gather, NULL, idx_gather_bytes};

static const bl_plugin idx_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_DATASET, "idx", "1.0",
    "MNIST / Fashion-MNIST IDX files (plain or gzip) with a seeded validation split",
    idx_options, &idx_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index);
BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &idx_plugin : NULL;
}

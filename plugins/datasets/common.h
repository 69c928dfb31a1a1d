/* Helpers shared by the dataset plugins: option checks, the seeded train/validation split,
 * byte normalization tables, big-endian reads and opening a data file.
 *
 * Header-only on purpose: every plugins/datasets/<name>.c becomes its own shared object, so shared
 * code must not live in a .c file. Everything here is `static inline` and prefixed bl_ds_.
 * A source including this header defines _POSIX_C_SOURCE (for fstat/fdopen) before any
 * system header.
 */
#ifndef BATCHLAB_PLUGINS_DATASETS_COMMON_H
#define BATCHLAB_PLUGINS_DATASETS_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batchlab/plugin_sdk.h"

/* Help texts of the options every dataset plugin declares the same way. */
#define BL_DS_HELP_VALIDATION                                                                 \
    "samples held out of the training set for validation: a count (>= 1) or a fraction "      \
    "(< 1); 0 = none"
#define BL_DS_HELP_SEED "seed of the validation split (random stream BL_STREAM_SPLIT)"

/* Big-endian 32-bit value at p (4 readable bytes). */
static inline uint32_t bl_ds_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Opens `path` for reading and refuses anything but a regular file. The open is non-blocking,
 * so a FIFO or a device never hangs in open(), and the check is made on the opened descriptor
 * (fstat), so nothing can be swapped in between a check and the open. On success *fd is the
 * descriptor (blocking again; the caller closes it) and *size the file's size in bytes. On
 * error *fd is -1 and the message in ctx names the file: BL_ENOTFOUND when it does not exist,
 * BL_EIO otherwise ("<path>: not a regular file (a FIFO); expected a file"). */
static inline int bl_ds_open_regular(bl_ctx *ctx, const char *path, int *fd, int64_t *size)
{
    *fd = -1;
    *size = 0;
    int d = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (d < 0)
        return bl_error(ctx, errno == ENOENT ? BL_ENOTFOUND : BL_EIO, "cannot open %s: %s",
                        path, strerror(errno));
    struct stat st;
    if (fstat(d, &st) != 0) {
        int e = errno;
        close(d);
        return bl_error(ctx, BL_EIO, "cannot read %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(d);
        const char *kind = S_ISDIR(st.st_mode)    ? "a directory"
                           : S_ISFIFO(st.st_mode) ? "a FIFO"
                           : S_ISCHR(st.st_mode)  ? "a character device"
                           : S_ISBLK(st.st_mode)  ? "a block device"
                           : S_ISSOCK(st.st_mode) ? "a socket"
                                                  : "a special file";
        return bl_error(ctx, BL_EIO, "%s: not a regular file (%s); expected a data file",
                        path, kind);
    }
    int flags = fcntl(d, F_GETFL);
    if (flags >= 0)
        fcntl(d, F_SETFL, flags & ~O_NONBLOCK);
    *fd = d;
    *size = (int64_t)st.st_size;
    return BL_OK;
}

/* bl_ds_open_regular as a stdio stream ("rb"); NULL with the message in ctx (and *rc the
 * code) on error. */
static inline FILE *bl_ds_fopen_regular(bl_ctx *ctx, const char *path, int64_t *size, int *rc)
{
    int fd;
    *rc = bl_ds_open_regular(ctx, path, &fd, size);
    if (*rc != BL_OK)
        return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        *rc = bl_error(ctx, BL_ENOMEM, "cannot read %s: %s", path, strerror(e));
    }
    return f;
}

/* Turns the `validation` option (0 = none, a fraction in (0, 1), or a whole count >= 1) into
 * a count for a pool of n samples. A fraction rounds to the nearest count, at least 1; at
 * least one training sample must remain. */
static inline int bl_ds_validation_count(bl_ctx *ctx, double v, int64_t n, int64_t *out)
{
    *out = 0;
    if (!(v >= 0.0) || !isfinite(v))
        return bl_error(ctx, BL_EOPTION,
                        "validation = %g: expected 0 (none), a fraction in (0, 1) or a "
                        "count >= 1",
                        v);
    if (v == 0.0)
        return BL_OK;
    int64_t k;
    if (v < 1.0) {
        k = (int64_t)llround(v * (double)n);
        if (k < 1)
            k = 1;
    } else {
        if (v != floor(v) || v > 9.0e15)
            return bl_error(ctx, BL_EOPTION,
                            "validation = %g: a count must be a whole number (or give a "
                            "fraction below 1)",
                            v);
        k = (int64_t)v;
    }
    if (k >= n)
        return bl_error(ctx, BL_EOPTION,
                        "validation = %g holds out %lld of %lld training samples; at least "
                        "one must remain for training",
                        v, (long long)k, (long long)n);
    *out = k;
    return BL_OK;
}

/* Splits a pool of n samples into training and validation: a seeded permutation (stream
 * BL_STREAM_SPLIT) picks n_val samples for validation. On success *train_map (n - n_val
 * entries) and *val_map (n_val entries) list pool positions in increasing order, so both
 * splits keep the source's order; with n_val == 0 both are NULL (the identity, no split).
 * The caller frees both with free(). */
static inline int bl_ds_split(bl_ctx *ctx, int64_t n, int64_t n_val,
                              uint64_t seed, int64_t **train_map, int64_t **val_map)
{
    *train_map = NULL;
    *val_map = NULL;
    if (n_val <= 0)
        return BL_OK;
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    unsigned char *held = calloc((size_t)n, 1);
    int64_t *tr = malloc((size_t)(n - n_val) * sizeof *tr);
    int64_t *va = malloc((size_t)n_val * sizeof *va);
    if (!perm || !held || !tr || !va) {
        free(perm);
        free(held);
        free(tr);
        free(va);
        return bl_error(ctx, BL_ENOMEM, "no memory for the validation split of %lld samples",
                        (long long)n);
    }
    bl_rng rng;
    bl_rng_seed(&rng, seed, BL_STREAM_SPLIT);
    bl_rng_permutation(&rng, perm, n);
    for (int64_t i = 0; i < n_val; i++)
        held[perm[i]] = 1;
    int64_t a = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        if (held[i])
            va[b++] = i;
        else
            tr[a++] = i;
    }
    free(perm);
    free(held);
    *train_map = tr;
    *val_map = va;
    return BL_OK;
}

/* "train", "validation", "test" (the host's bl_split_name, without needing the host). */
static inline const char *bl_ds_split_name(bl_split split)
{
    return split == BL_SPLIT_TRAIN ? "train" : split == BL_SPLIT_VALIDATION ? "validation"
                                                                            : "test";
}

/* Pool position of element i of a split whose map may be NULL (identity). */
static inline int64_t bl_ds_row(const int64_t *map, int64_t i)
{
    return map ? map[i] : i;
}

/* How byte pixels become floats. */
typedef enum {
    BL_DS_NORM_NONE = 0,    /* the byte value: 0..255 */
    BL_DS_NORM_UNIT = 1,    /* x / 255 */
    BL_DS_NORM_STANDARD = 2 /* (x / 255 - mean) / std, statistics of the training split */
} bl_ds_norm;

#define BL_DS_HELP_NORMALIZE                                                                  \
    "pixel scaling: standard ((x/255 - mean)/std, training-split statistics), unit (x/255) "  \
    "or none (0..255)"

static inline int bl_ds_parse_norm(bl_ctx *ctx, const char *s, bl_ds_norm *out)
{
    if (s && strcmp(s, "standard") == 0)
        *out = BL_DS_NORM_STANDARD;
    else if (s && strcmp(s, "unit") == 0)
        *out = BL_DS_NORM_UNIT;
    else if (s && strcmp(s, "none") == 0)
        *out = BL_DS_NORM_NONE;
    else
        return bl_error(ctx, BL_EOPTION,
                        "normalize = '%s': expected standard, unit or none", s ? s : "");
    return BL_OK;
}

/* Mean and standard deviation of x/255 over the bytes counted in hist (population std; 1 when
 * the bytes are all equal or there are none, so that scaling never divides by zero). */
static inline void bl_ds_hist_stats(const uint64_t hist[256], double *mean, double *std)
{
    double n = 0, s = 0, s2 = 0;
    for (int v = 0; v < 256; v++) {
        double c = (double)hist[v], x = v / 255.0;
        n += c;
        s += c * x;
        s2 += c * x * x;
    }
    double m = n > 0 ? s / n : 0.0;
    double var = n > 0 ? s2 / n - m * m : 0.0;
    *mean = m;
    *std = var > 1e-12 ? sqrt(var) : 1.0;
}

/* Every normalization is affine, byte·scale + offset (mean/std used only for standard). */
typedef struct bl_ds_affine {
    float scale, offset;
} bl_ds_affine;

static inline bl_ds_affine bl_ds_norm_affine(bl_ds_norm norm, double mean, double std)
{
    bl_ds_affine a = {1.0f, 0.0f};
    if (norm == BL_DS_NORM_UNIT)
        a.scale = (float)(1.0 / 255.0);
    else if (norm == BL_DS_NORM_STANDARD) {
        a.scale = (float)(1.0 / (255.0 * std));
        a.offset = (float)(-mean / std);
    }
    return a;
}

/* Asks the memory system for `n` bytes at p ahead of use. Gathers read rows at random places
 * of a large array, so each row costs a full memory latency per cache line unless the rows
 * of the next samples are already on their way. Into every cache level (locality 3): the
 * non-temporal hint (0) made an idx gather slower than no prefetch at all (Fashion-MNIST,
 * batch 2048: 311 ns a sample with it, 225 without, 168 with locality 3). */
static inline void bl_ds_prefetch(const void *p, size_t n)
{
#if defined(__GNUC__)
    const char *c = p;
    for (size_t off = 0; off < n; off += 64) {
#if defined(__x86_64__)
        /* not __builtin_prefetch: GCC 12 deletes a loop that only prefetches as dead code
         * when it can tell that the loop ends (-O2, tree-dce), and a gather then waited for
         * every row (idx: 470–530 ns a sample in bl.train at batch 128, 290 with the
         * prefetches) */
        __asm__ volatile("prefetcht0 %0" : : "m"(c[off]));
#else
        __builtin_prefetch(c + off, 0, 3);
#endif
    }
#else
    (void)p;
    (void)n;
#endif
}

/* How many samples ahead a gather prefetches. */
#define BL_DS_PREFETCH_AHEAD 8

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

/* bl_ds_bytes_to_floats 8 bytes at a time with AVX2, for the same bits: a multiply, then an
 * add (no fused multiply-add; the flags give it no FMA to contract into). 55 against 86 ns for
 * a 784-byte row measured on the 2-core VM. */
__attribute__((target("avx2"))) static inline void
bl_ds_bytes_to_floats_avx2(const uint8_t *restrict in, float *restrict out, size_t n,
                           bl_ds_affine a)
{
    __m256 scale = _mm256_set1_ps(a.scale), offset = _mm256_set1_ps(a.offset);
    size_t blocks = n / 8;
    for (size_t b = 0; b < blocks; b++) {
        __m128i bytes = _mm_loadl_epi64((const __m128i *)(const void *)(in + 8 * b));
        __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
        _mm256_storeu_ps(out + 8 * b, _mm256_add_ps(_mm256_mul_ps(f, scale), offset));
    }
    for (size_t j = 8 * blocks; j < n; j++)
        out[j] = (float)in[j] * a.scale + a.offset;
}
#define BL_DS_HAVE_AVX2_CONVERT 1
#endif

/* out[j] = in[j]·scale + offset. Without AVX2, written as fixed blocks of 16 so that the
 * compiler vectorizes it at -O2 (byte → float → multiply, add); a table lookup per byte does
 * not vectorize and cost the engine about a tenth of an MLP epoch on Fashion-MNIST. */
static inline void bl_ds_bytes_to_floats(const uint8_t *restrict in, float *restrict out,
                                         size_t n, bl_ds_affine a)
{
#if defined(BL_DS_HAVE_AVX2_CONVERT)
    if (__builtin_cpu_supports("avx2")) {
        bl_ds_bytes_to_floats_avx2(in, out, n, a);
        return;
    }
#endif
    size_t blocks = n / 16;
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *ib = in + 16 * b;
        float *ob = out + 16 * b;
        for (int k = 0; k < 16; k++)
            ob[k] = (float)ib[k] * a.scale + a.offset;
    }
    for (size_t j = 16 * blocks; j < n; j++)
        out[j] = (float)in[j] * a.scale + a.offset;
}

#endif

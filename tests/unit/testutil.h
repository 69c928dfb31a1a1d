/* Shared helpers for the C unit tests (cmocka). */
#ifndef BATCHLAB_TESTUTIL_H
#define BATCHLAB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "batchlab/batchlab.h"

/* Fails the test with the context's message when `expr` does not return BL_OK. */
#define BL_ASSERT_OK(ctx, expr)                                                               \
    do {                                                                                      \
        int bl_rc_ = (expr);                                                                  \
        if (bl_rc_ != BL_OK)                                                                  \
            fail_msg("%s returned %d: %s", #expr, bl_rc_, bl_errmsg(ctx));                    \
    } while (0)

/* Asserts that `expr` fails with `code` and that the message contains `needle`. */
#define BL_ASSERT_ERR(ctx, code, needle, expr)                                                \
    do {                                                                                      \
        int bl_rc_ = (expr);                                                                  \
        if (bl_rc_ != (code))                                                                 \
            fail_msg("%s returned %d, expected %d (%s)", #expr, bl_rc_, (code),             \
                     bl_errmsg(ctx));                                                         \
        if (!bl_test_contains(bl_errmsg(ctx), (needle)))                                      \
            fail_msg("%s: message \"%s\" lacks \"%s\"", #expr, bl_errmsg(ctx), (needle));   \
    } while (0)

int bl_test_contains(const char *haystack, const char *needle);

/* A new bl_config holding the space-separated `key=value` assignments of `text` (NULL or "":
 * none); fails the test on a bad one. The caller frees it. */
bl_config *bl_test_config(bl_ctx *ctx, const char *text);

/* A context and a single-threaded CPU device for a test, and the registry of the build's
 * plugins where the setup was bl_test_setup_plugins (else NULL); freed by bl_test_teardown. */
typedef struct bl_test_env {
    bl_ctx *ctx;
    bl_device *dev;
    bl_registry *reg;
} bl_test_env;

/* Whether the CPU backend runs its AVX2/FMA kernels here: the tests of their arithmetic order
 * skip without. */
bool bl_test_has_avx2(void);
/* Whether the CPU backend runs its AVX-512 kernels here (avx512f with avx2 and fma): the tests
 * that compare them with the AVX2 ones skip without. */
bool bl_test_has_avx512(void);
/* A one-thread CPU device that keeps to the AVX2 kernels (BATCHLAB_CPU_AVX512=0, read when a
 * device opens), beside the default one; fails the test when it cannot open. Free it. */
bl_device *bl_test_open_avx2_device(bl_ctx *ctx);

int bl_test_setup(void **state);    /* cmocka group/test setup: *state = bl_test_env* */
int bl_test_setup_plugins(void **state); /* the same, with env->reg scanned */
int bl_test_teardown(void **state);

/* The dataset plugin `plugin` of env->reg opened with the `key=value` assignments of `options`
 * (bl_test_config); fails the test on an error. The caller closes it. */
bl_dataset *bl_test_dataset(const bl_test_env *env, const char *plugin, const char *options);
/* The model plugin `plugin` of env->reg built on env->dev for ds's samples, with `options` and
 * `seed`; fails the test on an error. The caller frees it. */
bl_net *bl_test_model(const bl_test_env *env, const char *plugin, const char *options,
                      const bl_dataset *ds, uint64_t seed);

/* Makes *ctx and *reg and loads the plugin file `path` of `kind` into the registry (*plugin).
 * Returns 0, or -1 after printing why (for cmocka setup functions). */
int bl_test_load_plugin(const char *path, bl_plugin_kind kind, bl_ctx **ctx, bl_registry **reg,
                        const bl_plugin **plugin);

/* A fresh temporary directory under the build tree's test data dir; returns a static buffer. */
const char *bl_test_tmpdir(const char *name);

/* Removes a directory made by bl_test_tmpdir and the files in it (not subdirectories). */
void bl_test_rmdir(const char *dir);

/* Writes dir/name as a plain IDX file of unsigned bytes: the magic for `ndim` dimensions, the
 * big-endian `dims`, then data[0..n) (n need not match dims: a short file is a test too).
 * Fails the test when the file cannot be written. */
void bl_test_write_idx(const char *dir, const char *name, int ndim, const uint32_t *dims,
                       const unsigned char *data, size_t n);

/* ---- device buffers and float comparisons (image and layer tests) ----------------------- */

/* `n` floats on env->dev (at least one), released by bl_test_release_all; fails the test when
 * the allocation fails or more than 64 are live. */
float *bl_test_dev_floats(bl_test_env *env, size_t n);
void bl_test_release_all(bl_test_env *env);
/* `n` zeroed doubles on the host (at least one), freed with free(). */
double *bl_test_host_doubles(size_t n);
void bl_test_fill_uniform(float *p, size_t n, bl_rng *rng, float lo, float hi);
void bl_test_fill_value(float *p, size_t n, float v);
/* Distinct values 1e-2 apart in random order, centred on 0. */
void bl_test_fill_distinct(float *p, size_t n, bl_rng *rng);
void bl_test_to_double(const float *src, double *dst, size_t n);
/* Fails unless |got - want| <= atol + rtol·|want| elementwise. */
void bl_test_check_close(const char *what, const float *got, const double *want, size_t n,
                         double atol, double rtol);
/* Fails unless the floats are bit-identical. */
void bl_test_check_equal_f(const char *what, const float *got, const float *want, size_t n);
/* A 2-D window with its output size computed. */
bl_window2d bl_test_window2d(int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw,
                             int64_t sh, int64_t sw, int64_t ph, int64_t pw);

#endif

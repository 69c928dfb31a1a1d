#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bl_config *bl_test_config(bl_ctx *ctx, const char *text)
{
    bl_config *cfg;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    char buf[1200];
    assert_true(snprintf(buf, sizeof buf, "%s", text ? text : "") < (int)sizeof buf);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
        BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, cfg, tok));
    return cfg;
}

int bl_test_contains(const char *haystack, const char *needle)
{
    return haystack && needle && strstr(haystack, needle) != NULL;
}

bool bl_test_has_avx2(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

bool bl_test_has_avx512(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    return bl_test_has_avx2() && __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

bl_device *bl_test_open_avx2_device(bl_ctx *ctx)
{
    setenv("BATCHLAB_CPU_AVX512", "0", 1);
    bl_device *dev = NULL;
    const int rc = bl_device_cpu_open(ctx, 1, &dev);
    unsetenv("BATCHLAB_CPU_AVX512");
    BL_ASSERT_OK(ctx, rc);
    return dev;
}

int bl_test_setup(void **state)
{
    bl_test_env *env = calloc(1, sizeof *env);
    if (!env)
        return -1;
    env->ctx = bl_ctx_new();
    if (!env->ctx || bl_device_cpu_open(env->ctx, 1, &env->dev) != BL_OK) {
        fprintf(stderr, "cannot open the CPU device: %s\n", bl_errmsg(env->ctx));
        bl_ctx_free(env->ctx);
        free(env);
        return -1;
    }
    *state = env;
    return 0;
}

int bl_test_setup_plugins(void **state)
{
    if (bl_test_setup(state) != 0)
        return -1;
    bl_test_env *env = *state;
    if (bl_registry_new(env->ctx, &env->reg) != BL_OK ||
        bl_registry_scan(env->ctx, env->reg) != BL_OK) {
        fprintf(stderr, "cannot load the plugins: %s\n", bl_errmsg(env->ctx));
        bl_test_teardown(state);
        return -1;
    }
    return 0;
}

int bl_test_teardown(void **state)
{
    bl_test_env *env = *state;
    if (env) {
        bl_registry_free(env->reg);
        bl_device_free(env->dev);
        bl_ctx_free(env->ctx);
        free(env);
    }
    *state = NULL;
    return 0;
}

bl_dataset *bl_test_dataset(const bl_test_env *env, const char *plugin, const char *options)
{
    const bl_plugin *p;
    BL_ASSERT_OK(env->ctx, bl_registry_find(env->ctx, env->reg, BL_PLUGIN_DATASET, plugin, &p));
    bl_config *cfg = bl_test_config(env->ctx, options);
    bl_dataset *ds;
    BL_ASSERT_OK(env->ctx, bl_dataset_open(env->ctx, p, cfg, &ds));
    bl_config_free(cfg);
    return ds;
}

bl_net *bl_test_model(const bl_test_env *env, const char *plugin, const char *options,
                      const bl_dataset *ds, uint64_t seed)
{
    const bl_plugin *p;
    BL_ASSERT_OK(env->ctx, bl_registry_find(env->ctx, env->reg, BL_PLUGIN_MODEL, plugin, &p));
    bl_config *cfg = bl_test_config(env->ctx, options);
    bl_net *net;
    BL_ASSERT_OK(env->ctx,
                 bl_model_build(env->ctx, p, cfg, bl_dataset_info(ds), env->dev, seed, &net));
    bl_config_free(cfg);
    return net;
}

const char *bl_test_tmpdir(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s.%ld", BATCHLAB_TEST_DATA_DIR, name, (long)getpid());
    mkdir(path, 0755);
    return path;
}

void bl_test_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[1200];
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

void bl_test_write_idx(const char *dir, const char *name, int ndim, const uint32_t *dims,
                       const unsigned char *data, size_t n)
{
    assert_true(ndim >= 1 && ndim <= 3);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char head[16] = {0, 0, 0x08, (unsigned char)ndim};
    for (int d = 0; d < ndim; d++)
        for (int b = 0; b < 4; b++)
            head[4 + 4 * d + b] = (unsigned char)(dims[d] >> (24 - 8 * b));
    size_t head_n = 4 + 4 * (size_t)ndim;
    assert_int_equal(fwrite(head, 1, head_n, f), head_n);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

int bl_test_load_plugin(const char *path, bl_plugin_kind kind, bl_ctx **ctx, bl_registry **reg,
                        const bl_plugin **plugin)
{
    *ctx = bl_ctx_new();
    if (!*ctx || bl_registry_new(*ctx, reg) != BL_OK ||
        bl_registry_find(*ctx, *reg, kind, path, plugin) != BL_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, *ctx ? bl_errmsg(*ctx) : "out of memory");
        return -1;
    }
    return 0;
}

/* ---- device buffers and float comparisons (image and layer tests) ----------------------- */

/* Device allocations of the current test, released by bl_test_release_all. */
#define MAX_ALLOCS 64
static struct {
    void *ptr;
    size_t bytes;
} allocs[MAX_ALLOCS];
static int n_allocs;

float *bl_test_dev_floats(bl_test_env *env, size_t n)
{
    void *p = NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    BL_ASSERT_OK(env->ctx, bl_device_alloc(env->ctx, env->dev, bytes, &p));
    assert_true(n_allocs < MAX_ALLOCS);
    allocs[n_allocs].ptr = p;
    allocs[n_allocs].bytes = bytes;
    n_allocs++;
    return p;
}

void bl_test_release_all(bl_test_env *env)
{
    while (n_allocs > 0) {
        n_allocs--;
        bl_device_release(env->dev, allocs[n_allocs].ptr, allocs[n_allocs].bytes);
    }
}

double *bl_test_host_doubles(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

void bl_test_fill_uniform(float *p, size_t n, bl_rng *rng, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * bl_rng_uniform(rng);
}

void bl_test_fill_value(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        p[i] = v;
}

/* Distinct values 1e-2 apart in random order, centred on 0. */
void bl_test_fill_distinct(float *p, size_t n, bl_rng *rng)
{
    int64_t *perm = malloc(n * sizeof *perm);
    assert_non_null(perm);
    bl_rng_permutation(rng, perm, (int64_t)n);
    for (size_t i = 0; i < n; i++)
        p[i] = 0.01f * (float)(perm[i] - (int64_t)n / 2);
    free(perm);
}

void bl_test_to_double(const float *src, double *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

void bl_test_check_close(const char *what, const float *got, const double *want, size_t n,
                        double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= atol + rtol * fabs(want[i])))
            fail_msg("%s[%zu]: got %.9g, want %.9g (|err| %.3g > %.3g)", what, i,
                     (double)got[i], want[i], err, atol + rtol * fabs(want[i]));
    }
}

void bl_test_check_equal_f(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s[%zu]: got %.9g, want %.9g", what, i, (double)got[i], (double)want[i]);
}

bl_window2d bl_test_window2d(int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t sh,
                          int64_t sw, int64_t ph, int64_t pw)
{
    bl_window2d w = {C, H, W, kh, kw, sh, sw, ph, pw, 0, 0};
    w.out_h = (H + 2 * ph - kh) / sh + 1;
    w.out_w = (W + 2 * pw - kw) / sw + 1;
    return w;
}

/* The plugin ABI: the sizes the host gives plugins (train state, evaluation point, data info,
 * layer), older plugins that are loaded (a shorter ops table) or refused with a message naming
 * the file, both ABI numbers and what to do (an older descriptor, an older libbatchlab), a
 * newer one, the SOVERSION rule, and errors that keep their code without a context. Fixture
 * plugins: tests/fixtures/fx_abi.c (BATCHLAB_TEST_PLUGIN_DIR). */
#define _GNU_SOURCE /* RTLD_NOLOAD */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define FX BATCHLAB_TEST_PLUGIN_DIR

static bl_registry *load(bl_ctx *ctx, const char *path)
{
    bl_registry *reg = NULL;
    BL_ASSERT_OK(ctx, bl_registry_new(ctx, &reg));
    BL_ASSERT_OK(ctx, bl_registry_load(ctx, reg, path));
    return reg;
}

/* Loading `file` fails with BL_EPLUGIN and a message holding the path and every needle. */
static void expect_refused(const char *file, ...)
{
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    bl_registry *reg = NULL;
    BL_ASSERT_OK(ctx, bl_registry_new(ctx, &reg));
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", FX, file);
    int rc = bl_registry_load(ctx, reg, path);
    if (rc != BL_EPLUGIN)
        fail_msg("%s: returned %d, expected BL_EPLUGIN (%s)", file, rc, bl_errmsg(ctx));
    if (!bl_test_contains(bl_errmsg(ctx), path))
        fail_msg("%s: message lacks the file path: %s", file, bl_errmsg(ctx));
    va_list ap;
    va_start(ap, file);
    for (const char *needle; (needle = va_arg(ap, const char *)) != NULL;)
        if (!bl_test_contains(bl_errmsg(ctx), needle))
            fail_msg("%s: message lacks \"%s\": %s", file, needle, bl_errmsg(ctx));
    va_end(ap);
    assert_int_equal(bl_registry_count(reg), 0);
    bl_registry_free(reg);
    bl_ctx_free(ctx);
}

/* ---- compatibility -------------------------------------------------------------------------- */

static void test_older_plugins_refused_with_both_abis(void **state)
{
    char now[64], lib_now[64], rebuild[96];
    snprintf(now, sizeof now, "uses plugin ABI %d", BL_PLUGIN_ABI);
    snprintf(lib_now, sizeof lib_now, "libbatchlab.so.%d", BL_PLUGIN_ABI);
    snprintf(rebuild, sizeof rebuild, "rebuild the plugin against batchlab %s", bl_version());
    /* A descriptor of ABI 1. */
    expect_refused("fx_abi_old.so", "built for plugin ABI 1", now, rebuild, NULL);
    /* A plugin linked against libbatchlab.so.1, which is not there: dlopen fails, and the
     * message says why in ABI terms rather than only "cannot open shared object file". */
    expect_refused("fx_abi_old_lib.so", "libbatchlab.so.1", "built for plugin ABI 1", now,
                   lib_now, rebuild, NULL);
    /* A plugin calling a function this batchlab lacks: built against a newer one. */
    expect_refused("fx_abi_newer.so", "bl_from_a_newer_batchlab", "built against a newer one",
                   rebuild, NULL);
}

static void test_older_shorter_ops_table_loads(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    bl_registry *reg = load(ctx, FX "/fx_abi_old_ops.so");
    const bl_plugin *p;
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_SCHEDULER, "fx_abi_old_ops", &p));
    bl_scheduler *s;
    BL_ASSERT_OK(ctx, bl_scheduler_open(ctx, p, NULL, &s));
    /* needs_gns lies beyond the table's size: not called (it would abort), taken as false. */
    assert_false(bl_scheduler_needs_gns(s));
    bl_train_state st = {.gns = NAN};
    int64_t batch;
    BL_ASSERT_OK(ctx, bl_scheduler_next(ctx, s, &st, &batch, NULL));
    assert_int_equal(batch, 8);
    bl_scheduler_close(s);
    bl_registry_free(reg);
    bl_ctx_free(ctx);
}

/* libbatchlab's SOVERSION is the plugin ABI: this test links libbatchlab.so.<ABI>. */
static void test_soversion_is_the_plugin_abi(void **state)
{
    char name[64];
    snprintf(name, sizeof name, "libbatchlab.so.%d", BL_PLUGIN_ABI);
    void *h = dlopen(name, RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        fail_msg("%s is not the loaded libbatchlab: %s", name, dlerror());
    dlclose(h);
}

/* ---- sizes the host gives ------------------------------------------------------------------- */

static void test_state_sizes_stamped_by_host(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    bl_registry *reg = load(ctx, FX "/fx_abi.so");
    const bl_plugin *p;
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_SCHEDULER, "fx_sizes", &p));
    bl_scheduler *s;
    BL_ASSERT_OK(ctx, bl_scheduler_open(ctx, p, NULL, &s));
    /* The caller leaves size and point_size at 0: the plugin still sees the host's sizes. */
    bl_train_state st = {.step = 3, .gns = NAN};
    int64_t batch;
    BL_ASSERT_OK(ctx, bl_scheduler_next(ctx, s, &st, &batch, NULL));
    assert_int_equal(batch, 8);
    bl_eval_point last = {.step = 2, .batch = 48};
    st.last = &last;
    BL_ASSERT_OK(ctx, bl_scheduler_next(ctx, s, &st, &batch, NULL));
    assert_int_equal(batch, 48);
    assert_int_equal(st.size, 0); /* the caller's struct is untouched */
    bl_scheduler_close(s);
    bl_registry_free(reg);
    bl_ctx_free(ctx);
}

static void test_data_info_and_layer_sizes(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    bl_device *dev = NULL;
    BL_ASSERT_OK(ctx, bl_device_cpu_open(ctx, 1, &dev));
    bl_registry *reg = load(ctx, FX "/fx_abi.so");
    const bl_plugin *model, *data;
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_MODEL, "fx_info_size", &model));
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_DATASET, "fx_info_memset", &data));

    /* The model sees info->size and layer->size set by the host, whoever filled the info. */
    bl_data_info info = {.sample = {.ndim = 1, .dim = {3}}, .classes = 2, .target_dim = 1};
    bl_net *net = NULL;
    BL_ASSERT_OK(ctx, bl_model_build(ctx, model, NULL, &info, dev, 1, &net));
    bl_net_free(net);

    /* A dataset that wipes out->size (memset of its own struct) is refused, saying how. */
    bl_dataset *ds = NULL;
    BL_ASSERT_ERR(ctx, BL_EPLUGIN, "dataset fx_info_memset: the plugin's info changed out->size",
                  bl_dataset_open(ctx, data, NULL, &ds));
    assert_true(bl_test_contains(bl_errmsg(ctx), "bl_data_info_reset"));
    assert_null(ds);

    /* Built-in datasets report the host's size. */
    const bl_plugin *syn;
    BL_ASSERT_OK(ctx, bl_registry_load(ctx, reg, BATCHLAB_BUILD_PLUGIN_DIR "/bl_synthetic.so"));
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_DATASET, "synthetic", &syn));
    BL_ASSERT_OK(ctx, bl_dataset_open(ctx, syn, NULL, &ds));
    assert_int_equal(bl_dataset_info(ds)->size, sizeof(bl_data_info));
    bl_dataset_close(ds);

    bl_registry_free(reg);
    bl_device_free(dev);
    bl_ctx_free(ctx);
}

static void test_layer_new_sets_size(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    bl_layer *layer = NULL;
    BL_ASSERT_OK(ctx, bl_flatten(ctx, &layer));
    assert_int_equal(layer->size, sizeof(bl_layer));
    assert_true(BL_HAS_FIELD(layer, bl_layer, counter));
    bl_layer_free(layer);
    bl_ctx_free(ctx);
}

/* ---- errors without a context keep their code ----------------------------------------------- */

static void test_error_prefix_without_ctx_keeps_the_code(void **state)
{
    bl_clear_error(NULL);
    assert_int_equal(bl_error(NULL, BL_ENOMEM, "out of memory"), BL_ENOMEM);
    assert_int_equal(bl_error_prefix(NULL, "loading %s", "x"), BL_ENOMEM);
    /* Nothing recorded: still a failure, never BL_OK. */
    bl_clear_error(NULL);
    assert_int_equal(bl_error_prefix(NULL, "loading"), BL_EINVAL);
    /* With a context nothing changed. */
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    bl_error(ctx, BL_EIO, "cannot read");
    assert_int_equal(bl_error_prefix(ctx, "file %s", "a"), BL_EIO);
    assert_string_equal(bl_errmsg(ctx), "file a: cannot read");
    bl_ctx_free(ctx);
}

/* A plugin failure seen through a NULL ctx is still a failure (it used to become BL_OK, with
 * *out untouched and the caller believing it had a dataset). */
static void test_plugin_failure_without_ctx(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    bl_registry *reg = load(ctx, FX "/fx_data.so");
    const bl_plugin *fails;
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_DATASET, "fx_open_fails", &fails));
    bl_config *opts;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &opts));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, opts, "path", "/no/such/file"));
    bl_dataset *ds = NULL;
    assert_int_equal(bl_dataset_open(NULL, fails, opts, &ds), BL_EIO);
    assert_null(ds);
    bl_config_free(opts);
    bl_registry_free(reg);
    bl_ctx_free(ctx);
}

int main(void)
{
    setenv("BATCHLAB_PLUGIN_PATH", "", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_older_plugins_refused_with_both_abis),
        cmocka_unit_test(test_older_shorter_ops_table_loads),
        cmocka_unit_test(test_soversion_is_the_plugin_abi),
        cmocka_unit_test(test_state_sizes_stamped_by_host),
        cmocka_unit_test(test_data_info_and_layer_sizes),
        cmocka_unit_test(test_layer_new_sets_size),
        cmocka_unit_test(test_error_prefix_without_ctx_keeps_the_code),
        cmocka_unit_test(test_plugin_failure_without_ctx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

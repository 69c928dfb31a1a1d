/* The process-wide table of loaded plugin libraries under concurrent opens: threads opening
 * the same file at once get one library, in the table once, with balanced references, and
 * the file is unloaded (dlclose) once the last reference goes. Links batchlab_internal alone,
 * so that the table this test inspects is the one bl__plugin_lib_open fills. */
#define _GNU_SOURCE /* RTLD_NOLOAD */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "plugin/plugin_internal.h"
#include "testutil.h"

#define FX BATCHLAB_TEST_PLUGIN_DIR
#define THREADS 8
#define ROUNDS 100

static pthread_barrier_t start, opened, inspected, released;

typedef struct worker {
    const char *path;
    bl__plugin_lib *lib[ROUNDS];
    int rc[ROUNDS];
    char msg[256];
} worker;

static bool is_loaded(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h)
        dlclose(h);
    return h != NULL;
}

/* Each round: wait for all, open the file at once, wait while the main thread inspects the
 * table, release, wait until the main thread has checked that the file is gone. */
static void *work(void *arg)
{
    worker *w = arg;
    bl_ctx *ctx = bl_ctx_new();
    for (int r = 0; r < ROUNDS; r++) {
        pthread_barrier_wait(&start);
        w->rc[r] = ctx ? bl__plugin_lib_open(ctx, w->path, &w->lib[r]) : BL_ENOMEM;
        if (w->rc[r] && !w->msg[0])
            snprintf(w->msg, sizeof w->msg, "%s", bl_errmsg(ctx));
        pthread_barrier_wait(&opened);
        pthread_barrier_wait(&inspected);
        if (w->rc[r] == BL_OK)
            bl__plugin_lib_release(w->lib[r]);
        pthread_barrier_wait(&released);
    }
    bl_ctx_free(ctx);
    return NULL;
}

static void test_concurrent_open_of_one_file(void **state)
{
    /* Its entry function sleeps, so every thread is between look-up and insert at once. */
    const char *path = FX "/fx_slow.so";
    assert_int_equal(bl__plugin_lib_table_size(), 0);
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS + 1), 0);
    assert_int_equal(pthread_barrier_init(&opened, NULL, THREADS + 1), 0);
    assert_int_equal(pthread_barrier_init(&inspected, NULL, THREADS + 1), 0);
    assert_int_equal(pthread_barrier_init(&released, NULL, THREADS + 1), 0);
    static worker w[THREADS];
    pthread_t tid[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t].path = path;
        assert_int_equal(pthread_create(&tid[t], NULL, work, &w[t]), 0);
    }
    int duplicates = 0, failures = 0, bad_refs = 0, stayed_loaded = 0;
    for (int r = 0; r < ROUNDS; r++) {
        pthread_barrier_wait(&start);
        pthread_barrier_wait(&opened);
        /* Every thread holds one reference to the same, single library. */
        if (bl__plugin_lib_table_size() != 1)
            duplicates++;
        for (int t = 0; t < THREADS; t++) {
            if (w[t].rc[r] != BL_OK) {
                failures++;
                continue;
            }
            if (w[t].lib[r] != w[0].lib[r] || bl__plugin_lib_refs(w[t].lib[r]) != THREADS)
                bad_refs++;
        }
        pthread_barrier_wait(&inspected);
        pthread_barrier_wait(&released);
        /* The last release unlinked it and closed the file, once: nothing keeps it mapped. */
        if (bl__plugin_lib_table_size() != 0 || is_loaded(path))
            stayed_loaded++;
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&opened);
    pthread_barrier_destroy(&inspected);
    pthread_barrier_destroy(&released);
    if (failures)
        fail_msg("%d opens failed: %s", failures, w[0].msg[0] ? w[0].msg : "(see others)");
    if (duplicates || bad_refs || stayed_loaded)
        fail_msg("of %d rounds of %d threads: %d had the library in the table more than once, "
                 "%d opens got another library or unbalanced references, %d left it loaded",
                 ROUNDS, THREADS, duplicates, bad_refs, stayed_loaded);
}

/* Opening twice from one thread gives the same library with two references. */
static void test_reopen_shares_the_library(void **state)
{
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    bl__plugin_lib *a = NULL, *b = NULL;
    BL_ASSERT_OK(ctx, bl__plugin_lib_open(ctx, FX "/fx_data.so", &a));
    BL_ASSERT_OK(ctx, bl__plugin_lib_open(ctx, FX "/fx_data.so", &b));
    assert_ptr_equal(a, b);
    assert_int_equal(bl__plugin_lib_refs(a), 2);
    assert_int_equal(bl__plugin_lib_table_size(), 1);
    bl__plugin_lib_release(a);
    assert_true(is_loaded(FX "/fx_data.so"));
    bl__plugin_lib_release(b);
    assert_false(is_loaded(FX "/fx_data.so"));
    assert_int_equal(bl__plugin_lib_table_size(), 0);
    bl_ctx_free(ctx);
}

/* bl__plugin_failed decides the code itself: with a NULL ctx a failure stays a failure. */
static void test_plugin_failed_keeps_the_code(void **state)
{
    bl_clear_error(NULL);
    assert_int_equal(bl__plugin_failed(NULL, BL_EIO, "dataset x", "open"), BL_EIO);
    assert_int_equal(bl__plugin_failed(NULL, 3, "dataset x", "open"), BL_EPLUGIN);
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    bl_error(ctx, BL_EFORMAT, "line 3: bad number");
    assert_int_equal(bl__plugin_failed(ctx, BL_EIO, "dataset x", "open"), BL_EFORMAT);
    assert_string_equal(bl_errmsg(ctx), "dataset x: line 3: bad number");
    bl_clear_error(ctx);
    assert_int_equal(bl__plugin_failed(ctx, 5, "dataset x", "open"), BL_EPLUGIN);
    assert_string_equal(bl_errmsg(ctx),
                        "dataset x: the plugin's open failed (returned 5) without saying why");
    bl_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reopen_shares_the_library),
        cmocka_unit_test(test_concurrent_open_of_one_file),
        cmocka_unit_test(test_plugin_failed_keeps_the_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

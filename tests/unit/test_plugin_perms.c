/* issue 15, Found 12: the loader refuses a plugin file that others could have written — the
 * file, its directory (sticky or not), a link's directory, a directory further up writable by
 * others without the sticky bit — before dlopen, so the library's constructor never runs
 * (fixture fx_ctor.so leaves a mark when it does). The fixtures are copies in a temporary
 * directory whose modes the test sets. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batchlab/plugin.h"
#include "testutil.h"

#define FIXTURE BATCHLAB_TEST_PLUGIN_DIR "/fx_ctor.so"

typedef struct fx {
    char root[1024];  /* 0755: holds sub/ */
    char sub[1100];   /* the directory holding the plugin */
    char plugin[1200];
    char mark[1200];
} fx;

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->root, sizeof f->root, "%s", bl_test_tmpdir("plugin_perms"));
    snprintf(f->sub, sizeof f->sub, "%s/sub", f->root);
    snprintf(f->plugin, sizeof f->plugin, "%s/fx_ctor.so", f->sub);
    snprintf(f->mark, sizeof f->mark, "%s/constructor_ran", f->root);
    if (chmod(f->root, 0755) != 0 || mkdir(f->sub, 0755) != 0)
        return -1;
    copy_file(FIXTURE, f->plugin);
    setenv("BL_FX_CTOR_MARK", f->mark, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    unlink(f->plugin);
    char link[1300];
    snprintf(link, sizeof link, "%s/link.so", f->root);
    unlink(link);
    rmdir(f->sub);
    unlink(f->mark);
    chmod(f->root, 0755);
    rmdir(f->root);
    free(f);
    return 0;
}

/* Loads `path` in a fresh registry; returns the code (message in ctx). */
static int load(bl_ctx *ctx, const char *path)
{
    bl_registry *reg = NULL;
    BL_ASSERT_OK(ctx, bl_registry_new(ctx, &reg));
    int rc = bl_registry_load(ctx, reg, path);
    bl_registry_free(reg);
    if (rc && getenv("BL_TEST_VERBOSE"))
        printf("    %s\n", bl_errmsg(ctx));
    return rc;
}

static void assert_refused(fx *f, bl_ctx *ctx, const char *path, const char *needle)
{
    unlink(f->mark);
    BL_ASSERT_ERR(ctx, BL_EPLUGIN, needle, load(ctx, path));
    assert_true(bl_test_contains(bl_errmsg(ctx), "chmod go-w"));
    assert_true(bl_test_contains(bl_errmsg(ctx), "is not loaded"));
    if (access(f->mark, F_OK) == 0)
        fail_msg("the library's constructor ran although the file was refused");
}

static void safe_file_loads(void **state)
{
    fx *f = *state;
    bl_ctx *ctx = bl_ctx_new();
    BL_ASSERT_OK(ctx, load(ctx, f->plugin));
    assert_int_equal(access(f->mark, F_OK), 0); /* the constructor ran: the fixture works */
    bl_ctx_free(ctx);
}

static void writable_file_refused(void **state)
{
    fx *f = *state;
    bl_ctx *ctx = bl_ctx_new();
    assert_int_equal(chmod(f->plugin, 0757), 0);
    assert_refused(f, ctx, f->plugin, "the file");
    assert_true(bl_test_contains(bl_errmsg(ctx), "writable by others (mode 0757)"));
    assert_int_equal(chmod(f->plugin, 0775), 0);
    assert_refused(f, ctx, f->plugin, "writable by its group");
    bl_ctx_free(ctx);
}

static void writable_directory_refused(void **state)
{
    fx *f = *state;
    bl_ctx *ctx = bl_ctx_new();
    assert_int_equal(chmod(f->sub, 0777), 0);
    assert_refused(f, ctx, f->plugin, "its directory");
    assert_int_equal(chmod(f->sub, 01777), 0); /* sticky, like /tmp: still refused */
    assert_refused(f, ctx, f->plugin, "(sticky: anyone may add files)");
    assert_int_equal(chmod(f->sub, 0755), 0);
    /* a directory further up: writable by others without the sticky bit is refused ... */
    assert_int_equal(chmod(f->root, 0777), 0);
    assert_refused(f, ctx, f->plugin, "writable by others without the sticky bit");
    /* ... with it (as /tmp) accepted: only an entry's owner may rename it there */
    assert_int_equal(chmod(f->root, 01777), 0);
    BL_ASSERT_OK(ctx, load(ctx, f->plugin));
    assert_int_equal(chmod(f->root, 0755), 0);
    bl_ctx_free(ctx);
}

static void link_in_writable_directory_refused(void **state)
{
    fx *f = *state;
    bl_ctx *ctx = bl_ctx_new();
    char link[1300];
    snprintf(link, sizeof link, "%s/link.so", f->root);
    assert_int_equal(symlink(f->plugin, link), 0);
    BL_ASSERT_OK(ctx, load(ctx, link));
    assert_int_equal(chmod(f->root, 01777), 0); /* the link's own directory */
    assert_refused(f, ctx, link, "its directory");
    assert_int_equal(chmod(f->root, 0755), 0);
    bl_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(safe_file_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(writable_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(writable_directory_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(link_in_writable_directory_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The plugin loader and registry: every error message (with the file and what to do), the
 * search order, duplicates, finding by name and by path, option validation through the object
 * wrappers, their checks, and that a shared object is unloaded only after the registry and
 * its last object are gone. Fixture plugins: tests/fixtures (BATCHLAB_TEST_PLUGIN_DIR). */
#define _GNU_SOURCE /* RTLD_NOLOAD */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define FX BATCHLAB_TEST_PLUGIN_DIR

/* ---- helpers -------------------------------------------------------------------------------- */

/* Warnings captured from bl_log. */
typedef struct captured {
    char text[16384];
    int count;
} captured;

static void capture(void *user, bl_log_level level, const char *msg)
{
    captured *c = user;
    if (level < BL_LOG_WARN)
        return;
    size_t len = strlen(c->text);
    snprintf(c->text + len, sizeof c->text - len, "%s\n", msg);
    c->count++;
}

typedef struct fixture {
    bl_ctx *ctx;
    captured log;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || !(f->ctx = bl_ctx_new()))
        return -1;
    bl_ctx_set_log(f->ctx, capture, &f->log);
    setenv("BATCHLAB_PLUGIN_PATH", "", 1);
    unsetenv("FX_SHADOW_NAME");
    unsetenv("FX_SHADOW_KIND");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bl_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* Whether the shared object at `path` is mapped in this process right now. */
static bool is_loaded(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h)
        dlclose(h);
    return h != NULL;
}

static bl_registry *new_registry(bl_ctx *ctx)
{
    bl_registry *reg = NULL;
    BL_ASSERT_OK(ctx, bl_registry_new(ctx, &reg));
    return reg;
}

/* Loading `file` (under the fixture dir) fails with `code` and a message that names the file
 * and contains every one of the NULL-terminated needles; nothing stays loaded. */
static void expect_refused(bl_ctx *ctx, const char *file, int code, ...)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", FX, file);
    bl_registry *reg = new_registry(ctx);
    int rc = bl_registry_load(ctx, reg, path);
    if (rc != code)
        fail_msg("%s: returned %d, expected %d (%s)", file, rc, code, bl_errmsg(ctx));
    if (!bl_test_contains(bl_errmsg(ctx), path))
        fail_msg("%s: message lacks the file path: %s", file, bl_errmsg(ctx));
    va_list ap;
    va_start(ap, code);
    for (const char *needle; (needle = va_arg(ap, const char *)) != NULL;)
        if (!bl_test_contains(bl_errmsg(ctx), needle))
            fail_msg("%s: message lacks \"%s\": %s", file, needle, bl_errmsg(ctx));
    va_end(ap);
    assert_int_equal(bl_registry_count(reg), 0);
    bl_registry_free(reg);
    assert_false(is_loaded(path));
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_kind_and_split_names(void **state)
{
    assert_string_equal(bl_plugin_kind_name(BL_PLUGIN_MODEL), "model");
    assert_string_equal(bl_plugin_kind_name(BL_PLUGIN_DATASET), "dataset");
    assert_string_equal(bl_plugin_kind_name(BL_PLUGIN_SCHEDULER), "scheduler");
    assert_string_equal(bl_plugin_kind_name(9), "unknown");
    assert_string_equal(bl_split_name(BL_SPLIT_TRAIN), "train");
    assert_string_equal(bl_split_name(BL_SPLIT_VALIDATION), "validation");
    assert_string_equal(bl_split_name(BL_SPLIT_TEST), "test");
}

static void test_load_good_file(void **state)
{
    fixture *f = *state;
    bl_registry *reg = new_registry(f->ctx);
    BL_ASSERT_OK(f->ctx, bl_registry_load(f->ctx, reg, FX "/fx_good.so"));
    assert_int_equal(bl_registry_count(reg), 2);
    const char *file;
    const bl_plugin *p = bl_registry_at(reg, 0, &file);
    assert_string_equal(p->name, "fx_model");
    assert_int_equal(p->kind, BL_PLUGIN_MODEL);
    assert_string_equal(p->version, "1.2");
    assert_string_equal(file, FX "/fx_good.so");
    p = bl_registry_at(reg, 1, NULL);
    assert_string_equal(p->name, "fx_sched");
    assert_null(bl_registry_at(reg, 2, &file));
    assert_null(file);

    /* Loading it again changes nothing. */
    BL_ASSERT_OK(f->ctx, bl_registry_load(f->ctx, reg, FX "/fx_good.so"));
    assert_int_equal(bl_registry_count(reg), 2);

    const bl_plugin *found;
    BL_ASSERT_OK(f->ctx, bl_registry_find(f->ctx, reg, BL_PLUGIN_SCHEDULER, "fx_sched", &found));
    assert_ptr_equal(found, p);
    assert_true(is_loaded(FX "/fx_good.so"));
    bl_registry_free(reg);
    assert_false(is_loaded(FX "/fx_good.so"));
    assert_int_equal(f->log.count, 0);
}

static void test_every_loader_error(void **state)
{
    fixture *f = *state;
    bl_ctx *ctx = f->ctx;
    char ver[64], size_is[64], size_needs[64], abi_now[32];
    snprintf(abi_now, sizeof abi_now, "plugin ABI %d", BL_PLUGIN_ABI);
    snprintf(ver, sizeof ver, "rebuild the plugin against batchlab %s", bl_version());
    snprintf(size_is, sizeof size_is, "size of %zu bytes", offsetof(bl_plugin, summary));
    snprintf(size_needs, sizeof size_needs, "at least %zu",
             offsetof(bl_plugin, ops) + sizeof(void *));

    expect_refused(ctx, "fx_not_elf.so", BL_EPLUGIN, "could not be loaded", "ldd", NULL);
    expect_refused(ctx, "fx_no_entry.so", BL_EPLUGIN, "no entry symbol 'batchlab_plugin'",
                   "BL_PLUGIN_EXPORT", NULL);
    expect_refused(ctx, "fx_wrong_abi.so", BL_EPLUGIN, "plugin ABI 99", abi_now, ver,
                   NULL);
    expect_refused(ctx, "fx_short_size.so", BL_EPLUGIN, size_is, size_needs,
                   "sizeof(bl_plugin)", ver, NULL);
    expect_refused(ctx, "fx_unknown_kind.so", BL_EPLUGIN, "'fx_unknown_kind' has unknown kind 7",
                   "1 (model)", NULL);
    expect_refused(ctx, "fx_no_name.so", BL_EPLUGIN, "descriptor #0 has no name", NULL);
    expect_refused(ctx, "fx_bad_name.so", BL_EPLUGIN, "invalid name 'Bad-Name'",
                   "lower-case letters, digits and '_'", NULL);
    expect_refused(ctx, "fx_no_ops.so", BL_EPLUGIN, "model plugin 'fx_no_ops'",
                   "no operations table", "bl_model_ops", NULL);
    expect_refused(ctx, "fx_short_ops.so", BL_EPLUGIN, "operations table of 2 bytes",
                   "sizeof(bl_model_ops)", ver, NULL);
    expect_refused(ctx, "fx_missing_op.so", BL_EPLUGIN, "scheduler plugin 'fx_missing_op'",
                   "lacks the required operation 'next'", NULL);
    expect_refused(ctx, "fx_bad_default.so", BL_EPLUGIN, "model plugin 'fx_bad_default'",
                   "default \"abc\" of option 'width' is not a valid integer", NULL);
    expect_refused(ctx, "fx_empty.so", BL_EPLUGIN, "provides no plugins", NULL);
}

static void test_file_not_found(void **state)
{
    fixture *f = *state;
    setenv("BATCHLAB_PLUGIN_PATH", "/nonexistent/one:/nonexistent/two", 1);
    bl_registry *reg = new_registry(f->ctx);
    BL_ASSERT_ERR(f->ctx, BL_ENOTFOUND, "plugin file '" FX "/nope.so' not found",
                  bl_registry_load(f->ctx, reg, FX "/nope.so"));
    assert_true(bl_test_contains(bl_errmsg(f->ctx), "/nonexistent/one, /nonexistent/two, "
                                                   BATCHLAB_BUILD_PLUGIN_DIR));
    /* A bare file name is looked up on the search path. */
    BL_ASSERT_ERR(f->ctx, BL_ENOTFOUND, "plugin file 'nope.so' not found",
                  bl_registry_load(f->ctx, reg, "nope.so"));
    assert_true(bl_test_contains(bl_errmsg(f->ctx), "/nonexistent/one"));
    assert_true(bl_test_contains(bl_errmsg(f->ctx), "BATCHLAB_PLUGIN_PATH"));
    bl_registry_free(reg);

    setenv("BATCHLAB_PLUGIN_PATH", FX, 1);
    reg = new_registry(f->ctx);
    BL_ASSERT_OK(f->ctx, bl_registry_load(f->ctx, reg, "fx_good.so"));
    assert_int_equal(bl_registry_count(reg), 2);
    bl_registry_free(reg);
}

static void test_search_path_order(void **state)
{
    fixture *f = *state;
    setenv("BATCHLAB_PLUGIN_PATH", "/first::/second/:/first", 1);
    bl_registry *reg = new_registry(f->ctx);
    const char **dirs;
    size_t n = bl_registry_search_path(reg, &dirs);
    /* then the library's own folder: in the build tree the build's plugins, and nothing
     * else (an install finds its own, relative to itself: tests/cli/install.sh) */
    assert_int_equal(n, 3);
    assert_string_equal(dirs[0], "/first");
    assert_string_equal(dirs[1], "/second");
    assert_string_equal(dirs[2], BATCHLAB_BUILD_PLUGIN_DIR);
    bl_registry_free(reg);
}

static void test_scan_warns_and_skips(void **state)
{
    fixture *f = *state;
    setenv("BATCHLAB_PLUGIN_PATH", FX, 1);
    bl_registry *reg = new_registry(f->ctx);
    BL_ASSERT_OK(f->ctx, bl_registry_scan(f->ctx, reg));
    assert_string_equal(bl_errmsg(f->ctx), "");
    const char *bad[] = {"fx_not_elf.so", "fx_no_entry.so", "fx_wrong_abi.so",
                         "fx_short_size.so", "fx_unknown_kind.so", "fx_no_name.so",
                         "fx_bad_name.so", "fx_no_ops.so", "fx_short_ops.so",
                         "fx_missing_op.so", "fx_bad_default.so", "fx_empty.so"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[1024];
        snprintf(path, sizeof path, "'%s/%s'", FX, bad[i]);
        if (!bl_test_contains(f->log.text, path))
            fail_msg("no warning names %s:\n%s", path, f->log.text);
    }
    const char *good[][2] = {{"model", "fx_model"},
                             {"scheduler", "fx_sched"},
                             {"dataset", "fx_data"},
                             {"dataset", "fx_open_fails"},
                             {"dataset", "fx_old_ops"}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        bool found = false;
        for (size_t k = 0; k < bl_registry_count(reg); k++) {
            const bl_plugin *p = bl_registry_at(reg, k, NULL);
            found |= strcmp(p->name, good[i][1]) == 0 &&
                     strcmp(bl_plugin_kind_name(p->kind), good[i][0]) == 0;
        }
        if (!found)
            fail_msg("%s %s was not loaded", good[i][0], good[i][1]);
    }
    /* A second scan loads nothing new and repeats no warning. */
    size_t count = bl_registry_count(reg);
    int warnings = f->log.count;
    BL_ASSERT_OK(f->ctx, bl_registry_scan(f->ctx, reg));
    assert_int_equal(bl_registry_count(reg), count);
    assert_int_equal(f->log.count, warnings);
    bl_registry_free(reg);
}

/* Scans with BATCHLAB_PLUGIN_PATH = `path` and returns the version of the fx_dup found. */
static const char *dup_version(fixture *f, const char *path, char *file, size_t cap)
{
    static char version[16];
    setenv("BATCHLAB_PLUGIN_PATH", path, 1);
    f->log.text[0] = '\0';
    f->log.count = 0;
    bl_registry *reg = new_registry(f->ctx);
    const bl_plugin *p;
    BL_ASSERT_OK(f->ctx, bl_registry_find(f->ctx, reg, BL_PLUGIN_SCHEDULER, "fx_dup", &p));
    snprintf(version, sizeof version, "%s", p->version);
    for (size_t i = 0; i < bl_registry_count(reg); i++) {
        const char *fl;
        if (bl_registry_at(reg, i, &fl) == p)
            snprintf(file, cap, "%s", fl);
    }
    bl_registry_free(reg);
    return version;
}

static void test_duplicates_first_found_wins(void **state)
{
    fixture *f = *state;
    char file[1024];
    assert_string_equal(dup_version(f, FX "/path1:" FX "/path2", file, sizeof file), "b");
    assert_string_equal(file, FX "/path1/fx_dup_b.so");
    assert_int_equal(f->log.count, 1);
    assert_true(bl_test_contains(f->log.text, "two scheduler plugins named 'fx_dup'"));
    assert_true(bl_test_contains(f->log.text, "using the one in '" FX "/path1/fx_dup_b.so'"));
    assert_true(bl_test_contains(f->log.text, "ignoring the one in '" FX "/path2/fx_dup_a.so'"));

    assert_string_equal(dup_version(f, FX "/path2:" FX "/path1", file, sizeof file), "a");
    assert_string_equal(file, FX "/path2/fx_dup_a.so");
    assert_true(bl_test_contains(f->log.text, "ignoring the one in '" FX "/path1/fx_dup_b.so'"));
}

/* BATCHLAB_PLUGIN_PATH comes before the build tree: the shadow fixture takes the kind and name
 * of a plugin the build tree provides, and must be the one found. */
static void test_plugin_path_beats_build_tree(void **state)
{
    fixture *f = *state;
    bl_registry *reg = new_registry(f->ctx);
    BL_ASSERT_OK(f->ctx, bl_registry_scan(f->ctx, reg));
    const bl_plugin *victim = NULL;
    for (size_t i = 0; i < bl_registry_count(reg) && !victim; i++) {
        const char *file;
        const bl_plugin *p = bl_registry_at(reg, i, &file);
        if (strncmp(file, BATCHLAB_BUILD_PLUGIN_DIR "/", strlen(BATCHLAB_BUILD_PLUGIN_DIR) + 1) ==
            0)
            victim = p;
    }
    char name[64], kind[16];
    if (victim) {
        snprintf(name, sizeof name, "%s", victim->name);
        snprintf(kind, sizeof kind, "%s", bl_plugin_kind_name(victim->kind));
    } else {
        /* No plugin is built in this tree: the order is still checked, against nothing. */
        print_message("note: no plugin in %s; shadowing a made-up name\n",
                      BATCHLAB_BUILD_PLUGIN_DIR);
        snprintf(name, sizeof name, "fx_shadowed");
        snprintf(kind, sizeof kind, "scheduler");
    }
    bl_registry_free(reg);
    f->log.text[0] = '\0';
    f->log.count = 0;

    setenv("FX_SHADOW_NAME", name, 1);
    setenv("FX_SHADOW_KIND", kind, 1);
    setenv("BATCHLAB_PLUGIN_PATH", FX "/shadow", 1);
    reg = new_registry(f->ctx);
    bl_plugin_kind k = strcmp(kind, "model") == 0     ? BL_PLUGIN_MODEL
                       : strcmp(kind, "dataset") == 0 ? BL_PLUGIN_DATASET
                                                      : BL_PLUGIN_SCHEDULER;
    const bl_plugin *p;
    BL_ASSERT_OK(f->ctx, bl_registry_find(f->ctx, reg, k, name, &p));
    assert_string_equal(p->summary, "shadows another plugin");
    if (victim) {
        assert_true(bl_test_contains(f->log.text, "using the one in '" FX "/shadow/fx_shadow.so'"));
        assert_true(bl_test_contains(f->log.text, BATCHLAB_BUILD_PLUGIN_DIR "/"));
    }
    bl_registry_free(reg);
    unsetenv("FX_SHADOW_NAME");
    unsetenv("FX_SHADOW_KIND");
}

static void test_find_errors_and_paths(void **state)
{
    fixture *f = *state;
    setenv("BATCHLAB_PLUGIN_PATH", FX, 1);
    bl_registry *reg = new_registry(f->ctx);
    const bl_plugin *p = NULL;
    /* find scans on first use */
    BL_ASSERT_ERR(f->ctx, BL_ENOTFOUND,
                  "no model plugin named 'fx_modle'; did you mean 'fx_model'?",
                  bl_registry_find(f->ctx, reg, BL_PLUGIN_MODEL, "fx_modle", &p));
    assert_true(bl_test_contains(bl_errmsg(f->ctx), "available models: "));
    assert_true(bl_test_contains(bl_errmsg(f->ctx), "fx_model"));
    assert_true(bl_test_contains(bl_errmsg(f->ctx), "searched: " FX ", "));
    assert_null(p);
    BL_ASSERT_ERR(f->ctx, BL_ENOTFOUND, "no scheduler plugin named 'fx_model';",
                  bl_registry_find(f->ctx, reg, BL_PLUGIN_SCHEDULER, "fx_model", &p));

    /* By path: the first plugin of the kind in that file. */
    BL_ASSERT_OK(f->ctx,
                 bl_registry_find(f->ctx, reg, BL_PLUGIN_SCHEDULER, FX "/fx_good.so", &p));
    assert_string_equal(p->name, "fx_sched");
    BL_ASSERT_ERR(f->ctx, BL_ENOTFOUND,
                  "provides no dataset plugin (it provides: model 'fx_model', scheduler "
                  "'fx_sched')",
                  bl_registry_find(f->ctx, reg, BL_PLUGIN_DATASET, FX "/fx_good.so", &p));
    BL_ASSERT_ERR(f->ctx, BL_EPLUGIN, "plugin ABI 99",
                  bl_registry_find(f->ctx, reg, BL_PLUGIN_MODEL, FX "/fx_wrong_abi.so", &p));
    bl_registry_free(reg);

    /* An explicit path wins over a plugin of the same name found on the search path. */
    setenv("BATCHLAB_PLUGIN_PATH", FX "/path1", 1);
    reg = new_registry(f->ctx);
    BL_ASSERT_OK(f->ctx, bl_registry_scan(f->ctx, reg));
    BL_ASSERT_OK(f->ctx,
                 bl_registry_find(f->ctx, reg, BL_PLUGIN_SCHEDULER, FX "/path2/fx_dup_a.so", &p));
    assert_string_equal(p->version, "a");
    BL_ASSERT_OK(f->ctx, bl_registry_find(f->ctx, reg, BL_PLUGIN_SCHEDULER, "fx_dup", &p));
    assert_string_equal(p->version, "b");
    bl_registry_free(reg);
}

static void test_options_validated_through_objects(void **state)
{
    fixture *f = *state;
    bl_ctx *ctx = f->ctx;
    bl_registry *reg = new_registry(ctx);
    BL_ASSERT_OK(ctx, bl_registry_load(ctx, reg, FX "/fx_good.so"));
    const bl_plugin *model, *sched;
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_MODEL, FX "/fx_good.so", &model));
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_SCHEDULER, "fx_sched", &sched));

    bl_config *opts;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &opts));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, opts, "hiden", 3));
    bl_data_info info = {.sample = {1, {4, 0, 0}}, .classes = 3, .target_dim = 1};
    bl_net *net = NULL;
    bl_device *dev = NULL; /* validation fails before the device is used */
    BL_ASSERT_OK(ctx, bl_device_cpu_open(ctx, 1, &dev));
    BL_ASSERT_ERR(ctx, BL_EOPTION,
                  "model fx_model: unknown option 'hiden'; did you mean 'hidden'? accepted: "
                  "hidden, scale, bias, activation, depth, dropouts, tag",
                  bl_model_build(ctx, model, opts, &info, dev, 1, &net));
    assert_null(net);
    bl_config_free(opts);

    BL_ASSERT_OK(ctx, bl_config_new(ctx, &opts));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, opts, "batch", "big"));
    bl_scheduler *s = NULL;
    BL_ASSERT_ERR(ctx, BL_EOPTION,
                  "scheduler fx_sched: option 'batch' must be an integer (e.g. 10), got a string "
                  "(\"big\")",
                  bl_scheduler_open(ctx, sched, opts, &s));
    BL_ASSERT_OK(ctx, bl_config_set_text(ctx, opts, "batch", "big"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "scheduler fx_sched: option 'batch' (integer): cannot read",
                  bl_scheduler_open(ctx, sched, opts, &s));
    BL_ASSERT_OK(ctx, bl_config_set_text(ctx, opts, "batch", "64"));
    BL_ASSERT_OK(ctx, bl_scheduler_open(ctx, sched, opts, &s));
    bl_scheduler_close(s);
    bl_config_free(opts);

    /* A plugin of another kind. */
    BL_ASSERT_ERR(ctx, BL_EINVAL, "plugin 'fx_model' is a model, not a scheduler",
                  bl_scheduler_open(ctx, model, NULL, &s));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "plugin 'fx_sched' is a scheduler, not a dataset",
                  bl_dataset_open(ctx, sched, NULL, &(bl_dataset *){NULL}));
    bl_device_free(dev);
    bl_registry_free(reg);
}

static void test_scheduler_checks(void **state)
{
    fixture *f = *state;
    bl_ctx *ctx = f->ctx;
    bl_registry *reg = new_registry(ctx);
    const bl_plugin *sched;
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_SCHEDULER, FX "/fx_good.so", &sched));
    bl_train_state st = {.step = 5, .gns = NAN};
    bl_config *opts;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &opts));
    struct {
        const char *mode;
        const char *needle;
    } cases[] = {
        {"zero", "scheduler fx_sched returned batch 0 at step 5 (must be between 1 and its "
                 "max_batch 100)"},
        {"over", "returned batch 101"},
        {"nan", "scheduler fx_sched returned learning-rate factor nan"},
        {"fail", "scheduler fx_sched: asked to fail at step 5"},
        {"silent", "scheduler fx_sched: the plugin's next failed (returned -2) without saying why"},
    };
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, opts, "max", 100));
    BL_ASSERT_OK(ctx, bl_config_set_bool(ctx, opts, "gns", true));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, opts, "lr_factor", 0.5));
    bl_scheduler *s;
    BL_ASSERT_OK(ctx, bl_scheduler_open(ctx, sched, opts, &s));
    assert_int_equal(bl_scheduler_max_batch(s), 100);
    assert_true(bl_scheduler_needs_gns(s));
    assert_ptr_equal(bl_scheduler_plugin(s), sched);
    int64_t batch = 0;
    double lr = 0;
    BL_ASSERT_OK(ctx, bl_scheduler_next(ctx, s, &st, &batch, &lr));
    assert_int_equal(batch, 32);
    assert_true(lr == 0.5);
    bl_scheduler_close(s);

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        BL_ASSERT_OK(ctx, bl_config_set_string(ctx, opts, "mode", cases[i].mode));
        BL_ASSERT_OK(ctx, bl_scheduler_open(ctx, sched, opts, &s));
        batch = 7;
        int rc = bl_scheduler_next(ctx, s, &st, &batch, &lr);
        assert_true(rc < 0);
        if (!bl_test_contains(bl_errmsg(ctx), cases[i].needle))
            fail_msg("mode %s: \"%s\" lacks \"%s\"", cases[i].mode, bl_errmsg(ctx),
                     cases[i].needle);
        assert_int_equal(batch, 7); /* untouched on error */
        bl_scheduler_close(s);
    }
    /* A plugin's own create error is prefixed with its name. */
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, opts, "mode", "weird"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "scheduler fx_sched: unknown mode 'weird'",
                  bl_scheduler_open(ctx, sched, opts, &s));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, opts, "mode", "ok"));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, opts, "max", 0));
    BL_ASSERT_ERR(ctx, BL_EPLUGIN, "scheduler fx_sched: max_batch returned 0",
                  bl_scheduler_open(ctx, sched, opts, &s));
    bl_config_free(opts);
    bl_registry_free(reg);
    assert_false(is_loaded(FX "/fx_good.so"));
}

static void test_dataset_checks(void **state)
{
    fixture *f = *state;
    bl_ctx *ctx = f->ctx;
    bl_registry *reg = new_registry(ctx);
    BL_ASSERT_OK(ctx, bl_registry_load(ctx, reg, FX "/fx_data.so"));
    const bl_plugin *data, *fails, *old;
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_DATASET, "fx_data", &data));
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_DATASET, "fx_open_fails", &fails));
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_DATASET, "fx_old_ops", &old));

    bl_dataset *ds = NULL;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "dataset fx_open_fails: missing required option 'path'",
                  bl_dataset_open(ctx, fails, NULL, &ds));
    bl_config *opts;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &opts));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, opts, "path", "/no/such/file"));
    BL_ASSERT_ERR(ctx, BL_EIO,
                  "dataset fx_open_fails: cannot open '/no/such/file': No such file or directory",
                  bl_dataset_open(ctx, fails, opts, &ds));
    assert_null(ds);
    bl_config_free(opts);

    BL_ASSERT_OK(ctx, bl_config_new(ctx, &opts));
    BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, opts, "features=2"));
    BL_ASSERT_OK(ctx, bl_dataset_open(ctx, data, opts, &ds));
    bl_config_free(opts);
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->sample.dim[0], 2);
    assert_int_equal(info->classes, 3);
    assert_int_equal(info->count[BL_SPLIT_TRAIN], 10);
    assert_string_equal(info->class_names[2], "two");
    assert_ptr_equal(bl_dataset_plugin(ds), data);
    assert_int_equal(bl_config_int(bl_dataset_options(ds), "train"), 10);

    int64_t idx[] = {9, 0, 3};
    float x[6];
    int32_t y[3];
    BL_ASSERT_OK(ctx, bl_dataset_gather(ctx, ds, BL_SPLIT_TRAIN, idx, 3, x, y));
    assert_true(x[0] == 9.0f && x[1] == 9.1f && x[4] == 3.0f);
    assert_int_equal(y[0], 0);
    assert_int_equal(y[2], 0);
    idx[2] = 10;
    BL_ASSERT_ERR(ctx, BL_EINVAL,
                  "dataset fx_data: index 10 (position 2 of 3) is out of range for the train "
                  "split of 10 samples",
                  bl_dataset_gather(ctx, ds, BL_SPLIT_TRAIN, idx, 3, x, y));
    idx[2] = -1;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "index -1",
                  bl_dataset_gather(ctx, ds, BL_SPLIT_TRAIN, idx, 3, x, y));
    idx[0] = 4;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "index 4 (position 0 of 1) is out of range for the validation",
                  bl_dataset_gather(ctx, ds, BL_SPLIT_VALIDATION, idx, 1, x, y));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "dataset fx_data: there is no test split",
                  bl_dataset_gather(ctx, ds, BL_SPLIT_TEST, idx, 1, x, y));

    double v[2];
    int64_t n;
    BL_ASSERT_OK(ctx, bl_dataset_property(ctx, ds, "answer", v, 2, &n));
    assert_int_equal(n, 1);
    assert_true(v[0] == 42.0);
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "dataset fx_data has no property 'question'",
                  bl_dataset_property(ctx, ds, "question", v, 2, &n));
    bl_dataset_close(ds);

    /* An ops table from an older header: the host does not read 'property' beyond its size. */
    BL_ASSERT_OK(ctx, bl_dataset_open(ctx, old, NULL, &ds));
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "dataset fx_old_ops has no properties",
                  bl_dataset_property(ctx, ds, "answer", v, 2, &n));
    bl_dataset_close(ds);
    bl_registry_free(reg);
}

/* The shared object stays loaded while an object from it lives, after the registry is gone. */
static void test_unload_after_last_object(void **state)
{
    fixture *f = *state;
    bl_ctx *ctx = f->ctx;
    const char *good = FX "/fx_good.so", *data_so = FX "/fx_data.so";
    assert_false(is_loaded(good));
    bl_registry *reg = new_registry(ctx);
    const bl_plugin *sched, *data;
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_SCHEDULER, good, &sched));
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_DATASET, data_so, &data));
    bl_scheduler *s1, *s2;
    bl_dataset *ds;
    BL_ASSERT_OK(ctx, bl_scheduler_open(ctx, sched, NULL, &s1));
    BL_ASSERT_OK(ctx, bl_scheduler_open(ctx, sched, NULL, &s2));
    BL_ASSERT_OK(ctx, bl_dataset_open(ctx, data, NULL, &ds));
    bl_registry_free(reg);
    assert_true(is_loaded(good));
    assert_true(is_loaded(data_so));

    bl_train_state st = {.gns = NAN};
    int64_t batch;
    double lr;
    BL_ASSERT_OK(ctx, bl_scheduler_next(ctx, s1, &st, &batch, &lr)); /* code still there */
    bl_scheduler_close(s1);
    assert_true(is_loaded(good));
    BL_ASSERT_OK(ctx, bl_scheduler_next(ctx, s2, &st, &batch, &lr));
    bl_scheduler_close(s2);
    assert_false(is_loaded(good));
    assert_true(is_loaded(data_so));
    bl_dataset_close(ds);
    assert_false(is_loaded(data_so));

    /* retain/release by descriptor, as other host code may do. */
    reg = new_registry(ctx);
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_SCHEDULER, good, &sched));
    bl_plugin_retain(sched);
    bl_registry_free(reg);
    assert_true(is_loaded(good));
    assert_string_equal(sched->name, "fx_sched");
    bl_plugin_release(sched);
    assert_false(is_loaded(good));
}

/* A network from a model plugin (with its own layer type) keeps the plugin loaded. */
static void test_model_net_keeps_plugin(void **state)
{
    fixture *f = *state;
    bl_ctx *ctx = f->ctx;
    const char *good = FX "/fx_good.so";
    bl_device *dev;
    BL_ASSERT_OK(ctx, bl_device_cpu_open(ctx, 1, &dev));
    bl_registry *reg = new_registry(ctx);
    const bl_plugin *model;
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_MODEL, good, &model));
    bl_data_info info = {.sample = {1, {4, 0, 0}}, .classes = 3, .target_dim = 1,
                         .count = {10, 0, 0}};
    bl_config *opts;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &opts));
    BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, opts, "hidden={5}"));
    BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, opts, "activation=tanh"));
    bl_net *net = NULL;
    BL_ASSERT_OK(ctx, bl_model_build(ctx, model, opts, &info, dev, 7, &net));
    assert_non_null(net);
    /* scale, linear(5), tanh, linear(3) */
    assert_int_equal(bl_net_num_layers(net), 4);
    assert_string_equal(bl_net_layer(net, 0)->ops->kind, "fx_scale");
    assert_int_equal(bl_net_output_shape(net)->dim[0], 3);
    assert_int_equal(bl_net_loss_kind(net), BL_LOSS_CROSS_ENTROPY);
    bl_registry_free(reg);
    assert_true(is_loaded(good));
    bl_net_free(net);
    assert_false(is_loaded(good));

    /* The plugin's own error, prefixed; the half-built net is freed and the plugin unloaded. */
    reg = new_registry(ctx);
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, reg, BL_PLUGIN_MODEL, good, &model));
    BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, opts, "activation=swish"));
    net = NULL;
    int rc = bl_model_build(ctx, model, opts, &info, dev, 7, &net);
    assert_true(rc < 0);
    assert_true(bl_test_contains(bl_errmsg(ctx), "model fx_model: option 'activation'"));
    assert_null(net);
    bl_registry_free(reg);
    assert_false(is_loaded(good));
    bl_config_free(opts);
    bl_device_free(dev);
}

/* A descriptor compiled into the program (not loaded by the loader) works with the wrappers;
 * retain/release are no-ops for it. */
static int in_create(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    *handle = NULL;
    return BL_OK;
}
static void in_destroy(void *handle)
{
}
static int64_t in_max(void *handle)
{
    return 4;
}
static int in_next(void *handle, bl_ctx *ctx, const bl_train_state *s, int64_t *b, double *lr)
{
    *b = 4;
    return BL_OK;
}
/* A table from an older header: 'needs_gns' lies beyond its size and must not be read. */
static const bl_scheduler_ops in_ops = {offsetof(bl_scheduler_ops, needs_gns), in_create,
                                        in_destroy, in_max, in_next, NULL, NULL, NULL};
static const bl_plugin in_plugin = {BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_SCHEDULER,
                                    "inline", "1", "compiled in", NULL, &in_ops};

static void test_descriptor_in_program(void **state)
{
    fixture *f = *state;
    bl_scheduler *s;
    BL_ASSERT_OK(f->ctx, bl_scheduler_open(f->ctx, &in_plugin, NULL, &s));
    assert_false(bl_scheduler_needs_gns(s));
    bl_train_state st = {.gns = NAN};
    int64_t b;
    BL_ASSERT_OK(f->ctx, bl_scheduler_next(f->ctx, s, &st, &b, NULL));
    assert_int_equal(b, 4);
    bl_plugin_retain(&in_plugin);
    bl_plugin_release(&in_plugin);
    bl_scheduler_close(s);

    bl_plugin bad = in_plugin;
    bad.abi = 3;
    BL_ASSERT_ERR(f->ctx, BL_EPLUGIN, "descriptor #0 was built for plugin ABI 3",
                  bl_scheduler_open(f->ctx, &bad, NULL, &s));
    bl_config *opts;
    BL_ASSERT_OK(f->ctx, bl_config_new(f->ctx, &opts));
    BL_ASSERT_OK(f->ctx, bl_config_set_int(f->ctx, opts, "x", 1));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "scheduler inline: unknown option 'x'; it accepts no options",
                  bl_scheduler_open(f->ctx, &in_plugin, opts, &s));
    bl_config_free(opts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kind_and_split_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_good_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_loader_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_path_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_warns_and_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_first_found_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_path_beats_build_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_errors_and_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_validated_through_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scheduler_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dataset_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unload_after_last_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_net_keeps_plugin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_descriptor_in_program, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

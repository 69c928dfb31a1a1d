/* The results store: creating and identifying stores, refusing (and not touching) files that
 * are not ours or are newer. Runs and points are tested in test_store_runs.c, stale runs and
 * concurrent writers in test_store_stale.c. `test_store --fixture FILE` writes the store that
 * tests/cli/results.sh reads.
 *
 * The fixtures that batchlab must refuse are made here with SQLite itself (the top-level
 * CMakeLists links the store tests with SQLite). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batchlab/json.h"
#include "batchlab/store.h"
#include "storeutil.h"
#include "testutil.h"


/* ---- helpers -------------------------------------------------------------------------------- */

/* The bytes and modification time of a file, to show that it was not touched. */
typedef struct snapshot {
    char *bytes;
    size_t n;
    struct timespec mtime;
    ino_t ino;
} snapshot;

static snapshot take(const char *path)
{
    snapshot s = {0};
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    s.mtime = st.st_mtim;
    s.ino = st.st_ino;
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    s.bytes = malloc((size_t)st.st_size + 1);
    assert_non_null(s.bytes);
    s.n = fread(s.bytes, 1, (size_t)st.st_size, f);
    fclose(f);
    assert_int_equal(s.n, (size_t)st.st_size);
    return s;
}

static void assert_untouched(const char *path, snapshot *before)
{
    snapshot after = take(path);
    assert_int_equal(after.n, before->n);
    assert_memory_equal(after.bytes, before->bytes, before->n);
    assert_int_equal(after.mtime.tv_sec, before->mtime.tv_sec);
    assert_int_equal(after.mtime.tv_nsec, before->mtime.tv_nsec);
    assert_int_equal(after.ino, before->ino);
    free(after.bytes);
    free(before->bytes);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Big-endian 32-bit field of the SQLite header at `offset`. */
static uint32_t header_u32(const char *path, long offset)
{
    unsigned char b[4] = {0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, offset, SEEK_SET), 0);
    assert_int_equal(fread(b, 1, 4, f), 4);
    fclose(f);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* ---- creating and identifying --------------------------------------------------------------- */

static void test_create_schema(void **state)
{
    bl_ctx *ctx = *state;
    const char *path = fresh_path("new.db");
    bl_store *s = NULL;
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, path, bl_store_open_flags(ctx, path, 0, &s));
    assert_false(exists(path));
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    assert_string_equal(bl_store_path(s), path);
    bl_store_close(s);

    assert_int_equal(header_u32(path, 68), BL_STORE_APPLICATION_ID);
    assert_int_equal(header_u32(path, 60), BL_STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(path, "PRAGMA application_id"), BL_STORE_APPLICATION_ID);
    char *mode = raw_text(path, "PRAGMA journal_mode");
    assert_string_equal(mode, "wal");
    free(mode);
    char *app = raw_text(path, "SELECT value FROM meta WHERE key = 'application'");
    assert_string_equal(app, "batchlab");
    free(app);
    assert_int_equal(raw_int(path, "SELECT value FROM meta WHERE key = 'schema_version'"),
                     BL_STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                   "AND name IN ('meta', 'experiments', 'runs', 'points')"),
                     4);
    /* The columns the tools read. */
    assert_int_equal(raw_int(path, "SELECT count(*) FROM pragma_table_info('runs') WHERE name "
                                   "IN ('config_hash', 'status', 'stopped_by', 'host', "
                                   "'batchlab_version', 'time_to_target', 'max_batch_used', "
                                   "'samples_to_target', 'epochs_to_target', 'gns')"),
                     10);

    /* Open again: nothing to migrate, same store. */
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    bl_store_close(s);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), BL_STORE_SCHEMA_VERSION);

    /* Read-only: opens, refuses writes. */
    BL_ASSERT_OK(ctx, bl_store_open_flags(ctx, path, BL_STORE_READONLY, &s));
    int64_t id;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "read-only", bl_store_experiment(ctx, s, "x", &id));
    bl_store_close(s);
    bl_store_close(NULL);
}

static void test_default_path(void **state)
{
    (void)state;
    unsetenv("BATCHLAB_DB");
    assert_string_equal(bl_store_default_path(), "batchlab.db");
    setenv("BATCHLAB_DB", "", 1);
    assert_string_equal(bl_store_default_path(), "batchlab.db");
    setenv("BATCHLAB_DB", "/tmp/x.db", 1);
    assert_string_equal(bl_store_default_path(), "/tmp/x.db");
    unsetenv("BATCHLAB_DB");
}

static void test_empty_files_become_stores(void **state)
{
    bl_ctx *ctx = *state;
    /* A 0-byte file (touch batchlab.db). */
    const char *path = fresh_path("empty.db");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    bl_store *s;
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "empty", bl_store_open_flags(ctx, path, 0, &s));
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    bl_store_close(s);
    assert_int_equal(header_u32(path, 68), BL_STORE_APPLICATION_ID);

    /* The version-0 layout: a SQLite database with no tables and no ids. */
    path = fresh_path("v0.db");
    raw_exec(path, "PRAGMA page_size = 1024; VACUUM;");
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 0);
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    int64_t id;
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "e", &id));
    bl_store_close(s);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), BL_STORE_SCHEMA_VERSION);
}

/* The file at `path` must be refused with `code` and a message holding `needles`, and be left
 * exactly as it was. */
static void assert_refused(bl_ctx *ctx, const char *path, int code, const char *needle1,
                           const char *needle2)
{
    snapshot before = take(path);
    bl_store *s = NULL;
    BL_ASSERT_ERR(ctx, code, path, bl_store_open(ctx, path, &s));
    assert_true(bl_test_contains(bl_errmsg(ctx), needle1));
    if (needle2 && !bl_test_contains(bl_errmsg(ctx), needle2))
        fail_msg("message \"%s\" lacks \"%s\"", bl_errmsg(ctx), needle2);
    assert_true(bl_test_contains(bl_errmsg(ctx), "not changed"));
    assert_null(s);
    /* Read-only and must-exist opens refuse it the same way. */
    BL_ASSERT_ERR(ctx, code, path, bl_store_open_flags(ctx, path, BL_STORE_READONLY, &s));
    BL_ASSERT_ERR(ctx, code, path, bl_store_open_flags(ctx, path, 0, &s));
    assert_untouched(path, &before);
}

static void test_refuses_text_file(void **state)
{
    bl_ctx *ctx = *state;
    const char *path = fresh_path("notes.db");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 100; i++)
        fprintf(f, "line %d: these are my notes, not a database\n", i);
    fclose(f);
    assert_refused(ctx, path, BL_ESTORE, "not a SQLite database", NULL);

    /* Short binary junk. */
    path = fresh_path("short.db");
    f = fopen(path, "wb");
    fwrite("SQLite", 1, 6, f);
    fclose(f);
    assert_refused(ctx, path, BL_ESTORE, "not a SQLite database", NULL);

    /* A SQLite header followed by garbage. */
    path = fresh_path("garbage.db");
    f = fopen(path, "wb");
    fwrite("SQLite format 3", 1, 16, f);
    for (int i = 0; i < 4096; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    snapshot before = take(path);
    bl_store *s = NULL;
    BL_ASSERT_ERR(ctx, BL_ESTORE, path, bl_store_open(ctx, path, &s));
    assert_untouched(path, &before);
}

static void test_refuses_foreign_database(void **state)
{
    bl_ctx *ctx = *state;
    const char *path = fresh_path("other.db");
    raw_exec(path, "CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT);"
                   "INSERT INTO photos (name) VALUES ('cat.jpg'), ('dog.jpg');");
    assert_refused(ctx, path, BL_ESTORE, "another application", "1 tables");
    assert_int_equal(raw_int(path, "SELECT count(*) FROM photos"), 2);

    /* Another application id, even without tables. */
    path = fresh_path("other_id.db");
    raw_exec(path, "PRAGMA application_id = 305419896; PRAGMA user_version = 3;");
    assert_refused(ctx, path, BL_ESTORE, "0x12345678", "0x424c4142");

    /* A foreign database in WAL mode. */
    path = fresh_path("other_wal.db");
    raw_exec(path, "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);");
    assert_refused(ctx, path, BL_ESTORE, "another application", NULL);
}

static void test_refuses_newer_store(void **state)
{
    bl_ctx *ctx = *state;
    const char *path = fresh_path("newer.db");
    bl_store *s;
    int64_t exp, run;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "future", &exp));
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, s, exp, "r", "{}", 1, &run));
    bl_store_close(s);
    raw_exec(path, "PRAGMA user_version = 7;");
    assert_refused(ctx, path, BL_ESTORE, "schema version 7", "versions up to 6");
    assert_true(bl_test_contains(bl_errmsg(ctx), bl_version()));
    /* The run it had is still there, still "running": nothing marked it. */
    assert_int_equal(raw_int(path, "SELECT count(*) FROM runs WHERE status = 'running'"), 1);
}

/* A store holding one finished run (3 points), then turned back into what an older schema
 * wrote by `downgrade` (SQL run on the file). *r is the result recorded (free r->history). */
static const char *old_store(bl_ctx *ctx, const char *name, const char *downgrade, int64_t *exp,
                             int64_t *run, bl_run_result *r)
{
    const char *path = fresh_path(name);
    bl_store *s;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "old", exp));
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, s, *exp, "r", "{}", 1, run));
    *r = finished(BL_RUN_COMPLETED, 3);
    BL_ASSERT_OK(ctx, bl_store_run_end(ctx, s, *run, r));
    bl_store_close(s);
    raw_exec(path, downgrade);
    return path;
}

/* A store of schema version 1 (before steps_to_target_error) keeps opening: read-only as it is
 * (the column it lacks reads as -1, the file is not changed), and for writing migrated. */
static void test_version_1_store_still_opens(void **state)
{
    bl_ctx *ctx = *state;
    bl_store *s;
    int64_t exp, run;
    bl_run_result r;
    /* what version 1 wrote: no such column */
    const char *path = old_store(ctx, "v1.db",
                                 "DROP TABLE claims;"
                                 "ALTER TABLE runs DROP COLUMN ranks;"
                                 "ALTER TABLE runs DROP COLUMN steps_to_target_error;"
                                 "ALTER TABLE experiments DROP COLUMN recommendation_json;"
                                 "ALTER TABLE runs DROP COLUMN step_time_median;"
                                 "ALTER TABLE runs DROP COLUMN wall_time_to_target;"
                                 "UPDATE meta SET value = '1' WHERE key = 'schema_version';"
                                 "PRAGMA user_version = 1;",
                                 &exp, &run, &r);

    seen_runs v;
    memset(&v, 0, sizeof v);
    BL_ASSERT_OK(ctx, bl_store_open_flags(ctx, path, BL_STORE_READONLY, &s));
    BL_ASSERT_OK(ctx, bl_store_list_runs(ctx, s, "old", see_run, &v));
    assert_int_equal(v.n, 1);
    assert_int_equal(v.last.steps_to_target, 20);
    assert_int_equal(v.last.steps_to_target_error, -1);
    bl_run_result back;
    BL_ASSERT_OK(ctx, bl_store_load_result(ctx, s, run, &back, NULL));
    assert_int_equal(back.steps_to_target_error, -1);
    bl_run_result_free(&back);
    bl_store_close(s);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 1);

    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    assert_int_equal(raw_int(path, "PRAGMA user_version"), BL_STORE_SCHEMA_VERSION);
    memset(&v, 0, sizeof v);
    BL_ASSERT_OK(ctx, bl_store_get_run(ctx, s, run, see_run, &v));
    assert_int_equal(v.last.steps_to_target_error, -1);
    int64_t run2;
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, s, exp, "r2", "{}", 1, &run2));
    BL_ASSERT_OK(ctx, bl_store_run_end(ctx, s, run2, &r));
    BL_ASSERT_OK(ctx, bl_store_get_run(ctx, s, run2, see_run, &v));
    assert_int_equal(v.last.steps_to_target_error, 10);
    bl_store_close(s);
    free(r.history);
}

/* A store of schema version 2 (before step_time_median and wall_time_to_target) keeps
 * opening: read-only as it is, its time_to_target (then the wall time) read as the wall time
 * too and no median; for writing migrated the same way, and new runs keep all three. */
static void test_version_2_store_still_opens(void **state)
{
    bl_ctx *ctx = *state;
    bl_store *s;
    int64_t exp, run;
    bl_run_result r;
    const char *path = old_store(ctx, "v2.db",
                                 "DROP TABLE claims;"
                                 "ALTER TABLE runs DROP COLUMN ranks;"
                                 "ALTER TABLE experiments DROP COLUMN recommendation_json;"
                                 "ALTER TABLE runs DROP COLUMN step_time_median;"
                                 "ALTER TABLE runs DROP COLUMN wall_time_to_target;"
                                 "UPDATE runs SET time_to_target = 2.75;"
                                 "UPDATE meta SET value = '2' WHERE key = 'schema_version';"
                                 "PRAGMA user_version = 2;",
                                 &exp, &run, &r);

    seen_runs v;
    memset(&v, 0, sizeof v);
    BL_ASSERT_OK(ctx, bl_store_open_flags(ctx, path, BL_STORE_READONLY, &s));
    BL_ASSERT_OK(ctx, bl_store_list_runs(ctx, s, "old", see_run, &v));
    assert_int_equal(v.n, 1);
    assert_true(isnan(v.last.step_time_median));
    assert_true(v.last.time_to_target == 2.75 && v.last.wall_time_to_target == 2.75);
    assert_int_equal(v.last.steps_to_target_error, 10);
    bl_run_result back;
    BL_ASSERT_OK(ctx, bl_store_load_result(ctx, s, run, &back, NULL));
    assert_true(isnan(back.step_time_median));
    assert_true(back.time_to_target == 2.75 && back.wall_time_to_target == 2.75);
    bl_run_result_free(&back);
    bl_store_close(s);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 2);

    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    assert_int_equal(raw_int(path, "PRAGMA user_version"), BL_STORE_SCHEMA_VERSION);
    memset(&v, 0, sizeof v);
    BL_ASSERT_OK(ctx, bl_store_get_run(ctx, s, run, see_run, &v));
    assert_true(isnan(v.last.step_time_median));
    assert_true(v.last.time_to_target == 2.75 && v.last.wall_time_to_target == 2.75);
    int64_t run2;
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, s, exp, "r2", "{}", 1, &run2));
    BL_ASSERT_OK(ctx, bl_store_run_end(ctx, s, run2, &r));
    BL_ASSERT_OK(ctx, bl_store_get_run(ctx, s, run2, see_run, &v));
    assert_true(v.last.step_time_median == 0.125);
    assert_true(v.last.time_to_target == 2.5 && v.last.wall_time_to_target == 2.75);
    bl_store_close(s);
    free(r.history);
}

/* A store of schema version 3 (before 'crashed' and 'timed_out' and the claims table): the
 * migration rebuilds `runs`, which must keep every run and every point (with foreign keys on,
 * dropping the old table would have deleted the points), and the new statuses can be written. */
static void test_version_3_store_keeps_points(void **state)
{
    bl_ctx *ctx = *state;
    bl_store *s;
    int64_t exp, run;
    bl_run_result r;
    const char *path = old_store(ctx, "v3.db",
                                 "DROP TABLE claims;"
                                 "ALTER TABLE runs DROP COLUMN ranks;"
                                 "ALTER TABLE experiments DROP COLUMN recommendation_json;"
                                 "UPDATE meta SET value = '3' WHERE key = 'schema_version';"
                                 "PRAGMA user_version = 3;",
                                 &exp, &run, &r);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM points"), 3);
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    assert_int_equal(raw_int(path, "PRAGMA user_version"), BL_STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM points"), 3);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM runs WHERE status = 'completed'"), 1);
    int64_t run2;
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, s, exp, "r2", "{}", 1, &run2));
    assert_true(run2 > run);
    r.status = BL_RUN_CRASHED;
    BL_ASSERT_OK(ctx, bl_store_run_end(ctx, s, run2, &r));
    seen_runs v;
    memset(&v, 0, sizeof v);
    BL_ASSERT_OK(ctx, bl_store_get_run(ctx, s, run2, see_run, &v));
    assert_int_equal(v.last.status, BL_RUN_CRASHED);
    r.status = BL_RUN_TIMED_OUT;
    BL_ASSERT_OK(ctx, bl_store_run_end(ctx, s, run2, &r));
    BL_ASSERT_OK(ctx, bl_store_get_run(ctx, s, run2, see_run, &v));
    assert_int_equal(v.last.status, BL_RUN_TIMED_OUT);
    bl_store_close(s);
    free(r.history);
}

static void test_bad_paths(void **state)
{
    bl_ctx *ctx = *state;
    bl_store *s;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "no path", bl_store_open(ctx, "", &s));
    BL_ASSERT_ERR(ctx, BL_EIO, "directory", bl_store_open(ctx, bl_test_tmpdir("store"), &s));
    char path[1200];
    snprintf(path, sizeof path, "%s/no/such/dir/x.db", bl_test_tmpdir("store"));
    BL_ASSERT_ERR(ctx, BL_EIO, path, bl_store_open(ctx, path, &s));
}

/* ---- a store for the CLI tests (tests/cli/results.sh) -------------------------------------- */

/* `test_store --fixture FILE` writes a small store through the API: experiment "sweep" with
 * two completed runs (3 points each, NaN included) and one failed run with no points, and one
 * run outside any experiment. */
static int make_fixture(const char *path)
{
    bl_ctx *ctx = bl_ctx_new();
    bl_store *s;
    int64_t exp, run;
    if (bl_store_open(ctx, path, &s) != BL_OK || bl_store_experiment(ctx, s, "sweep", &exp))
        goto fail;
    static const char *const configs[] = {
        "{\"batch\":32,\"epochs\":3,\"model\":{\"name\":\"mlp\",\"hidden\":[64,32]},"
        "\"optimizer\":{\"name\":\"sgd\",\"lr\":0.05}}",
        "{\"batch\":256,\"epochs\":3,\"model\":{\"name\":\"mlp\",\"hidden\":[64,32]},"
        "\"optimizer\":{\"name\":\"sgd\",\"lr\":0.4}}",
        "{\"batch\":4096,\"epochs\":3,\"optimizer\":{\"name\":\"sgd\",\"lr\":3.2}}",
    };
    static const char *const labels[] = {"b=32", "b=256, \"large\"", "b=4096"};
    for (int k = 0; k < 3; k++) {
        if (bl_store_run_begin(ctx, s, exp, labels[k], configs[k], 1, &run))
            goto fail;
        bl_run_result r = finished(k == 2 ? BL_RUN_FAILED : BL_RUN_COMPLETED, k == 2 ? 0 : 3);
        for (size_t i = 0; i < r.history_count; i++) {
            r.history[i].batch = k == 0 ? 32 : 256;
            if (bl_store_add_point(ctx, s, run, &r.history[i]))
                goto fail;
        }
        if (k == 2) {
            snprintf(r.error, sizeof r.error, "%s", "out of memory for batch 4096");
            snprintf(r.stopped_by, sizeof r.stopped_by, "%s", "error");
            r.time_to_target = NAN;
        }
        int rc = bl_store_run_end(ctx, s, run, &r);
        free(r.history);
        if (rc)
            goto fail;
    }
    if (bl_store_run_begin(ctx, s, 0, "loose", "{\"batch\":8,\"lr\":0.01}", 2, &run))
        goto fail;
    bl_run_result r = finished(BL_RUN_COMPLETED, 2);
    int rc = bl_store_run_end(ctx, s, run, &r);
    free(r.history);
    if (rc)
        goto fail;
    bl_store_close(s);
    bl_ctx_free(ctx);
    return 0;
fail:
    fprintf(stderr, "test_store --fixture: %s\n", bl_errmsg(ctx));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--fixture") == 0)
        return make_fixture(argv[2]);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_schema),
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_empty_files_become_stores),
        cmocka_unit_test(test_refuses_text_file),
        cmocka_unit_test(test_refuses_foreign_database),
        cmocka_unit_test(test_refuses_newer_store),
        cmocka_unit_test(test_version_1_store_still_opens),
        cmocka_unit_test(test_version_2_store_still_opens),
        cmocka_unit_test(test_version_3_store_keeps_points),
        cmocka_unit_test(test_bad_paths),
    };
    return cmocka_run_group_tests(tests, ctx_setup, ctx_teardown);
}

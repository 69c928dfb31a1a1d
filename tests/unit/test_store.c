/* The results store: creating and identifying stores, refusing (and not touching) files that
 * are not ours or are newer, experiments, runs and points (NaN → NULL → NaN), the resume
 * lookup, rebuilt results, stale runs of killed processes, and concurrent writers.
 *
 * The fixtures that batchlab must refuse are made here with SQLite itself (the top-level
 * CMakeLists links this test with SQLite). */
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
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static int ctx_setup(void **state)
{
    *state = bl_ctx_new();
    return *state ? 0 : -1;
}

static int ctx_teardown(void **state)
{
    bl_ctx_free(*state);
    return 0;
}

/* A fresh path (no file) in this test's directory. */
static const char *fresh_path(const char *name)
{
    static char path[4][1200];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", bl_test_tmpdir("store"), name);
    unlink(p);
    char side[1300];
    snprintf(side, sizeof side, "%s-wal", p);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", p);
    unlink(side);
    return p;
}

/* Runs SQL on `path` with a plain SQLite connection (creating the file). */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

/* The first column of the first row of `sql` as an integer. */
static long long raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static char *raw_text(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char *v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

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

static bl_eval_point point_at(int64_t step)
{
    return (bl_eval_point){.step = step, .samples = step * 32, .epoch = (double)step / 10,
                           .wall = 0.5 * (double)step, .batch = 32, .lr = 0.1,
                           .train_loss = 1.0 / (double)(step + 1), .train_accuracy = NAN,
                           .val_loss = 2.0 / (double)(step + 1),
                           .val_accuracy = 0.5 + 0.001 * (double)step, .gns = NAN,
                           .samples_per_sec = 1000.0 + (double)step};
}

static bool same(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static void assert_same_point(const bl_eval_point *a, const bl_eval_point *b)
{
    assert_int_equal(a->step, b->step);
    assert_int_equal(a->samples, b->samples);
    assert_int_equal(a->batch, b->batch);
    assert_true(same(a->epoch, b->epoch));
    assert_true(same(a->wall, b->wall));
    assert_true(same(a->lr, b->lr));
    assert_true(same(a->train_loss, b->train_loss));
    assert_true(same(a->train_accuracy, b->train_accuracy));
    assert_true(same(a->val_loss, b->val_loss));
    assert_true(same(a->val_accuracy, b->val_accuracy));
    assert_true(same(a->gns, b->gns));
    assert_true(same(a->samples_per_sec, b->samples_per_sec));
}

/* A finished result with `n` points (history owned by the caller: free it). */
static bl_run_result finished(bl_run_status status, size_t n)
{
    bl_run_result r;
    memset(&r, 0, sizeof r);
    r.status = status;
    snprintf(r.stopped_by, sizeof r.stopped_by, "%s", "epochs");
    r.history = calloc(n ? n : 1, sizeof *r.history);
    assert_non_null(r.history);
    for (size_t i = 0; i < n; i++)
        r.history[i] = point_at((int64_t)(i + 1) * 10);
    r.history_count = n;
    if (n)
        r.final = r.history[n - 1];
    r.steps = (int64_t)n * 10;
    r.samples = r.steps * 32;
    r.epochs = (double)n;
    r.time = 1.25 * (double)n;
    r.eval_time = 0.25;
    r.test_loss = 0.3;
    r.test_accuracy = NAN;
    r.diverged_step = -1;
    r.time_to_target = 2.5;
    r.epochs_to_target = 2;
    r.steps_to_target = 20;
    r.samples_to_target = 640;
    r.max_batch_used = 32;
    return r;
}

static int collect_points(void *user, int64_t run_id, const bl_eval_point *p)
{
    bl_run_result *r = user;
    (void)run_id;
    r->history[r->history_count++] = *p;
    return 0;
}

static int64_t count_rows(bl_ctx *ctx, bl_store *s, int64_t run_id)
{
    bl_run_result got;
    memset(&got, 0, sizeof got);
    got.history = calloc(1000, sizeof *got.history);
    BL_ASSERT_OK(ctx, bl_store_list_points(ctx, s, run_id, collect_points, &got));
    free(got.history);
    return (int64_t)got.history_count;
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
    assert_refused(ctx, path, BL_ESTORE, "schema version 7", "versions up to 1");
    assert_true(bl_test_contains(bl_errmsg(ctx), bl_version()));
    /* The run it had is still there, still "running": nothing marked it. */
    assert_int_equal(raw_int(path, "SELECT count(*) FROM runs WHERE status = 'running'"), 1);
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

/* ---- experiments, runs, points -------------------------------------------------------------- */

static void test_experiments(void **state)
{
    bl_ctx *ctx = *state;
    const char *path = fresh_path("exp.db");
    bl_store *s;
    int64_t a, a2, b, found;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "has none", bl_store_find_experiment(ctx, s, "x", &found));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "alpha", &a));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "beta", &b));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "alpha", &a2));
    assert_true(a > 0 && b > 0 && a != b);
    assert_int_equal(a, a2);
    BL_ASSERT_OK(ctx, bl_store_find_experiment(ctx, s, "beta", &found));
    assert_int_equal(found, b);
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "'alpha', 'beta'",
                  bl_store_find_experiment(ctx, s, "gamma", &found));
    assert_true(bl_test_contains(bl_errmsg(ctx), path));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "needs a name", bl_store_experiment(ctx, s, "", &found));
    bl_store_close(s);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM experiments"), 2);
}

static void test_points_round_trip(void **state)
{
    bl_ctx *ctx = *state;
    const char *path = fresh_path("points.db");
    bl_store *s;
    int64_t exp, run;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "e", &exp));
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, s, exp, "b=32", "{\"batch\": 32}", 7, &run));
    bl_eval_point pts[5];
    for (int i = 0; i < 5; i++) {
        pts[i] = point_at(i * 100);
        if (i == 2) {
            pts[i].val_loss = INFINITY; /* stored as NULL, read back as NaN */
            pts[i].lr = NAN;
        }
        BL_ASSERT_OK(ctx, bl_store_add_point(ctx, s, run, &pts[i]));
        /* Each point is committed as it is made: another connection sees it now. */
        assert_int_equal(raw_int(path, "SELECT count(*) FROM points"), i + 1);
    }
    pts[2].val_loss = NAN;
    assert_int_equal(raw_int(path, "SELECT count(*) FROM points WHERE train_accuracy IS NULL "
                                   "AND gns IS NULL"),
                     5);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM points WHERE val_loss IS NULL"), 1);

    bl_run_result got;
    memset(&got, 0, sizeof got);
    got.history = calloc(16, sizeof *got.history);
    BL_ASSERT_OK(ctx, bl_store_list_points(ctx, s, run, collect_points, &got));
    assert_int_equal(got.history_count, 5);
    for (int i = 0; i < 5; i++)
        assert_same_point(&got.history[i], &pts[i]);
    free(got.history);

    /* Unknown run. */
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no run 999", bl_store_add_point(ctx, s, 999, &pts[0]));
    bl_store_close(s);
}

typedef struct seen_runs {
    int n;
    bl_store_run last;
    char label[64], status[32], experiment[64], config[256], hash[17];
} seen_runs;

static int see_run(void *user, const bl_store_run *r)
{
    seen_runs *v = user;
    v->n++;
    v->last = *r;
    snprintf(v->label, sizeof v->label, "%s", r->label);
    snprintf(v->status, sizeof v->status, "%s", bl_run_status_name(r->status));
    snprintf(v->experiment, sizeof v->experiment, "%s", r->experiment);
    snprintf(v->config, sizeof v->config, "%s", r->config_json);
    snprintf(v->hash, sizeof v->hash, "%s", r->config_hash);
    /* The strings of `last` are valid during the call only. */
    v->last.label = v->last.experiment = v->last.config_json = v->last.config_hash = NULL;
    return 0;
}

static void test_run_life_and_load(void **state)
{
    bl_ctx *ctx = *state;
    const char *path = fresh_path("life.db");
    bl_store *s;
    int64_t exp, run;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "sweep", &exp));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "JSON", bl_store_run_begin(ctx, s, exp, "x", "{batch:", 1,
                                                               &run));
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no experiment 42",
                  bl_store_run_begin(ctx, s, 42, "x", "{}", 1, &run));
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, s, exp, "b=64",
                                         "{ \"optimizer\": {\"lr\": 0.1}, \"batch\": 64 }", 3,
                                         &run));
    seen_runs v = {0};
    BL_ASSERT_OK(ctx, bl_store_get_run(ctx, s, run, see_run, &v));
    assert_string_equal(v.status, "running");
    assert_string_equal(v.config, "{\"batch\":64,\"optimizer\":{\"lr\":0.1}}");
    assert_true(isnan(v.last.val_accuracy));
    assert_int_equal(v.last.steps, -1);

    /* The engine's history: points 1–2 were stored live, 3–4 only reach run_end. */
    bl_run_result r = finished(BL_RUN_COMPLETED, 4);
    BL_ASSERT_OK(ctx, bl_store_add_point(ctx, s, run, &r.history[0]));
    BL_ASSERT_OK(ctx, bl_store_add_point(ctx, s, run, &r.history[1]));
    bl_run_result running = r;
    running.status = BL_RUN_RUNNING;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "running", bl_store_run_end(ctx, s, run, &running));
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no run 777", bl_store_run_end(ctx, s, 777, &r));
    BL_ASSERT_OK(ctx, bl_store_run_end(ctx, s, run, &r));
    assert_int_equal(count_rows(ctx, s, run), 4);

    memset(&v, 0, sizeof v);
    BL_ASSERT_OK(ctx, bl_store_list_runs(ctx, s, "sweep", see_run, &v));
    assert_int_equal(v.n, 1);
    assert_string_equal(v.status, "completed");
    assert_string_equal(v.label, "b=64");
    assert_string_equal(v.experiment, "sweep");
    assert_int_equal(v.last.point_count, 4);
    assert_int_equal(v.last.seed, 3);
    assert_int_equal(v.last.steps, 40);
    assert_true(v.last.time_to_target == 2.5);
    assert_true(isnan(v.last.test_accuracy));
    assert_int_equal(v.last.diverged_step, -1);
    assert_int_equal(v.last.steps_to_target, 20);
    assert_true(v.last.val_accuracy == r.final.val_accuracy);
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "'sweep'", bl_store_list_runs(ctx, s, "nope", see_run, &v));
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no run 555", bl_store_get_run(ctx, s, 555, see_run, &v));

    /* The result rebuilt. */
    bl_run_result back;
    char *config = NULL;
    BL_ASSERT_OK(ctx, bl_store_load_result(ctx, s, run, &back, &config));
    assert_string_equal(config, "{\"batch\":64,\"optimizer\":{\"lr\":0.1}}");
    free(config);
    assert_int_equal(back.status, BL_RUN_COMPLETED);
    assert_string_equal(back.stopped_by, "epochs");
    assert_int_equal(back.history_count, 4);
    for (size_t i = 0; i < 4; i++)
        assert_same_point(&back.history[i], &r.history[i]);
    assert_same_point(&back.final, &r.final);
    assert_int_equal(back.steps, r.steps);
    assert_int_equal(back.samples, r.samples);
    assert_true(back.time == r.time && back.eval_time == r.eval_time);
    assert_true(back.test_loss == 0.3 && isnan(back.test_accuracy));
    assert_true(back.time_to_target == 2.5 && back.epochs_to_target == 2);
    assert_int_equal(back.samples_to_target, 640);
    assert_int_equal(back.diverged_step, -1);
    assert_int_equal(back.max_batch_used, 32);
    bl_run_result_free(&back);
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no run 555", bl_store_load_result(ctx, s, 555, &back,
                                                                          NULL));
    free(r.history);
    bl_store_close(s);
}

/* ---- resume --------------------------------------------------------------------------------- */

static int64_t run_with(bl_ctx *ctx, bl_store *s, int64_t exp, const char *config,
                        bl_run_status status)
{
    int64_t run;
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, s, exp, NULL, config, 1, &run));
    if (status != BL_RUN_RUNNING) {
        bl_run_result r = finished(status, 1);
        BL_ASSERT_OK(ctx, bl_store_run_end(ctx, s, run, &r));
        free(r.history);
    }
    return run;
}

static void test_resume_lookup(void **state)
{
    bl_ctx *ctx = *state;
    const char *path = fresh_path("resume.db");
    bl_store *s;
    int64_t a, b, found;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "a", &a));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "b", &b));
    const char *cfg = "{\"batch\":128,\"seed\":1,\"optimizer\":{\"name\":\"sgd\",\"lr\":0.05}}";
    const char *same_cfg = "{ \"seed\": 1, \"optimizer\": { \"lr\": 0.05, \"name\": \"sgd\" },\n"
                           "  \"batch\": 128 }";
    const char *other = "{\"batch\":256,\"seed\":1,\"optimizer\":{\"name\":\"sgd\",\"lr\":0.05}}";

    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no finished run", bl_store_find_completed(ctx, s, a, cfg,
                                                                                 &found));
    /* Not finished: failed, interrupted, still running. */
    run_with(ctx, s, a, cfg, BL_RUN_FAILED);
    run_with(ctx, s, a, cfg, BL_RUN_INTERRUPTED);
    run_with(ctx, s, a, cfg, BL_RUN_RUNNING);
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, path, bl_store_find_completed(ctx, s, a, cfg, &found));
    /* Finished: the newest one wins, whatever the key order and spacing. */
    int64_t done1 = run_with(ctx, s, a, cfg, BL_RUN_COMPLETED);
    BL_ASSERT_OK(ctx, bl_store_find_completed(ctx, s, a, same_cfg, &found));
    assert_int_equal(found, done1);
    int64_t done2 = run_with(ctx, s, a, same_cfg, BL_RUN_DIVERGED);
    BL_ASSERT_OK(ctx, bl_store_find_completed(ctx, s, a, cfg, &found));
    assert_int_equal(found, done2);
    run_with(ctx, s, a, cfg, BL_RUN_FAILED); /* a later failure does not hide it */
    BL_ASSERT_OK(ctx, bl_store_find_completed(ctx, s, a, cfg, &found));
    assert_int_equal(found, done2);
    /* By hash (either case). */
    char hash[17];
    BL_ASSERT_OK(ctx, bl_json_hash(ctx, same_cfg, hash));
    BL_ASSERT_OK(ctx, bl_store_find_completed(ctx, s, a, hash, &found));
    assert_int_equal(found, done2);
    for (char *c = hash; *c; c++)
        *c = (char)(*c >= 'a' && *c <= 'f' ? *c - 'a' + 'A' : *c);
    BL_ASSERT_OK(ctx, bl_store_find_completed(ctx, s, a, hash, &found));
    assert_int_equal(found, done2);
    seen_runs v = {0};
    BL_ASSERT_OK(ctx, bl_store_get_run(ctx, s, done2, see_run, &v));
    BL_ASSERT_OK(ctx, bl_json_hash(ctx, cfg, hash));
    assert_string_equal(v.hash, hash);
    /* Another configuration, another experiment, no experiment. */
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no finished run",
                  bl_store_find_completed(ctx, s, a, other, &found));
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no finished run",
                  bl_store_find_completed(ctx, s, b, cfg, &found));
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no finished run",
                  bl_store_find_completed(ctx, s, 0, cfg, &found));
    int64_t loose = run_with(ctx, s, 0, cfg, BL_RUN_COMPLETED);
    BL_ASSERT_OK(ctx, bl_store_find_completed(ctx, s, 0, cfg, &found));
    assert_int_equal(found, loose);
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "JSON", bl_store_find_completed(ctx, s, a, "{x", &found));
    bl_store_close(s);
}

/* ---- stale runs ----------------------------------------------------------------------------- */

static void test_stale_runs(void **state)
{
    bl_ctx *ctx = *state;
    const char *path = fresh_path("stale.db");
    bl_store *s;
    int64_t exp, mine, other_host, marked;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "e", &exp));
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, s, exp, "alive", "{\"b\":1}", 1, &mine));
    BL_ASSERT_OK(ctx, bl_store_run_begin(ctx, s, exp, "far", "{\"b\":3}", 1, &other_host));
    bl_store_close(s);
    raw_exec(path, "UPDATE runs SET host = 'some-other-machine' WHERE label = 'far'");

    /* A process that starts a run, stores a point and is killed. */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        bl_ctx *c = bl_ctx_new();
        bl_store *cs;
        int64_t cexp, crun;
        bl_eval_point p = point_at(5);
        if (bl_store_open(c, path, &cs) != BL_OK || bl_store_experiment(c, cs, "e", &cexp) ||
            bl_store_run_begin(c, cs, cexp, "killed", "{\"b\":2}", 1, &crun) ||
            bl_store_add_point(c, cs, crun, &p))
            _exit(1);
        kill(getpid(), SIGKILL);
        _exit(2);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM runs WHERE status = 'running'"), 3);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM points"), 1);

    /* The next open of the experiment shows it interrupted; the live run of this process and
     * the run of another machine stay "running". */
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, s, "e", &exp));
    char *st = raw_text(path, "SELECT status || ' ' || stopped_by FROM runs "
                              "WHERE label = 'killed'");
    assert_string_equal(st, "interrupted stale");
    free(st);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM runs WHERE status = 'running'"), 2);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM runs WHERE label IN ('alive', 'far') "
                                   "AND status = 'running'"),
                     2);
    BL_ASSERT_OK(ctx, bl_store_mark_stale(ctx, s, 0, &marked));
    assert_int_equal(marked, 0);

    /* A pid reused by another process: the stored start time no longer matches. */
    bl_store_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT pid_start FROM runs WHERE label = 'alive'",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    const char *ident = (const char *)sqlite3_column_text(q, 0);
    if (ident && strrchr(ident, ' ')) {
        char fake[256];
        snprintf(fake, sizeof fake, "%.*s 1", (int)(strrchr(ident, ' ') - ident), ident);
        sqlite3_finalize(q);
        assert_int_equal(sqlite3_prepare_v2(db, "UPDATE runs SET pid_start = ? WHERE label = "
                                                "'alive'",
                                            -1, &q, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(q, 1, fake, -1, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(q), SQLITE_DONE);
        sqlite3_finalize(q);
        sqlite3_close(db);
        BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
        BL_ASSERT_OK(ctx, bl_store_mark_stale(ctx, s, exp, &marked));
        assert_int_equal(marked, 1);
        bl_store_close(s);
        assert_int_equal(raw_int(path, "SELECT count(*) FROM runs WHERE status = 'running'"),
                         1);
    } else {
        sqlite3_finalize(q);
        sqlite3_close(db);
        print_message("no /proc process identity here: pid reuse check not tested\n");
    }
}

/* ---- concurrent writers --------------------------------------------------------------------- */

#define WRITERS 2
#define POINTS_EACH 200

static void test_concurrent_writers(void **state)
{
    bl_ctx *ctx = *state;
    const char *path = fresh_path("concurrent.db");
    pid_t kids[WRITERS];
    int go[2];
    assert_int_equal(pipe(go), 0);
    for (int w = 0; w < WRITERS; w++) {
        kids[w] = fork();
        assert_true(kids[w] >= 0);
        if (kids[w] == 0) {
            /* Each writer creates the store if it must, gets the experiment, runs. */
            char c;
            close(go[1]);
            if (read(go[0], &c, 1) < 0)
                _exit(3);
            bl_ctx *cx = bl_ctx_new();
            bl_store *cs;
            int64_t e, run;
            char label[32];
            snprintf(label, sizeof label, "writer %d", w);
            if (bl_store_open(cx, path, &cs) != BL_OK ||
                bl_store_experiment(cx, cs, "race", &e) != BL_OK ||
                bl_store_run_begin(cx, cs, e, label, "{}", (uint64_t)w, &run) != BL_OK) {
                fprintf(stderr, "writer %d: %s\n", w, bl_errmsg(cx));
                _exit(1);
            }
            for (int i = 0; i < POINTS_EACH; i++) {
                bl_eval_point p = point_at(i);
                if (bl_store_add_point(cx, cs, run, &p) != BL_OK) {
                    fprintf(stderr, "writer %d, point %d: %s\n", w, i, bl_errmsg(cx));
                    _exit(1);
                }
            }
            bl_run_result r = finished(BL_RUN_COMPLETED, 0);
            if (bl_store_run_end(cx, cs, run, &r) != BL_OK) {
                fprintf(stderr, "writer %d: %s\n", w, bl_errmsg(cx));
                _exit(1);
            }
            bl_store_close(cs);
            bl_ctx_free(cx);
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]); /* start them together */
    for (int w = 0; w < WRITERS; w++) {
        int status;
        assert_int_equal(waitpid(kids[w], &status, 0), kids[w]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(raw_int(path, "SELECT count(*) FROM points"), WRITERS * POINTS_EACH);
    assert_int_equal(raw_int(path, "SELECT count(DISTINCT run_id) FROM points"), WRITERS);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM runs WHERE status = 'completed'"),
                     WRITERS);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM experiments"), 1);
    char *ok = raw_text(path, "PRAGMA integrity_check");
    assert_string_equal(ok, "ok");
    free(ok);

    bl_store *s;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &s));
    seen_runs v = {0};
    BL_ASSERT_OK(ctx, bl_store_list_runs(ctx, s, "race", see_run, &v));
    assert_int_equal(v.n, WRITERS);
    assert_int_equal(v.last.point_count, POINTS_EACH);
    bl_store_close(s);
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
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_experiments),
        cmocka_unit_test(test_points_round_trip),
        cmocka_unit_test(test_run_life_and_load),
        cmocka_unit_test(test_resume_lookup),
        cmocka_unit_test(test_stale_runs),
        cmocka_unit_test(test_concurrent_writers),
    };
    return cmocka_run_group_tests(tests, ctx_setup, ctx_teardown);
}

/* Helpers shared by the results store tests (test_store*.c): plain SQLite access to the files
 * they make, sample points and results. See storeutil.h. */
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


int ctx_setup(void **state)
{
    *state = bl_ctx_new();
    return *state ? 0 : -1;
}

int ctx_teardown(void **state)
{
    bl_ctx_free(*state);
    return 0;
}

/* A fresh path (no file) in this test's directory. */
const char *fresh_path(const char *name)
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
void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

/* The first column of the first row of `sql` as an integer. */
long long raw_int(const char *path, const char *sql)
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

char *raw_text(const char *path, const char *sql)
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

bl_eval_point point_at(int64_t step)
{
    return (bl_eval_point){.step = step, .samples = step * 32, .epoch = (double)step / 10,
                           .wall = 0.5 * (double)step, .batch = 32, .lr = 0.1,
                           .train_loss = 1.0 / (double)(step + 1), .train_accuracy = NAN,
                           .val_loss = 2.0 / (double)(step + 1),
                           .val_accuracy = 0.5 + 0.001 * (double)step, .gns = NAN,
                           .samples_per_sec = 1000.0 + (double)step};
}

/* A finished result with `n` points (history owned by the caller: free it). */
bl_run_result finished(bl_run_status status, size_t n)
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
    r.time_to_target = 2.5;         /* 20 steps × 0.125 s */
    r.step_time_median = 0.125;
    r.wall_time_to_target = 2.75;
    r.epochs_to_target = 2;
    r.steps_to_target = 20;
    r.steps_to_target_error = 10;
    r.samples_to_target = 640;
    r.max_batch_used = 32;
    return r;
}

int see_run(void *user, const bl_store_run *r)
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

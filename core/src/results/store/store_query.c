/* The results store, read side: runs and points for listings, the resume lookup, and a run
 * result rebuilt from its rows. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/json.h"
#include "results/store/store_internal.h"
#include "base/grow.h"

static const char run_columns[] =
    "SELECT r.id, r.experiment_id, COALESCE(e.name, ''), r.label, r.config_json, "
    "r.config_hash, r.seed, r.status, r.stopped_by, r.error, r.started, r.ended, r.host, "
    "r.pid, r.batchlab_version, r.steps, r.samples, r.epochs, r.time, r.eval_time, "
    "r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy, r.gns, r.test_loss, "
    "r.test_accuracy, r.time_to_target, r.epochs_to_target, r.steps_to_target, "
    "r.samples_to_target, r.diverged_step, r.max_batch_used, r.peak_device_bytes, "
    "(SELECT count(*) FROM points p WHERE p.run_id = r.id), ";
static const char run_from[] = " FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id ";

/* The SELECT of run_columns for this store, then `rest` (a read-only store may be older than
 * this batchlab: what its schema lacks reads as NULL). */
static void run_select(const bl_store *s, char *sql, size_t cap, const char *rest)
{
    snprintf(sql, cap, "%s%s, %s%s%s", run_columns,
             s->version >= 2 ? "r.steps_to_target_error" : "NULL",
             s->version >= 3 ? "r.step_time_median, r.wall_time_to_target"
                             : "NULL, r.time_to_target",
             run_from, rest);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

static double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static int64_t col_count(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

static bl_run_status parse_status(const char *s)
{
    static const bl_run_status all[] = {BL_RUN_RUNNING, BL_RUN_COMPLETED, BL_RUN_FAILED,
                                        BL_RUN_DIVERGED, BL_RUN_INTERRUPTED,
                                        BL_RUN_CRASHED, BL_RUN_TIMED_OUT};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, bl_run_status_name(all[i])) == 0)
            return all[i];
    return BL_RUN_FAILED; /* the schema's CHECK keeps other names out */
}

static void read_run(sqlite3_stmt *st, bl_store_run *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->experiment_id = sqlite3_column_int64(st, 1);
    r->experiment = col_text(st, 2);
    r->label = col_text(st, 3);
    r->config_json = col_text(st, 4);
    r->config_hash = col_text(st, 5);
    r->seed = (uint64_t)sqlite3_column_int64(st, 6);
    r->status = parse_status(col_text(st, 7));
    r->stopped_by = col_text(st, 8);
    r->error = col_text(st, 9);
    r->started = col_text(st, 10);
    r->ended = col_text(st, 11);
    r->host = col_text(st, 12);
    r->pid = sqlite3_column_int64(st, 13);
    r->batchlab_version = col_text(st, 14);
    r->steps = col_count(st, 15);
    r->samples = col_count(st, 16);
    r->epochs = col_real(st, 17);
    r->time = col_real(st, 18);
    r->eval_time = col_real(st, 19);
    r->train_loss = col_real(st, 20);
    r->train_accuracy = col_real(st, 21);
    r->val_loss = col_real(st, 22);
    r->val_accuracy = col_real(st, 23);
    r->gns = col_real(st, 24);
    r->test_loss = col_real(st, 25);
    r->test_accuracy = col_real(st, 26);
    r->time_to_target = col_real(st, 27);
    r->epochs_to_target = col_real(st, 28);
    r->steps_to_target = col_count(st, 29);
    r->samples_to_target = col_count(st, 30);
    r->diverged_step = col_count(st, 31);
    r->max_batch_used = col_count(st, 32);
    r->peak_device_bytes = col_count(st, 33);
    r->point_count = sqlite3_column_int64(st, 34);
    r->steps_to_target_error = col_count(st, 35);
    r->step_time_median = col_real(st, 36);
    r->wall_time_to_target = col_real(st, 37);
}

/* Steps `st` (bound by the caller) and calls fn for each run; *count = runs seen. */
static int each_run(bl_ctx *ctx, bl_store *s, sqlite3_stmt *st, bl_store_run_fn fn, void *user,
                    int64_t *count)
{
    int step, rc = BL_OK;
    int64_t n = 0;
    while ((step = bl__store_step(s, st)) == SQLITE_ROW) {
        bl_store_run r;
        read_run(st, &r);
        n++;
        if ((rc = fn(user, &r)) != 0)
            break;
    }
    if (rc == BL_OK && step != SQLITE_DONE)
        rc = bl__store_fail(ctx, s, "reading runs");
    sqlite3_finalize(st);
    if (count)
        *count = n;
    return rc;
}

int bl_store_list_runs(bl_ctx *ctx, bl_store *store, const char *experiment, bl_store_run_fn fn,
                       void *user)
{
    if (!store || !fn)
        return bl_error(ctx, BL_EINVAL, "bl_store_list_runs: NULL argument");
    int64_t exp_id = 0;
    int rc;
    if (experiment && (rc = bl_store_find_experiment(ctx, store, experiment, &exp_id)) != BL_OK)
        return rc;
    char sql[sizeof run_columns + sizeof run_from + 128];
    run_select(store, sql, sizeof sql,
               experiment ? "WHERE r.experiment_id = ? ORDER BY r.id" : " ORDER BY r.id");
    sqlite3_stmt *st;
    if ((rc = bl__store_prepare(ctx, store, sql, &st)) != BL_OK)
        return rc;
    if (experiment)
        sqlite3_bind_int64(st, 1, exp_id);
    return each_run(ctx, store, st, fn, user, NULL);
}

int bl_store_get_run(bl_ctx *ctx, bl_store *store, int64_t run_id, bl_store_run_fn fn,
                     void *user)
{
    if (!store || !fn)
        return bl_error(ctx, BL_EINVAL, "bl_store_get_run: NULL argument");
    char sql[sizeof run_columns + sizeof run_from + 128];
    run_select(store, sql, sizeof sql, "WHERE r.id = ?");
    sqlite3_stmt *st;
    int rc = bl__store_prepare(ctx, store, sql, &st);
    if (rc != BL_OK)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    int64_t n = 0;
    rc = each_run(ctx, store, st, fn, user, &n);
    if (rc == BL_OK && n == 0)
        return bl_error(ctx, BL_ENOTFOUND, "results store '%s' has no run %lld", store->path,
                        (long long)run_id);
    return rc;
}

int bl_store_list_points(bl_ctx *ctx, bl_store *store, int64_t run_id, bl_store_point_fn fn,
                         void *user)
{
    if (!store || !fn)
        return bl_error(ctx, BL_EINVAL, "bl_store_list_points: NULL argument");
    sqlite3_stmt *st;
    int rc = bl__store_prepare(ctx, store,
                               "SELECT step, samples, epoch, wall, batch, lr, train_loss, "
                               "train_accuracy, val_loss, val_accuracy, gns, samples_per_sec "
                               "FROM points WHERE run_id = ? ORDER BY id",
                               &st);
    if (rc != BL_OK)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    int step;
    while ((step = bl__store_step(store, st)) == SQLITE_ROW) {
        bl_eval_point p = {
            .step = sqlite3_column_int64(st, 0),
            .samples = sqlite3_column_int64(st, 1),
            .epoch = col_real(st, 2),
            .wall = col_real(st, 3),
            .batch = sqlite3_column_int64(st, 4),
            .lr = col_real(st, 5),
            .train_loss = col_real(st, 6),
            .train_accuracy = col_real(st, 7),
            .val_loss = col_real(st, 8),
            .val_accuracy = col_real(st, 9),
            .gns = col_real(st, 10),
            .samples_per_sec = col_real(st, 11),
        };
        if ((rc = fn(user, run_id, &p)) != 0)
            break;
    }
    if (rc == BL_OK && step != SQLITE_DONE)
        rc = bl__store_fail(ctx, store, "reading points");
    sqlite3_finalize(st);
    return rc;
}

/* ---- resume --------------------------------------------------------------------------------- */

static bool is_hash(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]))
            return false;
    return n == 16;
}

int bl__store_config_hash(bl_ctx *ctx, const bl_store *s, const char *config, char hash[17])
{
    if (is_hash(config)) {
        for (int i = 0; i < 17; i++)
            hash[i] = (char)tolower((unsigned char)config[i]);
        return BL_OK;
    }
    if (bl_json_hash(ctx, config, hash) != BL_OK)
        return bl_error_prefix(ctx, "results store '%s': the configuration to resume", s->path);
    return BL_OK;
}

int bl_store_find_completed(bl_ctx *ctx, bl_store *store, int64_t experiment_id,
                            const char *config, int64_t *run_id)
{
    if (!store || !config || !run_id)
        return bl_error(ctx, BL_EINVAL, "bl_store_find_completed: NULL argument");
    char hash[17];
    int rc;
    if ((rc = bl__store_config_hash(ctx, store, config, hash)) != BL_OK)
        return rc;
    sqlite3_stmt *st;
    rc = bl__store_prepare(ctx, store,
                           "SELECT id FROM runs WHERE experiment_id IS ? AND config_hash = ? "
                           "AND status IN ('completed', 'diverged') ORDER BY id DESC LIMIT 1",
                           &st);
    if (rc != BL_OK)
        return rc;
    if (experiment_id > 0)
        sqlite3_bind_int64(st, 1, experiment_id);
    else
        sqlite3_bind_null(st, 1);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
    int step = bl__store_step(store, st);
    if (step == SQLITE_ROW)
        *run_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (step == SQLITE_ROW)
        return BL_OK;
    if (step != SQLITE_DONE)
        return bl__store_fail(ctx, store, "looking for a finished run");
    return bl_error(ctx, BL_ENOTFOUND,
                    "results store '%s' has no finished run with configuration %s in "
                    "experiment %lld",
                    store->path, hash, (long long)experiment_id);
}

typedef struct loader {
    bl_run_result *out;
    char *config;
    size_t cap;
    bool nomem;
} loader;

static int load_run(void *user, const bl_store_run *r)
{
    loader *l = user;
    bl_run_result *o = l->out;
    o->status = r->status;
    snprintf(o->stopped_by, sizeof o->stopped_by, "%s", r->stopped_by);
    snprintf(o->error, sizeof o->error, "%s", r->error);
    o->steps = r->steps < 0 ? 0 : r->steps;
    o->samples = r->samples < 0 ? 0 : r->samples;
    o->epochs = r->epochs;
    o->time = r->time;
    o->eval_time = r->eval_time;
    o->test_loss = r->test_loss;
    o->test_accuracy = r->test_accuracy;
    o->diverged_step = r->diverged_step;
    o->time_to_target = r->time_to_target;
    o->epochs_to_target = r->epochs_to_target;
    o->steps_to_target = r->steps_to_target;
    o->samples_to_target = r->samples_to_target;
    o->steps_to_target_error = r->steps_to_target_error;
    o->step_time_median = r->step_time_median;
    o->wall_time_to_target = r->wall_time_to_target;
    o->max_batch_used = r->max_batch_used < 0 ? 0 : r->max_batch_used;
    o->peak_device_bytes = r->peak_device_bytes < 0 ? 0 : (size_t)r->peak_device_bytes;
    /* The final point when the run has none stored: what the row says. */
    o->final = (bl_eval_point){
        .step = o->steps, .samples = o->samples, .epoch = r->epochs, .wall = r->time,
        .batch = o->max_batch_used, .lr = NAN, .train_loss = r->train_loss,
        .train_accuracy = r->train_accuracy, .val_loss = r->val_loss,
        .val_accuracy = r->val_accuracy, .gns = r->gns, .samples_per_sec = NAN};
    l->config = strdup(r->config_json);
    if (!l->config)
        l->nomem = true;
    return 0;
}

static int load_point(void *user, int64_t run_id, const bl_eval_point *p)
{
    loader *l = user;
    bl_run_result *o = l->out;
    (void)run_id;
    bl_eval_point *h = bl__grow(o->history, &l->cap, (size_t)o->history_count + 1, sizeof *h);
    if (!h) {
        l->nomem = true;
        return 1;
    }
    o->history = h;
    o->history[o->history_count++] = *p;
    return 0;
}

int bl_store_load_result(bl_ctx *ctx, bl_store *store, int64_t run_id, bl_run_result *out,
                         char **config_json)
{
    if (!store || !out)
        return bl_error(ctx, BL_EINVAL, "bl_store_load_result: NULL argument");
    bl_run_result r;
    memset(&r, 0, sizeof r);
    r.resumed_step = -1;
    loader l = {&r, NULL, 0, false};
    int rc = bl_store_get_run(ctx, store, run_id, load_run, &l);
    if (rc == BL_OK && !l.nomem)
        rc = bl_store_list_points(ctx, store, run_id, load_point, &l);
    if (rc == BL_OK && l.nomem)
        rc = bl_error(ctx, BL_ENOMEM, "out of memory reading run %lld of results store '%s'",
                      (long long)run_id, store->path);
    if (rc != BL_OK) {
        free(r.history);
        free(l.config);
        return rc;
    }
    if (r.history_count > 0)
        r.final = r.history[r.history_count - 1];
    *out = r;
    if (config_json)
        *config_json = l.config;
    else
        free(l.config);
    return BL_OK;
}

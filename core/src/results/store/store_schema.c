/* The results store's schema: telling a batchlab store from other files, and the migrations
 * that bring an older store to the current version.
 *
 * To change the schema: append one step to `migrations` (the SQL from version N to N + 1,
 * e.g. "ALTER TABLE runs ADD COLUMN ...") and raise BL_STORE_SCHEMA_VERSION in store.h. Never
 * edit a step that has shipped: stores in the field were made by it. */
#include <stdio.h>
#include <string.h>

#include "batchlab/version.h"
#include "results/store/store_internal.h"

/* migrations[n] takes a store from version n to n + 1. */
static const char *const migrations[] = {
    /* 0 → 1: the first layout. */
    "CREATE TABLE meta ("
    "  key   TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL);"
    "CREATE TABLE experiments ("
    "  id      INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name    TEXT NOT NULL UNIQUE,"
    "  created TEXT NOT NULL);"
    "CREATE TABLE runs ("
    "  id                INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  experiment_id     INTEGER REFERENCES experiments(id),"
    "  label             TEXT,"
    "  config_json       TEXT NOT NULL,"
    "  config_hash       TEXT NOT NULL,"
    "  seed              INTEGER,"
    "  status            TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed',"
    "                                         'diverged', 'interrupted')),"
    "  stopped_by        TEXT,"
    "  error             TEXT,"
    "  started           TEXT NOT NULL,"
    "  ended             TEXT,"
    "  host              TEXT,"
    "  pid               INTEGER,"
    "  pid_start         TEXT,"
    "  batchlab_version  TEXT,"
    "  steps             INTEGER,"
    "  samples           INTEGER,"
    "  epochs            REAL,"
    "  time              REAL,"
    "  eval_time         REAL,"
    "  train_loss        REAL,"
    "  train_accuracy    REAL,"
    "  val_loss          REAL,"
    "  val_accuracy      REAL,"
    "  test_loss         REAL,"
    "  test_accuracy     REAL,"
    "  gns               REAL,"
    "  time_to_target    REAL,"
    "  steps_to_target   INTEGER,"
    "  samples_to_target INTEGER,"
    "  epochs_to_target  REAL,"
    "  diverged_step     INTEGER,"
    "  max_batch_used    INTEGER,"
    "  peak_device_bytes INTEGER);"
    "CREATE INDEX runs_resume ON runs (experiment_id, config_hash, status);"
    "CREATE INDEX runs_status ON runs (status);"
    "CREATE TABLE points ("
    "  id              INTEGER PRIMARY KEY,"
    "  run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    "  step            INTEGER NOT NULL,"
    "  samples         INTEGER,"
    "  epoch           REAL,"
    "  wall            REAL,"
    "  batch           INTEGER,"
    "  lr              REAL,"
    "  train_loss      REAL,"
    "  train_accuracy  REAL,"
    "  val_loss        REAL,"
    "  val_accuracy    REAL,"
    "  gns             REAL,"
    "  samples_per_sec REAL);"
    "CREATE INDEX points_run ON points (run_id, id);",
    /* 1 → 2: the evaluation resolution of steps_to_target (steps_to_target and
     * samples_to_target are interpolated between points since this version). */
    "ALTER TABLE runs ADD COLUMN steps_to_target_error INTEGER;",
    /* 2 → 3: the robust per-step time; time_to_target is steps × that median since this
     * version, and the raw wall time to target moves beside it. Older runs have no median:
     * their time_to_target was the wall time, which both columns keep. */
    "ALTER TABLE runs ADD COLUMN step_time_median REAL;"
    "ALTER TABLE runs ADD COLUMN wall_time_to_target REAL;"
    "UPDATE runs SET wall_time_to_target = time_to_target;",
    /* 3 → 4: the statuses of isolated runs ('crashed', 'timed_out'): SQLite cannot change a
     * CHECK, so `runs` is rebuilt with the same columns in the same order (foreign keys are
     * off during migrations, so dropping the old table does not cascade into `points`); and
     * `claims`: which process trains which configuration of an experiment now, so that two
     * processes running the same sweep train each configuration once (bl_store_claim). */
    "CREATE TABLE runs_v4 ("
    "  id                INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  experiment_id     INTEGER REFERENCES experiments(id),"
    "  label             TEXT,"
    "  config_json       TEXT NOT NULL,"
    "  config_hash       TEXT NOT NULL,"
    "  seed              INTEGER,"
    "  status            TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed',"
    "                                         'diverged', 'interrupted', 'crashed',"
    "                                         'timed_out')),"
    "  stopped_by        TEXT,"
    "  error             TEXT,"
    "  started           TEXT NOT NULL,"
    "  ended             TEXT,"
    "  host              TEXT,"
    "  pid               INTEGER,"
    "  pid_start         TEXT,"
    "  batchlab_version  TEXT,"
    "  steps             INTEGER,"
    "  samples           INTEGER,"
    "  epochs            REAL,"
    "  time              REAL,"
    "  eval_time         REAL,"
    "  train_loss        REAL,"
    "  train_accuracy    REAL,"
    "  val_loss          REAL,"
    "  val_accuracy      REAL,"
    "  test_loss         REAL,"
    "  test_accuracy     REAL,"
    "  gns               REAL,"
    "  time_to_target    REAL,"
    "  steps_to_target   INTEGER,"
    "  samples_to_target INTEGER,"
    "  epochs_to_target  REAL,"
    "  diverged_step     INTEGER,"
    "  max_batch_used    INTEGER,"
    "  peak_device_bytes INTEGER,"
    "  steps_to_target_error INTEGER,"
    "  step_time_median  REAL,"
    "  wall_time_to_target REAL);"
    "INSERT INTO runs_v4 SELECT * FROM runs;"
    "DROP TABLE runs;"
    "ALTER TABLE runs_v4 RENAME TO runs;"
    "CREATE INDEX runs_resume ON runs (experiment_id, config_hash, status);"
    "CREATE INDEX runs_status ON runs (status);"
    "CREATE TABLE claims ("
    "  experiment_id INTEGER NOT NULL,"
    "  config_hash   TEXT NOT NULL,"
    "  host          TEXT,"
    "  pid           INTEGER NOT NULL,"
    "  pid_start     TEXT,"
    "  claimed       TEXT NOT NULL,"
    "  PRIMARY KEY (experiment_id, config_hash));",
    /* 4 → 5: the recommendation after a sweep, as JSON (bl_recommendation_json), kept with
     * its experiment (bl_store_set_recommendation). */
    "ALTER TABLE experiments ADD COLUMN recommendation_json TEXT;",
    /* 5 → 6: the MPI ranks a data-parallel run trained on (bl_store_run_set_ranks); NULL for
     * a run of one process. */
    "ALTER TABLE runs ADD COLUMN ranks INTEGER;",
};
_Static_assert(sizeof migrations / sizeof migrations[0] == BL_STORE_SCHEMA_VERSION,
               "one migration step per schema version");

/* The application id, user_version and table count, read by one statement so that they come
 * from one snapshot: read one by one, a store created by another process between two reads
 * looked like "another application's database" (an id of 0 with batchlab's tables). */
static int read_header(sqlite3 *db, long long *app, long long *ver, long long *tables)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT (SELECT application_id FROM pragma_application_id),"
                                " (SELECT user_version FROM pragma_user_version),"
                                " (SELECT count(*) FROM sqlite_master)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *app = sqlite3_column_int64(st, 0);
        *ver = sqlite3_column_int64(st, 1);
        *tables = sqlite3_column_int64(st, 2);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

int bl__store_inspect(bl_ctx *ctx, sqlite3 *db, const char *path, int *version)
{
    long long app = 0, ver = 0, tables = 0;
    int rc = read_header(db, &app, &ver, &tables);
    if (rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_NOTADB)
            return bl_error(ctx, BL_ESTORE,
                            "'%s' is not a batchlab results store: it is not a SQLite database "
                            "(give another file with --db or BATCHLAB_DB; the file was not "
                            "changed)",
                            path);
        return bl_error(ctx, BL_ESTORE, "results store '%s' cannot be read: %s (the file was "
                        "not changed)", path, sqlite3_errmsg(db));
    }
    uint32_t app_id = (uint32_t)app;
    if (app_id == BL_STORE_APPLICATION_ID) {
        if (ver > BL_STORE_SCHEMA_VERSION)
            return bl_error(ctx, BL_ESTORE,
                            "results store '%s' has schema version %lld, newer than this "
                            "batchlab %s reads (versions up to %d): use a newer batchlab, or "
                            "another file with --db (the file was not changed)",
                            path, ver, bl_version(), BL_STORE_SCHEMA_VERSION);
        if (ver < 1 || tables == 0)
            return bl_error(ctx, BL_ESTORE,
                            "'%s' has batchlab's application id but schema version %lld and "
                            "%lld tables: it is damaged or was not made by batchlab (the file "
                            "was not changed)",
                            path, ver, tables);
        *version = (int)ver;
        return BL_OK;
    }
    if (app_id == 0 && tables == 0 && ver == 0) {
        *version = 0; /* an empty database: becomes a store */
        return BL_OK;
    }
    if (app_id == 0)
        return bl_error(ctx, BL_ESTORE,
                        "'%s' is a SQLite database of another application (%lld tables, "
                        "user_version %lld, no application id; batchlab's is 0x%08x): give "
                        "another file with --db or BATCHLAB_DB (the file was not changed)",
                        path, tables, ver, (unsigned)BL_STORE_APPLICATION_ID);
    return bl_error(ctx, BL_ESTORE,
                    "'%s' is a SQLite database of another application (application id 0x%08x; "
                    "batchlab's is 0x%08x): give another file with --db or BATCHLAB_DB (the "
                    "file was not changed)",
                    path, (unsigned)app_id, (unsigned)BL_STORE_APPLICATION_ID);
}

int bl__store_quick_check(bl_ctx *ctx, sqlite3 *db, const char *path)
{
    sqlite3_stmt *st;
    /* quick_check(1): stop at the first problem; O(pages), without the index cross-checks of
     * integrity_check (see docs/reliability.md for its cost). */
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK)
        return bl_error(ctx, BL_ESTORE, "results store '%s' cannot be checked: %s (the file "
                        "was not changed)", path, sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    char what[256];
    snprintf(what, sizeof what, "%s",
             rc == SQLITE_ROW && sqlite3_column_text(st, 0)
                 ? (const char *)sqlite3_column_text(st, 0) : sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW && strcmp(what, "ok") == 0)
        return BL_OK;
    return bl_error(ctx, BL_ESTORE,
                    "results store '%s' is damaged (SQLite quick_check: %s); nothing was "
                    "written to it. Keep the file as it is, restore it from a copy or recover "
                    "what it holds (sqlite3 '%s' .recover | sqlite3 recovered.db), and give "
                    "another file with --db or BATCHLAB_DB meanwhile",
                    path, what, path);
}

static int exec(bl_ctx *ctx, bl_store *s, const char *sql, const char *what)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return bl__store_fail(ctx, s, what);
    return BL_OK;
}

int bl__store_migrate(bl_ctx *ctx, bl_store *s, int from)
{
    char sql[256], what[64], now[32];
    int rc;
    for (int v = from; v < BL_STORE_SCHEMA_VERSION; v++) {
        snprintf(what, sizeof what, "migrating the schema from version %d to %d", v, v + 1);
        if ((rc = exec(ctx, s, migrations[v], what)) != BL_OK)
            return rc;
        snprintf(sql, sizeof sql,
                 "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '%d');"
                 "PRAGMA user_version = %d;",
                 v + 1, v + 1);
        if ((rc = exec(ctx, s, sql, what)) != BL_OK)
            return rc;
    }
    if (from == 0) {
        bl__store_now(now);
        snprintf(sql, sizeof sql,
                 "PRAGMA application_id = %d;"
                 "INSERT OR REPLACE INTO meta (key, value) VALUES ('application', 'batchlab'),"
                 " ('created', '%s'), ('created_by', 'batchlab %s');",
                 (int)BL_STORE_APPLICATION_ID, now, bl_version());
        if ((rc = exec(ctx, s, sql, "creating the store")) != BL_OK)
            return rc;
    }
    return BL_OK;
}

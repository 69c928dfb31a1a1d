/* Claims and lost runs (batchlab/store.h): which process trains a configuration now, and the
 * record of a run whose process died (an isolated sweep's crashed or timed-out child). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "results/store/store_internal.h"

static void bind_experiment(sqlite3_stmt *st, int i, int64_t experiment_id)
{
    if (experiment_id > 0)
        sqlite3_bind_int64(st, i, experiment_id);
    else
        sqlite3_bind_null(st, i);
}

int bl_store_claim(bl_ctx *ctx, bl_store *store, int64_t experiment_id, const char *config,
                   bool *busy, long *holder)
{
    if (!store || !config || !busy)
        return bl_error(ctx, BL_EINVAL, "bl_store_claim: NULL argument");
    if (store->readonly)
        return bl_error(ctx, BL_EINVAL, "results store '%s' was opened read-only", store->path);
    *busy = false;
    if (holder)
        *holder = 0;
    char hash[17];
    int rc = bl__store_config_hash(ctx, store, config, hash);
    if (rc != BL_OK)
        return rc;
    if (store->claimed && (store->claim_experiment != experiment_id ||
                           strcmp(store->claim_hash, hash) != 0))
        bl_store_release(NULL, store);
    if ((rc = bl__store_begin(ctx, store)) != BL_OK)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = bl__store_prepare(ctx, store,
                           "SELECT host, pid, pid_start FROM claims WHERE experiment_id = ? AND "
                           "config_hash = ?",
                           &st);
    bool take = true;
    if (rc == BL_OK) {
        sqlite3_bind_int64(st, 1, experiment_id);
        sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            const char *host = (const char *)sqlite3_column_text(st, 0);
            long pid = (long)sqlite3_column_int64(st, 1);
            const char *ident = (const char *)sqlite3_column_text(st, 2);
            bool mine = host && strcmp(host, store->host) == 0 && pid == (long)getpid();
            if (!mine && !bl__store_process_gone(store, host, pid, ident)) {
                take = false;          /* a live process trains it now */
                *busy = true;
                if (holder)
                    *holder = pid;
            }
        } else if (step != SQLITE_DONE) {
            rc = bl__store_fail(ctx, store, "reading a claim");
        }
        sqlite3_finalize(st);
    }
    if (rc == BL_OK && take) {
        char now[32];
        bl__store_now(now);
        rc = bl__store_prepare(ctx, store,
                               "INSERT OR REPLACE INTO claims (experiment_id, config_hash, host, "
                               "pid, pid_start, claimed) VALUES (?, ?, ?, ?, ?, ?)",
                               &st);
        if (rc == BL_OK) {
            sqlite3_bind_int64(st, 1, experiment_id);
            sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 3, store->host, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 4, (sqlite3_int64)getpid());
            sqlite3_bind_text(st, 5, store->proc_id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 6, now, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = bl__store_fail(ctx, store, "claiming a configuration");
            sqlite3_finalize(st);
        }
    }
    if (rc == BL_OK)
        rc = bl__store_commit(ctx, store);
    else
        bl__store_rollback(store);
    if (rc == BL_OK && take) {
        store->claimed = true;
        store->claim_experiment = experiment_id;
        memcpy(store->claim_hash, hash, sizeof hash);
    }
    return rc;
}

void bl_store_release(bl_ctx *ctx, bl_store *store)
{
    if (!store || !store->claimed || store->readonly)
        return;
    store->claimed = false;
    sqlite3_stmt *st;
    if (bl__store_begin(ctx, store) != BL_OK)
        return;
    if (bl__store_prepare(ctx, store,
                          "DELETE FROM claims WHERE experiment_id = ? AND config_hash = ? AND "
                          "host = ? AND pid = ?",
                          &st) == BL_OK) {
        sqlite3_bind_int64(st, 1, store->claim_experiment);
        sqlite3_bind_text(st, 2, store->claim_hash, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, store->host, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)getpid());
        int step = sqlite3_step(st);
        sqlite3_finalize(st);
        if (step == SQLITE_DONE) {
            bl__store_commit(ctx, store);
            return;
        }
    }
    bl__store_rollback(store);
}

int bl_store_count_lost(bl_ctx *ctx, bl_store *store, int64_t experiment_id, const char *config,
                        int64_t *count, int64_t *last_id)
{
    if (!store || !config || !count || !last_id)
        return bl_error(ctx, BL_EINVAL, "bl_store_count_lost: NULL argument");
    char hash[17];
    int rc = bl__store_config_hash(ctx, store, config, hash);
    if (rc != BL_OK)
        return rc;
    sqlite3_stmt *st;
    if ((rc = bl__store_prepare(ctx, store,
                                "SELECT count(*), max(id) FROM runs WHERE experiment_id IS ? AND "
                                "config_hash = ? AND status IN ('crashed', 'timed_out')",
                                &st)) != BL_OK)
        return rc;
    bind_experiment(st, 1, experiment_id);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
    int step = bl__store_step(store, st);
    if (step == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 0);
        *last_id = sqlite3_column_type(st, 1) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (step != SQLITE_ROW)
        return bl__store_fail(ctx, store, "counting crashed runs");
    return BL_OK;
}

int bl_store_run_lost(bl_ctx *ctx, bl_store *store, int64_t experiment_id, const char *label,
                      const char *config_json, uint64_t seed, long pid,
                      const bl_run_result *result, int64_t *run_id)
{
    if (!store || !config_json || !result || !run_id)
        return bl_error(ctx, BL_EINVAL, "bl_store_run_lost: NULL argument");
    char hash[17];
    int rc = bl__store_config_hash(ctx, store, config_json, hash);
    if (rc != BL_OK)
        return rc;
    sqlite3_stmt *st;
    if ((rc = bl__store_prepare(ctx, store,
                                "SELECT max(id) FROM runs WHERE experiment_id IS ? AND "
                                "config_hash = ? AND host = ? AND pid = ?",
                                &st)) != BL_OK)
        return rc;
    bind_experiment(st, 1, experiment_id);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, store->host, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)pid);
    int step = bl__store_step(store, st);
    int64_t id = step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
                     ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (step != SQLITE_ROW)
        return bl__store_fail(ctx, store, "looking for a lost run");
    if (id == 0 && (rc = bl_store_run_begin(ctx, store, experiment_id, label, config_json, seed,
                                            &id)) != BL_OK)
        return rc;      /* it died before its row was written (in the model's build) */
    if ((rc = bl_store_run_end(ctx, store, id, result)) != BL_OK)
        return rc;
    *run_id = id;
    return BL_OK;
}

/* The recommendation kept with its experiment (batchlab/store.h; schema version 4). */
#include <stdlib.h>
#include <string.h>

#include "results/store/store_internal.h"

int bl_store_set_recommendation(bl_ctx *ctx, bl_store *store, int64_t experiment_id,
                                const char *json)
{
    if (!store)
        return bl_error(ctx, BL_EINVAL, "bl_store_set_recommendation: NULL store");
    if (store->readonly)
        return bl_error(ctx, BL_EINVAL, "results store '%s' was opened read-only", store->path);
    sqlite3_stmt *st;
    int rc = bl__store_prepare(ctx, store, "UPDATE experiments SET recommendation_json = ? "
                                           "WHERE id = ?", &st);
    if (rc != BL_OK)
        return rc;
    if (json)
        sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 1);
    sqlite3_bind_int64(st, 2, experiment_id);
    int step = bl__store_step(store, st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return bl__store_fail(ctx, store, "keeping a recommendation");
    if (sqlite3_changes(store->db) == 0)
        return bl_error(ctx, BL_ENOTFOUND, "results store '%s' has no experiment %lld",
                        store->path, (long long)experiment_id);
    return BL_OK;
}

int bl_store_get_recommendation(bl_ctx *ctx, bl_store *store, int64_t experiment_id,
                                char **json)
{
    if (!store || !json)
        return bl_error(ctx, BL_EINVAL, "bl_store_get_recommendation: NULL argument");
    if (store->version < 4)
        return bl_error(ctx, BL_ENOTFOUND, "results store '%s' (schema version %d) keeps no "
                        "recommendations", store->path, store->version);
    sqlite3_stmt *st;
    int rc = bl__store_prepare(ctx, store, "SELECT recommendation_json FROM experiments "
                                           "WHERE id = ?", &st);
    if (rc != BL_OK)
        return rc;
    sqlite3_bind_int64(st, 1, experiment_id);
    int step = bl__store_step(store, st);
    const char *text = step == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    char *copy = text ? strdup(text) : NULL;
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return bl__store_fail(ctx, store, "reading a recommendation");
    if (!text)
        return bl_error(ctx, BL_ENOTFOUND, "results store '%s' keeps no recommendation for "
                        "experiment %lld", store->path, (long long)experiment_id);
    if (!copy)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    *json = copy;
    return BL_OK;
}

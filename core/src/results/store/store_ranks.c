/* The world size a run trained on (batchlab/store.h; schema version 6). */
#include "results/store/store_internal.h"

int bl_store_run_set_ranks(bl_ctx *ctx, bl_store *store, int64_t run_id, int ranks)
{
    if (!store || ranks < 1)
        return bl_error(ctx, BL_EINVAL, "bl_store_run_set_ranks: NULL store or ranks < 1");
    if (store->readonly)
        return bl_error(ctx, BL_EINVAL, "results store '%s' was opened read-only", store->path);
    sqlite3_stmt *st;
    int rc = bl__store_prepare(ctx, store, "UPDATE runs SET ranks = ? WHERE id = ?", &st);
    if (rc != BL_OK)
        return rc;
    sqlite3_bind_int(st, 1, ranks);
    sqlite3_bind_int64(st, 2, run_id);
    int step = bl__store_step(store, st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return bl__store_fail(ctx, store, "recording a run's ranks");
    if (sqlite3_changes(store->db) == 0)
        return bl_error(ctx, BL_ENOTFOUND, "results store '%s' has no run %lld", store->path,
                        (long long)run_id);
    return BL_OK;
}

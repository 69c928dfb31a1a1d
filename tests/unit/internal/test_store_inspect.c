/* A store created by another process while this one inspects the file must not look like
 * another application's database: the application id, user_version and table count are read
 * from one snapshot. The test makes the interleaving happen on purpose: a trace hook on the
 * inspecting connection creates the store (through a second connection) when a second
 * statement of the inspection begins, i.e. between two reads. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "batchlab/store.h"
#include "results/store/store_internal.h"
#include "testutil.h"

typedef struct interleave {
    const char *path;
    int statements;
    int created;     /* BL_OK once the store was created between two reads */
    bool tried;
} interleave;

static int on_statement(unsigned type, void *user, void *stmt, void *sql)
{
    (void)type;
    (void)stmt;
    interleave *in = user;
    /* the subprograms of a statement (table-valued pragmas: "-- PRAGMA ...") run inside its
     * read: only a new top-level statement lies between two reads */
    if (((const char *)sql)[0] == '-')
        return 0;
    if (++in->statements == 2 && !in->tried) {
        in->tried = true;
        bl_ctx *ctx = bl_ctx_new();
        bl_store *store = NULL;
        in->created = bl_store_open(ctx, in->path, &store);
        bl_store_close(store);
        bl_ctx_free(ctx);
    }
    return 0;
}

static void test_inspect_reads_one_snapshot(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/inspect_snapshot.db", BATCHLAB_TEST_DATA_DIR);
    unlink(path);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     NULL),
                     SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    interleave in = {.path = path};
    sqlite3_trace_v2(db, SQLITE_TRACE_STMT, on_statement, &in);

    bl_ctx *ctx = bl_ctx_new();
    int version = -1;
    int rc = bl__store_inspect(ctx, db, path, &version);
    if (rc != BL_OK)
        fail_msg("inspect failed (store created between its reads: %s): %s",
                 in.tried ? "yes" : "no", bl_errmsg(ctx));
    /* one snapshot: either the empty file (nothing ran in between) or the whole store */
    if (in.tried) {
        assert_int_equal(in.created, BL_OK);
        assert_int_equal(version, BL_STORE_SCHEMA_VERSION);
    } else {
        assert_int_equal(version, 0);
    }
    bl_ctx_free(ctx);
    sqlite3_close(db);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_inspect_reads_one_snapshot)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

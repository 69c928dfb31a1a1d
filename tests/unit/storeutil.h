/* Helpers shared by the results store tests (test_store.c, test_store_runs.c,
 * test_store_stale.c); storeutil.c is linked into each of them with SQLite. */
#ifndef BATCHLAB_STOREUTIL_H
#define BATCHLAB_STOREUTIL_H

#include <stdint.h>

#include "batchlab/store.h"

/* cmocka group setup/teardown: *state is a bl_ctx. */
int ctx_setup(void **state);
int ctx_teardown(void **state);

/* A fresh path (no file, no -wal/-shm) in the tests' "store" directory; a static buffer, four
 * in rotation. */
const char *fresh_path(const char *name);

/* Runs SQL on `path` with a plain SQLite connection (creating the file); fails the test on an
 * SQL error. */
void raw_exec(const char *path, const char *sql);
/* The first column of the first row of `sql` on `path` (read-only), as an integer or as a new
 * string (free it). */
long long raw_int(const char *path, const char *sql);
char *raw_text(const char *path, const char *sql);

/* A sample evaluation point at `step` (some fields NaN). */
bl_eval_point point_at(int64_t step);
/* A finished result with `n` points (history owned by the caller: free it). */
bl_run_result finished(bl_run_status status, size_t n);

/* What see_run (a bl_store_list_runs callback) saw: the count and the last run, its strings
 * copied. */
typedef struct seen_runs {
    int n;
    bl_store_run last;
    char label[64], status[32], experiment[64], config[256], hash[17];
} seen_runs;
int see_run(void *user, const bl_store_run *r);

#endif

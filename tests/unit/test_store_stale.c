/* The results store: stale runs of killed processes, and concurrent writers. (Split from
 * test_store.c; helpers shared with it are in storeutil.c.) */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_runs),
        cmocka_unit_test(test_concurrent_writers),
    };
    return cmocka_run_group_tests(tests, ctx_setup, ctx_teardown);
}

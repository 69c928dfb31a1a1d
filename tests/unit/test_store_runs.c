/* The results store: experiments, runs and points (NaN → NULL → NaN), rebuilt results and the
 * resume lookup. (Split from test_store.c; helpers shared with it are in storeutil.c.) */
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


/* ---- helpers -------------------------------------------------------------------------------- */

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
    assert_true(v.last.step_time_median == 0.125 && v.last.wall_time_to_target == 2.75);
    assert_true(isnan(v.last.test_accuracy));
    assert_int_equal(v.last.diverged_step, -1);
    assert_int_equal(v.last.steps_to_target, 20);
    assert_int_equal(v.last.steps_to_target_error, 10);
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
    assert_true(back.step_time_median == 0.125 && back.wall_time_to_target == 2.75);
    assert_int_equal(back.samples_to_target, 640);
    assert_int_equal(back.steps_to_target, 20);
    assert_int_equal(back.steps_to_target_error, 10);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_experiments),
        cmocka_unit_test(test_points_round_trip),
        cmocka_unit_test(test_run_life_and_load),
        cmocka_unit_test(test_resume_lookup),
    };
    return cmocka_run_group_tests(tests, ctx_setup, ctx_teardown);
}

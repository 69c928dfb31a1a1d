/* The recommendation kept with its experiment in the results store (schema version 5):
 * bl_recommendation_json, bl_store_set_recommendation / bl_store_get_recommendation. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batchlab/json.h"
#include "batchlab/recommend.h"
#include "batchlab/store.h"
#include "testutil.h"

static int ctx_setup(void **state)
{
    *state = bl_ctx_new();
    return *state ? 0 : -1;
}

static int ctx_teardown(void **state)
{
    bl_ctx_free(*state);
    return 0;
}

static void kept_and_read_back(void **state)
{
    bl_ctx *ctx = *state;
    bl_rec_run runs[4] = {
        {.batch = 16, .completed = true, .time_to_target = 10.3, .steps_to_target = 1000},
        {.batch = 256, .completed = true, .time_to_target = 10, .steps_to_target = 90},
        {.batch = 64, .completed = true, .time_to_target = 30, .steps_to_target = 300},
        {.batch = NAN, .completed = true, .time_to_target = NAN, .schedule = "ramp \"x\""},
    };
    bl_recommendation rec;
    BL_ASSERT_OK(ctx, bl_recommend(ctx, runs, 4, NULL, &rec));
    char *json = NULL;
    assert_int_equal(bl_recommendation_json(&rec, &json), BL_OK);
    assert_true(bl_test_contains(json, "{\"pick\":\"batch 16\",\"batch\":16,"));
    assert_true(bl_test_contains(json, "\"tied\":[\"batch 16\",\"batch 256\"]"));
    assert_true(bl_test_contains(json, "\"label\":\"schedule ramp \\\"x\\\"\""));
    assert_false(bl_test_contains(json, "nan"));
    char *canon = NULL;                                    /* valid JSON */
    BL_ASSERT_OK(ctx, bl_json_canonical(ctx, json, &canon));
    free(canon);

    char path[256];
    snprintf(path, sizeof path, "%s/store_recommend.%ld.db", BATCHLAB_TEST_DATA_DIR,
             (long)getpid());
    unlink(path);
    bl_store *st;
    BL_ASSERT_OK(ctx, bl_store_open(ctx, path, &st));
    int64_t exp;
    BL_ASSERT_OK(ctx, bl_store_experiment(ctx, st, "sweep", &exp));
    char *got = NULL;
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "keeps no recommendation",
                  bl_store_get_recommendation(ctx, st, exp, &got));
    BL_ASSERT_OK(ctx, bl_store_set_recommendation(ctx, st, exp, json));
    BL_ASSERT_OK(ctx, bl_store_get_recommendation(ctx, st, exp, &got));
    assert_string_equal(got, json);
    free(got);
    BL_ASSERT_ERR(ctx, BL_ENOTFOUND, "no experiment",
                  bl_store_set_recommendation(ctx, st, exp + 100, json));
    bl_store_close(st);

    BL_ASSERT_OK(ctx, bl_store_open_flags(ctx, path, BL_STORE_READONLY, &st));
    BL_ASSERT_OK(ctx, bl_store_get_recommendation(ctx, st, exp, &got));
    assert_string_equal(got, json);
    free(got);
    BL_ASSERT_ERR(ctx, BL_EINVAL, "read-only", bl_store_set_recommendation(ctx, st, exp, json));
    bl_store_close(st);
    unlink(path);
    free(json);
    bl_recommendation_free(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kept_and_read_back),
    };
    return cmocka_run_group_tests(tests, ctx_setup, ctx_teardown);
}

/* issue 15, Found 7: a plugin descriptor with 200,000 options is checked (as the loader does)
 * and validated in time linear up to a logarithm; a linear search per option made it
 * quadratic (> 30 s). The bound below is generous for a loaded machine and far below what the
 * quadratic needs (2·10^10 comparisons). Duplicates are still found. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "config/config_internal.h"
#include "testutil.h"

#define N 200000

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void many_options(void **state)
{
    (void)state;
    bl_option *decl = calloc(N + 1, sizeof *decl);
    char (*names)[16] = malloc((size_t)N * sizeof *names);
    assert_true(decl && names);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "opt_%06d", (i * 7919) % N); /* not in order */
        decl[i] = (bl_option){names[i], BL_TYPE_INT, "1", NULL};
    }
    bl_ctx *ctx = bl_ctx_new();
    double t0 = now();
    BL_ASSERT_OK(ctx, bl__option_decl_check(ctx, decl, "plugin 'big'"));
    bl_config *given = NULL, *out = NULL;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &given));
    for (int i = 0; i < 1000; i++) {
        char a[40];
        snprintf(a, sizeof a, "opt_%06d=%d", i * 199, i);
        BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, given, a));
    }
    BL_ASSERT_OK(ctx, bl_config_validate(ctx, given, decl, "plugin 'big'", &out));
    double took = now() - t0;
    assert_int_equal(bl_config_int(out, "opt_000199"), 1);
    assert_int_equal(bl_config_int(out, "opt_000000"), 0);
    bl_config_free(out);
    bl_config_free(given);
    printf("    200,000 options checked and validated in %.2f s\n", took);
    if (took > 10.0)
        fail_msg("200,000 options took %.1f s: not linear", took);

    decl[N / 2].name = decl[17].name; /* a duplicate in the middle */
    BL_ASSERT_ERR(ctx, BL_EPLUGIN, "is declared twice",
                  bl__option_decl_check(ctx, decl, "plugin 'big'"));
    bl_ctx_free(ctx);
    free(names);
    free(decl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(many_options)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

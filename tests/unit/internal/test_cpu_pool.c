/* The CPU backend's thread pool (device/cpu/cpu_pool.h): its background work runs every piece
 * once, in index order, never two at a time, while jobs keep running on the same pool, and the
 * wait returns only when all are done. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "device/cpu/cpu_pool.h"
#include "testutil.h"

enum { UNITS = 5000, GRAIN = 7 };

typedef struct record {
    atomic_bool inside;  /* a piece is running */
    atomic_int overlaps; /* pieces that started while another ran */
    int64_t next;        /* where the next piece must begin (checked in the piece) */
    int out_of_order;
    int seen[UNITS];     /* times each unit was done */
} record;

static void piece(void *arg, int64_t begin, int64_t end)
{
    record *r = arg;
    if (atomic_exchange(&r->inside, true))
        atomic_fetch_add(&r->overlaps, 1);
    if (begin != r->next || end - begin > GRAIN || end <= begin)
        r->out_of_order++;
    for (int64_t i = begin; i < end; i++) {
        r->seen[i]++;
        for (volatile int spin = 0; spin < 200; spin++) /* a piece that takes a while */
            ;
    }
    r->next = end;
    atomic_store(&r->inside, false);
}

static void job(void *arg, int chunk, int64_t begin, int64_t end)
{
    atomic_long *sum = arg;
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add_explicit(sum, i, memory_order_relaxed);
}

static void check_done(const record *r)
{
    assert_int_equal(atomic_load(&r->overlaps), 0);
    assert_int_equal(r->out_of_order, 0);
    assert_int_equal(r->next, UNITS);
    for (int i = 0; i < UNITS; i++)
        if (r->seen[i] != 1)
            fail_msg("unit %d done %d times", i, r->seen[i]);
}

/* Jobs on the pool while the background work runs in their gaps; then the wait finishes it. */
static void background_fills_the_gaps(void **state)
{
    (void)state;
    bl__pool *pool = bl__pool_new(2);
    assert_non_null(pool);
    for (int round = 0; round < 20; round++) {
        record *r = calloc(1, sizeof *r);
        bl__pool_background(pool, piece, r, UNITS, GRAIN);
        for (int j = 0; j < 50; j++) {
            atomic_long sum = 0;
            bl__pool_run(pool, 10000, 100, 1, job, &sum);
            assert_int_equal(atomic_load(&sum), 10000L * 9999 / 2);
        }
        bl__pool_background_wait(pool);
        check_done(r);
        bl__pool_background_wait(pool); /* nothing left: returns at once */
        free(r);
    }
    bl__pool_free(pool);
}

/* No job at all: the worker does it between polls, or the wait does it. */
static void wait_alone_finishes(void **state)
{
    (void)state;
    bl__pool *pool = bl__pool_new(3);
    assert_non_null(pool);
    record *r = calloc(1, sizeof *r);
    bl__pool_background(pool, piece, r, UNITS, GRAIN);
    bl__pool_background_wait(pool);
    check_done(r);
    /* a second work starts only once the first is done (it waits for it itself) */
    record *r2 = calloc(1, sizeof *r2);
    bl__pool_background(pool, piece, r, 0, GRAIN); /* nothing to do */
    bl__pool_background(pool, piece, r2, UNITS, GRAIN);
    bl__pool_background(pool, piece, r2, 0, GRAIN);
    bl__pool_background_wait(pool);
    check_done(r2);
    free(r);
    free(r2);
    bl__pool_free(pool);
}

/* Without a pool (one thread) the pieces run at once, in order. */
static void no_pool_runs_at_once(void **state)
{
    (void)state;
    record *r = calloc(1, sizeof *r);
    bl__pool_background(NULL, piece, r, UNITS, GRAIN);
    check_done(r);
    bl__pool_background_wait(NULL);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(background_fills_the_gaps),
        cmocka_unit_test(wait_alone_finishes),
        cmocka_unit_test(no_pool_runs_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

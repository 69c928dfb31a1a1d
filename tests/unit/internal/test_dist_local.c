/* Local workers (core/src/dist/dist_local.c) as the engine uses them, on 3 processes run SPMD
 * like `batchlab run --workers 3`: the default thread count of a CPU device shared out; the
 * shared counter hands every index out once; messages larger than a socket's buffer, posted
 * while rank 0 is busy, arrive whole and do not block the sender; a broadcast; groups of one
 * (and only those); no reducer; a worker that ends in the middle is named by rank 0's receive
 * and by bl_dist_wait_workers with its exit status. Each worker's failures are its exit
 * status, which rank 0 checks. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batchlab/device.h"
#include "dist/dist.h"

void openblas_set_num_threads(int num_threads);

static int failures;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s\n", bl_dist_rank(), __FILE__,   \
                    __LINE__, #cond);                                                          \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

enum { TAG = 42, BIG = 8 << 20, N_INDEX = 2000, DYING = 2, DYING_STATUS = 7 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static char *pattern(size_t n, int seed)
{
    char *b = malloc(n);
    for (size_t i = 0; b && i < n; i++)
        b[i] = (char)((i * 31 + (size_t)seed * 7) & 0xff);
    return b;
}

static void threads_shared(bl_ctx *ctx)
{
    bl_device *dev = NULL;
    CHECK(bl_device_cpu_open(ctx, 0, &dev) == BL_OK);
    if (dev)
        CHECK(dev->host_threads == 1);   /* 4 threads by default, over 3 workers: 1 each */
    bl_device_free(dev);
    CHECK(bl_device_cpu_open(ctx, 3, &dev) == BL_OK);   /* a count given is kept */
    if (dev)
        CHECK(dev->host_threads == 3);
    bl_device_free(dev);
}

/* Every rank takes indices from the counter until it runs dry; rank 0 checks each was taken
 * exactly once. Twice: the second counter starts at 0 again. */
static void counter_round(bl_ctx *ctx, bl_dist_comm *world)
{
    bl_dist_counter *c = NULL;
    CHECK(bl__dist_counter_new(ctx, world, &c) == BL_OK);
    if (!c)
        return;
    uint64_t mine[2] = {0, 0};           /* count, sum */
    for (;;) {
        uint64_t i = 0;
        CHECK(bl__dist_counter_add(ctx, c, 1, &i) == BL_OK);
        if (i >= N_INDEX)
            break;
        mine[0]++;
        mine[1] += i;
    }
    bl__dist_counter_free(c);
    if (bl__dist_rank(world) != 0) {
        uint64_t *msg = malloc(sizeof mine);
        memcpy(msg, mine, sizeof mine);
        CHECK(bl__dist_post(ctx, world, 0, TAG, msg, sizeof mine) == BL_OK);
        CHECK(bl__dist_flush(ctx) == BL_OK);
        return;
    }
    for (int k = 1; k < bl__dist_size(world); k++) {
        void *buf = NULL;
        size_t len = 0;
        int src = -1;
        CHECK(bl__dist_receive(ctx, world, TAG, true, &src, &buf, &len) == BL_OK);
        CHECK(len == sizeof mine);
        if (len == sizeof mine) {
            uint64_t theirs[2];
            memcpy(theirs, buf, sizeof theirs);
            mine[0] += theirs[0];
            mine[1] += theirs[1];
        }
        free(buf);
    }
    CHECK(mine[0] == N_INDEX);
    CHECK(mine[1] == (uint64_t)N_INDEX * (N_INDEX - 1) / 2);
}

int main(void)
{
    openblas_set_num_threads(4);
    bl_ctx *ctx = bl_ctx_new();
    CHECK(bl_dist_init_workers(ctx, 0) == BL_EINVAL);
    CHECK(bl_dist_init_workers(ctx, BL_DIST_MAX_WORKERS + 1) == BL_EINVAL);
    if (bl_dist_init_workers(ctx, 3) != BL_OK) {
        fprintf(stderr, "cannot start the workers: %s\n", bl_errmsg(ctx));
        return 1;
    }
    bl_dist_comm *world = bl__dist_world();
    int rank = bl__dist_rank(world);
    CHECK(bl_dist_size() == 3 && bl__dist_size(world) == 3 && bl_dist_rank() == rank);
    CHECK(bl_dist_init_workers(ctx, 2) == BL_EUNSUPPORTED);   /* once */

    threads_shared(ctx);
    counter_round(ctx, world);
    counter_round(ctx, world);

    /* large posts while rank 0 is busy: the sender goes on at once */
    if (rank == 0) {
        struct timespec busy = {0, 300 * 1000 * 1000};
        nanosleep(&busy, NULL);
        for (int k = 1; k < 3; k++) {
            void *buf = NULL;
            size_t len = 0;
            int src = -1;
            CHECK(bl__dist_receive(ctx, world, TAG, true, &src, &buf, &len) == BL_OK);
            char *want = pattern(BIG, src);
            CHECK(len == BIG && want && memcmp(buf, want, BIG) == 0);
            free(want);
            free(buf);
        }
    } else {
        char *msg = pattern(BIG, rank);
        double t0 = now();
        CHECK(bl__dist_post(ctx, world, 0, TAG, msg, BIG) == BL_OK);
        CHECK(now() - t0 < 0.25);    /* rank 0 sleeps 0.3 s before it reads anything */
        CHECK(bl__dist_flush(ctx) == BL_OK);
    }

    /* a broadcast larger than a socket's buffer */
    void *b = rank == 0 ? pattern(BIG, 99) : NULL;
    size_t blen = rank == 0 ? BIG : 0;
    CHECK(bl__dist_bcast(ctx, world, 0, &b, &blen) == BL_OK);
    char *want = pattern(BIG, 99);
    CHECK(blen == BIG && b && memcmp(b, want, BIG) == 0);
    free(want);
    free(b);

    /* groups of one, and only those */
    bl_dist_comm *solo = NULL;
    CHECK(bl__dist_split(ctx, world, rank, rank, &solo) == BL_OK);
    CHECK(solo && bl__dist_rank(solo) == 0 && bl__dist_size(solo) == 1);
    bl__dist_comm_free(solo);
    bl_dist_comm *pair = NULL;
    CHECK(bl__dist_split(ctx, world, rank / 2, rank, &pair) == BL_EUNSUPPORTED);
    CHECK(strstr(bl_errmsg(ctx), "need MPI") != NULL);
    CHECK(pair == NULL);

    bl_reducer red;
    bl__dist_reducer(world, &red);
    float x = 1;
    CHECK(red.ranks == 3 && red.sum_f32(&red, ctx, &x, 1) == BL_EUNSUPPORTED);

    /* a worker that ends: rank 0's receive names it (the other worker waits for rank 0) */
    if (rank == DYING) {
        fflush(NULL);
        _exit(failures ? 1 : DYING_STATUS);
    }
    if (rank == 0) {
        void *buf = NULL;
        size_t len = 0;
        int src = -1;
        CHECK(bl__dist_receive(ctx, world, TAG, true, &src, &buf, &len) == BL_EIO);
        CHECK(strstr(bl_errmsg(ctx), "worker 2 (pid ") != NULL);
        CHECK(strstr(bl_errmsg(ctx), "exited with status 7") != NULL);
    }
    /* a broadcast still reaches the workers that are there; rank 0 hears of the one gone */
    b = rank == 0 ? pattern(64, 5) : NULL;
    blen = rank == 0 ? 64 : 0;
    CHECK(bl__dist_bcast(ctx, world, 0, &b, &blen) == (rank == 0 ? BL_EIO : BL_OK));
    CHECK(blen == 64);
    free(b);
    if (rank == 0) {
        int status = -1;
        CHECK(bl_dist_wait_workers(ctx, &status) == BL_EIO);
        CHECK(status == DYING_STATUS);
        CHECK(strstr(bl_errmsg(ctx), "worker 2 (pid ") != NULL);
        CHECK(strstr(bl_errmsg(ctx), "worker 1") == NULL);   /* it ended with 0 */
    }
    bl_dist_finalize();
    bl_ctx_free(ctx);
    if (rank == 0)
        printf("test_dist_local: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}

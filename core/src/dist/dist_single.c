/* The one-process world (dist/dist_backend.h): a process that neither an MPI launcher nor
 * --workers made one of several. Every call that would talk to another rank fails with
 * BL_EUNSUPPORTED, and none is made: with one rank the engine never asks. */
#include <stdlib.h>

#include "dist/dist_backend.h"

static int alone(bl_ctx *ctx, const char *what)
{
    return bl_error(ctx, BL_EUNSUPPORTED, "%s needs several processes (mpirun -np N, or "
                    "batchlab run --workers N), and this is one", what);
}

static void finalize(void)
{
}

static void abort_all(int status)
{
    (void)status;
}

static bl_dist_comm *world(void)
{
    return NULL;
}

static int rank(const bl_dist_comm *comm)
{
    (void)comm;
    return 0;
}

static int size(const bl_dist_comm *comm)
{
    (void)comm;
    return 1;
}

static int split(bl_ctx *ctx, bl_dist_comm *comm, int color, int key, bl_dist_comm **out)
{
    *out = NULL;
    return alone(ctx, "splitting the ranks into groups");
}

static void comm_free(bl_dist_comm *comm)
{
    (void)comm;
}

static int counter_new(bl_ctx *ctx, bl_dist_comm *comm, bl_dist_counter **out)
{
    *out = NULL;
    return alone(ctx, "a shared counter");
}

static int counter_add(bl_ctx *ctx, bl_dist_counter *counter, uint64_t add, uint64_t *before)
{
    return alone(ctx, "a shared counter");
}

static void counter_free(bl_dist_counter *counter)
{
    (void)counter;
}

static int post(bl_ctx *ctx, bl_dist_comm *comm, int dest, int tag, void *buf, size_t len)
{
    free(buf);
    return alone(ctx, "sending to another rank");
}

static int flush(bl_ctx *ctx)
{
    (void)ctx;
    return BL_OK;
}

static int receive(bl_ctx *ctx, bl_dist_comm *comm, int tag, bool wait, int *src, void **buf,
                   size_t *len)
{
    *buf = NULL;
    *len = 0;
    return alone(ctx, "receiving from another rank");
}

static int bcast(bl_ctx *ctx, bl_dist_comm *comm, int root, void **buf, size_t *len)
{
    return alone(ctx, "a broadcast");
}

/* One rank: the sum is the buffer itself, the broadcast a no-op. */
static int sum_f32(const bl_reducer *self, bl_ctx *ctx, float *buf, size_t n)
{
    return BL_OK;
}

static int sum_f64(const bl_reducer *self, bl_ctx *ctx, double *buf, size_t n)
{
    return BL_OK;
}

static int broadcast(const bl_reducer *self, bl_ctx *ctx, void *buf, size_t bytes, int root)
{
    return BL_OK;
}

static void reducer(bl_dist_comm *comm, bl_reducer *out)
{
    *out = (bl_reducer){.size = sizeof *out, .ranks = 1, .rank = 0, .sum_f32 = sum_f32,
                        .sum_f64 = sum_f64, .broadcast = broadcast, .state = comm};
}

const bl__dist_backend bl__dist_single = {
    .name = "single", .finalize = finalize, .abort = abort_all, .world = world, .rank = rank,
    .size = size, .split = split, .comm_free = comm_free, .counter_new = counter_new,
    .counter_add = counter_add, .counter_free = counter_free, .post = post, .flush = flush,
    .receive = receive, .bcast = bcast, .reducer = reducer,
};

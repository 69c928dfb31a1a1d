/* The distributed layer without MPI (dist/dist.h): the one-rank world. Built instead of
 * dist_mpi.c when CMake did not find MPI (BATCHLAB_MPI=OFF, or AUTO without it). With one rank
 * the engine never sends or receives; the calls that would fail with BL_EUNSUPPORTED. */
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"

static int no_mpi(bl_ctx *ctx, const char *what)
{
    return bl_error(ctx, BL_EUNSUPPORTED, "%s needs MPI, and this batchlab was built without "
                    "it (cmake -DBATCHLAB_MPI=ON with Open MPI's libopenmpi-dev)", what);
}

bool bl_dist_built(void)
{
    return false;
}

int bl_dist_init(bl_ctx *ctx)
{
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    if (!size)
        size = getenv("PMI_SIZE");
    if (size && strtol(size, NULL, 10) > 1)
        return no_mpi(ctx, "running under an MPI launcher with several ranks");
    return BL_OK;
}

void bl_dist_finalize(void)
{
}

void bl_dist_abort(int status)
{
    (void)status;
}

int bl_dist_rank(void)
{
    return 0;
}

int bl_dist_size(void)
{
    return 1;
}

bl_dist_comm *bl__dist_world(void)
{
    return NULL;
}

int bl__dist_rank(const bl_dist_comm *comm)
{
    (void)comm;
    return 0;
}

int bl__dist_size(const bl_dist_comm *comm)
{
    (void)comm;
    return 1;
}

int bl__dist_split(bl_ctx *ctx, bl_dist_comm *comm, int color, int key, bl_dist_comm **out)
{
    *out = NULL;
    return no_mpi(ctx, "splitting the ranks into groups");
}

void bl__dist_comm_free(bl_dist_comm *comm)
{
    (void)comm;
}

bl_dist_comm *bl__dist_current(void)
{
    return NULL;
}

bl_dist_comm *bl__dist_set_current(bl_dist_comm *comm)
{
    (void)comm;
    return NULL;
}

int bl__dist_counter_new(bl_ctx *ctx, bl_dist_comm *comm, bl_dist_counter **out)
{
    *out = NULL;
    return no_mpi(ctx, "a shared counter");
}

int bl__dist_counter_add(bl_ctx *ctx, bl_dist_counter *counter, uint64_t add, uint64_t *before)
{
    return no_mpi(ctx, "a shared counter");
}

void bl__dist_counter_free(bl_dist_counter *counter)
{
    (void)counter;
}

int bl__dist_post(bl_ctx *ctx, bl_dist_comm *comm, int dest, int tag, void *buf, size_t len)
{
    free(buf);
    return no_mpi(ctx, "sending to another rank");
}

int bl__dist_flush(bl_ctx *ctx)
{
    (void)ctx;
    return BL_OK;
}

int bl__dist_receive(bl_ctx *ctx, bl_dist_comm *comm, int tag, bool wait, int *src, void **buf,
                     size_t *len)
{
    *buf = NULL;
    *len = 0;
    return no_mpi(ctx, "receiving from another rank");
}

int bl__dist_bcast(bl_ctx *ctx, bl_dist_comm *comm, int root, void **buf, size_t *len)
{
    return no_mpi(ctx, "a broadcast");
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

void bl__dist_reducer(bl_dist_comm *comm, bl_reducer *out)
{
    *out = (bl_reducer){.size = sizeof *out, .ranks = 1, .rank = 0, .sum_f32 = sum_f32,
                        .sum_f64 = sum_f64, .broadcast = broadcast, .state = comm};
}

/* The distributed layer's front (dist/dist.h, batchlab/dist.h): which world this process runs
 * in — one process, MPI or local workers (dist_backend.h) — and every call passed to it. */
#include <stdlib.h>

#include "dist/dist_backend.h"

static struct {
    const bl__dist_backend *world;     /* NULL: one process (bl__dist_single) */
    bool local;                        /* world is the local workers' */
    bl_dist_comm *current;
} g;

static const bl__dist_backend *B(void)
{
    return g.world ? g.world : &bl__dist_single;
}

/* A NULL comm is the one-rank world, whichever world runs. */
static const bl__dist_backend *of(const bl_dist_comm *comm)
{
    return comm ? B() : &bl__dist_single;
}

bool bl__dist_mpi_launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "PMI_SIZE", "MPI_LOCALNRANKS", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i]))
            return true;
    return false;
}

long bl__dist_launched_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS",
                                       NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v)
            return strtol(v, NULL, 10);
    }
    return 0;
}

/* ---- the world (batchlab/dist.h) ------------------------------------------------------------ */

int bl_dist_init(bl_ctx *ctx)
{
    if (g.world)
        return BL_OK;
    const bl__dist_backend *w = NULL;
    int rc = bl__dist_mpi_start(ctx, &w);
    if (rc == BL_OK)
        g.world = w;
    return rc;
}

int bl_dist_init_workers(bl_ctx *ctx, int workers)
{
    if (workers < 1 || workers > BL_DIST_MAX_WORKERS)
        return bl_error(ctx, BL_EINVAL, "the number of workers must be in [1, %d], got %d",
                        BL_DIST_MAX_WORKERS, workers);
    if (workers == 1)
        return BL_OK;
    if (g.world && g.local)
        return bl_error(ctx, BL_EUNSUPPORTED, "the local workers were already started");
    if (g.world || bl__dist_mpi_launched())
        return bl_error(ctx, BL_EUNSUPPORTED, "local workers (--workers) cannot be combined "
                        "with an MPI launch (mpirun, srun): the MPI ranks are the workers");
    const bl__dist_backend *w = NULL;
    int rc = bl__dist_local_start(ctx, workers, &w);
    if (rc == BL_OK) {
        g.world = w;
        g.local = true;
    }
    return rc;
}

int bl_dist_wait_workers(bl_ctx *ctx, int *status)
{
    return bl__dist_local_wait(ctx, status); /* BL_OK, *status 0: none running here */
}

void bl_dist_finalize(void)
{
    if (!g.world)
        return;
    g.world->finalize();
    g.world = NULL;
    g.local = false;
    g.current = NULL;
}

void bl_dist_abort(int status)
{
    B()->abort(status);
}

int bl_dist_rank(void)
{
    return bl__dist_rank(bl__dist_world());
}

int bl_dist_size(void)
{
    return bl__dist_size(bl__dist_world());
}

bool bl_dist_world_reducer(bl_reducer *out)
{
    bl_dist_comm *world = bl__dist_world();
    if (bl__dist_size(world) < 2)
        return false;
    bl__dist_reducer(world, out);
    return true;
}

/* ---- comms, counters, messages (dist/dist.h): the world's own -------------------------------- */

bl_dist_comm *bl__dist_world(void)
{
    return B()->world();
}

int bl__dist_rank(const bl_dist_comm *comm)
{
    return comm ? B()->rank(comm) : 0;
}

int bl__dist_size(const bl_dist_comm *comm)
{
    return comm ? B()->size(comm) : 1;
}

int bl__dist_split(bl_ctx *ctx, bl_dist_comm *comm, int color, int key, bl_dist_comm **out)
{
    *out = NULL;
    return of(comm)->split(ctx, comm, color, key, out);
}

void bl__dist_comm_free(bl_dist_comm *comm)
{
    if (!comm || comm == bl__dist_world())
        return;
    if (g.current == comm)
        g.current = NULL;
    B()->comm_free(comm);
}

bl_dist_comm *bl__dist_current(void)
{
    return g.current ? g.current : bl__dist_world();
}

bl_dist_comm *bl__dist_set_current(bl_dist_comm *comm)
{
    bl_dist_comm *before = g.current;
    g.current = comm;
    return before;
}

int bl__dist_counter_new(bl_ctx *ctx, bl_dist_comm *comm, bl_dist_counter **out)
{
    *out = NULL;
    return of(comm)->counter_new(ctx, comm, out);
}

int bl__dist_counter_add(bl_ctx *ctx, bl_dist_counter *counter, uint64_t add, uint64_t *before)
{
    return B()->counter_add(ctx, counter, add, before);
}

void bl__dist_counter_free(bl_dist_counter *counter)
{
    if (counter)
        B()->counter_free(counter);
}

int bl__dist_post(bl_ctx *ctx, bl_dist_comm *comm, int dest, int tag, void *buf, size_t len)
{
    return of(comm)->post(ctx, comm, dest, tag, buf, len);
}

int bl__dist_flush(bl_ctx *ctx)
{
    return B()->flush(ctx);
}

int bl__dist_receive(bl_ctx *ctx, bl_dist_comm *comm, int tag, bool wait, int *src, void **buf,
                     size_t *len)
{
    *buf = NULL;
    *len = 0;
    return of(comm)->receive(ctx, comm, tag, wait, src, buf, len);
}

int bl__dist_bcast(bl_ctx *ctx, bl_dist_comm *comm, int root, void **buf, size_t *len)
{
    return of(comm)->bcast(ctx, comm, root, buf, len);
}

void bl__dist_reducer(bl_dist_comm *comm, bl_reducer *out)
{
    of(comm)->reducer(comm, out);
}

/* The worlds behind dist/dist.h: which one a process runs in is chosen at run time.
 *
 *   dist_single.c  one process (the default): every call that would talk to another rank
 *                  fails with BL_EUNSUPPORTED, and none is made (with one rank the engine
 *                  never asks)
 *   dist_mpi.c     MPI, when an MPI launcher started the process (the only file that calls
 *                  MPI; built with BATCHLAB_MPI, dist_nompi.c stands in for it otherwise)
 *   dist_local.c   local worker processes (batchlab run --workers N): rank 0 and the N - 1
 *                  children it forked, joined in a star of socketpairs
 *
 * dist.c holds the one that runs (set by bl_dist_init or bl_dist_init_workers, never both) and
 * passes every dist.h call to it. A comm or counter belongs to the world that made it. */
#ifndef BATCHLAB_DIST_BACKEND_H
#define BATCHLAB_DIST_BACKEND_H

#include "dist/dist.h"

typedef struct bl__dist_backend {
    const char *name;                    /* "single", "mpi", "local" */
    void (*finalize)(void);
    void (*abort)(int status);
    bl_dist_comm *(*world)(void);
    int (*rank)(const bl_dist_comm *comm);          /* comm is never NULL here */
    int (*size)(const bl_dist_comm *comm);
    int (*split)(bl_ctx *ctx, bl_dist_comm *comm, int color, int key, bl_dist_comm **out);
    void (*comm_free)(bl_dist_comm *comm);          /* never the world */
    int (*counter_new)(bl_ctx *ctx, bl_dist_comm *comm, bl_dist_counter **out);
    int (*counter_add)(bl_ctx *ctx, bl_dist_counter *counter, uint64_t add, uint64_t *before);
    void (*counter_free)(bl_dist_counter *counter);
    int (*post)(bl_ctx *ctx, bl_dist_comm *comm, int dest, int tag, void *buf, size_t len);
    int (*flush)(bl_ctx *ctx);
    int (*receive)(bl_ctx *ctx, bl_dist_comm *comm, int tag, bool wait, int *src, void **buf,
                   size_t *len);
    int (*bcast)(bl_ctx *ctx, bl_dist_comm *comm, int root, void **buf, size_t *len);
    void (*reducer)(bl_dist_comm *comm, bl_reducer *out);
} bl__dist_backend;

/* The one-process world (dist_single.c). */
extern const bl__dist_backend bl__dist_single;

/* dist_mpi.c: starts MPI when a launcher started this process (or BATCHLAB_MPI_INIT=1) and
 * sets *out to the MPI world; *out NULL when it was not launched so. dist_nompi.c, built
 * without MPI: *out NULL, or BL_EUNSUPPORTED when a launcher started several ranks. */
int bl__dist_mpi_start(bl_ctx *ctx, const bl__dist_backend **out);
/* Whether an MPI launcher (mpirun, mpiexec, srun) started this process: its environment says
 * so (dist.c). */
bool bl__dist_mpi_launched(void);
/* The number of ranks the launcher's environment announces (Open MPI, PMI, MPICH/Intel MPI),
 * or 0 when it says none. */
long bl__dist_launched_size(void);

/* dist_local.c: forks workers - 1 children (workers ≥ 2); on return the caller is rank 0 and
 * each child rank 1 … workers - 1, *out the local world. On error nothing was forked. Called
 * once (dist.c refuses a second start). */
int bl__dist_local_start(bl_ctx *ctx, int workers, const bl__dist_backend **out);
/* Rank 0 of the local world: waits for the workers (dist.h, bl_dist_wait_workers). */
int bl__dist_local_wait(bl_ctx *ctx, int *status);

#endif

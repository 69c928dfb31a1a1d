/* batchlab — several processes: under MPI, or local workers (docs/distributed.md).
 *
 * A process runs in one of three worlds: one process (rank 0 of 1, the default); an MPI job
 * (libbatchlab built with BATCHLAB_MPI has one file that calls MPI, core/src/dist/dist_mpi.c);
 * or local worker processes that the program forked (bl_dist_init_workers; no MPI needed). A
 * program (the batchlab command) calls bl_dist_init or bl_dist_init_workers once at start and
 * bl_dist_finalize (or bl_dist_abort) once at the end; the library itself never starts or
 * stops either. Everything else — which sweep executor runs, which ranks train a
 * data-parallel run together — follows from the world the program started.
 */
#ifndef BATCHLAB_DIST_H
#define BATCHLAB_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether this libbatchlab was built with MPI. */
BL_EXPORT bool bl_dist_built(void);

/* Starts MPI when this process was started by an MPI launcher (mpirun, mpiexec or srun: the
 * launcher's environment says so) or BATCHLAB_MPI_INIT=1 is set, and the library was built
 * with MPI; otherwise does nothing (one rank). A process that initialized MPI itself keeps it
 * (bl_dist_finalize then leaves it alone). Returns 0, or BL_EUNSUPPORTED when a launcher
 * started this process with more than one rank but the library has no MPI (every rank would
 * run everything), or BL_EIO when MPI failed to start; the message is in ctx. */
BL_EXPORT int bl_dist_init(bl_ctx *ctx);

/* The most local workers bl_dist_init_workers starts. */
#define BL_DIST_MAX_WORKERS 256

/* Starts `workers` local worker processes (batchlab run --workers N): forks workers - 1
 * children, each of which returns from this call as rank 1 … workers - 1 while the caller goes
 * on as rank 0; all then run the same program (SPMD), as the ranks of an MPI job do: a sweep's
 * points are shared through the same work queue, and only rank 0 records them in order and
 * broadcasts them. Connections: a socketpair between each child and rank 0, the queue's
 * counter in shared memory. Splitting into groups (a sweep's ranks_per_run > 1) and the
 * data-parallel reducer answer BL_EUNSUPPORTED (they need MPI).
 *
 * Call it once, early: before the program starts threads of its own or opens files it will
 * write (the children inherit the process as it is; OpenBLAS stops and restarts its own
 * threads around a fork), with stdio flushed. In every worker, a CPU device opened with
 * threads = 0 then computes with max(1, default / workers) threads (the CPU device's default:
 * OpenBLAS's thread count). A child whose rank 0 ended finds its connection closed (and on
 * Linux gets SIGTERM). workers = 1 does nothing.
 *
 * Returns 0 (in rank 0 and in every child); BL_EINVAL for workers outside
 * 1 … BL_DIST_MAX_WORKERS; BL_EUNSUPPORTED when an MPI launcher started this process or the
 * workers run already; BL_EIO when a socket, the shared memory or a fork failed (the children
 * forked so far are ended and waited for). The message is in ctx. */
BL_EXPORT int bl_dist_init_workers(bl_ctx *ctx, int workers);

/* Rank 0 of local workers, at the end (after the program's last collective call, before
 * bl_dist_finalize): closes the connections and waits for every worker to exit. Returns 0 and
 * *status 0 when each exited with status 0, or there are none (another rank, MPI, one process);
 * else BL_EIO, the message naming each worker that did not (rank, pid, exit status or
 * signal), and *status the first one's exit status (1 when a signal ended it). */
BL_EXPORT int bl_dist_wait_workers(bl_ctx *ctx, int *status);

/* Ends MPI when bl_dist_init started it, or the local workers' connections (every rank must
 * call it; rank 0 of local workers waits for them, as bl_dist_wait_workers does, when it was
 * not called). Safe to call twice. */
BL_EXPORT void bl_dist_finalize(void);

/* Ends every rank of the job with `status`: for a fatal error on one rank while others may
 * wait for it. Under MPI: MPI_Abort (it does not return). Rank 0 of local workers: closes the
 * connections (a worker waiting for rank 0 ends), gives the workers a second to end, sends
 * those still there SIGTERM (a run ends after its current step, recorded as interrupted),
 * waits for them (SIGKILL after 10 s) and returns; a local worker returns at once
 * (its exit closes its connection, which rank 0 notices). One process: returns. The caller then
 * exits as usual. */
BL_EXPORT void bl_dist_abort(int status);

/* This process's rank in the world (0 in one process) and the number of ranks (1). */
BL_EXPORT int bl_dist_rank(void);
BL_EXPORT int bl_dist_size(void);

/* ---- gradient reduction: the seam for MPI now and NCCL later -------------------------------- */

/* How a data-parallel run's ranks combine their gradients. The MPI reducer (host buffers)
 * comes from core/src/dist/dist_mpi.c; a device backend with its own collectives (NCCL on
 * device buffers) can supply another with the same operations. Buffers are the device's (the
 * CPU device: host memory). Every operation is collective over the run's ranks, in the same
 * order on every rank, and returns 0 or a negative BL_E… code with the message in ctx. */
typedef struct bl_reducer {
    size_t size;             /* sizeof(bl_reducer) when filled; fields are only appended */
    int ranks;               /* ranks training this run together */
    int rank;                /* this rank among them, 0 … ranks-1 */
    /* Sums buf[0 … n-1] over the ranks, in place (every rank ends with the sum). */
    int (*sum_f32)(const struct bl_reducer *self, bl_ctx *ctx, float *buf, size_t n);
    /* The same for doubles (losses, squared norms: a handful of values). */
    int (*sum_f64)(const struct bl_reducer *self, bl_ctx *ctx, double *buf, size_t n);
    /* Copies `bytes` of rank `root`'s buf into every other rank's buf. */
    int (*broadcast)(const struct bl_reducer *self, bl_ctx *ctx, void *buf, size_t bytes,
                     int root);
    void *state;             /* the implementation's own */
} bl_reducer;

/* The MPI reducer over every rank of the job (for programs and benchmarks; a run's own comes
 * from bl_run): true with *out filled, false in one process. The local workers' reducer
 * answers BL_EUNSUPPORTED to every operation. */
BL_EXPORT bool bl_dist_world_reducer(bl_reducer *out);

#ifdef __cplusplus
}
#endif
#endif

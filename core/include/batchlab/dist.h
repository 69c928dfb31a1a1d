/* batchlab — running under MPI (docs/distributed.md).
 *
 * libbatchlab built with BATCHLAB_MPI has one file that calls MPI (core/src/dist/dist_mpi.c);
 * without it a single-process stand-in answers: one rank, rank 0. A program (the batchlab
 * command) calls bl_dist_init once at start and bl_dist_finalize (or bl_dist_abort) once at
 * the end; the library itself never starts or stops MPI. Everything else — which sweep
 * executor runs, which ranks train a data-parallel run together — follows from the world the
 * program started.
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

/* Ends MPI when bl_dist_init started it (every rank must call it). Safe to call twice. */
BL_EXPORT void bl_dist_finalize(void);

/* Ends every rank of the job with `status` (MPI_Abort): for a fatal error on one rank while
 * others may wait for it. Without MPI running it returns and the caller exits as usual. */
BL_EXPORT void bl_dist_abort(int status);

/* This process's rank in the world (0 without MPI) and the number of ranks (1). */
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
 * from bl_run): true with *out filled, false when MPI is not running or has one rank. */
BL_EXPORT bool bl_dist_world_reducer(bl_reducer *out);

#ifdef __cplusplus
}
#endif
#endif

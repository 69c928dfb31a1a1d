/* Internal: a small thread pool for the CPU backend's kernels.
 *
 * The caller of bl__pool_run always works too, and the range is cut into a fixed number of
 * chunks that whichever thread is free claims next, so a worker that the scheduler has not
 * woken yet never makes the caller wait for work it could do itself. Chunk boundaries depend
 * only on the arguments, never on timing, so results are the same from run to run.
 *
 * Idle workers spin (yielding the CPU between checks, so that OpenBLAS's own threads and other
 * programs keep running) for a short while after each job and then sleep on a condition
 * variable. One pool serves one device and is driven by one thread at a time.
 */
#ifndef BATCHLAB_CPU_POOL_H
#define BATCHLAB_CPU_POOL_H

#include <stdint.h>

typedef struct bl__pool bl__pool;

/* Most threads a pool runs jobs on, and so most chunks a job is cut into. */
#define BL__POOL_MAX_THREADS 64

/* Work on the units [begin, end) of a job; `chunk` (0 ≤ chunk < BL__POOL_MAX_THREADS) numbers
 * the chunk in order of position, for per-chunk partial results. */
typedef void (*bl__pool_fn)(void *arg, int chunk, int64_t begin, int64_t end);

/* A pool that runs jobs on `threads` threads (the caller plus threads − 1 workers), at most
 * BL__POOL_MAX_THREADS. Returns NULL when threads < 2 or when memory or threads are exhausted. */
bl__pool *bl__pool_new(int threads);
void bl__pool_free(bl__pool *pool);   /* NULL allowed */

/* Threads the pool runs jobs on (1 for NULL). */
int bl__pool_threads(const bl__pool *pool);

/* Runs fn over [0, n) in chunks whose boundaries are multiples of `align` units, each chunk at
 * least `grain` units (so small jobs run on the caller alone), and returns the number of chunks
 * once all are done. A NULL pool runs fn(arg, 0, 0, n) on the caller. */
int bl__pool_run(bl__pool *pool, int64_t n, int64_t grain, int64_t align, bl__pool_fn fn,
                  void *arg);

/* Background work: fn over [0, n) in pieces of `grain` units, run in index order and never two
 * at a time, by whichever pool thread would otherwise wait (a worker between jobs, the caller
 * at the end of bl__pool_run, which runs a third of a piece at a time there), so work that
 * must not slow the kernels (the loader's gather of the next batch) fills their gaps. A worker
 * that is running a piece when a job starts joins it when the piece ends, so a piece should be
 * short (a few microseconds).
 *
 * bl__pool_background publishes the work and returns at once; bl__pool_background_wait runs
 * the pieces still left on the caller and returns when every piece is done. One background
 * work at a time: the driver waits for it before starting another or releasing what fn uses.
 * A NULL pool runs every piece in bl__pool_background itself. */
typedef void (*bl__pool_bg_fn)(void *arg, int64_t begin, int64_t end);
void bl__pool_background(bl__pool *pool, bl__pool_bg_fn fn, void *arg, int64_t n,
                         int64_t grain);
void bl__pool_background_wait(bl__pool *pool);

#endif

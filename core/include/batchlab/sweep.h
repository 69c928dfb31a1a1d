/* batchlab — a sweep: the points of a grid run one after another, scored, with a best run.
 *
 * The sweep owns what every front end (bl.sweep today; a CLI command or an MPI driver later)
 * would otherwise write again: the grid's order, the order the points are handed out, what a
 * failed or resumed point means, when the sweep stops, the scores and the best point. Points
 * are opaque to it: it hands out indices 0..n-1, and the caller's hooks build point i, run it
 * and say what came of it (a bl_sweep_point). It knows nothing of Lua or of the store.
 *
 * Who runs a point is the executor's business (the seam for isolated and distributed runs):
 *
 *     bl_sweep_run ──► executor->execute(executor, sweep, ctx)
 *                        loop: bl_sweep_next_index(sweep, &i)    the work queue: 0, 1, ..., n-1
 *                              bl_sweep_run_point(sweep, ctx, i, &p)   resume hook, then run hook
 *                              bl_sweep_record(sweep, ctx, i, &p)      counts, on_point hook
 *                  ◄── scores and the best point, over the recorded points in index order
 *
 * bl_sweep_inprocess() runs each point in this process, in order. bl_sweep_isolated() (a
 * fork-per-run executor) calls bl_sweep_run_point in a child process and sends the plain
 * bl_sweep_point back over a pipe, with whatever the caller packs beside it; a child that
 * dies (a signal, an abort) or runs past its timeout is reported to the caller's `lost` hook
 * and the sweep goes on. bl_sweep_distributed() shares the points among the ranks of an MPI
 * job through a counter on rank 0 and records on rank 0 what the ranks send back. Neither
 * changes the callers: they pass hooks and get the same summary.
 */
#ifndef BATCHLAB_SWEEP_H
#define BATCHLAB_SWEEP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "batchlab/error.h"
#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the grid ------------------------------------------------------------------------------ */

/* The cartesian product of nk lists: keys in sorted (strcmp) order, the first key varying
 * slowest, each key's values in the order given — like nested loops in key order. */
typedef struct bl_grid {
    size_t nk;          /* number of keys */
    size_t total;       /* number of points: the product of the lengths (1 when nk is 0) */
    size_t *order;      /* order[k]: position (in the arrays given) of the k-th sorted key */
    size_t *len;        /* len[k]: the number of values of the k-th sorted key */
} bl_grid;

/* Makes the grid of nk keys (names[i] has len[i] ≥ 1 values; names are not copied and need
 * not outlive the call). BL_EINVAL when a length is 0 (the message names the key) or the
 * grid has more than 2^40 points, BL_ENOMEM; on error *grid is zeroed. Release with
 * bl_grid_free. */
BL_EXPORT int bl_grid_init(bl_ctx *ctx, bl_grid *grid, const char *const *names,
                           const size_t *len, size_t nk);

/* The values of point `index` (0 ≤ index < total): at[k] (0-based) is the value index of the
 * k-th sorted key (whose position in the arrays given is grid->order[k]). */
BL_EXPORT void bl_grid_point(const bl_grid *grid, size_t index, size_t *at);

/* Releases a grid; a zeroed or released grid is fine. */
BL_EXPORT void bl_grid_free(bl_grid *grid);

/* ---- the sweep ----------------------------------------------------------------------------- */

typedef enum {
    BL_SWEEP_COMPLETED = 0,  /* finished normally: it is scored */
    BL_SWEEP_FAILED = 1,     /* could not start or failed: counted in `failed`, not scored */
    BL_SWEEP_OTHER = 2       /* ended otherwise (diverged, stopped): neither */
} bl_sweep_status;

/* What came of one point: all the sweep needs, plain data (a child process or another rank
 * can send it as it is). */
typedef struct bl_sweep_point {
    bl_sweep_status status;
    bool resumed;            /* given back from an earlier sweep instead of trained */
    bool has_target_time;    /* the run reports a time to its target (a number, maybe NaN) */
    double time_to_target;   /* seconds; NaN when not reached */
    double val_loss;         /* final validation loss; NaN when none */
    double score;            /* set by the sweep: the point's score, NaN when it has none */
    double steps_to_target;  /* steps to the target (interpolated); NaN when not reached */
} bl_sweep_point;

typedef struct bl_sweep bl_sweep;   /* one running sweep (opaque; lives inside bl_sweep_run) */

/* The caller's side. Every hook returns 0, or a negative BL_E… code (message in ctx) that
 * ends the sweep with that code; BL_EINTERRUPTED is the interrupt. */
typedef struct bl_sweep_hooks {
    void *user;
    /* Required: runs point `index` and fills *out (pre-set: status FAILED, NaN numbers). A
     * point that fails is not an error: set status FAILED and return 0. */
    int (*run)(void *user, bl_ctx *ctx, size_t index, bl_sweep_point *out);
    /* Optional: when point `index` finished in an earlier sweep, fill *out, set *found and
     * return 0; the point is then recorded as resumed without running. */
    int (*resume)(void *user, bl_ctx *ctx, size_t index, bl_sweep_point *out, bool *found);
    /* Optional: called after each point is recorded, in the order recorded. */
    int (*on_point)(void *user, bl_ctx *ctx, size_t index, const bl_sweep_point *p,
                    size_t total);
    /* Optional: the score of a completed point (NaN or ±inf: the point has none). Without
     * it the default score is used (see bl_sweep_options). Called in index order after every
     * point ran. */
    int (*score)(void *user, bl_ctx *ctx, size_t index, const bl_sweep_point *p,
                 double *score);
    /* Optional, for executors that run a point in another process (bl_sweep_distributed):
     * `pack` runs where point `index` ran, after it ran with code `rc`, and gives what the
     * caller keeps of it beside the bl_sweep_point (its run table, its error) as malloc'd
     * bytes (*data NULL, *len 0: nothing); `unpack` takes them in another process before the
     * point is recorded there, and returns the code to go on with (BL_OK, or rc with the
     * message in ctx). Without them only the bl_sweep_point travels. */
    int (*pack)(void *user, bl_ctx *ctx, size_t index, int rc, void **data, size_t *len);
    int (*unpack)(void *user, bl_ctx *ctx, size_t index, int rc, const char *msg,
                  const void *data, size_t len, bl_sweep_point *p);
} bl_sweep_hooks;

/* How points are executed (see the header comment). `execute` takes indices with
 * bl_sweep_next_index until it returns false, runs each with bl_sweep_run_point (or has them
 * run elsewhere) and hands each result to bl_sweep_record; it returns 0 or the negative code
 * that ended the sweep early. */
typedef struct bl_sweep_executor {
    const char *name;
    int (*execute)(const struct bl_sweep_executor *self, bl_sweep *sweep, bl_ctx *ctx);
    void *state;             /* the executor's own */
} bl_sweep_executor;

/* Runs each point in this process, in index order; stops at the first hook error. */
BL_EXPORT const bl_sweep_executor *bl_sweep_inprocess(void);

/* ---- distributed runs: the ranks of an MPI job ---------------------------------------------- */

/* An executor that shares the points among the ranks of the MPI job (docs/distributed.md), or
 * false when this process is not one of several ranks (MPI not built or not running, or one
 * rank): then the caller runs as before. Every rank calls bl_sweep_run with the same points
 * and hooks. The work queue is a counter on rank 0 that every rank takes the next index from
 * as it becomes free (rank 0 trains too); a rank runs its point with bl_sweep_run_point and
 * sends the point and the caller's packed bytes (hooks.pack) to rank 0, which records it (its
 * on_point hook runs as results arrive, so only rank 0's output is live). When every point
 * was recorded, rank 0 sends all of them to every rank, which records them in index order
 * (unpacking the ones it did not run), so every rank returns the same summary and a script
 * goes on in step on every rank. A point that fails is a result like on one machine; a hook
 * error (an interrupt, a script error) on any rank stops the queue, the points already handed
 * out finish, and every rank returns that error.
 * `ranks_per_run` > 1 splits the world into groups of that many ranks (MPI_Comm_split; the
 * world's size must be a multiple): a group takes one point at a time and all its ranks run
 * it, the group being the communicator of a data_parallel run; only the group's first rank
 * sends the result. *out is filled (no allocation). */
BL_EXPORT bool bl_sweep_distributed(int ranks_per_run, bl_sweep_executor *out);

/* ---- isolated runs: one child process per point ------------------------------------------- */

/* What became of a child that did not send its result. */
typedef struct bl_isolate_loss {
    bl_run_status status;    /* BL_RUN_CRASHED, BL_RUN_TIMED_OUT, or BL_RUN_INTERRUPTED (a
                                second stop signal: the child was killed) */
    int signal;              /* the signal that ended the child; 0 when it exited */
    int exit_status;         /* its exit status when it exited, else -1 */
    double limit;            /* BL_RUN_TIMED_OUT: the timeout in seconds */
    long pid;                /* the child's process id */
    const char *stopped_by;  /* for the record: "signal", "exit", "timeout" or "interrupt" */
    char signal_name[16];    /* "SIGSEGV", "SIGABRT", ... ("" when it exited) */
    char what[160];          /* for the record: "killed by SIGSEGV (Segmentation fault)",
                                "ran past its timeout of 3 s", "exited with status 3 ..." */
    const void *note;        /* the last note the child sent (bl_isolate_note), or NULL */
    size_t note_len;
} bl_isolate_loss;

/* The caller's side of bl_sweep_isolated. The sweep's own hooks run in the child (resume,
 * run) and in the parent (on_point, score) as usual. */
typedef struct bl_isolate_hooks {
    void *user;
    double timeout;          /* seconds one point may take; 0 or infinite: no limit. Past it
                                the child gets SIGTERM, then SIGKILL after `grace`. */
    double grace;            /* seconds from SIGTERM to SIGKILL (0: 2 s) */
    /* The host's stop flag (may be NULL): once non-zero the child is sent SIGTERM (its run ends
     * after the current step, as in process); at 2 (a second signal) the child is killed with
     * SIGKILL, reported lost as BL_RUN_INTERRUPTED, and the sweep ends with BL_EINTERRUPTED. */
    volatile sig_atomic_t *interrupt;
    volatile sig_atomic_t *supervising;   /* set to 1 while a child runs, then 0; may be NULL */
    /* In the child, before the point runs: `fd` is the pipe to the parent (for bl_isolate_note)
     * and `stop` the flag the child's SIGTERM/SIGINT/SIGHUP handler sets (give it to the runs).
     * Optional. */
    void (*child_init)(void *user, int fd, volatile sig_atomic_t *stop);
    /* In the child, after the point ran with code `rc`: a malloc'd payload for `result`
     * (*data NULL, *len 0: none). Optional. */
    int (*pack)(void *user, bl_ctx *ctx, size_t index, int rc, void **data, size_t *len);
    /* In the parent: the child's code `rc` and message, its bl_sweep_point already in *p, and
     * its payload. Returns the code to go on with (BL_OK, or rc, or another). Optional: without
     * it the child's rc is returned and its message kept. */
    int (*result)(void *user, bl_ctx *ctx, size_t index, int rc, const char *msg,
                  const void *data, size_t len, bl_sweep_point *p);
    /* Required. In the parent: the child died or was stopped without sending its result; fill
     * *p (pre-set: FAILED, NaN numbers), e.g. after recording the run. BL_OK goes on. */
    int (*lost)(void *user, bl_ctx *ctx, size_t index, const bl_isolate_loss *loss,
                bl_sweep_point *p);
} bl_isolate_hooks;

/* An executor that runs every point in a child process of its own (fork, POSIX): a crash, an
 * abort or a hang in a plugin ends that child only. `hooks` must outlive the sweep; *out is
 * filled (no allocation). Output buffered in stdio is flushed before each fork. */
BL_EXPORT void bl_sweep_isolated(const bl_isolate_hooks *hooks, bl_sweep_executor *out);

/* In an isolated child: sends `len` bytes to the parent as a note (the parent keeps the last
 * one and gives it to `lost`: what the child was doing when it died). BL_EIO when the pipe
 * failed. */
BL_EXPORT int bl_isolate_note(bl_ctx *ctx, int fd, const void *data, size_t len);

typedef struct bl_sweep_options {
    size_t points;           /* how many points (indices 0..points-1) */
    bool higher_is_better;   /* for the scores */
} bl_sweep_options;

/* What a sweep gives back. Scores: the score hook's, or by default — when some completed point
 * has a target time (has_target_time) — time_to_target, else the final val_loss. Only
 * completed points with a finite score have one. The best point has the lowest score (the
 * highest with higher_is_better); ties keep the earlier index. */
typedef struct bl_sweep_summary {
    size_t total;            /* points */
    size_t done;             /* points recorded (< total when the sweep ended early) */
    size_t failed;           /* points with status FAILED */
    size_t resumed;          /* points given back by the resume hook or marked resumed */
    size_t best;             /* index of the best point; SIZE_MAX when none has a score */
    double best_score;       /* NaN when none */
    bl_sweep_point *points;  /* total entries, index order (unrecorded ones: FAILED, NaN); owned */
} bl_sweep_summary;

/* Runs a sweep through `executor` (NULL: bl_sweep_inprocess()). Returns 0 with *out filled;
 * or the negative code that ended it (a hook's, BL_ENOMEM, BL_EINVAL for missing hooks) with
 * *out still filled as far as it got (scores and best not computed); either way the caller
 * releases *out with bl_sweep_summary_free. */
BL_EXPORT int bl_sweep_run(bl_ctx *ctx, const bl_sweep_options *opts,
                           const bl_sweep_hooks *hooks, const bl_sweep_executor *executor,
                           bl_sweep_summary *out);

/* Releases what bl_sweep_run gave; a zeroed summary is fine, and so is a second call. */
BL_EXPORT void bl_sweep_summary_free(bl_sweep_summary *summary);

/* ---- for executors ------------------------------------------------------------------------- */

/* The next point to run: true with *index set, false when every index was handed out. */
BL_EXPORT bool bl_sweep_next_index(bl_sweep *sweep, size_t *index);
/* Runs point `index` here: the resume hook first, then the run hook. */
BL_EXPORT int bl_sweep_run_point(bl_sweep *sweep, bl_ctx *ctx, size_t index,
                                 bl_sweep_point *out);
/* Records what came of point `index` (each index once) and calls the on_point hook. */
BL_EXPORT int bl_sweep_record(bl_sweep *sweep, bl_ctx *ctx, size_t index,
                              const bl_sweep_point *p);
/* The hooks' pack and unpack for point `index` (see bl_sweep_hooks): without a pack hook
 * *data is NULL and *len 0; without an unpack hook `rc` is returned (with `msg` in ctx when
 * rc is an error). */
BL_EXPORT int bl_sweep_pack(bl_sweep *sweep, bl_ctx *ctx, size_t index, int rc, void **data,
                            size_t *len);
BL_EXPORT int bl_sweep_unpack(bl_sweep *sweep, bl_ctx *ctx, size_t index, int rc,
                              const char *msg, const void *data, size_t len, bl_sweep_point *p);
/* The number of points of the running sweep. */
BL_EXPORT size_t bl_sweep_points(const bl_sweep *sweep);

#ifdef __cplusplus
}
#endif
#endif

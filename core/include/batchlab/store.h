/* batchlab — the results store: every run and every evaluation point in one SQLite file.
 *
 * A store is an embedded SQLite database (`batchlab.db` by default, see bl_store_default_path)
 * with these tables:
 *   meta         key/value: application "batchlab", schema_version, created, created_by
 *   experiments  id, name (unique), created, recommendation_json (the recommendation kept
 *                by bl.recommend of a recorded sweep; since schema version 5)
 *   runs         id, experiment_id (NULL for a run outside any experiment), label, config_json
 *                (canonical, see batchlab/json.h), config_hash, seed, status, stopped_by,
 *                error, started, ended (ISO-8601 UTC), host, pid, pid_start, batchlab_version,
 *                and the final metrics (steps … max_batch_used, peak_device_bytes,
 *                steps_to_target_error since schema version 2, step_time_median and
 *                wall_time_to_target since version 3)
 *   claims       experiment_id, config_hash, host, pid, pid_start, claimed — which process
 *                trains a configuration now (since schema version 4; bl_store_claim)
 *   points       run_id, step, samples, epoch, wall, batch, lr, train_loss, train_accuracy,
 *                val_loss, val_accuracy, gns, samples_per_sec — one row per evaluation point
 * NaN and infinite values are stored as NULL and read back as NaN.
 *
 * The file carries `PRAGMA application_id` BL_STORE_APPLICATION_ID and its schema version in
 * `PRAGMA user_version`; opening an older store migrates it (one SQL step per version, in one
 * transaction). Durability and concurrency: the store uses WAL mode; every write is its own
 * small transaction (BEGIN IMMEDIATE … COMMIT), retried with backoff while another process
 * holds the write lock, so several processes (a sweep on each core, MPI ranks on one host)
 * can write one store at once. A point is on disk when bl_store_add_point returns: a killed
 * process loses at most the point it was making.
 *
 * Safety: a file that is not a SQLite database, a SQLite database of another application, or
 * a store written by a newer batchlab (schema version above BL_STORE_SCHEMA_VERSION) is
 * refused with a message naming the file and the versions, and is never modified (it is
 * inspected through a read-only connection before anything writes).
 *
 * A bl_store is one SQLite connection: use it from one thread at a time, and never across a
 * fork() (open a new store in the child). Every error message names the store's file.
 */
#ifndef BATCHLAB_STORE_H
#define BATCHLAB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchlab/error.h"
#include "batchlab/scheduler.h"
#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* `PRAGMA application_id` of a batchlab store: "BLAB". */
#define BL_STORE_APPLICATION_ID 0x424C4142
/* The schema version this batchlab writes (`PRAGMA user_version`). */
#define BL_STORE_SCHEMA_VERSION 6

typedef struct bl_store bl_store;

/* $BATCHLAB_DB when set and non-empty, else "batchlab.db" (in the working directory). The
 * string belongs to the environment or is static; do not free it. */
BL_EXPORT const char *bl_store_default_path(void);

enum {
    BL_STORE_CREATE = 1u << 0,   /* create the file when absent (else BL_ENOTFOUND) */
    BL_STORE_READONLY = 1u << 1  /* never write: no migration, no stale-run marking */
};

/* Opens the store at `path` with BL_STORE_CREATE: creates it when absent, migrates an older
 * schema. On success *out is a new store the caller closes with bl_store_close; on error *out
 * is untouched and the message names the file:
 *   BL_ESTORE   not a SQLite database, another application's database, a newer schema, or
 *               SQLite failed (the file is left as it was);
 *   BL_EIO      the file cannot be opened or created;
 *   BL_ENOMEM.
 * An empty file (0 bytes) counts as absent and becomes a store. */
BL_EXPORT int bl_store_open(bl_ctx *ctx, const char *path, bl_store **out);

/* As bl_store_open with BL_STORE_* `flags`. Without BL_STORE_CREATE an absent file is
 * BL_ENOTFOUND ("no results store at 'x'"). With BL_STORE_READONLY an older store (schema
 * version ≥ 1) is read as it is, what its schema lacks reading as not recorded (-1, NaN); a
 * database without the first layout is BL_ESTORE (it would need a migration, which writes). */
BL_EXPORT int bl_store_open_flags(bl_ctx *ctx, const char *path, unsigned flags,
                                  bl_store **out);

/* Closes the store; NULL is allowed. */
BL_EXPORT void bl_store_close(bl_store *store);

/* The path the store was opened with (belongs to the store). */
BL_EXPORT const char *bl_store_path(const bl_store *store);

/* ---- writing ---------------------------------------------------------------------------- */

/* The id of the experiment named `name` (non-empty), created when absent: *id > 0. Getting an
 * experiment also marks its stale runs interrupted (bl_store_mark_stale), so a sweep that
 * resumes sees them as they are. */
BL_EXPORT int bl_store_experiment(bl_ctx *ctx, bl_store *store, const char *name, int64_t *id);

/* The id of the existing experiment `name`; BL_ENOTFOUND (listing the experiments there are)
 * when there is none. Never writes. */
BL_EXPORT int bl_store_find_experiment(bl_ctx *ctx, bl_store *store, const char *name,
                                       int64_t *id);

/* Keeps `json` (a recommendation, bl_recommendation_json; NULL removes it) with the
 * experiment `experiment_id`, replacing what was there. BL_ENOTFOUND when there is no such
 * experiment; BL_EINVAL for a read-only store. */
BL_EXPORT int bl_store_set_recommendation(bl_ctx *ctx, bl_store *store, int64_t experiment_id,
                                          const char *json);

/* The recommendation kept with experiment `experiment_id`: *json is a new string the caller
 * frees with free(). BL_ENOTFOUND when none was kept (or the store predates schema version
 * 4). Never writes. */
BL_EXPORT int bl_store_get_recommendation(bl_ctx *ctx, bl_store *store, int64_t experiment_id,
                                          char **json);

/* Records the start of a run: status "running", started now, this host and process.
 * `experiment_id` 0 = no experiment; `label` may be NULL; `config_json` (NULL = "{}") must be
 * valid JSON: it is stored in canonical form and hashed (bl_json_hash) — BL_EFORMAT when it is
 * not JSON. On success *run_id > 0. */
BL_EXPORT int bl_store_run_begin(bl_ctx *ctx, bl_store *store, int64_t experiment_id,
                                 const char *label, const char *config_json, uint64_t seed,
                                 int64_t *run_id);

/* Records that run `run_id` trained on `ranks` MPI ranks together (a data-parallel run;
 * docs/distributed.md). The column is NULL for a run of one process. BL_ENOTFOUND when the
 * run does not exist. */
BL_EXPORT int bl_store_run_set_ranks(bl_ctx *ctx, bl_store *store, int64_t run_id, int ranks);

/* Appends one evaluation point to a run and commits it. Call it from the on_point callback
 * of bl_train, in order. BL_ENOTFOUND when the run does not exist. */
BL_EXPORT int bl_store_add_point(bl_ctx *ctx, bl_store *store, int64_t run_id,
                                 const bl_eval_point *point);

/* Records the end of a run: its status (not BL_RUN_RUNNING: BL_EINVAL), stopped_by, error,
 * ended now and the final metrics of `result`. Points of result->history beyond those already
 * added are added too (the stored points are taken to be the first ones of the history), so
 * a caller that did not hook on_point still stores the whole history. One transaction. */
BL_EXPORT int bl_store_run_end(bl_ctx *ctx, bl_store *store, int64_t run_id,
                               const bl_run_result *result);

/* Stale runs: a run left "running" by a process that was killed never gets its end. This
 * marks as "interrupted" (stopped_by "stale", ended now) the runs of `experiment_id` (0 = all
 * runs) that are "running" and whose process is known to be gone: same host name, and the
 * pid does not exist or now belongs to a process started at another time (Linux:
 * /proc/<pid>/stat start time and the boot id). Runs of other hosts, and runs whose process
 * may still live, are left alone — a concurrent writer's run is never touched. Resuming does
 * not depend on this: only finished runs are skipped (bl_store_find_completed), so a run
 * still shown "running" is trained again. *marked (may be NULL) = runs changed. */
BL_EXPORT int bl_store_mark_stale(bl_ctx *ctx, bl_store *store, int64_t experiment_id,
                                  int64_t *marked);

/* ---- claims and lost runs (isolated and concurrent sweeps) ------------------------------ */

/* Claims configuration `config` (a hash or JSON, as bl_store_find_completed) of
 * `experiment_id` (0 = none) for this process, so that two processes running the same sweep
 * train it once: in one write transaction, when no live process holds it (a claim of a process
 * that is gone — see bl_store_mark_stale for how that is told — is taken over), it is this
 * store's, *busy false; else *busy is true and *holder (may be NULL) the holder's pid. A store
 * holds one claim at a time: claiming another releases the first; bl_store_release and
 * bl_store_close release it. Claims are rows of the `claims` table (schema version 4). */
BL_EXPORT int bl_store_claim(bl_ctx *ctx, bl_store *store, int64_t experiment_id,
                             const char *config, bool *busy, long *holder);

/* Releases this store's claim, if any. Errors are recorded in ctx (may be NULL) and otherwise
 * ignored: a claim left behind is taken over once this process is gone. */
BL_EXPORT void bl_store_release(bl_ctx *ctx, bl_store *store);

/* For resuming: how many runs of `experiment_id` with configuration `config` ended "crashed"
 * or "timed_out" (*count), and the newest of them (*last_id, 0 when none). */
BL_EXPORT int bl_store_count_lost(bl_ctx *ctx, bl_store *store, int64_t experiment_id,
                                  const char *config, int64_t *count, int64_t *last_id);

/* Records a run whose process died without recording its end (an isolated sweep's child that
 * crashed, timed out or was killed): the newest row of process `pid` on this host with this
 * experiment and configuration gets `result`'s end (bl_store_run_end: status, stopped_by,
 * error, metrics); when there is none (the process died before its row was written, e.g. in
 * the model's build) a row is added with `label`, `config_json` and `seed`. *run_id is the
 * row. */
BL_EXPORT int bl_store_run_lost(bl_ctx *ctx, bl_store *store, int64_t experiment_id,
                                const char *label, const char *config_json, uint64_t seed,
                                long pid, const bl_run_result *result, int64_t *run_id);

/* ---- reading ---------------------------------------------------------------------------- */

/* For resuming: the newest finished run of `experiment_id` (0 = runs outside experiments)
 * whose configuration hash is `config` — 16 hex digits (a bl_json_hash), or JSON text that is
 * hashed here. Finished means status "completed" or "diverged": outcomes of the configuration
 * itself, which training it again with the same seed would repeat. "failed", "interrupted"
 * and "running" runs are not finished and are trained again. BL_ENOTFOUND when none. */
BL_EXPORT int bl_store_find_completed(bl_ctx *ctx, bl_store *store, int64_t experiment_id,
                                      const char *config, int64_t *run_id);

/* Rebuilds the result of a run from its row and its points, to give a resumed run back to
 * the caller as if it had just been trained. On success *out holds a history the caller
 * releases with bl_run_result_free, and *config_json (when config_json is not NULL) a
 * malloc'd copy of its configuration the caller frees with free(). Values that were not
 * recorded are NaN (metrics) or -1 (steps/samples to target, diverged step). BL_ENOTFOUND
 * when there is no such run. On error nothing needs freeing. */
BL_EXPORT int bl_store_load_result(bl_ctx *ctx, bl_store *store, int64_t run_id,
                                   bl_run_result *out, char **config_json);

/* One row of `runs`, as the listing functions give it. Strings are valid during the
 * callback only (never NULL: "" when absent). Metrics not recorded (yet) are NaN, integer
 * counts -1. */
typedef struct bl_store_run {
    int64_t id;
    int64_t experiment_id;           /* 0 when none */
    const char *experiment;          /* its name, "" when none */
    const char *label;
    const char *config_json;         /* canonical JSON */
    const char *config_hash;         /* 16 hex digits */
    uint64_t seed;
    bl_run_status status;
    const char *stopped_by, *error;
    const char *started, *ended;     /* ISO-8601 UTC ("2024-05-01T12:00:00Z"); ended "" */
    const char *host;
    int64_t pid;
    const char *batchlab_version;
    int64_t steps, samples;
    double epochs, time, eval_time;
    double train_loss, train_accuracy, val_loss, val_accuracy, gns;
    double test_loss, test_accuracy;
    double time_to_target, epochs_to_target;
    int64_t steps_to_target, samples_to_target;
    int64_t steps_to_target_error;   /* -1 also for runs stored before schema version 2 */
    /* Since schema version 3 (bl_run_result). Runs stored before: step_time_median NAN, and
     * time_to_target and wall_time_to_target both the wall time (what time_to_target was). */
    double step_time_median, wall_time_to_target;
    int64_t diverged_step;
    int64_t max_batch_used;
    int64_t peak_device_bytes;
    int64_t point_count;             /* rows in `points` */
} bl_store_run;

/* Called once per run; a non-zero return stops the listing and is returned by it. */
typedef int (*bl_store_run_fn)(void *user, const bl_store_run *run);
/* Called once per point; a non-zero return stops the listing and is returned by it. */
typedef int (*bl_store_point_fn)(void *user, int64_t run_id, const bl_eval_point *point);

/* Lists the runs of the experiment named `experiment` (NULL = all runs), oldest first.
 * BL_ENOTFOUND when the experiment does not exist (the message lists those that do). The
 * callback must not write to the same store. */
BL_EXPORT int bl_store_list_runs(bl_ctx *ctx, bl_store *store, const char *experiment,
                                 bl_store_run_fn fn, void *user);

/* Calls fn once with run `run_id`; BL_ENOTFOUND when there is no such run. */
BL_EXPORT int bl_store_get_run(bl_ctx *ctx, bl_store *store, int64_t run_id,
                               bl_store_run_fn fn, void *user);

/* Lists the points of run `run_id` in the order they were added (none for an unknown run). */
BL_EXPORT int bl_store_list_points(bl_ctx *ctx, bl_store *store, int64_t run_id,
                                   bl_store_point_fn fn, void *user);

#ifdef __cplusplus
}
#endif
#endif

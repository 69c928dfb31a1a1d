/* batchlab — the run orchestrator: one training run from a plan, with pluggable outputs.
 *
 * Every front end (bl.train in Lua, `batchlab train` on the command line) translates what it
 * was given into a bl_run_plan — the training configuration (batchlab/run_spec.h applied to a
 * bl_train_config, plus the objects: data, optimizer, batch source, criteria) and what to
 * build (device, model plugin and options, scheduler plugin and options) — and calls bl_run.
 * bl_run opens the device, builds the net, opens the scheduler, runs bl_train and drives the
 * outputs: each is an object with begin / point / end hooks, called in the order given.
 * Outputs shipped with the core: the results store, TensorBoard event files and progress
 * lines; a binding adds its own (user callbacks) as one more output.
 *
 * Hook order: begin of every output (in order), then for each evaluation point the point hook
 * of every output (in order; a negative return fails the run with the message in ctx, as
 * bl_train's on_point does), then — once bl_train returned — end of every output (in order),
 * also when the run failed to start after begin. `close` releases an output and is called by
 * bl_run_outputs_close, never by bl_run.
 */
#ifndef BATCHLAB_RUN_H
#define BATCHLAB_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "batchlab/config.h"
#include "batchlab/device.h"
#include "batchlab/error.h"
#include "batchlab/plugin.h"
#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_run_plan {
    /* The training configuration (run spec applied, data, optimizer, batch source, criteria,
     * interrupt flag). bl_run fills in net and (with scheduler_plugin) scheduler; on_point
     * must be NULL: points go to the outputs. on_progress may be set (or use the progress
     * output). */
    bl_train_config train;
    const char *device;              /* "cpu", "cuda", ...; NULL = "cpu" */
    int threads;                     /* CPU threads (0 = OpenBLAS's default) */
    const bl_plugin *model;          /* required */
    const bl_config *model_opts;     /* may be NULL (defaults) */
    const bl_plugin *scheduler_plugin; /* optional batch-size scheduler */
    const bl_config *scheduler_opts;
    const char *label;               /* may be NULL */
    const char *config_json;         /* the run's configuration (for the store), or NULL */

    /* Checkpoints and weight files (batchlab/snapshot.h, docs/checkpoints.md); all optional,
     * borrowed. bl_run_plan_files fills them from a run specification. */
    int64_t checkpoint_every;        /* write a checkpoint every N steps; 0 = off */
    double checkpoint_seconds;       /* or every X training seconds; 0 = off */
    const char *checkpoint;          /* the checkpoint file; NULL = the default: next to the
                                        results store the run is recorded in (the current
                                        directory when it is not recorded),
                                        batchlab-checkpoints/<16 hex digits of the
                                        configuration's hash>.blsnap */
    bool resume;                     /* continue from the checkpoint file when it exists (it
                                        must have been written by the same configuration) */
    const char *save;                /* write the state the run ends in here (completed runs) */
    const char *init;                /* start from the weights in this file */
} bl_run_plan;

/* Sets plan's checkpoint_every / checkpoint_seconds (from the spec's "checkpoint_every": N
 * steps or Xs seconds), checkpoint, resume, save and init from a validated run specification
 * (bl_run_spec_validate). The strings are borrowed from `spec`. */
BL_EXPORT int bl_run_plan_files(bl_ctx *ctx, const bl_config *spec, bl_run_plan *plan);

/* What the outputs see at begin: the plan, the built net and the device, and the training
 * configuration about to be run (an output may install on_progress there). */
typedef struct bl_run_info {
    const bl_run_plan *plan;
    const bl_net *net;
    const bl_device *dev;
    bl_train_config *train;
} bl_run_info;

/* One output. Hooks may be NULL. `rc` at end is what bl_train returned (an error leaves the
 * message in ctx, which end must keep); end may turn a completed result into a failed one
 * (e.g. when the end cannot be recorded) and returns BL_OK or an error that does not stop the
 * other outputs' end hooks. */
typedef struct bl_run_output {
    const char *name;
    void *self;
    int (*begin)(void *self, bl_ctx *ctx, const bl_run_info *info);
    int (*point)(void *self, bl_ctx *ctx, const bl_eval_point *point);
    void (*end)(void *self, bl_ctx *ctx, int rc, bl_run_result *result);
    void (*close)(void *self);
} bl_run_output;

/* Checkpoints (plan->checkpoint_every or checkpoint_seconds): bl_train hands a snapshot to
 * bl_run at each interval, written atomically over the checkpoint file (bl_snapshot_write);
 * an interrupted run writes one more at the step it stopped at; a completed run removes the
 * file (its state is in `save` when asked). With plan->resume and a checkpoint file present,
 * the run continues from it: its configuration must be the plan's (the snapshot's tag is
 * plan->config_json), the outputs first see the restored evaluation points again (the store
 * records the whole history under the new run), and training goes on bit-identically to a run
 * that was never stopped. A damaged checkpoint is an error naming the file (never silently
 * retrained over). plan->init loads the weights of a snapshot or saved file into the net
 * before training (bl_snapshot_load_weights).
 *
 * Runs one training run. Returns what bl_train returns (BL_OK whenever the run could be
 * carried out: look at result->status), or an error from opening the device, building the
 * net, opening the scheduler or an output's begin hook (then no training was done, and
 * result->status is failed). `result` is always initialized; release it with
 * bl_run_result_free. The device, net and scheduler are freed before bl_run returns. */
BL_EXPORT int bl_run(bl_ctx *ctx, bl_run_plan *plan, bl_run_output *outputs, size_t n,
                     bl_run_result *result);

/* A data-parallel run on several ranks (train.h, data_parallel) gives the record-keeping
 * outputs shipped with the core — the store, TensorBoard and progress outputs below — to the
 * run's rank 0 only (one record of the run); every other output (a binding's callbacks,
 * stop criteria) runs on every rank, where it sees the same points. */

/* Calls each output's close hook once. */
BL_EXPORT void bl_run_outputs_close(bl_run_output *outputs, size_t n);

/* ---- outputs shipped with the core ------------------------------------------------------------ */

/* A result for a run that never started: status failed, stopped_by "error", metrics NaN,
 * counts -1, no history. */
BL_EXPORT void bl_run_result_blank(bl_run_result *result);

/* The store a store output (bl_run_store_output) writes to, and its experiment id (0: none);
 * NULL for another output. The store belongs to the output. */
BL_EXPORT struct bl_store *bl_run_store_output_store(const bl_run_output *out,
                                                    int64_t *experiment);

/* The results store at `path` (NULL = bl_store_default_path()), under `experiment` (NULL =
 * none). begin records the start (label, plan->config_json, seed), point each evaluation
 * point, end the result (a completed run whose end cannot be recorded becomes failed). The
 * output owns the open store until close. */
BL_EXPORT int bl_run_store_output(bl_ctx *ctx, const char *path, const char *experiment,
                                  bl_run_output *out);
/* The run id recorded by a store output's begin (0 before). */
BL_EXPORT int64_t bl_run_store_output_id(const bl_run_output *out);
/* The store path of a store output. */
BL_EXPORT const char *bl_run_store_output_path(const bl_run_output *out);
/* Resume: the id of a finished (completed or diverged) run of `config_json` in the store
 * output's experiment; BL_ENOTFOUND when there is none. Call before bl_run. */
BL_EXPORT int bl_run_store_output_find(bl_ctx *ctx, bl_run_output *out, const char *config_json,
                                       int64_t *run_id);
/* Loads a stored run's result (for resume). */
BL_EXPORT int bl_run_store_output_load(bl_ctx *ctx, bl_run_output *out, int64_t run_id,
                                       bl_run_result *result);

/* TensorBoard event files in a directory of the run's own (bl_tfevents_open: DIR/<run_name>,
 * or DIR/<run_name>-2, -3, ... when taken, claimed atomically): the hyperparameters `hparams`
 * (copied; may be NULL) and those of the plan — lr_scaling, base_batch, warmup_epochs,
 * warmup_steps, lr_schedule, target_metric, target_value, model.<option> for every model
 * option, scheduler and scheduler.<option> — every point, the final figures as scalars at the
 * last step (test/accuracy, test/loss, target/time_to_target, target/steps_to_target; those
 * known) which are also metrics of the HParams table, and the end status. A write that fails
 * fails the run. */
BL_EXPORT int bl_run_tensorboard_output(bl_ctx *ctx, const char *dir, const char *run_name,
                                        const bl_config *hparams, bl_run_output *out);
/* The event file's path once begun (NULL before). */
BL_EXPORT const char *bl_run_tensorboard_output_path(const bl_run_output *out);

/* Progress on stderr (bl_progress_printer in batchlab/train.h): installs bl_progress_print
 * as the plan's on_progress at begin, shows each evaluation point, and prints the final line
 * at end. `live` = a line redrawn in place, cut to the terminal's width (stderr is a
 * terminal); else plain lines. `label` is borrowed. */
BL_EXPORT int bl_run_progress_output(bl_ctx *ctx, const char *label, bool live,
                                     bl_run_output *out);
/* For a run of a sweep: "run index/count" on its lines, and the sweep's ETA from the seconds
 * its earlier runs took. Does nothing to an output that is not a progress output. */
BL_EXPORT void bl_run_progress_output_position(bl_run_output *out, int index, int count,
                                               double sweep_elapsed);

#ifdef __cplusplus
}
#endif
#endif

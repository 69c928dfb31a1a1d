/* batchlab — TensorBoard event files.
 *
 * A bl_tfevents writes one event file that `tensorboard --logdir LOGDIR` reads: the scalars of
 * every evaluation point (Scalars tab) and a run's hyperparameters and final status (HParams
 * tab). Layout: LOGDIR/RUN/events.out.tfevents.<10-digit unix time>.<hostname>; every
 * directory below LOGDIR is one run in TensorBoard, so every writer of a named run claims a
 * directory of its own (two runs of the same name are drawn as two, never merged).
 *
 * Format: TensorFlow's TFRecord framing of serialized tensorflow.Event protos (the framing,
 * CRC-32C and encoders are internal: core/src/results/tfevents/tfrecord.h). The first record
 * is Event{wall_time, file_version = "brain.Event:2"}. Every write is flushed to the operating
 * system before the call returns, so a process that is killed loses nothing it already wrote
 * (a machine that crashes may).
 *
 * Errors: every function returns BL_OK or a negative BL_E… code with a message in ctx that
 * names the file or directory. A bl_tfevents is used from one thread at a time.
 */
#ifndef BATCHLAB_TFEVENTS_H
#define BATCHLAB_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "batchlab/config.h"
#include "batchlab/error.h"
#include "batchlab/scheduler.h"
#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_tfevents bl_tfevents;

/* Creates a new directory LOGDIR/RUN for this run (its parents like mkdir -p) and a new event
 * file in it, and writes the file-version event. `run_name` may hold several components
 * separated by '/' (a nested run); each component is made safe: characters other than letters,
 * digits and "._-=+,@" become '_', and "." and ".." become "_" and "__". The last component is
 * claimed with mkdir, which is atomic: RUN when no entry of that name exists, else RUN-2,
 * RUN-3, ... (the first free), so two writers — in one process or in two — never share a
 * directory; bl_tfevents_path says which one was taken. NULL or "" writes into LOGDIR itself
 * (shared: an existing event file is never overwritten, a second file opened in the same
 * second gets a ".N" suffix).
 * On success *out is a new writer the caller closes with bl_tfevents_close; on error *out is
 * untouched and nothing is left open. Errors: BL_EIO (a directory cannot be created, or the
 * file cannot be created or written; the message names it), BL_EINVAL (NULL or empty logdir),
 * BL_ENOMEM. */
BL_EXPORT int bl_tfevents_open(bl_ctx *ctx, const char *logdir, const char *run_name,
                               bl_tfevents **out);

/* Flushes and closes the file and frees the writer; NULL is allowed. The writer is freed even
 * when the final flush fails (BL_EIO). `ctx` may be NULL (the message is then dropped). */
BL_EXPORT int bl_tfevents_close(bl_ctx *ctx, bl_tfevents *w);

/* The event file's path; the string belongs to the writer. */
BL_EXPORT const char *bl_tfevents_path(const bl_tfevents *w);

/* Writes one scalar (Summary.Value{tag, simple_value}) at `step`. TensorBoard stores the value
 * as a 32-bit float. `wall_time` is seconds since the Unix epoch; ≤ 0 or NaN means now. NaN
 * and infinite values are written as they are. Errors: BL_EINVAL (NULL or empty tag), BL_EIO,
 * BL_ENOMEM. */
BL_EXPORT int bl_tfevents_scalar(bl_ctx *ctx, bl_tfevents *w, const char *tag, int64_t step,
                                 double value, double wall_time);

/* Writes the scalars of one evaluation point as one event, wall time now, at step =
 * p->step (optimizer steps done; the batch size may change between steps, so plot
 * progress/samples or pick "relative"/"wall" in TensorBoard to compare runs by data seen):
 *   train/loss, train/accuracy, val/loss, val/accuracy        (the metrics)
 *   schedule/batch_size, schedule/lr                          (p->batch, p->lr)
 *   gns/b_simple                                              (p->gns)
 *   throughput/samples_per_sec, progress/samples              (p->samples_per_sec, p->samples)
 * Values that are NaN (not measured at this point) are skipped. Errors: BL_EIO, BL_ENOMEM. */
BL_EXPORT int bl_tfevents_point(bl_ctx *ctx, bl_tfevents *w, const bl_eval_point *p);

/* The tags bl_tfevents_point writes for the four metrics, in the order above; used by
 * bl_tfevents_hparams when it is given no metric tags. */
BL_EXPORT extern const char *const bl_tfevents_metric_tags[4];

/* Writes the HParams plugin's data for this run, wall time now:
 *   _hparams_/experiment          the hyperparameter names and types, and the metrics (tags of
 *                                 scalars in this run) the HParams table shows as columns
 *   _hparams_/session_start_info  the values of `hparams` and the start time
 * `hparams` is a validated or plain config (may be NULL or empty): numbers and integers are
 * shown as numbers, booleans as booleans, strings, text and lists as their option text
 * ("256,128"); a number that is NaN is declared (a column of the HParams table) but given no
 * value in this run (an empty cell: e.g. a target value for a run without a target), so that
 * all the runs of a sweep declare the same names. `metric_tags` (n of them) name scalar tags
 * (the HParams table shows each one's last value in the run); NULL with n = 0 means
 * bl_tfevents_metric_tags. Call it once, before the first point. TensorBoard reads the first
 * _hparams_/experiment it finds in the log directory, so the runs of one sweep should be given
 * the same hyperparameter names and metrics. Errors: BL_EINVAL (a NULL or empty metric tag),
 * BL_EIO, BL_ENOMEM. */
BL_EXPORT int bl_tfevents_hparams(bl_ctx *ctx, bl_tfevents *w, const bl_config *hparams,
                                  const char *const *metric_tags, size_t n);

/* Writes _hparams_/session_end_info: the run's status and the end time (now). TensorBoard's
 * statuses (tensorboard/plugins/hparams/api.proto, enum Status): completed → STATUS_SUCCESS,
 * failed and diverged → STATUS_FAILURE, running → STATUS_RUNNING, interrupted →
 * STATUS_UNKNOWN (it neither finished nor failed). Errors: BL_EIO, BL_ENOMEM. */
BL_EXPORT int bl_tfevents_end(bl_ctx *ctx, bl_tfevents *w, bl_run_status status);

#ifdef __cplusplus
}
#endif
#endif

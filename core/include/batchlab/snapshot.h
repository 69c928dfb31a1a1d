/* batchlab — exact training-state snapshots and on-disk checkpoints.
 *
 * A snapshot is the full state of a training run (bl_train) after a step: the parameters and
 * the net's non-trainable state (batch-norm statistics), each stochastic layer's seed and
 * counter (dropout masks), the optimizer's buffers and step count, the shuffle stream (the
 * generator state before the current epoch's permutation, so the permutation is drawn again
 * exactly), the position in the epoch, step / sample / epoch counters, the evaluation cadence,
 * the running losses since the last point, the divergence tracker, the target crossing found
 * so far, the gradient-noise-scale EMAs, the scheduler's own state (when its plugin keeps one,
 * bl_scheduler_ops.save), the step-time ring, the training clock, and the history of
 * evaluation points. A run started from it (bl_train_config.resume_from) continues
 * bit-identically: the same weights after N more steps as the run that was never stopped,
 * whatever the prefetch mode.
 *
 * One serialization serves memory and disk: a snapshot *is* its byte image, the same bytes
 * bl_snapshot_write puts in a file. Format (version 1), all integers little-endian on every
 * host, floats and doubles as their IEEE-754 bit patterns (little-endian):
 *   header, 32 bytes: magic "BLSNAP\r\n" (8), u32 version, u32 flags (0),
 *                     u64 payload length, u32 CRC-32 (zlib) of the payload, u32 CRC-32 of the
 *                     first 28 header bytes;
 *   payload: sections, each u32 tag, u64 length, bytes. Readers skip tags they do not know
 *            (sections are only ever added within a version).
 * Readers refuse a foreign file (magic), a newer version, a truncated or over-long file, a
 * checksum mismatch and a malformed section, with a message naming the file and what is wrong.
 *
 * What a restore requires of the run: the same model (parameter and state counts, layer
 * count), the same optimizer kind (its buffers), the same training set size. Everything
 * else — batch size, learning rate, LR rule, budget, evaluation, callbacks — is taken from the
 * new configuration, which is what branching needs (start from a snapshot with k×B and a
 * scaled LR). Budgets stay absolute: steps, samples and epochs count from the start of the
 * original run (use bl_snapshot_get_info to add a branch's budget to the snapshot's counters).
 * The scheduler state is restored when the new run's scheduler is the plugin that saved it
 * and ignored otherwise; a batch function's (bl_batch_fn) own state is its caller's business.
 * Counters that the new configuration reads go on from the snapshot: the training clock
 * (`time`, max_seconds), the evaluation cadence (the next point, in the unit of the run that
 * was snapshotted: a branch keeps its eval_unit, or sets skip_eval), the step-time ring.
 *
 * Branched training, in short (docs/checkpoints.md has it in full): run the base with
 * on_snapshot + snapshot_steps, keeping each with bl_snapshot_copy; for each branch build a
 * net of the same model, set resume_from, the new batch / LR, and max_samples =
 * info.samples + the branch's budget; bl_train; compare result.final (or the history).
 */
#ifndef BATCHLAB_SNAPSHOT_H
#define BATCHLAB_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "batchlab/error.h"
#include "batchlab/nn.h"
#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BL_SNAPSHOT_VERSION 1

/* bl_snapshot (declared in train.h): an immutable byte image. */

/* The counters of a snapshot, read from its image. */
typedef struct bl_snapshot_info {
    int64_t step;            /* optimizer steps done */
    int64_t samples;         /* training samples processed */
    int64_t epoch;           /* completed epochs */
    int64_t pos;             /* position in the current epoch's permutation */
    double epoch_progress;   /* epochs done, fractional */
    double wall;             /* training seconds */
    int64_t batch;           /* batch of the last step */
    double lr;               /* learning rate of the last step */
    int64_t n_params;        /* parameters of the net */
    int64_t history_count;   /* evaluation points so far */
    char optimizer[16];      /* "sgd", "adam", ... */
} bl_snapshot_info;

/* bl_snapshot_fn, the callback that receives snapshots during a run, is in train.h. */

/* A copy of `src`; on success *out is freed with bl_snapshot_free. */
BL_EXPORT int bl_snapshot_copy(bl_ctx *ctx, const bl_snapshot *src, bl_snapshot **out);
/* NULL allowed. */
BL_EXPORT void bl_snapshot_free(bl_snapshot *snap);

/* The byte image (header and payload; what a file holds). Borrowed from snap. */
BL_EXPORT const void *bl_snapshot_bytes(const bl_snapshot *snap, size_t *len);
/* A snapshot from a byte image, checked as a file is (magic, version, length, checksums,
 * sections); `name` names the image in messages (a file name, or NULL: "snapshot"). The bytes
 * are copied. On success *out is freed with bl_snapshot_free; on error *out is untouched. */
BL_EXPORT int bl_snapshot_from_bytes(bl_ctx *ctx, const void *bytes, size_t len,
                                     const char *name, bl_snapshot **out);

BL_EXPORT int bl_snapshot_get_info(bl_ctx *ctx, const bl_snapshot *snap, bl_snapshot_info *out);

/* The configuration text a snapshot was tagged with (bl_train_config.snapshot_tag), "" when
 * none. Borrowed from snap. */
BL_EXPORT const char *bl_snapshot_tag(const bl_snapshot *snap);

/* Writes the image to `path` atomically: a temporary file in the same directory, fsync,
 * rename over `path`, fsync of the directory. An existing `path` that is not a regular file
 * (a directory, a device node, a FIFO) is refused and left alone; a symbolic link is
 * refused as well. Errors name the path. */
BL_EXPORT int bl_snapshot_write(bl_ctx *ctx, const bl_snapshot *snap, const char *path);
/* Reads and checks a file written by bl_snapshot_write (refuses anything but a regular file,
 * opened non-blocking). BL_ENOTFOUND when `path` does not exist; BL_EFORMAT for a damaged,
 * truncated or foreign file, with the file and the fault in the message. */
BL_EXPORT int bl_snapshot_read(bl_ctx *ctx, const char *path, bl_snapshot **out);

/* Copies the snapshot's parameters and net state (batch-norm statistics) into `net`, which
 * must have the same parameter and state counts: loading saved weights for evaluation or as a
 * starting point. The optimizer and the run's counters are not touched. */
BL_EXPORT int bl_snapshot_load_weights(bl_ctx *ctx, const bl_snapshot *snap, bl_net *net);

/* The evaluation points the snapshot's run had made (its history): on success *points is a
 * new array of *count points the caller frees with free() (NULL when count is 0). */
BL_EXPORT int bl_snapshot_history(bl_ctx *ctx, const bl_snapshot *snap, bl_eval_point **points,
                                  size_t *count);

/* The parameters (n_params floats, host memory) of a snapshot into `out` (count floats;
 * BL_EINVAL when count differs). */
BL_EXPORT int bl_snapshot_params(bl_ctx *ctx, const bl_snapshot *snap, float *out, size_t count);

#ifdef __cplusplus
}
#endif
#endif

/* batchlab — batch-size scheduler plugins.
 *
 * A scheduler decides the batch size of the next step (and optionally a factor on the
 * learning rate) from the training state. The engine calls it once per step, so `next` must
 * be cheap and must not allocate.
 */
#ifndef BATCHLAB_SCHEDULER_H
#define BATCHLAB_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchlab/config.h"
#include "batchlab/error.h"
#include "batchlab/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One evaluation point of a run. Values not measured are NAN.
 * ABI: append-only (fields are only ever added at the end, within one BL_PLUGIN_ABI). It has no
 * size of its own, because history arrays hold many of them; a scheduler plugin reading
 * state->last reads a field only when BL_POINT_HAS(state, field) says the host has it. */
typedef struct bl_eval_point {
    int64_t step;            /* optimizer steps done */
    int64_t samples;         /* training samples processed */
    double epoch;            /* epochs done, fractional */
    double wall;             /* training wall seconds (evaluation excluded) */
    int64_t batch;           /* the batch the schedule asked for at the last step (an
                                epoch's partial rest is not a batch size of its own) */
    double lr;               /* the effective learning rate of a full step of that batch */
    double train_loss;       /* running mean since the previous point */
    double train_accuracy;   /* of the steps since the previous point, or on a fixed training
                                subset (bl_train_acc_source) */
    double val_loss, val_accuracy;
    double gns;              /* smoothed gradient noise scale B_simple */
    double samples_per_sec;  /* training throughput since the previous point */
} bl_eval_point;

/* What a schedule sees before each step.
 * ABI: filled by the host, fields only appended. bl_scheduler_next stamps `size` and
 * `point_size` with the host's sizes before calling the plugin (callers need not set them);
 * a plugin reads a field added after ABI 2 only when BL_HAS_FIELD(state, bl_train_state, f)
 * is true. */
typedef struct bl_train_state {
    uint32_t size;           /* sizeof(bl_train_state) of the host */
    uint32_t point_size;     /* sizeof(bl_eval_point) of the host, for *last */
    int64_t step;            /* steps done so far (0 before the first) */
    int64_t epoch;           /* completed epochs */
    double epoch_progress;   /* epochs done, fractional */
    int64_t samples;         /* training samples processed */
    int64_t train_size;      /* samples in one epoch */
    double wall;             /* training seconds so far */
    int64_t batch;           /* batch of the previous step (the initial batch before step 1) */
    double lr;               /* effective learning rate of the previous step */
    double gns;              /* smoothed B_simple estimate; NAN until measured */
    const bl_eval_point *last; /* latest evaluation point, NULL before the first */
} bl_train_state;

/* True when state->last (non-NULL) has `field`, by the host's bl_eval_point size. */
#define BL_POINT_HAS(state, field)                                                            \
    ((size_t)(state)->point_size >=                                                          \
     offsetof(bl_eval_point, field) + sizeof(((bl_eval_point *)0)->field))

/* Operation table of a scheduler plugin; `size` = sizeof(bl_scheduler_ops) at build time. */
typedef struct bl_scheduler_ops {
    uint32_t size;
    /* Creates the schedule from validated options; *handle is freed by destroy. */
    int (*create)(bl_ctx *ctx, const bl_config *opts, void **handle);
    void (*destroy)(void *handle);
    /* The largest batch this schedule can return (the engine sizes its buffers for it). */
    int64_t (*max_batch)(void *handle);
    /* The batch for the next step (≥ 1) and a factor on the learning rate (1 when the
     * schedule does not touch it). Must not allocate. */
    int (*next)(void *handle, bl_ctx *ctx, const bl_train_state *state, int64_t *batch,
                double *lr_factor);
    /* Optional (may be NULL): true when the schedule reads state->gns, so the engine measures
     * the gradient noise scale. */
    bool (*needs_gns)(void *handle);
    /* Optional (may be NULL; the host reads them only when `size` covers them): a schedule
     * that keeps state between calls of next (the batch it settled on, the step of its last
     * change) hands it to training snapshots (batchlab/snapshot.h) and takes it back, so a run
     * restored from a snapshot continues identically. save writes at most `cap` bytes into
     * buf (buf may be NULL when cap is 0) and sets *len to the bytes its state takes, also
     * when they do not fit (the host then calls again with room); restore gets exactly what
     * save wrote, from a schedule created with the same options, and returns an error for
     * bytes it cannot take. A schedule that is a function of the training state (constant,
     * step, ramp, smith) leaves both NULL. */
    int (*save)(void *handle, bl_ctx *ctx, void *buf, size_t cap, size_t *len);
    int (*restore)(void *handle, bl_ctx *ctx, const void *buf, size_t len);
} bl_scheduler_ops;

/* ---- host side ------------------------------------------------------------------------------ */

typedef struct bl_scheduler bl_scheduler;

/* Validates `opts` (may be NULL) and creates the schedule; the plugin's shared object stays
 * loaded until bl_scheduler_close. */
BL_EXPORT int bl_scheduler_open(bl_ctx *ctx, const bl_plugin *plugin, const bl_config *opts,
                                bl_scheduler **out);
BL_EXPORT void bl_scheduler_close(bl_scheduler *s);
BL_EXPORT int64_t bl_scheduler_max_batch(const bl_scheduler *s);
BL_EXPORT bool bl_scheduler_needs_gns(const bl_scheduler *s);
/* Calls the plugin with a copy of *state whose `size` and `point_size` are the host's; a
 * batch < 1 or above max_batch, or a non-finite or non-positive LR factor from the plugin is
 * an error naming the plugin. On error *batch and *lr_factor are untouched.
 * `lr_factor` may be NULL. */
BL_EXPORT int bl_scheduler_next(bl_ctx *ctx, bl_scheduler *s, const bl_train_state *state,
                                int64_t *batch, double *lr_factor);
BL_EXPORT const bl_plugin *bl_scheduler_plugin(const bl_scheduler *s);
/* The schedule's own state (bl_scheduler_ops.save): *len gets its size (0 for a stateless
 * schedule or one without save); at most `cap` bytes are written to buf. Errors name the
 * plugin. */
BL_EXPORT int bl_scheduler_save(bl_ctx *ctx, const bl_scheduler *s, void *buf, size_t cap,
                                size_t *len);
/* Gives back what bl_scheduler_save wrote (len 0 does nothing). A schedule without restore
 * given a non-empty state is an error naming the plugin. */
BL_EXPORT int bl_scheduler_restore(bl_ctx *ctx, bl_scheduler *s, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif

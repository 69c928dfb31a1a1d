/* batchlab — the largest batch that fits (the max-batch finder).
 *
 * As PyTorch Lightning's BatchSizeFinder: trial runs of a few real training steps at growing
 * batch sizes. Mode "power" doubles from `init` until a trial fails; "binsearch" then bisects
 * between the last success and the first failure until they are adjacent. On the CPU a trial
 * fails when the run's device allocations (parameters, gradients, optimizer state, activations,
 * batch buffers — measured, not estimated) exceed `budget_bytes`; on a GPU, when an
 * allocation fails. The recommended batch keeps a safety `margin` below the largest that fit.
 * Each trial builds its own network from the model plugin, so nothing of the caller's state is
 * touched; nor are the device's budget_bytes and peak_bytes (the budget applies through a
 * bl_device_watch).
 */
#ifndef BATCHLAB_FIND_BATCH_H
#define BATCHLAB_FIND_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "batchlab/config.h"
#include "batchlab/dataset.h"
#include "batchlab/device.h"
#include "batchlab/optim.h"
#include "batchlab/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { BL_FIND_POWER = 0, BL_FIND_BINSEARCH = 1 } bl_find_mode;

typedef struct bl_find_batch_config {
    const bl_plugin *model;       /* borrowed */
    const bl_config *model_opts;  /* borrowed; may be NULL */
    bl_dataset *data;             /* borrowed */
    bl_device *dev;               /* borrowed */
    bl_optim_config optim;
    uint64_t seed;
    bl_find_mode mode;            /* default power */
    int64_t init;                 /* first batch tried (default 2) */
    int64_t max;                  /* never try above this (default 8192) */
    int max_trials;               /* default 25 */
    int steps_per_trial;          /* default 3 */
    double margin;                /* default 0.05: recommend ⌊largest · (1 − margin)⌋ */
    size_t budget_bytes;          /* memory budget; 0 = the device's own (required on the CPU) */
} bl_find_batch_config;

BL_EXPORT bl_find_batch_config bl_find_batch_defaults(void);

#define BL_FIND_MAX_TRIALS 64

typedef struct bl_find_trial {
    int64_t batch;
    int fits;                     /* 1 = ran its steps, 0 = out of memory */
    size_t peak_bytes;            /* device memory the trial reached */
    double seconds;
} bl_find_trial;

typedef struct bl_find_batch_result {
    int64_t largest;              /* largest batch that fit */
    int64_t recommended;          /* largest with the margin applied (≥ 1) */
    bool hit_max;                 /* stopped because `max` fit */
    bl_find_trial trials[BL_FIND_MAX_TRIALS];
    int trial_count;
} bl_find_batch_result;

/* Runs the search. Errors: bad configuration, no budget on the CPU, even batch 1 does not fit
 * (the message gives its memory need), or a trial failing for another reason than memory. */
BL_EXPORT int bl_find_max_batch(bl_ctx *ctx, const bl_find_batch_config *cfg,
                                bl_find_batch_result *out);

/* Parses a memory size: "1048576", "512K", "512MB", "2G", "1.5GiB" (binary units, case
 * insensitive, optional B / iB). BL_EOPTION with the text when it is not a positive size. */
BL_EXPORT int bl_parse_size(bl_ctx *ctx, const char *text, size_t *out);

/* "power" / "binsearch" → mode; BL_EOPTION otherwise. */
BL_EXPORT int bl_find_mode_parse(bl_ctx *ctx, const char *name, bl_find_mode *out);

#ifdef __cplusplus
}
#endif
#endif

/* Helpers shared by the built-in scheduler plugins (constant, step, ramp, smith, gns). Private
 * to this directory: each plugin builds as its own shared object, so everything here is
 * `static inline` and compiled into each one.
 *
 * Rules every built-in scheduler keeps:
 * - create validates every option and precomputes what next() needs; next() only reads the
 *   handle (gns also updates two integers in it) and never allocates;
 * - max_batch is exact: the largest batch next() can return for some training state;
 * - no batch exceeds BL_SCHED_BATCH_LIMIT; a schedule that would grow past it without a cap is
 *   refused at create, with a message that says which option to set.
 * Messages name the option and what was expected ("option 'factor' must be > 0, got 0"); the
 * host (bl_scheduler_open) puts "scheduler NAME: " in front of them. */
#ifndef BATCHLAB_PLUGINS_SCHED_UTIL_H
#define BATCHLAB_PLUGINS_SCHED_UTIL_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>

#include "batchlab/plugin_sdk.h"

/* Every plugin file defines the entry symbol; declared here for -Wmissing-prototypes. */
BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index);

/* The largest batch a built-in schedule returns (the engine takes int32-sized batches). */
#define BL_SCHED_BATCH_LIMIT ((int64_t)INT32_MAX)

/* Checks 1 ≤ v ≤ BL_SCHED_BATCH_LIMIT for a batch-size option. */
static inline int bl_sched_check_batch(bl_ctx *ctx, const char *option, int64_t v)
{
    if (v < 1 || v > BL_SCHED_BATCH_LIMIT)
        return bl_error(ctx, BL_EOPTION,
                        "option '%s' must be a batch size in 1..2^31-1, got %" PRId64, option, v);
    return BL_OK;
}

/* Checks an optional cap `max` (0 = none) against the starting batch. */
static inline int bl_sched_check_cap(bl_ctx *ctx, int64_t max, int64_t start,
                                     const char *start_option)
{
    if (max == 0)
        return BL_OK;
    if (max < 0 || max > BL_SCHED_BATCH_LIMIT)
        return bl_error(ctx, BL_EOPTION,
                        "option 'max' must be a batch size in 1..2^31-1 (0 = no cap), got %" PRId64,
                        max);
    if (max < start)
        return bl_error(ctx, BL_EOPTION,
                        "option 'max' (%" PRId64 ") must be ≥ '%s' (%" PRId64 ")", max,
                        start_option, start);
    return BL_OK;
}

/* Checks that epoch milestones are ≥ 1 and strictly increasing. */
static inline int bl_sched_check_milestones(bl_ctx *ctx, const char *option,
                                            const int64_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (m[i] < 1)
            return bl_error(ctx, BL_EOPTION,
                            "option '%s': epochs must be ≥ 1 (epoch 0 is the start; set the "
                            "starting batch instead), got %" PRId64,
                            option, m[i]);
        if (i > 0 && m[i] <= m[i - 1])
            return bl_error(ctx, BL_EOPTION,
                            "option '%s' must be strictly increasing, got %" PRId64
                            " after %" PRId64,
                            option, m[i], m[i - 1]);
    }
    return BL_OK;
}

/* How many of the increasing milestones m[0..n) have been reached once `epoch` epochs are
 * complete: a milestone e takes effect at the start of epoch e (counting from 0), i.e. after e
 * completed epochs, as a step LR schedule (PyTorch's MultiStepLR) would decay there. */
static inline size_t bl_sched_passed(const int64_t *m, size_t n, int64_t epoch)
{
    size_t k = 0;
    while (k < n && m[k] <= epoch)
        k++;
    return k;
}

#endif

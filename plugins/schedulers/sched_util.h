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
#include <string.h>

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

/* Milestones (step, smith) are counted in one unit, the option `unit`. */
typedef enum { BL_SCHED_EPOCHS, BL_SCHED_STEPS, BL_SCHED_SAMPLES } bl_sched_unit;

#define BL_SCHED_UNIT_OPTION                                                                  \
    {"unit", BL_TYPE_STRING, "epochs",                                                       \
     "what the milestones count: epochs (done, fractional), steps or samples"}

/* Reads the option `unit`. */
static inline int bl_sched_unit_of(bl_ctx *ctx, const bl_config *opts, bl_sched_unit *unit)
{
    const char *u = bl_config_string(opts, "unit");
    if (u && strcmp(u, "epochs") == 0)
        *unit = BL_SCHED_EPOCHS;
    else if (u && strcmp(u, "steps") == 0)
        *unit = BL_SCHED_STEPS;
    else if (u && strcmp(u, "samples") == 0)
        *unit = BL_SCHED_SAMPLES;
    else
        return bl_error(ctx, BL_EOPTION,
                        "option 'unit' must be epochs, steps or samples, got '%s'", u ? u : "");
    return BL_OK;
}

/* "epoch", "step", "sample": a milestone's unit in messages. */
static inline const char *bl_sched_unit_name(bl_sched_unit unit)
{
    return unit == BL_SCHED_EPOCHS ? "epoch" : unit == BL_SCHED_STEPS ? "step" : "sample";
}

/* Checks that milestones are finite, ≥ 0 and strictly increasing. */
static inline int bl_sched_check_milestones(bl_ctx *ctx, const char *option, const double *m,
                                            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!(m[i] >= 0) || m[i] > 1e300)
            return bl_error(ctx, BL_EOPTION,
                            "option '%s': milestones must be ≥ 0 (finite), got %g", option,
                            m[i]);
        if (i > 0 && m[i] <= m[i - 1])
            return bl_error(ctx, BL_EOPTION,
                            "option '%s' must be strictly increasing, got %g after %g", option,
                            m[i], m[i - 1]);
    }
    return BL_OK;
}

/* The options step and smith share, read and checked: the starting `batch`, the cap `max`,
 * the `milestones` and their `unit`. `at` points into opts (valid while opts is). */
typedef struct bl_sched_milestone_opts {
    int64_t start, cap;
    bl_sched_unit unit;
    const double *at;    /* [n] strictly increasing, in `unit` */
    size_t n;
} bl_sched_milestone_opts;

static inline int bl_sched_read_milestones(bl_ctx *ctx, const bl_config *opts,
                                           bl_sched_milestone_opts *m)
{
    m->start = bl_config_int(opts, "batch");
    m->cap = bl_config_int(opts, "max");
    m->unit = BL_SCHED_EPOCHS;
    m->n = 0;
    m->at = bl_config_number_list(opts, "milestones", &m->n);
    int rc = bl_sched_check_batch(ctx, "batch", m->start);
    if (!rc)
        rc = bl_sched_check_cap(ctx, m->cap, m->start, "batch");
    if (!rc)
        rc = bl_sched_unit_of(ctx, opts, &m->unit);
    if (!rc)
        rc = bl_sched_check_milestones(ctx, "milestones", m->at, m->n);
    return rc;
}

/* The schedule's clock in `unit`. Epochs done are the larger of the completed count and the
 * fractional one, plus 1e-9, so that a fractional count computed as samples / train_size that
 * lands a hair under a whole epoch still counts it; a milestone e then takes effect once e
 * epochs are done, as a step LR schedule (PyTorch's MultiStepLR) would decay there. */
static inline double bl_sched_clock(const bl_train_state *state, bl_sched_unit unit)
{
    if (unit == BL_SCHED_STEPS)
        return (double)state->step;
    if (unit == BL_SCHED_SAMPLES)
        return (double)state->samples;
    double e = state->epoch_progress > (double)state->epoch ? state->epoch_progress
                                                           : (double)state->epoch;
    return e + 1e-9;
}

/* How many of the increasing milestones m[0..n) the clock `t` has reached. */
static inline size_t bl_sched_passed(const double *m, size_t n, double t)
{
    size_t k = 0;
    while (k < n && m[k] <= t)
        k++;
    return k;
}

#endif

/* Scheduler "breakpoints": a piecewise-constant batch size (and LR factor) from a table.
 * From each breakpoint at[i] on — counted in `unit`: samples (default), steps or epochs — the
 * batch is batch[i] and the LR factor lr[i] (1 when `lr` is empty); before at[0] the first
 * entry holds. It takes what bl.critical_batch derives (the batch-size warmup of branched
 * training, docs/branched.md) in a form the command line and the results store keep as plain
 * options: `batchlab train --scheduler breakpoints --sched-opt at=0,12384 --sched-opt batch=32,128
 * --sched-opt lr=1,4`.
 * The Lua schedule batchlab.schedules.breakpoints wraps this plugin (batchlab.schedules.piecewise
 * is Lua's own and takes a list of breakpoint tables). Stateless; next() is a short scan. */
#include "sched_util.h"

#include <math.h>
#include <stdlib.h>

static const bl_option breakpoints_options[] = {
    {"at", BL_TYPE_NUMBER_LIST, "", "where each entry starts, in `unit` (increasing, ≥ 0)"},
    {"batch", BL_TYPE_INT_LIST, "", "the batch from each breakpoint on (one per entry)"},
    {"lr", BL_TYPE_NUMBER_LIST, "",
     "the LR factor from each breakpoint on (one per entry, > 0; empty: 1)"},
    {"unit", BL_TYPE_STRING, "samples",
     "what `at` counts: samples (default), steps or epochs (done, fractional)"},
    {NULL, 0, NULL, NULL}};

typedef struct bp_sched {
    size_t n;
    bl_sched_unit unit;
    int64_t max_batch;
    double *at;          /* [n] */
    int64_t *batch;      /* [n] */
    double *lr;          /* [n] */
    double data[];       /* storage for the three */
} bp_sched;

static int bp_create(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    size_t n = 0, nb = 0, nl = 0;
    const double *at = bl_config_number_list(opts, "at", &n);
    const int64_t *batch = bl_config_int_list(opts, "batch", &nb);
    const double *lr = bl_config_number_list(opts, "lr", &nl);
    bl_sched_unit unit = BL_SCHED_SAMPLES;
    int rc = bl_sched_unit_of(ctx, opts, &unit);
    if (rc)
        return rc;
    if (n == 0)
        return bl_error(ctx, BL_EOPTION, "option 'at' needs at least one breakpoint");
    if (nb != n)
        return bl_error(ctx, BL_EOPTION, "option 'batch' needs one batch per breakpoint of "
                        "'at' (%zu), got %zu", n, nb);
    if (nl != 0 && nl != n)
        return bl_error(ctx, BL_EOPTION, "option 'lr' needs one factor per breakpoint of 'at' "
                        "(%zu) or none, got %zu", n, nl);
    if ((rc = bl_sched_check_milestones(ctx, "at", at, n)) != BL_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if ((rc = bl_sched_check_batch(ctx, "batch", batch[i])) != BL_OK)
            return rc;
        if (nl && (!(lr[i] > 0) || !isfinite(lr[i])))
            return bl_error(ctx, BL_EOPTION, "option 'lr': factors must be > 0, got %g", lr[i]);
    }
    _Static_assert(sizeof(double) == sizeof(int64_t), "one storage for the arrays");
    bp_sched *s = malloc(sizeof *s + 3 * n * sizeof(double));
    if (!s)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    s->n = n;
    s->unit = unit;
    s->at = s->data;
    s->batch = (int64_t *)(s->data + n);
    s->lr = s->data + 2 * n;
    s->max_batch = 0;
    for (size_t i = 0; i < n; i++) {
        s->at[i] = at[i];
        s->batch[i] = batch[i];
        s->lr[i] = nl ? lr[i] : 1.0;
        if (batch[i] > s->max_batch)
            s->max_batch = batch[i];
    }
    *handle = s;
    return BL_OK;
}

static void bp_destroy(void *handle)
{
    free(handle);
}

static int64_t bp_max_batch(void *handle)
{
    return ((const bp_sched *)handle)->max_batch;
}

static int bp_next(void *handle, bl_ctx *ctx, const bl_train_state *state, int64_t *batch,
                   double *lr_factor)
{
    (void)ctx;
    const bp_sched *s = handle;
    size_t k = bl_sched_passed(s->at, s->n, bl_sched_clock(state, s->unit));
    size_t i = k > 0 ? k - 1 : 0;
    *batch = s->batch[i];
    *lr_factor = s->lr[i];
    return BL_OK;
}

static const bl_scheduler_ops bp_ops = {sizeof(bl_scheduler_ops), bp_create, bp_destroy,
                                        bp_max_batch, bp_next, NULL, NULL, NULL};

static const bl_plugin bp_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_SCHEDULER, "breakpoints", "1.0",
    "a piecewise-constant batch (and LR factor) from a table of breakpoints", breakpoints_options,
    &bp_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &bp_plugin : NULL;
}

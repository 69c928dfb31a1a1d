/* Scheduler "step": a step schedule on the batch size. The batch starts at `batch` and is
 * multiplied by `factor` at each of the `milestones`, counted in `unit` (epochs by default: a
 * milestone e applies once e epochs are done; or steps, or samples), capped at `max`. The Lua
 * schedule batchlab.schedules.step wraps this plugin. The learning rate is untouched (combine with an
 * LR scaling rule in the run if it should follow the batch).
 *
 * After k milestones the batch is min(round(batch · factor^k), max), at least 1: computed from
 * the start each time, so a fractional factor does not pile up rounding errors
 * (128 · 1.5^k: 128, 192, 288, 432, 648). A factor below 1 shrinks the batch. Without a cap,
 * a schedule that would pass 2^31-1 is refused. All values are computed at create; next() is a
 * table lookup, and max_batch is the largest entry of the table.
 */
#include "sched_util.h"

#include <math.h>
#include <stdlib.h>

static const bl_option step_options[] = {
    {"batch", BL_TYPE_INT, "128", "batch size before the first milestone"},
    {"factor", BL_TYPE_NUMBER, "2", "multiplier applied at each milestone (> 0)"},
    {"milestones", BL_TYPE_NUMBER_LIST, "",
     "multiply the batch at each of these (increasing, ≥ 0; none: a constant batch)"},
    BL_SCHED_UNIT_OPTION,
    {"max", BL_TYPE_INT, "0", "cap on the batch size (0 = no cap)"},
    {NULL, 0, NULL, NULL}};

typedef struct step_sched {
    size_t n;            /* milestones */
    bl_sched_unit unit;
    int64_t max_batch;
    double *milestones;  /* [n] increasing, in `unit` */
    int64_t *batch;      /* [n + 1] batch after k milestones */
    double data[];       /* storage for both arrays */
} step_sched;

static int step_create(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    const double factor = bl_config_number(opts, "factor");
    bl_sched_milestone_opts m;
    int rc = bl_sched_read_milestones(ctx, opts, &m);
    if (rc)
        return rc;
    const int64_t start = m.start, cap = m.cap;
    const bl_sched_unit unit = m.unit;
    const double *ms = m.at;
    const size_t n = m.n;
    if (!(factor > 0.0) || !isfinite(factor))
        return bl_error(ctx, BL_EOPTION, "option 'factor' must be > 0, got %g", factor);

    _Static_assert(sizeof(double) == sizeof(int64_t), "one storage for both arrays");
    step_sched *s = malloc(sizeof *s + (2 * n + 1) * sizeof(double));
    if (!s)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    s->n = n;
    s->unit = unit;
    s->milestones = s->data;
    s->batch = (int64_t *)(s->data + n);
    s->max_batch = 0;
    for (size_t k = 0; k <= n; k++) {
        if (k < n)
            s->milestones[k] = ms[k];
        double b = (double)start * pow(factor, (double)k);
        if (cap > 0 && b > (double)cap)
            b = (double)cap;
        if (!(b <= (double)BL_SCHED_BATCH_LIMIT)) {
            double at = ms[k - 1]; /* k ≥ 1: the start passed the check */
            free(s);
            return bl_error(ctx, BL_EOPTION,
                            "the batch would pass 2^31-1 at %s %g (%g); set option 'max' to "
                            "cap it", bl_sched_unit_name(unit), at, b);
        }
        int64_t v = llround(b);
        s->batch[k] = v < 1 ? 1 : v;
        if (s->batch[k] > s->max_batch)
            s->max_batch = s->batch[k];
    }
    *handle = s;
    return BL_OK;
}

static void step_destroy(void *handle)
{
    free(handle);
}

static int64_t step_max_batch(void *handle)
{
    return ((const step_sched *)handle)->max_batch;
}

static int step_next(void *handle, bl_ctx *ctx, const bl_train_state *state, int64_t *batch,
                     double *lr_factor)
{
    const step_sched *s = handle;
    *batch = s->batch[bl_sched_passed(s->milestones, s->n, bl_sched_clock(state, s->unit))];
    *lr_factor = 1.0;
    return BL_OK;
}

static const bl_scheduler_ops step_ops = {sizeof(bl_scheduler_ops), step_create, step_destroy,
                                          step_max_batch, step_next, NULL, NULL, NULL};

static const bl_plugin step_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_SCHEDULER, "step", "1.1",
    "multiply the batch size by a factor at given epochs", step_options, &step_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &step_plugin : NULL;
}

/* Scheduler "smith": "Don't Decay the Learning Rate, Increase the Batch Size" (Smith,
 * Kindermans, Ying & Le 2017).
 *
 * SGD's noise scale is g ≈ ε·N / (B·(1 − m)) (ε learning rate, N training set size, B batch,
 * m momentum). A step LR schedule divides ε by α at each milestone epoch; this schedule keeps
 * ε and multiplies B by α instead, which lowers g by the same factor α with α times fewer
 * parameter updates. When the batch reaches the cap `max`, it stays there and the learning
 * rate decays instead (the paper's "hybrid" schedule).
 *
 * Partial increases. When B·α would pass the cap, B goes as far as the cap allows and the LR
 * decays by the remaining factor, so that ε/B — and with it g — still drops by exactly α at
 * every milestone. In closed form, after k milestones:
 *     B_k = min(round(B_0 · α^k), max)
 *     lr_factor_k = B_k / (B_0 · α^k)           (so ε_k / B_k = (ε_0 / B_0) / α^k exactly)
 * Example: B = 512, α = 5, max = 1024: the milestone takes B to 1024 (×2) and the LR factor to
 * 2/5 = 0.4; every later milestone leaves B at 1024 and divides the LR factor by 5. The same
 * formula absorbs rounding when B_0·α^k is not an integer (a fractional α): the LR factor
 * corrects the noise scale for the rounded batch.
 *
 * Defaults: α = 5 and milestones 60, 120, 160 — the wide-ResNet step schedule on CIFAR-10
 * (LR divided by 5 at those epochs of 200) that the paper converts into batch increases
 * (B 128 → 640 → 3200 → 16000). No cap by default, so the default max_batch is 16000.
 * A milestone e takes effect once e epochs are done, as with a step LR schedule (or, with
 * `unit`, once e steps or samples are). The Lua schedule batchlab.schedules.smith wraps this
 * plugin, with the same defaults.
 *
 * Use it without an LR scaling rule in the run (lr_scaling none) and without the run's own
 * step LR schedule: scaling ε with B would undo the noise reduction the batch increase makes,
 * and this schedule already is the step schedule.
 */
#include "sched_util.h"

#include <math.h>
#include <stdlib.h>

static const bl_option smith_options[] = {
    {"batch", BL_TYPE_INT, "128", "batch size before the first milestone"},
    {"factor", BL_TYPE_NUMBER, "5",
     "the step schedule's LR decay factor α (> 1): B × α at each milestone"},
    {"milestones", BL_TYPE_NUMBER_LIST, "60,120,160",
     "where a step LR schedule would decay (increasing, ≥ 0)"},
    BL_SCHED_UNIT_OPTION,
    {"max", BL_TYPE_INT, "0",
     "batch cap (0 = none); past it the LR decays by the remaining factor"},
    {NULL, 0, NULL, NULL}};

typedef struct smith_sched {
    size_t n;            /* milestones */
    bl_sched_unit unit;
    int64_t max_batch;
    double *milestones;  /* [n] increasing, in `unit` */
    int64_t *batch;      /* [n + 1] batch after k milestones */
    double *lr;          /* [n + 1] LR factor after k milestones */
} smith_sched;

static void smith_destroy(void *handle)
{
    smith_sched *s = handle;
    if (s) {
        free(s->milestones);
        free(s->batch);
        free(s->lr);
        free(s);
    }
}

static int smith_create(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    const double alpha = bl_config_number(opts, "factor");
    bl_sched_milestone_opts m;
    int rc = bl_sched_read_milestones(ctx, opts, &m);
    if (rc)
        return rc;
    const int64_t start = m.start, cap = m.cap;
    const bl_sched_unit unit = m.unit;
    const double *ms = m.at;
    const size_t n = m.n;
    if (!(alpha > 1.0) || !isfinite(alpha))
        return bl_error(ctx, BL_EOPTION,
                        "option 'factor' must be > 1 (the LR decay factor the "
                        "batch increase replaces), got %g",
                        alpha);

    smith_sched *s = calloc(1, sizeof *s);
    if (!s)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    s->n = n;
    s->unit = unit;
    s->milestones = malloc((n ? n : 1) * sizeof *s->milestones);
    s->batch = malloc((n + 1) * sizeof *s->batch);
    s->lr = malloc((n + 1) * sizeof *s->lr);
    if (!s->milestones || !s->batch || !s->lr) {
        smith_destroy(s);
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k <= n; k++) {
        if (k < n)
            s->milestones[k] = ms[k];
        const double ideal = (double)start * pow(alpha, (double)k); /* B_0 · α^k */
        double b = ideal;
        if (cap > 0 && b > (double)cap)
            b = (double)cap;
        if (!(b <= (double)BL_SCHED_BATCH_LIMIT)) {
            double at = ms[k - 1]; /* k ≥ 1: the start passed the check */
            smith_destroy(s);
            return bl_error(ctx, BL_EOPTION,
                            "the batch would pass 2^31-1 at %s %g (%g); set option 'max' to "
                            "cap it (the LR then decays instead)",
                            bl_sched_unit_name(unit), at, b);
        }
        s->batch[k] = llround(b);
        s->lr[k] = (double)s->batch[k] / ideal;
        if (!(s->lr[k] > 0.0)) {
            double at = ms[k - 1];
            smith_destroy(s);
            return bl_error(ctx, BL_EOPTION,
                            "the LR factor underflows to 0 at %s %g; use fewer milestones or a "
                            "smaller 'factor'", bl_sched_unit_name(unit), at);
        }
        if (s->batch[k] > s->max_batch)
            s->max_batch = s->batch[k];
    }
    *handle = s;
    return BL_OK;
}

static int64_t smith_max_batch(void *handle)
{
    return ((const smith_sched *)handle)->max_batch;
}

static int smith_next(void *handle, bl_ctx *ctx, const bl_train_state *state, int64_t *batch,
                      double *lr_factor)
{
    const smith_sched *s = handle;
    const size_t k = bl_sched_passed(s->milestones, s->n, bl_sched_clock(state, s->unit));
    *batch = s->batch[k];
    *lr_factor = s->lr[k];
    return BL_OK;
}

static const bl_scheduler_ops smith_ops = {sizeof(bl_scheduler_ops), smith_create,
                                           smith_destroy, smith_max_batch, smith_next, NULL,
                                           NULL, NULL};

static const bl_plugin smith_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_SCHEDULER, "smith", "1.1",
    "increase the batch instead of decaying the LR (Smith et al. 2017); LR decays past the cap",
    smith_options, &smith_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &smith_plugin : NULL;
}

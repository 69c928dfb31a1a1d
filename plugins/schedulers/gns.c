/* Scheduler "gns": adapts the batch size to the measured gradient noise scale.
 *
 * McCandlish et al. (2018) show that the critical batch size — beyond which a larger batch
 * buys little reduction in the number of steps — is close to the noise scale
 * B_simple = tr(Σ)/|G|². This schedule sets the batch to k · B_simple:
 *
 *     target = the multiple of `multiple` nearest to k · state->gns, clamped to [min, max]
 *
 * - Until the engine has an estimate (state->gns is NAN, or not a positive finite number, as
 *   a noisy |G|² estimate can make it) the batch stays where it is: `batch` at the start
 *   (default: `min`, whose default is the smallest multiple of `multiple` ≥ 16 — the
 *   defaults of batchlab.schedules.gns, which wraps this plugin).
 * - The batch changes at most once every `every` steps (the starting batch counts as set at
 *   step 0), so each batch size runs long enough to be measured and the smoothed estimate can
 *   follow the change.
 * - With `monotonic` (the default) the batch never decreases. The noise scale grows as the
 *   loss falls (McCandlish et al. 2018: as training goes on, the true gradient shrinks
 *   relative to its noise, so B_simple rises), so a drop in the estimate is mostly
 *   measurement noise, and following it down would make the batch oscillate; turn it off to
 *   track the estimate both ways.
 * - min, max and batch must be multiples of `multiple`, so every batch returned is one, and
 *   max_batch is exactly `max` (reached once k · gns ≥ max).
 * The learning rate is untouched: combine with an LR scaling rule in the run if it should
 * follow the batch.
 *
 * The handle keeps the current batch and the step of its last change; a state whose step is 0
 * or earlier than the last one seen starts the schedule over (a new run with the same handle).
 * next() does no allocation and no I/O.
 */
#include "sched_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

static const bl_option gns_options[] = {
    {"batch", BL_TYPE_INT, "0", "batch size until the noise scale has been measured (0: min)"},
    {"k", BL_TYPE_NUMBER, "1", "target batch = k × the gradient noise scale (> 0)"},
    {"min", BL_TYPE_INT, "0",
     "smallest batch size (0: the smallest multiple of 'multiple' ≥ 16, at most max)"},
    {"max", BL_TYPE_INT, "4096", "largest batch size"},
    {"multiple", BL_TYPE_INT, "1", "round every batch to a multiple of this"},
    {"every", BL_TYPE_INT, "50", "change the batch at most once every this many steps"},
    {"monotonic", BL_TYPE_BOOL, "true", "never decrease the batch"},
    {NULL, 0, NULL, NULL}};

typedef struct gns_sched {
    int64_t start, min, max, multiple, every;
    double k;
    bool monotonic;
    /* run state */
    int64_t current;      /* batch returned by the last call */
    int64_t changed_at;   /* step of the last change */
    int64_t last_step;    /* step of the last call, -1 before the first */
} gns_sched;

static int check_multiple(bl_ctx *ctx, const char *option, int64_t v, int64_t m)
{
    if (v % m != 0)
        return bl_error(ctx, BL_EOPTION,
                        "option '%s' (%" PRId64
                        ") must be a multiple of 'multiple' (%" PRId64 ")",
                        option, v, m);
    return BL_OK;
}

static int gns_create(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    gns_sched g = {
        .start = bl_config_int(opts, "batch"),
        .min = bl_config_int(opts, "min"),
        .max = bl_config_int(opts, "max"),
        .multiple = bl_config_int(opts, "multiple"),
        .every = bl_config_int(opts, "every"),
        .k = bl_config_number(opts, "k"),
        .monotonic = bl_config_bool(opts, "monotonic"),
        .last_step = -1,
    };
    if (g.multiple < 1 || g.multiple > BL_SCHED_BATCH_LIMIT)
        return bl_error(ctx, BL_EOPTION,
                        "option 'multiple' must be ≥ 1, got %" PRId64, g.multiple);
    int rc = bl_sched_check_batch(ctx, "max", g.max);
    if (rc)
        return rc;
    if (g.min == 0) {                /* the default: the first multiple ≥ 16, at most max */
        g.min = (16 + g.multiple - 1) / g.multiple * g.multiple;
        if (g.min > g.max)
            g.min = g.max;
    }
    if (g.start == 0)                /* the default: start at min */
        g.start = g.min;
    rc = bl_sched_check_batch(ctx, "batch", g.start);
    if (!rc)
        rc = bl_sched_check_batch(ctx, "min", g.min);
    if (rc)
        return rc;
    if (g.min > g.max)
        return bl_error(ctx, BL_EOPTION,
                        "option 'min' (%" PRId64 ") must be ≤ 'max' (%" PRId64 ")",
                        g.min, g.max);
    if (g.start < g.min || g.start > g.max)
        return bl_error(ctx, BL_EOPTION,
                        "option 'batch' (%" PRId64 ") must be in [min, max] = [%"
                        PRId64 ", %" PRId64 "]",
                        g.start, g.min, g.max);
    if ((rc = check_multiple(ctx, "min", g.min, g.multiple)) ||
        (rc = check_multiple(ctx, "max", g.max, g.multiple)) ||
        (rc = check_multiple(ctx, "batch", g.start, g.multiple)))
        return rc;
    if (!(g.k > 0.0) || !isfinite(g.k))
        return bl_error(ctx, BL_EOPTION, "option 'k' must be > 0, got %g", g.k);
    if (g.every < 1)
        return bl_error(ctx, BL_EOPTION,
                        "option 'every' must be ≥ 1, got %" PRId64, g.every);

    gns_sched *s = malloc(sizeof *s);
    if (!s)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    g.current = g.start;
    *s = g;
    *handle = s;
    return BL_OK;
}

static void gns_destroy(void *handle)
{
    free(handle);
}

static int64_t gns_max_batch(void *handle)
{
    return ((const gns_sched *)handle)->max;
}

static bool gns_needs_gns(void *handle)
{
    return true;
}

/* The multiple of `multiple` nearest to x, clamped to [min, max]. */
static int64_t target_batch(const gns_sched *s, double x)
{
    if (x <= (double)s->min)
        return s->min;
    if (x >= (double)s->max)
        return s->max;
    int64_t b = llround(x / (double)s->multiple) * s->multiple;
    return b < s->min ? s->min : b > s->max ? s->max : b;
}

static int gns_next(void *handle, bl_ctx *ctx, const bl_train_state *state, int64_t *batch,
                    double *lr_factor)
{
    gns_sched *s = handle;
    if (state->step == 0 || state->step < s->last_step) { /* a (new) run starts */
        s->current = s->start;
        s->changed_at = state->step;
    }
    s->last_step = state->step;
    *lr_factor = 1.0;

    const double gns = state->gns;
    if (state->step - s->changed_at >= s->every && isfinite(gns) && gns > 0.0) {
        int64_t b = target_batch(s, s->k * gns);
        if (s->monotonic && b < s->current)
            b = s->current;
        if (b != s->current) {
            s->current = b;
            s->changed_at = state->step;
        }
    }
    *batch = s->current;
    return BL_OK;
}

/* The run state for snapshots: current, changed_at, last_step as three little-endian int64. */
enum { GNS_STATE_BYTES = 24 };

static int gns_save(void *handle, bl_ctx *ctx, void *buf, size_t cap, size_t *len)
{
    (void)ctx;
    const gns_sched *s = handle;
    *len = GNS_STATE_BYTES;
    if (cap < GNS_STATE_BYTES)
        return BL_OK;
    const int64_t v[3] = {s->current, s->changed_at, s->last_step};
    unsigned char *p = buf;
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 8; b++)
            p[i * 8 + b] = (unsigned char)((uint64_t)v[i] >> (8 * b));
    return BL_OK;
}

static int gns_restore(void *handle, bl_ctx *ctx, const void *buf, size_t len)
{
    gns_sched *s = handle;
    if (len != GNS_STATE_BYTES)
        return bl_error(ctx, BL_EFORMAT, "a saved state of %zu bytes (expected %d)", len,
                        GNS_STATE_BYTES);
    const unsigned char *p = buf;
    int64_t v[3];
    for (int i = 0; i < 3; i++) {
        uint64_t u = 0;
        for (int b = 0; b < 8; b++)
            u |= (uint64_t)p[i * 8 + b] << (8 * b);
        v[i] = (int64_t)u;
    }
    if (v[0] < s->min || v[0] > s->max)
        return bl_error(ctx, BL_EFORMAT,
                        "a saved batch %" PRId64 " outside [min, max] = [%" PRId64 ", %" PRId64
                        "] (a state of other options)",
                        v[0], s->min, s->max);
    s->current = v[0];
    s->changed_at = v[1];
    s->last_step = v[2];
    return BL_OK;
}

static const bl_scheduler_ops gns_ops = {sizeof(bl_scheduler_ops), gns_create, gns_destroy,
                                         gns_max_batch, gns_next, gns_needs_gns, gns_save,
                                         gns_restore};

static const bl_plugin gns_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_SCHEDULER, "gns", "1.0",
    "adaptive: batch = k × the measured gradient noise scale (McCandlish et al. 2018)",
    gns_options, &gns_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &gns_plugin : NULL;
}

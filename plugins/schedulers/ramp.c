/* Schedulers "ramp", "linear_ramp", "exponential_ramp" and "warmup": move the batch size from
 * `start` to `stop` over a length given in `epochs`, `steps` or `samples`, and stay at `stop`
 * afterwards. The learning rate is untouched.
 *
 * With t = progress through the ramp in [0, 1] (samples seen / samples, steps done / steps, or
 * epochs done / epochs, epochs done being the larger of the completed and the fractional
 * count):
 *     linear:       b = start + (stop − start) · t
 *     exponential:  b = start · (stop / start)^t     (equal factors per equal progress)
 * and the batch is the multiple of `multiple` nearest to b. `start` and `stop` must themselves
 * be multiples of `multiple`, so the ramp begins and ends exactly there and never leaves
 * [min(start, stop), max(start, stop)]; max_batch is max(start, stop). stop < start ramps
 * down.
 *
 * "ramp" is the general one: a `shape` option and defaults for everything (32 → 1024 over 10
 * epochs when no length is given). The other three are the Lua library's schedules of the same
 * names (batchlab.schedules wraps them): the shape is fixed, the ends are required, and so is
 * exactly one length; "warmup" calls its end `batch` (the batch it warms up to).
 *
 * `stop` is the end's name everywhere (not `end`, a Lua keyword).
 */
#include "sched_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const bl_option ramp_options[] = {
    {"start", BL_TYPE_INT, "32", "batch size at the beginning"},
    {"stop", BL_TYPE_INT, "1024", "batch size at the end of the ramp and afterwards"},
    {"epochs", BL_TYPE_NUMBER, "0",
     "length of the ramp in epochs (10 when no length is given)"},
    {"steps", BL_TYPE_INT, "0", "length of the ramp in steps (0: not given)"},
    {"samples", BL_TYPE_INT, "0", "length of the ramp in training samples (0: not given)"},
    {"shape", BL_TYPE_STRING, "linear", "linear or exponential"},
    {"multiple", BL_TYPE_INT, "1", "round every batch to a multiple of this"},
    {NULL, 0, NULL, NULL}};

#define LENGTH_OPTIONS                                                                       \
    {"epochs", BL_TYPE_NUMBER, "0", "length of the ramp in epochs (give one length)"},      \
    {"steps", BL_TYPE_INT, "0", "length of the ramp in steps (give one length)"},            \
    {"samples", BL_TYPE_INT, "0", "length of the ramp in training samples (give one length)"}, \
    {"multiple", BL_TYPE_INT, "1", "round every batch to a multiple of this"}

static const bl_option fixed_options[] = {
    {"start", BL_TYPE_INT, NULL, "batch size at the beginning"},
    {"stop", BL_TYPE_INT, NULL, "batch size at the end of the ramp and afterwards"},
    LENGTH_OPTIONS,
    {NULL, 0, NULL, NULL}};

static const bl_option warmup_options[] = {
    {"batch", BL_TYPE_INT, NULL, "batch size at the end of the warmup and afterwards"},
    {"start", BL_TYPE_INT, NULL, "batch size at the beginning"},
    LENGTH_OPTIONS,
    {NULL, 0, NULL, NULL}};

typedef enum { RAMP_GENERAL, RAMP_LINEAR, RAMP_EXPONENTIAL, RAMP_WARMUP } ramp_kind;

typedef struct ramp_sched {
    int64_t start, stop, multiple, steps, samples;
    double epochs;
    bool exponential;
} ramp_sched;

/* Reads the one length of the ramp (or, for the general ramp, 10 epochs when none). */
static int read_length(bl_ctx *ctx, const bl_config *opts, bool required, ramp_sched *r)
{
    r->epochs = bl_config_number(opts, "epochs");
    r->steps = bl_config_int(opts, "steps");
    r->samples = bl_config_int(opts, "samples");
    if (r->epochs < 0 || !isfinite(r->epochs))
        return bl_error(ctx, BL_EOPTION,
                        "option 'epochs' must be a positive number (the length of the ramp), "
                        "got %g", r->epochs);
    if (r->steps < 0 || r->samples < 0)
        return bl_error(ctx, BL_EOPTION,
                        "option '%s' must be a positive number (the length of the ramp), got %"
                        PRId64, r->steps < 0 ? "steps" : "samples",
                        r->steps < 0 ? r->steps : r->samples);
    int given = (r->epochs > 0) + (r->steps > 0) + (r->samples > 0);
    if (given > 1)
        return bl_error(ctx, BL_EOPTION,
                        "give only one of 'epochs', 'steps', 'samples' (the length of the ramp)");
    if (given == 0 && required)
        return bl_error(ctx, BL_EOPTION,
                        "one of 'epochs', 'steps', 'samples' is required (a positive length "
                        "of the ramp)");
    if (given == 0)
        r->epochs = 10;
    return BL_OK;
}

static int ramp_create_kind(bl_ctx *ctx, const bl_config *opts, void **handle, ramp_kind kind)
{
    ramp_sched r = {
        .start = bl_config_int(opts, "start"),
        .stop = bl_config_int(opts, kind == RAMP_WARMUP ? "batch" : "stop"),
        .multiple = bl_config_int(opts, "multiple"),
        .exponential = kind == RAMP_EXPONENTIAL,
    };
    const char *stop_name = kind == RAMP_WARMUP ? "batch" : "stop";
    int rc = bl_sched_check_batch(ctx, "start", r.start);
    if (!rc)
        rc = bl_sched_check_batch(ctx, stop_name, r.stop);
    if (rc)
        return rc;
    if (kind == RAMP_GENERAL) {
        const char *shape = bl_config_string(opts, "shape");
        if (shape && strcmp(shape, "exponential") == 0)
            r.exponential = true;
        else if (!shape || strcmp(shape, "linear") != 0)
            return bl_error(ctx, BL_EOPTION,
                            "option 'shape' must be linear or exponential, got '%s'",
                            shape ? shape : "");
    }
    if (r.multiple < 1 || r.multiple > BL_SCHED_BATCH_LIMIT)
        return bl_error(ctx, BL_EOPTION,
                        "option 'multiple' must be ≥ 1, got %" PRId64,
                        r.multiple);
    if (r.start % r.multiple != 0 || r.stop % r.multiple != 0)
        return bl_error(ctx, BL_EOPTION,
                        "option '%s' (%" PRId64
                        ") must be a multiple of 'multiple' (%" PRId64 ")",
                        r.start % r.multiple ? "start" : stop_name,
                        r.start % r.multiple ? r.start : r.stop, r.multiple);
    if ((rc = read_length(ctx, opts, kind != RAMP_GENERAL, &r)))
        return rc;

    ramp_sched *s = malloc(sizeof *s);
    if (!s)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    *s = r;
    *handle = s;
    return BL_OK;
}

static int ramp_create(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    return ramp_create_kind(ctx, opts, handle, RAMP_GENERAL);
}

static int linear_create(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    return ramp_create_kind(ctx, opts, handle, RAMP_LINEAR);
}

static int exponential_create(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    return ramp_create_kind(ctx, opts, handle, RAMP_EXPONENTIAL);
}

static int warmup_create(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    return ramp_create_kind(ctx, opts, handle, RAMP_WARMUP);
}

static void ramp_destroy(void *handle)
{
    free(handle);
}

static int64_t ramp_max_batch(void *handle)
{
    const ramp_sched *s = handle;
    return s->start > s->stop ? s->start : s->stop;
}

static int ramp_next(void *handle, bl_ctx *ctx, const bl_train_state *state, int64_t *batch,
                     double *lr_factor)
{
    const ramp_sched *s = handle;
    double epochs = state->epoch_progress > (double)state->epoch ? state->epoch_progress
                                                                  : (double)state->epoch;
    double t = s->samples > 0 ? (double)state->samples / (double)s->samples
               : s->steps > 0 ? (double)state->step / (double)s->steps
                              : epochs / s->epochs;
    if (!(t > 0.0))
        t = 0.0; /* also a NaN progress */
    else if (t > 1.0)
        t = 1.0;
    const double a = (double)s->start, e = (double)s->stop;
    const double b = s->exponential ? a * pow(e / a, t) : a + (e - a) * t;
    int64_t v = llround(b / (double)s->multiple) * s->multiple;
    const int64_t lo = s->start < s->stop ? s->start : s->stop;
    const int64_t hi = s->start < s->stop ? s->stop : s->start;
    *batch = v < lo ? lo : v > hi ? hi : v;
    *lr_factor = 1.0;
    return BL_OK;
}

#define RAMP_OPS(create) {sizeof(bl_scheduler_ops), create, ramp_destroy, ramp_max_batch, \
                          ramp_next, NULL, NULL, NULL}
static const bl_scheduler_ops ops[] = {RAMP_OPS(ramp_create), RAMP_OPS(linear_create),
                                       RAMP_OPS(exponential_create), RAMP_OPS(warmup_create)};

static const bl_plugin plugins[] = {
    {BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_SCHEDULER, "ramp", "1.1",
     "linear or exponential ramp of the batch size over epochs, steps or samples",
     ramp_options, &ops[0]},
    {BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_SCHEDULER, "linear_ramp", "1.0",
     "linear ramp of the batch size from start to stop", fixed_options, &ops[1]},
    {BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_SCHEDULER, "exponential_ramp", "1.0",
     "exponential (geometric) ramp of the batch size from start to stop", fixed_options,
     &ops[2]},
    {BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_SCHEDULER, "warmup", "1.0",
     "batch warmup: a linear ramp from start up to batch", warmup_options, &ops[3]},
};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index < sizeof plugins / sizeof plugins[0] ? &plugins[index] : NULL;
}

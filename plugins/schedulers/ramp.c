/* Scheduler "ramp": moves the batch size from `start` to `end` over the first `samples`
 * training samples (or, when samples is 0, over the first `epochs` epochs) and stays at `end`
 * afterwards. The learning rate is untouched.
 *
 * With t = progress through the ramp in [0, 1] (samples seen / samples, or fractional epochs
 * done / epochs):
 *     linear:       b = start + (end − start) · t
 *     exponential:  b = start · (end / start)^t     (equal factors per equal progress)
 * and the batch is the multiple of `multiple` nearest to b. `start` and `end` must themselves
 * be multiples of `multiple`, so the ramp begins and ends exactly there and never leaves
 * [min(start, end), max(start, end)]; max_batch is max(start, end). end < start ramps down.
 */
#include "sched_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const bl_option ramp_options[] = {
    {"start", BL_TYPE_INT, "32", "batch size at the beginning"},
    {"end", BL_TYPE_INT, "1024", "batch size at the end of the ramp and afterwards"},
    {"samples", BL_TYPE_INT, "0",
     "length of the ramp in training samples (0: use 'epochs')"},
    {"epochs", BL_TYPE_NUMBER, "10", "length of the ramp in epochs, when 'samples' is 0"},
    {"shape", BL_TYPE_STRING, "linear", "linear or exponential"},
    {"multiple", BL_TYPE_INT, "1", "round every batch to a multiple of this"},
    {NULL, 0, NULL, NULL}};

typedef struct ramp_sched {
    int64_t start, end, multiple, samples;
    double epochs;
    bool exponential;
} ramp_sched;

static int ramp_create(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    ramp_sched r = {
        .start = bl_config_int(opts, "start"),
        .end = bl_config_int(opts, "end"),
        .multiple = bl_config_int(opts, "multiple"),
        .samples = bl_config_int(opts, "samples"),
        .epochs = bl_config_number(opts, "epochs"),
    };
    const char *shape = bl_config_string(opts, "shape");
    int rc = bl_sched_check_batch(ctx, "start", r.start);
    if (!rc)
        rc = bl_sched_check_batch(ctx, "end", r.end);
    if (rc)
        return rc;
    if (shape && strcmp(shape, "exponential") == 0)
        r.exponential = true;
    else if (!shape || strcmp(shape, "linear") != 0)
        return bl_error(ctx, BL_EOPTION,
                        "option 'shape' must be linear or exponential, got '%s'",
                        shape ? shape : "");
    if (r.multiple < 1 || r.multiple > BL_SCHED_BATCH_LIMIT)
        return bl_error(ctx, BL_EOPTION,
                        "option 'multiple' must be ≥ 1, got %" PRId64,
                        r.multiple);
    if (r.start % r.multiple != 0 || r.end % r.multiple != 0)
        return bl_error(ctx, BL_EOPTION,
                        "option '%s' (%" PRId64
                        ") must be a multiple of 'multiple' (%" PRId64 ")",
                        r.start % r.multiple ? "start" : "end",
                        r.start % r.multiple ? r.start : r.end, r.multiple);
    if (r.samples < 0)
        return bl_error(ctx, BL_EOPTION,
                        "option 'samples' must be ≥ 0 (0: use 'epochs'), got %" PRId64,
                        r.samples);
    if (r.samples == 0 && !(r.epochs > 0.0 && isfinite(r.epochs)))
        return bl_error(ctx, BL_EOPTION,
                        "option 'epochs' must be > 0 when 'samples' is 0, got %g",
                        r.epochs);

    ramp_sched *s = malloc(sizeof *s);
    if (!s)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    *s = r;
    *handle = s;
    return BL_OK;
}

static void ramp_destroy(void *handle)
{
    free(handle);
}

static int64_t ramp_max_batch(void *handle)
{
    const ramp_sched *s = handle;
    return s->start > s->end ? s->start : s->end;
}

static int ramp_next(void *handle, bl_ctx *ctx, const bl_train_state *state, int64_t *batch,
                     double *lr_factor)
{
    const ramp_sched *s = handle;
    double t = s->samples > 0 ? (double)state->samples / (double)s->samples
                              : state->epoch_progress / s->epochs;
    if (!(t > 0.0))
        t = 0.0; /* also a NaN progress */
    else if (t > 1.0)
        t = 1.0;
    const double a = (double)s->start, e = (double)s->end;
    const double b = s->exponential ? a * pow(e / a, t) : a + (e - a) * t;
    int64_t v = llround(b / (double)s->multiple) * s->multiple;
    const int64_t lo = s->start < s->end ? s->start : s->end;
    const int64_t hi = s->start < s->end ? s->end : s->start;
    *batch = v < lo ? lo : v > hi ? hi : v;
    *lr_factor = 1.0;
    return BL_OK;
}

static const bl_scheduler_ops ramp_ops = {sizeof(bl_scheduler_ops), ramp_create, ramp_destroy,
                                          ramp_max_batch, ramp_next, NULL};

static const bl_plugin ramp_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_SCHEDULER, "ramp", "1.0",
    "linear or exponential ramp of the batch size over a number of samples or epochs",
    ramp_options, &ramp_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &ramp_plugin : NULL;
}

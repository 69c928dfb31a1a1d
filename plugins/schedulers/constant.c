/* Scheduler "constant": the same batch size at every step; the learning rate is untouched.
 * Mostly useful as the baseline of a comparison and as the smallest example of the scheduler
 * ABI. */
#include "sched_util.h"

#include <stdlib.h>

static const bl_option constant_options[] = {
    {"batch", BL_TYPE_INT, "128", "the batch size of every step"},
    {NULL, 0, NULL, NULL}};

typedef struct constant_sched {
    int64_t batch;
} constant_sched;

static int constant_create(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    int64_t batch = bl_config_int(opts, "batch");
    int rc = bl_sched_check_batch(ctx, "batch", batch);
    if (rc)
        return rc;
    constant_sched *s = malloc(sizeof *s);
    if (!s)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    s->batch = batch;
    *handle = s;
    return BL_OK;
}

static void constant_destroy(void *handle)
{
    free(handle);
}

static int64_t constant_max_batch(void *handle)
{
    return ((const constant_sched *)handle)->batch;
}

static int constant_next(void *handle, bl_ctx *ctx, const bl_train_state *state,
                         int64_t *batch, double *lr_factor)
{
    *batch = ((const constant_sched *)handle)->batch;
    *lr_factor = 1.0;
    return BL_OK;
}

static const bl_scheduler_ops constant_ops = {sizeof(bl_scheduler_ops), constant_create,
                                              constant_destroy, constant_max_batch,
                                              constant_next, NULL, NULL, NULL};

static const bl_plugin constant_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_SCHEDULER, "constant", "1.0",
    "the same batch size at every step", constant_options, &constant_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &constant_plugin : NULL;
}

/* The run orchestrator (batchlab/run.h): builds what a plan names, runs bl_train and drives the
 * outputs' hooks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "batchlab/model.h"
#include "batchlab/run.h"
#include "batchlab/scheduler.h"

/* The outputs, as bl_train's one on_point. */
typedef struct chain {
    bl_run_output *outputs;
    size_t n;
} chain;

static int chain_point(void *user, bl_ctx *ctx, const bl_eval_point *p)
{
    chain *c = user;
    for (size_t i = 0; i < c->n; i++) {
        bl_run_output *o = &c->outputs[i];
        int rc = o->point ? o->point(o->self, ctx, p) : BL_OK;
        if (rc != BL_OK)
            return rc;
    }
    return BL_OK;
}

void bl_run_result_blank(bl_run_result *r)
{
    memset(r, 0, sizeof *r);
    r->status = BL_RUN_FAILED;
    r->final = (bl_eval_point){.epoch = NAN, .wall = NAN, .lr = NAN, .train_loss = NAN,
                               .train_accuracy = NAN, .val_loss = NAN, .val_accuracy = NAN,
                               .gns = NAN, .samples_per_sec = NAN};
    r->test_loss = r->test_accuracy = NAN;
    r->time_to_target = r->wall_time_to_target = r->epochs_to_target = NAN;
    r->step_time_median = NAN;
    r->steps_to_target = r->samples_to_target = r->diverged_step = -1;
    r->steps_to_target_error = -1;
    snprintf(r->stopped_by, sizeof r->stopped_by, "error");
}

/* Opens the plan's device by name ("cpu" when none), with its host thread count. */
static int open_device(bl_ctx *ctx, const bl_run_plan *plan, bl_device **dev)
{
    return bl_device_open_threads(ctx, plan->device ? plan->device : "cpu", plan->threads, dev);
}

/* Begins every output; on a failure, ends those already begun with the error. */
static int begin_outputs(bl_ctx *ctx, bl_run_output *outputs, size_t n, const bl_run_info *info,
                         bl_run_result *result)
{
    for (size_t i = 0; i < n; i++) {
        int rc = outputs[i].begin ? outputs[i].begin(outputs[i].self, ctx, info) : BL_OK;
        if (rc != BL_OK) {
            snprintf(result->error, sizeof result->error, "%s", bl_errmsg(ctx));
            for (size_t k = 0; k < i; k++)
                if (outputs[k].end)
                    outputs[k].end(outputs[k].self, ctx, rc, result);
            return rc;
        }
    }
    return BL_OK;
}

int bl_run(bl_ctx *ctx, bl_run_plan *plan, bl_run_output *outputs, size_t n,
           bl_run_result *result)
{
    bl_run_result_blank(result);
    if (!plan->model)
        return bl_error(ctx, BL_EINVAL, "run: no model plugin");
    if (plan->train.on_point)
        return bl_error(ctx, BL_EINVAL, "run: give points to an output, not to on_point");
    bl_device *dev = NULL;
    bl_net *net = NULL;
    bl_scheduler *sched = NULL;
    int rc = open_device(ctx, plan, &dev);
    if (rc == BL_OK)
        rc = bl_model_build(ctx, plan->model, plan->model_opts, bl_dataset_info(plan->train.data),
                            dev, plan->train.seed, &net);
    if (rc == BL_OK && plan->scheduler_plugin)
        rc = bl_scheduler_open(ctx, plan->scheduler_plugin, plan->scheduler_opts, &sched);
    bl_train_config cfg = plan->train;
    cfg.net = net;
    if (sched)
        cfg.scheduler = sched;
    chain c = {outputs, n};
    cfg.on_point = chain_point;
    cfg.point_user = &c;
    bl_run_info info = {plan, net, dev, &cfg};
    if (rc == BL_OK)
        rc = begin_outputs(ctx, outputs, n, &info, result);
    if (rc == BL_OK) {
        rc = bl_train(ctx, &cfg, result);
        for (size_t i = 0; i < n; i++)
            if (outputs[i].end)
                outputs[i].end(outputs[i].self, ctx, rc, result);
    }
    bl_scheduler_close(sched);
    bl_net_free(net);
    bl_device_free(dev);
    return rc;
}

void bl_run_outputs_close(bl_run_output *outputs, size_t n)
{
    for (size_t i = 0; outputs && i < n; i++) {
        if (outputs[i].close)
            outputs[i].close(outputs[i].self);
        outputs[i].close = NULL;
        outputs[i].self = NULL;
    }
}

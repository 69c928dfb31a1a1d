/* `batchlab train` (one run from the command line) and `batchlab find-batch` (the largest
 * batch that fits a memory budget). Both build a model from a plugin on a dataset plugin.
 *
 * train is a translator onto the run orchestrator (batchlab/run.h): its flags are the run
 * specification's settings (batchlab/run_spec.h: "--max-steps N" sets max_steps, with the
 * spec's types, bounds and defaults; the help lists them from the spec), plus the objects
 * (--model, --dataset, --scheduler, --optimizer, their options) and the results store (--db,
 * --no-db: the run is recorded like those of `batchlab run`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batchlab/batchlab.h"
#include "batchlab/json.h"
#include "batchlab/run.h"
#include "batchlab/run_spec.h"
#include "batchlab/store.h"
#include "cli.h"
#include "cmd_train.h"
#include "signals.h"
#include "train_args.h"

/* ---- the run's records ------------------------------------------------------------------------ */

/* The run's configuration as JSON, shaped as bl.train's stored configuration: the dataset and
 * model as {name, options}, the batch (or {scheduler, options}), the optimizer with all its
 * fields, and every setting given on the command line that describes the training. */
static int config_json(bl_ctx *ctx, const train_args *a, const session *s, char **out)
{
    static const char *const not_configuration[] = {"label", "quiet", "threads", "tensorboard",
                                                    "experiment", "resume", "batch",
                                                    "checkpoint_every", "checkpoint", "save",
                                                    NULL};
    char *text = NULL, *json = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    fputs("{\"dataset\":{\"name\":", f);
    int rc = cli_json_string(ctx, f, a->common.dataset);
    if (rc == BL_OK)
        rc = bl_config_to_json(ctx, bl_dataset_options(s->data), &json);
    fprintf(f, ",\"options\":%s},\"model\":{\"name\":", json ? json : "{}");
    free(json);
    json = NULL;
    if (rc == BL_OK)
        rc = cli_json_string(ctx, f, a->common.model);
    if (rc == BL_OK)
        rc = bl_config_to_json(ctx, s->model_opts, &json);
    fprintf(f, ",\"options\":%s},\"batch\":", json ? json : "{}");
    free(json);
    json = NULL;
    if (a->common.scheduler) {
        if (rc == BL_OK)
            rc = bl_config_to_json(ctx, s->sched_opts, &json);
        fprintf(f, "{\"options\":%s,\"scheduler\":", json ? json : "{}");
        free(json);
        json = NULL;
        if (rc == BL_OK)
            rc = cli_json_string(ctx, f, a->common.scheduler);
        fputs("}", f);
    } else {
        fprintf(f, "%lld", (long long)bl_config_int(a->spec, "batch"));
    }
    if (rc == BL_OK)
        rc = bl_run_spec_optim_json(ctx, &a->common.optim, &json);
    fprintf(f, ",\"optimizer\":%s", json ? json : "{}");
    free(json);
    /* the settings given (and the budget the command chose), typed by the spec */
    for (size_t i = 0; rc == BL_OK && i < bl_config_count(a->spec); i++) {
        const char *key = bl_config_key(a->spec, i);
        bool skip = !train_args_given(a, key);
        for (size_t k = 0; not_configuration[k] && !skip; k++)
            skip = strcmp(not_configuration[k], key) == 0;
        if (skip)
            continue;
        char value[512];
        bl_config_format_value(a->spec, i, value, sizeof value);
        fputs(",", f);
        rc = cli_json_string(ctx, f, key);
        fputs(":", f);
        if (rc == BL_OK && bl_config_type_at(a->spec, i) == BL_TYPE_STRING)
            rc = cli_json_string(ctx, f, value);
        else
            fputs(value, f);
    }
    fputs("}", f);
    if (fclose(f) != 0 && rc == BL_OK)
        rc = bl_error(ctx, BL_ENOMEM, "out of memory");
    if (rc == BL_OK)
        rc = bl_json_canonical(ctx, text, out);
    free(text);
    return rc;
}

/* Hyperparameters for TensorBoard: model, dataset, batch (or scheduler), optimizer, lr, seed
 * (the output adds the LR scaling, the target and the plugins' options). */
static int tensorboard_output(bl_ctx *ctx, const train_args *a, const bl_train_config *c,
                              const char *dir, bl_run_output *out)
{
    const common_opts *o = &a->common;
    char run[256];
    if (o->scheduler)
        snprintf(run, sizeof run, "%s-%s-seed%llu", o->model, o->scheduler,
                 (unsigned long long)c->seed);
    else
        snprintf(run, sizeof run, "%s-b%lld-seed%llu", o->model, (long long)c->batch,
                 (unsigned long long)c->seed);
    bl_config *hp = NULL;
    int rc = bl_config_new(ctx, &hp);
    if (rc == BL_OK)
        rc = bl_config_set_string(ctx, hp, "model", o->model);
    if (rc == BL_OK)
        rc = bl_config_set_string(ctx, hp, "dataset", o->dataset);
    if (rc == BL_OK)
        rc = o->scheduler ? bl_config_set_string(ctx, hp, "batch", o->scheduler)
                          : bl_config_set_int(ctx, hp, "batch", c->batch);
    if (rc == BL_OK)
        rc = bl_config_set_string(ctx, hp, "optimizer", bl_optim_name(o->optim.kind));
    if (rc == BL_OK)
        rc = bl_config_set_number(ctx, hp, "lr", o->optim.lr);
    if (rc == BL_OK)
        rc = bl_config_set_int(ctx, hp, "seed", (int64_t)c->seed);
    if (rc == BL_OK)
        rc = bl_run_tensorboard_output(ctx, dir, run, hp, out);
    bl_config_free(hp);
    return rc;
}

/* An output printing the net's description on stderr when the run begins. */
static int describe_begin(void *self, bl_ctx *ctx, const bl_run_info *info)
{
    (void)self;
    (void)ctx;
    char desc[4096];
    bl_net_describe(info->net, desc, sizeof desc);
    fprintf(stderr, "%s", desc);
    return BL_OK;
}

static void print_result(const bl_run_result *r)
{
    printf("status %s (%s)\n", bl_run_status_name(r->status), r->stopped_by);
    if (r->resumed_step > 0)
        printf("continued from the checkpoint at step %lld\n", (long long)r->resumed_step);
    if (r->error[0])
        printf("error %s\n", r->error);
    printf("steps %lld  samples %lld  epochs %.2f  train time %.2fs  eval time %.2fs\n",
           (long long)r->steps, (long long)r->samples, r->epochs, r->time, r->eval_time);
    printf("train loss %.4f  val loss %.4f  val accuracy %.4f\n", r->final.train_loss,
           r->final.val_loss, r->final.val_accuracy);
    if (!isnan(r->test_accuracy) || !isnan(r->test_loss))
        printf("test loss %.4f  test accuracy %.4f\n", r->test_loss, r->test_accuracy);
    if (!isnan(r->final.gns))
        printf("gradient noise scale %.1f\n", r->final.gns);
    if (!isnan(r->time_to_target)) {
        printf("target reached at step %lld", (long long)r->steps_to_target);
        if (r->steps_to_target_error >= 0)    /* unknown for a run resumed from an old store */
            printf(" (± %lld, between evaluations)", (long long)r->steps_to_target_error);
        printf(", epoch %.2f, after %.2fs", r->epochs_to_target, r->time_to_target);
        if (!isnan(r->step_time_median))  /* time_to_target is steps × the median step */
            printf(" (median step %.3gs; wall %.2fs)", r->step_time_median,
                   r->wall_time_to_target);
        printf("\n");
    }
}

/* The outputs of the run, in order: store, TensorBoard, net description, progress. */
typedef struct outputs {
    bl_run_output o[4];
    size_t n;
    bl_run_output *store, *tb;
} outputs;

static int make_outputs(bl_ctx *ctx, const train_args *a, const bl_train_config *c, outputs *out)
{
    memset(out, 0, sizeof *out);
    const char *experiment = bl_config_string(a->spec, "experiment");
    const char *tb = bl_config_string(a->spec, "tensorboard");
    bool quiet = bl_config_bool(a->spec, "quiet");
    int rc = BL_OK;
    if (!a->no_db) {
        rc = bl_run_store_output(ctx, a->db ? a->db : bl_store_default_path(),
                                 *experiment ? experiment : NULL, &out->o[out->n]);
        if (rc == BL_OK)
            out->store = &out->o[out->n++];
    }
    if (rc == BL_OK && *tb) {
        rc = tensorboard_output(ctx, a, c, tb, &out->o[out->n]);
        if (rc == BL_OK)
            out->tb = &out->o[out->n++];
    }
    if (rc == BL_OK && !quiet) {
        out->o[out->n++] = (bl_run_output){.name = "describe", .begin = describe_begin};
        const char *label = bl_config_string(a->spec, "label");
        rc = bl_run_progress_output(ctx, *label ? label : a->common.model, isatty(2) != 0,
                                    &out->o[out->n]);
        if (rc == BL_OK)
            out->n++;
    }
    return rc;
}

/* With --resume: a finished run of this configuration in the store, printed; 1 when found. */
static int resumed(bl_ctx *ctx, const train_args *a, outputs *outs, const char *json,
                   int *status)
{
    int64_t id;
    if (!outs->store || !bl_config_bool(a->spec, "resume"))
        return 0;
    int rc = bl_run_store_output_find(ctx, outs->store, json, &id);
    if (rc == BL_ENOTFOUND) {
        bl_clear_error(ctx);
        return 0;
    }
    bl_run_result r;
    if (rc != BL_OK || bl_run_store_output_load(ctx, outs->store, id, &r) != BL_OK) {
        *status = cli_fail(ctx);
        return 1;
    }
    fprintf(stderr, "batchlab: skipped: already %s as run %lld in '%s'\n",
            bl_run_status_name(r.status), (long long)id, bl_run_store_output_path(outs->store));
    print_result(&r);
    printf("run %lld in %s\n", (long long)id, bl_run_store_output_path(outs->store));
    *status = r.status == BL_RUN_COMPLETED ? CLI_OK : CLI_FAILED;
    bl_run_result_free(&r);
    return 1;
}

/* Trains with the parsed arguments; returns the exit status. */
static int train(bl_ctx *ctx, train_args *a)
{
    session s;
    if (open_session(ctx, &a->common, false, &s) != 0) {
        close_session(&s);
        return CLI_FAILED;
    }
    bl_run_plan plan = {0};
    plan.train = bl_train_defaults();
    outputs outs = {0};
    char *json = NULL;
    int status = CLI_FAILED;
    if (bl_run_spec_apply(ctx, a->spec, "batchlab train", &plan.train) != BL_OK)
        goto fail;
    plan.train.data = s.data;
    plan.train.optim = a->common.optim;
    plan.train.interrupt = &cli_interrupted;
    plan.device = bl_config_string(a->spec, "device");
    plan.threads = (int)bl_config_int(a->spec, "threads");
    plan.model = s.model;
    plan.model_opts = s.model_opts;
    plan.scheduler_plugin = s.scheduler;
    plan.scheduler_opts = s.sched_opts;
    const char *label = bl_config_string(a->spec, "label");
    plan.label = *label ? label : NULL;
    if (config_json(ctx, a, &s, &json) != BL_OK)
        goto fail;
    plan.config_json = json;
    if (bl_run_plan_files(ctx, a->spec, &plan) != BL_OK)
        goto fail;
    if (make_outputs(ctx, a, &plan.train, &outs) != BL_OK)
        goto fail;
    if (resumed(ctx, a, &outs, json, &status))
        goto done;

    bl_run_result r;
    int rc = bl_run(ctx, &plan, outs.o, outs.n, &r);
    if (rc != BL_OK) {
        bl_run_result_free(&r);
        goto fail;
    }
    if (outs.tb && bl_run_tensorboard_output_path(outs.tb))  /* the run's own directory */
        printf("tensorboard: %s\n", bl_run_tensorboard_output_path(outs.tb));
    print_result(&r);
    if (outs.store)
        printf("run %lld in %s\n", (long long)bl_run_store_output_id(outs.store),
               bl_run_store_output_path(outs.store));
    status = r.status == BL_RUN_COMPLETED     ? CLI_OK
             : r.status == BL_RUN_INTERRUPTED ? cli_signals_exit_status()
                                              : CLI_FAILED;
    bl_run_result_free(&r);
    goto done;
fail:
    status = cli_fail(ctx);
done:
    bl_run_outputs_close(outs.o, outs.n);
    free(json);
    close_session(&s);
    return status;
}

int bl_cli_train(int argc, char **argv)
{
    bl_ctx *ctx = cli_ctx_new();
    if (!ctx)
        return CLI_FAILED;
    train_args a;
    int status = train_args_parse(ctx, argc, argv, &a);
    if (status == CLI_CONTINUE) {
        /* from the start: a Ctrl-C while the data loads still ends the run as interrupted
         * (the engine sees the flag at its first step) */
        cli_signals_install();
        status = train(ctx, &a);
        cli_signals_restore();
    }
    train_args_free(&a);
    bl_ctx_free(ctx);
    return status;
}

/* ---- find-batch ------------------------------------------------------------------------------- */

int bl_cli_find_batch(int argc, char **argv)
{
    bl_ctx *ctx = cli_ctx_new();
    if (!ctx)
        return CLI_FAILED;
    find_args a;
    int status = find_args_parse(ctx, argc, argv, &a);
    if (status != CLI_CONTINUE)
        goto out;
    session s;
    status = CLI_FAILED;
    if (open_session(ctx, &a.common, true, &s) != 0) {
        close_session(&s);
        goto out;
    }
    bl_find_batch_config fc = a.fc;
    fc.model = s.model;
    fc.model_opts = a.common.model_opts;
    fc.data = s.data;
    fc.dev = s.dev;
    fc.optim = a.common.optim;
    fc.seed = a.common.seed;
    bl_find_batch_result res;
    int rc = bl_find_max_batch(ctx, &fc, &res);
    if (res.trial_count > 0)   /* an error before any trial is printed alone */
        printf("%8s  %-6s  %12s  %8s\n", "batch", "fits", "memory", "seconds");
    for (int i = 0; i < res.trial_count; i++) {
        const bl_find_trial *t = &res.trials[i];
        printf("%8lld  %-6s  %9.1f MB  %8.3f\n", (long long)t->batch, t->fits ? "yes" : "no",
               (double)t->peak_bytes / (1024.0 * 1024.0), t->seconds);
    }
    if (rc != BL_OK) {
        fprintf(stderr, "batchlab: %s\n", bl_errmsg(ctx));
    } else {
        printf("largest batch that fits: %lld%s\n", (long long)res.largest,
               res.hit_max ? " (the --max limit)" : "");
        printf("recommended (%.0f%% margin): %lld\n", fc.margin * 100.0,
               (long long)res.recommended);
        status = CLI_OK;
    }
    close_session(&s);
out:
    find_args_free(&a);
    bl_ctx_free(ctx);
    return status;
}

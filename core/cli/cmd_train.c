/* `batchlab train` (one run from the command line) and `batchlab find-batch` (the largest
 * batch that fits a memory budget). Both build a model from a plugin on a dataset plugin. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batchlab/batchlab.h"
#include "cli.h"
#include "cmd_train.h"

typedef struct common_opts {
    const char *model, *dataset, *scheduler, *device;
    bl_config *model_opts, *data_opts, *sched_opts;
    bl_optim_config optim;
    const char *optim_name;
    int threads;
    uint64_t seed;
    bool quiet;
} common_opts;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    if (interrupted)
        _exit(130); /* second Ctrl-C: leave at once */
    interrupted = 1;
}

static int parse_i64(const char *opt, const char *text, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text ? text : "", &end, 10);
    if (!text || errno || *end || end == text || v < lo) {
        fprintf(stderr, "batchlab: %s expects an integer ≥ %lld, got '%s'\n", opt, (long long)lo,
                text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_f64(const char *opt, const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text ? text : "", &end);
    if (!text || errno || *end || end == text || !isfinite(v)) {
        fprintf(stderr, "batchlab: %s expects a number, got '%s'\n", opt, text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

/* Consumes one option shared by train and find-batch at argv[*i]; returns 1 when taken,
 * 0 when not one of them, -1 on error. */
static int common_option(bl_ctx *ctx, common_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    bl_config **target = NULL;
    if (strcmp(a, "--model-opt") == 0 || strcmp(a, "-m") == 0)
        target = &o->model_opts;
    else if (strcmp(a, "--data-opt") == 0 || strcmp(a, "-d") == 0)
        target = &o->data_opts;
    else if (strcmp(a, "--sched-opt") == 0)
        target = &o->sched_opts;
    if (target) {
        if (!v) {
            fprintf(stderr, "batchlab: %s expects name=value\n", a);
            return -1;
        }
        if ((!*target && bl_config_new(ctx, target) != BL_OK) ||
            bl_config_set_assignment(ctx, *target, v) != BL_OK) {
            fprintf(stderr, "batchlab: %s: %s\n", a, bl_errmsg(ctx));
            return -1;
        }
        ++*i;
        return 1;
    }
    const char **str = NULL;
    if (strcmp(a, "--model") == 0)
        str = &o->model;
    else if (strcmp(a, "--dataset") == 0)
        str = &o->dataset;
    else if (strcmp(a, "--scheduler") == 0)
        str = &o->scheduler;
    else if (strcmp(a, "--device") == 0)
        str = &o->device;
    else if (strcmp(a, "--optimizer") == 0)
        str = &o->optim_name;
    if (str) {
        if (!v) {
            fprintf(stderr, "batchlab: %s expects a value\n", a);
            return -1;
        }
        *str = v;
        ++*i;
        return 1;
    }
    double *num = NULL;
    if (strcmp(a, "--lr") == 0)
        num = &o->optim.lr;
    else if (strcmp(a, "--momentum") == 0)
        num = &o->optim.momentum;
    else if (strcmp(a, "--weight-decay") == 0)
        num = &o->optim.weight_decay;
    if (num) {
        if (parse_f64(a, v, num) != 0)
            return -1;
        ++*i;
        return 1;
    }
    int64_t n;
    if (strcmp(a, "--threads") == 0 || strcmp(a, "--seed") == 0) {
        if (parse_i64(a, v, 0, &n) != 0)
            return -1;
        if (a[2] == 't')
            o->threads = (int)n;
        else
            o->seed = (uint64_t)n;
        ++*i;
        return 1;
    }
    if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
        o->quiet = true;
        return 1;
    }
    return 0;
}

static void common_free(common_opts *o)
{
    bl_config_free(o->model_opts);
    bl_config_free(o->data_opts);
    bl_config_free(o->sched_opts);
}

/* The opened pieces both commands need. */
typedef struct session {
    bl_device *dev;
    bl_registry *reg;
    bl_dataset *data;
    const bl_plugin *model;
} session;

static int open_session(bl_ctx *ctx, common_opts *o, session *s)
{
    memset(s, 0, sizeof *s);
    if (!o->model || !o->dataset) {
        fprintf(stderr, "batchlab: --model and --dataset are required (see 'batchlab plugins')\n");
        return -1;
    }
    if (o->optim_name) {
        bl_optim_kind kind;
        if (bl_optim_parse(ctx, o->optim_name, &kind) != BL_OK)
            goto fail;
        bl_optim_config given = o->optim;
        o->optim = bl_optim_defaults(kind);
        if (!isnan(given.lr))
            o->optim.lr = given.lr;
        if (!isnan(given.momentum))
            o->optim.momentum = given.momentum;
        if (!isnan(given.weight_decay))
            o->optim.weight_decay = given.weight_decay;
    } else {
        bl_optim_config d = bl_optim_defaults(BL_OPTIM_SGD);
        if (isnan(o->optim.lr))
            o->optim.lr = d.lr;
        if (isnan(o->optim.momentum))
            o->optim.momentum = d.momentum;
        if (isnan(o->optim.weight_decay))
            o->optim.weight_decay = d.weight_decay;
    }
    if (bl_device_open(ctx, o->device ? o->device : "cpu", &s->dev) != BL_OK)
        goto fail;
    if (o->threads > 0 && s->dev->kind == BL_DEVICE_CPU) {
        bl_device_free(s->dev);
        if (bl_device_cpu_open(ctx, o->threads, &s->dev) != BL_OK)
            goto fail;
    }
    const bl_plugin *dp;
    if (bl_registry_new(ctx, &s->reg) != BL_OK || bl_registry_scan(ctx, s->reg) != BL_OK ||
        bl_registry_find(ctx, s->reg, BL_PLUGIN_DATASET, o->dataset, &dp) != BL_OK ||
        bl_registry_find(ctx, s->reg, BL_PLUGIN_MODEL, o->model, &s->model) != BL_OK ||
        bl_dataset_open(ctx, dp, o->data_opts, &s->data) != BL_OK)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "batchlab: %s\n", bl_errmsg(ctx));
    return -1;
}

static void close_session(session *s)
{
    bl_dataset_close(s->data);
    bl_registry_free(s->reg);
    bl_device_free(s->dev);
}

static void init_common(common_opts *o)
{
    memset(o, 0, sizeof *o);
    o->optim.lr = o->optim.momentum = o->optim.weight_decay = NAN;
    o->seed = 1;
}

/* --tensorboard DIR: the run's points go to an event file as they are made. */
static int tensorboard_point(void *user, bl_ctx *ctx, const bl_eval_point *p)
{
    return bl_tfevents_point(ctx, user, p);
}

/* Opens DIR/<model>-<batch or scheduler>-seed<N> and writes the run's hyperparameters. */
static int tensorboard_open(bl_ctx *ctx, const char *dir, const common_opts *o, int64_t batch,
                            bl_tfevents **out)
{
    char run[256];
    if (o->scheduler)
        snprintf(run, sizeof run, "%s-%s-seed%llu", o->model, o->scheduler,
                 (unsigned long long)o->seed);
    else
        snprintf(run, sizeof run, "%s-b%lld-seed%llu", o->model, (long long)batch,
                 (unsigned long long)o->seed);
    bl_config *hp = NULL;
    int rc = bl_tfevents_open(ctx, dir, run, out);
    if (rc == BL_OK)
        rc = bl_config_new(ctx, &hp);
    if (rc == BL_OK)
        rc = bl_config_set_string(ctx, hp, "model", o->model);
    if (rc == BL_OK)
        rc = bl_config_set_string(ctx, hp, "dataset", o->dataset);
    if (rc == BL_OK)
        rc = o->scheduler ? bl_config_set_string(ctx, hp, "batch", o->scheduler)
                          : bl_config_set_int(ctx, hp, "batch", batch);
    if (rc == BL_OK)
        rc = bl_config_set_string(ctx, hp, "optimizer", bl_optim_name(o->optim.kind));
    if (rc == BL_OK)
        rc = bl_config_set_number(ctx, hp, "lr", o->optim.lr);
    if (rc == BL_OK)
        rc = bl_config_set_int(ctx, hp, "seed", (int64_t)o->seed);
    if (rc == BL_OK)
        rc = bl_tfevents_hparams(ctx, *out, hp, NULL, 0);
    bl_config_free(hp);
    return rc;
}

static void print_train_usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab train --model NAME --dataset NAME [options]\n"
            "  -m, --model-opt K=V     a model option (repeatable; see 'batchlab plugins NAME')\n"
            "  -d, --data-opt K=V      a dataset option (repeatable)\n"
            "  --batch N               batch size (default 128)\n"
            "  --scheduler NAME        a batch-size scheduler plugin; --sched-opt K=V\n"
            "  --epochs X              epochs (default 1); --max-steps N\n"
            "  --optimizer NAME        sgd (default), adam, adamw, lars, lamb\n"
            "  --lr X --momentum X --weight-decay X\n"
            "  --micro-batch N         accumulate gradients over chunks of N\n"
            "  --gns                   measure the gradient noise scale\n"
            "  --tensorboard DIR       write TensorBoard event files under DIR\n"
            "  --seed N --threads N --device cpu --quiet\n");
}

int bl_cli_train(int argc, char **argv)
{
    bl_ctx *ctx = cli_ctx_new();
    if (!ctx)
        return CLI_FAILED;
    common_opts o;
    init_common(&o);
    int64_t batch = 128, max_steps = 0, micro = 0;
    double epochs = 0;
    bool gns = false;
    const char *tensorboard = NULL;
    bl_tfevents *tb = NULL;
    int status = 2;
    for (int i = 1; i < argc; i++) {
        int taken = common_option(ctx, &o, argc, argv, &i);
        if (taken < 0)
            goto out;
        if (taken)
            continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_train_usage(stdout);
            status = 0;
            goto out;
        } else if (strcmp(a, "--batch") == 0) {
            if (parse_i64(a, v, 1, &batch) != 0)
                goto out;
            i++;
        } else if (strcmp(a, "--max-steps") == 0) {
            if (parse_i64(a, v, 1, &max_steps) != 0)
                goto out;
            i++;
        } else if (strcmp(a, "--micro-batch") == 0) {
            if (parse_i64(a, v, 1, &micro) != 0)
                goto out;
            i++;
        } else if (strcmp(a, "--epochs") == 0) {
            if (parse_f64(a, v, &epochs) != 0)
                goto out;
            i++;
        } else if (strcmp(a, "--gns") == 0) {
            gns = true;
        } else if (strcmp(a, "--tensorboard") == 0) {
            if (!v) {
                fprintf(stderr, "batchlab: --tensorboard expects a directory\n");
                goto out;
            }
            tensorboard = v;
            i++;
        } else {
            fprintf(stderr, "batchlab train: unknown option '%s'\n", a);
            print_train_usage(stderr);
            goto out;
        }
    }
    if (epochs == 0 && max_steps == 0)
        epochs = 1;

    session s;
    status = 1;
    if (open_session(ctx, &o, &s) != 0) {
        close_session(&s);
        goto out;
    }
    bl_net *net = NULL;
    bl_scheduler *sched = NULL;
    if (bl_model_build(ctx, s.model, o.model_opts, bl_dataset_info(s.data), s.dev, o.seed,
                       &net) != BL_OK)
        goto fail;
    if (o.scheduler) {
        const bl_plugin *sp;
        if (bl_registry_find(ctx, s.reg, BL_PLUGIN_SCHEDULER, o.scheduler, &sp) != BL_OK ||
            bl_scheduler_open(ctx, sp, o.sched_opts, &sched) != BL_OK)
            goto fail;
    }
    if (!o.quiet) {
        char desc[4096];
        bl_net_describe(net, desc, sizeof desc);
        fprintf(stderr, "%s", desc);
    }
    bl_train_config c = bl_train_defaults();
    c.net = net;
    c.data = s.data;
    c.optim = o.optim;
    c.seed = o.seed;
    c.epochs = epochs;
    c.max_steps = max_steps;
    c.batch = batch;
    c.scheduler = sched;
    c.micro_batch = micro;
    c.measure_gns = gns;
    c.interrupt = &interrupted;
    bl_progress_printer printer = {.label = o.model, .live = isatty(2) != 0};
    if (!o.quiet) {
        c.on_progress = bl_progress_print;
        c.progress_user = &printer;
    }
    if (tensorboard) {
        if (tensorboard_open(ctx, tensorboard, &o, batch, &tb) != BL_OK)
            goto fail;
        c.on_point = tensorboard_point;
        c.point_user = tb;
    }
    signal(SIGINT, on_sigint);
    bl_run_result r;
    int rc = bl_train(ctx, &c, &r);
    signal(SIGINT, SIG_DFL);
    if (tb && rc == BL_OK && (bl_tfevents_end(ctx, tb, r.status) != BL_OK ||
                              bl_tfevents_close(ctx, tb) != BL_OK)) {
        tb = NULL;
        bl_run_result_free(&r);
        goto fail;
    }
    if (tb && rc == BL_OK) {
        tb = NULL;
        printf("tensorboard: %s\n", tensorboard);
    }
    if (rc != BL_OK) {
        bl_run_result_free(&r);
        goto fail;
    }
    printf("status %s (%s)\n", bl_run_status_name(r.status), r.stopped_by);
    if (r.error[0])
        printf("error %s\n", r.error);
    printf("steps %lld  samples %lld  epochs %.2f  train time %.2fs  eval time %.2fs\n",
           (long long)r.steps, (long long)r.samples, r.epochs, r.time, r.eval_time);
    printf("train loss %.4f  val loss %.4f  val accuracy %.4f\n", r.final.train_loss,
           r.final.val_loss, r.final.val_accuracy);
    if (!isnan(r.test_accuracy) || !isnan(r.test_loss))
        printf("test loss %.4f  test accuracy %.4f\n", r.test_loss, r.test_accuracy);
    if (!isnan(r.final.gns))
        printf("gradient noise scale %.1f\n", r.final.gns);
    status = r.status == BL_RUN_COMPLETED ? 0 : r.status == BL_RUN_INTERRUPTED ? 130 : 1;
    bl_run_result_free(&r);
    goto done;
fail:
    fprintf(stderr, "batchlab: %s\n", bl_errmsg(ctx));
    status = 1;
done:
    if (tb)
        bl_tfevents_close(ctx, tb);
    bl_scheduler_close(sched);
    bl_net_free(net);
    close_session(&s);
out:
    common_free(&o);
    bl_ctx_free(ctx);
    return status;
}

static void print_find_usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab find-batch --model NAME --dataset NAME [options]\n"
            "  -m, --model-opt K=V  -d, --data-opt K=V   plugin options (repeatable)\n"
            "  --budget SIZE        memory budget on the CPU, e.g. 512MB (required there)\n"
            "  --mode MODE          power (default) or binsearch\n"
            "  --init N --max N     first and largest batch tried (2, 8192)\n"
            "  --steps N            training steps per trial (3)\n"
            "  --margin X           keep this fraction below the largest fit (0.05)\n"
            "  --max-trials N       (25)\n"
            "  --optimizer NAME --lr X --momentum X --seed N --threads N --device cpu\n");
}

int bl_cli_find_batch(int argc, char **argv)
{
    bl_ctx *ctx = cli_ctx_new();
    if (!ctx)
        return CLI_FAILED;
    common_opts o;
    init_common(&o);
    bl_find_batch_config fc = bl_find_batch_defaults();
    int status = 2;
    for (int i = 1; i < argc; i++) {
        int taken = common_option(ctx, &o, argc, argv, &i);
        if (taken < 0)
            goto out;
        if (taken)
            continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_find_usage(stdout);
            status = 0;
            goto out;
        } else if (strcmp(a, "--budget") == 0) {
            if (bl_parse_size(ctx, v, &fc.budget_bytes) != BL_OK) {
                fprintf(stderr, "batchlab: --budget: %s\n", bl_errmsg(ctx));
                goto out;
            }
        } else if (strcmp(a, "--mode") == 0) {
            if (bl_find_mode_parse(ctx, v, &fc.mode) != BL_OK) {
                fprintf(stderr, "batchlab: %s\n", bl_errmsg(ctx));
                goto out;
            }
        } else if (strcmp(a, "--init") == 0 || strcmp(a, "--max") == 0 ||
                   strcmp(a, "--steps") == 0 || strcmp(a, "--max-trials") == 0) {
            if (parse_i64(a, v, 1, &n) != 0)
                goto out;
            if (strcmp(a, "--init") == 0)
                fc.init = n;
            else if (strcmp(a, "--max") == 0)
                fc.max = n;
            else if (strcmp(a, "--steps") == 0)
                fc.steps_per_trial = (int)n;
            else
                fc.max_trials = (int)n;
        } else if (strcmp(a, "--margin") == 0) {
            if (parse_f64(a, v, &fc.margin) != 0)
                goto out;
        } else {
            fprintf(stderr, "batchlab find-batch: unknown option '%s'\n", a);
            print_find_usage(stderr);
            goto out;
        }
        i++;
    }
    session s;
    status = 1;
    if (open_session(ctx, &o, &s) != 0) {
        close_session(&s);
        goto out;
    }
    fc.model = s.model;
    fc.model_opts = o.model_opts;
    fc.data = s.data;
    fc.dev = s.dev;
    fc.optim = o.optim;
    fc.seed = o.seed;
    bl_find_batch_result res;
    int rc = bl_find_max_batch(ctx, &fc, &res);
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
        status = 0;
    }
    close_session(&s);
out:
    common_free(&o);
    bl_ctx_free(ctx);
    return status;
}

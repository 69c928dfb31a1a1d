/* The run specification (batchlab/run_spec.h): the one declaration of a training run's
 * settings, their checks, and their translation into a bl_train_config. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/run_spec.h"
#include "config/config_internal.h"

static const char *const prefetch_choices[] = {"auto", "on", "off", NULL};
/* in bl_data_placement order */
static const char *const placement_choices[] = {"auto", "staged", "resident", NULL};
static const char *const train_acc_choices[] = {"steps", "subset", NULL};
static const char *const scaling_choices[] = {"none", "linear", "sqrt", NULL};
static const char *const schedule_choices[] = {"constant", "step", "cosine", "linear", NULL};

#define INF INFINITY

/* The budgets' upper bounds: a run asks for a finite amount of work, so "until killed" is not
 * a budget (0 = no limit of that kind; at least one budget or a stop criterion ends a run).
 * A million epochs, a trillion steps, a year of seconds: far above any real run, far below
 * where counting in doubles or int64 loses meaning. */
#define MAX_EPOCHS 1e6
#define MAX_STEPS 1e12
#define MAX_SECONDS 31536000.0

/* The settings, once: X(name, type, default, help, min, max, choices, metavar). The table of
 * bl_run_setting and the bl_option array for bl_config_validate are both made from it. */
#define RUN_SETTINGS(X) \
    X("device", BL_TYPE_STRING, "cpu", \
      "the device: cpu, or NAME[:N] (libbatchlab-NAME.so; none ships yet)", NAN, NAN, NULL, \
      "NAME") \
    X("seed", BL_TYPE_INT, "1", "seed of weights, shuffling and dropout", 0, INF, NULL, "N") \
    X("epochs", BL_TYPE_NUMBER, "0", "budget in epochs, may be fractional (0 = no limit)", 0, \
      MAX_EPOCHS, NULL, "X") \
    X("max_steps", BL_TYPE_INT, "0", "budget in optimizer steps (0 = no limit)", 0, MAX_STEPS, \
      NULL, "N") \
    X("max_seconds", BL_TYPE_NUMBER, "0", "budget in training seconds (0 = no limit)", 0, \
      MAX_SECONDS, NULL, "X") \
    X("batch", BL_TYPE_INT, "128", "the batch size (or, in bl.train, a schedule)", 1, INF, NULL, \
      "N") \
    X("max_batch", BL_TYPE_INT, "0", "the largest batch a batch function returns", 0, INF, NULL, \
      "N") \
    X("drop_last", BL_TYPE_BOOL, "false", "drop each epoch's last partial batch", NAN, NAN, NULL, \
      NULL) \
    X("micro_batch", BL_TYPE_INT, "0", "accumulate gradients over chunks of N (0 = off)", 0, INF, \
      NULL, "N") \
    X("prefetch", BL_TYPE_STRING, "auto", \
      "gather the next batch while a step computes: auto, on (a thread), off", \
      NAN, NAN, prefetch_choices, "MODE") \
    X("data_placement", BL_TYPE_STRING, "auto", \
      "training data on a GPU: auto, staged (copied per batch), resident (uploaded once)", NAN, \
      NAN, placement_choices, "MODE") \
    X("lr_scaling", BL_TYPE_STRING, "none", "LR scaling rule with the batch: none, linear, sqrt", \
      NAN, NAN, scaling_choices, "RULE") \
    X("lr_schedule", BL_TYPE_STRING, "constant", "LR schedule: constant, step, cosine, linear", \
      NAN, NAN, schedule_choices, "KIND") \
    X("eval_every", BL_TYPE_STRING, "1", \
      "evaluation cadence: X epochs, steps=N, samples=N, epochs=X, or auto (auto=N): every " \
      "step to step N, then each point 1/N further (N = 8)", NAN, NAN, NULL, "WHEN") \
    X("eval_batch", BL_TYPE_INT, "0", \
      "batch for evaluation (0 = the largest training chunk, at least 256)", 0, INF, NULL, "N") \
    X("train_eval_samples", BL_TYPE_INT, "2000", \
      "0 = no train accuracy; else the subset size of train_accuracy_from=subset", 0, INF, \
      NULL, "N") \
    X("train_accuracy_from", BL_TYPE_STRING, "steps", \
      "train accuracy from the steps since the last point (free), or an extra pass over a " \
      "fixed training subset: steps, subset", NAN, NAN, train_acc_choices, "FROM") \
    X("skip_test", BL_TYPE_BOOL, "false", "do not evaluate the test split at the end", NAN, NAN, \
      NULL, NULL) \
    X("skip_eval", BL_TYPE_BOOL, "false", "no evaluation at all: training figures only", NAN, \
      NAN, NULL, NULL) \
    X("measure_gns", BL_TYPE_BOOL, "false", "measure the gradient noise scale", NAN, NAN, NULL, \
      NULL) \
    X("gns_chunks", BL_TYPE_INT, "4", "chunks per batch for the noise scale estimate", 2, \
      1000000, NULL, "N") \
    X("gns_ema", BL_TYPE_NUMBER, "0.95", "smoothing of the noise scale estimate, in [0, 1)", 0, \
      1, NULL, "X") \
    X("data_parallel", BL_TYPE_BOOL, "false", \
      "under MPI: train on every rank of the job (or its group), each on its share of a batch", \
      NAN, NAN, NULL, NULL) \
    X("target", BL_TYPE_STRING, "", \
      "target: X (val_accuracy >= X) or METRIC>=X / METRIC<=X; fills *_to_target", NAN, NAN, \
      NULL, "TARGET") \
    X("stop_at_target", BL_TYPE_BOOL, "false", "end the run when the target is reached", NAN, \
      NAN, NULL, NULL) \
    X("diverge_loss_factor", BL_TYPE_NUMBER, "3", \
      "diverged when the training loss exceeds this × its starting value (0 = off)", 0, INF, \
      NULL, "X") \
    X("diverge_chance_evals", BL_TYPE_INT, "3", \
      "diverged after N evaluations in a row at chance accuracy past epoch 1 (0 = off)", 0, \
      INF, NULL, "N") \
    X("diverge_chance_margin", BL_TYPE_NUMBER, "0.02", \
      "accuracy up to 1/classes + this counts as chance", 0, 1, NULL, "X") \
    X("label", BL_TYPE_STRING, "", "a name shown in progress lines and stored with the run", \
      NAN, NAN, NULL, "TEXT") \
    X("quiet", BL_TYPE_BOOL, "false", "no progress lines", NAN, NAN, NULL, NULL) \
    X("threads", BL_TYPE_INT, "0", "CPU threads (0 = OpenBLAS's default)", 0, 4096, NULL, "N") \
    X("tensorboard", BL_TYPE_STRING, "", "write TensorBoard event files under DIR", NAN, NAN, \
      NULL, "DIR") \
    X("experiment", BL_TYPE_STRING, "", "the experiment the run is recorded under", NAN, NAN, \
      NULL, "NAME") \
    X("resume", BL_TYPE_BOOL, "false", \
      "return a finished run of the same configuration instead of training; continue an " \
      "unfinished one from its checkpoint", NAN, NAN, NULL, NULL) \
    X("checkpoint_every", BL_TYPE_STRING, "0", \
      "write the training state every N steps, or every Xs training seconds (0 = off)", NAN, \
      NAN, NULL, "N|Xs") \
    X("checkpoint", BL_TYPE_STRING, "", \
      "the checkpoint file (default: batchlab-checkpoints/HASH.blsnap next to the store)", NAN, \
      NAN, NULL, "FILE") \
    X("save", BL_TYPE_STRING, "", "write the final training state (weights) to FILE", NAN, NAN, \
      NULL, "FILE") \
    X("init", BL_TYPE_STRING, "", "start from the weights saved in FILE", NAN, NAN, NULL, \
      "FILE")

#define AS_SETTING(name, type, def, help, lo, hi, choices, metavar) \
    {{name, type, def, help}, lo, hi, choices, metavar},
#define AS_OPTION(name, type, def, help, lo, hi, choices, metavar) {name, type, def, help},

static const bl_run_setting settings[] = {RUN_SETTINGS(AS_SETTING)};
#define N_SETTINGS (sizeof settings / sizeof settings[0])
static const bl_option options[] = {RUN_SETTINGS(AS_OPTION){NULL, BL_TYPE_NUMBER, NULL, NULL}};

static const bl_run_object_key object_keys[] = {
    {"dataset", "required: the data (bl.dataset; --dataset NAME -d K=V)"},
    {"model", "required: the model (bl.model; --model NAME -m K=V)"},
    {"optimizer", "the optimizer and its settings (default sgd)"},
    {"stop", "a stop criterion function(point, run)"},
    {"on_point", "a function(point, run) called at every evaluation point"},
    {"db", "the results store the run is recorded in; false records nothing"},
    {"tune", "set by bl.sweep's LR tuning: the run's place in the search, recorded with it"},
    {NULL, NULL},
};

const bl_run_setting *bl_run_spec_settings(size_t *n)
{
    if (n)
        *n = N_SETTINGS;
    return settings;
}

const bl_run_object_key *bl_run_spec_object_keys(void)
{
    return object_keys;
}

const bl_run_setting *bl_run_spec_find(const char *name)
{
    for (size_t i = 0; name && i < N_SETTINGS; i++)
        if (strcmp(settings[i].opt.name, name) == 0)
            return &settings[i];
    return NULL;
}

const char *bl_run_spec_default(const char *name)
{
    const bl_run_setting *s = bl_run_spec_find(name);
    return s ? s->opt.default_value : NULL;
}

const bl_option *bl_run_spec_options(void)
{
    return options;
}

/* "none, linear, sqrt" into buf. */
static void join_choices(const char *const *choices, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; choices[i] && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", choices[i]);
}

static int check_choice(bl_ctx *ctx, const char *owner, const bl_run_setting *s, const char *v)
{
    size_t n = 0;
    while (s->choices[n])
        if (strcmp(s->choices[n++], v) == 0)
            return BL_OK;
    char list[256];
    join_choices(s->choices, list, sizeof list);
    const char *near = bl_nearest_name(v, s->choices, n);
    if (near)
        return bl_error(ctx, BL_EOPTION, "%s: unknown %s '%s'; did you mean '%s'? (accepted: %s)",
                        owner, s->opt.name, v, near, list);
    return bl_error(ctx, BL_EOPTION, "%s: unknown %s '%s' (accepted: %s)", owner, s->opt.name, v,
                    list);
}

/* " in [0, 1e+06]" / " ≥ 1" / "": the accepted range of `s` for a message. */
static void range_text(const bl_run_setting *s, char *buf, size_t cap)
{
    bool lo = !isnan(s->min) && isfinite(s->min), hi = !isnan(s->max) && isfinite(s->max);
    if (lo && hi)
        snprintf(buf, cap, " in [%g, %g]", s->min, s->max);
    else if (lo)
        snprintf(buf, cap, " ≥ %g", s->min);
    else if (hi)
        snprintf(buf, cap, " ≤ %g", s->max);
    else
        buf[0] = '\0';
}

/* Every number of the spec is finite (inf and NaN reach here from Lua, where 1/0 and 0/0 are
 * numbers; option text refuses them when it is parsed), then within its bounds. */
static int check_bounds(bl_ctx *ctx, const char *owner, const bl_run_setting *s, double v,
                        const char *given)
{
    if (!isfinite(v)) {
        char range[96];
        range_text(s, range, sizeof range);
        return bl_error(ctx, BL_EOPTION, "%s: '%s' must be a finite number%s, got %s", owner,
                        s->opt.name, range, given);
    }
    if (!isnan(s->min) && !(v >= s->min))
        return bl_error(ctx, BL_EOPTION, "%s: '%s' must be ≥ %g, got %s", owner, s->opt.name,
                        s->min, given);
    if (!isnan(s->max) && !(v <= s->max))
        return bl_error(ctx, BL_EOPTION, "%s: '%s' must be ≤ %g, got %s", owner, s->opt.name,
                        s->max, given);
    return BL_OK;
}

/* Checks the value of `s` in the validated config at `index`. */
static int check_setting(bl_ctx *ctx, const char *owner, const bl_run_setting *s,
                         const bl_config *cfg, size_t index)
{
    char given[64];
    bl_config_format_value(cfg, index, given, sizeof given);
    const char *name = s->opt.name;
    switch (s->opt.type) {
    case BL_TYPE_NUMBER: return check_bounds(ctx, owner, s, bl_config_number(cfg, name), given);
    case BL_TYPE_INT:
        return check_bounds(ctx, owner, s, (double)bl_config_int(cfg, name), given);
    case BL_TYPE_STRING: break;
    default: return BL_OK;
    }
    const char *v = bl_config_string(cfg, name);
    if (s->choices)
        return check_choice(ctx, owner, s, v);
    bl_train_config scratch = bl_train_defaults();
    int rc = BL_OK;
    if (strcmp(name, "eval_every") == 0)
        rc = bl_run_spec_parse_eval_every(ctx, v, &scratch);
    else if (strcmp(name, "target") == 0)
        rc = bl_run_spec_parse_target(ctx, v, &scratch);
    else if (strcmp(name, "checkpoint_every") == 0)
        rc = bl_run_spec_parse_checkpoint_every(ctx, v, &scratch.snapshot_every,
                                                &scratch.snapshot_seconds);
    if (rc != BL_OK)
        return bl_error_prefix(ctx, "%s", owner);
    return BL_OK;
}

int bl_run_spec_validate(bl_ctx *ctx, const bl_config *in, const char *owner, bl_config **out)
{
    bl_config *v = NULL;
    int rc = bl_config_validate(ctx, in, options, owner, &v);
    if (rc != BL_OK)
        return rc;
    /* 0 is the default "no epoch limit"; a budget given as 0 or less trains nothing (a NaN or
     * an inf is left to the bounds below, which name it as such) */
    if (bl_config_find(in, "epochs") >= 0 && isfinite(bl_config_number(v, "epochs")) &&
        !(bl_config_number(v, "epochs") > 0)) {
        char given[64];
        bl_config_format_value(v, (size_t)bl_config_find(v, "epochs"), given, sizeof given);
        bl_config_free(v);
        return bl_error(ctx, BL_EOPTION,
                        "%s: 'epochs' must be > 0, got %s (leave it out for no epoch limit, "
                        "with max_steps or max_seconds as the budget)",
                        owner, given);
    }
    for (size_t i = 0; i < N_SETTINGS; i++) {
        long k = bl_config_find(v, settings[i].opt.name);
        if (k >= 0 && (rc = check_setting(ctx, owner, &settings[i], v, (size_t)k)) != BL_OK) {
            bl_config_free(v);
            return rc;
        }
    }
    *out = v;
    return BL_OK;
}

/* The whole of `text` as a finite number (config_text.c's reader). */
static bool parse_number(const char *text, double *out)
{
    return bl__parse_number(text, text + strlen(text), out);
}

int bl_run_spec_parse_eval_every(bl_ctx *ctx, const char *text, bl_train_config *cfg)
{
    static const char *const units[] = {"epochs", "steps", "samples", "auto"};
    if (strcmp(text, "auto") == 0) {    /* the adaptive cadence with its default N (train.h) */
        cfg->eval_unit = BL_EVAL_AUTO;
        cfg->eval_every = 8;
        return BL_OK;
    }
    const char *eq = strchr(text, '=');
    bl_eval_unit unit = BL_EVAL_EPOCHS;
    const char *num = text;
    if (eq) {
        size_t n = (size_t)(eq - text), k = 0;
        while (k < 4 && !(strlen(units[k]) == n && strncmp(units[k], text, n) == 0))
            k++;
        if (k == 4)
            return bl_error(ctx, BL_EOPTION, "eval_every: unknown unit '%.*s' (give epochs=X, "
                            "steps=N, samples=N, auto or auto=N)", (int)n, text);
        unit = (bl_eval_unit)k;
        num = eq + 1;
    }
    double v;
    if (!parse_number(num, &v) || !(v > 0))
        return bl_error(ctx, BL_EOPTION, "eval_every must be > 0 (X epochs, steps=N, samples=N, "
                        "auto=N), got '%s'", text);
    cfg->eval_unit = unit;
    cfg->eval_every = v;
    return BL_OK;
}

int bl_run_spec_check_target(bl_ctx *ctx, bl_metric metric, double value)
{
    const char *name = bl_metric_name(metric);
    if (!isfinite(value))
        return bl_error(ctx, BL_EOPTION, "target: %s must be a finite number, got %g", name,
                        value);
    if (strstr(name, "accuracy") && !(value >= 0 && value <= 1)) {
        if (value > 1 && value <= 100)
            return bl_error(ctx, BL_EOPTION,
                            value == floor(value)
                                ? "target: %s is a fraction in [0, 1], got %g; did you mean "
                                  "%.2f?"
                                : "target: %s is a fraction in [0, 1], got %g; did you mean "
                                  "%g?",
                            name, value, value / 100);
        return bl_error(ctx, BL_EOPTION, "target: %s is a fraction in [0, 1], got %g", name,
                        value);
    }
    return BL_OK;
}

int bl_run_spec_parse_target(bl_ctx *ctx, const char *text, bl_train_config *cfg)
{
    cfg->has_target = false;
    if (!*text)
        return BL_OK;
    double v;
    if (parse_number(text, &v)) {
        if (bl_run_spec_check_target(ctx, BL_METRIC_VAL_ACCURACY, v) != BL_OK)
            return BL_EOPTION;
        cfg->has_target = true;
        cfg->target_metric = BL_METRIC_VAL_ACCURACY;
        cfg->target_higher_better = true;
        cfg->target_value = v;
        return BL_OK;
    }
    const char *op = strpbrk(text, "<>=");
    if (!op)
        return bl_error(ctx, BL_EOPTION, "target: expected X or METRIC>=X / METRIC<=X, got '%s'",
                        text);
    char metric[64];
    size_t n = (size_t)(op - text);
    if (n >= sizeof metric)
        n = sizeof metric - 1;
    memcpy(metric, text, n);
    metric[n] = '\0';
    bl_metric m;
    int rc = bl_metric_parse(ctx, metric, &m);
    if (rc != BL_OK)
        return bl_error_prefix(ctx, "target");
    bool higher = bl_metric_name_higher_is_better(bl_metric_name(m));
    const char *num = op + 1;
    if (op[0] == '>' && op[1] == '=') {
        higher = true;
        num = op + 2;
    } else if (op[0] == '<' && op[1] == '=') {
        higher = false;
        num = op + 2;
    } else if (op[0] != '=') {
        return bl_error(ctx, BL_EOPTION, "target: use >= or <= (or =), got '%s'", text);
    }
    if (!parse_number(num, &v))
        return bl_error(ctx, BL_EOPTION, "target: '%s' is not a number (in '%s')", num, text);
    if (bl_run_spec_check_target(ctx, m, v) != BL_OK)
        return BL_EOPTION;
    cfg->has_target = true;
    cfg->target_metric = m;
    cfg->target_higher_better = higher;
    cfg->target_value = v;
    return BL_OK;
}

int bl_run_spec_parse_checkpoint_every(bl_ctx *ctx, const char *text, int64_t *steps,
                                       double *seconds)
{
    size_t n = strlen(text);
    double v;
    *steps = 0;
    *seconds = 0;
    if (n > 1 && text[n - 1] == 's') {
        if (!bl__parse_number(text, text + n - 1, &v) || !(v >= 0))
            return bl_error(ctx, BL_EOPTION, "checkpoint_every: expected N (steps) or Xs "
                            "(training seconds), got '%s'", text);
        *seconds = v;
        return BL_OK;
    }
    if (!parse_number(text, &v) || !(v >= 0) || v != floor(v) || v > 9.0e15)
        return bl_error(ctx, BL_EOPTION, "checkpoint_every: expected N (steps, a whole number "
                        "≥ 0) or Xs (training seconds), got '%s'", text);
    *steps = (int64_t)v;
    return BL_OK;
}

static int choice_index(const char *const *choices, const char *v)
{
    for (int i = 0; choices[i]; i++)
        if (strcmp(choices[i], v) == 0)
            return i;
    return 0;
}

int bl_run_spec_apply(bl_ctx *ctx, const bl_config *spec, const char *owner,
                      bl_train_config *cfg)
{
    cfg->seed = (uint64_t)bl_config_int(spec, "seed");
    cfg->epochs = bl_config_number(spec, "epochs");
    cfg->max_steps = bl_config_int(spec, "max_steps");
    cfg->max_seconds = bl_config_number(spec, "max_seconds");
    cfg->batch = bl_config_int(spec, "batch");
    cfg->max_batch = bl_config_int(spec, "max_batch");
    cfg->drop_last = bl_config_bool(spec, "drop_last");
    cfg->micro_batch = bl_config_int(spec, "micro_batch");
    cfg->prefetch = (bl_prefetch_mode)choice_index(prefetch_choices,
                                                   bl_config_string(spec, "prefetch"));
    cfg->data_placement = (bl_data_placement)choice_index(
        placement_choices, bl_config_string(spec, "data_placement"));
    cfg->lr_scaling = (bl_lr_scaling)choice_index(scaling_choices,
                                                  bl_config_string(spec, "lr_scaling"));
    cfg->lr_schedule = (bl_lr_schedule)choice_index(schedule_choices,
                                                    bl_config_string(spec, "lr_schedule"));
    cfg->eval_batch = bl_config_int(spec, "eval_batch");
    cfg->train_eval_samples = bl_config_int(spec, "train_eval_samples");
    cfg->train_accuracy_from = (bl_train_acc_source)choice_index(
        train_acc_choices, bl_config_string(spec, "train_accuracy_from"));
    cfg->skip_test = bl_config_bool(spec, "skip_test");
    cfg->skip_eval = bl_config_bool(spec, "skip_eval");
    cfg->measure_gns = bl_config_bool(spec, "measure_gns");
    cfg->gns_chunks = (int)bl_config_int(spec, "gns_chunks");
    cfg->gns_ema = bl_config_number(spec, "gns_ema");
    cfg->data_parallel = bl_config_bool(spec, "data_parallel");
    cfg->stop_at_target = bl_config_bool(spec, "stop_at_target");
    cfg->diverge_loss_factor = bl_config_number(spec, "diverge_loss_factor");
    cfg->diverge_chance_evals = bl_config_int(spec, "diverge_chance_evals");
    cfg->diverge_chance_margin = bl_config_number(spec, "diverge_chance_margin");
    int rc = bl_run_spec_parse_eval_every(ctx, bl_config_string(spec, "eval_every"), cfg);
    if (rc == BL_OK)
        rc = bl_run_spec_parse_target(ctx, bl_config_string(spec, "target"), cfg);
    if (rc != BL_OK)
        return bl_error_prefix(ctx, "%s", owner);
    return BL_OK;
}

int bl_run_spec_optim_json(bl_ctx *ctx, const bl_optim_config *o, char **out)
{
    bl_config *c = NULL;
    int rc = bl_config_new(ctx, &c);
    if (rc == BL_OK)
        rc = bl_config_set_string(ctx, c, "name", bl_optim_name(o->kind));
    if (rc == BL_OK)
        rc = bl_config_set_bool(ctx, c, "nesterov", o->nesterov);
    struct {
        const char *k;
        double v;
    } f[] = {{"lr", o->lr}, {"momentum", o->momentum}, {"dampening", o->dampening},
             {"weight_decay", o->weight_decay}, {"beta1", o->beta1}, {"beta2", o->beta2},
             {"eps", o->eps}, {"trust_coefficient", o->trust_coefficient},
             {"clip_norm", o->clip_norm}};
    for (size_t i = 0; rc == BL_OK && i < sizeof f / sizeof f[0]; i++)
        rc = bl_config_set_number(ctx, c, f[i].k, f[i].v);
    if (rc == BL_OK)
        rc = bl_config_to_json(ctx, c, out);
    bl_config_free(c);
    return rc;
}

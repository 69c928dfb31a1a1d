/* The flags of `batchlab train` and `batchlab find-batch` (train_args.h): getopt_long over a
 * table made of the commands' own flags and, for train, one flag per run spec setting. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/run_spec.h"
#include "cli.h"
#include "train_args.h"

/* ---- the flags both commands share ------------------------------------------------------------ */

enum {
    F_MODEL = 256, F_DATASET, F_MODEL_OPT, F_DATA_OPT, F_SCHED_OPT, F_SCHEDULER, F_OPTIMIZER,
    F_LR, F_MOMENTUM, F_WEIGHT_DECAY, F_HELP,
    /* train */
    F_DB, F_NO_DB, F_GNS,
    /* find-batch */
    F_BUDGET, F_MODE, F_INIT, F_MAX, F_STEPS, F_MARGIN, F_MAX_TRIALS, F_SEED, F_THREADS,
    F_DEVICE, F_QUIET,
    F_SETTING = 1024 /* + index of a run spec setting */
};

#define COMMON_FLAGS                                                                             \
    {"model", required_argument, NULL, F_MODEL},                                                 \
        {"dataset", required_argument, NULL, F_DATASET},                                         \
        {"model-opt", required_argument, NULL, 'm'},                                             \
        {"data-opt", required_argument, NULL, 'd'},                                              \
        {"sched-opt", required_argument, NULL, F_SCHED_OPT},                                     \
        {"scheduler", required_argument, NULL, F_SCHEDULER},                                     \
        {"optimizer", required_argument, NULL, F_OPTIMIZER},                                     \
        {"lr", required_argument, NULL, F_LR}, {"momentum", required_argument, NULL, F_MOMENTUM}, \
        {"weight-decay", required_argument, NULL, F_WEIGHT_DECAY},                               \
        {"help", no_argument, NULL, 'h'}

static void init_common(common_opts *o)
{
    memset(o, 0, sizeof *o);
    o->optim.lr = o->optim.momentum = o->optim.weight_decay = NAN;
    o->seed = 1;
}

static void free_common(common_opts *o)
{
    bl_config_free(o->model_opts);
    bl_config_free(o->data_opts);
    bl_config_free(o->sched_opts);
}

static int parse_f64(const char *cmd, const char *flag, const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || end == text || !isfinite(v))
        return cli_usage_error(cmd, "%s expects a number, got '%s'", flag, text);
    *out = v;
    return CLI_CONTINUE;
}

static int parse_i64(const char *cmd, const char *flag, const char *text, int64_t lo,
                     int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || end == text || v < lo)
        return cli_usage_error(cmd, "%s expects an integer ≥ %lld, got '%s'", flag,
                               (long long)lo, text);
    *out = v;
    return CLI_CONTINUE;
}

/* A flag both commands take; returns CLI_CONTINUE when handled, 0 when not one of them, or
 * an exit status. */
static int common_flag(bl_ctx *ctx, const char *cmd, common_opts *o, int id, const char *flag,
                       const char *v)
{
    bl_config **target = id == 'm'           ? &o->model_opts
                         : id == 'd'         ? &o->data_opts
                         : id == F_SCHED_OPT ? &o->sched_opts
                                             : NULL;
    if (target) {
        if ((!*target && bl_config_new(ctx, target) != BL_OK) ||
            bl_config_set_assignment(ctx, *target, v) != BL_OK)
            return cli_usage_error(cmd, "%s: %s", flag, bl_errmsg(ctx));
        return CLI_CONTINUE;
    }
    switch (id) {
    case F_MODEL: o->model = v; return CLI_CONTINUE;
    case F_DATASET: o->dataset = v; return CLI_CONTINUE;
    case F_SCHEDULER: o->scheduler = v; return CLI_CONTINUE;
    case F_OPTIMIZER: o->optim_name = v; return CLI_CONTINUE;
    case F_LR: return parse_f64(cmd, flag, v, &o->optim.lr);
    case F_MOMENTUM: return parse_f64(cmd, flag, v, &o->optim.momentum);
    case F_WEIGHT_DECAY: return parse_f64(cmd, flag, v, &o->optim.weight_decay);
    default: return 0;
    }
}

/* "--max-steps" for "max_steps" (into buf). */
static const char *flag_of(const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "--%s", name);
    for (char *p = buf + 2; *p; p++)
        if (*p == '_')
            *p = '-';
    return buf;
}

/* ---- train ------------------------------------------------------------------------------------ */

/* Long flag names of the settings: "max-steps" (static storage, made once per process). */
static char setting_flags[64][32];

static struct option *train_flags(void)
{
    static const struct option fixed[] = {
        COMMON_FLAGS,
        {"db", required_argument, NULL, F_DB},
        {"no-db", no_argument, NULL, F_NO_DB},
        {"gns", no_argument, NULL, F_GNS},
    };
    size_t n_set;
    const bl_run_setting *set = bl_run_spec_settings(&n_set);
    size_t n_fixed = sizeof fixed / sizeof fixed[0];
    if (n_set > 64)
        n_set = 64;
    struct option *all = calloc(n_fixed + n_set + 1, sizeof *all);
    if (!all)
        return NULL;
    memcpy(all, fixed, sizeof fixed);
    for (size_t i = 0; i < n_set; i++) {
        flag_of(set[i].opt.name, setting_flags[i], sizeof setting_flags[i]);
        all[n_fixed + i] = (struct option){setting_flags[i] + 2,
                                           set[i].opt.type == BL_TYPE_BOOL ? no_argument
                                                                           : required_argument,
                                           NULL, F_SETTING + (int)i};
    }
    return all;
}

/* "an integer ≥ 1", "one of auto, on, off", ... for messages. */
static void describe_setting(const bl_run_setting *s, char *buf, size_t cap)
{
    size_t len = 0;
    if (s->choices) {
        len += (size_t)snprintf(buf, cap, "one of");
        for (size_t i = 0; s->choices[i] && len < cap; i++)
            len += (size_t)snprintf(buf + len, cap - len, "%s %s", i ? "," : "", s->choices[i]);
        return;
    }
    if (strcmp(s->opt.name, "epochs") == 0) {   /* 0, the default, means no limit */
        snprintf(buf, cap, "a number > 0");
        return;
    }
    const char *t = bl_type_name(s->opt.type);
    len = (size_t)snprintf(buf, cap, "%s %s", s->opt.type == BL_TYPE_INT ? "an" : "a", t);
    if (s->opt.type == BL_TYPE_STRING)
        snprintf(buf, cap, "%s", s->metavar ? s->metavar : "text");
    if (!isnan(s->min) && len < cap)
        len += (size_t)snprintf(buf + len, cap - len, " ≥ %g", s->min);
    if (!isnan(s->max) && !isinf(s->max) && len < cap)
        snprintf(buf + len, cap - len, "%s ≤ %g", isnan(s->min) ? "" : " and", s->max);
}

/* Sets a run spec setting from its flag, checked at once so the message names the flag. */
static int setting_flag(bl_ctx *ctx, train_args *a, size_t index, const char *value)
{
    const bl_run_setting *s = &bl_run_spec_settings(NULL)[index];
    char flag[40];
    flag_of(s->opt.name, flag, sizeof flag);
    const char *text = s->opt.type == BL_TYPE_BOOL ? "true" : value;
    bl_config *one = NULL, *checked = NULL;
    int rc = bl_config_new(ctx, &one);
    if (rc == BL_OK)
        rc = bl_config_set_text(ctx, one, s->opt.name, text);
    if (rc == BL_OK)
        rc = bl_run_spec_validate(ctx, one, "batchlab train", &checked);
    bl_config_free(one);
    bl_config_free(checked);
    if (rc == BL_ENOMEM)
        return cli_fail(ctx);
    if (rc != BL_OK) {
        char what[160];
        describe_setting(s, what, sizeof what);
        const char *why = bl_errmsg(ctx);
        if (strncmp(why, "batchlab train: ", 16) == 0)
            why += 16;
        return cli_usage_error("train", "%s expects %s, got '%s' (%s)", flag, what, text, why);
    }
    if (bl_config_set_text(ctx, a->given, s->opt.name, text) != BL_OK)
        return cli_fail(ctx);
    return CLI_CONTINUE;
}

typedef struct train_parse {
    bl_ctx *ctx;
    train_args *a;
} train_parse;

static int train_flag(void *user, int id, const char *name, const char *value)
{
    train_parse *p = user;
    char flag[48];
    if (name)
        snprintf(flag, sizeof flag, "--%s", name);
    else
        snprintf(flag, sizeof flag, "-%c", (char)id);
    int status = common_flag(p->ctx, "train", &p->a->common, id, flag, value);
    if (status != 0)
        return status;
    if (id == 'h') {
        train_usage(stdout);
        return CLI_OK;
    }
    if (id == 'q')
        return setting_flag(p->ctx, p->a, (size_t)(bl_run_spec_find("quiet") -
                                                   bl_run_spec_settings(NULL)), NULL);
    if (id == F_GNS)
        return setting_flag(p->ctx, p->a, (size_t)(bl_run_spec_find("measure_gns") -
                                                   bl_run_spec_settings(NULL)), NULL);
    if (id == F_DB) {
        p->a->db = value;
        return CLI_CONTINUE;
    }
    if (id == F_NO_DB) {
        p->a->no_db = true;
        return CLI_CONTINUE;
    }
    if (id >= F_SETTING)
        return setting_flag(p->ctx, p->a, (size_t)(id - F_SETTING), value);
    return cli_usage_error("train", "unexpected option '%s'", flag);
}

bool train_args_given(const train_args *a, const char *name)
{
    return a->given && bl_config_find(a->given, name) >= 0;
}

int train_args_parse(bl_ctx *ctx, int argc, char **argv, train_args *a)
{
    memset(a, 0, sizeof *a);
    init_common(&a->common);
    if (bl_config_new(ctx, &a->given) != BL_OK)
        return cli_fail(ctx);
    struct option *flags = train_flags();
    if (!flags)
        return cli_fail(ctx);
    train_parse p = {ctx, a};
    int first = 0;
    int status = cli_getopt("train", argc, argv, "m:d:hq", flags, 0, train_flag, &p, &first);
    free(flags);
    if (status != CLI_CONTINUE)
        return status;
    if (first < argc)
        return cli_usage_error("train", "unexpected argument '%s'", argv[first]);
    /* a scheduler chooses every batch: a --batch beside it would be silently ignored */
    if (a->common.scheduler && train_args_given(a, "batch")) {
        char b[32];
        bl_config_format_value(a->given, (size_t)bl_config_find(a->given, "batch"), b,
                               sizeof b);
        return cli_usage_error("train",
                               "--batch sets a constant batch, but --scheduler %s chooses every "
                               "batch; give the schedule's batch as its option instead (e.g. "
                               "--sched-opt batch=%s or start=%s; see 'batchlab plugins %s')",
                               a->common.scheduler, b, b, a->common.scheduler);
    }
    /* no budget given: one epoch */
    if (!train_args_given(a, "epochs") && !train_args_given(a, "max_steps") &&
        !train_args_given(a, "max_seconds") && bl_config_set_text(ctx, a->given, "epochs", "1"))
        return cli_fail(ctx);
    if (bl_run_spec_validate(ctx, a->given, "batchlab train", &a->spec) != BL_OK)
        return cli_fail(ctx);
    return CLI_CONTINUE;
}

void train_args_free(train_args *a)
{
    free_common(&a->common);
    bl_config_free(a->given);
    bl_config_free(a->spec);
}

void train_usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab train --model NAME --dataset NAME [options]\n"
            "  -m, --model-opt K=V        a model option (repeatable; see 'batchlab plugins NAME')\n"
            "  -d, --data-opt K=V         a dataset option (repeatable)\n"
            "  --scheduler NAME           a batch-size scheduler plugin; --sched-opt K=V\n"
            "  --optimizer NAME           sgd (default), adam, adamw, lars, lamb\n"
            "  --lr X --momentum X --weight-decay X\n"
            "  --db FILE                  the results store the run is recorded in (default:\n"
            "                             $BATCHLAB_DB, else ./batchlab.db)\n"
            "  --no-db                    record nothing\n"
            "  --gns                      the same as --measure-gns\n"
            "  -q, --quiet                the same as --quiet below\n"
            "  -h, --help                 print this help\n"
            "run settings (the keys of bl.train; without a budget, one epoch):\n");
    size_t n;
    const bl_run_setting *set = bl_run_spec_settings(&n);
    for (size_t i = 0; i < n; i++) {
        char flag[64], left[96];
        flag_of(set[i].opt.name, flag, sizeof flag);
        snprintf(left, sizeof left, "%s%s%s", flag, set[i].metavar ? " " : "",
                 set[i].metavar ? set[i].metavar : "");
        const char *def = set[i].opt.default_value;
        if (set[i].opt.type == BL_TYPE_BOOL || !def || !*def)
            fprintf(out, "  %-26s %s\n", left, set[i].opt.help);
        else
            fprintf(out, "  %-26s %s (default %s)\n", left, set[i].opt.help, def);
    }
}

/* ---- find-batch ------------------------------------------------------------------------------- */

static void find_usage(FILE *out)
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

typedef struct find_parse {
    bl_ctx *ctx;
    find_args *a;
} find_parse;

static int find_flag(void *user, int id, const char *name, const char *v)
{
    find_parse *p = user;
    bl_find_batch_config *fc = &p->a->fc;
    char flag[48];
    if (name)
        snprintf(flag, sizeof flag, "--%s", name);
    else
        snprintf(flag, sizeof flag, "-%c", (char)id);
    int status = common_flag(p->ctx, "find-batch", &p->a->common, id, flag, v);
    if (status != 0)
        return status;
    int64_t n = 0;
    switch (id) {
    case 'h': find_usage(stdout); return CLI_OK;
    case 'q':
    case F_QUIET: return CLI_CONTINUE;
    case F_DEVICE: p->a->common.device = v; return CLI_CONTINUE;
    case F_BUDGET:
        if (bl_parse_size(p->ctx, v, &fc->budget_bytes) != BL_OK)
            return cli_usage_error("find-batch", "--budget: %s", bl_errmsg(p->ctx));
        return CLI_CONTINUE;
    case F_MODE:
        if (bl_find_mode_parse(p->ctx, v, &fc->mode) != BL_OK)
            return cli_usage_error("find-batch", "%s", bl_errmsg(p->ctx));
        return CLI_CONTINUE;
    case F_MARGIN: return parse_f64("find-batch", flag, v, &fc->margin);
    case F_SEED:
    case F_THREADS:
        if ((status = parse_i64("find-batch", flag, v, 0, &n)) != CLI_CONTINUE)
            return status;
        if (id == F_SEED)
            p->a->common.seed = (uint64_t)n;
        else
            p->a->common.threads = (int)(n > 4096 ? 4096 : n);
        return CLI_CONTINUE;
    default: break;
    }
    if ((status = parse_i64("find-batch", flag, v, 1, &n)) != CLI_CONTINUE)
        return status;
    if (id == F_INIT)
        fc->init = n;
    else if (id == F_MAX)
        fc->max = n;
    else if (id == F_STEPS)
        fc->steps_per_trial = (int)n;
    else
        fc->max_trials = (int)n;
    return CLI_CONTINUE;
}

int find_args_parse(bl_ctx *ctx, int argc, char **argv, find_args *a)
{
    static const struct option flags[] = {
        COMMON_FLAGS,
        {"budget", required_argument, NULL, F_BUDGET},
        {"mode", required_argument, NULL, F_MODE},
        {"init", required_argument, NULL, F_INIT},
        {"max", required_argument, NULL, F_MAX},
        {"steps", required_argument, NULL, F_STEPS},
        {"margin", required_argument, NULL, F_MARGIN},
        {"max-trials", required_argument, NULL, F_MAX_TRIALS},
        {"seed", required_argument, NULL, F_SEED},
        {"threads", required_argument, NULL, F_THREADS},
        {"device", required_argument, NULL, F_DEVICE},
        {"quiet", no_argument, NULL, F_QUIET},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    init_common(&a->common);
    a->fc = bl_find_batch_defaults();
    find_parse p = {ctx, a};
    int first = 0;
    int status = cli_getopt("find-batch", argc, argv, "m:d:hq", flags, 0, find_flag, &p, &first);
    if (status == CLI_CONTINUE && first < argc)
        status = cli_usage_error("find-batch", "unexpected argument '%s'", argv[first]);
    return status;
}

void find_args_free(find_args *a)
{
    free_common(&a->common);
}

/* ---- the session ------------------------------------------------------------------------------ */

/* The optimizer: the named one's defaults (sgd when none), with --lr/--momentum/... on top. */
static int resolve_optim(bl_ctx *ctx, common_opts *o)
{
    bl_optim_kind kind = BL_OPTIM_SGD;
    if (o->optim_name && bl_optim_parse(ctx, o->optim_name, &kind) != BL_OK)
        return -1;
    bl_optim_config given = o->optim;
    o->optim = bl_optim_defaults(kind);
    if (!isnan(given.lr))
        o->optim.lr = given.lr;
    if (!isnan(given.momentum))
        o->optim.momentum = given.momentum;
    if (!isnan(given.weight_decay))
        o->optim.weight_decay = given.weight_decay;
    return 0;
}

/* Validated options of `plugin` (an empty set when none were given). */
static int plugin_options(bl_ctx *ctx, const bl_plugin *plugin, const bl_config *given,
                          bl_config **out)
{
    char owner[160];
    snprintf(owner, sizeof owner, "%s %s", bl_plugin_kind_name(plugin->kind), plugin->name);
    bl_config *empty = NULL;
    if (!given && bl_config_new(ctx, &empty) != BL_OK)
        return -1;
    int rc = bl_config_validate(ctx, given ? given : empty, plugin->options, owner, out);
    bl_config_free(empty);
    return rc == BL_OK ? 0 : -1;
}

int open_session(bl_ctx *ctx, common_opts *o, bool open_device, session *s)
{
    memset(s, 0, sizeof *s);
    if (!o->model || !o->dataset) {
        fprintf(stderr, "batchlab: --model and --dataset are required (see 'batchlab plugins')\n");
        return -1;
    }
    if (resolve_optim(ctx, o) != 0)
        goto fail;
    if (open_device) {
        if (bl_device_open_threads(ctx, o->device ? o->device : "cpu", o->threads, &s->dev) !=
            BL_OK)
            goto fail;
    }
    const bl_plugin *dp;
    if (bl_registry_new(ctx, &s->reg) != BL_OK || bl_registry_scan(ctx, s->reg) != BL_OK ||
        bl_registry_find(ctx, s->reg, BL_PLUGIN_DATASET, o->dataset, &dp) != BL_OK ||
        bl_registry_find(ctx, s->reg, BL_PLUGIN_MODEL, o->model, &s->model) != BL_OK ||
        plugin_options(ctx, s->model, o->model_opts, &s->model_opts) != 0)
        goto fail;
    if (o->scheduler &&
        (bl_registry_find(ctx, s->reg, BL_PLUGIN_SCHEDULER, o->scheduler, &s->scheduler) != BL_OK ||
         plugin_options(ctx, s->scheduler, o->sched_opts, &s->sched_opts) != 0))
        goto fail;
    if (bl_dataset_open(ctx, dp, o->data_opts, &s->data) != BL_OK)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "batchlab: %s\n", bl_errmsg(ctx));
    return -1;
}

void close_session(session *s)
{
    bl_dataset_close(s->data);
    bl_config_free(s->model_opts);
    bl_config_free(s->sched_opts);
    bl_registry_free(s->reg);
    bl_device_free(s->dev);
}

/* ---- JSON pieces ------------------------------------------------------------------------------ */

int cli_json_string(bl_ctx *ctx, FILE *f, const char *s)
{
    /* {"s":"<escaped>"}: the value between the 5th character and the closing brace */
    bl_config *one = NULL;
    char *json = NULL;
    int rc = bl_config_new(ctx, &one);
    if (rc == BL_OK)
        rc = bl_config_set_string(ctx, one, "s", s);
    if (rc == BL_OK)
        rc = bl_config_to_json(ctx, one, &json);
    if (rc == BL_OK)
        fprintf(f, "%.*s", (int)(strlen(json) - 6), json + 5);
    free(json);
    bl_config_free(one);
    return rc;
}

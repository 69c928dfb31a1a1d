/* batchlab runs: the runs of a results store as an aligned table.
 * batchlab show RUN: one run — its record, its configuration and its history. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/grow.h"
#include "base/strbuf.h"
#include "batchlab/optim.h"
#include "batchlab/train.h"
#include "cmd_results.h"

/* ---- shared ------------------------------------------------------------------------------- */

/* True when this user can write `path` and the directory it is in (where SQLite keeps the
 * -wal and -shm files). */
static bool store_writable(const char *path)
{
    if (access(path, W_OK) != 0)
        return false;
    const char *slash = strrchr(path, '/');
    if (!slash)
        return access(".", W_OK) == 0;
    if (slash == path)
        return access("/", W_OK) == 0;
    char *dir = strndup(path, (size_t)(slash - path));
    bool yes = dir && access(dir, W_OK) == 0;
    free(dir);
    return yes;
}

/* A store this user cannot write (another user's, a read-only directory) is opened read-only:
 * runs, show, export and report only read. */
int results_open(bl_ctx *ctx, const char *path, bl_store **out)
{
    bool writable = store_writable(path);
    int rc = bl_store_open_flags(ctx, path, writable ? 0 : BL_STORE_READONLY, out);
    if (rc != BL_OK)
        return cli_fail(ctx);
    if (writable && bl_store_mark_stale(ctx, *out, 0, NULL) != BL_OK)
        cli_warn("%s", bl_errmsg(ctx));
    return CLI_OK;
}

void results_number(char *buf, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(buf, cap, "%s", "");
        return;
    }
    bl__format_double(buf, cap, v, 6);
}

/* ---- batchlab runs ---------------------------------------------------------------------- */

static void runs_usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab runs [--db FILE] [--experiment NAME]\n"
            "\n"
            "Lists the runs of a results store, oldest first: id, start date (UTC), target,\n"
            "experiment, label, status, batch and learning rate (from the\n"
            "configuration), steps, training time, final validation and test accuracy, and\n"
            "time to target. '-' marks what was not\n"
            "recorded. Runs left 'running' by a process that is gone show as 'interrupted'.\n"
            "\n"
            "options:\n"
            "  --db FILE          the results store (default: $BATCHLAB_DB, else batchlab.db)\n"
            "  --experiment NAME  only the runs of this experiment\n");
}

enum { C_ID, C_STARTED, C_TARGET, C_EXP, C_LABEL, C_STATUS, C_BATCH, C_LR, C_STEPS, C_TIME,
       C_VAL, C_TEST, C_TTT, C_COUNT };
static const char *const headers[C_COUNT] = {"ID", "STARTED (UTC)", "TARGET", "EXPERIMENT",
                                             "LABEL", "STATUS", "BATCH", "BASE_LR", "STEPS",
                                             "TIME(S)", "VAL_ACC", "TEST_ACC", "TIME_TO_TARGET"};
static const bool right_aligned[C_COUNT] = {true, false, false, false, false, false, true, true,
                                            true, true, true, true, true};

typedef struct table {
    char *(*cells)[C_COUNT];
    size_t n, cap;
    bool nomem;
} table;

/* What the table shows from a configuration: the batch (a number, or the name of a schedule)
 * and the learning rate (optimizer.lr, else lr). */
typedef struct config_view {
    char batch[64], batch_name[64], lr[64], top_lr[64];
    char t_metric[40], t_value[40], t_op[4];   /* the target: "val_accuracy", "0.85", ">=" */
} config_view;

static int view_leaf(void *user, const char *path, bl_json_kind kind, const char *value)
{
    config_view *v = user;
    bool scalar = kind == BL_JSON_NUMBER || kind == BL_JSON_STRING;
    if (strcmp(path, "batch") == 0 && scalar)
        snprintf(v->batch, sizeof v->batch, "%s", value);
    else if (strncmp(path, "batch.", 6) == 0 && kind == BL_JSON_STRING && !v->batch_name[0] &&
             (strcmp(path + 6, "name") == 0 || strcmp(path + 6, "scheduler") == 0 ||
              strcmp(path + 6, "schedule") == 0))
        snprintf(v->batch_name, sizeof v->batch_name, "%s", value);
    else if (strcmp(path, "optimizer.lr") == 0 && kind == BL_JSON_NUMBER)
        snprintf(v->lr, sizeof v->lr, "%s", value);
    else if (strcmp(path, "lr") == 0 && kind == BL_JSON_NUMBER)
        snprintf(v->top_lr, sizeof v->top_lr, "%s", value);
    else if (strcmp(path, "target") == 0 && kind == BL_JSON_NUMBER)
        snprintf(v->t_value, sizeof v->t_value, "%s", value);
    else if (strcmp(path, "target.metric") == 0 && kind == BL_JSON_STRING)
        snprintf(v->t_metric, sizeof v->t_metric, "%s", value);
    else if (strncmp(path, "target.", 7) == 0 && kind == BL_JSON_NUMBER) {
        const char *k = path + 7;
        snprintf(v->t_op, sizeof v->t_op, "%s", strcmp(k, "at_least") == 0  ? ">="
                                                : strcmp(k, "at_most") == 0 ? "<="
                                                                            : "");
        if (strcmp(k, "at_least") != 0 && strcmp(k, "at_most") != 0 && strcmp(k, "value") != 0)
            snprintf(v->t_metric, sizeof v->t_metric, "%s", k);   /* {val_loss = 0.3} */
        snprintf(v->t_value, sizeof v->t_value, "%s", value);
    }
    return 0;
}

static char *cell_num(double v, const char *fmt)
{
    char buf[64];
    if (isnan(v))
        return strdup("-");
    snprintf(buf, sizeof buf, fmt, v);
    return strdup(buf);
}

static char *cell_count(int64_t v)
{
    char buf[32];
    if (v < 0)
        return strdup("-");
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return strdup(buf);
}

/* A cell of user text (a label, an experiment), escaped for the terminal. */
static char *cell_text(const char *s)
{
    return cli_term_dup(s && *s ? s : "-");
}

static int add_row(void *user, const bl_store_run *r)
{
    table *t = user;
    char *(*cells)[C_COUNT] = bl__grow(t->cells, &t->cap, t->n + 1, sizeof *cells);
    if (!cells) {
        t->nomem = true;
        return 1;
    }
    t->cells = cells;
    config_view v = {0};
    bl_json_flatten(NULL, r->config_json, view_leaf, &v); /* a bad config shows '-' */
    char target[128] = "", started[32] = "";
    if (v.t_value[0]) {
        const char *m = v.t_metric[0] ? v.t_metric : "val_accuracy";
        const char *op = v.t_op[0] ? v.t_op : bl_metric_name_higher_is_better(m) ? ">=" : "<=";
        snprintf(target, sizeof target, "%s%s%s", m, op, v.t_value);
    }
    /* "2024-05-01T12:00:00Z" → "2024-05-01 12:00" */
    if (strlen(r->started) >= 16)
        snprintf(started, sizeof started, "%.10s %.5s", r->started, r->started + 11);
    char **row = t->cells[t->n++];
    row[C_ID] = cell_count(r->id);
    row[C_STARTED] = cell_text(started);
    row[C_TARGET] = cell_text(target);
    row[C_EXP] = cell_text(r->experiment);
    row[C_LABEL] = cell_text(r->label);
    row[C_STATUS] = cell_text(bl_run_status_name(r->status));
    row[C_BATCH] = cell_text(v.batch[0] ? v.batch : v.batch_name);
    char lr[64] = "";
    if (v.lr[0] || v.top_lr[0])      /* 0.30000000000000004 → 0.3 */
        snprintf(lr, sizeof lr, "%.6g", strtod(v.lr[0] ? v.lr : v.top_lr, NULL));
    row[C_LR] = cell_text(lr);
    row[C_STEPS] = cell_count(r->steps);
    row[C_TIME] = cell_num(r->time, "%.2f");
    row[C_VAL] = cell_num(r->val_accuracy, "%.4f");
    row[C_TEST] = cell_num(r->test_accuracy, "%.4f");
    row[C_TTT] = cell_num(r->time_to_target, "%.2f");
    for (int c = 0; c < C_COUNT; c++)
        if (!row[c])
            t->nomem = true;
    return t->nomem ? 1 : 0;
}

static void print_table(const table *t)
{
    int w[C_COUNT];
    for (int c = 0; c < C_COUNT; c++) {
        w[c] = (int)strlen(headers[c]);
        for (size_t i = 0; i < t->n; i++) {
            int len = (int)strlen(t->cells[i][c]);
            w[c] = len > w[c] ? len : w[c];
        }
    }
    for (size_t i = 0; i <= t->n; i++) {
        for (int c = 0; c < C_COUNT; c++) {
            const char *s = i == 0 ? headers[c] : t->cells[i - 1][c];
            bool last = c == C_COUNT - 1;
            if (right_aligned[c])
                printf("%*s%s", w[c], s, last ? "" : "  ");
            else if (last)
                printf("%s", s);
            else
                printf("%-*s  ", w[c], s);
        }
        printf("\n");
    }
}

int cmd_runs(int argc, char **argv)
{
    const char *db = bl_store_default_path(), *experiment = NULL;
    const cli_value_flag flags[] = {{"db", 0, &db}, {"experiment", 0, &experiment}, {0}};
    int first = 0;
    int status = cli_getopt_values("runs", argc, argv, flags, CLI_UNKNOWN_IS_ARGUMENT,
                                   runs_usage, &first);
    if (status != CLI_CONTINUE)
        return status;
    if (first < argc)
        return cli_usage_error("runs", "unexpected argument '%s'", argv[first]);
    bl_ctx *ctx = cli_ctx_new();
    if (!ctx)
        return CLI_FAILED;
    bl_store *store = NULL;
    status = results_open(ctx, db, &store);
    table t = {0};
    if (status == CLI_OK) {
        int rc = bl_store_list_runs(ctx, store, experiment, add_row, &t);
        if (t.nomem) {
            cli_error("out of memory listing the runs of '%s'", db);
            status = CLI_FAILED;
        } else if (rc != BL_OK) {
            status = cli_fail(ctx);
        } else if (t.n == 0) {
            fprintf(stderr, "batchlab: no runs in results store '%s'%s%s\n", db,
                    experiment ? " for experiment " : "", experiment ? experiment : "");
        } else {
            print_table(&t);
        }
    }
    for (size_t i = 0; i < t.n; i++)
        for (int c = 0; c < C_COUNT; c++)
            free(t.cells[i][c]);
    free(t.cells);
    bl_store_close(store);
    bl_ctx_free(ctx);
    if (status == CLI_OK && fflush(stdout) != 0) {
        cli_error("cannot write the table: %s", strerror(errno));
        status = CLI_FAILED;
    }
    return status;
}

/* ---- batchlab show ---------------------------------------------------------------------- */

static void show_usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab show RUN [--db FILE]\n"
            "\n"
            "Shows run RUN (its id, as 'batchlab runs' lists it): status, times, final\n"
            "metrics, its configuration and its history of evaluation points.\n"
            "\n"
            "options:\n"
            "  --db FILE  the results store (default: $BATCHLAB_DB, else batchlab.db)\n");
}

static void field(const char *name, const char *value)
{
    if (value && *value) {
        printf("  %-18s ", name);
        cli_term_print(stdout, value);
        printf("\n");
    }
}

static void field_num(const char *name, double v)
{
    char buf[64];
    if (!isnan(v)) {
        results_number(buf, sizeof buf, v);
        field(name, buf);
    }
}

static void field_count(const char *name, int64_t v)
{
    char buf[32];
    if (v >= 0) {
        snprintf(buf, sizeof buf, "%lld", (long long)v);
        field(name, buf);
    }
}

/* The optimizer named by a configuration ("optimizer.name"). */
static int optim_leaf(void *user, const char *path, bl_json_kind kind, const char *value)
{
    if (strcmp(path, "optimizer.name") == 0 && kind == BL_JSON_STRING)
        snprintf(user, 32, "%s", value);
    return 0;
}

/* Copies `line` (out has room for strlen(line) + 1) with every long number outside a string
 * in 15 significant digits, so an lr of 0.1 * 3 reads "0.3", not "0.30000000000000004" (what
 * the JSON keeps, exactly); never longer than the original. */
static void tidy_numbers(char *out, size_t cap, const char *line)
{
    size_t o = 0;
    bool in_string = false;
    for (const char *p = line; *p && o + 1 < cap;) {
        char c = *p;
        bool starts = !in_string && (c == '-' || (c >= '0' && c <= '9')) &&
                      (p == line || strchr(" [:,", p[-1]));
        if (starts) {
            char *end, tidy[32];
            double v = strtod(p, &end);
            int n = snprintf(tidy, sizeof tidy, "%.15g", v);
            if (end > p && n > 0 && n < end - p && (size_t)n < cap - o) {
                memcpy(out + o, tidy, (size_t)n);
                o += (size_t)n;
                p = end;
                continue;
            }
        }
        if (in_string && c == '\\' && p[1]) {
            out[o++] = *p++;
            if (o + 1 < cap)
                out[o++] = *p++;
            continue;
        }
        if (c == '"')
            in_string = !in_string;
        out[o++] = *p++;
    }
    out[o] = '\0';
}

/* The configuration's key on this pretty-printed line ("  \"lr\": 0.1," → lr), or false. */
static bool line_key(const char *line, char *key, size_t cap)
{
    while (*line == ' ')
        line++;
    const char *end = *line == '"' ? strchr(line + 1, '"') : NULL;
    if (!end || end[1] != ':')
        return false;
    snprintf(key, cap, "%.*s", (int)(end - line - 1), line + 1);
    return true;
}

static void print_config_line(const char *line, bool comma)
{
    size_t cap = strlen(line) + 2;
    char *buf = malloc(cap);
    if (!buf) {
        printf("  %s\n", line);
        return;
    }
    tidy_numbers(buf, cap, line);
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] == ',' && !comma)
        buf[n - 1] = '\0';
    printf("  ");
    cli_term_print(stdout, buf); /* JSON escapes C0 controls, not C1 ones */
    printf("%s\n", comma && (n == 0 || buf[n - 1] != ',') ? "," : "");
    free(buf);
}

/* Prints the pretty configuration: numbers tidied, and in "optimizer" only the settings its
 * optimizer reads (the stored record keeps them all: SGD has no betas to show). */
static void print_config(char *pretty, const char *config_json)
{
    char name[32] = "";
    bl_json_flatten(NULL, config_json, optim_leaf, name);
    bl_optim_kind kind;
    bool known = name[0] && bl_optim_parse(NULL, name, &kind) == BL_OK;
    bool in_opt = false;
    const char *pending = NULL;            /* the optimizer's last kept line, not yet printed */
    for (char *line = pretty, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char key[64];
        bool has_key = line_key(line, key, sizeof key);
        if (!in_opt) {
            print_config_line(line, line[0] && line[strlen(line) - 1] == ',');
            in_opt = known && has_key && strcmp(key, "optimizer") == 0 &&
                     strchr(line, '{') && !strchr(line, '}');
            continue;
        }
        if (!has_key) {                     /* the object's end */
            if (pending)
                print_config_line(pending, false);
            pending = NULL;
            print_config_line(line, line[0] && line[strlen(line) - 1] == ',');
            in_opt = false;
            continue;
        }
        if (strcmp(key, "name") != 0 && !bl_optim_uses_field(kind, key))
            continue;
        if (pending)
            print_config_line(pending, true);
        pending = line;
    }
}

static int print_run(void *user, const bl_store_run *r)
{
    bl_ctx *ctx = user;
    char buf[256];
    printf("run %lld", (long long)r->id);
    if (r->experiment[0]) {
        printf(" of experiment '");
        cli_term_print(stdout, r->experiment);
        printf("'");
    }
    printf("\n");
    field("label", r->label);
    snprintf(buf, sizeof buf, "%s%s%s%s", bl_run_status_name(r->status),
             r->stopped_by[0] ? " (stopped by " : "", r->stopped_by,
             r->stopped_by[0] ? ")" : "");
    field("status", buf);
    field("error", r->error);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)r->seed);
    field("seed", buf);
    field("config hash", r->config_hash);
    field("started", r->started);
    field("ended", r->ended);
    snprintf(buf, sizeof buf, "%s (pid %lld)", r->host[0] ? r->host : "?", (long long)r->pid);
    field("host", buf);
    field("batchlab", r->batchlab_version);
    printf("\nresult:\n");
    field_count("steps", r->steps);
    field_count("samples", r->samples);
    field_num("epochs", r->epochs);
    field_num("time (s)", r->time);
    field_num("eval time (s)", r->eval_time);
    field_num("train loss", r->train_loss);
    field_num("train accuracy", r->train_accuracy);
    field_num("val loss", r->val_loss);
    field_num("val accuracy", r->val_accuracy);
    field_num("test loss", r->test_loss);
    field_num("test accuracy", r->test_accuracy);
    field_num("gns", r->gns);
    field_num("time to target", r->time_to_target);     /* steps × the median step time */
    field_num("wall to target", r->wall_time_to_target);
    field_num("median step (s)", r->step_time_median);
    if (r->steps_to_target >= 0 && r->steps_to_target_error >= 0) {
        /* interpolated; the error is the gap between the evaluations around the crossing */
        snprintf(buf, sizeof buf, "%lld ± %lld", (long long)r->steps_to_target,
                 (long long)r->steps_to_target_error);
        field("steps to target", buf);
    } else {
        field_count("steps to target", r->steps_to_target);
    }
    field_count("samples to target", r->samples_to_target);
    field_num("epochs to target", r->epochs_to_target);
    field_count("diverged at step", r->diverged_step);
    field_count("max batch used", r->max_batch_used);

    char *pretty = NULL;
    printf("\nconfiguration:\n");
    if (bl_json_pretty(ctx, r->config_json, &pretty) == BL_OK) {
        print_config(pretty, r->config_json);
        free(pretty);
    } else {
        printf("  ");
        cli_term_print(stdout, r->config_json); /* as stored */
        printf("\n");
    }
    printf("\nhistory (%lld point%s):\n", (long long)r->point_count,
           r->point_count == 1 ? "" : "s");
    return 0;
}

static const char *const point_headers[] = {"STEP", "SAMPLES", "EPOCH", "WALL", "BATCH", "LR",
                                            "TRAIN_LOSS", "TRAIN_ACC", "VAL_LOSS", "VAL_ACC",
                                            "GNS", "SAMPLES/S"};
#define N_POINT_COLS (sizeof point_headers / sizeof point_headers[0])
static const int point_widths[N_POINT_COLS] = {8, 10, 8, 9, 6, 10, 10, 9, 10, 9, 10, 10};

static void point_cell(int col, double v, const char *fmt)
{
    char buf[64];
    if (isnan(v))
        snprintf(buf, sizeof buf, "-");
    else
        snprintf(buf, sizeof buf, fmt, v);
    printf("%s%*s", col ? " " : "  ", point_widths[col], buf);
}

static int print_point(void *user, int64_t run_id, const bl_eval_point *p)
{
    (void)user, (void)run_id;
    point_cell(0, (double)p->step, "%.0f");
    point_cell(1, (double)p->samples, "%.0f");
    point_cell(2, p->epoch, "%.3f");
    point_cell(3, p->wall, "%.2f");
    point_cell(4, (double)p->batch, "%.0f");
    point_cell(5, p->lr, "%.4g");
    point_cell(6, p->train_loss, "%.4f");
    point_cell(7, p->train_accuracy, "%.4f");
    point_cell(8, p->val_loss, "%.4f");
    point_cell(9, p->val_accuracy, "%.4f");
    point_cell(10, p->gns, "%.4g");
    point_cell(11, p->samples_per_sec, "%.0f");
    printf("\n");
    return 0;
}

int cmd_show(int argc, char **argv)
{
    const char *db = bl_store_default_path(), *which = NULL;
    const cli_value_flag flags[] = {{"db", 0, &db}, {0}};
    int first = 0;
    int status = cli_getopt_values("show", argc, argv, flags,
                                   CLI_UNKNOWN_IS_ARGUMENT | CLI_OPERANDS_ANYWHERE, show_usage,
                                   &first);
    if (status != CLI_CONTINUE)
        return status;
    if (first + 1 < argc)
        return cli_usage_error("show", "unexpected argument '%s'", argv[first + 1]);
    if (first < argc)
        which = argv[first];
    if (!which)
        return cli_usage_error("show", "which run? give its id (see 'batchlab runs')");
    char *end;
    errno = 0;
    long long id = strtoll(which, &end, 10);
    if (errno || *end || end == which || id <= 0)
        return cli_usage_error("show", "RUN must be a run id (a positive integer), got '%s'",
                               which);
    bl_ctx *ctx = cli_ctx_new();
    if (!ctx)
        return CLI_FAILED;
    bl_store *store = NULL;
    status = results_open(ctx, db, &store);
    if (status == CLI_OK) {
        if (bl_store_get_run(ctx, store, id, print_run, ctx) != BL_OK) {
            status = cli_fail(ctx);
        } else {
            for (size_t c = 0; c < N_POINT_COLS; c++)
                printf("%s%*s", c ? " " : "  ", point_widths[c], point_headers[c]);
            printf("\n");
            if (bl_store_list_points(ctx, store, id, print_point, NULL) != BL_OK)
                status = cli_fail(ctx);
        }
    }
    bl_store_close(store);
    bl_ctx_free(ctx);
    if (status == CLI_OK && fflush(stdout) != 0) {
        cli_error("cannot write the run: %s", strerror(errno));
        status = CLI_FAILED;
    }
    return status;
}

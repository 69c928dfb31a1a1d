/* batchlab export: every evaluation point of a results store as CSV or JSON, one row per
 * point, with its run's columns and its run's configuration flattened into columns
 * ("cfg.batch", "cfg.optimizer.lr"). -o FILE is written through base/outfile.h: a regular
 * FILE is replaced whole (temporary file, fsync, rename), a special one (/dev/null, a FIFO) is
 * written in place, never renamed over. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/grow.h"
#include "base/outfile.h"
#include "base/strbuf.h"
#include "cmd_results.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab export [--format csv|json] [--db FILE] [--experiment NAME]\n"
            "                       [-o FILE]\n"
            "\n"
            "Writes one row per evaluation point (a run without any, e.g. one that failed\n"
            "at once, gets one row with empty point columns): the run's columns (run_id,\n"
            "experiment, label, status, ..., final metrics), the point's columns (step,\n"
            "samples, epoch,\n"
            "wall, batch, lr, train_loss, train_accuracy, val_loss, val_accuracy, gns,\n"
            "samples_per_sec) and the run's configuration flattened into 'cfg.' columns\n"
            "('cfg.batch', 'cfg.optimizer.lr'; a list is one column holding its JSON text).\n"
            "Values not recorded are empty (CSV) or null (JSON). Numbers are written in the\n"
            "fewest digits that read back exactly. In CSV a text cell that a spreadsheet\n"
            "would take for a formula (=, +, -, @, tab or CR first, and not a plain number)\n"
            "is written with a leading ' (OWASP's rule against CSV injection).\n"
            "\n"
            "options:\n"
            "  --format csv|json  output format (default: csv); JSON is an array of objects\n"
            "  --db FILE          the results store (default: $BATCHLAB_DB, else batchlab.db)\n"
            "  --experiment NAME  only the runs of this experiment\n"
            "  -o, --output FILE  write FILE (default: standard output)\n");
}

/* ---- cells ---------------------------------------------------------------------------------- */

typedef enum { V_NULL, V_NUMBER, V_STRING, V_RAW } vkind; /* RAW: JSON literal / array text */

typedef struct cell {
    vkind kind;
    const char *text;
} cell;

typedef struct leaf {
    char *path;             /* "cfg.<path>" */
    bl_json_kind kind;
    char *value;
} leaf;

/* The run's columns: run_id, seed, the strings, the numbers. */
static const char *const run_string_names[] = {"experiment", "label", "status", "stopped_by",
                                               "error", "config_hash", "started", "ended",
                                               "host", "batchlab_version"};
#define N_RUN_STRINGS (sizeof run_string_names / sizeof run_string_names[0])
static const char *const run_number_names[] = {
    "run_steps", "run_samples", "run_epochs", "run_time", "run_eval_time", "final_train_loss",
    "final_train_accuracy", "final_val_loss", "final_val_accuracy", "final_gns", "test_loss",
    "test_accuracy", "time_to_target", "steps_to_target", "steps_to_target_error",
    "samples_to_target", "epochs_to_target", "diverged_step", "max_batch_used",
    "wall_time_to_target", "step_time_median"};
#define N_RUN_NUMBERS (sizeof run_number_names / sizeof run_number_names[0])
static const char *const point_names[] = {"step", "samples", "epoch", "wall", "batch", "lr",
                                          "train_loss", "train_accuracy", "val_loss",
                                          "val_accuracy", "gns", "samples_per_sec"};
#define N_POINT_COLS (sizeof point_names / sizeof point_names[0])
#define FIRST_POINT_COL (2 + N_RUN_STRINGS + N_RUN_NUMBERS)

/* One run, copied out of the listing callback. */
typedef struct xrun {
    int64_t id;
    uint64_t seed;
    char *strings[N_RUN_STRINGS];
    double numbers[N_RUN_NUMBERS];  /* NaN when absent; counts are exact up to 2^53 */
    leaf *leaves;                   /* its configuration, flattened */
    size_t n_leaves, cap_leaves;
} xrun;

typedef struct exporter {
    xrun *runs;
    size_t n, cap;
    char **cfg_cols;        /* sorted, unique; borrowed from the runs' leaves */
    size_t n_cols;
    bool nomem;
    FILE *out;
    const char *out_name;   /* for messages */
    bool json;
    size_t rows;
    const char **names;     /* every column name, in order */
    size_t n_names;
    cell *cells;            /* the row being written */
    char (*numbuf)[40];     /* number text of the row's cells */
} exporter;

static double count_or_nan(int64_t v)
{
    return v < 0 ? NAN : (double)v;
}

static int collect_leaf(void *user, const char *path, bl_json_kind kind, const char *value)
{
    xrun *r = user;
    leaf *l = bl__grow(r->leaves, &r->cap_leaves, r->n_leaves + 1, sizeof *l);
    if (!l)
        return BL_ENOMEM;
    r->leaves = l;
    size_t n = strlen(path) + 5;
    char *p = malloc(n);
    char *v = strdup(value);
    if (!p || !v) {
        free(p);
        free(v);
        return BL_ENOMEM;
    }
    snprintf(p, n, "cfg.%s", path);
    l[r->n_leaves++] = (leaf){p, kind, v};
    return 0;
}

static int collect_run(void *user, const bl_store_run *r)
{
    exporter *x = user;
    xrun *runs = bl__grow(x->runs, &x->cap, x->n + 1, sizeof *runs);
    if (!runs) {
        x->nomem = true;
        return 1;
    }
    x->runs = runs;
    xrun *o = &x->runs[x->n++];
    memset(o, 0, sizeof *o);
    o->id = r->id;
    o->seed = r->seed;
    const char *s[N_RUN_STRINGS] = {r->experiment, r->label, bl_run_status_name(r->status),
                                    r->stopped_by, r->error, r->config_hash, r->started,
                                    r->ended, r->host, r->batchlab_version};
    for (size_t i = 0; i < N_RUN_STRINGS; i++)
        if (!(o->strings[i] = strdup(s[i])))
            x->nomem = true;
    const double d[N_RUN_NUMBERS] = {
        count_or_nan(r->steps), count_or_nan(r->samples), r->epochs, r->time, r->eval_time,
        r->train_loss, r->train_accuracy, r->val_loss, r->val_accuracy, r->gns, r->test_loss,
        r->test_accuracy, r->time_to_target, count_or_nan(r->steps_to_target),
        count_or_nan(r->steps_to_target_error), count_or_nan(r->samples_to_target),
        r->epochs_to_target, count_or_nan(r->diverged_step), count_or_nan(r->max_batch_used),
        r->wall_time_to_target, r->step_time_median};
    memcpy(o->numbers, d, sizeof d);
    /* A configuration that does not parse gives no cfg. columns (it is shown by 'show'). */
    if (bl_json_flatten(NULL, r->config_json, collect_leaf, o) == BL_ENOMEM)
        x->nomem = true;
    return x->nomem ? 1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted union of every run's cfg. columns (borrowed from the runs' leaves). */
static int cfg_columns(exporter *x)
{
    size_t total = 0;
    for (size_t i = 0; i < x->n; i++)
        total += x->runs[i].n_leaves;
    x->cfg_cols = malloc((total ? total : 1) * sizeof *x->cfg_cols);
    if (!x->cfg_cols)
        return -1;
    for (size_t i = 0; i < x->n; i++)
        for (size_t k = 0; k < x->runs[i].n_leaves; k++)
            x->cfg_cols[x->n_cols++] = x->runs[i].leaves[k].path;
    qsort(x->cfg_cols, x->n_cols, sizeof *x->cfg_cols, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < x->n_cols; i++)
        if (u == 0 || strcmp(x->cfg_cols[u - 1], x->cfg_cols[i]) != 0)
            x->cfg_cols[u++] = x->cfg_cols[i];
    x->n_cols = u;
    return 0;
}

/* ---- writing -------------------------------------------------------------------------------- */

static void csv_field(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Whether a text cell could be read by a spreadsheet as a formula (OWASP, CSV injection): it
 * starts with =, +, -, @, a tab or a carriage return — unless the whole cell is a plain
 * number ("-0.5", "+3", "1e-05"), which a spreadsheet reads as that number. */
static bool formula_like(const char *s)
{
    if (!strchr("=+-@\t\r", s[0]) || !s[0])
        return false;
    char *end;
    double v = strtod(s, &end);
    bool number = end != s && *end == '\0' && isfinite(v) && s[0] != '\t' && s[0] != '\r';
    return !number;
}

/* A text cell: a formula-like one gets a leading ' (shown as text, never evaluated), then
 * quoted as csv_field does. */
static void csv_text_field(FILE *f, const char *s)
{
    if (!formula_like(s)) {
        csv_field(f, s);
        return;
    }
    size_t n = strlen(s) + 2;
    char *t = malloc(n);
    if (!t) {
        fputs("'", f); /* still neutralised: the cell is cut to its quote */
        return;
    }
    snprintf(t, n, "'%s", s);
    csv_field(f, t);
    free(t);
}

static void json_string(FILE *f, const char *s)
{
    bl__sbuf b = {0};
    bl__sb_json_string(&b, s);
    fputs(b.failed ? "null" : b.p, f);
    free(b.p);
}

static void write_row(exporter *x)
{
    FILE *f = x->out;
    if (x->json) {
        fputs(x->rows ? ",\n{" : "\n{", f);
        for (size_t c = 0; c < x->n_names; c++) {
            if (c)
                fputc(',', f);
            json_string(f, x->names[c]);
            fputc(':', f);
            const cell *v = &x->cells[c];
            if (v->kind == V_NULL)
                fputs("null", f);
            else if (v->kind == V_STRING)
                json_string(f, v->text);
            else
                fputs(v->text, f);
        }
        fputc('}', f);
    } else {
        for (size_t c = 0; c < x->n_names; c++) {
            if (c)
                fputc(',', f);
            if (x->cells[c].kind == V_STRING)
                csv_text_field(f, x->cells[c].text);
            else if (x->cells[c].kind != V_NULL)
                csv_field(f, x->cells[c].text);
        }
        fputs("\n", f);
    }
    x->rows++;
}

static void set_number(exporter *x, size_t c, double v)
{
    if (isnan(v) || isinf(v)) {
        x->cells[c] = (cell){V_NULL, NULL};
        return;
    }
    results_number(x->numbuf[c], sizeof x->numbuf[c], v);
    x->cells[c] = (cell){V_NUMBER, x->numbuf[c]};
}

static void set_string(exporter *x, size_t c, const char *s)
{
    x->cells[c] = s && *s ? (cell){V_STRING, s} : (cell){V_NULL, NULL};
}

static int write_point(void *user, int64_t run_id, const bl_eval_point *p)
{
    exporter *x = user;
    (void)run_id;
    const double v[N_POINT_COLS] = {(double)p->step, (double)p->samples, p->epoch, p->wall,
                                    (double)p->batch, p->lr, p->train_loss, p->train_accuracy,
                                    p->val_loss, p->val_accuracy, p->gns, p->samples_per_sec};
    for (size_t i = 0; i < N_POINT_COLS; i++)
        set_number(x, FIRST_POINT_COL + i, v[i]);
    write_row(x);
    return ferror(x->out) ? 1 : 0;
}

/* Fills the run's and its configuration's cells; they stay for each of its points. */
static void fill_run_cells(exporter *x, const xrun *r)
{
    size_t c = 0;
    set_number(x, c++, (double)r->id);
    snprintf(x->numbuf[c], sizeof x->numbuf[c], "%llu", (unsigned long long)r->seed);
    x->cells[c] = (cell){V_NUMBER, x->numbuf[c]};
    c++;
    for (size_t i = 0; i < N_RUN_STRINGS; i++)
        set_string(x, c++, r->strings[i]);
    for (size_t i = 0; i < N_RUN_NUMBERS; i++)
        set_number(x, c++, r->numbers[i]);
    c += N_POINT_COLS;
    for (size_t k = 0; k < x->n_cols; k++, c++) {
        x->cells[c] = (cell){V_NULL, NULL};
        for (size_t i = 0; i < r->n_leaves; i++) {
            const leaf *l = &r->leaves[i];
            if (strcmp(l->path, x->cfg_cols[k]) != 0)
                continue;
            if (l->kind != BL_JSON_NULL)
                x->cells[c] = (cell){l->kind == BL_JSON_STRING   ? V_STRING
                                     : l->kind == BL_JSON_NUMBER ? V_NUMBER
                                                                 : V_RAW,
                                     l->value};
            break;
        }
    }
}

static int build_names(exporter *x)
{
    size_t n = FIRST_POINT_COL + N_POINT_COLS + x->n_cols, c = 0;
    x->names = malloc(n * sizeof *x->names);
    x->cells = calloc(n, sizeof *x->cells);
    x->numbuf = calloc(n, sizeof *x->numbuf);
    if (!x->names || !x->cells || !x->numbuf)
        return -1;
    x->names[c++] = "run_id";
    x->names[c++] = "seed";
    for (size_t i = 0; i < N_RUN_STRINGS; i++)
        x->names[c++] = run_string_names[i];
    for (size_t i = 0; i < N_RUN_NUMBERS; i++)
        x->names[c++] = run_number_names[i];
    for (size_t i = 0; i < N_POINT_COLS; i++)
        x->names[c++] = point_names[i];
    for (size_t k = 0; k < x->n_cols; k++)
        x->names[c++] = x->cfg_cols[k];
    x->n_names = c;
    return 0;
}

static void free_exporter(exporter *x)
{
    for (size_t i = 0; i < x->n; i++) {
        for (size_t k = 0; k < N_RUN_STRINGS; k++)
            free(x->runs[i].strings[k]);
        for (size_t k = 0; k < x->runs[i].n_leaves; k++) {
            free(x->runs[i].leaves[k].path);
            free(x->runs[i].leaves[k].value);
        }
        free(x->runs[i].leaves);
    }
    free(x->runs);
    free(x->cfg_cols);
    free(x->names);
    free(x->cells);
    free(x->numbuf);
}

/* Writes everything to x->out; returns CLI_OK or CLI_FAILED (printed). */
static int write_all(bl_ctx *ctx, bl_store *store, exporter *x)
{
    if (x->json) {
        fputc('[', x->out);
    } else {
        for (size_t c = 0; c < x->n_names; c++) {
            if (c)
                fputc(',', x->out);
            csv_field(x->out, x->names[c]);
        }
        fputs("\n", x->out);
    }
    for (size_t i = 0; i < x->n; i++) {
        fill_run_cells(x, &x->runs[i]);
        size_t before = x->rows;
        int rc = bl_store_list_points(ctx, store, x->runs[i].id, write_point, x);
        if (rc < 0)
            return cli_fail(ctx);
        if (rc > 0)
            break; /* a write error: reported below */
        if (x->rows == before) {     /* a run without points (failed at once): one row */
            for (size_t c = 0; c < N_POINT_COLS; c++)
                x->cells[FIRST_POINT_COL + c] = (cell){V_NULL, NULL};
            write_row(x);
        }
    }
    if (x->json)
        fputs(x->rows ? "\n]\n" : "]\n", x->out);
    if (ferror(x->out) || fflush(x->out) != 0) {
        cli_error("cannot write '%s': %s", x->out_name, strerror(errno ? errno : EIO));
        return CLI_FAILED;
    }
    return CLI_OK;
}

int cmd_export(int argc, char **argv)
{
    const char *db = bl_store_default_path(), *experiment = NULL, *format = "csv";
    const char *output = NULL;
    const cli_value_flag flags[] = {{"db", 0, &db},
                                    {"experiment", 0, &experiment},
                                    {"format", 0, &format},
                                    {"output", 'o', &output},
                                    {0}};
    int first = 0;
    int parsed = cli_getopt_values("export", argc, argv, flags, CLI_UNKNOWN_IS_ARGUMENT, usage,
                                   &first);
    if (parsed != CLI_CONTINUE)
        return parsed;
    if (first < argc)
        return cli_usage_error("export", "unexpected argument '%s'", argv[first]);
    bool json = strcmp(format, "json") == 0;
    if (!json && strcmp(format, "csv") != 0)
        return cli_usage_error("export", "--format must be csv or json, got '%s'", format);
    if (output && !*output)
        return cli_usage_error("export", "-o needs a file name");
    struct stat so, sd;
    if (output && stat(output, &so) == 0 && stat(db, &sd) == 0 && so.st_dev == sd.st_dev &&
        so.st_ino == sd.st_ino) {
        cli_error("refusing to write the export over the results store '%s' itself; give "
                  "another file with -o", db);
        return CLI_FAILED;
    }

    bl_ctx *ctx = cli_ctx_new();
    if (!ctx)
        return CLI_FAILED;
    bl_store *store = NULL;
    exporter x = {0};
    x.json = json;
    bl__outfile file = {0};
    int status = results_open(ctx, db, &store);
    if (status == CLI_OK) {
        int rc = bl_store_list_runs(ctx, store, experiment, collect_run, &x);
        if (x.nomem || (rc == BL_OK && (cfg_columns(&x) != 0 || build_names(&x) != 0))) {
            cli_error("out of memory exporting '%s'", db);
            status = CLI_FAILED;
        } else if (rc != BL_OK) {
            status = cli_fail(ctx);
        }
    }
    /* Only once the store is open and read: a store that fails leaves -o FILE untouched. */
    if (status == CLI_OK) {
        if (output) {
            if (bl__outfile_open(ctx, output, &file) != BL_OK)
                status = cli_fail(ctx);
            x.out = file.f;
            x.out_name = output;
        } else {
            x.out = stdout;
            x.out_name = "standard output";
        }
    }
    if (status == CLI_OK)
        status = write_all(ctx, store, &x);
    if (file.f) {
        if (status == CLI_OK && bl__outfile_commit(ctx, &file) != BL_OK)
            status = cli_fail(ctx);
        bl__outfile_abort(&file); /* after a failure: the temporary file goes, FILE stays */
    }
    if (status == CLI_OK && output)
        fprintf(stderr, "batchlab: wrote %zu row%s from %zu run%s to '%s'\n", x.rows,
                x.rows == 1 ? "" : "s", x.n, x.n == 1 ? "" : "s", output);
    free_exporter(&x);
    bl_store_close(store);
    bl_ctx_free(ctx);
    return status;
}

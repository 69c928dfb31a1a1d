/* batchlab report: one self-contained HTML page about the runs of an experiment — curves,
 * steps and time to target against the batch size, a sortable table and the recommendation
 * (batchlab/report.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "batchlab/report.h"
#include "batchlab/run_spec.h"
#include "cmd_results.h"
#include "signals.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab report [--db FILE] [--experiment NAME]\n"
            "                       [--target VALUE [--target-metric METRIC]] [--title TEXT]\n"
            "                       [--watch [--interval SECONDS]] -o FILE\n"
            "\n"
            "Writes one self-contained HTML page (inline SVG charts, no network needed) about\n"
            "the runs of an experiment: training loss against samples seen, steps and wall\n"
            "time (a spike is clipped and marked), validation accuracy, the batch size and\n"
            "learning rate over training, steps and time to target against the batch size\n"
            "(log-log, with the\n"
            "perfect-scaling line, the fit S(B) = S_min + E_min/B and the critical batch\n"
            "size), final accuracy against the batch size over seeds, the gradient noise\n"
            "scale when measured, a sortable table of the runs and the recommended batch size\n"
            "with its reasons. Values show on hover. Runs that recorded different targets\n"
            "are all measured against the strictest, so no median mixes targets.\n"
            "\n"
            "options:\n"
            "  --db FILE             the results store (default: $BATCHLAB_DB, else batchlab.db)\n"
            "  --experiment NAME     the experiment to report on (needed when the store holds\n"
            "                        several); --experiment '' reports on the runs outside\n"
            "                        any experiment\n"
            "  --target VALUE        measure steps and time to this value of the target metric\n"
            "                        (default: the targets recorded with the runs, if any)\n"
            "  --target-metric NAME  val_accuracy (default) or train_accuracy, reached at\n"
            "                        >= VALUE; val_loss or train_loss, reached at <= VALUE\n"
            "  --title TEXT          the page's heading (default: from the experiment)\n"
            "  -o, --output FILE     the HTML file to write ('-' for standard output)\n"
            "  --watch               keep rewriting FILE (atomically) while a sweep writes the\n"
            "                        store, the page reloading itself; stop with Ctrl-C or\n"
            "                        SIGTERM (exit status 0)\n"
            "  --interval SECONDS    how often --watch rewrites the page (default 5)\n");
}

/* Parses a finite number; false when `s` is not one. */
static bool parse_number(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* Sleeps `seconds`, waking early when a stop signal comes. */
static void nap(double seconds)
{
    struct timespec left = {.tv_sec = (time_t)seconds,
                            .tv_nsec = (long)((seconds - floor(seconds)) * 1e9)};
    while (!cli_interrupted && nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
}

/* --watch: rewrites the page every `interval` seconds until a stop signal. A store without
 * runs yet (the sweep has not begun) is waited for; any other error ends the watch. */
static int watch(bl_ctx *ctx, bl_store *store, bl_report_options *opts, const char *output,
                 double interval)
{
    opts->refresh_seconds = interval < 1 ? 1 : (int)ceil(interval);
    int status = CLI_OK;
    bool waiting = false, written = false;
    cli_signals_install();
    while (!cli_interrupted) {
        int rc = bl_report_write_file(ctx, store, opts, output);
        if (rc == BL_ENOTFOUND && !written) {
            if (!waiting)
                fprintf(stderr, "batchlab report: %s; waiting for runs\n", bl_errmsg(ctx));
            waiting = true;
            bl_clear_error(ctx);
        } else if (rc != BL_OK) {
            status = cli_fail(ctx);
            break;
        } else if (!written) {
            fprintf(stderr, "batchlab report: watching; '%s' is rewritten every %g s "
                    "(Ctrl-C to stop)\n", output, interval);
            written = true;
        }
        nap(interval);
    }
    cli_signals_restore();
    return status;
}

int cmd_report(int argc, char **argv)
{
    const char *db = bl_store_default_path(), *output = NULL, *target = NULL,
               *metric = NULL, *interval_text = NULL;
    bool watching = false;
    bl_report_options opts = bl_report_defaults();
    const cli_value_flag flags[] = {{"db", 0, &db},
                                    {"experiment", 0, &opts.experiment},
                                    {"target", 0, &target},
                                    {"target-metric", 0, &metric},
                                    {"title", 0, &opts.title},
                                    {"output", 'o', &output},
                                    {"interval", 0, &interval_text},
                                    {0}};
    /* --watch takes no value: taken out before the value flags are parsed. */
    int kept = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--watch") == 0)
            watching = true;
        else
            argv[kept++] = argv[i];
        if (strcmp(argv[i], "--") == 0) {
            while (++i < argc)
                argv[kept++] = argv[i];
        }
    }
    argc = kept;
    int first = 0;
    int parsed = cli_getopt_values("report", argc, argv, flags, CLI_UNKNOWN_IS_ARGUMENT, usage,
                                   &first);
    if (parsed != CLI_CONTINUE)
        return parsed;
    if (first < argc)
        return cli_usage_error("report", "unexpected argument '%s'", argv[first]);
    if (!output || !*output)
        return cli_usage_error("report", "give the HTML file to write with -o FILE ('-' for "
                                         "standard output)");
    if (metric && !target)
        return cli_usage_error("report", "--target-metric needs --target VALUE");
    if (target) {
        opts.has_target = true;
        if (!parse_number(target, &opts.target))
            return cli_usage_error("report", "--target must be a number, got '%s'", target);
    }
    double interval = 5;
    if (interval_text && !watching)
        return cli_usage_error("report", "--interval needs --watch");
    if (interval_text && (!parse_number(interval_text, &interval) || interval < 0.1 ||
                          interval > 86400))
        return cli_usage_error("report", "--interval must be a number of seconds from 0.1 to "
                                         "86400, got '%s'", interval_text);
    if (watching && strcmp(output, "-") == 0)
        return cli_usage_error("report", "--watch rewrites a file: give one with -o FILE");

    bl_ctx *ctx = cli_ctx_new();
    if (!ctx)
        return CLI_FAILED;
    if (metric && bl_metric_parse(ctx, metric, &opts.target_metric) != BL_OK) {
        cli_usage_error("report", "--target-metric: %s", bl_errmsg(ctx));
        bl_ctx_free(ctx);
        return CLI_USAGE;
    }
    if (target && bl_run_spec_check_target(ctx, opts.target_metric, opts.target) != BL_OK) {
        cli_usage_error("report", "--%s", bl_errmsg(ctx));   /* "--target: ..." */
        bl_ctx_free(ctx);
        return CLI_USAGE;
    }
    bool to_stdout = strcmp(output, "-") == 0;
    struct stat so, sd;
    if (!to_stdout && stat(output, &so) == 0 && stat(db, &sd) == 0 &&
        so.st_dev == sd.st_dev && so.st_ino == sd.st_ino) {
        cli_error("refusing to write the report over the results store '%s' itself; give "
                  "another file with -o", db);
        bl_ctx_free(ctx);
        return CLI_FAILED;
    }
    bl_store *store = NULL;
    int status = results_open(ctx, db, &store);
    if (status == CLI_OK) {
        if (watching) {
            status = watch(ctx, store, &opts, output, interval);
        } else {
            int rc = to_stdout ? bl_report_write(ctx, store, &opts, stdout)
                               : bl_report_write_file(ctx, store, &opts, output);
            if (rc != BL_OK)
                status = cli_fail(ctx);
        }
    }
    bl_store_close(store);
    bl_ctx_free(ctx);
    return status;
}

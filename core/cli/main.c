/* The batchlab command: global options, then dispatch to a subcommand (cmd_<name>.c). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "batchlab/dist.h"

#include "cli.h"
#include "cmd_recommend.h"
#include "cmd_results.h"
#include "cmd_run.h"
#include "cmd_train.h"

typedef struct command {
    const char *name;
    cli_command_fn run;
    const char *summary;
} command;

/* Subcommands, in the order --help lists them. */
static const command commands[] = {
    {"run", cmd_run, "run an experiment script (Lua)"},
    {"train", bl_cli_train, "train one model with one batch size or schedule"},
    {"find-batch", bl_cli_find_batch, "find the largest batch that fits a memory budget"},
    {"recommend", cmd_recommend, "predict the best batch size with a short probe, before a sweep"},
    {"plugins", cmd_plugins, "list the plugins found, or show one plugin's options"},
    {"runs", cmd_runs, "list the runs of a results store"},
    {"show", cmd_show, "show one run: its record, configuration and history"},
    {"export", cmd_export, "export every evaluation point as CSV or JSON"},
    {"report", cmd_report, "write an HTML report with charts and the recommended batch"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab [global options] <command> [options]\n"
            "\n"
            "Find the batch size, or batch-size schedule, that trains your model best.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-18s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "global options:\n"
            "  --plugin-path DIR  search DIR for plugins first (also BATCHLAB_PLUGIN_PATH)\n"
            "  -v, --verbose      more messages (repeat for debug messages)\n"
            "  --version          print the version\n"
            "  --help             print this help\n"
            "\n"
            "'batchlab <command> --help' describes a command.\n");
}

enum { OPT_VERSION = 256, OPT_PLUGIN_PATH };

static const struct option global_options[] = {
    {"version", no_argument, NULL, OPT_VERSION},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"plugin-path", required_argument, NULL, OPT_PLUGIN_PATH},
    {NULL, 0, NULL, 0},
};

static int global_flag(void *user, int id, const char *name, const char *value)
{
    (void)user;
    (void)name;
    switch (id) {
    case OPT_VERSION:
        printf("batchlab %s\n", bl_version());
        return CLI_OK;
    case 'h':
        print_usage(stdout);
        return CLI_OK;
    case 'v':
        cli_verbosity++;
        return CLI_CONTINUE;
    case OPT_PLUGIN_PATH:
        return cli_add_plugin_path(value) == CLI_OK ? CLI_CONTINUE : CLI_FAILED;
    default:
        return CLI_USAGE;
    }
}

/* Runs a command, under MPI when an MPI launcher started this process, or with the local
 * workers that `run --workers` starts (docs/distributed.md): only rank 0 writes to stdout (the
 * other ranks' stdout goes to /dev/null, their progress is off; errors still reach stderr). A
 * rank that ends with an error while the others may wait for it ends the whole job
 * (bl_dist_abort); a failed run is a result, not such an error. Rank 0 of local workers waits
 * for them and, when it succeeded itself, exits with the status of a worker that failed. */
static int run_command(const command *cmd, int argc, char **argv)
{
    bl_ctx *ctx = bl_ctx_new();
    if (!ctx || bl_dist_init(ctx) != BL_OK) {
        fprintf(stderr, "batchlab: %s\n", ctx ? bl_errmsg(ctx) : "out of memory");
        bl_ctx_free(ctx);
        return CLI_FAILED;
    }
    bl_ctx_free(ctx);
    cli_quiet_other_ranks();
    int status = cmd->run(argc, argv);
    if (bl_dist_size() > 1 && status != CLI_OK && status != CLI_EXIT_RUN_FAILED) {
        fflush(NULL);
        bl_dist_abort(status);
    } else if ((ctx = bl_ctx_new()) != NULL) {
        int worker_status = 0;
        if (bl_dist_wait_workers(ctx, &worker_status) != BL_OK) {
            fprintf(stderr, "batchlab: %s\n", bl_errmsg(ctx));
            if (status == CLI_OK) /* rank 0's own failure status wins */
                status = worker_status ? worker_status : CLI_FAILED;
        }
        bl_ctx_free(ctx);
    }
    bl_dist_finalize();
    return status;
}

int main(int argc, char **argv)
{
    int i = 1;
    int status = cli_getopt("", argc, argv, "vh", global_options, 0, global_flag, NULL, &i);
    if (status != CLI_CONTINUE)
        return status;
    if (i >= argc) {
        print_usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[i];
    if (strcmp(name, "version") == 0) {
        printf("batchlab %s\n", bl_version());
        return CLI_OK;
    }
    if (strcmp(name, "help") == 0) {
        print_usage(stdout);
        return CLI_OK;
    }
    for (size_t k = 0; k < N_COMMANDS; k++)
        if (strcmp(name, commands[k].name) == 0)
            return run_command(&commands[k], argc - i, argv + i);

    const char *names[N_COMMANDS];
    for (size_t k = 0; k < N_COMMANDS; k++)
        names[k] = commands[k].name;
    const char *near = bl_nearest_name(name, names, N_COMMANDS);
    if (near)
        fprintf(stderr, "batchlab: unknown command '%s'; did you mean '%s'? (see 'batchlab "
                        "--help')\n",
                name, near);
    else
        fprintf(stderr, "batchlab: unknown command '%s' (see 'batchlab --help')\n", name);
    return CLI_USAGE;
}

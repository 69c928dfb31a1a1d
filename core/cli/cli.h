/* The batchlab command: subcommands and the helpers they share (messages, logging, options).
 * Conventions: a subcommand gets argv with argv[0] = its own name and returns the process exit
 * status: 0 success, 1 failure (the message is already printed), 2 bad usage. */
#ifndef BATCHLAB_CLI_H
#define BATCHLAB_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "batchlab/batchlab.h"

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };
/* `batchlab run --fail-on-error`: the script ran, but a run failed. */
enum { CLI_EXIT_RUN_FAILED = 3 };

typedef int (*cli_command_fn)(int argc, char **argv);

/* ---- subcommands (one file each: cmd_<name>.c) ---------------------------------------------- */
int cmd_plugins(int argc, char **argv);
int cmd_report(int argc, char **argv);

/* ---- shared helpers (cli_common.c) ---------------------------------------------------------- */

/* 0: warnings only; 1: also information (-v); 2: also debug messages (-vv). */
extern int cli_verbosity;

/* "batchlab: error: <message>" and "batchlab: warning: <message>" on stderr. */
void cli_error(const char *fmt, ...) BL_PRINTF(1, 2);
void cli_warn(const char *fmt, ...) BL_PRINTF(1, 2);
/* The context's last error as cli_error; returns CLI_FAILED. */
int cli_fail(const bl_ctx *ctx);
/* "batchlab <cmd>: <message>" plus a hint to --help, on stderr; returns CLI_USAGE. An empty
 * `cmd` stands for the global options. */
int cli_usage_error(const char *cmd, const char *fmt, ...) BL_PRINTF(2, 3);

/* Text from outside (a run's label, an experiment name, a stored error) made safe for a
 * terminal: control characters, C1 controls and invalid UTF-8 as \xHH (bl__sb_term_text), so a
 * name cannot inject escape sequences. Every print of such text goes through these (the
 * messages of cli_error, cli_warn, cli_fail and cli_log too, where line breaks may stay).
 * cli_term_dup returns a malloc'd copy (NULL when memory runs out); cli_term_print writes to
 * `out`. */
char *cli_term_dup(const char *s);
void cli_term_print(FILE *out, const char *s);

/* A bl_log_fn printing warnings as "batchlab: warning: ..." on stderr, and information and
 * debug messages as "batchlab: ..." when cli_verbosity asks for them. `user` is unused. */
void cli_log(void *user, bl_log_level level, const char *message);

/* Several processes (MPI ranks, local workers): every rank but 0 writes its stdout to
 * /dev/null (its errors still reach stderr). */
void cli_quiet_other_ranks(void);

/* A new context with cli_log installed; NULL (after printing why) when memory is exhausted. */
bl_ctx *cli_ctx_new(void);

/* Adds `dir` to the plugin search path of this process (BATCHLAB_PLUGIN_PATH): directories
 * given this way come first, in the order given, before what the environment had. Returns
 * CLI_OK or CLI_FAILED (printed). */
int cli_add_plugin_path(const char *dir);

/* Flag parsing with getopt_long (cli_getopt.c). `fn` gets each flag: `id` is getopt's value
 * (the short letter, or the long option's `val`), `name` the long name used (NULL for a short
 * flag), `value` the argument or NULL; it returns CLI_CONTINUE to go on, or an exit status to
 * stop with (after printing what it must). Unknown flags ("unknown option '--bogus'; did you
 * mean '--batch'? (see 'batchlab train --help')") and missing values are usage errors
 * (CLI_USAGE, printed). Parsing stops at the first operand or "--"; on success returns
 * CLI_CONTINUE with *first_arg = the index of the first operand. */
enum { CLI_CONTINUE = -1 };
enum {
    CLI_OPERANDS_ANYWHERE = 1u << 0,  /* operands may come between flags (show 3 --db F) */
    CLI_UNKNOWN_IS_ARGUMENT = 1u << 1 /* say "unexpected argument '--x'" for unknown flags */
};
struct option;
typedef int (*cli_flag_fn)(void *user, int id, const char *name, const char *value);
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts, unsigned flags, cli_flag_fn fn, void *user,
               int *first_arg);

/* For commands whose flags each store their value: --NAME VALUE (or -S VALUE) sets *slot;
 * -h/--help prints `usage` on stdout and returns CLI_OK. Other returns as cli_getopt. */
typedef struct cli_value_flag {
    const char *name;        /* long name without "--"; NULL ends the array */
    char short_name;         /* 0 = none */
    const char **slot;
} cli_value_flag;
int cli_getopt_values(const char *cmd, int argc, char **argv, const cli_value_flag *flags,
                      unsigned opts, void (*usage)(FILE *out), int *first_arg);

#endif

/* The subcommands that read the results store: batchlab runs, show (cmd_results.c) and
 * export (cmd_export.c), and what they share. */
#ifndef BATCHLAB_CLI_CMD_RESULTS_H
#define BATCHLAB_CLI_CMD_RESULTS_H

#include <stddef.h>

#include "batchlab/json.h"
#include "batchlab/store.h"
#include "cli.h"

int cmd_runs(int argc, char **argv);   /* argv[0] = "runs" */
int cmd_show(int argc, char **argv);   /* argv[0] = "show" */
int cmd_export(int argc, char **argv); /* argv[0] = "export" */

/* Opens the store at `path` for a reading command: it must exist; it is opened read-only when
 * the file is not writable, and otherwise runs left "running" by processes that are gone are
 * marked interrupted first (a failure there is only a warning). On failure prints the message
 * (naming the file) and returns CLI_FAILED. */
int results_open(bl_ctx *ctx, const char *path, bl_store **out);

/* `v` in the fewest digits that read back exactly ("0.1", "1e-05", "123"); "" for NaN. */
void results_number(char *buf, size_t cap, double v);

#endif

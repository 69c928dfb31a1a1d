/* batchlab run: runs an experiment script in an embedded Lua 5.4. */
#ifndef BATCHLAB_CLI_CMD_RUN_H
#define BATCHLAB_CLI_CMD_RUN_H

/* argv[0] = "run"; returns the exit status: 0 success, 1 a Lua error (message and traceback
 * printed), 2 bad usage, 130 interrupted (Ctrl-C). */
int cmd_run(int argc, char **argv);

#endif

/* batchlab run: runs an experiment script in an embedded Lua 5.4. */
#ifndef BATCHLAB_CLI_CMD_RUN_H
#define BATCHLAB_CLI_CMD_RUN_H

/* argv[0] = "run"; returns the exit status: 0 success, 1 a Lua error (message and traceback
 * printed), 2 bad usage, 130 interrupted (Ctrl-C). */
int cmd_run(int argc, char **argv);

/* Sets up a new Lua state as `batchlab run` does, for a command that runs a script of its own
 * (batchlab recommend): the standard libraries, "batchlab" preloaded, package.path for the
 * script argv[script] (0: no script) and the global `arg` from argv[0 .. argc) (argv[0] is
 * "batchlab"). Call inside a protected call; raises on out-of-memory. */
struct lua_State;
void cli_lua_prepare(struct lua_State *L, int argc, char **argv, int script);

#endif

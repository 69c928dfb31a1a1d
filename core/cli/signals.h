/* Stop requests for every command: SIGINT (Ctrl-C), SIGTERM (kill, timeout(1), Slurm, service
 * managers) and SIGHUP (the terminal went away) are handled alike. The first sets a flag (a run
 * ends after its current step and is recorded as interrupted) and says so on stderr; a second
 * one exits at once with status 128 + the first signal's number (130, 143, 129) — unless an
 * isolated sweep is supervising a child process (cli_supervising), which then kills the child,
 * records the run and returns "interrupted" itself. One sigaction-based piece, installed around
 * the work and restored after. */
#ifndef BATCHLAB_CLI_SIGNALS_H
#define BATCHLAB_CLI_SIGNALS_H

#include <signal.h>

enum { CLI_EXIT_INTERRUPTED = 130 };

/* How many stop signals came (0, 1, or 2 for "two or more"). Give it to bl_train / the Lua
 * module as the interrupt flag (non-zero: stop). */
extern volatile sig_atomic_t cli_interrupted;
/* Set (by the Lua module, see bl_lua_set_supervising) while a supervisor waits on a child
 * process: a second signal is then left to it instead of exiting here. */
extern volatile sig_atomic_t cli_supervising;

/* Clears the flags and installs the handler for SIGINT, SIGTERM and SIGHUP (sigaction),
 * remembering the previous ones. */
void cli_signals_install(void);
/* Restores the handlers that were there before cli_signals_install. */
void cli_signals_restore(void);
/* The exit status of a command ended by a stop signal: 128 + the first signal's number, or
 * CLI_EXIT_INTERRUPTED when none came. */
int cli_signals_exit_status(void);

#endif

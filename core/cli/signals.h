/* Ctrl-C for every command: the first SIGINT sets a flag (a run ends after its current step,
 * and is recorded as interrupted), and says so on stderr; a second one exits at once with
 * status 130. One sigaction-based piece, installed around the work and restored after. */
#ifndef BATCHLAB_CLI_SIGNALS_H
#define BATCHLAB_CLI_SIGNALS_H

#include <signal.h>

enum { CLI_EXIT_INTERRUPTED = 130 };

/* The flag the handler sets (0 until the first SIGINT). Give it to bl_train / the Lua module. */
extern volatile sig_atomic_t cli_interrupted;

/* Clears the flag and installs the handler (sigaction), remembering the previous one. */
void cli_signals_install(void);
/* Restores the handler that was there before cli_signals_install. */
void cli_signals_restore(void);

#endif

/* Ctrl-C handling shared by the commands (signals.h). */
#include <string.h>
#include <unistd.h>

#include "signals.h"

volatile sig_atomic_t cli_interrupted = 0;

static struct sigaction previous;
static int installed;

static void on_sigint(int sig)
{
    (void)sig;
    if (cli_interrupted)
        _exit(CLI_EXIT_INTERRUPTED); /* second Ctrl-C: leave at once */
    cli_interrupted = 1;
    static const char msg[] =
        "\nbatchlab: interrupted; ending the run after this step (Ctrl-C again to quit now)\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)n;
}

void cli_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    cli_interrupted = 0;
    if (sigaction(SIGINT, &sa, &previous) == 0)
        installed = 1;
}

void cli_signals_restore(void)
{
    if (installed)
        sigaction(SIGINT, &previous, NULL);
    installed = 0;
}

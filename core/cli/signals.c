/* Stop signals shared by the commands (signals.h). */
#include <string.h>
#include <unistd.h>

#include "signals.h"

volatile sig_atomic_t cli_interrupted = 0;
volatile sig_atomic_t cli_supervising = 0;
static volatile sig_atomic_t first_signal = 0;

static const int handled[] = {SIGINT, SIGTERM, SIGHUP};
#define N_HANDLED (sizeof handled / sizeof handled[0])
static struct sigaction previous[N_HANDLED];
static int installed;

static void on_signal(int sig)
{
    if (cli_interrupted) {
        if (!cli_supervising)
            _exit(128 + first_signal); /* second signal: leave at once */
        cli_interrupted = 2;           /* the supervisor kills its child and records it */
        return;
    }
    first_signal = sig;
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
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_HANDLED; i++)
        sigaddset(&sa.sa_mask, handled[i]);
    cli_interrupted = 0;
    cli_supervising = 0;
    first_signal = 0;
    installed = 1;
    for (size_t i = 0; i < N_HANDLED; i++)
        if (sigaction(handled[i], &sa, &previous[i]) != 0)
            installed = 0;
}

void cli_signals_restore(void)
{
    if (installed)
        for (size_t i = 0; i < N_HANDLED; i++)
            sigaction(handled[i], &previous[i], NULL);
    installed = 0;
}

int cli_signals_exit_status(void)
{
    return first_signal ? 128 + first_signal : CLI_EXIT_INTERRUPTED;
}

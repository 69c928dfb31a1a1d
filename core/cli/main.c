/* The batchlab command: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "batchlab/batchlab.h"

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab <command> [options]\n"
            "\n"
            "Find the batch size, or batch-size schedule, that trains your model best.\n"
            "\n"
            "commands:\n"
            "  --version          print the version\n"
            "  --help             print this help\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("batchlab %s\n", bl_version());
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    fprintf(stderr, "batchlab: unknown command '%s' (see 'batchlab --help')\n", cmd);
    return 2;
}

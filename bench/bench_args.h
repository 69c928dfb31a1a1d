/* What every benchmark does with its command line: --help prints the usage and exits 0, an
 * option it does not know or a number that is not a positive whole number is refused with
 * exit status 2 (a benchmark that silently ran with a default was mistaken for a measurement
 * of what was asked). Header-only: each benchmark is one file. */
#ifndef BENCH_ARGS_H
#define BENCH_ARGS_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True (after printing `usage` on stdout) when an argument is -h or --help. */
static inline bool bench_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return true;
        }
    return false;
}

/* `text` as a whole number ≥ min; prints "<prog>: <what> must be ..." and returns false. */
static inline bool bench_long(const char *prog, const char *what, const char *text, long min,
                              long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min) {
        fprintf(stderr, "%s: %s must be a whole number ≥ %ld, got '%s'\n", prog, what, min,
                text);
        return false;
    }
    *out = v;
    return true;
}

/* An argument that looks like an option (a positional benchmark takes none). */
static inline bool bench_refuse_options(const char *prog, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "%s: unknown option %s (see --help)\n", prog, argv[i]);
            return true;
        }
    return false;
}

#endif

/* What every benchmark does with its command line: --help prints the usage and exits 0, an
 * option it does not know or a number that is not a positive whole number is refused with
 * exit status 2 (a benchmark that silently ran with a default was mistaken for a measurement
 * of what was asked); the same for lists of numbers and numbers in a range. Header-only: each benchmark is one file. */
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

/* `text` as a number in (lo, hi]; prints "<prog>: <what> must be in (lo, hi], got ..." and
 * returns false. */
static inline bool bench_number(const char *prog, const char *what, const char *text, double lo,
                                double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v > lo && v <= hi)) {
        fprintf(stderr, "%s: %s must be in (%g, %g], got '%s'\n", prog, what, lo, hi, text);
        return false;
    }
    *out = v;
    return true;
}

/* "a,b,c" as 1 to `cap` whole numbers ≥ min into out[]; their count, or -1 after printing
 * what is wrong (a bad number, too many, none). */
static inline int bench_list(const char *prog, const char *what, const char *text, long min,
                             long *out, int cap)
{
    char *copy = strdup(text), *save = NULL;
    if (!copy) {
        fprintf(stderr, "%s: no memory for %s\n", prog, what);
        return -1;
    }
    int n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && n >= 0;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == cap) {
            fprintf(stderr, "%s: at most %d values in %s\n", prog, cap, what);
            n = -1;
        } else if (!bench_long(prog, what, tok, min, &out[n])) {
            n = -1;
        } else {
            n++;
        }
    }
    free(copy);
    if (n == 0) {
        fprintf(stderr, "%s: %s needs at least one value\n", prog, what);
        n = -1;
    }
    return n;
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

/* Flag parsing for every subcommand: getopt_long with the project's messages (cli.h). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The long option nearest to `given` ("--bogus" → "--batch"), or NULL. */
static const char *nearest_flag(const char *given, const struct option *longopts)
{
    size_t n = 0;
    while (longopts[n].name)
        n++;
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names)
        return NULL;
    for (size_t i = 0; i < n; i++)
        names[i] = longopts[i].name;
    char bare[128];
    size_t len = strcspn(given, "=");
    while (len > 0 && *given == '-') {
        given++;
        len--;
    }
    if (len >= sizeof bare)
        len = sizeof bare - 1;
    memcpy(bare, given, len);
    bare[len] = '\0';
    const char *near = bl_nearest_name(bare, names, n);
    free(names);
    return near;
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts, cli_flag_fn fn, void *user, int *first_arg)
{
    char opts[128];
    /* '+': stop at the first operand (run's script arguments are its own); ':': we report */
    snprintf(opts, sizeof opts, "+:%s", shortopts ? shortopts : "");
#ifdef __GLIBC__
    optind = 0; /* full reinitialisation */
#else
    optind = 1;
#endif
    opterr = 0;
    int c, index, at;
    while ((at = optind > 0 ? optind : 1, index = -1,
            c = getopt_long(argc, argv, opts, longopts, &index)) != -1) {
        /* the flag itself (getopt has moved past its value, if separate) */
        const char *arg = at < argc ? argv[at] : argv[optind - 1];
        /* no abbreviations: "--epoch" is not "--epochs" (the same rule as bl.train's keys) */
        if (index >= 0 && strncmp(arg, "--", 2) == 0) {
            size_t n = strcspn(arg + 2, "=");
            if (n != strlen(longopts[index].name) ||
                strncmp(arg + 2, longopts[index].name, n) != 0)
                c = '?';
        }
        if (c == '?') {
            if (optopt && optopt < 256 && index < 0 && strncmp(arg, "--", 2) != 0)
                return cli_usage_error(cmd, "unknown option '-%c'", optopt);
            const char *near = nearest_flag(arg, longopts);
            char given[128];
            snprintf(given, sizeof given, "%.*s", (int)strcspn(arg, "="), arg);
            if (near)
                return cli_usage_error(cmd, "unknown option '%s'; did you mean '--%s'?", given,
                                       near);
            return cli_usage_error(cmd, "unknown option '%s'", given);
        }
        if (c == ':') {
            if (optopt && optopt < 256 && strncmp(arg, "--", 2) != 0)
                return cli_usage_error(cmd, "-%c needs a value", optopt);
            return cli_usage_error(cmd, "%.*s needs a value", (int)strcspn(arg, "="), arg);
        }
        const char *name = index >= 0 ? longopts[index].name : NULL;
        int status = fn(user, c, name, optarg);
        if (status != CLI_CONTINUE)
            return status;
    }
    *first_arg = optind;
    return CLI_CONTINUE;
}

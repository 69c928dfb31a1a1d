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
               const struct option *longopts, unsigned flags, cli_flag_fn fn, void *user,
               int *first_arg)
{
    char opts[128];
    /* '+': stop at the first operand (run's script arguments are its own), unless operands
     * may come anywhere (getopt then moves them to the end); ':': we report */
    snprintf(opts, sizeof opts, "%s:%s", flags & CLI_OPERANDS_ANYWHERE ? "" : "+",
             shortopts ? shortopts : "");
    const char *unknown = flags & CLI_UNKNOWN_IS_ARGUMENT ? "unexpected argument"
                                                          : "unknown option";
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
                return cli_usage_error(cmd, "%s '-%c'", unknown, optopt);
            const char *near = nearest_flag(arg, longopts);
            char given[128];
            snprintf(given, sizeof given, "%.*s", (int)strcspn(arg, "="), arg);
            if (near)
                return cli_usage_error(cmd, "%s '%s'; did you mean '--%s'?", unknown, given,
                                       near);
            return cli_usage_error(cmd, "%s '%s'", unknown, given);
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

/* ---- commands whose flags each store a value ------------------------------------------------- */

typedef struct values {
    const cli_value_flag *flags;
    void (*usage)(FILE *out);
} values;

static int store_value(void *user, int id, const char *name, const char *value)
{
    (void)name;
    values *v = user;
    if (id == 'h') {
        v->usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; v->flags[i].name; i++)
        if (id == 256 + (int)i || (v->flags[i].short_name && id == v->flags[i].short_name)) {
            *v->flags[i].slot = value;
            return CLI_CONTINUE;
        }
    return CLI_USAGE;
}

int cli_getopt_values(const char *cmd, int argc, char **argv, const cli_value_flag *flags,
                      unsigned opts, void (*usage)(FILE *out), int *first_arg)
{
    struct option longopts[32];
    char shortopts[64] = "h";
    size_t n = 0, s = 1;
    for (; flags[n].name && n < 30; n++) {
        longopts[n] = (struct option){flags[n].name, required_argument, NULL, 256 + (int)n};
        if (flags[n].short_name && s + 2 < sizeof shortopts) {
            shortopts[s++] = flags[n].short_name;
            shortopts[s++] = ':';
            shortopts[s] = '\0';
        }
    }
    longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n] = (struct option){NULL, 0, NULL, 0};
    values v = {flags, usage};
    return cli_getopt(cmd, argc, argv, shortopts, longopts, opts, store_value, &v, first_arg);
}

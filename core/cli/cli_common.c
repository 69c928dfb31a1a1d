/* Helpers shared by the batchlab subcommands (see cli.h). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "batchlab/dist.h"
#include "cli.h"

int cli_verbosity = 0;

/* `s` escaped for a terminal into a new buffer (NULL when memory runs out). */
static char *term_text(const char *s, bool multiline)
{
    bl__sbuf b = {0};
    bl__sb_term_text(&b, s ? s : "", multiline);
    bl__sb_putn(&b, "", 0); /* an empty text still gets its NUL */
    if (b.failed || !b.p) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *cli_term_dup(const char *s)
{
    return term_text(s, false);
}

void cli_term_print(FILE *out, const char *s)
{
    char *t = term_text(s, false);
    fputs(t ? t : "?", out);
    free(t);
}

/* "batchlab: <kind><message>\n" on stderr, the message escaped for the terminal (line
 * breaks kept). */
static void put_message(const char *kind, const char *message)
{
    char *t = term_text(message, true);
    fprintf(stderr, "batchlab: %s%s\n", kind, t ? t : message);
    free(t);
}

static void vmessage(const char *kind, const char *fmt, va_list ap)
{
    bl__sbuf b = {0};
    bl__sb_vprintf(&b, fmt, ap);
    put_message(kind, b.p && !b.failed ? b.p : "out of memory formatting a message");
    free(b.p);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("error: ", fmt, ap);
    va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("warning: ", fmt, ap);
    va_end(ap);
}

int cli_fail(const bl_ctx *ctx)
{
    const char *msg = bl_errmsg(ctx);
    cli_error("%s", msg[0] ? msg : bl_strerror(bl_errcode(ctx)));
    return CLI_FAILED;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    const char *sep = cmd[0] ? " " : "";
    va_start(ap, fmt);
    fprintf(stderr, "batchlab%s%s: ", sep, cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'batchlab%s%s --help')\n", sep, cmd);
    va_end(ap);
    return CLI_USAGE;
}

void cli_log(void *user, bl_log_level level, const char *message)
{
    (void)user;
    if (level >= BL_LOG_WARN)
        put_message("warning: ", message);
    else if ((level == BL_LOG_INFO && cli_verbosity >= 1) || cli_verbosity >= 2)
        put_message("", message);
}

bl_ctx *cli_ctx_new(void)
{
    bl_ctx *ctx = bl_ctx_new();
    if (!ctx) {
        cli_error("out of memory");
        return NULL;
    }
    bl_ctx_set_log(ctx, cli_log, NULL);
    return ctx;
}

int cli_add_plugin_path(const char *dir)
{
    /* The directories given so far, in order, then the BATCHLAB_PLUGIN_PATH the process
     * started with: the first --plugin-path is searched first. */
    static char *given;
    static const char *original;
    static bool saved;
    if (!saved) {
        original = getenv("BATCHLAB_PLUGIN_PATH");
        original = original ? strdup(original) : NULL;
        saved = true;
    }
    size_t n = (given ? strlen(given) + 1 : 0) + strlen(dir) + 1;
    char *more = malloc(n);
    if (!more) {
        cli_error("out of memory");
        return CLI_FAILED;
    }
    snprintf(more, n, "%s%s%s", given ? given : "", given ? ":" : "", dir);
    free(given);
    given = more;
    size_t m = strlen(given) + (original ? strlen(original) : 0) + 2;
    char *joined = malloc(m);
    if (!joined) {
        cli_error("out of memory");
        return CLI_FAILED;
    }
    snprintf(joined, m, "%s%s%s", given, original && *original ? ":" : "",
             original && *original ? original : "");
    int rc = setenv("BATCHLAB_PLUGIN_PATH", joined, 1);
    free(joined);
    if (rc != 0) {
        cli_error("cannot set BATCHLAB_PLUGIN_PATH");
        return CLI_FAILED;
    }
    return CLI_OK;
}

void cli_quiet_other_ranks(void)
{
    if (bl_dist_rank() != 0 && !freopen("/dev/null", "w", stdout))
        fprintf(stderr, "batchlab: rank %d: cannot silence stdout\n", bl_dist_rank());
}

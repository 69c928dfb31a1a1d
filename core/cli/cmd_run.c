/* batchlab run [options] SCRIPT.lua [ARGS...] | batchlab run -e CODE
 *
 * Runs a script in a Lua 5.4 with the standard libraries, as the stock `lua` interpreter
 * would: ARGS in the global `arg` (arg[0] = the script, negative indices for the command and
 * its options) and as the chunk's `...`. `require "batchlab"` gives the C module (preloaded);
 * package.path looks first in the script's directory, then in each directory of
 * BATCHLAB_PATH, then in the build tree's and the installed scripts/ directories, so
 * `require "batchlab.schedules"` works from anywhere.
 *
 * A run that fails or diverges is announced on stderr as it ends (by the Lua module), and
 * when the script is over a summary lists them. Exit status: 0 the script ran to its end
 * (failed runs are results: they are reported, not fatal); 1 a Lua error (printed as
 * "batchlab: script.lua:LINE: message", with a traceback when it is useful) or a batchlab
 * error; 2 bad usage; 3 --fail-on-error (or BATCHLAB_FAIL_ON_ERROR=1) and at least one run
 * failed; 128 + the signal after a stop signal. The first Ctrl-C (or SIGTERM, SIGHUP) lets
 * the current training run finish its step and end (bl.train then raises "interrupted",
 * which ends the script, exit 130, 143, 129); a second one quits at once (signals.h).
 *
 * --workers N (or BATCHLAB_WORKERS=N) forks N - 1 worker processes before the script starts
 * (bl_dist_init_workers); all N run it as the ranks of an MPI job do (docs/distributed.md):
 * only rank 0 writes to stdout, a sweep's points are shared out. Rank 0 exits with its own
 * status, or with a worker's when rank 0 succeeded and a worker did not (main.c). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "batchlab/dist.h"
#include "batchlab/store.h"
#include "cli.h"
#include "cmd_run.h"
#include "lua/lbl.h"
#include "signals.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab run [options] SCRIPT.lua [ARGS...]\n"
            "       batchlab run [options] -e CODE [SCRIPT.lua [ARGS...]]\n"
            "\n"
            "Runs an experiment script in Lua 5.4 (require \"batchlab\" for the API).\n"
            "ARGS are in the global table `arg` (arg[0] is the script) and in `...`.\n"
            "SCRIPT '-' reads the script from standard input.\n"
            "\n"
            "options:\n"
            "  -e CODE            run CODE first (may be repeated)\n"
            "  --quiet            no progress lines and no warnings from runs\n"
            "  --threads N        CPU threads for training (default: OpenBLAS's, shared out\n"
            "                     among the workers)\n"
            "  --workers N        run the script in N processes on this machine (default 1;\n"
            "                     also BATCHLAB_WORKERS): they share a sweep's runs, as the\n"
            "                     ranks of an MPI job do, and only the first one prints\n"
            "  --tensorboard DIR  event files for every run without its own tensorboard key\n"
            "  --db FILE          the results store every run is recorded in (default:\n"
            "                     $BATCHLAB_DB, else ./batchlab.db); a named sweep resumes\n"
            "  --no-db            record nothing (a run's own db = \"FILE\" still records)\n"
            "  --plugin-path DIR  search DIR for plugins first (also BATCHLAB_PLUGIN_PATH)\n"
            "  --fail-on-error    exit 3 when any run failed (also BATCHLAB_FAIL_ON_ERROR=1)\n"
            "  -h, --help         print this help\n"
            "\n"
            "A failed or diverged run is announced on stderr as it ends, and listed again at\n"
            "the end. Exit status: 0 the script ran to its end, 1 a Lua or batchlab error,\n"
            "2 bad usage, 3 a run failed (with --fail-on-error), 130 interrupted.\n"
            "\n"
            "Lua modules are found in the script's directory, then in BATCHLAB_PATH\n"
            "(':'-separated directories), then in batchlab's own script directory.\n");
}

/* ---- the protected main -------------------------------------------------------------------- */

/* Message handler: the error as a string, with a traceback. */
static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    /* "[C]: in ?" (the host's call) says nothing; a traceback of nothing else (a syntax
     * error, found before anything ran) is left out */
    const char *tb = lua_tostring(L, -1);
    const char *head = strstr(tb, "\nstack traceback:");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, tb, head ? (size_t)(head - tb) : strlen(tb));
    bool frames = false;
    for (const char *line = head ? strchr(head + 1, '\n') : NULL; line;) {
        const char *next = strchr(line + 1, '\n');
        size_t len = next ? (size_t)(next - line) : strlen(line);
        if (!(len == 11 && strncmp(line, "\n\t[C]: in ?", 11) == 0)) {
            if (!frames)
                luaL_addstring(&b, "\nstack traceback:");
            frames = true;
            luaL_addlstring(&b, line, len);
        }
        line = next;
    }
    luaL_pushresult(&b);
    return 1;
}

typedef struct run_args {
    int argc;           /* of the full vector below */
    char **argv;        /* "batchlab", "run", options..., script, args... */
    int script;         /* index of the script in argv, or 0 when there is none */
    const char **code;  /* the -e chunks, in order */
    int n_code;
} run_args;

/* Appends "<dir>/?.lua;<dir>/?/init.lua;" to the buffer at the stack top. */
static void add_dir(luaL_Buffer *b, const char *dir, size_t len)
{
    if (len == 0)
        return;
    while (len > 1 && dir[len - 1] == '/')
        len--;
    for (int i = 0; i < 2; i++) {
        luaL_addlstring(b, dir, len);
        luaL_addstring(b, i == 0 ? "/?.lua;" : "/?/init.lua;");
    }
}

/* package.path = script dir; BATCHLAB_PATH dirs; this libbatchlab's Lua library; default. */
static void set_path(lua_State *L, const char *script)
{
    luaL_Buffer b;
    lua_getglobal(L, "package");                     /* [package] */
    int pkg = lua_gettop(L);
    luaL_buffinit(L, &b);
    if (script && strcmp(script, "-") != 0) {
        const char *slash = strrchr(script, '/');
        if (slash)
            add_dir(&b, script, slash == script ? 1 : (size_t)(slash - script));
        else
            add_dir(&b, ".", 1);
    }
    const char *env = getenv("BATCHLAB_PATH");
    while (env && *env) {
        const char *colon = strchr(env, ':');
        size_t len = colon ? (size_t)(colon - env) : strlen(env);
        add_dir(&b, env, len);
        env = colon ? colon + 1 : NULL;
    }
    const char *lib = bl_lua_script_dir();         /* the install's, or the source tree's */
    add_dir(&b, lib, strlen(lib));
    lua_getfield(L, pkg, "path");                    /* [package, buf..., old] */
    luaL_addvalue(&b);
    luaL_pushresult(&b);                             /* [package, path] */
    lua_setfield(L, pkg, "path");
    lua_pop(L, 1);
}

/* The global `arg`, as lua.c makes it: arg[i - script] = argv[i]. */
static void set_arg(lua_State *L, const run_args *a)
{
    int base = a->script ? a->script : 0;
    lua_createtable(L, a->argc - base - 1, base + 1);
    for (int i = 0; i < a->argc; i++) {
        lua_pushstring(L, a->argv[i]);
        lua_rawseti(L, -2, i - base);
    }
    lua_setglobal(L, "arg");
}

void cli_lua_prepare(lua_State *L, int argc, char **argv, int script)
{
    run_args a = {.argc = argc, .argv = argv, .script = script};
    luaL_checkversion(L);
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_batchlab);
    lua_setfield(L, -2, "batchlab");
    lua_pop(L, 1);
    set_path(L, script ? argv[script] : NULL);
    set_arg(L, &a);
    lua_gc(L, LUA_GCGEN, 0, 0);
}

static int pmain(lua_State *L)
{
    const run_args *a = lua_touserdata(L, 1);
    cli_lua_prepare(L, a->argc, a->argv, a->script);

    for (int i = 0; i < a->n_code; i++) {
        if (luaL_loadbuffer(L, a->code[i], strlen(a->code[i]), "=(command line)") != LUA_OK)
            return lua_error(L);
        lua_call(L, 0, 0);
    }
    if (!a->script)
        return 0;
    const char *script = a->argv[a->script];
    if (luaL_loadfile(L, strcmp(script, "-") == 0 ? NULL : script) != LUA_OK)
        return lua_error(L);
    int n = a->argc - a->script - 1;
    luaL_checkstack(L, n, "too many arguments to the script");
    for (int i = 1; i <= n; i++)
        lua_pushstring(L, a->argv[a->script + i]);
    lua_call(L, n, 0);
    return 0;
}

/* ---- the command --------------------------------------------------------------------------- */

/* The summary of the runs that failed or diverged, on stderr; returns how many failed. */
static size_t print_failures(lua_State *L)
{
    size_t diverged = 0;
    size_t failed = bl_lua_run_failures(L, 0, NULL, &diverged, NULL);
    if (failed + diverged == 0)
        return 0;
    fprintf(stderr, "batchlab: %zu %s did not complete (%zu failed, %zu diverged):\n",
            failed + diverged, failed + diverged == 1 ? "run" : "runs", failed, diverged);
    const char *line = NULL;
    size_t i = 0;
    for (; bl_lua_run_failures(L, i, &line, NULL, NULL), line; i++)
        fprintf(stderr, "  %s\n", line);
    if (i < failed + diverged)
        fprintf(stderr, "  ... and %zu more\n", failed + diverged - i);
    return failed;
}

typedef struct run_flags {
    run_args *a;
    bool quiet, no_db, fail_on_error;
    long threads;
    const char *tensorboard, *db;
    int workers;             /* --workers (0: not given: BATCHLAB_WORKERS, else 1) */
} run_flags;

/* The number of worker processes in `text` (from `what`: the option or the variable), in
 * *out; CLI_CONTINUE, or CLI_USAGE after saying what was expected. */
static int parse_workers(const char *what, const char *text, int *out)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(text, &end, 10);
    if (errno || end == text || *end || n < 1 || n > BL_DIST_MAX_WORKERS)
        return cli_usage_error("run", "%s needs a number of worker processes in [1, %d], got "
                               "'%s'", what, BL_DIST_MAX_WORKERS, text);
    *out = (int)n;
    return CLI_CONTINUE;
}

static int run_flag(void *user, int id, const char *flag, const char *value)
{
    (void)flag;
    run_flags *f = user;
    char *end = NULL;
    switch (id) {
    case 'h': usage(stdout); return CLI_OK;
    case 'e': f->a->code[f->a->n_code++] = value; return CLI_CONTINUE;
    case 'q': f->quiet = true; return CLI_CONTINUE;
    case 'N': f->no_db = true; return CLI_CONTINUE;
    case 'F': f->fail_on_error = true; return CLI_CONTINUE;
    case 'B': f->tensorboard = value; return CLI_CONTINUE;
    case 'D': f->db = value; return CLI_CONTINUE;
    case 'P': return cli_add_plugin_path(value) == CLI_OK ? CLI_CONTINUE : CLI_FAILED;
    case 'W':
        return parse_workers("--workers", value, &f->workers) == CLI_CONTINUE ? CLI_CONTINUE
                                                                              : CLI_USAGE;
    case 'T':
        errno = 0;
        f->threads = strtol(value, &end, 10);
        if (errno || !end || *end || f->threads < 0 || f->threads > 4096)
            return cli_usage_error("run", "--threads needs a count in [0, 4096], got '%s'",
                                   value);
        return CLI_CONTINUE;
    default: return CLI_USAGE;
    }
}

/* --workers N (the option, else BATCHLAB_WORKERS): forks the workers; on return this process
 * is one of them (rank 0: the one that was started). CLI_OK, or the exit status. */
static int start_workers(const run_flags *f, const run_args *a)
{
    const char *what = f->workers ? "--workers" : "BATCHLAB_WORKERS";
    const char *env = getenv("BATCHLAB_WORKERS");
    int workers = f->workers;
    if (!workers && env && *env && parse_workers(what, env, &workers) != CLI_CONTINUE)
        return CLI_USAGE;
    if (workers <= 1)
        return CLI_OK;
    /* under an MPI launch bl_dist_init_workers refuses (BL_EUNSUPPORTED: a usage error) */
    if (a->script && strcmp(a->argv[a->script], "-") == 0)
        return cli_usage_error("run", "%s needs the script in a file (every worker reads it), "
                               "not '-' (standard input)", what);
    bl_ctx *ctx = cli_ctx_new();
    if (!ctx)
        return CLI_FAILED;
    if (bl_dist_init_workers(ctx, workers) != BL_OK) {
        int code = bl_errcode(ctx);
        int status = cli_fail(ctx);
        bl_ctx_free(ctx);
        return code == BL_EUNSUPPORTED ? CLI_USAGE : status;
    }
    bl_ctx_free(ctx);
    cli_quiet_other_ranks();
    return CLI_OK;
}

int cmd_run(int argc, char **argv)
{
    const char *name = "run";
    run_args a = {0};
    a.code = calloc((size_t)argc + 1, sizeof *a.code);
    a.argv = calloc((size_t)argc + 2, sizeof *a.argv);
    if (!a.code || !a.argv) {
        free(a.code);
        free(a.argv);
        cli_error("out of memory");
        return CLI_FAILED;
    }
    a.argv[0] = "batchlab";
    for (int i = 0; i < argc; i++)
        a.argv[i + 1] = argv[i];
    a.argc = argc + 1;

    run_flags f = {.a = &a};
    int i = 0, status = CLI_OK;
    static const struct option flags[] = {{"quiet", no_argument, NULL, 'q'},
                                          {"threads", required_argument, NULL, 'T'},
                                          {"tensorboard", required_argument, NULL, 'B'},
                                          {"db", required_argument, NULL, 'D'},
                                          {"no-db", no_argument, NULL, 'N'},
                                          {"fail-on-error", no_argument, NULL, 'F'},
                                          {"plugin-path", required_argument, NULL, 'P'},
                                          {"workers", required_argument, NULL, 'W'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int parsed = cli_getopt(name, argc, argv, "e:qh", flags, 0, run_flag, &f, &i);
    if (parsed != CLI_CONTINUE) {
        status = parsed;
        goto done;
    }
    bool quiet = f.quiet, no_db = f.no_db;
    long threads = f.threads;
    const char *tensorboard = f.tensorboard, *db = f.db;
    if (i < argc)
        a.script = i + 1;      /* index in a.argv, which has "batchlab" in front */
    else if (a.n_code == 0) {
        status = cli_usage_error(name, "give a script to run (or -e CODE)");
        goto done;
    }
    if (a.script && strcmp(a.argv[a.script], "-") != 0 && access(a.argv[a.script], R_OK) != 0) {
        cli_error("cannot open script '%s': %s", a.argv[a.script], strerror(errno));
        status = CLI_FAILED;
        goto done;
    }

    status = start_workers(&f, &a);
    if (status != CLI_OK)
        goto done;

    lua_State *L = luaL_newstate();
    if (!L) {
        cli_error("cannot create a Lua state: out of memory");
        status = CLI_FAILED;
        goto done;
    }
    cli_signals_install();
    bl_lua_set_interrupt(L, &cli_interrupted);
    bl_lua_set_supervising(L, &cli_supervising);
    bl_lua_set_quiet(L, quiet || bl_dist_rank() != 0);   /* several ranks: rank 0 reports */
    bl_lua_set_threads(L, (int)threads);
    bl_lua_set_tensorboard(L, tensorboard);
    /* Every run of a script is recorded unless asked not to: results are not to be lost. */
    bl_lua_set_db(L, no_db ? NULL : db ? db : bl_store_default_path());

    lua_pushcfunction(L, msghandler);               /* [msgh] */
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &a);
    int rc = lua_pcall(L, 1, 0, 1);
    if (cli_interrupted) {
        fprintf(stderr, "batchlab: interrupted\n");
        status = cli_signals_exit_status();
    } else if (rc != LUA_OK) {
        fprintf(stderr, "batchlab: %s\n", lua_tostring(L, -1));
        status = CLI_FAILED;
    }
    const char *env = getenv("BATCHLAB_FAIL_ON_ERROR");
    bool fail_on_error = f.fail_on_error || (env && *env && strcmp(env, "0") != 0);
    if (print_failures(L) > 0 && fail_on_error && status == CLI_OK)
        status = CLI_EXIT_RUN_FAILED;
    fflush(stdout);
    lua_close(L);
    cli_signals_restore();

done:
    free(a.code);
    free(a.argv);
    return status;
}

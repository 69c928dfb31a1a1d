/* batchlab recommend [options] SCRIPT.lua [ARGS...]
 *
 * A prediction before any sweep: the script returns one configuration — a table of bl.train's
 * keys plus the probe's own (batches, probe_steps, time_steps, rounds, warmup_steps, min_batch,
 * batch_limit, budget, tie; docs/probe.md) — and the command runs bl.probe on it (the one
 * translation of the table, lua/l_probe.c, and the one probe, engine/probe.c), then prints
 * the predicted curve and the sentence, or the whole result as JSON with --json.
 *
 * The script runs as under `batchlab run` (same package.path, `arg` and `...`), with no
 * results store. A script that does not return a table, or whose table bl.probe refuses,
 * fails naming the script (and the key). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "batchlab/lua.h"
#include "base/strbuf.h"
#include "cli.h"
#include "cmd_recommend.h"
#include "cmd_run.h"
#include "signals.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab recommend [options] SCRIPT.lua [ARGS...]\n"
            "\n"
            "Predicts the best batch size before a sweep. SCRIPT returns one configuration:\n"
            "a table of bl.train's keys (dataset, model, batch, optimizer, lr_scaling,\n"
            "target, device, seed, ...), where batch is the batch the gradient noise scale is\n"
            "measured at, plus the probe's own keys (batches, probe_steps, time_steps,\n"
            "rounds, warmup_steps, min_batch, batch_limit, budget, tie). The probe measures\n"
            "the noise scale B_noise over a short run and the step time of each batch, and\n"
            "predicts\n"
            "  steps S(B) = S_min (1 + B_noise/B),  time to target = S(B) x step time(B).\n"
            "See docs/probe.md for what the prediction assumes.\n"
            "\n"
            "  local bl = require \"batchlab\"\n"
            "  return { dataset = bl.dataset(\"synthetic\", {task = \"teacher\",\n"
            "                                                validation = 0.2}),\n"
            "           model = bl.model(\"logreg\"), batch = 32,\n"
            "           optimizer = bl.optim.sgd{lr = 0.01}, target = {val_loss = 1.1} }\n"
            "\n"
            "options:\n"
            "  --json             print the result as JSON on stdout\n"
            "  --quiet            no progress lines\n"
            "  --threads N        CPU threads for training (default: OpenBLAS's)\n"
            "  --plugin-path DIR  search DIR for plugins first (also BATCHLAB_PLUGIN_PATH)\n"
            "  -h, --help         print this help\n");
}

typedef struct rec_args {
    int argc;       /* of argv: "batchlab", "recommend", options..., script, args... */
    char **argv;
    int script;     /* index of the script in argv */
    bool json;
} rec_args;

/* ---- reading the result table ------------------------------------------------------------- */

static double num(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key);
    double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
    lua_pop(L, 1);
    return v;
}

static const char *str(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    lua_pop(L, 1);          /* still referenced by the table */
    return s;
}

static void print_text(lua_State *L, int r)
{
    char a[32], b[32];
    double best = num(L, r, "best");
    printf("%8s %12s %12s %16s %9s\n", "batch", "steps S(B)", "step time", "time to target",
           "relative");
    lua_getfield(L, r, "curve");
    int curve = lua_gettop(L);
    for (lua_Integer i = 1; lua_rawgeti(L, curve, i) == LUA_TTABLE; i++) {
        int p = lua_gettop(L);
        double batch = num(L, p, "batch"), steps = num(L, p, "steps");
        double step_time = num(L, p, "step_time"), time = num(L, p, "time");
        lua_getfield(L, p, "within");
        bool within = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (isfinite(steps))
            snprintf(a, sizeof a, "%.0f", steps);
        else
            snprintf(a, sizeof a, "?");
        if (isfinite(time))
            snprintf(b, sizeof b, "%.3g s", time);
        else
            snprintf(b, sizeof b, "?");
        printf("%8.0f %12s %10.3g ms %16s %9.2f%s\n", batch, a, step_time * 1e3, b,
               num(L, p, "relative_time"),
               batch == best ? "  best" : within ? "  within" : "");
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    printf("\n%s\n", str(L, r, "summary"));
    printf("(the probe took %.3g s)\n", num(L, r, "seconds"));
}

static void json_number_field(bl__sbuf *sb, const char *key, double v, bool comma)
{
    bl__sb_printf(sb, "%s\"%s\":", comma ? "," : "", key);
    bl__sb_json_number(sb, v, 15);
}

static int print_json(lua_State *L, int r)
{
    static const char *const top[] = {"best", "b_noise", "s_min", "noise_batch", "noise_steps",
                                      "noise_steps_to_target", "gns_points", "largest_fit",
                                      "seconds", "tie", NULL};
    static const char *const point[] = {"batch", "steps", "step_time", "time",
                                        "relative_time", "timed_steps", "memory", NULL};
    bl__sbuf sb = {0};
    bl__sb_puts(&sb, "{");
    for (int i = 0; top[i]; i++)
        json_number_field(&sb, top[i], num(L, r, top[i]), i > 0);
    bl__sb_puts(&sb, ",\"s_min_basis\":");
    bl__sb_json_string(&sb, str(L, r, "s_min_basis"));
    bl__sb_puts(&sb, ",\"summary\":");
    bl__sb_json_string(&sb, str(L, r, "summary"));
    bl__sb_puts(&sb, ",\"within\":[");
    lua_getfield(L, r, "within");
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TNUMBER; i++) {
        bl__sb_printf(&sb, "%s%lld", i > 1 ? "," : "", (long long)lua_tointeger(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    bl__sb_puts(&sb, "],\"curve\":[");
    lua_getfield(L, r, "curve");
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TTABLE; i++) {
        int p = lua_gettop(L);
        bl__sb_puts(&sb, i > 1 ? ",{" : "{");
        for (int k = 0; point[k]; k++)
            json_number_field(&sb, point[k], num(L, p, point[k]), k > 0);
        lua_getfield(L, p, "within");
        bl__sb_printf(&sb, ",\"within\":%s}", lua_toboolean(L, -1) ? "true" : "false");
        lua_pop(L, 2);
    }
    lua_pop(L, 2);
    bl__sb_puts(&sb, "]}\n");
    if (sb.failed) {
        free(sb.p);
        return luaL_error(L, "out of memory");
    }
    fputs(sb.p, stdout);
    free(sb.p);
    return 0;
}

/* ---- the protected main -------------------------------------------------------------------- */

static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int pmain(lua_State *L)
{
    const rec_args *a = lua_touserdata(L, 1);
    const char *script = a->argv[a->script];
    cli_lua_prepare(L, a->argc, a->argv, a->script);
    if (luaL_loadfile(L, script) != LUA_OK)
        return lua_error(L);
    int n = a->argc - a->script - 1;
    luaL_checkstack(L, n, "too many arguments to the script");
    for (int i = 1; i <= n; i++)
        lua_pushstring(L, a->argv[a->script + i]);
    lua_call(L, n, 1);                                          /* [ud, cfg] */
    if (!lua_istable(L, -1))
        return luaL_error(L, "%s must return one configuration: a table of bl.train's keys "
                             "(dataset =, model =, batch =, target =, ...), got %s",
                          script, luaL_typename(L, -1));
    lua_getglobal(L, "require");
    lua_pushliteral(L, "batchlab");
    lua_call(L, 1, 1);                                          /* [ud, cfg, bl] */
    lua_getfield(L, -1, "probe");                               /* [ud, cfg, bl, probe] */
    lua_pushvalue(L, 2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {                      /* [ud, cfg, bl, result] */
        const char *msg = lua_tostring(L, -1);
        if (msg && strcmp(msg, "interrupted") == 0)
            return lua_error(L);
        return luaL_error(L, "%s: %s", script, msg ? msg : "(error object is not a string)");
    }
    int r = lua_gettop(L);
    if (a->json)
        return print_json(L, r);
    print_text(L, r);
    return 0;
}

/* ---- the command --------------------------------------------------------------------------- */

typedef struct rec_flags {
    bool json, quiet;
    long threads;
} rec_flags;

static int rec_flag(void *user, int id, const char *flag, const char *value)
{
    (void)flag;
    rec_flags *f = user;
    char *end = NULL;
    switch (id) {
    case 'h': usage(stdout); return CLI_OK;
    case 'J': f->json = true; return CLI_CONTINUE;
    case 'q': f->quiet = true; return CLI_CONTINUE;
    case 'P': return cli_add_plugin_path(value) == CLI_OK ? CLI_CONTINUE : CLI_FAILED;
    case 'T':
        errno = 0;
        f->threads = strtol(value, &end, 10);
        if (errno || !end || *end || f->threads < 0 || f->threads > 4096)
            return cli_usage_error("recommend", "--threads needs a count in [0, 4096], got '%s'",
                                   value);
        return CLI_CONTINUE;
    default: return CLI_USAGE;
    }
}

int cmd_recommend(int argc, char **argv)
{
    static const struct option flags[] = {{"json", no_argument, NULL, 'J'},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {"threads", required_argument, NULL, 'T'},
                                          {"plugin-path", required_argument, NULL, 'P'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    rec_flags f = {0};
    int i = 0;
    int parsed = cli_getopt("recommend", argc, argv, "h", flags, 0, rec_flag, &f, &i);
    if (parsed != CLI_CONTINUE)
        return parsed;
    if (i >= argc)
        return cli_usage_error("recommend", "give a script that returns a configuration");
    if (access(argv[i], R_OK) != 0) {
        cli_error("cannot open script '%s': %s", argv[i], strerror(errno));
        return CLI_FAILED;
    }
    rec_args a = {.argc = argc + 1, .script = i + 1, .json = f.json};
    a.argv = calloc((size_t)argc + 2, sizeof *a.argv);
    if (!a.argv) {
        cli_error("out of memory");
        return CLI_FAILED;
    }
    a.argv[0] = "batchlab";
    for (int k = 0; k < argc; k++)
        a.argv[k + 1] = argv[k];

    lua_State *L = luaL_newstate();
    if (!L) {
        free(a.argv);
        cli_error("cannot create a Lua state: out of memory");
        return CLI_FAILED;
    }
    cli_signals_install();
    bl_lua_set_interrupt(L, &cli_interrupted);
    bl_lua_set_quiet(L, f.quiet);
    bl_lua_set_threads(L, (int)f.threads);
    bl_lua_set_db(L, NULL);     /* the probe's runs are not recorded */
    lua_pushcfunction(L, msghandler);
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &a);
    int rc = lua_pcall(L, 1, 0, 1);
    int status = CLI_OK;
    if (cli_interrupted) {
        fprintf(stderr, "batchlab: interrupted\n");
        status = CLI_EXIT_INTERRUPTED;
    } else if (rc != LUA_OK) {
        fprintf(stderr, "batchlab: %s\n", lua_tostring(L, -1));
        status = CLI_FAILED;
    }
    fflush(stdout);
    lua_close(L);
    cli_signals_restore();
    free(a.argv);
    return status;
}

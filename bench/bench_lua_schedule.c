/* bench_lua_schedule — what a Lua batch schedule costs per training step.
 *
 *   bench_lua_schedule [calls]      (default 2,000,000)
 *
 * Part 1 times the engine's batch callback for a Lua schedule (bl__lua_batch_fn, compiled into
 * this program from core/src/lua/l_callback.c) exactly as bl.train installs it: the state
 * table updated in place, `state.last` refreshed when a new evaluation point appears (here
 * every 1000 calls), the call under lua_pcall with a message handler, the results checked.
 * It also counts the bytes Lua allocated during the calls (the collector stopped), which
 * should be 0. Part 2 is the end-to-end view: bl.train on tiny data with a constant batch and
 * with a trivial Lua function; the difference per step includes the schedule call and noise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "bench_args.h"
#include "batchlab/batchlab.h"
#include "build_config.h"
#include "lua/lbl.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int msgh(lua_State *L)
{
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

/* Times `calls` calls of the schedule made by the Lua expression `expr`. */
static int bench_callback(lua_State *L, bl_ctx *ctx, const char *label, const char *expr,
                          long calls)
{
    int base = lua_gettop(L);
    lbl_job j;
    memset(&j, 0, sizeof j);
    j.L = L;
    j.max_batch = 1 << 20;
    lua_pushcfunction(L, msgh);
    j.msgh = lua_gettop(L);
    char chunk[512];
    snprintf(chunk, sizeof chunk, "return %s", expr);
    if (luaL_dostring(L, chunk) != LUA_OK) {
        fprintf(stderr, "%s: %s\n", label, lua_tostring(L, -1));
        lua_settop(L, base);
        return 1;
    }
    j.fn = lua_gettop(L);   /* a function or a callable table: both are called as they are */
    bl__lua_prepare_schedule(L, &j);

    bl_train_state s;
    memset(&s, 0, sizeof s);
    s.train_size = 60000;
    s.batch = 32;
    s.lr = 0.1;
    s.gns = NAN;
    bl_eval_point point;
    memset(&point, 0, sizeof point);

    /* warm up (state.last made once), then time with the collector stopped: any allocation
     * during the calls shows in the count */
    int64_t b = 0;
    double f = 0;
    point.step = -1;
    s.last = &point;
    for (int i = 0; i < 1000; i++)
        bl__lua_batch_fn(&j, ctx, &s, &b, &f);
    lua_gc(L, LUA_GCCOLLECT);
    lua_gc(L, LUA_GCSTOP);
    long before = lua_gc(L, LUA_GCCOUNT) * 1024L + lua_gc(L, LUA_GCCOUNTB);
    double t0 = now();
    for (long i = 0; i < calls; i++) {
        s.step = i;
        s.samples += s.batch;
        s.epoch = s.samples / s.train_size;
        s.epoch_progress = (double)s.samples / (double)s.train_size;
        s.wall = 1e-6 * (double)i;
        if (i % 1000 == 999) {
            point.step = i;
            point.samples = s.samples;
            point.wall = s.wall;
            point.val_loss = 1.0 / (double)(i + 1);
            s.last = &point;
        }
        if (bl__lua_batch_fn(&j, ctx, &s, &b, &f) != BL_OK) {
            fprintf(stderr, "%s: %s\n", label, bl_errmsg(ctx));
            lua_gc(L, LUA_GCRESTART);
            lua_settop(L, base);
            return 1;
        }
        s.batch = b;
    }
    double dt = now() - t0;
    long after = lua_gc(L, LUA_GCCOUNT) * 1024L + lua_gc(L, LUA_GCCOUNTB);
    lua_gc(L, LUA_GCRESTART);
    printf("  %-40s %8.3f us/call  %6ld bytes allocated in %ld calls\n", label,
           1e6 * dt / (double)calls, after - before, calls);
    lua_settop(L, base);
    return 0;
}

/* A bare lua_pcall of a trivial function, for comparison: the floor of any Lua callback. */
static void bench_bare_pcall(lua_State *L, long calls)
{
    luaL_dostring(L, "return function(s) return 32 end");
    int fn = lua_gettop(L);
    lua_newtable(L);
    int st = lua_gettop(L);
    double t0 = now();
    for (long i = 0; i < calls; i++) {
        lua_pushvalue(L, fn);
        lua_pushvalue(L, st);
        lua_pcall(L, 1, 2, 0);
        lua_pop(L, 2);
    }
    double dt = now() - t0;
    printf("  %-40s %8.3f us/call\n", "bare lua_pcall (no state update)", 1e6 * dt / (double)calls);
    lua_settop(L, fn - 1);
}

static const char *const e2e =
    "local bl = require 'batchlab'\n"
    "local data = bl.dataset('synthetic', { samples = 4096, dim = 4, classes = 2 })\n"
    "local model = bl.model('logreg')\n"
    "local function run(batch)\n"
    "  local best = math.huge\n"
    "  for _ = 1, 3 do\n"
    "    local r = bl.train { dataset = data, model = model, batch = batch, max_batch = 4,\n"
    "      max_steps = 20000, skip_eval = true, skip_test = true, quiet = true }\n"
    "    best = math.min(best, r.time / r.steps)\n"
    "  end\n"
    "  return best\n"
    "end\n"
    "local c = run(4)\n"
    "local f = run(function(s) return 4 end)\n"
    "return c, f\n";

static const char usage[] =
    "usage: bench_lua_schedule [CALLS]\n"
    "  the cost of calling a Lua batch schedule from the step loop, over CALLS calls\n"
    "  (default 2000000, at least 1000)\n";

int main(int argc, char **argv)
{
    if (bench_help(argc, argv, usage))
        return 0;
    long calls = 2000000;
    if (bench_refuse_options("bench_lua_schedule", argc, argv) || argc > 2 ||
        (argc > 1 && !bench_long("bench_lua_schedule", "CALLS", argv[1], 1000, &calls)))
        return 2;
    lua_State *L = luaL_newstate();
    bl_ctx *ctx = bl_ctx_new();
    if (!L || !ctx)
        return 1;
    luaL_openlibs(L);
    luaL_requiref(L, "batchlab", luaopen_batchlab, 0);
    lua_pop(L, 1);
    lua_getglobal(L, "package");
    lua_pushstring(L, BATCHLAB_BUILD_SCRIPT_DIR "/?.lua;" BATCHLAB_BUILD_SCRIPT_DIR
                   "/?/init.lua");
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);

    printf("Lua batch schedule, per call of the engine's callback (%ld calls):\n", calls);
    int rc = 0;
    bench_bare_pcall(L, calls);
    rc |= bench_callback(L, ctx, "function(s) return 32 end", "function(s) return 32 end", calls);
    rc |= bench_callback(L, ctx, "function reading state fields",
                         "function(s) if s.epoch < 2 and s.step >= 0 then return 32 end "
                         "return 64, 0.5 end", calls);
    rc |= bench_callback(L, ctx, "batchlab.schedules.step (callable table)",
                         "require('batchlab.schedules').step{batch = 32, epochs = {1, 2}, "
                         "max = 128}", calls);

    printf("\nEnd to end (bl.train, logreg, batch 4, 20000 steps, best of 3):\n");
    if (luaL_dostring(L, e2e) != LUA_OK) {
        fprintf(stderr, "end to end: %s\n", lua_tostring(L, -1));
        rc = 1;
    } else {
        double c = lua_tonumber(L, -2), f = lua_tonumber(L, -1);
        printf("  constant batch  %8.3f us/step\n  Lua function    %8.3f us/step\n"
               "  difference      %8.3f us/step\n", 1e6 * c, 1e6 * f, 1e6 * (f - c));
    }
    lua_close(L);
    bl_ctx_free(ctx);
    return rc;
}

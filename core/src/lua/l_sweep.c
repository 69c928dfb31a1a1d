/* bl.sweep{...}: the runs of a grid, trained one after the other with bl.train semantics.
 *
 * A translator onto the sweep of core/src/engine/sweep.c (batchlab/sweep.h), which owns the
 * grid order, the order points run in, failed points, interrupts, scores and the best run.
 * This file builds point i's bl.train table, runs it through bl__lua_train and tells the
 * core what came of it. The grid is the cartesian product of `vary` over `base`: keys in
 * sorted order, the first key varying slowest, values in the order given (bl_grid). `lr` in
 * `vary` sets the optimizer's learning rate; every other key is a bl.train key. A run that
 * cannot start or fails is recorded (status "failed", its message in `error`) and the sweep
 * goes on; an interrupt ends the sweep by raising "interrupted". `on_run(run, i, n)` is called
 * after each run — the place where a results store can record it. `tensorboard = "DIR"` gives
 * every run an event file in DIR/<its label> (see l_tensorboard.c). `db = "FILE"` /
 * `resume = true` (or batchlab run --db FILE) record every run in the results store under
 * the experiment `name`, and resume: finished runs of the same configuration are given back
 * instead of trained again (`resume = false` trains them afresh; see l_store.c).
 *
 * `seeds = {...}` / `repeats = n` run every point with each seed (as vary.seed would).
 * `tune = {lr = true | {factors =, eta =, rungs =}}` tunes the learning rate per point by
 * successive halving (engine/tune.c, batchlab/tune.h): this file builds each trial's table —
 * the point's, with the optimizer's LR × the trial's factor, the budget (epochs, max_steps,
 * max_seconds) × the rung's fraction, the seed, and `tune` recorded with the configuration so a
 * trial never resumes as a counted run — and reads back what came of it. Trials run on the
 * first seed; the winner's LR runs with the others. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/run_spec.h"
#include "batchlab/sweep.h"
#include "batchlab/tune.h"
#include "engine/engine.h"
#include "lua/lbl.h"

static const char *const sweep_keys[] = {"name", "base", "vary", "target", "score",
                                         "higher_is_better", "quiet", "on_run",
                                         "tensorboard", "db", "resume", "tune", "seeds",
                                         "repeats", NULL};

/* The number of values of vary[key] (the value at the stack top): a list's length, or 1 for a
 * single non-table value. */
static lua_Integer count_values(lua_State *L, const char *key)
{
    if (!lua_istable(L, -1) || luaL_getmetafield(L, -1, "__name") != LUA_TNIL) {
        if (!lua_istable(L, -1))
            return 1;
        lua_pop(L, 1);                       /* an object (has __name): a single value */
        return 1;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    if (n < 1)
        luaL_error(L, "bl.sweep: vary.%s must be a non-empty list of values (write {v} for "
                      "one value)", key);
    return n;
}

/* Pushes value i (1-based) of vary[key] (at index `vi`). */
static void push_value(lua_State *L, int vi, lua_Integer i)
{
    if (lua_istable(L, vi) && luaL_getmetafield(L, vi, "__name") == LUA_TNIL)
        lua_rawgeti(L, vi, i);
    else {
        if (lua_istable(L, vi))
            lua_pop(L, 1);
        lua_pushvalue(L, vi);
    }
}

/* The optimizer of cfg (the table at `ci`) as bl.train reads it: a name, an object, or none
 * (SGD's defaults). */
static bl_optim_config cfg_optim(lua_State *L, int ci)
{
    bl_optim_config oc = bl_optim_defaults(BL_OPTIM_SGD);
    int t = lua_getfield(L, ci, "optimizer");
    if (t == LUA_TSTRING) {
        lbl_state *st = bl__lua_state(L);
        bl_optim_kind kind;
        if (bl_optim_parse(st->ctx, lua_tostring(L, -1), &kind) != BL_OK)
            bl__lua_raise(L, st->ctx, "bl.sweep");
        oc = bl_optim_defaults(kind);
    } else if (t != LUA_TNIL) {
        oc = *bl__lua_check_optim(L, -1);
    }
    lua_pop(L, 1);
    return oc;
}

/* Sets cfg.optimizer (table at `ci`) to a copy with learning rate `lr` (at the stack top). */
static void set_lr(lua_State *L, int ci)
{
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "bl.sweep: vary.lr values must be numbers, got %s",
                   luaL_typename(L, -1));
    bl_optim_config oc = cfg_optim(L, ci);
    oc.lr = lua_tonumber(L, -1);
    bl__lua_push_optim(L, &oc);
    lua_setfield(L, ci, "optimizer");
}

/* Checks the arguments and pushes them: slots 2..9 (S_NAME .. S_ON_RUN). */
static void check_args(lua_State *L)
{
    int t = lua_getfield(L, 1, "name");
    if (t != LUA_TNIL && t != LUA_TSTRING)
        luaL_error(L, "bl.sweep: 'name' must be a string");
    if (lua_getfield(L, 1, "base") != LUA_TTABLE)
        luaL_error(L, "bl.sweep: 'base' must be a table of bl.train keys, got %s",
                   luaL_typename(L, 3));
    t = lua_getfield(L, 1, "vary");
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
    } else if (t != LUA_TTABLE) {
        luaL_error(L, "bl.sweep: 'vary' must be a table key → list of values, got %s",
                   luaL_typename(L, 4));
    }
    lua_getfield(L, 1, "target");
    t = lua_getfield(L, 1, "score");
    if (t != LUA_TNIL && t != LUA_TFUNCTION)
        luaL_error(L, "bl.sweep: 'score' must be a function(run), got %s", luaL_typename(L, 6));
    lua_getfield(L, 1, "higher_is_better");
    t = lua_getfield(L, 1, "quiet");
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
        luaL_error(L, "bl.sweep: 'quiet' must be a boolean, got %s", luaL_typename(L, 8));
    t = lua_getfield(L, 1, "on_run");
    if (t != LUA_TNIL && t != LUA_TFUNCTION)
        luaL_error(L, "bl.sweep: 'on_run' must be a function(run, i, n), got %s",
                   luaL_typename(L, 9));
}

/* Stack slots of bl__lua_sweep, the same in point_main (they are passed on as its arguments). */
enum { S_ARGS = 1, S_NAME, S_BASE, S_VARY, S_TARGET, S_SCORE, S_HIGHER, S_QUIET, S_ON_RUN,
       S_SEEDS, S_FACTORS, S_CALL, S_RUNS, S_ERR, S_NSLOTS = S_ERR };

/* Pushes S_SEEDS: nil, or the list of seeds of `seeds = {...}` / `repeats = n` (the base's
 * seed, or 1, and the next n-1). */
static void check_seeds(lua_State *L)
{
    int st = lua_getfield(L, S_ARGS, "seeds");
    int rt = lua_getfield(L, S_ARGS, "repeats");                        /* [seeds, repeats] */
    if (st == LUA_TNIL && rt == LUA_TNIL) {
        lua_pop(L, 2);
        lua_pushnil(L);
        return;
    }
    if (st != LUA_TNIL && rt != LUA_TNIL)
        luaL_error(L, "bl.sweep: give 'seeds' or 'repeats', not both");
    if (lua_getfield(L, S_VARY, "seed") != LUA_TNIL)
        luaL_error(L, "bl.sweep: '%s' and vary.seed both set the seed; give one",
                   st != LUA_TNIL ? "seeds" : "repeats");
    lua_pop(L, 1);
    lua_newtable(L);                                                     /* [s, r, list] */
    if (rt != LUA_TNIL) {
        lua_Integer n = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
        if (n < 1 || n > 1000000)
            luaL_error(L, "bl.sweep: 'repeats' must be an integer ≥ 1 (runs per point, one "
                          "seed each), got %s", luaL_tolstring(L, -2, NULL));
        lua_Integer first = 1;
        if (lua_getfield(L, S_BASE, "seed") == LUA_TNUMBER && lua_isinteger(L, -1))
            first = lua_tointeger(L, -1);
        lua_pop(L, 1);
        for (lua_Integer i = 0; i < n; i++) {
            lua_pushinteger(L, first + i);
            lua_rawseti(L, -2, i + 1);
        }
    } else {
        lua_Integer n = st == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, -3) : 0;
        if (n < 1)
            luaL_error(L, "bl.sweep: 'seeds' must be a non-empty list of integer seeds, got %s",
                       st == LUA_TTABLE ? "an empty table" : luaL_typename(L, -3));
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -3, i);
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
                luaL_error(L, "bl.sweep: 'seeds' must be a list of integers ≥ 0; seeds[%d] is %s",
                           (int)i, luaL_tolstring(L, -1, NULL));
            lua_rawseti(L, -2, i);
        }
    }
    lua_replace(L, -3);
    lua_pop(L, 1);
}

/* Pushes S_FACTORS: nil when not tuning, else tune.lr's factors (default 1/4 … 4); *eta and
 * *rungs get tune.lr.eta and .rungs (0: the tuner's defaults). */
static void check_tune(lua_State *L, double *eta, lua_Integer *rungs)
{
    static const double defaults[] = {0.25, 0.5, 1, 2, 4};
    static const char *const keys[] = {"lr", NULL};
    static const char *const lr_keys[] = {"factors", "eta", "rungs", NULL};
    *eta = 0;
    *rungs = 0;
    int t = lua_getfield(L, S_ARGS, "tune");                             /* [tune] */
    if (t == LUA_TNIL)
        return;
    if (t != LUA_TTABLE)
        luaL_error(L, "bl.sweep: 'tune' must be a table {lr = true | {factors =, eta =, "
                      "rungs =}}, got %s", luaL_typename(L, -1));
    int ti = lua_gettop(L);
    bl__lua_check_keys(L, ti, keys, "bl.sweep: tune");
    t = lua_getfield(L, ti, "lr");                                       /* [tune, lr] */
    int li = lua_gettop(L);
    lua_newtable(L);                                                     /* [tune, lr, fs] */
    if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, li))) {
        lua_settop(L, ti);
        lua_pop(L, 1);
        lua_pushnil(L);                                                  /* not tuning */
        return;
    }
    if (t != LUA_TTABLE && t != LUA_TBOOLEAN)
        luaL_error(L, "bl.sweep: 'tune.lr' must be true or a table {factors =, eta =, rungs "
                      "=}, got %s", luaL_typename(L, li));
    bool given = false;
    if (t == LUA_TTABLE) {
        bl__lua_check_keys(L, li, lr_keys, "bl.sweep: tune.lr");
        int ft = lua_getfield(L, li, "factors");
        if (ft != LUA_TNIL) {
            lua_Integer n = ft == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, -1) : 0;
            if (n < 1)
                luaL_error(L, "bl.sweep: 'tune.lr.factors' must be a non-empty list of "
                              "positive numbers (the LRs tried, × the scaled LR), got %s",
                           ft == LUA_TTABLE ? "an empty table" : luaL_typename(L, -1));
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, i);
                double f = lua_tonumber(L, -1);
                if (lua_type(L, -1) != LUA_TNUMBER || !(f > 0) || !isfinite(f))
                    luaL_error(L, "bl.sweep: 'tune.lr.factors' must be positive numbers; "
                                  "factors[%d] is %s", (int)i, luaL_tolstring(L, -1, NULL));
                lua_rawseti(L, li + 1, i);
            }
            given = true;
        }
        lua_pop(L, 1);
        int et = lua_getfield(L, li, "eta");
        if (et != LUA_TNIL) {
            *eta = lua_tonumber(L, -1);
            if (et != LUA_TNUMBER || !(*eta >= 2) || !isfinite(*eta))
                luaL_error(L, "bl.sweep: 'tune.lr.eta' must be a number ≥ 2 (each rung keeps "
                              "the best 1/eta), got %s", luaL_tolstring(L, -1, NULL));
        }
        lua_pop(L, 1);
        if (lua_getfield(L, li, "rungs") != LUA_TNIL) {
            *rungs = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
            if (*rungs < 1 || *rungs > BL_TUNE_MAX_RUNGS)
                luaL_error(L, "bl.sweep: 'tune.lr.rungs' must be an integer 1 … %d, got %s",
                           BL_TUNE_MAX_RUNGS, luaL_tolstring(L, -1, NULL));
        }
        lua_pop(L, 1);
    }
    for (size_t i = 0; !given && i < sizeof defaults / sizeof defaults[0]; i++) {
        lua_pushnumber(L, defaults[i]);
        lua_rawseti(L, li + 1, (lua_Integer)i + 1);
    }
    lua_replace(L, ti);                                                  /* [fs, lr] */
    lua_settop(L, ti);
}

/* ---- the call: what the sweep's hooks need ------------------------------------------------- */

#define LBL_SWEEP_CALL "batchlab.SweepCall"

typedef struct sweep_call {
    lua_State *L;
    const char *name;
    const char **keys;        /* vary's keys as found (anchored in the vary table) */
    size_t *at;               /* scratch: the value indices of one point, sorted key order */
    bl_grid grid;
    bl_sweep_summary sum;
    bl_tune_summary tuned;    /* a tuned sweep's */
    bool interrupted;
} sweep_call;

static int call_gc(lua_State *L)
{
    sweep_call *c = luaL_checkudata(L, 1, LBL_SWEEP_CALL);
    bl_grid_free(&c->grid);
    bl_sweep_summary_free(&c->sum);
    bl_tune_summary_free(&c->tuned);
    return 0;
}

/* Sets cfg's values for point `index` (cfg at `ci`, params at `pi`) and pushes its label. */
static void point_values(lua_State *L, sweep_call *c, size_t index, int ci, int pi)
{
    bl_grid_point(&c->grid, index, c->at);
    lua_pushstring(L, c->name);                                          /* label */
    for (size_t k = 0; k < c->grid.nk; k++) {
        const char *key = c->keys[c->grid.order[k]];
        lua_getfield(L, S_VARY, key);                                    /* [label, list] */
        push_value(L, lua_gettop(L), (lua_Integer)c->at[k] + 1);         /* [label, list, v] */
        lua_remove(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, pi, key);
        luaL_tolstring(L, -1, NULL);                                     /* [label, v, s] */
        lua_pushfstring(L, " %s=%s", key, lua_tostring(L, -1));
        lua_replace(L, -2);                                              /* [label, v, piece] */
        lua_insert(L, -2);                                               /* [label, piece, v] */
        if (strcmp(key, "lr") == 0) {
            set_lr(L, ci);
            lua_pop(L, 1);
        } else {
            lua_setfield(L, ci, key);
        }
        lua_concat(L, 2);                                                /* [label] */
    }
}

/* Sets t[key] = the value at `vi` unless that is nil or t has the key already. */
static void set_default(lua_State *L, int t, const char *key, int vi)
{
    if (lua_isnil(L, vi))
        return;
    if (lua_getfield(L, t, key) == LUA_TNIL) {
        lua_pushvalue(L, vi);
        lua_setfield(L, t, key);
    }
    lua_pop(L, 1);
}

/* The learning rate `lr` of the optimizer as bl.train applies it at the run's batch: × the
 * scaling rule of cfg.lr_scaling (the table at `ci`); unscaled when the batch is a schedule. */
static double scaled_lr(lua_State *L, int ci, double lr)
{
    int top = lua_gettop(L);
    const char *rule = NULL;
    double base_batch = 0, batch = NAN;
    int t = lua_getfield(L, ci, "lr_scaling");
    if (t == LUA_TSTRING) {
        rule = lua_tostring(L, -1);
    } else if (t == LUA_TTABLE) {
        if (lua_getfield(L, top + 1, "rule") == LUA_TSTRING)
            rule = lua_tostring(L, -1);
        if (lua_getfield(L, top + 1, "base_batch") == LUA_TNUMBER)
            base_batch = lua_tonumber(L, -1);
    }
    t = lua_getfield(L, ci, "batch");
    if (t == LUA_TNUMBER)
        batch = lua_tonumber(L, -1);
    else if (t == LUA_TNIL)
        batch = strtod(bl_run_spec_default("batch"), NULL);
    bl_lr_scaling kind = !rule ? BL_LR_SCALE_NONE
                         : strcmp(rule, "linear") == 0 ? BL_LR_SCALE_LINEAR
                         : strcmp(rule, "sqrt") == 0 ? BL_LR_SCALE_SQRT : BL_LR_SCALE_NONE;
    lua_settop(L, top);
    if (!(batch > 0))
        return lr;
    return lr * bl__lr_scale(kind, batch, base_batch > 0 ? base_batch : batch);
}

/* Shortens cfg's budget (the table at `ci`) to `fraction` of it; raises when it has none. */
static void shorten_budget(lua_State *L, int ci, double fraction)
{
    bool any = false;
    if (lua_getfield(L, ci, "epochs") == LUA_TNUMBER && lua_tonumber(L, -1) > 0) {
        lua_pushnumber(L, lua_tonumber(L, -1) * fraction);
        lua_setfield(L, ci, "epochs");
        any = true;
    }
    if (lua_getfield(L, ci, "max_steps") == LUA_TNUMBER && lua_tonumber(L, -1) > 0) {
        lua_pushinteger(L, (lua_Integer)ceil(lua_tonumber(L, -1) * fraction));
        lua_setfield(L, ci, "max_steps");
        any = true;
    }
    if (lua_getfield(L, ci, "max_seconds") == LUA_TNUMBER && lua_tonumber(L, -1) > 0) {
        lua_pushnumber(L, lua_tonumber(L, -1) * fraction);
        lua_setfield(L, ci, "max_seconds");
        any = true;
    }
    lua_pop(L, 3);
    if (!any)
        luaL_error(L, "bl.sweep: tune.lr: the trials of the first rungs run a fraction of the "
                      "budget, and the runs have none: set epochs, max_steps or max_seconds in "
                      "base (or tune.lr.rungs = 1)");
}

/* Pushes r.tune for tuning run `tr` with factor f and (scaled) learning rate lr. */
static void push_tune_info(lua_State *L, const bl_tune_entry *tr, double f, double lr)
{
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, f);
    lua_setfield(L, -2, "factor");
    lua_pushnumber(L, lr);
    lua_setfield(L, -2, "lr");
    lua_pushinteger(L, (lua_Integer)tr->rung + 1);
    lua_setfield(L, -2, "rung");
    lua_pushinteger(L, (lua_Integer)tr->factor + 1);
    lua_setfield(L, -2, "trial");
    lua_pushboolean(L, tr->best);
    lua_setfield(L, -2, "best");
}

/* A tuning run's changes to cfg (at `ci`), params (`pi`) and the label (`li`): the seed, the
 * LR × the factor, the rung's budget, and cfg.tune — what the store keeps with the run, so a
 * trial ({factor, rung, trial}) and a counted repeat ({factor, best = true}) never resume as
 * each other or as an untuned run. Pushes r.tune. */
static void tune_config(lua_State *L, const bl_tune_entry *tr, int ci, int pi, int li)
{
    if (!lua_isnil(L, S_SEEDS)) {
        lua_rawgeti(L, S_SEEDS, (lua_Integer)tr->seed + 1);              /* [seed] */
        lua_pushvalue(L, -1);
        lua_setfield(L, ci, "seed");
        lua_pushvalue(L, -1);
        lua_setfield(L, pi, "seed");
        lua_pushfstring(L, "%s seed=%I", lua_tostring(L, li), lua_tointeger(L, -1));
        lua_replace(L, li);
        lua_pop(L, 1);
    }
    lua_rawgeti(L, S_FACTORS, (lua_Integer)tr->factor + 1);
    double f = lua_tonumber(L, -1);
    lua_pop(L, 1);
    double lr = cfg_optim(L, ci).lr * f;
    lua_pushnumber(L, lr);
    set_lr(L, ci);
    lua_pop(L, 1);
    if (tr->budget < 1)
        shorten_budget(L, ci, tr->budget);
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, f);
    lua_setfield(L, -2, "factor");
    if (tr->repeat) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "best");
        lua_pushfstring(L, "%s lr_factor=%f", lua_tostring(L, li), f);
    } else {
        lua_pushinteger(L, (lua_Integer)tr->rung + 1);
        lua_setfield(L, -2, "rung");
        lua_pushinteger(L, (lua_Integer)tr->factor + 1);
        lua_setfield(L, -2, "trial");
        lua_pushfstring(L, "%s lr_factor=%f rung=%d", lua_tostring(L, li), f,
                        (int)tr->rung + 1);
    }
    lua_replace(L, li);
    lua_setfield(L, ci, "tune");
    push_tune_info(L, tr, f, scaled_lr(L, ci, lr));
}

/* Run `index` (argument S_NSLOTS + 1; slots as in bl__lua_sweep) — grid point `index`, or
 * when tuning the tuning run whose bl_tune_entry is argument S_NSLOTS + 2 (a light userdata):
 * builds its bl.train table, runs it, stores the run table in runs[index + 1]. Raises only on
 * misuse or an interrupt. */
static int point_main(lua_State *L)
{
    sweep_call *c = lua_touserdata(L, S_CALL);
    size_t index = (size_t)lua_tointeger(L, S_NSLOTS + 1);
    const bl_tune_entry *tr = lua_touserdata(L, S_NSLOTS + 2);            /* NULL: untuned */
    lua_newtable(L);                                                     /* cfg = copy of base */
    int ci = lua_gettop(L);
    for (lua_pushnil(L); lua_next(L, S_BASE); lua_rawset(L, ci)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
    }
    lua_newtable(L);
    int pi = lua_gettop(L);                                              /* params */
    point_values(L, c, tr ? tr->group : index, ci, pi);
    int li = lua_gettop(L);                                              /* label */
    if (tr)
        tune_config(L, tr, ci, pi, li);                                  /* [label, tune] */
    int ti = lua_gettop(L);
    set_default(L, ci, "label", li);
    set_default(L, ci, "target", S_TARGET);
    if (!lua_isnil(L, S_QUIET)) {
        lua_pushvalue(L, S_QUIET);
        lua_setfield(L, ci, "quiet");
    }
    lua_getfield(L, S_ARGS, "tensorboard");    /* DIR: each run writes DIR/<its label> */
    set_default(L, ci, "tensorboard", lua_gettop(L));
    lua_settop(L, ti);
    bl__lua_store_sweep(L, S_ARGS, ci, c->name);   /* db, experiment, resume (l_store.c) */

    lua_pushcfunction(L, bl__lua_train);
    lua_pushvalue(L, ci);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lbl_state *st = bl__lua_state(L);
        if (st->interrupted || (st->interrupt && *st->interrupt)) {
            c->interrupted = true;
            return lua_error(L);
        }
        const char *msg = bl__lua_errstring(L, -1);
        lua_createtable(L, 0, 8);
        lua_pushliteral(L, "failed");
        lua_setfield(L, -2, "status");
        lua_pushliteral(L, "error");
        lua_setfield(L, -2, "stopped_by");
        lua_pushstring(L, msg);
        lua_setfield(L, -2, "error");
        lua_remove(L, -2);
        for (lua_pushnil(L); lua_next(L, pi); lua_pop(L, 1)) {          /* echo the parameters */
            if (strcmp(lua_tostring(L, -2), "lr") != 0) {
                lua_pushvalue(L, -2);
                lua_pushvalue(L, -2);
                lua_settable(L, -5);
            }
        }
        lua_pushvalue(L, li);
        lua_setfield(L, -2, "label");
    }
    if (tr) {
        lua_pushvalue(L, ti);
        lua_setfield(L, -2, "tune");
    }
    lua_pushvalue(L, pi);
    lua_setfield(L, -2, "params");
    lua_pushinteger(L, (lua_Integer)index + 1);
    lua_setfield(L, -2, "index");
    lua_rawseti(L, S_RUNS, (lua_Integer)index + 1);
    return 0;
}

/* What the sweep needs of the run table at the top. */
static void read_point(lua_State *L, bl_sweep_point *p)
{
    int ri = lua_gettop(L);
    lua_getfield(L, ri, "status");
    const char *status = lua_tostring(L, -1);
    p->status = !status ? BL_SWEEP_OTHER
                : strcmp(status, "completed") == 0 ? BL_SWEEP_COMPLETED
                : strcmp(status, "failed") == 0 ? BL_SWEEP_FAILED : BL_SWEEP_OTHER;
    p->resumed = lua_getfield(L, ri, "resumed") == LUA_TBOOLEAN;
    p->has_target_time = lua_getfield(L, ri, "time_to_target") == LUA_TNUMBER;
    p->time_to_target = p->has_target_time ? lua_tonumber(L, -1) : NAN;
    if (lua_getfield(L, ri, "steps_to_target") == LUA_TNUMBER)
        p->steps_to_target = lua_tonumber(L, -1);
    if (lua_getfield(L, ri, "final") == LUA_TTABLE && lua_getfield(L, -1, "val_loss") ==
        LUA_TNUMBER)
        p->val_loss = lua_tonumber(L, -1);
    lua_settop(L, ri);
}

/* A Lua error at the top: kept in S_ERR for bl__lua_sweep to raise again. */
static int keep_error(lua_State *L, int code)
{
    lua_replace(L, S_ERR);
    return code;
}

/* Runs point_main for run `index` (`tr`: the tuning run, or NULL) and reads what came of it. */
static int run_index(sweep_call *c, size_t index, const bl_tune_entry *tr, bl_sweep_point *out)
{
    lua_State *L = c->L;
    lua_pushcfunction(L, point_main);
    for (int i = 1; i <= S_NSLOTS; i++)
        lua_pushvalue(L, i);
    lua_pushinteger(L, (lua_Integer)index);
    if (tr)
        lua_pushlightuserdata(L, (void *)tr);
    else
        lua_pushnil(L);
    if (lua_pcall(L, S_NSLOTS + 2, 0, 0) != LUA_OK)
        return keep_error(L, c->interrupted ? BL_EINTERRUPTED : BL_ESCRIPT);
    lua_rawgeti(L, S_RUNS, (lua_Integer)index + 1);
    read_point(L, out);
    lua_pop(L, 1);
    return BL_OK;
}

static int hook_run(void *user, bl_ctx *ctx, size_t index, bl_sweep_point *out)
{
    (void)ctx;
    return run_index(user, index, NULL, out);
}

static int hook_on_point(void *user, bl_ctx *ctx, size_t index, const bl_sweep_point *p,
                         size_t total)
{
    lua_State *L = ((sweep_call *)user)->L;
    if (lua_isnil(L, S_ON_RUN))
        return BL_OK;
    lua_pushvalue(L, S_ON_RUN);
    lua_rawgeti(L, S_RUNS, (lua_Integer)index + 1);
    lua_pushinteger(L, (lua_Integer)index + 1);
    lua_pushinteger(L, (lua_Integer)total);
    return lua_pcall(L, 3, 0, 0) == LUA_OK ? BL_OK : keep_error(L, BL_ESCRIPT);
}

static int hook_score(void *user, bl_ctx *ctx, size_t index, const bl_sweep_point *p,
                      double *score)
{
    lua_State *L = ((sweep_call *)user)->L;
    int top = lua_gettop(L);
    lua_pushcfunction(L, bl__lua_traceback);
    lua_pushvalue(L, S_SCORE);
    lua_rawgeti(L, S_RUNS, (lua_Integer)index + 1);
    if (lua_pcall(L, 1, 1, top + 1) != LUA_OK) {
        lua_pushfstring(L, "bl.sweep: score function: %s", lua_tostring(L, -1));
        return keep_error(L, BL_ESCRIPT);
    }
    int ok = BL_OK;
    if (lua_type(L, -1) == LUA_TNUMBER)
        *score = lua_tonumber(L, -1);
    else if (!lua_isnil(L, -1) && !(lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
        lua_pushfstring(L, "bl.sweep: the score function returned a %s; expected a number "
                           "(or nil for a run that does not count)", luaL_typename(L, -1));
        ok = keep_error(L, BL_ESCRIPT);
    }
    lua_settop(L, top);
    return ok;
}

/* ---- a tuned sweep: the tuner's hooks and what it returns ---------------------------------- */

static int tune_run(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r,
                    bl_sweep_point *out)
{
    (void)ctx;
    return run_index(user, index, r, out);
}

static int tune_on_run(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r)
{
    return hook_on_point(user, ctx, index, &r->point, ((sweep_call *)user)->tuned.planned);
}

static int tune_score(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r,
                      double *score)
{
    return hook_score(user, ctx, index, &r->point, score);
}

/* The batch of tuned group g (from one of its runs: params.batch, else the run's batch);
 * pushes it. */
static void push_group_batch(lua_State *L, const bl_tune_summary *t, size_t g)
{
    size_t k = 0;
    while (k + 1 < t->n_runs && t->runs[k].group != g)
        k++;
    int top = lua_gettop(L);
    lua_rawgeti(L, S_RUNS, (lua_Integer)k + 1);                          /* [run] */
    if (lua_getfield(L, top + 1, "params") == LUA_TTABLE)                /* [run, params] */
        lua_getfield(L, top + 2, "batch");                               /* [run, params, b] */
    else
        lua_pushnil(L);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_getfield(L, top + 1, "batch");
    }
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
}

typedef struct group_order {
    size_t g;
    double batch;            /* NaN: not a number (sorted last) */
} group_order;

static int cmp_group(const void *a, const void *b)
{
    const group_order *x = a, *y = b;
    bool xn = isnan(x->batch), yn = isnan(y->batch);
    if (xn != yn)
        return xn ? 1 : -1;
    if (!xn && x->batch != y->batch)
        return x->batch < y->batch ? -1 : 1;
    return x->g < y->g ? -1 : x->g > y->g;
}

static void set_num(lua_State *L, const char *key, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

static void push_lr_fit(lua_State *L, const bl_lr_fit *f)
{
    lua_createtable(L, 0, 5);
    set_num(L, "eps_max", f->eps_max);
    set_num(L, "b_noise", f->b_noise);
    set_num(L, "r2", f->r2);
    lua_pushinteger(L, (lua_Integer)f->n);
    lua_setfield(L, -2, "n");
    lua_pushboolean(L, f->valid);
    lua_setfield(L, -2, "valid");
}

/* Adds `tuned` (per group, ascending by batch) and, with a tuned LR for 3 or more distinct
 * batches (one group each), `lr_fit` to the result at the top; prints them unless quiet. */
static void tuned_results(lua_State *L, sweep_call *c, bool quiet)
{
    const bl_tune_summary *t = &c->tuned;
    int res = lua_gettop(L);
    group_order *order = lua_newuserdatauv(L, t->n_groups * sizeof *order, 0);
    double *fb = lua_newuserdatauv(L, 2 * t->n_groups * sizeof *fb, 0), *flr = fb + t->n_groups;
    int scratch = lua_gettop(L);
    for (size_t g = 0; g < t->n_groups; g++) {
        push_group_batch(L, t, g);
        order[g] = (group_order){g, lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN};
        lua_pop(L, 1);
    }
    qsort(order, t->n_groups, sizeof *order, cmp_group);
    lua_createtable(L, (int)t->n_groups, 0);                             /* [tuned] */
    size_t nfit = 0, distinct = 0;
    for (size_t i = 0; i < t->n_groups; i++) {
        size_t g = order[i].g;
        const bl_tune_group *gr = &t->groups[g];
        lua_createtable(L, 0, 6);
        push_group_batch(L, t, g);
        lua_setfield(L, -2, "batch");
        if (gr->winner != SIZE_MAX) {
            lua_rawgeti(L, S_RUNS, (lua_Integer)gr->winner + 1);
            lua_getfield(L, -1, "tune");                                 /* [e, run, tune] */
            lua_getfield(L, -1, "lr");
            lua_setfield(L, -4, "lr");
            lua_getfield(L, -1, "factor");
            lua_setfield(L, -4, "factor");
            lua_getfield(L, -2, "params");
            lua_setfield(L, -4, "params");
            lua_getfield(L, -1, "lr");                                   /* [e, run, tune, lr] */
            if (!isnan(order[i].batch)) {
                distinct += nfit == 0 || fb[nfit - 1] != order[i].batch;  /* sorted */
                fb[nfit] = order[i].batch;
                flr[nfit++] = lua_tonumber(L, -1);
            }
            lua_pop(L, 3);
        }
        lua_pushinteger(L, (lua_Integer)gr->trials);
        lua_setfield(L, -2, "trials");
        lua_pushinteger(L, (lua_Integer)gr->abandoned);
        lua_setfield(L, -2, "abandoned");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, res, "tuned");
    lbl_state *st = bl__lua_state(L);
    bl_lr_fit fit;
    bool fitted = nfit >= 3 && distinct == nfit &&
                  bl_fit_lr(st->ctx, fb, flr, nfit, &fit) == BL_OK;
    if (fitted) {
        push_lr_fit(L, &fit);
        lua_setfield(L, res, "lr_fit");
    }
    if (!quiet) {
        printf("\n%s: learning rate tuned per batch (successive halving, eta %g, %zu rung%s)\n",
               c->name, t->eta, t->rungs, t->rungs == 1 ? "" : "s");
        printf("  %-10s %12s %8s %7s %10s\n", "batch", "lr", "factor", "trials", "abandoned");
        lua_getfield(L, res, "tuned");
        for (size_t i = 0; i < t->n_groups; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            lua_getfield(L, -1, "batch");
            const char *b = luaL_tolstring(L, -1, NULL);
            lua_getfield(L, -3, "lr");
            lua_getfield(L, -4, "factor");
            const bl_tune_group *gr = &t->groups[order[i].g];
            if (lua_isnumber(L, -2))
                printf("  %-10s %12.4g %8g %7zu %10zu\n", b, lua_tonumber(L, -2),
                       lua_tonumber(L, -1), gr->trials, gr->abandoned);
            else
                printf("  %-10s %12s %8s %7zu %10zu  (every trial diverged or failed)\n", b,
                       "-", "-", gr->trials, gr->abandoned);
            lua_pop(L, 5);
        }
        lua_pop(L, 1);
        if (fitted)
            printf("  eps_opt(B) = eps_max / (1 + B_noise/B): eps_max = %.4g, B_noise = %.4g "
                   "(R^2 %.2f%s)\n", fit.eps_max, fit.b_noise, fit.r2,
                   fit.valid ? "" : "; not a valid fit");
        fflush(stdout);
    }
    lua_settop(L, scratch);
    lua_pop(L, 2);
}

/* The result of a tuned sweep (the summary in c->tuned) at the top. */
static void tuned_result(lua_State *L, sweep_call *c, bool quiet)
{
    const bl_tune_summary *t = &c->tuned;
    lua_createtable(L, 0, 8);
    lua_pushstring(L, c->name);
    lua_setfield(L, -2, "name");
    for (size_t k = 0; k < t->n_runs; k++) {
        lua_rawgeti(L, S_RUNS, (lua_Integer)k + 1);
        if (t->runs[k].best) {
            lua_getfield(L, -1, "tune");
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "best");
            lua_pop(L, 1);
        }
        if (isfinite(t->runs[k].point.score)) {
            lua_pushnumber(L, t->runs[k].point.score);
            lua_setfield(L, -2, "score");
        }
        lua_pop(L, 1);
    }
    lua_pushvalue(L, S_RUNS);
    lua_setfield(L, -2, "runs");
    if (t->best != SIZE_MAX) {
        lua_rawgeti(L, S_RUNS, (lua_Integer)t->best + 1);
        lua_setfield(L, -2, "best");
    }
    lua_pushinteger(L, (lua_Integer)t->failed);
    lua_setfield(L, -2, "failed");
    lua_pushinteger(L, (lua_Integer)t->resumed);
    lua_setfield(L, -2, "resumed");
    lua_pushinteger(L, (lua_Integer)t->n_runs);
    lua_setfield(L, -2, "total");
    tuned_results(L, c, quiet);
}

/* bl.sweep{name =, base =, vary =, target =, score =, higher_is_better =, quiet =, on_run =,
 *          seeds = | repeats =, tune =}
 * → {name =, runs = {...}, best = run | nil, failed = n, resumed = n, total = n
 *    [, tuned = {...}, lr_fit = {...}]} */
int bl__lua_sweep(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 40, "bl.sweep");
    bl__lua_check_keys(L, 1, sweep_keys, "bl.sweep");
    check_args(L);                                                       /* slots 2..9 */
    check_seeds(L);                                                      /* S_SEEDS */
    double eta;
    lua_Integer rungs;
    check_tune(L, &eta, &rungs);                                         /* S_FACTORS */
    bool tuning = !lua_isnil(L, S_FACTORS);
    if (!tuning && !lua_isnil(L, S_SEEDS)) {     /* seeds without tuning: vary.seed */
        lua_newtable(L);
        for (lua_pushnil(L); lua_next(L, S_VARY); lua_pop(L, 1)) {
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
            lua_rawset(L, -5);
        }
        lua_pushvalue(L, S_SEEDS);
        lua_setfield(L, -2, "seed");
        lua_replace(L, S_VARY);
    }
    size_t nk = 0;
    for (lua_pushnil(L); lua_next(L, S_VARY); lua_pop(L, 1), nk++)
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "bl.sweep: vary keys must be names, got a %s key",
                              luaL_typename(L, -2));
    sweep_call *c = lua_newuserdatauv(L, sizeof *c, 0);                 /* S_CALL */
    memset(c, 0, sizeof *c);
    if (luaL_newmetatable(L, LBL_SWEEP_CALL)) {
        lua_pushcfunction(L, call_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_createtable(L, 0, 0);                                            /* S_RUNS */
    lua_pushnil(L);                                                      /* S_ERR */
    c->L = L;
    c->name = lua_isnil(L, S_NAME) ? "sweep" : lua_tostring(L, S_NAME);
    c->keys = lua_newuserdatauv(L, (nk ? nk : 1) * sizeof *c->keys, 0);  /* kept on the stack */
    c->at = lua_newuserdatauv(L, (nk ? nk : 1) * sizeof *c->at, 0);
    size_t *len = lua_newuserdatauv(L, (nk ? nk : 1) * sizeof *len, 0);
    size_t k = 0;
    for (lua_pushnil(L); lua_next(L, S_VARY); lua_pop(L, 1), k++) {
        c->keys[k] = lua_tostring(L, -2);
        len[k] = (size_t)count_values(L, c->keys[k]);
    }
    lbl_state *st = bl__lua_state(L);
    if (bl_grid_init(st->ctx, &c->grid, c->keys, len, nk) != BL_OK)
        return bl__lua_raise(L, st->ctx, "bl.sweep");

    if (tuning) {
        bl_tune_options to = {.groups = c->grid.total, .factors = lua_rawlen(L, S_FACTORS),
                              .eta = eta, .rungs = (size_t)rungs,
                              .seeds = lua_isnil(L, S_SEEDS) ? 1 : lua_rawlen(L, S_SEEDS),
                              .higher_is_better = lua_toboolean(L, S_HIGHER)};
        bl_tune_hooks th = {.user = c, .run = tune_run, .on_run = tune_on_run,
                            .score = lua_isnil(L, S_SCORE) ? NULL : tune_score};
        int rc = bl_tune_run(st->ctx, &to, &th, NULL, &c->tuned);
        if (rc == BL_ESCRIPT || rc == BL_EINTERRUPTED) {
            lua_pushvalue(L, S_ERR);
            return lua_error(L);
        }
        if (rc != BL_OK)
            return bl__lua_raise(L, st->ctx, "bl.sweep");
        tuned_result(L, c, lua_toboolean(L, S_QUIET) || st->quiet);
        return 1;
    }
    bl_sweep_options opts = {.points = c->grid.total, .higher_is_better =
                             lua_toboolean(L, S_HIGHER)};
    bl_sweep_hooks hooks = {.user = c, .run = hook_run, .on_point = hook_on_point,
                            .score = lua_isnil(L, S_SCORE) ? NULL : hook_score};
    int rc = bl_sweep_run(st->ctx, &opts, &hooks, NULL, &c->sum);
    if (rc == BL_ESCRIPT || rc == BL_EINTERRUPTED) {
        lua_pushvalue(L, S_ERR);
        return lua_error(L);
    }
    if (rc != BL_OK)
        return bl__lua_raise(L, st->ctx, "bl.sweep");

    lua_createtable(L, 0, 6);                                            /* the result */
    lua_pushstring(L, c->name);
    lua_setfield(L, -2, "name");
    for (size_t i = 0; i < c->sum.total; i++)
        if (isfinite(c->sum.points[i].score)) {
            lua_rawgeti(L, S_RUNS, (lua_Integer)i + 1);
            lua_pushnumber(L, c->sum.points[i].score);
            lua_setfield(L, -2, "score");
            lua_pop(L, 1);
        }
    lua_pushvalue(L, S_RUNS);
    lua_setfield(L, -2, "runs");
    if (c->sum.best != SIZE_MAX) {
        lua_rawgeti(L, S_RUNS, (lua_Integer)c->sum.best + 1);
        lua_setfield(L, -2, "best");
    }
    lua_pushinteger(L, (lua_Integer)c->sum.failed);
    lua_setfield(L, -2, "failed");
    lua_pushinteger(L, (lua_Integer)c->sum.resumed);
    lua_setfield(L, -2, "resumed");
    lua_pushinteger(L, (lua_Integer)c->sum.total);
    lua_setfield(L, -2, "total");
    return 1;
}

/* bl.fit_lr({{batch =, lr =}, ...}) → {eps_max, b_noise, r2, n, valid} | nil, message (fewer
 * than 3 batch sizes). Entries without an lr (a batch whose trials all diverged, in a sweep's
 * `tuned`) are left out; a malformed entry raises. */
int bl__lua_fit_lr(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t n = lua_rawlen(L, 1), m = 0;
    double *b = lua_newuserdatauv(L, 2 * (n ? n : 1) * sizeof *b, 0), *lr = b + n;
    for (size_t i = 0; i < n; i++) {
        if (lua_rawgeti(L, 1, (lua_Integer)i + 1) != LUA_TTABLE)
            return luaL_error(L, "bl.fit_lr: entry %d must be a table {batch =, lr =}, got %s",
                              (int)i + 1, luaL_typename(L, -1));
        int bt = lua_getfield(L, -1, "batch");
        int lt = lua_getfield(L, -2, "lr");
        if (lt != LUA_TNIL) {
            double vb = lua_tonumber(L, -2), vl = lua_tonumber(L, -1);
            if (bt != LUA_TNUMBER || lt != LUA_TNUMBER || !(vb > 0) || !(vl > 0) ||
                !isfinite(vb) || !isfinite(vl))
                return luaL_error(L, "bl.fit_lr: entry %d must be {batch = B > 0, lr = "
                                     "LR > 0}", (int)i + 1);
            b[m] = vb;
            lr[m++] = vl;
        }
        lua_pop(L, 3);
    }
    lbl_state *st = bl__lua_state(L);
    bl_lr_fit f;
    if (bl_fit_lr(st->ctx, b, lr, m, &f) != BL_OK) {
        lua_pushnil(L);
        lua_pushstring(L, bl_errmsg(st->ctx));
        return 2;
    }
    push_lr_fit(L, &f);
    return 1;
}

/* bl.sweep's seeds and learning-rate tuning, and bl.fit_lr (see l_sweep.c for bl.sweep).
 *
 * `seeds = {...}` / `repeats = n`: every point runs once per seed. `tune = {lr = true |
 * {factors =, eta =, rungs =}}`: the tuner of core/src/engine/tune.c (batchlab/tune.h) hands
 * out trials; this file turns one into its bl.train table — the point's, with the optimizer's
 * LR × the trial's factor, the budget (epochs, max_steps, max_seconds) × the rung's fraction,
 * the seed, and `tune` recorded with the configuration, so a trial never resumes as a counted
 * run — and builds the result's `tuned` and `lr_fit` (printed unless quiet). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/run_spec.h"
#include "engine/engine.h"
#include "lua/l_sweep.h"

/* Pushes S_SEEDS: nil, or the list of seeds of `seeds = {...}` / `repeats = n` (the base's
 * seed, or 1, and the next n-1). */
void bl__sweep_check_seeds(lua_State *L)
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

/* tune.lr.range_test (in the table at `li`): true, or {steps =, from =, to =}. */
static void check_range_test(lua_State *L, int li, sweep_tune_args *out)
{
    static const char *const keys[] = {"steps", "from", "to", NULL};
    int t = lua_getfield(L, li, "range_test");
    out->range_test = t == LUA_TTABLE || (t == LUA_TBOOLEAN && lua_toboolean(L, -1));
    if (t == LUA_TTABLE) {
        int ri = lua_gettop(L);
        bl__lua_check_keys(L, ri, keys, "bl.sweep: tune.lr.range_test");
        if (lua_getfield(L, ri, "steps") != LUA_TNIL) {
            out->range_steps = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
            if (out->range_steps < 5 || out->range_steps > 100000)
                luaL_error(L, "bl.sweep: 'tune.lr.range_test.steps' must be an integer 5 … "
                              "100000, got %s", luaL_tolstring(L, -1, NULL));
        }
        if (lua_getfield(L, ri, "from") != LUA_TNIL)
            out->range_from = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
        if (lua_getfield(L, ri, "to") != LUA_TNIL)
            out->range_to = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
        if (!(out->range_from > 0) || !(out->range_to > out->range_from) ||
            !isfinite(out->range_to))
            luaL_error(L, "bl.sweep: 'tune.lr.range_test' needs 0 < from < to (multiples of "
                          "the scaled LR; default 1e-3 and 1e2)");
        lua_settop(L, ri);
    } else if (t != LUA_TNIL && t != LUA_TBOOLEAN) {
        luaL_error(L, "bl.sweep: 'tune.lr.range_test' must be true or a table {steps =, from "
                      "=, to =}, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* Pushes S_FACTORS: nil when not tuning, else tune.lr's factors (default 1/4 … 4); *out gets
 * the other settings of tune.lr. */
void bl__sweep_check_tune(lua_State *L, sweep_tune_args *out)
{
    static const double defaults[] = {0.25, 0.5, 1, 2, 4};
    static const char *const keys[] = {"lr", NULL};
    static const char *const lr_keys[] = {"factors", "eta", "rungs", "range_test", NULL};
    *out = (sweep_tune_args){.range_steps = 100, .range_from = 1e-3, .range_to = 1e2};
    double *eta = &out->eta;
    lua_Integer *rungs = &out->rungs;
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
        check_range_test(L, li, out);
    }
    for (size_t i = 0; !given && i < sizeof defaults / sizeof defaults[0]; i++) {
        lua_pushnumber(L, defaults[i]);
        lua_rawseti(L, li + 1, (lua_Integer)i + 1);
    }
    lua_replace(L, ti);                                                  /* [fs, lr] */
    lua_settop(L, ti);
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

/* The range test's batch function: state → B, from · (to/from)^(step/steps), its upvalues
 * being B, from, to and steps. */
static int range_batch(lua_State *L)
{
    lua_getfield(L, 1, "step");
    double step = lua_tonumber(L, -1);
    double from = lua_tonumber(L, lua_upvalueindex(2)), to = lua_tonumber(L, lua_upvalueindex(3));
    double steps = lua_tonumber(L, lua_upvalueindex(4));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushnumber(L, from * pow(to / from, step / steps));
    return 2;
}

/* Makes cfg (at `ci`) the group's LR range test: the same batch with the LR growing from
 * `from` to `to` × its LR over `steps` steps, the training loss at every step, no evaluation. */
static void range_config(lua_State *L, const sweep_call *c, int ci)
{
    int t = lua_getfield(L, ci, "batch");
    lua_Integer b = t == LUA_TNIL ? strtoll(bl_run_spec_default("batch"), NULL, 10)
                    : lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    if (b < 1)
        luaL_error(L, "bl.sweep: tune.lr.range_test needs a batch size (a positive integer), "
                      "got %s", luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    lua_pushinteger(L, b);
    lua_pushnumber(L, c->tune.range_from);
    lua_pushnumber(L, c->tune.range_to);
    lua_pushinteger(L, c->tune.range_steps);
    lua_pushcclosure(L, range_batch, 4);
    lua_setfield(L, ci, "batch");
    lua_pushinteger(L, b);
    lua_setfield(L, ci, "max_batch");
    lua_pushinteger(L, c->tune.range_steps);
    lua_setfield(L, ci, "max_steps");
    lua_createtable(L, 0, 1);
    lua_pushinteger(L, 1);
    lua_setfield(L, -2, "steps");
    lua_setfield(L, ci, "eval_every");
    static const char *const cleared[] = {"epochs", "max_seconds", "stop_at_target",
                                          "lr_schedule", NULL};
    for (size_t i = 0; cleared[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, ci, cleared[i]);
    }
    static const char *const on[] = {"skip_eval", "skip_test", NULL};
    for (size_t i = 0; on[i]; i++) {
        lua_pushboolean(L, 1);
        lua_setfield(L, ci, on[i]);
    }
    lua_pushinteger(L, 0);
    lua_setfield(L, ci, "train_eval_samples");
    lua_pushinteger(L, 0);
    lua_setfield(L, ci, "diverge_chance_evals");
}

/* A tuning run's changes to cfg (at `ci`), params (`pi`) and the label (`li`): the seed, the
 * LR × the factor (× the range test's centre), the rung's budget, and cfg.tune — what the
 * store keeps with the run, so a trial ({factor, rung, trial}), a counted repeat ({factor,
 * best = true}) and a range test ({range_test = true, steps, from, to}) never resume as each
 * other or as an untuned run. Pushes r.tune. */
void bl__sweep_tune_config(lua_State *L, const sweep_call *c, const bl_tune_entry *tr, int ci,
                           int pi, int li)
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
    if (tr->range) {
        double lr = scaled_lr(L, ci, bl__sweep_cfg_optim(L, ci).lr);
        range_config(L, c, ci);
        lua_createtable(L, 0, 4);
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "range_test");
        lua_pushinteger(L, c->tune.range_steps);
        lua_setfield(L, -2, "steps");
        lua_pushnumber(L, c->tune.range_from);
        lua_setfield(L, -2, "from");
        lua_pushnumber(L, c->tune.range_to);
        lua_setfield(L, -2, "to");
        lua_setfield(L, ci, "tune");
        lua_pushfstring(L, "%s lr_range_test", lua_tostring(L, li));
        lua_replace(L, li);
        lua_createtable(L, 0, 4);                                        /* r.tune */
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "range_test");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "best");
        lua_pushnumber(L, lr);
        lua_setfield(L, -2, "lr");
        return;
    }
    lua_rawgeti(L, S_FACTORS, (lua_Integer)tr->factor + 1);
    double f = lua_tonumber(L, -1) * tr->centre;
    lua_pop(L, 1);
    double lr = bl__sweep_cfg_optim(L, ci).lr * f;
    lua_pushnumber(L, lr);
    bl__sweep_set_lr(L, ci);
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

/* The centre hook: the LR the range test run `index` suggests (its history's effective LR and
 * training loss, bl_lr_range_pick) over the LR it started from (r.tune.lr, × 1); NaN when it
 * suggests none. Sets r.tune.centre and r.tune.suggested_lr. */
int bl__sweep_range_centre(lua_State *L, size_t index, double *centre)
{
    int top = lua_gettop(L);
    *centre = NAN;
    lua_rawgeti(L, S_RUNS, (lua_Integer)index + 1);                      /* [run] */
    int ri = top + 1;
    lua_getfield(L, ri, "tune");                                         /* [run, tune] */
    lua_getfield(L, ri + 1, "lr");
    double base = lua_tonumber(L, -1);
    lua_pop(L, 1);
    size_t n = lua_getfield(L, ri, "history") == LUA_TTABLE ? lua_rawlen(L, -1) : 0, m = 0;
    double *lr = lua_newuserdatauv(L, 2 * (n ? n : 1) * sizeof *lr, 0), *loss = lr + n;
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, ri + 2, (lua_Integer)i + 1);                      /* [.., p] */
        lua_getfield(L, -1, "lr");
        lua_getfield(L, -2, "train_loss");
        double a = lua_tonumber(L, -2), l = lua_tonumber(L, -1);
        if (a > 0 && isfinite(a) && (m == 0 || a > lr[m - 1])) {
            lr[m] = a;
            loss[m++] = l;                  /* a non-finite loss ends the curve there */
        }
        lua_pop(L, 3);
    }
    lbl_state *st = bl__lua_state(L);
    double pick = NAN;
    if (m < 5 || bl_lr_range_pick(st->ctx, lr, loss, m, &pick) != BL_OK)
        bl_clear_error(st->ctx);
    if (pick > 0 && base > 0) {
        *centre = pick / base;
        lua_pushnumber(L, *centre);
        lua_setfield(L, ri + 1, "centre");
        lua_pushnumber(L, pick);
        lua_setfield(L, ri + 1, "suggested_lr");
    }
    lua_settop(L, top);
    return BL_OK;
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
        if (gr->range_run != SIZE_MAX) {
            lua_pushnumber(L, gr->centre);
            lua_setfield(L, -2, "centre");
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
void bl__sweep_tuned_result(lua_State *L, sweep_call *c, bool quiet)
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

/* bl.recommend(runs [, opts]) and bl.fit_steps(points): the batch-size recommendation and the
 * S(B) = S_min + E_min/B fit of core/src/analysis/recommend.c (batchlab/recommend.h), for
 * Lua. `require "batchlab.recommend"` is a thin wrapper over these two.
 *
 * A run is a table: its batch is params.batch or batch (not a number: a schedule, by its
 * name); status "completed" or none counts as completed; time_to_target, steps_to_target
 * (NaN, nil or negative: not reached) and steps_to_target_error; the metric is final[metric]
 * or run[metric]; final.val_accuracy and final.train_accuracy; tune = {best =, lr =} (best ==
 * false: a trial, left out); the gns and peak lr of its history. `runs` may also be a sweep
 * result (a table with `runs`); a table whose `model` is a bl.model is one configuration:
 * the probe (bl.probe, l_probe.c).
 *
 * The result (docs/recommend.md): pick, tied, pareto, by_candidate (= by_batch), cbs,
 * sentence, reason, batch, basis, run, time_to_target or [metric], regime, tie_margin, fit.
 * When no completed run has a numeric batch and no schedule reached the target: nil and a
 * message. Misuse raises, pointing at the caller.
 *
 * When the runs were recorded in a results store (a run has `db` and `experiment`), the
 * recommendation is kept there with the experiment (bl_store_set_recommendation, as
 * bl_recommendation_json): result.stored = true, or result.store_error says why not (the
 * recommendation is returned either way). opts.store = false leaves the store alone. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/recommend.h"
#include "batchlab/store.h"
#include "lua/lbl.h"

#define LBL_RECOMMENDATION "batchlab.Recommendation"

/* Raises the message at the top, prefixed with the position of bl.recommend's caller. */
static int raise_at_caller(lua_State *L)
{
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
    return lua_error(L);
}

static int fail(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return raise_at_caller(L);
}

/* t[key] for a table t at `idx` (nil for anything else); pushes the value, returns its type. */
static int get(lua_State *L, int idx, const char *key)
{
    if (!lua_istable(L, idx)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, idx, key);
}

static double number_or_nan(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TNUMBER ? lua_tonumber(L, idx) : NAN;
}

static void push_number(lua_State *L, double v)
{
    if (v == floor(v) && fabs(v) < 0x1p53)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
}

/* t[key] = v when v is not NaN. */
static void set_number(lua_State *L, const char *key, double v)
{
    if (isnan(v))
        return;
    push_number(L, v);
    lua_setfield(L, -2, key);
}

/* The schedule's name of the run at `ri` whose batch is not a number: params.batch or batch
 * when a string, else their `name` field, else NULL ("schedule"). */
static const char *schedule_name(lua_State *L, int ri)
{
    static const char *const where[] = {"params", NULL};
    for (int pass = 0; pass < 2; pass++) {
        int t = pass == 0 ? (get(L, ri, where[0]), get(L, -1, "batch")) : get(L, ri, "batch");
        if (t == LUA_TSTRING)
            return lua_tostring(L, -1);
        if (t == LUA_TTABLE && get(L, -1, "name") == LUA_TSTRING)
            return lua_tostring(L, -1);
    }
    return NULL;
}

/* The run at `ri` as the recommendation sees it. Strings point into the run's tables (alive
 * while the runs are). */
static bl_rec_run read_run(lua_State *L, int ri, const char *metric)
{
    luaL_checkstack(L, 40, "recommend: reading a run");     /* more than LUA_MINSTACK */
    int top = lua_gettop(L);
    bl_rec_run r;
    memset(&r, 0, sizeof r);
    get(L, ri, "params");
    if (get(L, -1, "batch") == LUA_TNIL)
        get(L, ri, "batch");
    r.batch = number_or_nan(L, -1);
    if (!isfinite(r.batch))
        r.schedule = schedule_name(L, ri);
    get(L, ri, "status");
    r.completed = lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TSTRING &&
                                       strcmp(lua_tostring(L, -1), "completed") == 0);
    get(L, ri, "time_to_target");
    r.time_to_target = number_or_nan(L, -1);
    get(L, ri, "steps_to_target");
    r.steps_to_target = number_or_nan(L, -1);
    get(L, ri, "steps_to_target_error");
    r.steps_error = number_or_nan(L, -1);
    get(L, ri, "final");
    int fi = lua_gettop(L);
    if (get(L, fi, metric) == LUA_TNIL)
        get(L, ri, metric);
    r.metric = number_or_nan(L, -1);
    get(L, fi, "val_accuracy");
    get(L, fi, "train_accuracy");
    r.val_accuracy = number_or_nan(L, -2);
    r.train_accuracy = number_or_nan(L, -1);
    r.has_accuracy = true;
    /* an LR-tuned sweep: trials that are not their batch's best are left out */
    if (get(L, ri, "tune") == LUA_TTABLE) {
        int ti = lua_gettop(L);
        get(L, ti, "best");
        r.trial = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
        get(L, ti, "lr");
        r.lr = number_or_nan(L, -1);
    }
    /* the noise scale over the history's later half; its peak effective LR (the LR after
     * scaling and warmup) when no tuned LR is given */
    double peak = NAN;
    if (get(L, ri, "history") == LUA_TTABLE) {
        int hi = lua_gettop(L);
        size_t n = lua_rawlen(L, hi);
        double *step = lua_newuserdatauv(L, 2 * (n ? n : 1) * sizeof *step, 0), *g = step + n;
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, hi, (lua_Integer)i + 1);
            get(L, -1, "step");
            get(L, -2, "gns");
            get(L, -3, "lr");
            step[i] = number_or_nan(L, -3);
            g[i] = number_or_nan(L, -2);
            double lr = number_or_nan(L, -1);
            if (lr > 0 && !(lr <= peak))
                peak = lr;
            lua_pop(L, 4);
        }
        r.gns = bl_gns_summary(step, g, n);
    }
    if (!(r.lr > 0))
        r.lr = peak;
    if (!(r.lr > 0)) {
        get(L, ri, "lr");
        r.lr = number_or_nan(L, -1);
    }
    lua_settop(L, top);
    return r;
}

static void push_fit(lua_State *L, const bl_steps_fit *f)
{
    lua_createtable(L, 0, 6);
    lua_pushnumber(L, f->s_min);
    lua_setfield(L, -2, "s_min");
    lua_pushnumber(L, f->e_min);
    lua_setfield(L, -2, "e_min");
    lua_pushnumber(L, f->r2);
    lua_setfield(L, -2, "r2");
    lua_pushinteger(L, (lua_Integer)f->n);
    lua_setfield(L, -2, "n");
    lua_pushboolean(L, f->valid);
    lua_setfield(L, -2, "valid");
    if (f->valid) {
        lua_pushnumber(L, f->b_crit);
        lua_setfield(L, -2, "b_crit");
    }
}

static int rec_gc(lua_State *L)
{
    bl_recommendation_free(luaL_checkudata(L, 1, LBL_RECOMMENDATION));
    return 0;
}

static int check_branched(lua_State *L)
{
    static const char *const keys[] = {"batch", "lo", "hi", NULL};
    bl__lua_check_keys(L, 1, keys, "recommend.branched");
    return 0;
}

/* Reads opts.branched = {batch =, lo =, hi =} (at `idx`) into o. */
static void read_branched(lua_State *L, int idx, bl_recommend_options *o)
{
    lua_pushcfunction(L, check_branched);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        raise_at_caller(L);
    get(L, idx, "batch");
    get(L, idx, "lo");
    get(L, idx, "hi");
    o->branched_batch = number_or_nan(L, -3);
    o->branched_lo = number_or_nan(L, -2);
    o->branched_hi = number_or_nan(L, -1);
    lua_pop(L, 3);
    if (!(o->branched_batch > 0) || !isfinite(o->branched_batch))
        fail(L, "recommend: 'branched.batch' must be a number > 0");
    o->has_branched = true;
}

/* A candidate's table (pushed). */
static void push_candidate(lua_State *L, const bl_rec_batch *g)
{
    lua_createtable(L, 0, 24);
    if (isfinite(g->batch)) {
        char label[48];
        snprintf(label, sizeof label, "batch %.15g", g->batch);
        set_number(L, "batch", g->batch);
        lua_pushstring(L, label);
    } else {
        lua_pushstring(L, g->schedule);
        lua_setfield(L, -2, "schedule");
        lua_pushfstring(L, "schedule %s", g->schedule);
    }
    lua_setfield(L, -2, "label");
    set_number(L, "runs", g->runs);
    set_number(L, "completed", g->completed);
    set_number(L, "reached", g->reached);
    set_number(L, "trials", g->trials);
    set_number(L, "time_to_target", g->time_to_target);
    set_number(L, "time_lo", g->time_lo);
    set_number(L, "time_hi", g->time_hi);
    set_number(L, "steps_to_target", g->steps_to_target);
    set_number(L, "steps_error", g->steps_error);
    set_number(L, "metric", g->metric);
    set_number(L, "val_accuracy", g->val_accuracy);
    set_number(L, "gap", g->gap);
    set_number(L, "lr", g->lr);
    set_number(L, "gns", g->gns);
    set_number(L, "overhead", g->overhead);
    lua_pushstring(L, bl_regime_name(g->regime));
    lua_setfield(L, -2, "regime");
    lua_pushboolean(L, g->tied);
    lua_setfield(L, -2, "tied");
    lua_pushboolean(L, g->pareto);
    lua_setfield(L, -2, "pareto");
}

static void push_cbs(lua_State *L, const bl_cbs *c)
{
    lua_createtable(L, 0, 16);
    if (c->has_fit) {
        push_fit(L, &c->fit);
        set_number(L, "lo", c->b_crit_lo);
        set_number(L, "hi", c->b_crit_hi);
        lua_pushboolean(L, c->fit_trusted);
        lua_setfield(L, -2, "trusted");
        lua_pushboolean(L, c->few_points);
        lua_setfield(L, -2, "few_points");
        set_number(L, "resolution", c->resolution);
        lua_setfield(L, -2, "fit");
    }
    set_number(L, "b_ref", c->b_ref);
    set_number(L, "b20", c->b20);
    set_number(L, "b20_lo", c->b20_lo);
    set_number(L, "b20_hi", c->b20_hi);
    if (c->gns_runs > 0) {
        set_number(L, "gns", c->gns);
        set_number(L, "gns_lo", c->gns_lo);
        set_number(L, "gns_hi", c->gns_hi);
        set_number(L, "gns_runs", (double)c->gns_runs);
    }
    if (c->has_branched) {
        lua_createtable(L, 0, 3);
        set_number(L, "batch", c->branched);
        set_number(L, "lo", c->branched_lo);
        set_number(L, "hi", c->branched_hi);
        lua_setfield(L, -2, "branched");
    }
}

/* Keeps the recommendation with the experiment its runs were recorded under (the first run
 * with `db` and `experiment`); sets result.stored = true, or result.store_error. Does nothing
 * when no run was recorded. The result table is at the top. */
static void keep(lua_State *L, int runs, bl_ctx *ctx, const bl_recommendation *rec)
{
    int top = lua_gettop(L);
    const char *db = NULL, *exp = NULL;
    for (lua_Integer i = 1; !db && i <= (lua_Integer)lua_rawlen(L, runs); i++) {
        lua_rawgeti(L, runs, i);
        if (get(L, -1, "db") == LUA_TSTRING && get(L, -2, "experiment") == LUA_TSTRING) {
            db = lua_tostring(L, -2);                /* anchored in the run table */
            exp = lua_tostring(L, -1);
        } else {
            lua_settop(L, top);                      /* a few slots per run, not n */
        }
    }
    if (db) {
        char *json = NULL;
        bl_store *st = NULL;
        int64_t id;
        int rc = bl_recommendation_json(rec, &json);
        if (rc != BL_OK)
            rc = bl_error(ctx, rc, "out of memory");
        if (rc == BL_OK)
            rc = bl_store_open(ctx, db, &st);
        if (rc == BL_OK)
            rc = bl_store_find_experiment(ctx, st, exp, &id);
        if (rc == BL_OK)
            rc = bl_store_set_recommendation(ctx, st, id, json);
        bl_store_close(st);
        free(json);
        lua_settop(L, top);
        if (rc == BL_OK) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "stored");
        } else {
            lua_pushstring(L, bl_errmsg(ctx));
            lua_setfield(L, -2, "store_error");
        }
    }
    lua_settop(L, top);
}

static int check_opts(lua_State *L)
{
    static const char *const keys[] = {"metric", "higher_better", "branched", "store", NULL};
    bl__lua_check_keys(L, 1, keys, "recommend");
    return 0;
}

/* bl.recommend(runs [, opts = {metric =, higher_better =, branched =}]) → table | nil, msg */
static int l_recommend(lua_State *L)
{
    /* one configuration (a table whose `model` is a bl.model, not a list of runs): the
     * probe's prediction before any sweep (l_probe.c, batchlab/probe.h) */
    if (lua_istable(L, 1) && lua_getfield(L, 1, "model") == LUA_TUSERDATA &&
        luaL_testudata(L, -1, LBL_MODEL)) {
        lua_settop(L, 1);
        return bl__lua_probe(L);
    }
    lua_settop(L, 2);
    if (lua_istable(L, 1) && lua_rawlen(L, 1) == 0 && get(L, 1, "model") != LUA_TNIL)
        return fail(L, "recommend: 'model' must be a bl.model (a probe before a sweep: "
                       "bl.recommend{model = bl.model(...), dataset = ...}), or give the runs "
                       "of a sweep");
    lua_settop(L, 2);
    if (lua_istable(L, 1) && lua_rawlen(L, 1) == 0 && get(L, 1, "runs") == LUA_TTABLE)
        lua_replace(L, 1);                                   /* a sweep: its runs */
    lua_settop(L, 2);
    if (!lua_istable(L, 1))
        return fail(L, "recommend: expected a list of runs, got %s", luaL_typename(L, 1));
    const char *metric = "val_accuracy";
    bool higher;
    bl_recommend_options o;
    memset(&o, 0, sizeof o);
    if (!lua_isnil(L, 2)) {
        if (!lua_istable(L, 2))
            return fail(L, "recommend: 'opts' must be a table, got %s", luaL_typename(L, 2));
        lua_pushcfunction(L, check_opts);
        lua_pushvalue(L, 2);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK)
            return raise_at_caller(L);
        int t = lua_getfield(L, 2, "store");
        if (t != LUA_TNIL && t != LUA_TBOOLEAN)
            return fail(L, "recommend: 'store' must be a boolean");
        lua_settop(L, 2);
        t = lua_getfield(L, 2, "branched");
        if (t != LUA_TNIL && t != LUA_TTABLE)
            return fail(L, "recommend: 'branched' must be a table {batch =, lo =, hi =}");
        if (t == LUA_TTABLE)
            read_branched(L, lua_gettop(L), &o);
        lua_settop(L, 2);
        t = lua_getfield(L, 2, "metric");                    /* 3 */
        if (t != LUA_TNIL && t != LUA_TSTRING)
            return fail(L, "recommend: 'metric' must be a string");
        if (t == LUA_TSTRING)
            metric = lua_tostring(L, 3);
        t = lua_getfield(L, 2, "higher_better");             /* 4 */
        if (t != LUA_TNIL && t != LUA_TBOOLEAN)
            return fail(L, "recommend: 'higher_better' must be a boolean");
    }
    lua_settop(L, 4);
    higher = lua_isnil(L, 4) ? bl_metric_name_higher_is_better(metric) : lua_toboolean(L, 4);

    size_t n = lua_rawlen(L, 1);
    bl_rec_run *runs = lua_newuserdatauv(L, (n ? n : 1) * sizeof *runs, 0);      /* 5 */
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (lua_Integer)i + 1);
        runs[i] = read_run(L, lua_gettop(L), metric);
        lua_pop(L, 1);
    }
    bl_recommendation *rec = lua_newuserdatauv(L, sizeof *rec, 0);              /* 6 */
    memset(rec, 0, sizeof *rec);
    if (luaL_newmetatable(L, LBL_RECOMMENDATION)) {
        lua_pushcfunction(L, rec_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lbl_state *st = bl__lua_state(L);
    o.metric = metric;
    o.higher_better = higher;
    int rc = bl_recommend(st->ctx, runs, n, &o, rec);
    if (rc == BL_ENOTFOUND) {
        lua_pushnil(L);
        lua_pushfstring(L, "recommend: %s", bl_errmsg(st->ctx));
        return 2;
    }
    if (rc != BL_OK)
        return bl__lua_raise(L, st->ctx, "recommend");

    lua_createtable(L, 0, 20);                                                  /* 7 */
    if (isfinite(rec->batch))
        push_number(L, rec->batch);
    else
        lua_pushstring(L, rec->by_batch[rec->pick].schedule);
    lua_setfield(L, -2, "batch");
    lua_pushstring(L, rec->reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, rec->sentence);
    lua_setfield(L, -2, "sentence");
    lua_pushstring(L, rec->basis == BL_REC_BY_TARGET ? "time_to_target" : metric);
    lua_setfield(L, -2, "basis");
    if (rec->run != SIZE_MAX) {
        lua_rawgeti(L, 1, (lua_Integer)rec->run + 1);
        lua_setfield(L, -2, "run");
    }
    set_number(L, "time_to_target", rec->time_to_target);
    if (rec->basis == BL_REC_BY_METRIC)
        set_number(L, metric, rec->metric);
    lua_pushstring(L, bl_regime_name(rec->regime));
    lua_setfield(L, -2, "regime");
    set_number(L, "tie_margin", rec->tie_margin);
    if (rec->has_fit) {
        push_fit(L, &rec->fit);
        lua_setfield(L, -2, "fit");
    }
    push_cbs(L, &rec->cbs);
    lua_setfield(L, -2, "cbs");
    lua_createtable(L, (int)rec->batch_count, 0);                               /* 8 */
    lua_createtable(L, (int)rec->tied_count, 0);                                /* 9 */
    lua_createtable(L, 0, 0);                                                   /* 10 */
    for (size_t k = 0; k < rec->batch_count; k++) {
        const bl_rec_batch *g = &rec->by_batch[k];
        push_candidate(L, g);
        if (g->tied) {
            lua_pushvalue(L, -1);
            lua_rawseti(L, 9, (lua_Integer)lua_rawlen(L, 9) + 1);
        }
        if (g->pareto) {
            lua_pushvalue(L, -1);
            lua_rawseti(L, 10, (lua_Integer)lua_rawlen(L, 10) + 1);
        }
        if (k == rec->pick) {
            lua_pushvalue(L, -1);
            lua_setfield(L, 7, "pick");
        }
        lua_rawseti(L, 8, (lua_Integer)k + 1);
    }
    lua_setfield(L, 7, "pareto");
    lua_setfield(L, 7, "tied");
    lua_pushvalue(L, 8);
    lua_setfield(L, 7, "by_batch");                  /* the older name of the same list */
    lua_setfield(L, 7, "by_candidate");
    if (lua_isnil(L, 2) || (lua_getfield(L, 2, "store"), !lua_isboolean(L, -1)) ||
        lua_toboolean(L, -1)) {
        lua_settop(L, 7);
        keep(L, 1, st->ctx, rec);
    }
    lua_settop(L, 7);
    return 1;
}

/* bl.fit_steps({{batch =, steps =}, ...}) → {s_min, e_min, r2, n, valid [, b_crit]} |
 * nil, message (fewer than 2 points, or one batch size only) */
static int l_fit_steps(lua_State *L)
{
    if (!lua_istable(L, 1))
        return fail(L, "recommend.fit_steps: expected a list of {batch =, steps =}, got %s",
                    luaL_typename(L, 1));
    size_t n = lua_rawlen(L, 1);
    double *b = lua_newuserdatauv(L, 2 * (n ? n : 1) * sizeof *b, 0), *s = b + n;
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (lua_Integer)i + 1);
        get(L, -1, "batch");
        get(L, -2, "steps");
        b[i] = number_or_nan(L, -2);
        s[i] = number_or_nan(L, -1);
        lua_pop(L, 3);
        if (!(b[i] > 0) || !isfinite(b[i]) || !isfinite(s[i]))   /* bl_fit_steps's rule */
            return fail(L, "recommend.fit_steps: point %d must be {batch = B > 0, steps = S}",
                        (int)i + 1);
    }
    lbl_state *st = bl__lua_state(L);
    bl_steps_fit f;
    if (bl_fit_steps(st->ctx, b, s, n, &f) != BL_OK) {
        lua_pushnil(L);
        lua_pushstring(L, bl_errmsg(st->ctx));
        return 2;
    }
    push_fit(L, &f);
    return 1;
}

static const luaL_Reg recommend_funcs[] = {
    {"recommend", l_recommend},
    {"fit_steps", l_fit_steps},
    {NULL, NULL}};

void bl__lua_open_recommend(lua_State *L)
{
    luaL_setfuncs(L, recommend_funcs, 0);
}

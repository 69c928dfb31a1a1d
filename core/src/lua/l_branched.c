/* bl.critical_batch{...}: the critical batch size over training by branched training
 * (batchlab/branched.h), from Lua.
 *
 *   local cbs = bl.critical_batch { dataset = data, model = model, batch = 32, epochs = 1,
 *                                   optimizer = bl.optim.sgd { lr = 0.05 },
 *                                   n_points = 3, ks = {1, 2, 4, 8}, branch_samples = 6000,
 *                                   tolerance = 0.01 }
 *   cbs.points[i] = {step =, samples =, epoch =, b_crit =, lo =, hi =, capped =,
 *                    losses = {[k] = loss}, branch_samples = {[k] = n}}
 *   cbs.schedule  -- bl.scheduler("breakpoints", ...): bl.train{ batch = cbs.schedule }
 *   cbs.schedule_points = {{samples =, batch =, lr =}, ...}   -- its table
 *   cbs.estimate  -- {batch =, lo =, hi =} for bl.recommend(runs, {branched = cbs.estimate})
 *
 * The base run's keys are bl.train's and go through its translation (l_train.c,
 * bl__lua_job_plan); the keys of the measurement are read here. Misuse raises. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "batchlab/branched.h"
#include "batchlab/run_spec.h"
#include "lua/lbl.h"

/* The measurement's own keys. */
static const char *const own_keys[] = {"points", "n_points", "ks", "lr_rule", "lrs",
                                       "branch_samples", "tolerance", "measure", "evals",
                                       NULL};

/* bl.train keys the measurement does not take, and why. */
static const struct {
    const char *key, *why;
} refused[] = {
    {"stop", "the base run and the branches take no stop criterion"},
    {"on_point", "the runs are evaluated only where the measurement needs it"},
    {"eval_every", "the runs are evaluated only where the measurement needs it"},
    {"target", "the measurement compares losses, not times to a target"},
    {"stop_at_target", "the measurement compares losses, not times to a target"},
    {"max_seconds", "give the horizon in epochs or max_steps"},
    {"max_batch", "'batch' is a constant B0"},
    {"db", "nothing is recorded in the results store"},
    {"experiment", "nothing is recorded in the results store"},
    {"resume", "nothing is recorded in the results store"},
    {"tensorboard", "no event files are written"},
    {"checkpoint_every", "the branches start from in-memory snapshots"},
    {"checkpoint", "the branches start from in-memory snapshots"},
    {"save", "the branches start from in-memory snapshots"},
    {"init", "the base run starts from the model's initial weights"},
};

#define N_REFUSED (sizeof refused / sizeof refused[0])

static bool is_refused(const char *key)
{
    for (size_t i = 0; i < N_REFUSED; i++)
        if (strcmp(key, refused[i].key) == 0)
            return true;
    return false;
}

/* A refused key raises with its reason; any other key must be bl.train's or the measurement's
 * own. */
static void check_keys(lua_State *L)
{
    for (size_t i = 0; i < N_REFUSED; i++) {
        if (lua_getfield(L, 1, refused[i].key) != LUA_TNIL)
            luaL_error(L, "bl.critical_batch: '%s' is not taken (%s)", refused[i].key,
                       refused[i].why);
        lua_pop(L, 1);
    }
    const char *keys[96];
    size_t n_set, n = 0;
    const bl_run_setting *set = bl_run_spec_settings(&n_set);
    for (size_t i = 0; i < n_set && n < 80; i++)
        if (!is_refused(set[i].opt.name))
            keys[n++] = set[i].opt.name;
    for (const bl_run_object_key *k = bl_run_spec_object_keys(); k->name && n < 80; k++)
        if (!is_refused(k->name))
            keys[n++] = k->name;
    for (size_t i = 0; own_keys[i]; i++)
        keys[n++] = own_keys[i];
    keys[n] = NULL;
    bl__lua_check_keys(L, 1, keys, "bl.critical_batch");
}

/* An integer at the stack top ≥ lo, or raises naming `key` (an element of a list when
 * `list`). */
static int64_t integer_at(lua_State *L, const char *key, int64_t lo, bool list)
{
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < lo)
        luaL_error(L, "bl.critical_batch: '%s' must %s integer%s ≥ %d, got %s", key,
                   list ? "hold" : "be an", list ? "s" : "", (int)lo,
                   luaL_tolstring(L, -1, NULL));
    return (int64_t)v;
}

/* A count for an int field: too large stays too large (the core's check names it). */
static int small_int(int64_t v)
{
    return v > 1000000 ? 1000000 : (int)v;
}

/* A list of integers ≥ lo under `key` into out (at most cap); returns the count, or 0 when
 * the key is absent. */
static size_t integer_list(lua_State *L, const char *key, int64_t lo, int64_t *out, size_t cap)
{
    int t = lua_getfield(L, 1, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != LUA_TTABLE)
        luaL_error(L, "bl.critical_batch: '%s' must be a list of integers, got %s", key,
                   luaL_typename(L, -1));
    size_t n = (size_t)lua_rawlen(L, -1);
    if (n < 1 || n > cap)
        luaL_error(L, "bl.critical_batch: '%s' must hold 1 to %d integers, got %d", key,
                   (int)cap, (int)n);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        out[i] = integer_at(L, key, lo, true);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return n;
}

static double number_key(lua_State *L, const char *key, double def)
{
    int t = lua_getfield(L, 1, key);
    double v = def;
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER)
            luaL_error(L, "bl.critical_batch: '%s' must be a number, got %s", key,
                       luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

typedef struct own {
    bl_branched_config c;
    int64_t points[BL_BRANCH_MAX_POINTS];
    int64_t ks[BL_BRANCH_MAX_KS];
    double lrs[BL_BRANCH_MAX_KS];
} own;

static void read_own(lua_State *L, bl_ctx *ctx, own *o)
{
    bl_branched_config *c = &o->c;
    *c = bl_branched_defaults();
    size_t n = integer_list(L, "points", 1, o->points, BL_BRANCH_MAX_POINTS);
    if (n) {
        c->points = o->points;
        c->n_given = n;
    }
    if (lua_getfield(L, 1, "n_points") != LUA_TNIL) {
        if (n)
            luaL_error(L, "bl.critical_batch: give 'points' or 'n_points', not both");
        c->n_points = small_int(integer_at(L, "n_points", 1, false));
    }
    lua_pop(L, 1);
    n = integer_list(L, "ks", 1, o->ks, BL_BRANCH_MAX_KS);
    if (n) {
        c->ks = o->ks;
        c->n_ks = n;
    }
    if (lua_getfield(L, 1, "branch_samples") == LUA_TNIL)
        luaL_error(L, "bl.critical_batch: 'branch_samples' is required (Δ, the training "
                      "samples every branch trains)");
    c->branch_samples = integer_at(L, "branch_samples", 1, false);
    lua_pop(L, 1);
    c->tolerance = number_key(L, "tolerance", c->tolerance);
    if (lua_getfield(L, 1, "evals") != LUA_TNIL)
        c->evals = small_int(integer_at(L, "evals", 1, false));
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "lr_rule") != LUA_TNIL) {
        const char *r = lua_tostring(L, -1);
        if (lua_type(L, -1) != LUA_TSTRING ||
            !(strcmp(r, "none") == 0 || strcmp(r, "linear") == 0 || strcmp(r, "sqrt") == 0))
            luaL_error(L, "bl.critical_batch: 'lr_rule' must be \"linear\", \"sqrt\" or "
                          "\"none\", got %s", luaL_tolstring(L, -1, NULL));
        c->lr_rule = strcmp(r, "linear") == 0 ? BL_LR_SCALE_LINEAR
                     : strcmp(r, "sqrt") == 0 ? BL_LR_SCALE_SQRT
                                              : BL_LR_SCALE_NONE;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "measure") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING ||
            bl_branch_measure_parse(ctx, lua_tostring(L, -1), &c->measure) != BL_OK)
            luaL_error(L, "bl.critical_batch: 'measure' must be \"auto\", \"val_loss\" or "
                          "\"train_loss\", got %s", luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    int t = lua_getfield(L, 1, "lrs");
    if (t != LUA_TNIL) {
        if (t != LUA_TTABLE)
            luaL_error(L, "bl.critical_batch: 'lrs' must be a table {[k] = lr} for every k "
                          "of 'ks', got %s", luaL_typename(L, -1));
        for (size_t i = 0; i < c->n_ks; i++) {
            if (lua_geti(L, -1, (lua_Integer)c->ks[i]) != LUA_TNUMBER)
                luaL_error(L, "bl.critical_batch: 'lrs' has no LR for k = %d (give {[k] = lr} "
                              "for every k of 'ks')", (int)c->ks[i]);
            o->lrs[i] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        c->lrs = o->lrs;
    }
    lua_pop(L, 1);
}

/* Replaces the argument table with a copy holding only bl.train's keys. */
static void strip_own_keys(lua_State *L)
{
    lua_newtable(L);                        /* [args, copy] */
    lua_pushnil(L);
    while (lua_next(L, 1)) {                /* [args, copy, k, v] */
        bool mine = false;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (size_t i = 0; own_keys[i]; i++)
                mine |= strcmp(lua_tostring(L, -2), own_keys[i]) == 0;
        if (mine) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);                  /* [args, copy, k, k, v] */
        lua_rawset(L, -4);
    }
    lua_replace(L, 1);                      /* [copy] */
}

static void on_branch(void *user, int point, int64_t k, double loss)
{
    (void)user;
    fprintf(stderr, "critical batch: point %d, k = %lld: loss %.6g\n", point + 1, (long long)k,
            loss);
}

static void set_int(lua_State *L, const char *key, int64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, key);
}

static void set_num(lua_State *L, const char *key, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

/* The schedule: bl.scheduler("breakpoints", {unit = "samples", at =, batch =, lr =}), and
 * its table as `schedule_points` = {{samples =, batch =, lr =}, ...}. */
static void push_schedule(lua_State *L, const bl_branched_result *r)
{
    lua_createtable(L, (int)r->n_schedule, 0);                /* [points] */
    for (size_t i = 0; i < r->n_schedule; i++) {
        lua_createtable(L, 0, 3);
        set_int(L, "samples", r->schedule[i].samples);
        set_int(L, "batch", r->schedule[i].batch);
        set_num(L, "lr", r->schedule[i].lr_factor);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "schedule_points");
    lua_pushcfunction(L, bl__lua_scheduler);
    lua_pushliteral(L, "breakpoints");
    lua_createtable(L, 0, 4);                                 /* [f, name, opts] */
    lua_pushliteral(L, "samples");
    lua_setfield(L, -2, "unit");
    const char *keys[] = {"at", "batch", "lr"};
    for (int f = 0; f < 3; f++) {
        lua_createtable(L, (int)r->n_schedule, 0);
        for (size_t i = 0; i < r->n_schedule; i++) {
            const bl_branch_breakpoint *b = &r->schedule[i];
            if (f == 0)
                lua_pushnumber(L, (lua_Number)b->samples);
            else if (f == 1)
                lua_pushinteger(L, (lua_Integer)b->batch);
            else
                lua_pushnumber(L, b->lr_factor);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, keys[f]);
    }
    lua_call(L, 2, 1);                                        /* [scheduler] */
    lua_setfield(L, -2, "schedule");
}

static void push_result(lua_State *L, const bl_branched_result *r)
{
    lua_createtable(L, 0, 12);
    set_int(L, "base_batch", r->base_batch);
    set_num(L, "base_lr", r->base_lr);
    lua_pushstring(L, bl_branch_measure_name(r->measure));
    lua_setfield(L, -2, "measure");
    lua_createtable(L, (int)r->n_ks, 0);
    for (size_t i = 0; i < r->n_ks; i++) {
        lua_pushinteger(L, (lua_Integer)r->ks[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "ks");
    lua_createtable(L, 0, (int)r->n_ks);
    for (size_t i = 0; i < r->n_ks; i++) {
        lua_pushnumber(L, r->lrs[i]);
        lua_rawseti(L, -2, (lua_Integer)r->ks[i]);
    }
    lua_setfield(L, -2, "lrs");
    lua_createtable(L, (int)r->n_points, 0);
    for (size_t i = 0; i < r->n_points; i++) {
        const bl_branch_point *p = &r->points[i];
        lua_createtable(L, 0, 10);
        set_int(L, "step", p->step);
        set_int(L, "samples", p->samples);
        set_num(L, "epoch", p->epoch);
        set_int(L, "b_crit", p->b_crit);
        set_int(L, "lo", p->lo);
        if (!p->capped)
            set_int(L, "hi", p->hi);
        lua_pushboolean(L, p->capped);
        lua_setfield(L, -2, "capped");
        lua_createtable(L, 0, (int)r->n_ks);
        for (size_t j = 0; j < r->n_ks; j++) {
            lua_pushnumber(L, p->loss[j]);
            lua_rawseti(L, -2, (lua_Integer)r->ks[j]);
        }
        lua_setfield(L, -2, "losses");
        lua_createtable(L, 0, (int)r->n_ks);
        for (size_t j = 0; j < r->n_ks; j++) {
            lua_pushinteger(L, (lua_Integer)p->branch_samples[j]);
            lua_rawseti(L, -2, (lua_Integer)r->ks[j]);
        }
        lua_setfield(L, -2, "branch_samples");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "points");
    set_int(L, "b_crit", r->estimate);
    lua_createtable(L, 0, 3);
    set_int(L, "batch", r->estimate);
    set_int(L, "lo", r->estimate_lo);
    if (r->estimate_hi > 0)
        set_int(L, "hi", r->estimate_hi);
    lua_setfield(L, -2, "estimate");
    set_num(L, "cost_seconds", r->seconds);
    push_schedule(L, r);
}

int bl__lua_critical_batch(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 40, "bl.critical_batch");
    check_keys(L);
    lbl_state *st = bl__lua_state(L);
    if (st->interrupt && *st->interrupt)
        return luaL_error(L, "interrupted");
    int bt = lua_getfield(L, 1, "batch");
    lua_pop(L, 1);
    if (bt != LUA_TNIL && bt != LUA_TNUMBER)
        return luaL_error(L, "bl.critical_batch: 'batch' must be a number (the base batch B0), "
                             "not a schedule");
    own o;
    read_own(L, st->ctx, &o);
    strip_own_keys(L);

    bl_run_plan plan;
    lbl_job *j = bl__lua_job_plan(L, &plan);
    o.c.base = &plan;
    if (!bl_config_bool(j->spec, "quiet"))
        o.c.on_branch = on_branch;
    bl_branched_result *r = lua_newuserdatauv(L, sizeof *r, 0);   /* freed by Lua */
    st->interrupted = false;
    if (bl_branched_run(j->ctx, &o.c, r) != BL_OK) {
        if (st->interrupt && *st->interrupt) {
            st->interrupted = true;
            return luaL_error(L, "interrupted");
        }
        return bl__lua_raise(L, j->ctx, "bl.critical_batch");
    }
    push_result(L, r);
    return 1;
}

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
 * `tune = {lr = ...}` tunes the learning rate per point by successive halving: the tuner of
 * engine/tune.c (batchlab/tune.h) takes the place of bl_sweep_run and hands out trials, which
 * run through point_main like points; l_tune.c adds what makes a point a trial and builds the
 * tuned result. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/dist.h"
#include "lua/l_sweep.h"

static const char *const sweep_keys[] = {"name", "base", "vary", "target", "score",
                                         "higher_is_better", "quiet", "on_run",
                                         "tensorboard", "db", "resume", "tune", "seeds",
                                         "repeats", "isolate", "timeout", "retries",
                                         "ranks_per_run", NULL};

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
bl_optim_config bl__sweep_cfg_optim(lua_State *L, int ci)
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
void bl__sweep_set_lr(lua_State *L, int ci)
{
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "bl.sweep: vary.lr values must be numbers, got %s",
                   luaL_typename(L, -1));
    bl_optim_config oc = bl__sweep_cfg_optim(L, ci);
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

/* ---- the call: what the sweep's hooks need ------------------------------------------------- */

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
            bl__sweep_set_lr(L, ci);
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

/* Sets the run table at the top's params (the table at `pi`) and index, and moves it into
 * runs[index + 1]. */
static void keep_run(lua_State *L, int pi, size_t index)
{
    lua_pushvalue(L, pi);
    lua_setfield(L, -2, "params");
    lua_pushinteger(L, (lua_Integer)index + 1);
    lua_setfield(L, -2, "index");
    lua_rawseti(L, S_RUNS, (lua_Integer)index + 1);
}

/* Pushes the run table of a run that did not finish training: status, stopped_by, error, the
 * parameters of `vary` (at `pi`) echoed but lr, and the label (at `li`). */
static void push_unfinished(lua_State *L, sweep_call *c, const char *status,
                            const char *stopped_by, const char *msg, int pi, int li)
{
    lua_createtable(L, 0, 12);
    lua_pushstring(L, status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, stopped_by);
    lua_setfield(L, -2, "stopped_by");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "error");
    for (size_t k = 0; k < c->grid.nk; k++) {     /* echo the parameters */
        const char *key = c->keys[c->grid.order[k]];
        if (strcmp(key, "lr") != 0) {
            lua_getfield(L, pi, key);
            lua_setfield(L, -2, key);
        }
    }
    lua_pushvalue(L, li);
    lua_setfield(L, -2, "label");
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
        bl__sweep_tune_config(L, c, tr, ci, pi, li);                        /* [label, tune] */
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
        bl__lua_run_ended(L, lua_tostring(L, li), BL_RUN_FAILED, msg);   /* announced */
        push_unfinished(L, c, "failed", "error", msg, pi, li);
        lua_remove(L, -2);
    }
    if (tr) {
        lua_pushvalue(L, ti);
        lua_setfield(L, -2, "tune");
    }
    keep_run(L, pi, index);
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
                : strcmp(status, "failed") == 0 || strcmp(status, "crashed") == 0 ||
                        strcmp(status, "timed_out") == 0
                    ? BL_SWEEP_FAILED : BL_SWEEP_OTHER;
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
    bl__lua_sweep_position(L, (int)++c->started,
                           (int)(c->tuned.planned ? c->tuned.planned : c->grid.total));
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

static int tune_centre(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r,
                       double *centre)
{
    return bl__sweep_range_centre(((sweep_call *)user)->L, index, centre);
}

/* ---- isolated runs (bl_sweep_isolated) ---------------------------------------------------- */

static void iso_child_init(void *user, int fd, volatile sig_atomic_t *stop)
{
    lbl_state *st = bl__lua_state(((sweep_call *)user)->L);
    st->isolate_fd = fd;
    st->interrupt = stop;           /* the child's own signal handler sets it */
    st->supervising = NULL;
}

/* In the child: {run = runs[index + 1], err = the error kept in S_ERR} as bytes. */
static int iso_pack(void *user, bl_ctx *ctx, size_t index, int rc, void **data, size_t *len)
{
    lua_State *L = ((sweep_call *)user)->L;
    lua_createtable(L, 0, 2);
    lua_rawgeti(L, S_RUNS, (lua_Integer)index + 1);
    lua_setfield(L, -2, "run");
    if (rc != BL_OK) {
        lua_pushvalue(L, S_ERR);
        lua_setfield(L, -2, "err");
    }
    char *bytes = NULL;
    int prc = bl__lua_pack(L, -1, &bytes, len);
    lua_pop(L, 1);
    *data = bytes;
    return prc == BL_OK ? BL_OK : bl_error(ctx, prc, "isolated run: out of memory");
}

/* In the parent: the child's run table becomes runs[index + 1]; its error, S_ERR. */
static int iso_result(void *user, bl_ctx *ctx, size_t index, int rc, const char *msg,
                      const void *data, size_t len, bl_sweep_point *p)
{
    sweep_call *c = user;
    lua_State *L = c->L;
    int top = lua_gettop(L);
    if (!bl__lua_unpack(L, data, len) || !lua_istable(L, -1)) {
        lua_settop(L, top);
        lua_pushfstring(L, "bl.sweep: the result of an isolated run is malformed");
        return keep_error(L, BL_ESCRIPT);
    }
    lua_getfield(L, -1, "run");
    if (lua_istable(L, -1))
        lua_rawseti(L, S_RUNS, (lua_Integer)index + 1);
    else
        lua_pop(L, 1);
    if (rc != BL_OK) {
        if (lua_getfield(L, -1, "err") == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushstring(L, msg);
        }
        lua_remove(L, -2);
        c->interrupted = rc == BL_EINTERRUPTED;
        return keep_error(L, rc == BL_EINTERRUPTED ? BL_EINTERRUPTED : BL_ESCRIPT);
    }
    lua_pop(L, 1);
    (void)p;                         /* the child's point stands */
    return BL_OK;
}

/* The run table of a point whose child did not come back (argument S_NSLOTS + 1: index,
 * + 2: the loss as light userdata): recorded in the store and kept in runs[index + 1]. */
static int lost_main(lua_State *L)
{
    sweep_call *c = lua_touserdata(L, S_CALL);
    size_t index = (size_t)lua_tointeger(L, S_NSLOTS + 1);
    const bl_isolate_loss *loss = lua_touserdata(L, S_NSLOTS + 2);
    lua_newtable(L);                                                     /* a scratch cfg */
    int ci = lua_gettop(L);
    lua_getfield(L, S_BASE, "optimizer");
    lua_setfield(L, ci, "optimizer");
    lua_newtable(L);
    int pi = lua_gettop(L);
    point_values(L, c, index, ci, pi);                                   /* [label] */
    int li = lua_gettop(L);
    if (lua_getfield(L, S_BASE, "label") == LUA_TSTRING)
        lua_replace(L, li);
    else
        lua_pop(L, 1);
    int64_t id = bl__lua_store_lost(L, loss, c->quiet);
    push_unfinished(L, c, bl_run_status_name(loss->status), loss->stopped_by, loss->what, pi,
                    li);
    if (loss->signal) {
        lua_pushstring(L, loss->signal_name);
        lua_setfield(L, -2, "signal");
    }
    if (loss->status == BL_RUN_TIMED_OUT) {
        lua_pushnumber(L, loss->limit);
        lua_setfield(L, -2, "timeout");
    }
    if (id > 0) {
        lua_pushinteger(L, (lua_Integer)id);
        lua_setfield(L, -2, "run_id");
    }
    keep_run(L, pi, index);
    return 0;
}

static int iso_lost(void *user, bl_ctx *ctx, size_t index, const bl_isolate_loss *loss,
                    bl_sweep_point *p)
{
    sweep_call *c = user;
    lua_State *L = c->L;
    lua_pushcfunction(L, lost_main);
    for (int i = 1; i <= S_NSLOTS; i++)
        lua_pushvalue(L, i);
    lua_pushinteger(L, (lua_Integer)index);
    lua_pushlightuserdata(L, (void *)loss);
    if (lua_pcall(L, S_NSLOTS + 2, 0, 0) != LUA_OK)
        return keep_error(L, BL_ESCRIPT);
    p->status = BL_SWEEP_FAILED;
    return BL_OK;
}

/* ranks_per_run of the sweep's table (default 1): the ranks of an MPI job that train each
 * point together (data_parallel runs); raises on bad values. */
static int ranks_per_run(lua_State *L)
{
    int t = lua_getfield(L, S_ARGS, "ranks_per_run");
    lua_Integer n = 1;
    if (t != LUA_TNIL && (!lua_isinteger(L, -1) || (n = lua_tointeger(L, -1)) < 1 ||
                          n > 1 << 20))
        luaL_error(L, "bl.sweep: 'ranks_per_run' must be an integer ≥ 1, got %s",
                   luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    if (n > 1 && bl_dist_size() % (int)n != 0)
        luaL_error(L, "bl.sweep: ranks_per_run = %d does not divide the %d ranks of the job",
                   (int)n, bl_dist_size());
    if (n > 1) {            /* a group trains one run together, or each rank would repeat it */
        lua_getfield(L, S_BASE, "data_parallel");
        bool dp = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (!dp)
            luaL_error(L, "bl.sweep: ranks_per_run = %d needs data_parallel = true in base "
                          "(a group of ranks trains one run together)", (int)n);
    }
    return (int)n;
}

/* isolate, timeout and retries of the sweep's table; raises on bad values. */
static void isolation(lua_State *L, bool *isolate, double *timeout, int *retries)
{
    int top = lua_gettop(L);
    int t = lua_getfield(L, S_ARGS, "timeout");
    if (t != LUA_TNIL && (t != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0) ||
                          !isfinite(lua_tonumber(L, -1))))
        luaL_error(L, "bl.sweep: 'timeout' must be a positive finite number of seconds");
    *timeout = t == LUA_TNIL ? 0 : lua_tonumber(L, -1);
    t = lua_getfield(L, S_ARGS, "isolate");
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
        luaL_error(L, "bl.sweep: 'isolate' must be a boolean, got %s", luaL_typename(L, -1));
    *isolate = t == LUA_TNIL ? *timeout > 0 : lua_toboolean(L, -1);
    if (*timeout > 0 && !*isolate)
        luaL_error(L, "bl.sweep: 'timeout' needs isolate = true (a run in this process cannot "
                      "be stopped inside a plugin)");
    t = lua_getfield(L, S_ARGS, "retries");
    if (t != LUA_TNIL && (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
                          lua_tointeger(L, -1) > 1000))
        luaL_error(L, "bl.sweep: 'retries' must be an integer from 0 to 1000");
    *retries = t == LUA_TNIL ? 0 : (int)lua_tointeger(L, -1);
    if (*isolate && *timeout == 0 && lua_getfield(L, S_BASE, "max_seconds") == LUA_TNUMBER &&
        isfinite(lua_tonumber(L, -1)) && lua_tonumber(L, -1) > 0)
        *timeout = 2 * lua_tonumber(L, -1) + 30;
    lua_settop(L, top);
}

/* bl.sweep{name =, base =, vary =, target =, score =, higher_is_better =, quiet =, on_run =,
 *          seeds = | repeats =, tune =, isolate =, timeout =, retries =}
 * → {name =, runs = {...}, best = run | nil, failed = n, resumed = n, total = n
 *    [, tuned = {...}, lr_fit = {...}]} */
int bl__lua_sweep(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 40, "bl.sweep");
    bl__lua_check_keys(L, 1, sweep_keys, "bl.sweep");
    check_args(L);                                                       /* slots 2..9 */
    bl__sweep_check_seeds(L);                                            /* S_SEEDS */
    sweep_tune_args targs;
    bl__sweep_check_tune(L, &targs);                                     /* S_FACTORS */
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
    c->tune = targs;
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

    bool isolate;
    double timeout;
    int retries;
    isolation(L, &isolate, &timeout, &retries);
    c->quiet = lua_toboolean(L, S_QUIET) || st->quiet;
    /* under mpirun with several ranks: the ranks share the points (docs/distributed.md) */
    bl_sweep_executor dist;
    bool distributed = bl_sweep_distributed(ranks_per_run(L), &dist);
    if (distributed && isolate)
        return luaL_error(L, "bl.sweep: isolated runs ('isolate' or 'timeout') cannot be "
                             "combined with a distributed sweep (mpirun, --workers) yet");
    if (tuning) {
        /* A tuning run's index is not a grid point's, which the isolated executor's lost-run
         * record needs: not supported together yet. */
        if (isolate)
            return luaL_error(L, "bl.sweep: 'tune' cannot be combined with isolated runs "
                                 "('isolate' or 'timeout') yet");
        bl_tune_options to = {.groups = c->grid.total, .factors = lua_rawlen(L, S_FACTORS),
                              .eta = targs.eta, .rungs = (size_t)targs.rungs,
                              .range_test = targs.range_test,
                              .seeds = lua_isnil(L, S_SEEDS) ? 1 : lua_rawlen(L, S_SEEDS),
                              .higher_is_better = lua_toboolean(L, S_HIGHER)};
        bl_tune_hooks th = {.user = c, .run = tune_run, .on_run = tune_on_run,
                            .score = lua_isnil(L, S_SCORE) ? NULL : tune_score,
                            .centre = tune_centre, .pack = iso_pack, .unpack = iso_result};
        int rc = bl_tune_run(st->ctx, &to, &th, distributed ? &dist : NULL, &c->tuned);
        if (rc == BL_ESCRIPT || rc == BL_EINTERRUPTED) {
            lua_pushvalue(L, S_ERR);
            return lua_error(L);
        }
        if (rc != BL_OK)
            return bl__lua_raise(L, st->ctx, "bl.sweep");
        bl__sweep_tuned_result(L, c, c->quiet);
        return 1;
    }
    bl_sweep_options opts = {.points = c->grid.total, .higher_is_better =
                             lua_toboolean(L, S_HIGHER)};
    bl_sweep_hooks hooks = {.user = c, .run = hook_run, .on_point = hook_on_point,
                            .score = lua_isnil(L, S_SCORE) ? NULL : hook_score,
                            .pack = iso_pack, .unpack = iso_result};
    bl_isolate_hooks iso = {.user = c, .timeout = timeout, .interrupt = st->interrupt,
                            .supervising = st->supervising, .child_init = iso_child_init,
                            .pack = iso_pack, .result = iso_result, .lost = iso_lost};
    bl_sweep_executor isolated;
    bl_sweep_isolated(&iso, &isolated);
    int saved_retries = st->retries;
    st->retries = retries;
    int rc = bl_sweep_run(st->ctx, &opts, &hooks,
                          isolate ? &isolated : distributed ? &dist : NULL, &c->sum);
    st->retries = saved_retries;
    bl__lua_sweep_position(L, 0, 0);
    if (rc == BL_EINTERRUPTED && lua_isnil(L, S_ERR)) {
        st->interrupted = true;
        lua_pushliteral(L, "interrupted");
        lua_replace(L, S_ERR);
    }
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


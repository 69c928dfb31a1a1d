/* The engine's callbacks into Lua during bl.train: the batch schedule (once per step), the stop
 * criterion and the point observer (once per evaluation point).
 *
 * The schedule is on the hot path, so its call allocates nothing: the state table is made
 * once per run with every key present and is updated in place with lua_rawset on keys interned
 * once (an array of key strings indexed by LBL_K_*); `state.last` is refreshed only when the
 * engine has made a new evaluation point. Everything that may allocate (new tables) runs inside
 * lua_pcall, and so does every call of user code, whose errors come back to the engine as a
 * message (with the traceback) and end the run, never as a longjmp through the engine. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lua/lbl.h"

static const char *const state_keys[LBL_K_COUNT] = {
    "step", "epoch", "epoch_progress", "samples", "train_size", "wall", "batch", "lr", "gns",
    "last"};

void bl__lua_prepare_schedule(lua_State *L, lbl_job *j)
{
    lua_createtable(L, LBL_K_COUNT, 0);                         /* [keys] */
    for (int k = 0; k < LBL_K_COUNT; k++) {
        lua_pushstring(L, state_keys[k]);
        lua_rawseti(L, -2, k + 1);
    }
    j->keys = lua_gettop(L);
    /* 16 hash slots: the 9 fields now and `last` later never make it grow. */
    lua_createtable(L, 0, 16);                                  /* [keys, state] */
    for (int k = 1; k < LBL_K_LAST; k++) {
        lua_pushstring(L, state_keys[k - 1]);
        if (k == LBL_K_EPOCH_PROGRESS || k == LBL_K_WALL || k == LBL_K_LR || k == LBL_K_GNS)
            lua_pushnumber(L, 0.0);
        else
            lua_pushinteger(L, 0);
        lua_rawset(L, -3);
    }
    j->state = lua_gettop(L);
    memset(&j->shown, 0, sizeof j->shown);                     /* what the table holds */
}

static inline void set_integer(lua_State *L, const lbl_job *j, int key, int64_t v)
{
    lua_rawgeti(L, j->keys, key);
    lua_pushinteger(L, (lua_Integer)v);
    lua_rawset(L, j->state);
}

static inline void set_number(lua_State *L, const lbl_job *j, int key, double v)
{
    lua_rawgeti(L, j->keys, key);
    lua_pushnumber(L, v);
    lua_rawset(L, j->state);
}

/* Protected part of refreshing state.last: [point, state] → creates or fills the table.
 * (A function called through lua_pcall has its own stack frame, so the job's slots are
 * passed in as arguments.) */
static int refresh_last(lua_State *L)
{
    const bl_eval_point *p = lua_touserdata(L, 1);
    if (lua_getfield(L, 2, "last") == LUA_TTABLE) {             /* [last] */
        bl__lua_fill_point(L, -1, p);
        return 0;
    }
    bl__lua_push_point(L, p);
    lua_setfield(L, 2, "last");
    return 0;
}

/* Where a Lua function was defined, for messages ("test.lua:12"), into buf. */
static const char *where_defined(lua_State *L, int idx, char *buf, size_t cap)
{
    lua_Debug ar;
    if (!lua_isfunction(L, idx) || lua_iscfunction(L, idx))
        return "";
    lua_pushvalue(L, idx);
    if (!lua_getinfo(L, ">S", &ar))
        return "";
    snprintf(buf, cap, " (function at %s:%d)", ar.short_src, ar.linedefined);
    return buf;
}

/* Ends a callback with an error: "<what>: <message at the stack top>". */
static int fail(lua_State *L, bl_ctx *ctx, int top, const char *what)
{
    int rc = bl_error(ctx, BL_ESCRIPT, "%s: %s", what, lua_tostring(L, -1));
    lua_settop(L, top);
    return rc;
}

int bl__lua_batch_fn(void *user, bl_ctx *ctx, const bl_train_state *s, int64_t *batch,
                     double *lr_factor)
{
    lbl_job *j = user;
    lua_State *L = j->L;
    int top = lua_gettop(L);

    /* Only what changed since the last call (step, samples, wall and progress usually). */
    bl_train_state *o = &j->shown;
    if (s->step != o->step) set_integer(L, j, LBL_K_STEP, o->step = s->step);
    if (s->epoch != o->epoch) set_integer(L, j, LBL_K_EPOCH, o->epoch = s->epoch);
    if (s->epoch_progress != o->epoch_progress)
        set_number(L, j, LBL_K_EPOCH_PROGRESS, o->epoch_progress = s->epoch_progress);
    if (s->samples != o->samples) set_integer(L, j, LBL_K_SAMPLES, o->samples = s->samples);
    if (s->train_size != o->train_size)
        set_integer(L, j, LBL_K_TRAIN_SIZE, o->train_size = s->train_size);
    if (s->wall != o->wall) set_number(L, j, LBL_K_WALL, o->wall = s->wall);
    if (s->batch != o->batch) set_integer(L, j, LBL_K_BATCH, o->batch = s->batch);
    if (s->lr != o->lr) set_number(L, j, LBL_K_LR, o->lr = s->lr);
    if (memcmp(&s->gns, &o->gns, sizeof s->gns) != 0)     /* NaN-safe */
        set_number(L, j, LBL_K_GNS, o->gns = s->gns);
    if (s->last && (!j->have_last || memcmp(&j->last, s->last, sizeof j->last) != 0)) {
        j->last = *s->last;
        j->have_last = true;
        lua_pushcfunction(L, refresh_last);
        lua_pushlightuserdata(L, &j->last);
        lua_pushvalue(L, j->state);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK)
            return fail(L, ctx, top, "batch schedule");
    }

    lua_pushvalue(L, j->fn);
    lua_pushvalue(L, j->state);
    if (lua_pcall(L, 1, 2, j->msgh) != LUA_OK)
        return fail(L, ctx, top, "batch schedule");

    int isint = 0;
    lua_Integer b = lua_type(L, top + 1) == LUA_TNUMBER ? lua_tointegerx(L, top + 1, &isint) : 0;
    if (!isint || b < 1 || (j->max_batch > 0 && b > j->max_batch)) {
        char buf[256];
        const char *at = where_defined(L, j->fn, buf, sizeof buf);
        if (lua_type(L, top + 1) == LUA_TNUMBER && j->max_batch == 0)
            bl_error(ctx, BL_ESCRIPT, "batch schedule%s returned batch %s; expected an integer ≥ 1",
                     at, lua_tostring(L, top + 1));
        else if (lua_type(L, top + 1) == LUA_TNUMBER)
            bl_error(ctx, BL_ESCRIPT,
                     "batch schedule%s returned batch %s; expected an integer in [1, %lld] "
                     "(max_batch)",
                     at, lua_tostring(L, top + 1), (long long)j->max_batch);
        else
            bl_error(ctx, BL_ESCRIPT,
                     "batch schedule%s returned %s; expected an integer batch ≥ 1", at,
                     luaL_typename(L, top + 1));
        lua_settop(L, top);
        return BL_ESCRIPT;
    }
    *batch = (int64_t)b;
    int ft = lua_type(L, top + 2);
    if (ft == LUA_TNUMBER) {
        *lr_factor = lua_tonumber(L, top + 2);
        if (!(*lr_factor > 0) || !isfinite(*lr_factor)) {
            char buf[256];
            bl_error(ctx, BL_ESCRIPT,
                     "batch schedule%s returned LR factor %s at step %lld; expected a finite "
                     "number > 0 (or nothing for 1)",
                     where_defined(L, j->fn, buf, sizeof buf), lua_tostring(L, top + 2),
                     (long long)s->step + 1);
            lua_settop(L, top);
            return BL_ESCRIPT;
        }
    } else if (ft == LUA_TNIL) {
        *lr_factor = 1.0;
    } else {
        char buf[256];
        bl_error(ctx, BL_ESCRIPT,
                 "batch schedule%s returned a %s as LR factor; expected a number or nothing",
                 where_defined(L, j->fn, buf, sizeof buf), luaL_typename(L, top + 2));
        lua_settop(L, top);
        return BL_ESCRIPT;
    }
    lua_settop(L, top);
    return BL_OK;
}

/* Protected: [point, run] → the point's new table, also appended to run.history. */
static int new_point(lua_State *L)
{
    const bl_eval_point *p = lua_touserdata(L, 1);
    bl__lua_push_point(L, p);                                   /* [.., point] */
    if (lua_getfield(L, 2, "history") == LUA_TTABLE) {          /* [.., point, history] */
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1) + 1;
        lua_pushvalue(L, -2);
        lua_rawseti(L, -2, n);
        if (n >= 2 * BL_LUA_HISTORY_WINDOW) {
            /* drop the earliest half: amortized O(1) per point, the window stays bounded */
            const lua_Integer w = BL_LUA_HISTORY_WINDOW, drop = n - w;
            for (lua_Integer i = 1; i <= w; i++) {
                lua_rawgeti(L, -1, i + drop);
                lua_rawseti(L, -2, i);
            }
            for (lua_Integer i = w + 1; i <= n; i++) {
                lua_pushnil(L);
                lua_rawseti(L, -2, i);
            }
            lua_getfield(L, 2, "history_dropped");
            lua_Integer before = lua_tointeger(L, -1);
            lua_pop(L, 1);
            lua_pushinteger(L, before + drop);
            lua_setfield(L, 2, "history_dropped");
        }
    }
    lua_pop(L, 1);
    return 1;
}

/* Pushes the table of point p, made once per point and shared by on_point and stop. */
static int push_point(lua_State *L, lbl_job *j, const bl_eval_point *p)
{
    if (!j->have_point || memcmp(&j->point_seen, p, sizeof *p) != 0) {
        lua_pushcfunction(L, new_point);
        lua_pushlightuserdata(L, (void *)p);
        lua_pushvalue(L, j->run);
        int rc = lua_pcall(L, 2, 1, 0);
        if (rc != LUA_OK)
            return rc;
        lua_replace(L, j->point);
        j->point_seen = *p;
        j->have_point = true;
    }
    lua_pushvalue(L, j->point);
    return LUA_OK;
}

int bl__lua_on_point(void *user, bl_ctx *ctx, const bl_eval_point *p)
{
    lbl_job *j = user;
    lua_State *L = j->L;
    int top = lua_gettop(L);
    if (push_point(L, j, p) != LUA_OK)
        return fail(L, ctx, top, "on_point");
    if (!j->on_point) {
        lua_settop(L, top);
        return BL_OK;
    }
    lua_pushvalue(L, j->on_point);                              /* [point, fn] */
    lua_insert(L, -2);                                          /* [fn, point] */
    lua_pushvalue(L, j->run);
    if (lua_pcall(L, 2, 0, j->msgh) != LUA_OK)
        return fail(L, ctx, top, "on_point");
    lua_settop(L, top);
    return BL_OK;
}

int bl__lua_criterion(void *user, bl_ctx *ctx, const bl_eval_point *p, const char **reason)
{
    lbl_job *j = user;
    lua_State *L = j->L;
    int top = lua_gettop(L);
    lua_pushvalue(L, j->stop);
    if (push_point(L, j, p) != LUA_OK)
        return fail(L, ctx, top, "stop criterion");
    lua_pushvalue(L, j->run);                                   /* [stop, point, run] */
    if (lua_pcall(L, 2, 1, j->msgh) != LUA_OK)
        return fail(L, ctx, top, "stop criterion");
    int rc = 0;
    switch (lua_type(L, -1)) {
    case LUA_TNIL:
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, -1)) {
            *reason = "stop";
            rc = 1;
        }
        break;
    case LUA_TSTRING:
        snprintf(j->reason, sizeof j->reason, "%s", lua_tostring(L, -1));
        *reason = j->reason;
        rc = 1;
        break;
    default: {
        char buf[256];
        rc = bl_error(ctx, BL_ESCRIPT,
                      "stop criterion%s returned a %s; expected true, a reason string, false "
                      "or nil",
                      where_defined(L, j->stop, buf, sizeof buf), luaL_typename(L, -1));
    }
    }
    lua_settop(L, top);
    return rc;
}

/* ---- the callbacks as a run output ----------------------------------------------------------- */

void bl__lua_outputs_echo(lua_State *L, lbl_job *j)
{
    for (size_t i = 0; i < j->n_outputs; i++) {
        int64_t id = bl_run_store_output_id(&j->outputs[i]);
        const char *tb = bl_run_tensorboard_output_path(&j->outputs[i]);
        if (id > 0) {
            lua_pushinteger(L, (lua_Integer)id);
            lua_setfield(L, j->run, "run_id");
        }
        if (tb) {
            lua_pushstring(L, tb);
            lua_setfield(L, j->run, "tensorboard");
        }
    }
}

/* The outputs before this one have begun: the run table shows the run id and event file. */
static int callback_begin(void *self, bl_ctx *ctx, const bl_run_info *info)
{
    (void)ctx;
    (void)info;
    lbl_job *j = self;
    bl__lua_outputs_echo(j->L, j);
    return BL_OK;
}

static int callback_point(void *self, bl_ctx *ctx, const bl_eval_point *p)
{
    lbl_job *j = self;
    return j->point ? bl__lua_on_point(j, ctx, p) : BL_OK;
}

void bl__lua_callback_output(lbl_job *j, bl_run_output *out)
{
    *out = (bl_run_output){.name = "lua", .self = j, .begin = callback_begin,
                           .point = callback_point};
}

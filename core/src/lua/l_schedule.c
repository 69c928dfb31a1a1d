/* A scheduler plugin as a callable object, for the Lua library's built-in schedules
 * (batchlab.schedules.constant, .gns, ...): they are thin wrappers over the plugins, so the
 * two share options, defaults, errors and every batch size.
 *
 *   bl._util.schedule(name, opts) → object | nil, message
 *   object(state) → batch, lr_factor       state: a table as bl.train's schedules see it
 *   object.name, object.max_batch, object.needs_gns
 *
 * A call reads the state table into a bl_train_state and calls the plugin's next(): nothing is
 * allocated per call. Errors come back as nil and the plugin's message (the wrapper raises it
 * at its caller). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lua/lbl.h"

#define LBL_SCHEDULE_OBJ "batchlab.schedule"

typedef struct sched_obj {
    bl_scheduler *s;      /* NULL once closed */
    char name[64];
} sched_obj;

static int obj_close(lua_State *L)
{
    sched_obj *o = luaL_checkudata(L, 1, LBL_SCHEDULE_OBJ);
    bl_scheduler_close(o->s);
    o->s = NULL;
    return 0;
}

static sched_obj *check_open(lua_State *L)
{
    sched_obj *o = luaL_checkudata(L, 1, LBL_SCHEDULE_OBJ);
    if (!o->s)
        luaL_argerror(L, 1, "schedule is closed");
    return o;
}

static double field(lua_State *L, int t, const char *key, double dflt)
{
    double v = lua_getfield(L, t, key) == LUA_TNUMBER ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

/* object(state) → batch, lr_factor */
static int obj_call(lua_State *L)
{
    sched_obj *o = check_open(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    bl_train_state st = {
        .step = (int64_t)field(L, 2, "step", 0),
        .epoch = (int64_t)field(L, 2, "epoch", 0),
        .epoch_progress = field(L, 2, "epoch_progress", 0),
        .samples = (int64_t)field(L, 2, "samples", 0),
        .train_size = (int64_t)field(L, 2, "train_size", 0),
        .wall = field(L, 2, "wall", 0),
        .batch = (int64_t)field(L, 2, "batch", 0),
        .lr = field(L, 2, "lr", 0),
        .gns = field(L, 2, "gns", NAN),
    };
    int64_t batch = 0;
    double lr = 1.0;
    lbl_state *ls = bl__lua_state(L);
    if (bl_scheduler_next(ls->ctx, o->s, &st, &batch, &lr) != BL_OK)
        return bl__lua_raise(L, ls->ctx, NULL);
    lua_pushinteger(L, (lua_Integer)batch);
    lua_pushnumber(L, lr);
    return 2;
}

static int obj_index(lua_State *L)
{
    sched_obj *o = luaL_checkudata(L, 1, LBL_SCHEDULE_OBJ);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "name") == 0)
        lua_pushstring(L, o->name);
    else if (strcmp(key, "max_batch") == 0 && o->s)
        lua_pushinteger(L, (lua_Integer)bl_scheduler_max_batch(o->s));
    else if (strcmp(key, "needs_gns") == 0 && o->s)
        lua_pushboolean(L, bl_scheduler_needs_gns(o->s));
    else
        lua_pushnil(L);
    return 1;
}

static int obj_tostring(lua_State *L)
{
    sched_obj *o = luaL_checkudata(L, 1, LBL_SCHEDULE_OBJ);
    lua_pushfstring(L, "schedule %s (max batch %I)", o->name,
                    (lua_Integer)(o->s ? bl_scheduler_max_batch(o->s) : 0));
    return 1;
}

/* Opens the plugin's schedule (argument 1: name, 2: options) into the object at 3. */
static int open_protected(lua_State *L)
{
    sched_obj *o = lua_touserdata(L, 3);
    const bl_plugin *p = bl__lua_find_plugin(L, BL_PLUGIN_SCHEDULER, lua_tostring(L, 1));
    lbl_state *st = bl__lua_state(L);
    if (!p)
        return bl__lua_raise(L, st->ctx, NULL);
    bl_config *cfg = bl__lua_validated_config(L, 2, p);
    int rc = bl_scheduler_open(st->ctx, p, cfg, &o->s);
    bl_config_free(cfg);
    if (rc != BL_OK)
        return bl__lua_raise(L, st->ctx, NULL);
    return 0;
}

int bl__lua_schedule_object(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    sched_obj *o = lua_newuserdatauv(L, sizeof *o, 0);     /* 3: closed until opened */
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", name);
    if (luaL_newmetatable(L, LBL_SCHEDULE_OBJ)) {
        static const luaL_Reg meta[] = {{"__call", obj_call},   {"__index", obj_index},
                                        {"__gc", obj_close},    {"__close", obj_close},
                                        {"__tostring", obj_tostring}, {NULL, NULL}};
        luaL_setfuncs(L, meta, 0);
    }
    lua_setmetatable(L, 3);
    lua_pushcfunction(L, open_protected);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    return 1;
}

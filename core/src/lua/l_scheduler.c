/* bl.scheduler(name, opts) and the batchlab.Scheduler object: the recipe of a batch-size
 * schedule, from which each run creates its own (schedules keep state, so runs never share one).
 *
 * A name is looked up as a scheduler plugin first, then as a Lua schedule: the field `name` of
 * module "batchlab.schedules", then module "batchlab.schedules.<name>", then module "<name>"
 * (package.path). A Lua schedule is a constructor function(opts) returning the schedule: a
 * function(state) → batch [, lr_factor], or a table {next = function(state) ..., max_batch = N,
 * needs_gns = bool} (a callable table works as well). The constructor is called once here, to
 * check the options early, and once per run. */
#include <stdio.h>
#include <string.h>

#include "lua/lbl.h"

lbl_scheduler *bl__lua_check_scheduler(lua_State *L, int idx)
{
    lbl_scheduler *s = luaL_checkudata(L, idx, LBL_SCHEDULER);
    if (s->kind == LBL_SCHED_PLUGIN && !s->plugin)
        luaL_argerror(L, idx, "scheduler is closed");
    return s;
}

/* Reads max_batch / needs_gns from the table at `idx`. */
static void read_decl(lua_State *L, int idx, const char *name, int64_t *max_batch,
                      bool *needs_gns)
{
    if (lua_getfield(L, idx, "max_batch") != LUA_TNIL) {
        int isint = 0;
        lua_Integer mb = lua_tointegerx(L, -1, &isint);
        if (!isint || mb < 1)
            luaL_error(L, "%s: max_batch must be a positive integer, got %s", name,
                       luaL_tolstring(L, -1, NULL));
        *max_batch = (int64_t)mb;
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "needs_gns");
    *needs_gns = lua_toboolean(L, -1);
    lua_pop(L, 1);
}

bool bl__lua_callable(lua_State *L, int idx)
{
    if (lua_isfunction(L, idx))
        return true;
    if (luaL_getmetafield(L, idx, "__call") != LUA_TNIL) {
        lua_pop(L, 1);
        return true;
    }
    return false;
}

void bl__lua_schedule_result(lua_State *L, const char *who, int64_t *max_batch,
                             bool *needs_gns)
{
    *max_batch = 0;
    *needs_gns = false;
    int top = lua_gettop(L);
    if (lua_isfunction(L, top))
        return;
    if (lua_istable(L, top)) {
        read_decl(L, top, who, max_batch, needs_gns);
        if (lua_getfield(L, top, "next") == LUA_TFUNCTION) {  /* [t, next] */
            lua_replace(L, top);
            return;
        }
        lua_pop(L, 1);
        if (bl__lua_callable(L, top))
            return;
    }
    luaL_error(L, "%s: expected a schedule (a function(state), a callable table or a table "
                  "with a 'next' function), got a %s", who, luaL_typename(L, top));
}

/* Pushes a shallow copy of the table at `idx` (an empty table for nil). */
static void push_copy(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_newtable(L);
    if (lua_isnoneornil(L, idx))
        return;
    lua_pushnil(L);
    while (lua_next(L, idx)) {      /* [copy, k, v] */
        lua_pushvalue(L, -2);
        lua_insert(L, -2);          /* [copy, k, k, v] */
        lua_rawset(L, -4);
    }
}

void bl__lua_new_schedule(lua_State *L, int idx, int64_t *max_batch, bool *needs_gns)
{
    lbl_scheduler *s = bl__lua_check_scheduler(L, idx);
    lua_getiuservalue(L, idx, 1);            /* [ctor] */
    lua_getiuservalue(L, idx, 2);            /* [ctor, opts] */
    push_copy(L, -1);                        /* [ctor, opts, copy] */
    lua_remove(L, -2);
    lua_call(L, 1, 1);                       /* [result] */
    char who[128];
    snprintf(who, sizeof who, "scheduler %s: the constructor's result", s->name);
    bl__lua_schedule_result(L, who, max_batch, needs_gns);
}

/* require(modname) in protected mode: pushes the module and returns true; returns false (and
 * pushes nothing) when the module does not exist; raises any other error. */
static bool try_require(lua_State *L, const char *modname)
{
    lua_getglobal(L, "require");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    lua_pushstring(L, modname);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK)
        return true;
    const char *msg = bl__lua_errstring(L, -1);
    char notfound[256];
    snprintf(notfound, sizeof notfound, "module '%s' not found", modname);
    if (strstr(msg, notfound)) {
        lua_pop(L, 1);
        return false;
    }
    lua_error(L);
    return false;
}

/* Pushes the constructor of the Lua schedule `name` and returns true; or pushes a message
 * saying where it looked and returns false. The library's own lookup (schedules.get: built-in
 * schedules, then module batchlab.schedules.<name>) comes first, then a module `name`. */
static bool find_lua_schedule(lua_State *L, const char *name)
{
    lua_pushliteral(L, "");                                     /* [why] */
    if (try_require(L, "batchlab.schedules")) {                /* [why, lib] */
        if (lua_istable(L, -1)) {
            if (lua_getfield(L, -1, "get") == LUA_TFUNCTION) { /* [why, lib, get] */
                lua_pushstring(L, name);
                lua_call(L, 1, 2);                              /* [why, lib, ctor, msg] */
                if (!lua_isnil(L, -2)) {
                    lua_pop(L, 1);
                    lua_replace(L, -3);                         /* [ctor, lib] */
                    lua_pop(L, 1);
                    return true;
                }
                if (lua_type(L, -1) == LUA_TSTRING)
                    lua_replace(L, -4);                         /* [msg, lib, nil] */
                else
                    lua_pop(L, 1);
            }
            lua_pop(L, 1);                                      /* [why, lib] */
        }
        lua_pop(L, 1);
    }
    char modname[128];
    snprintf(modname, sizeof modname, "batchlab.schedules.%s", name);
    if (try_require(L, modname) || try_require(L, name)) {     /* [why, mod] */
        lua_remove(L, -2);
        /* A module is the constructor, or a table with a `new` constructor. */
        if (lua_istable(L, -1)) {
            if (lua_getfield(L, -1, "new") == LUA_TFUNCTION) {
                lua_remove(L, -2);
                return true;
            }
            lua_pop(L, 1);
        }
        return true;
    }
    const char *why = lua_tostring(L, -1);
    if (*why)
        lua_pushfstring(L, "no Lua schedule either: %s", why);
    else
        lua_pushfstring(L, "no Lua schedule '%s' either (no module batchlab.schedules.%s or %s "
                           "on package.path)", name, name, name);
    lua_remove(L, -2);
    return false;
}

/* bl.scheduler(name, opts) → Scheduler */
int bl__lua_scheduler(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    const bl_plugin *plugin = bl__lua_find_plugin(L, BL_PLUGIN_SCHEDULER, name);
    lbl_scheduler *s = lua_newuserdatauv(L, sizeof *s, 2);   /* [name, opts, s] closed */
    memset(s, 0, sizeof *s);
    s->kind = plugin ? LBL_SCHED_PLUGIN : LBL_SCHED_LUA;
    snprintf(s->name, sizeof s->name, "%s", plugin ? plugin->name : name);
    luaL_setmetatable(L, LBL_SCHEDULER);
    if (plugin) {
        s->opts = bl__lua_validated_config(L, 2, plugin);
        bl_plugin_retain(plugin);
        s->plugin = plugin;
        return 1;
    }
    /* Keep the registry's message: it lists the plugins that exist. */
    lua_pushstring(L, bl_errmsg(bl__lua_state(L)->ctx));   /* [name, opts, s, cmsg] */
    if (!find_lua_schedule(L, name))                       /* [.., cmsg, luamsg] */
        return luaL_error(L, "%s; %s", lua_tostring(L, 4), lua_tostring(L, 5));
    if (!bl__lua_callable(L, -1))                               /* [name, opts, s, cmsg, ctor] */
        return luaL_error(L, "scheduler %s: the Lua schedule is a %s; expected a constructor "
                             "function(opts)", name, luaL_typename(L, -1));
    lua_setiuservalue(L, 3, 1);
    push_copy(L, 2);
    lua_setiuservalue(L, 3, 2);
    lua_settop(L, 3);
    /* Check the options now, and learn what the schedule declares. */
    bl__lua_new_schedule(L, 3, &s->max_batch, &s->needs_gns);
    lua_settop(L, 3);
    return 1;
}

static int s_close(lua_State *L)
{
    lbl_scheduler *s = luaL_checkudata(L, 1, LBL_SCHEDULER);
    bl_config_free(s->opts);
    s->opts = NULL;
    if (s->plugin) {
        bl_plugin_release(s->plugin);
        s->plugin = NULL;
    }
    return 0;
}

static int s_tostring(lua_State *L)
{
    lbl_scheduler *s = luaL_checkudata(L, 1, LBL_SCHEDULER);
    lua_pushfstring(L, "batchlab.Scheduler(%s, %s)", s->name,
                    s->kind == LBL_SCHED_LUA ? "lua" : s->plugin ? "plugin" : "closed");
    return 1;
}

static int s_name(lua_State *L)
{
    lbl_scheduler *s = luaL_checkudata(L, 1, LBL_SCHEDULER);
    lua_pushstring(L, s->name);
    return 1;
}

/* s:kind() → "plugin" | "lua" */
static int s_kind(lua_State *L)
{
    lbl_scheduler *s = luaL_checkudata(L, 1, LBL_SCHEDULER);
    lua_pushstring(L, s->kind == LBL_SCHED_LUA ? "lua" : "plugin");
    return 1;
}

/* s:options() → validated options (plugin) or a copy of the given table (Lua) */
static int s_options(lua_State *L)
{
    lbl_scheduler *s = bl__lua_check_scheduler(L, 1);
    if (s->kind == LBL_SCHED_PLUGIN) {
        bl__lua_push_config(L, s->opts);
        return 1;
    }
    lua_getiuservalue(L, 1, 2);
    push_copy(L, -1);
    return 1;
}

static const luaL_Reg scheduler_meta[] = {
    {"__gc", s_close},
    {"__close", s_close},
    {"__tostring", s_tostring},
    {NULL, NULL}};

static const luaL_Reg scheduler_methods[] = {
    {"name", s_name},
    {"kind", s_kind},
    {"options", s_options},
    {"close", s_close},
    {NULL, NULL}};

void bl__lua_open_scheduler(lua_State *L)
{
    bl__lua_newclass(L, LBL_SCHEDULER, scheduler_meta, scheduler_methods);
}

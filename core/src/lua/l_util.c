/* bl._util: the C owners of helpers the Lua library (scripts/batchlab) shares with the core,
 * so each rule is written once. Internal to the library: argument checks and messages stay in
 * the Lua functions that call these (sweep.scaled_lr, sweep.grid, _check.nearest,
 * tables.format_value "seconds").
 *
 *   _util.lr_scale(rule, batch, base_batch) → factor   the LR scaling rule of bl.train (lr.c)
 *   _util.nearest(name, {names})            → name|nil "did you mean" (bl_nearest_name)
 *   _util.format_seconds(v)                 → "4m 05s" (base/duration.c)
 *   _util.schedule(name, opts)              → a scheduler plugin as a callable (l_schedule.c)
 *   _util.grid{name = count, ...}           → {{name = i, ...}, ...}: the value indices
 *                                             (1-based) of each point, in the sweep's order */
#include <stdlib.h>
#include <string.h>

#include "base/duration.h"
#include "batchlab/sweep.h"
#include "engine/engine.h"
#include "lua/lbl.h"

static int u_lr_scale(lua_State *L)
{
    static const char *const rules[] = {"none", "linear", "sqrt", NULL};
    bl_lr_scaling rule = (bl_lr_scaling)luaL_checkoption(L, 1, NULL, rules);
    lua_pushnumber(L, bl__lr_scale(rule, luaL_checknumber(L, 2), luaL_checknumber(L, 3)));
    return 1;
}

static int u_nearest(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = lua_rawlen(L, 2);
    const char **names = lua_newuserdatauv(L, (n ? n : 1) * sizeof *names, 0);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (lua_Integer)i + 1);
        /* a non-string is skipped (NULL); strings stay anchored in the table */
        names[i] = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        lua_pop(L, 1);
    }
    const char *near = bl_nearest_name(name, names, n);
    if (near)
        lua_pushstring(L, near);
    else
        lua_pushnil(L);
    return 1;
}

static int u_format_seconds(lua_State *L)
{
    char buf[48];
    lua_pushstring(L, bl__format_seconds(buf, sizeof buf, luaL_checknumber(L, 1)));
    return 1;
}

static int grid_gc(lua_State *L)
{
    bl_grid_free(lua_touserdata(L, 1));
    return 0;
}

static int u_grid(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    size_t nk = 0;
    for (lua_pushnil(L); lua_next(L, 1); lua_pop(L, 1), nk++)
        luaL_argcheck(L, lua_type(L, -2) == LUA_TSTRING && lua_isinteger(L, -1) &&
                     lua_tointeger(L, -1) >= 1, 1, "expected name = count ≥ 1");
    const char **names = lua_newuserdatauv(L, (nk ? nk : 1) * sizeof *names, 0);   /* 2 */
    size_t *len = lua_newuserdatauv(L, (nk ? nk : 1) * sizeof *len, 0);            /* 3 */
    size_t *at = lua_newuserdatauv(L, (nk ? nk : 1) * sizeof *at, 0);              /* 4 */
    size_t k = 0;
    for (lua_pushnil(L); lua_next(L, 1); lua_pop(L, 1), k++) {
        names[k] = lua_tostring(L, -2);
        len[k] = (size_t)lua_tointeger(L, -1);
    }
    bl_grid *g = lua_newuserdatauv(L, sizeof *g, 0);                                /* 5 */
    memset(g, 0, sizeof *g);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, grid_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lbl_state *st = bl__lua_state(L);
    if (bl_grid_init(st->ctx, g, names, len, nk) != BL_OK)
        return bl__lua_raise(L, st->ctx, NULL);
    if (g->total > (size_t)1 << 24)
        return luaL_error(L, "the grid has %I points; too many to list",
                          (lua_Integer)g->total);
    lua_createtable(L, (int)g->total, 0);                                          /* 6 */
    for (size_t i = 0; i < g->total; i++) {
        bl_grid_point(g, i, at);
        lua_createtable(L, 0, (int)nk);
        for (k = 0; k < nk; k++) {
            lua_pushinteger(L, (lua_Integer)at[k] + 1);
            lua_setfield(L, -2, names[g->order[k]]);
        }
        lua_rawseti(L, 6, (lua_Integer)i + 1);
    }
    return 1;
}

static const luaL_Reg util_funcs[] = {
    {"lr_scale", u_lr_scale},
    {"nearest", u_nearest},
    {"format_seconds", u_format_seconds},
    {"grid", u_grid},
    {"schedule", bl__lua_schedule_object},
    {NULL, NULL}};

void bl__lua_open_util(lua_State *L)
{
    luaL_newlib(L, util_funcs);
}

/* bl.model(name, opts) and the batchlab.Model object: a model plugin with validated options.
 * It is a recipe, not a network: every run builds its own net from it on its own device with
 * its own seed. */
#include <stdio.h>
#include <string.h>

#include "lua/lbl.h"

lbl_model *bl__lua_check_model(lua_State *L, int idx)
{
    lbl_model *m = luaL_checkudata(L, idx, LBL_MODEL);
    if (!m->plugin)
        luaL_argerror(L, idx, "model is closed");
    return m;
}

/* bl.model(name, opts) → Model */
int bl__lua_model(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);                                       /* [name, opts] */
    const bl_plugin *plugin = bl__lua_find_plugin(L, BL_PLUGIN_MODEL, name);
    if (!plugin)
        return bl__lua_raise(L, bl__lua_state(L)->ctx, NULL);
    lbl_model *m = lua_newuserdatauv(L, sizeof *m, 0);     /* closed first */
    memset(m, 0, sizeof *m);
    luaL_setmetatable(L, LBL_MODEL);
    snprintf(m->name, sizeof m->name, "%s", plugin->name);
    m->opts = bl__lua_validated_config(L, 2, plugin);
    bl_plugin_retain(plugin);
    m->plugin = plugin;
    return 1;
}

static int m_close(lua_State *L)
{
    lbl_model *m = luaL_checkudata(L, 1, LBL_MODEL);
    bl_config_free(m->opts);
    m->opts = NULL;
    if (m->plugin) {
        bl_plugin_release(m->plugin);
        m->plugin = NULL;
    }
    return 0;
}

static int m_tostring(lua_State *L)
{
    lbl_model *m = luaL_checkudata(L, 1, LBL_MODEL);
    lua_pushfstring(L, "batchlab.Model(%s%s)", m->name, m->plugin ? "" : ", closed");
    return 1;
}

static int m_name(lua_State *L)
{
    lbl_model *m = luaL_checkudata(L, 1, LBL_MODEL);
    lua_pushstring(L, m->name);
    return 1;
}

/* m:options() → the validated options, defaults filled in */
static int m_options(lua_State *L)
{
    lbl_model *m = bl__lua_check_model(L, 1);
    bl__lua_push_config(L, m->opts);
    return 1;
}

static const luaL_Reg model_meta[] = {
    {"__gc", m_close},
    {"__close", m_close},
    {"__tostring", m_tostring},
    {NULL, NULL}};

static const luaL_Reg model_methods[] = {
    {"name", m_name},
    {"options", m_options},
    {"close", m_close},
    {NULL, NULL}};

void bl__lua_open_model(lua_State *L)
{
    bl__lua_newclass(L, LBL_MODEL, model_meta, model_methods);
}

/* Lua option tables ↔ bl_config: the conversion only; validation (unknown names with a
 * suggestion, types, defaults) is bl_config_validate's. */
#include <stdio.h>
#include <string.h>

#include "lua/lbl.h"

/* The declared type of `name`, or -1 when undeclared. */
static int declared_type(const bl_option *decl, const char *name)
{
    for (; decl && decl->name; decl++)
        if (strcmp(decl->name, name) == 0)
            return (int)decl->type;
    return -1;
}

/* A scratch buffer that Lua frees: a userdata left on the stack. */
static void *scratch(lua_State *L, size_t bytes)
{
    return lua_newuserdatauv(L, bytes ? bytes : 1, 0);
}

/* Sets option `name` from the list (a sequence) at `idx`. */
static int set_list(lua_State *L, bl_ctx *ctx, bl_config *cfg, const char *owner,
                    const char *name, int idx, int type)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    bool all_int = true;
    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, idx, i);
        if (t != LUA_TNUMBER) {
            lua_pop(L, 1);
            return luaL_error(L, "%s: option '%s': item %d is a %s; expected a list of numbers",
                              owner, name, (int)i, lua_typename(L, t));
        }
        if (!lua_isinteger(L, -1))
            all_int = false;
        lua_pop(L, 1);
    }
    /* A table with keys other than 1..n is not a list. */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
            lua_pop(L, 1);
            return luaL_error(L, "%s: option '%s': expected a list of numbers, got a table with "
                                 "other keys", owner, name);
        }
    }
    if (type == BL_TYPE_NUMBER_LIST || (type != BL_TYPE_INT_LIST && !all_int)) {
        double *v = scratch(L, (size_t)n * sizeof *v);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            v[i - 1] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        int rc = bl_config_set_number_list(ctx, cfg, name, v, (size_t)n);
        lua_pop(L, 1);
        return rc;
    }
    int64_t *v = scratch(L, (size_t)n * sizeof *v);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        int isint = 0;
        lua_Integer x = lua_tointegerx(L, -1, &isint);
        if (!isint) {
            double d = lua_tonumber(L, -1);
            lua_pop(L, 2);
            return luaL_error(L, "%s: option '%s': item %d is %g; expected an integer", owner,
                              name, (int)i, d);
        }
        v[i - 1] = (int64_t)x;
        lua_pop(L, 1);
    }
    int rc = bl_config_set_int_list(ctx, cfg, name, v, (size_t)n);
    lua_pop(L, 1);
    return rc;
}

/* Frees the config of a failed conversion: a userdata whose __gc frees what it points at. */
static int holder_gc(lua_State *L)
{
    bl_config **h = lua_touserdata(L, 1);
    if (h && *h) {
        bl_config_free(*h);
        *h = NULL;
    }
    return 0;
}

bl_config *bl__lua_to_config(lua_State *L, int idx, const bl_option *decl, const char *owner)
{
    idx = lua_absindex(L, idx);
    if (!lua_isnoneornil(L, idx))
        luaL_checktype(L, idx, LUA_TTABLE);
    lbl_state *st = bl__lua_state(L);
    /* The config is held by a userdata while it is filled, so an error frees it. */
    bl_config **h = lua_newuserdatauv(L, sizeof *h, 0);   /* [holder] */
    *h = NULL;
    if (luaL_newmetatable(L, "batchlab.ConfigHolder")) {
        lua_pushcfunction(L, holder_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    if (bl_config_new(st->ctx, h) != BL_OK)
        bl__lua_raise(L, st->ctx, owner);
    if (lua_isnoneornil(L, idx)) {
        bl_config *cfg = *h;
        *h = NULL;
        lua_pop(L, 1);
        return cfg;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {                              /* [holder, key, value] */
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "%s: option names must be strings, got a %s key", owner,
                       luaL_typename(L, -2));
        const char *name = lua_tostring(L, -2);
        int rc = BL_OK;
        switch (lua_type(L, -1)) {
        case LUA_TBOOLEAN:
            rc = bl_config_set_bool(st->ctx, *h, name, lua_toboolean(L, -1));
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, -1))
                rc = bl_config_set_int(st->ctx, *h, name, (int64_t)lua_tointeger(L, -1));
            else
                rc = bl_config_set_number(st->ctx, *h, name, lua_tonumber(L, -1));
            break;
        case LUA_TSTRING:
            rc = bl_config_set_string(st->ctx, *h, name, lua_tostring(L, -1));
            break;
        case LUA_TTABLE:
            rc = set_list(L, st->ctx, *h, owner, name, lua_gettop(L),
                          declared_type(decl, name));
            break;
        default:
            luaL_error(L, "%s: option '%s': a %s cannot be an option value (use a number, "
                          "boolean, string or list)", owner, name, luaL_typename(L, -1));
        }
        if (rc != BL_OK)
            bl__lua_raise(L, st->ctx, owner);
        lua_pop(L, 1);                                      /* [holder, key] */
    }
    bl_config *cfg = *h;
    *h = NULL;
    lua_pop(L, 1);
    return cfg;
}

bl_config *bl__lua_validated_config(lua_State *L, int idx, const bl_plugin *plugin)
{
    char owner[160];
    snprintf(owner, sizeof owner, "%s %s", bl_plugin_kind_name(plugin->kind), plugin->name);
    bl_config *raw = bl__lua_to_config(L, idx, plugin->options, owner);
    lbl_state *st = bl__lua_state(L);
    bl_config *out = NULL;
    int rc = bl_config_validate(st->ctx, raw, plugin->options, owner, &out);
    bl_config_free(raw);
    if (rc != BL_OK)
        bl__lua_raise(L, st->ctx, NULL);
    return out;
}

/* Pushes the value at `index` of a config. */
static void push_value(lua_State *L, const bl_config *cfg, size_t index)
{
    const char *name = bl_config_key(cfg, index);
    size_t n = 0;
    switch (bl_config_type_at(cfg, index)) {
    case BL_TYPE_NUMBER:
        lua_pushnumber(L, bl_config_number(cfg, name));
        return;
    case BL_TYPE_INT:
        lua_pushinteger(L, (lua_Integer)bl_config_int(cfg, name));
        return;
    case BL_TYPE_BOOL:
        lua_pushboolean(L, bl_config_bool(cfg, name));
        return;
    case BL_TYPE_STRING: {
        const char *s = bl_config_string(cfg, name);
        lua_pushstring(L, s ? s : "");
        return;
    }
    case BL_TYPE_INT_LIST: {
        const int64_t *v = bl_config_int_list(cfg, name, &n);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            lua_pushinteger(L, (lua_Integer)v[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return;
    }
    case BL_TYPE_NUMBER_LIST: {
        const double *v = bl_config_number_list(cfg, name, &n);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            lua_pushnumber(L, v[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return;
    }
    case BL_TYPE_TEXT:
    default: {
        char buf[256];
        bl_config_format_value(cfg, index, buf, sizeof buf);
        lua_pushstring(L, buf);
        return;
    }
    }
}

void bl__lua_push_config(lua_State *L, const bl_config *cfg)
{
    size_t n = cfg ? bl_config_count(cfg) : 0;
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        push_value(L, cfg, i);
        lua_setfield(L, -2, bl_config_key(cfg, i));
    }
}

void bl__lua_push_options(lua_State *L, const bl_option *decl)
{
    lua_newtable(L);
    lua_Integer i = 0;
    for (; decl && decl->name; decl++) {
        lua_createtable(L, 0, 4);
        lua_pushstring(L, decl->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, bl_type_name(decl->type));
        lua_setfield(L, -2, "type");
        if (decl->default_value) {
            lua_pushstring(L, decl->default_value);
            lua_setfield(L, -2, "default");
        } else {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "required");
        }
        lua_pushstring(L, decl->help ? decl->help : "");
        lua_setfield(L, -2, "help");
        lua_rawseti(L, -2, ++i);
    }
}

/* bl.dataset(name, opts) and the batchlab.Dataset object: an opened dataset plugin, shared by
 * every run that uses it (one run at a time). */
#include <stdio.h>
#include <string.h>

#include "lua/lbl.h"

lbl_dataset *bl__lua_check_dataset(lua_State *L, int idx)
{
    lbl_dataset *d = luaL_checkudata(L, idx, LBL_DATASET);
    if (!d->ds)
        luaL_argerror(L, idx, "dataset is closed");
    return d;
}

/* bl.dataset(name, opts) → Dataset */
int bl__lua_dataset(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);                                       /* [name, opts] */
    const bl_plugin *plugin = bl__lua_find_plugin(L, BL_PLUGIN_DATASET, name);
    lbl_state *st = bl__lua_state(L);
    if (!plugin)
        return bl__lua_raise(L, st->ctx, NULL);
    lbl_dataset *d = lua_newuserdatauv(L, sizeof *d, 0);   /* closed first */
    d->ds = NULL;
    d->busy = 0;
    d->plugin = plugin;
    snprintf(d->name, sizeof d->name, "%s", plugin->name);
    luaL_setmetatable(L, LBL_DATASET);
    char owner[160];
    snprintf(owner, sizeof owner, "dataset %s", plugin->name);
    bl_config *raw = bl__lua_to_config(L, 2, plugin->options, owner);
    int rc = bl_dataset_open(st->ctx, plugin, raw, &d->ds);
    bl_config_free(raw);
    if (rc != BL_OK)
        return bl__lua_raise(L, st->ctx, NULL);
    return 1;
}

/* __gc, __close and d:close(). A dataset in use by a run is on that run's stack, so it is
 * never collected then; an explicit close during the run raises. */
static int d_close(lua_State *L)
{
    lbl_dataset *d = luaL_checkudata(L, 1, LBL_DATASET);
    if (d->busy > 0)
        return luaL_error(L, "dataset %s is in use by a run; close it after bl.train returns",
                          d->name);
    if (d->ds) {
        bl_dataset_close(d->ds);
        d->ds = NULL;
    }
    return 0;
}

static int d_tostring(lua_State *L)
{
    lbl_dataset *d = luaL_checkudata(L, 1, LBL_DATASET);
    if (!d->ds) {
        lua_pushfstring(L, "batchlab.Dataset(%s, closed)", d->name);
        return 1;
    }
    const bl_data_info *info = bl_dataset_info(d->ds);
    char shape[64];
    bl_shape_format(&info->sample, shape, sizeof shape);
    lua_pushfstring(L, "batchlab.Dataset(%s, %s, train %I, validation %I, test %I)",
                    d->name, shape, (lua_Integer)info->count[BL_SPLIT_TRAIN],
                    (lua_Integer)info->count[BL_SPLIT_VALIDATION],
                    (lua_Integer)info->count[BL_SPLIT_TEST]);
    return 1;
}

/* d:name() → plugin name */
static int d_name(lua_State *L)
{
    lbl_dataset *d = luaL_checkudata(L, 1, LBL_DATASET);
    lua_pushstring(L, d->name);
    return 1;
}

/* d:info() → {sample = {1, 28, 28}, classes =, target_dim =, train =, validation =, test =,
 *             class_names = {...} | nil} */
static int d_info(lua_State *L)
{
    lbl_dataset *d = bl__lua_check_dataset(L, 1);
    const bl_data_info *info = bl_dataset_info(d->ds);
    lua_createtable(L, 0, 7);
    lua_createtable(L, info->sample.ndim, 0);
    for (int i = 0; i < info->sample.ndim; i++) {
        lua_pushinteger(L, (lua_Integer)info->sample.dim[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "sample");
    lua_pushinteger(L, (lua_Integer)info->classes);
    lua_setfield(L, -2, "classes");
    lua_pushinteger(L, (lua_Integer)info->target_dim);
    lua_setfield(L, -2, "target_dim");
    for (int s = 0; s < BL_SPLIT_COUNT; s++) {
        lua_pushinteger(L, (lua_Integer)info->count[s]);
        lua_setfield(L, -2, bl_split_name((bl_split)s));
    }
    if (info->class_names) {
        lua_createtable(L, (int)info->classes, 0);
        for (int64_t i = 0; i < info->classes; i++) {
            lua_pushstring(L, info->class_names[i] ? info->class_names[i] : "");
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "class_names");
    }
    return 1;
}

/* d:options() → the validated options, defaults filled in */
static int d_options(lua_State *L)
{
    lbl_dataset *d = bl__lua_check_dataset(L, 1);
    bl__lua_push_config(L, bl_dataset_options(d->ds));
    return 1;
}

/* d:property(key [, cap]) → {numbers} | nil, message */
static int d_property(lua_State *L)
{
    lbl_dataset *d = bl__lua_check_dataset(L, 1);
    const char *key = luaL_checkstring(L, 2);
    lua_Integer cap = luaL_optinteger(L, 3, 1 << 20);
    luaL_argcheck(L, cap > 0 && cap <= (1 << 26), 3, "capacity out of range");
    lbl_state *st = bl__lua_state(L);
    double *buf = lua_newuserdatauv(L, (size_t)cap * sizeof *buf, 0);
    int64_t n = 0;
    if (bl_dataset_property(st->ctx, d->ds, key, buf, (int64_t)cap, &n) != BL_OK) {
        luaL_pushfail(L);
        lua_pushstring(L, bl_errmsg(st->ctx));
        return 2;
    }
    if (n > cap)
        n = cap;
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushnumber(L, buf[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static const luaL_Reg dataset_meta[] = {
    {"__gc", d_close},
    {"__close", d_close},
    {"__tostring", d_tostring},
    {NULL, NULL}};

static const luaL_Reg dataset_methods[] = {
    {"name", d_name},
    {"info", d_info},
    {"options", d_options},
    {"property", d_property},
    {"close", d_close},
    {NULL, NULL}};

void bl__lua_open_dataset(lua_State *L)
{
    bl__lua_newclass(L, LBL_DATASET, dataset_meta, dataset_methods);
}

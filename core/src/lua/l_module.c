/* The `batchlab` Lua module: the module table, its per-lua_State state (plugin registry,
 * error context, host settings), bl.version and bl.plugins, and helpers every binding uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/dist.h"
#include "base/paths.h"
#include "batchlab/version.h"
#include "lua/lbl.h"

#define LBL_STATE "batchlab.State"          /* the metatable */
#define LBL_STATE_KEY "batchlab.state"      /* the registry field holding the state */

/* ---- module state -------------------------------------------------------------------------- */

static int state_gc(lua_State *L)
{
    lbl_state *st = luaL_checkudata(L, 1, LBL_STATE);
    bl_registry_free(st->reg);
    st->reg = NULL;
    bl_ctx_free(st->ctx);
    st->ctx = NULL;
    free(st->tensorboard);
    st->tensorboard = NULL;
    bl__lua_runlog_free(st);
    return 0;
}

lbl_state *bl__lua_state(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, LBL_STATE_KEY) == LUA_TUSERDATA) {
        lbl_state *st = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return st;
    }
    lua_pop(L, 1);
    /* Created closed (every pointer NULL), then filled. */
    lbl_state *st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    if (luaL_newmetatable(L, LBL_STATE)) {
        lua_pushcfunction(L, state_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, LBL_STATE_KEY);
    st->ctx = bl_ctx_new();
    st->isolate_fd = -1;
    if (!st->ctx)
        luaL_error(L, "batchlab: out of memory");
    return st;
}

void bl_lua_set_tensorboard(lua_State *L, const char *dir)
{
    lbl_state *st = bl__lua_state(L);
    char *copy = dir ? strdup(dir) : NULL;
    if (dir && !copy)
        luaL_error(L, "batchlab: out of memory");
    free(st->tensorboard);
    st->tensorboard = copy;
}

bl_registry *bl__lua_registry(lua_State *L)
{
    lbl_state *st = bl__lua_state(L);
    if (st->reg)
        return st->reg;
    bl_registry *reg = NULL;
    if (bl_registry_new(st->ctx, &reg) != BL_OK)
        bl__lua_raise(L, st->ctx, NULL);
    if (bl_registry_scan(st->ctx, reg) != BL_OK) {
        bl_registry_free(reg);
        bl__lua_raise(L, st->ctx, NULL);
    }
    st->reg = reg;
    return reg;
}

const bl_plugin *bl__lua_find_plugin(lua_State *L, bl_plugin_kind kind, const char *name)
{
    bl_registry *reg = bl__lua_registry(L);
    lbl_state *st = bl__lua_state(L);
    const bl_plugin *p = NULL;
    int rc = bl_registry_find(st->ctx, reg, kind, name, &p);
    if (rc == BL_ENOTFOUND)
        return NULL;
    if (rc != BL_OK)
        bl__lua_raise(L, st->ctx, NULL);
    return p;
}

static void log_to_stderr(void *user, bl_log_level level, const char *message)
{
    const lbl_state *st = user;
    if (level >= BL_LOG_WARN && !st->quiet)
        fprintf(stderr, "batchlab: warning: %s\n", message);
}

/* ---- host interface ------------------------------------------------------------------------ */

void bl_lua_set_interrupt(lua_State *L, volatile sig_atomic_t *flag)
{
    bl__lua_state(L)->interrupt = flag;
}

void bl_lua_set_supervising(lua_State *L, volatile sig_atomic_t *flag)
{
    bl__lua_state(L)->supervising = flag;
}

void bl_lua_set_quiet(lua_State *L, bool quiet)
{
    bl__lua_state(L)->quiet = quiet;
}

void bl_lua_set_threads(lua_State *L, int threads)
{
    bl__lua_state(L)->threads = threads;
}

bool bl_lua_interrupted(lua_State *L)
{
    return bl__lua_state(L)->interrupted;
}

/* ---- helpers ------------------------------------------------------------------------------- */

int bl__lua_raise(lua_State *L, bl_ctx *ctx, const char *where)
{
    const char *msg = bl_errmsg(ctx);
    if (!*msg)
        msg = bl_strerror(bl_errcode(ctx));
    if (where)
        return luaL_error(L, "%s: %s", where, msg);
    return luaL_error(L, "%s", msg);
}

void bl__lua_newclass(lua_State *L, const char *tname, const luaL_Reg *meta,
                      const luaL_Reg *methods)
{
    luaL_newmetatable(L, tname);   /* [mt] */
    luaL_setfuncs(L, meta, 0);
    if (methods) {
        lua_newtable(L);               /* [mt, methods] */
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

void bl__lua_check_keys(lua_State *L, int idx, const char *const *keys, const char *what)
{
    idx = lua_absindex(L, idx);
    size_t n = 0;
    while (keys[n])
        n++;
    lua_pushnil(L);
    while (lua_next(L, idx)) {             /* [key, value] */
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            luaL_error(L, "%s: unexpected %s key (keys are names such as '%s')", what,
                       luaL_typename(L, -1), keys[0]);
        }
        const char *k = lua_tostring(L, -1);
        size_t i = 0;
        while (i < n && strcmp(keys[i], k) != 0)
            i++;
        if (i < n)
            continue;
        const char *near = bl_nearest_name(k, keys, n);
        if (near)
            luaL_error(L, "%s: unknown key '%s'; did you mean '%s'?", what, k, near);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (i = 0; i < n; i++) {
            if (i)
                luaL_addstring(&b, ", ");
            luaL_addstring(&b, keys[i]);
        }
        luaL_pushresult(&b);
        luaL_error(L, "%s: unknown key '%s' (accepted: %s)", what, k, lua_tostring(L, -1));
    }
}

const char *bl__lua_errstring(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    int t = lua_type(L, idx);
    if (t == LUA_TSTRING || t == LUA_TNUMBER)
        return lua_tostring(L, idx);
    if (luaL_callmeta(L, idx, "__tostring")) {   /* [..., s] */
        if (lua_type(L, -1) == LUA_TSTRING) {
            lua_replace(L, idx);
            return lua_tostring(L, idx);
        }
        lua_pop(L, 1);
    }
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
    lua_replace(L, idx);
    return lua_tostring(L, idx);
}

int bl__lua_traceback(lua_State *L)
{
    const char *msg = bl__lua_errstring(L, 1);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* ---- bl.version, bl.plugins ---------------------------------------------------------------- */

/* bl.plugins() → {{kind=, name=, version=, file=, summary=, options={...}}, ...} */
static int l_plugins(lua_State *L)
{
    bl_registry *reg = bl__lua_registry(L);
    size_t n = bl_registry_count(reg);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const char *file = NULL;
        const bl_plugin *p = bl_registry_at(reg, i, &file);
        lua_createtable(L, 0, 6);
        lua_pushstring(L, bl_plugin_kind_name(p->kind));
        lua_setfield(L, -2, "kind");
        lua_pushstring(L, p->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, p->version ? p->version : "");
        lua_setfield(L, -2, "version");
        lua_pushstring(L, file ? file : "");
        lua_setfield(L, -2, "file");
        lua_pushstring(L, p->summary ? p->summary : "");
        lua_setfield(L, -2, "summary");
        bl__lua_push_options(L, p->options);
        lua_setfield(L, -2, "options");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* bl.rank() → rank, ranks: this process in the MPI job (0, 1 without MPI). */
static int l_rank(lua_State *L)
{
    lua_pushinteger(L, bl_dist_rank());
    lua_pushinteger(L, bl_dist_size());
    return 2;
}

static const luaL_Reg module_funcs[] = {
    {"plugins", l_plugins},
    {"rank", l_rank},
    {"dataset", bl__lua_dataset},
    {"model", bl__lua_model},
    {"scheduler", bl__lua_scheduler},
    {"train", bl__lua_train},
    {"sweep", bl__lua_sweep},
    {"fit_lr", bl__lua_fit_lr},
    {"find_max_batch", bl__lua_find_max_batch},
    {"probe", bl__lua_probe},
    {"critical_batch", bl__lua_critical_batch},
    {NULL, NULL}};

const char *bl_lua_script_dir(void)
{
    return bl__script_dir();
}

/* Adds "<dir>/?.lua;<dir>/?/init.lua;" in front of package.path unless it is there already
 * (a host such as `batchlab run` may have placed it after the user's folders), so that
 * `require "batchlab.schedules"` finds the library that belongs to this libbatchlab. */
static void add_script_path(lua_State *L)
{
    if (lua_getglobal(L, "package") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    const char *dir = bl__script_dir();
    lua_getfield(L, -1, "path");                     /* [package, path] */
    const char *path = lua_tostring(L, -1);
    lua_pushfstring(L, "%s/?.lua;", dir);            /* [package, path, entry] */
    if (!path || !strstr(path, lua_tostring(L, -1))) {
        lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, path ? path : "");
        lua_setfield(L, -4, "path");
    }
    lua_pop(L, 3);
}

int luaopen_batchlab(lua_State *L)
{
    add_script_path(L);
    lbl_state *st = bl__lua_state(L);
    bl_ctx_set_log(st->ctx, log_to_stderr, st);
    bl__lua_open_dataset(L);
    bl__lua_open_model(L);
    bl__lua_open_scheduler(L);
    luaL_newlib(L, module_funcs);            /* [bl] */
    bl__lua_open_optim(L);                   /* [bl, optim] */
    lua_setfield(L, -2, "optim");
    bl__lua_open_recommend(L);               /* bl.recommend, bl.fit_steps */
    bl__lua_open_snapshot(L);                /* bl.read_snapshot */
    bl__lua_open_util(L);                    /* [bl, _util] */
    lua_setfield(L, -2, "_util");
    lua_pushstring(L, bl_version());
    lua_setfield(L, -2, "version");
    return 1;
}

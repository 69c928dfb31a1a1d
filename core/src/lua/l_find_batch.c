/* bl.find_max_batch{...}: the max-batch finder (find_batch.h) from Lua.
 *
 *   local r = bl.find_max_batch { dataset = data, model = model, budget = "256MB",
 *                                 mode = "binsearch" }
 *   print(r.largest, r.recommended)   -- and r.trials = {{batch=, fits=, memory=, seconds=}, …}
 */
#include <string.h>

#include "batchlab/find_batch.h"
#include "lua/lbl.h"

#define LBL_FIND_JOB "batchlab.FindJob"

/* What one call holds; a to-be-closed userdata, so an error raised anywhere frees it. */
typedef struct find_job {
    bl_ctx *ctx;
    bl_device *dev;
    lbl_dataset *data; /* marked busy while held */
} find_job;

static int job_close(lua_State *L)
{
    find_job *j = luaL_checkudata(L, 1, LBL_FIND_JOB);
    if (j->data) {
        j->data->busy--;
        j->data = NULL;
    }
    bl_device_free(j->dev);
    j->dev = NULL;
    bl_ctx_free(j->ctx);
    j->ctx = NULL;
    return 0;
}

static const char *const keys[] = {"dataset", "model", "optimizer", "mode", "init", "max",
                                   "max_trials", "steps_per_trial", "margin", "budget", "seed",
                                   "device", "threads", NULL};

/* Reads table field `key` of the argument table (index 1) as an integer ≥ lo, if present. */
static void opt_integer(lua_State *L, const char *key, int64_t lo, int64_t *out)
{
    int t = lua_getfield(L, 1, key);
    if (t != LUA_TNIL) {
        int isint = 0;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (!isint || v < lo)
            luaL_error(L, "bl.find_max_batch: '%s' must be an integer ≥ %I, got %s", key,
                       (lua_Integer)lo, luaL_tolstring(L, -1, NULL));
        *out = v;
    }
    lua_pop(L, 1);
}

static void push_result(lua_State *L, const bl_find_batch_result *r)
{
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)r->largest);
    lua_setfield(L, -2, "largest");
    lua_pushinteger(L, (lua_Integer)r->recommended);
    lua_setfield(L, -2, "recommended");
    lua_pushboolean(L, r->hit_max);
    lua_setfield(L, -2, "hit_max");
    lua_createtable(L, r->trial_count, 0);
    for (int i = 0; i < r->trial_count; i++) {
        const bl_find_trial *t = &r->trials[i];
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, (lua_Integer)t->batch);
        lua_setfield(L, -2, "batch");
        lua_pushboolean(L, t->fits);
        lua_setfield(L, -2, "fits");
        lua_pushinteger(L, (lua_Integer)t->peak_bytes);
        lua_setfield(L, -2, "memory");
        lua_pushnumber(L, t->seconds);
        lua_setfield(L, -2, "seconds");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "trials");
}

int bl__lua_find_max_batch(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    bl__lua_check_keys(L, 1, keys, "bl.find_max_batch");

    find_job *j = lua_newuserdatauv(L, sizeof *j, 0); /* [args, job] */
    memset(j, 0, sizeof *j);
    if (luaL_newmetatable(L, LBL_FIND_JOB)) {
        lua_pushcfunction(L, job_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, job_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    lua_toclose(L, 2);
    j->ctx = bl_ctx_new();
    if (!j->ctx)
        return luaL_error(L, "bl.find_max_batch: out of memory");

    bl_find_batch_config c = bl_find_batch_defaults();
    if (lua_getfield(L, 1, "dataset") == LUA_TNIL || !luaL_testudata(L, -1, LBL_DATASET))
        return luaL_error(L, "bl.find_max_batch: 'dataset' must be a dataset (from bl.dataset)");
    j->data = bl__lua_check_dataset(L, -1); /* stays on the stack: never collected mid-call */
    j->data->busy++;
    if (lua_getfield(L, 1, "model") == LUA_TNIL || !luaL_testudata(L, -1, LBL_MODEL))
        return luaL_error(L, "bl.find_max_batch: 'model' must be a model (from bl.model)");
    lbl_model *m = bl__lua_check_model(L, -1);
    if (lua_getfield(L, 1, "optimizer") != LUA_TNIL)
        c.optim = *bl__lua_check_optim(L, -1);
    lua_pop(L, 1);

    if (lua_getfield(L, 1, "mode") != LUA_TNIL &&
        bl_find_mode_parse(j->ctx, lua_tostring(L, -1), &c.mode) != BL_OK)
        return bl__lua_raise(L, j->ctx, "bl.find_max_batch");
    lua_pop(L, 1);
    int t = lua_getfield(L, 1, "budget");
    if (t == LUA_TSTRING) {
        if (bl_parse_size(j->ctx, lua_tostring(L, -1), &c.budget_bytes) != BL_OK)
            return bl__lua_raise(L, j->ctx, "bl.find_max_batch: 'budget'");
    } else if (t == LUA_TNUMBER) {
        lua_Number v = lua_tonumber(L, -1);
        if (!(v >= 1))
            return luaL_error(L, "bl.find_max_batch: 'budget' must be ≥ 1 byte");
        c.budget_bytes = (size_t)v;
    } else if (t != LUA_TNIL) {
        return luaL_error(L, "bl.find_max_batch: 'budget' must be bytes or a size like \"512MB\"");
    }
    lua_pop(L, 1);
    int64_t v = c.init;
    opt_integer(L, "init", 1, &v);
    c.init = v;
    v = c.max;
    opt_integer(L, "max", 1, &v);
    c.max = v;
    v = c.max_trials;
    opt_integer(L, "max_trials", 1, &v);
    c.max_trials = (int)(v > BL_FIND_MAX_TRIALS ? BL_FIND_MAX_TRIALS + 1 : v);
    v = c.steps_per_trial;
    opt_integer(L, "steps_per_trial", 1, &v);
    c.steps_per_trial = (int)(v > 1000000 ? 1000000 : v);
    v = (int64_t)c.seed;
    opt_integer(L, "seed", 0, &v);
    c.seed = (uint64_t)v;
    int64_t threads = bl__lua_state(L)->threads;
    opt_integer(L, "threads", 0, &threads);
    if ((t = lua_getfield(L, 1, "margin")) != LUA_TNIL) {
        if (t != LUA_TNUMBER)
            return luaL_error(L, "bl.find_max_batch: 'margin' must be a number in [0, 1)");
        c.margin = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    const char *device = "cpu";
    if ((t = lua_getfield(L, 1, "device")) != LUA_TNIL) {
        if (t != LUA_TSTRING)
            return luaL_error(L, "bl.find_max_batch: 'device' must be a string (\"cpu\")");
        device = lua_tostring(L, -1); /* stays on the stack while used */
    }

    if (bl_device_open_threads(j->ctx, device, (int)threads, &j->dev) != BL_OK)
        return bl__lua_raise(L, j->ctx, "bl.find_max_batch");
    c.model = m->plugin;
    c.model_opts = m->opts;
    c.data = j->data->ds;
    c.dev = j->dev;
    bl_find_batch_result r;
    if (bl_find_max_batch(j->ctx, &c, &r) != BL_OK)
        return bl__lua_raise(L, j->ctx, NULL);
    push_result(L, &r);
    return 1;
}

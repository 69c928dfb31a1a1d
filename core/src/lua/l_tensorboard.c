/* tensorboard = "DIR" on bl.train (bl.sweep hands it to every run): the run's evaluation
 * points, hyperparameters, final figures and end status in a TensorBoard event file
 * (batchlab/tfevents.h) in a directory of its own: DIR/<label> — or DIR/<model>-<local time>
 * for a run without a label — or, when that is taken (an earlier run of the same label, or an
 * unlabelled one started in the same second), DIR/<label>-2, -3, ... The run table's
 * `tensorboard` field holds the event file's path.
 *
 * Hyperparameters: the keys of the bl.train table whose values are numbers, strings or
 * booleans (label, quiet, tensorboard and target left out), then the run table's config echo
 * (dataset, model, batch, lr, optimizer, seed, device), in sorted order; for a Lua schedule
 * (bl.scheduler of a Lua constructor, or a table with a `name`) its name as `scheduler` and
 * the number, string and boolean options as `scheduler.<option>`. The core's output adds the
 * LR scaling rule, the target, the model's and a scheduler plugin's options (batchlab/run.h).
 *
 * The file is the core's TensorBoard output (batchlab/run.h). A file that cannot be created
 * raises; a write that fails during the run ends the run as "failed" with the message naming
 * the file, as an error in on_point would. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua/lbl.h"

static const char *const echo_keys[] = {"dataset", "model", "batch", "lr", "optimizer",
                                        "seed", "device", NULL};

static bool left_out(const char *key)
{
    return strcmp(key, "label") == 0 || strcmp(key, "quiet") == 0 ||
           strcmp(key, "tensorboard") == 0 ||
           strcmp(key, "target") == 0;    /* as target_metric and target_value (the core) */
}

static bool scalar(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    return t == LUA_TNUMBER || t == LUA_TSTRING || t == LUA_TBOOLEAN;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sets hp[name] from the Lua value at the stack top (a number, string or boolean). */
static int set_value(lua_State *L, bl_ctx *ctx, bl_config *hp, const char *name)
{
    switch (lua_type(L, -1)) {
    case LUA_TBOOLEAN: return bl_config_set_bool(ctx, hp, name, lua_toboolean(L, -1));
    case LUA_TSTRING: return bl_config_set_string(ctx, hp, name, lua_tostring(L, -1));
    default:
        if (lua_isinteger(L, -1))
            return bl_config_set_int(ctx, hp, name, (int64_t)lua_tointeger(L, -1));
        return bl_config_set_number(ctx, hp, name, lua_tonumber(L, -1));
    }
}

/* The number, string and boolean entries of the option table at the stack top as
 * h["scheduler.<key>"] (h at index hi); pops the table. */
static void scheduler_options(lua_State *L, int hi)
{
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {                                   /* [opts, key, value] */
        if (lua_type(L, -2) == LUA_TSTRING && scalar(L, -1)) {
            lua_pushfstring(L, "scheduler.%s", lua_tostring(L, -2));
            lua_insert(L, -2);                                  /* [opts, key, name, value] */
            lua_rawset(L, hi);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* The hyperparameters of the bl.train table at index 1 and the run table: a new config. */
static bl_config *hparams(lua_State *L, lbl_job *j)
{
    lua_newtable(L);                                            /* [h] */
    int hi = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, 1)) {                                    /* [h, key, value] */
        if (lua_type(L, -2) == LUA_TSTRING && !left_out(lua_tostring(L, -2)) &&
            scalar(L, -1)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);                                  /* [h, key, key, value] */
            lua_rawset(L, hi);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_getfield(L, 1, "batch");                                /* [h, batch] */
    lbl_scheduler *s = luaL_testudata(L, -1, LBL_SCHEDULER);
    if (s && s->kind == LBL_SCHED_LUA) {
        lua_pushstring(L, s->name);
        lua_setfield(L, hi, "scheduler");
        lua_getiuservalue(L, -1, 2);                            /* [h, batch, opts] */
        scheduler_options(L, hi);
    } else if (!s && lua_istable(L, -1)) {                     /* a schedule table */
        if (lua_getfield(L, -1, "name") == LUA_TSTRING)
            lua_setfield(L, hi, "scheduler");
        else
            lua_pop(L, 1);
    }
    lua_pop(L, 1);                                              /* [h] */
    for (int i = 0; echo_keys[i]; i++) {
        lua_getfield(L, j->run, echo_keys[i]);
        if (scalar(L, -1))
            lua_setfield(L, hi, echo_keys[i]);
        else
            lua_pop(L, 1);
    }
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, hi)) {
        lua_pop(L, 1);
        n++;
    }
    /* the names stay anchored in h */
    const char **names = lua_newuserdatauv(L, (n ? n : 1) * sizeof *names, 0);   /* [h, u] */
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, hi)) {
        lua_pop(L, 1);
        names[k++] = lua_tostring(L, -1);
    }
    qsort(names, n, sizeof *names, cmp_names);

    bl_config *hp = NULL;
    int rc = bl_config_new(j->ctx, &hp);
    for (k = 0; k < n && rc == BL_OK; k++) {
        lua_getfield(L, hi, names[k]);
        rc = set_value(L, j->ctx, hp, names[k]);
        lua_pop(L, 1);
    }
    lua_settop(L, hi - 1);
    if (rc != BL_OK) {
        bl_config_free(hp);
        bl__lua_raise(L, j->ctx, "bl.train: tensorboard");
    }
    return hp;
}

void bl__lua_tensorboard_output(lua_State *L, lbl_job *j, const char *label)
{
    int t = lua_getfield(L, 1, "tensorboard");                  /* [dir] */
    if (t == LUA_TNIL || (t == LUA_TSTRING && lua_rawlen(L, -1) == 0)) {
        /* the host's default (batchlab run --tensorboard DIR), if any */
        const char *fallback = bl__lua_state(L)->tensorboard;
        lua_pop(L, 1);
        if (!fallback)
            return;
        lua_pushstring(L, fallback);
        t = LUA_TSTRING;
    }
    if (t != LUA_TSTRING)
        luaL_error(L, "bl.train: 'tensorboard' must be a string (a log directory), got %s",
                   luaL_typename(L, -1));
    char name[128];
    if (!label) {
        const char *model = "run";
        if (lua_getfield(L, j->run, "model") == LUA_TSTRING)    /* [dir, model] */
            model = lua_tostring(L, -1);
        time_t now = time(NULL);
        struct tm tm;
        char stamp[32] = "";
        if (localtime_r(&now, &tm))
            strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(name, sizeof name, "%s-%s", model, stamp);
        lua_pop(L, 1);
        label = name;
    }
    bl_config *hp = hparams(L, j);
    int rc = bl_run_tensorboard_output(j->ctx, lua_tostring(L, -1), label, hp,
                                       &j->outputs[j->n_outputs]);
    bl_config_free(hp);
    if (rc != BL_OK)
        bl__lua_raise(L, j->ctx, "bl.train");
    j->n_outputs++;
    lua_pop(L, 1);
}

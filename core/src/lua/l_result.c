/* Run results as Lua tables: evaluation points and the fields of a finished run. Metrics that
 * were not measured (no validation split, no test split, train accuracy off or regression,
 * no noise scale) are nil, never NaN (test with `p.val_accuracy ~= nil`); a training loss that
 * became NaN is a measurement and stays NaN. The *_to_target fields are absent (nil) when the
 * target was not reached. */
#include <math.h>

#include "lua/lbl.h"

#define N_POINT_FIELDS 12

/* t[key] = v, or nil when v is NaN (not measured). */
static void set_metric(lua_State *L, int idx, const char *key, double v)
{
    if (isnan(v))
        lua_pushnil(L);
    else
        lua_pushnumber(L, v);
    lua_setfield(L, idx, key);
}

void bl__lua_fill_point(lua_State *L, int idx, const bl_eval_point *p)
{
    idx = lua_absindex(L, idx);
    lua_pushinteger(L, (lua_Integer)p->step);
    lua_setfield(L, idx, "step");
    lua_pushnumber(L, p->epoch);
    lua_setfield(L, idx, "epoch");
    lua_pushinteger(L, (lua_Integer)p->samples);
    lua_setfield(L, idx, "samples");
    lua_pushnumber(L, p->wall);
    lua_setfield(L, idx, "wall");
    lua_pushinteger(L, (lua_Integer)p->batch);
    lua_setfield(L, idx, "batch");
    lua_pushnumber(L, p->lr);
    lua_setfield(L, idx, "lr");
    lua_pushnumber(L, p->train_loss);
    lua_setfield(L, idx, "train_loss");
    set_metric(L, idx, "train_accuracy", p->train_accuracy);
    set_metric(L, idx, "val_loss", p->val_loss);
    set_metric(L, idx, "val_accuracy", p->val_accuracy);
    set_metric(L, idx, "gns", p->gns);
    set_metric(L, idx, "samples_per_sec", p->samples_per_sec);
}

void bl__lua_push_point(lua_State *L, const bl_eval_point *p)
{
    lua_createtable(L, 0, N_POINT_FIELDS + 2);
    bl__lua_fill_point(L, -1, p);
}

static void set_number(lua_State *L, int idx, const char *key, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, idx, key);
}

static void set_integer(lua_State *L, int idx, const char *key, int64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, idx, key);
}

static void set_string(lua_State *L, int idx, const char *key, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, idx, key);
}

void bl__lua_set_result(lua_State *L, int idx, const bl_train_config *cfg,
                        const bl_run_result *r)
{
    idx = lua_absindex(L, idx);
    set_string(L, idx, "status", bl_run_status_name(r->status));
    if (r->stopped_by[0])
        set_string(L, idx, "stopped_by", r->stopped_by);
    if (r->error[0])
        set_string(L, idx, "error", r->error);
    set_integer(L, idx, "steps", r->steps);
    set_integer(L, idx, "samples", r->samples);
    set_number(L, idx, "epochs", r->epochs);
    set_number(L, idx, "time", r->time);
    set_number(L, idx, "eval_time", r->eval_time);
    set_metric(L, idx, "step_time_median", r->step_time_median);
    set_integer(L, idx, "max_batch_used", r->max_batch_used);
    set_integer(L, idx, "peak_device_bytes", (int64_t)r->peak_device_bytes);
    if (r->diverged_step >= 0)
        set_integer(L, idx, "diverged_step", r->diverged_step);

    /* final: the last evaluation point plus the test metrics */
    bl__lua_push_point(L, &r->final);
    set_metric(L, lua_gettop(L), "test_loss", r->test_loss);
    set_metric(L, lua_gettop(L), "test_accuracy", r->test_accuracy);
    lua_setfield(L, idx, "final");

    /* The last BL_LUA_HISTORY_WINDOW points (lbl.h). The points the callbacks already made
     * (run.history during the run, whose first `dropped` points are gone) keep their
     * identity: they are refreshed in place, and the rest are added. */
    lua_getfield(L, idx, "history_dropped");
    size_t dropped = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    size_t total = r->history_count, keep_from = 0;
    if (total > BL_LUA_HISTORY_WINDOW)
        keep_from = total - BL_LUA_HISTORY_WINDOW;
    if (lua_getfield(L, idx, "history") != LUA_TTABLE || dropped > keep_from ||
        lua_rawlen(L, -1) + dropped > total) {
        lua_pop(L, 1);
        lua_newtable(L);
        dropped = keep_from; /* nothing to reuse */
    }
    lua_createtable(L, (int)(total - keep_from), 0);      /* [old, new] */
    for (size_t i = keep_from; i < total; i++) {
        lua_Integer at = (lua_Integer)(i - dropped) + 1; /* where the old table holds point i */
        if (lua_rawgeti(L, -2, at) == LUA_TTABLE) {
            bl__lua_fill_point(L, -1, &r->history[i]);
        } else {
            lua_pop(L, 1);
            bl__lua_push_point(L, &r->history[i]);
        }
        lua_rawseti(L, -2, (lua_Integer)(i - keep_from) + 1);
    }
    lua_setfield(L, idx, "history");
    lua_pop(L, 1);
    if (keep_from > 0)
        set_integer(L, idx, "history_dropped", (int64_t)keep_from);

    if (cfg->has_target) {
        lua_createtable(L, 0, 2);
        set_string(L, lua_gettop(L), "metric", bl_metric_name(cfg->target_metric));
        set_number(L, lua_gettop(L), cfg->target_higher_better ? "at_least" : "at_most",
                   cfg->target_value);
        lua_setfield(L, idx, "target");
        bool reached = r->steps_to_target >= 0;
        lua_pushboolean(L, reached);
        lua_setfield(L, idx, "reached_target");
        if (reached) {
            set_number(L, idx, "time_to_target", r->time_to_target);
            set_number(L, idx, "wall_time_to_target", r->wall_time_to_target);
            set_integer(L, idx, "steps_to_target", r->steps_to_target);
            set_integer(L, idx, "samples_to_target", r->samples_to_target);
            set_number(L, idx, "epochs_to_target", r->epochs_to_target);
            if (r->steps_to_target_error >= 0)    /* unknown for runs stored before it was */
                set_integer(L, idx, "steps_to_target_error", r->steps_to_target_error);
        }
    }
}

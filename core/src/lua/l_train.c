/* bl.train{...}: one training run. A translator onto the run orchestrator (batchlab/run.h):
 * the plain values of the table go through the run specification (batchlab/run_spec.h: the
 * same types, bounds, defaults and "did you mean" messages as `batchlab train`'s flags), the
 * objects (dataset, model, optimizer, schedule, stop, on_point) and the table forms of the
 * composite keys are translated here, and bl_run trains with the outputs: TensorBoard, the
 * results store, the script's callbacks and progress lines.
 *
 * Errors in the configuration raise. Errors inside the run — including errors raised by the
 * script's schedule, stop criterion or on_point — end the run with status "failed" and the
 * message in `error`; bl.train then returns normally. An interrupted run (the host's flag)
 * raises "interrupted" after the run has been cleaned up. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batchlab/device.h"
#include "batchlab/model.h"
#include "batchlab/run.h"
#include "batchlab/run_spec.h"
#include "base/clock.h"
#include "lua/lbl.h"

#define LBL_JOB "batchlab.Job"

/* ---- the job ------------------------------------------------------------------------------- */

static int job_close(lua_State *L)
{
    lbl_job *j = luaL_checkudata(L, 1, LBL_JOB);
    bl_run_outputs_close(j->outputs, j->n_outputs);
    j->n_outputs = 0;
    if (j->data) {
        j->data->busy--;
        j->data = NULL;
    }
    if (j->have_result) {
        bl_run_result_free(&j->result);
        j->have_result = false;
    }
    bl_config_free(j->spec);
    j->spec = NULL;
    free(j->config_json);
    j->config_json = NULL;
    free(j->milestones);
    j->milestones = NULL;
    bl_ctx_free(j->ctx);
    j->ctx = NULL;
    return 0;
}

lbl_job *bl__lua_new_job(lua_State *L)
{
    lbl_job *j = lua_newuserdatauv(L, sizeof *j, 0);
    memset(j, 0, sizeof *j);                      /* closed: nothing held */
    if (luaL_newmetatable(L, LBL_JOB)) {
        lua_pushcfunction(L, job_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, job_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    j->ctx = bl_ctx_new();
    if (!j->ctx)
        luaL_error(L, "bl.train: out of memory");
    j->L = L;
    return j;
}

/* ---- reading keys -------------------------------------------------------------------------- */

/* Pushes cfg[key] and returns its type. */
static int get(lua_State *L, const char *key)
{
    return lua_getfield(L, 1, key);
}

static int type_error(lua_State *L, const char *key, const char *expected)
{
    return luaL_error(L, "bl.train: '%s' must be %s, got %s", key, expected,
                      luaL_typename(L, -1));
}

/* An integer at the stack top (a float with an integral value is accepted). */
static int64_t to_integer(lua_State *L, const char *where, const char *key)
{
    int isint = 0;
    lua_Integer v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
    if (!isint) {
        if (lua_type(L, -1) == LUA_TNUMBER)
            luaL_error(L, "%s: '%s' must be an integer, got %s", where, key,
                       lua_tostring(L, -1));
        luaL_error(L, "%s: '%s' must be an integer, got %s", where, key,
                   luaL_typename(L, -1));
    }
    return (int64_t)v;
}

/* The accepted keys: the run spec's settings and object keys. */
static void check_keys(lua_State *L)
{
    const char *keys[64];
    size_t n_set, n = 0;
    const bl_run_setting *set = bl_run_spec_settings(&n_set);
    for (size_t i = 0; i < n_set && n < 63; i++)
        keys[n++] = set[i].opt.name;
    for (const bl_run_object_key *k = bl_run_spec_object_keys(); k->name && n < 63; k++)
        keys[n++] = k->name;
    keys[n] = NULL;
    bl__lua_check_keys(L, 1, keys, "bl.train");
}

/* Sets given[name] from the plain Lua value at the stack top (raises when it is not one). */
static void set_plain(lua_State *L, lbl_job *j, bl_config *given, const char *name)
{
    int rc;
    switch (lua_type(L, -1)) {
    case LUA_TBOOLEAN: rc = bl_config_set_bool(j->ctx, given, name, lua_toboolean(L, -1)); break;
    case LUA_TSTRING: rc = bl_config_set_string(j->ctx, given, name, lua_tostring(L, -1)); break;
    case LUA_TNUMBER:
        rc = lua_isinteger(L, -1)
                 ? bl_config_set_int(j->ctx, given, name, (int64_t)lua_tointeger(L, -1))
                 : bl_config_set_number(j->ctx, given, name, lua_tonumber(L, -1));
        break;
    default: {
        const bl_run_setting *s = bl_run_spec_find(name);
        char what[64];
        snprintf(what, sizeof what, "%s %s", s->opt.type == BL_TYPE_INT ? "an" : "a",
                 bl_type_name(s->opt.type));
        type_error(L, name, what);
        return;
    }
    }
    if (rc != BL_OK)
        bl__lua_raise(L, j->ctx, "bl.train");
}

/* Sets given[name] to the number at the stack top as text ("0.5"), for the composite keys
 * whose spec type is their text form. */
static void set_number_text(lua_State *L, lbl_job *j, bl_config *given, const char *name,
                            const char *prefix)
{
    char text[64];
    if (lua_isinteger(L, -1))
        snprintf(text, sizeof text, "%s%lld", prefix, (long long)lua_tointeger(L, -1));
    else
        snprintf(text, sizeof text, "%s%.17g", prefix, lua_tonumber(L, -1));
    if (bl_config_set_string(j->ctx, given, name, text) != BL_OK)
        bl__lua_raise(L, j->ctx, "bl.train");
}

/* lr_scaling = {rule =, base_batch =, warmup_epochs =, warmup_steps =}: the rule goes to the
 * spec, the rest straight into cfg (after the spec is applied). */
static void lr_scaling_rule(lua_State *L, lbl_job *j, bl_config *given, int ti)
{
    static const char *const keys[] = {"rule", "base_batch", "warmup_epochs", "warmup_steps",
                                       NULL};
    bl__lua_check_keys(L, ti, keys, "bl.train: lr_scaling");
    if (lua_getfield(L, ti, "rule") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING)
            type_error(L, "lr_scaling.rule", "a string");
        set_plain(L, j, given, "lr_scaling");
    }
    lua_pop(L, 1);
}

static void lr_scaling_rest(lua_State *L, bl_train_config *cfg)
{
    if (get(L, "lr_scaling") == LUA_TTABLE) {
        int ti = lua_gettop(L);
        if (lua_getfield(L, ti, "base_batch") != LUA_TNIL)
            cfg->base_batch = to_integer(L, "bl.train: lr_scaling", "base_batch");
        lua_pop(L, 1);
        if (lua_getfield(L, ti, "warmup_epochs") != LUA_TNIL) {
            if (lua_type(L, -1) != LUA_TNUMBER)
                type_error(L, "lr_scaling.warmup_epochs", "a number");
            cfg->warmup_epochs = lua_tonumber(L, -1);
        }
        lua_pop(L, 1);
        if (lua_getfield(L, ti, "warmup_steps") != LUA_TNIL)
            cfg->warmup_steps = to_integer(L, "bl.train: lr_scaling", "warmup_steps");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* lr_schedule = {kind = "step", milestones = {...}, gamma = 0.1}: kind to the spec. */
static void lr_schedule_kind(lua_State *L, lbl_job *j, bl_config *given, int ti)
{
    static const char *const keys[] = {"kind", "milestones", "gamma", NULL};
    bl__lua_check_keys(L, ti, keys, "bl.train: lr_schedule");
    if (lua_getfield(L, ti, "kind") != LUA_TSTRING)
        type_error(L, "lr_schedule.kind", "a string (\"step\", \"cosine\", ...)");
    set_plain(L, j, given, "lr_schedule");
    lua_pop(L, 1);
}

static void lr_schedule_rest(lua_State *L, lbl_job *j, bl_train_config *cfg)
{
    if (get(L, "lr_schedule") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    int ti = lua_gettop(L);
    if (lua_getfield(L, ti, "gamma") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            type_error(L, "lr_schedule.gamma", "a number");
        cfg->lr_gamma = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    int mt = lua_getfield(L, ti, "milestones");
    if (mt == LUA_TNUMBER) {
        j->milestones = malloc(sizeof *j->milestones);
        if (!j->milestones)
            luaL_error(L, "bl.train: out of memory");
        j->milestones[0] = lua_tonumber(L, -1);
        cfg->lr_milestone_count = 1;
    } else if (mt == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        j->milestones = malloc((size_t)(n > 0 ? n : 1) * sizeof *j->milestones);
        if (!j->milestones)
            luaL_error(L, "bl.train: out of memory");
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, -1, i) != LUA_TNUMBER)
                luaL_error(L, "bl.train: lr_schedule.milestones[%d] must be a number (an "
                              "epoch), got %s", (int)i, luaL_typename(L, -1));
            j->milestones[i - 1] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        cfg->lr_milestone_count = (int)n;
    } else if (mt != LUA_TNIL) {
        type_error(L, "lr_schedule.milestones", "a list of epochs");
    }
    cfg->lr_milestones = j->milestones;
    lua_pop(L, 2);
}

/* eval_every = {steps = N} | {samples = N} | {epochs = x} | {auto = N}: its text form for the
 * spec. */
static void eval_every_text(lua_State *L, lbl_job *j, bl_config *given, int ti)
{
    static const char *const keys[] = {"epochs", "steps", "samples", "auto", NULL};
    bl__lua_check_keys(L, ti, keys, "bl.train: eval_every");
    int found = 0;
    for (int i = 0; i < 4; i++) {
        if (lua_getfield(L, ti, keys[i]) != LUA_TNIL) {
            if (lua_type(L, -1) != LUA_TNUMBER)
                type_error(L, "eval_every",
                           "{epochs = x}, {steps = n}, {samples = n} or {auto = n}");
            char prefix[16];
            snprintf(prefix, sizeof prefix, "%s=", keys[i]);
            set_number_text(L, j, given, "eval_every", prefix);
            found++;
        }
        lua_pop(L, 1);
    }
    if (found != 1)
        luaL_error(L, "bl.train: eval_every: give exactly one of epochs, steps, samples, auto");
}

/* The target's value from the table at `ti`, under at_least / at_most / value. */
static void target_value(lua_State *L, int ti, bl_train_config *cfg)
{
    int n = 0;
    if (lua_getfield(L, ti, "at_least") != LUA_TNIL) {
        cfg->target_higher_better = true;
        n++;
        if (lua_type(L, -1) != LUA_TNUMBER)
            type_error(L, "target.at_least", "a number");
        cfg->target_value = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, ti, "at_most") != LUA_TNIL) {
        cfg->target_higher_better = false;
        n++;
        if (lua_type(L, -1) != LUA_TNUMBER)
            type_error(L, "target.at_most", "a number");
        cfg->target_value = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, ti, "value") != LUA_TNIL) {
        n++;
        if (lua_type(L, -1) != LUA_TNUMBER)
            type_error(L, "target.value", "a number");
        cfg->target_value = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    if (n != 1)
        luaL_error(L, "bl.train: target: give exactly one of at_least, at_most (or value)");
}

/* target = {val_loss = 0.3} | {metric =, at_least = | at_most =} (a number goes through the
 * spec's text form). */
static void target_table(lua_State *L, lbl_job *j, bl_train_config *cfg)
{
    if (get(L, "target") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    int ti = lua_gettop(L);
    cfg->has_target = true;
    if (lua_getfield(L, ti, "metric") != LUA_TNIL) {
        static const char *const keys[] = {"metric", "at_least", "at_most", "value", NULL};
        bl__lua_check_keys(L, ti, keys, "bl.train: target");
        if (lua_type(L, -1) != LUA_TSTRING)
            type_error(L, "target.metric", "a string");
        if (bl_metric_parse(j->ctx, lua_tostring(L, -1), &cfg->target_metric) != BL_OK)
            bl__lua_raise(L, j->ctx, "bl.train: target");
        cfg->target_higher_better =
            bl_metric_name_higher_is_better(bl_metric_name(cfg->target_metric));
        target_value(L, ti, cfg);
        lua_pop(L, 1);
    } else {
        lua_pop(L, 1);
        /* the shorthand {val_loss = 0.3}: one metric name → value */
        lua_pushnil(L);
        if (!lua_next(L, ti))
            luaL_error(L, "bl.train: target: empty table; give {metric =, at_least =} or "
                          "{val_accuracy = x}");
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "bl.train: target: expected {metric =, at_least = | at_most =} "
                          "or {<metric> = number}");
        if (bl_metric_parse(j->ctx, lua_tostring(L, -2), &cfg->target_metric) != BL_OK)
            bl__lua_raise(L, j->ctx, "bl.train: target");
        cfg->target_higher_better =
            bl_metric_name_higher_is_better(bl_metric_name(cfg->target_metric));
        cfg->target_value = lua_tonumber(L, -1);
        lua_pop(L, 1);
        if (lua_next(L, ti))
            luaL_error(L, "bl.train: target: the shorthand names one metric, e.g. "
                          "{val_accuracy = 0.9}");
    }
    if (bl_run_spec_check_target(j->ctx, cfg->target_metric, cfg->target_value) != BL_OK)
        bl__lua_raise(L, j->ctx, "bl.train");
    lua_pop(L, 1);
}

/* The plain values of the table (and the spec parts of composite tables), validated by the
 * run spec into j->spec. quiet and threads default to the host's settings. */
static void read_settings(lua_State *L, lbl_job *j)
{
    lbl_state *st = bl__lua_state(L);
    bl_config *given = NULL;
    if (bl_config_new(j->ctx, &given) != BL_OK)
        bl__lua_raise(L, j->ctx, "bl.train");
    /* freed with the job if anything below raises */
    j->spec = given;
    size_t n;
    const bl_run_setting *set = bl_run_spec_settings(&n);
    for (size_t i = 0; i < n; i++) {
        const char *name = set[i].opt.name;
        int t = get(L, name);
        int ti = lua_gettop(L);
        if (t == LUA_TNIL) {
            if (strcmp(name, "quiet") == 0 &&
                bl_config_set_bool(j->ctx, given, name, st->quiet) != BL_OK)
                bl__lua_raise(L, j->ctx, "bl.train");
            if (strcmp(name, "threads") == 0 &&
                bl_config_set_int(j->ctx, given, name, st->threads) != BL_OK)
                bl__lua_raise(L, j->ctx, "bl.train");
        } else if (strcmp(name, "batch") == 0 && t != LUA_TNUMBER) {
            /* a schedule: read_batch */
        } else if (strcmp(name, "lr_scaling") == 0 && t == LUA_TTABLE) {
            lr_scaling_rule(L, j, given, ti);
        } else if (strcmp(name, "lr_schedule") == 0 && t == LUA_TTABLE) {
            lr_schedule_kind(L, j, given, ti);
        } else if (strcmp(name, "eval_every") == 0 && t == LUA_TTABLE) {
            eval_every_text(L, j, given, ti);
        } else if (strcmp(name, "eval_every") == 0 && t == LUA_TNUMBER) {
            set_number_text(L, j, given, name, "");
        } else if (strcmp(name, "eval_every") == 0 && t == LUA_TSTRING) {
            set_plain(L, j, given, name);   /* "auto", checked by the run spec */
        } else if (strcmp(name, "target") == 0 && t == LUA_TTABLE) {
            /* target_table */
        } else if (strcmp(name, "target") == 0 && t == LUA_TNUMBER) {
            set_number_text(L, j, given, name, "");
        } else if (strcmp(name, "checkpoint_every") == 0 && t == LUA_TNUMBER) {
            set_number_text(L, j, given, name, "");   /* steps; "30s" is a string */
        } else if (strcmp(name, "lr_scaling") == 0 && t != LUA_TSTRING) {
            type_error(L, name, "a rule name or a table {rule =, base_batch =, ...}");
        } else if (strcmp(name, "lr_schedule") == 0 && t != LUA_TSTRING) {
            type_error(L, name, "a name or a table {kind =, milestones =, gamma =}");
        } else if (strcmp(name, "eval_every") == 0 || strcmp(name, "target") == 0) {
            type_error(L, name, strcmp(name, "target") == 0
                                    ? "a number or a table {metric =, at_least = | at_most =}"
                                    : "a number of epochs, \"auto\" or {steps = n} / "
                                      "{samples = n} / {auto = n}");
        } else {
            set_plain(L, j, given, name);
        }
        lua_settop(L, ti - 1);
    }
    bl_config *spec = NULL;
    if (bl_run_spec_validate(j->ctx, given, "bl.train", &spec) != BL_OK)
        bl__lua_raise(L, j->ctx, NULL);
    bl_config_free(given);
    j->spec = spec;
}

/* A function (or callable) key into slot *slot; returns true when given. */
static bool read_function(lua_State *L, const char *key, int *slot)
{
    int t = get(L, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return false;
    }
    if (!bl__lua_callable(L, -1))
        type_error(L, key, "a function");
    *slot = lua_gettop(L);
    return true;
}

/* batch = 128 | bl.scheduler(...) | function(state) ... end | a schedule object. Leaves the
 * batch's description (for the run table) at the stack top. A number came with the spec. */
static void read_batch(lua_State *L, lbl_job *j, bl_run_plan *plan)
{
    bl_train_config *cfg = &plan->train;
    int t = get(L, "batch");
    int bi = lua_gettop(L);
    int64_t declared = 0;
    bool needs_gns = false;
    if (t == LUA_TNIL || t == LUA_TNUMBER) {
        lua_pop(L, 1);
        lua_pushinteger(L, (lua_Integer)cfg->batch);          /* its own description */
        return;
    }
    cfg->batch = 0;             /* a schedule chooses every batch, the first one included */
    lbl_scheduler *s = luaL_testudata(L, bi, LBL_SCHEDULER);
    if (s) {
        s = bl__lua_check_scheduler(L, bi);
        lua_pushstring(L, s->name);                 /* [spec, name] */
        if (s->kind == LBL_SCHED_PLUGIN) {
            plan->scheduler_plugin = s->plugin;     /* the spec stays on the stack */
            plan->scheduler_opts = s->opts;
            lua_replace(L, bi);
            return;
        }
        bl__lua_new_schedule(L, bi, &declared, &needs_gns);   /* [spec, name, fn] */
        lua_rotate(L, bi, 1);                       /* [fn, spec, name] */
        lua_remove(L, bi + 1);                      /* [fn, name] */
    } else if (lua_isfunction(L, bi)) {
        lua_pushliteral(L, "function");             /* [fn, "function"] */
    } else if (t == LUA_TTABLE) {
        lua_pushvalue(L, bi);
        bl__lua_schedule_result(L, "bl.train: 'batch'", &declared, &needs_gns); /* [obj, fn] */
        if (lua_getfield(L, bi, "name") != LUA_TSTRING) {             /* [obj, fn, name] */
            lua_pop(L, 1);
            lua_pushliteral(L, "lua");
        }
        lua_remove(L, bi);                          /* [fn, name] */
    } else {
        type_error(L, "batch", "a number, a scheduler (bl.scheduler) or a function(state)");
    }
    j->fn = bi;
    if (cfg->max_batch == 0)
        cfg->max_batch = declared;   /* still 0: the engine's buffers grow with the batches */
    if (needs_gns)
        cfg->measure_gns = true;
    j->max_batch = cfg->max_batch;
    cfg->batch_fn = bl__lua_batch_fn;
    cfg->batch_user = j;
}

static const char *const optim_names[] = {"sgd", "adam", "adamw", "lars", "lamb"};

/* optimizer = "adam" | bl.optim.adam{...} */
static void read_optimizer(lua_State *L, bl_train_config *cfg)
{
    int t = get(L, "optimizer");
    if (t == LUA_TSTRING) {
        const char *name = lua_tostring(L, -1);
        size_t k = 0;
        while (k < 5 && strcmp(optim_names[k], name) != 0)
            k++;
        if (k == 5) {
            const char *near = bl_nearest_name(name, optim_names, 5);
            if (near)
                luaL_error(L, "bl.train: unknown optimizer '%s'; did you mean '%s'? (accepted: "
                              "sgd, adam, adamw, lars, lamb)", name, near);
            luaL_error(L, "bl.train: unknown optimizer '%s' (accepted: sgd, adam, adamw, lars, "
                          "lamb)", name);
        }
        cfg->optim = bl_optim_defaults((bl_optim_kind)k);
    } else if (t != LUA_TNIL) {
        if (!luaL_testudata(L, -1, LBL_OPTIM))
            type_error(L, "optimizer", "an optimizer (bl.optim.sgd{...}) or a name");
        cfg->optim = *bl__lua_check_optim(L, -1);
    }
    lua_pop(L, 1);
}

/* ---- bl.train ------------------------------------------------------------------------------ */

static void set_field_string(lua_State *L, int idx, const char *key, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, idx, key);
}

/* dataset = and model = (both required); the dataset stays on the stack, marked busy. */
static lbl_model *read_data_model(lua_State *L, lbl_job *j, bl_run_plan *plan)
{
    if (get(L, "dataset") == LUA_TNIL)
        luaL_error(L, "bl.train: 'dataset' is required (from bl.dataset)");
    if (!luaL_testudata(L, -1, LBL_DATASET))
        type_error(L, "dataset", "a dataset (from bl.dataset)");
    lbl_dataset *d = bl__lua_check_dataset(L, -1);
    plan->train.data = d->ds;
    set_field_string(L, j->run, "dataset", d->name);
    /* stays on the stack (never collected during the run) and may not be closed by it */
    d->busy++;
    j->data = d;
    if (get(L, "model") == LUA_TNIL)
        luaL_error(L, "bl.train: 'model' is required (from bl.model)");
    if (!luaL_testudata(L, -1, LBL_MODEL))
        type_error(L, "model", "a model (from bl.model)");
    lbl_model *m = bl__lua_check_model(L, -1);
    set_field_string(L, j->run, "model", m->name);
    lua_pop(L, 1);
    plan->model = m->plugin;
    plan->model_opts = m->opts;
    return m;
}

/* stop = and on_point = */
static void read_callbacks(lua_State *L, lbl_job *j, bl_train_config *cfg)
{
    bool have_stop = read_function(L, "stop", &j->stop);
    bool have_on_point = read_function(L, "on_point", &j->on_point);
    if (have_stop) {
        cfg->criterion = bl__lua_criterion;
        cfg->criterion_user = j;
    }
    if (have_stop || have_on_point) {
        lua_pushnil(L);
        j->point = lua_gettop(L);
    }
    if (j->fn)
        bl__lua_prepare_schedule(L, j);
}

/* The run table's echo of the configuration. */
static void echo_config(lua_State *L, lbl_job *j, const bl_run_plan *plan)
{
    lua_pushnumber(L, plan->train.optim.lr);
    lua_setfield(L, j->run, "lr");
    set_field_string(L, j->run, "optimizer", bl_optim_name(plan->train.optim.kind));
    lua_pushinteger(L, (lua_Integer)plan->train.seed);
    lua_setfield(L, j->run, "seed");
    set_field_string(L, j->run, "device", plan->device);
    if (plan->label)
        set_field_string(L, j->run, "label", plan->label);
    lua_newtable(L);
    lua_setfield(L, j->run, "history");
}

static void read_plan(lua_State *L, lbl_job *j, bl_run_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->train = bl_train_defaults();
    read_data_model(L, j, plan);                              /* [.., dataset] */
    read_settings(L, j);
    if (bl_run_spec_apply(j->ctx, j->spec, "bl.train", &plan->train) != BL_OK)
        bl__lua_raise(L, j->ctx, NULL);
    lr_scaling_rest(L, &plan->train);
    lr_schedule_rest(L, j, &plan->train);
    target_table(L, j, &plan->train);
    read_optimizer(L, &plan->train);
    read_batch(L, j, plan);                                   /* [.., (fn,) batch desc] */
    lua_setfield(L, j->run, "batch");
    read_callbacks(L, j, &plan->train);
    plan->device = bl_config_string(j->spec, "device");
    plan->threads = (int)bl_config_int(j->spec, "threads");
    const char *label = bl_config_string(j->spec, "label");
    plan->label = *label ? label : NULL;
}

lbl_job *bl__lua_job_plan(lua_State *L, bl_run_plan *plan)
{
    lbl_job *j = bl__lua_new_job(L);                          /* [cfg, job] */
    lua_toclose(L, 2);
    lua_pushcfunction(L, bl__lua_traceback);                  /* [cfg, job, msgh] */
    j->msgh = 3;
    lua_newtable(L);                                          /* [.., run] */
    j->run = lua_gettop(L);
    read_plan(L, j, plan);
    plan->train.interrupt = bl__lua_state(L)->interrupt;
    return j;
}

lbl_job *bl__lua_train_plan(lua_State *L, bl_run_plan *plan_out)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 40, "bl.train");
    check_keys(L);
    lbl_state *st = bl__lua_state(L);
    if (st->interrupt && *st->interrupt)
        luaL_error(L, "interrupted");

    bl_run_plan plan;
    lbl_job *j = bl__lua_job_plan(L, &plan);
    echo_config(L, j, &plan);
    *plan_out = plan;
    return j;
}

int bl__lua_train(lua_State *L)
{
    bl_run_plan plan;
    lbl_job *j = bl__lua_train_plan(L, &plan);
    lbl_state *st = bl__lua_state(L);
    bool quiet = bl_config_bool(j->spec, "quiet");

    /* the outputs, in order: the store, event files, the script's callbacks, progress */
    if (bl__lua_store_output(L, j, &plan.train, plan.label, quiet))
        return 1;                                             /* resumed: the stored run */
    bl__lua_tensorboard_output(L, j, plan.label);
    bl__lua_callback_output(j, &j->outputs[j->n_outputs++]);
    if (!quiet) {
        bl_run_output *progress = &j->outputs[j->n_outputs++];
        if (bl_run_progress_output(j->ctx, plan.label, isatty(STDERR_FILENO), progress) != BL_OK)
            return bl__lua_raise(L, j->ctx, "bl.train");
        if (st->sweep_count > 0)
            bl_run_progress_output_position(progress, st->sweep_index, st->sweep_count,
                                            bl__now() - st->sweep_start);
    }
    plan.config_json = j->config_json;
    if (bl_run_plan_files(j->ctx, j->spec, &plan) != BL_OK)
        return bl__lua_raise(L, j->ctx, "bl.train");

    st->interrupted = false;
    j->have_result = true;
    int rc = bl_run(j->ctx, &plan, j->outputs, j->n_outputs, &j->result);
    bl__lua_outputs_echo(L, j);
    if (rc != BL_OK) {
        /* the engine's messages start with "train: " */
        const char *msg = bl_errmsg(j->ctx);
        if (strncmp(msg, "train: ", 7) == 0)
            return luaL_error(L, "bl.train: %s", msg + 7);
        return bl__lua_raise(L, j->ctx, "bl.train");
    }
    if (j->result.status == BL_RUN_INTERRUPTED) {
        st->interrupted = true;
        return luaL_error(L, "interrupted");
    }
    bl__lua_run_ended(L, plan.label, j->result.status, j->result.error);
    bl__lua_set_result(L, j->run, &plan.train, &j->result);
    lua_pushvalue(L, j->run);
    return 1;
}

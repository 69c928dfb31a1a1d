/* bl.train{...}: one training run. Converts the Lua table to a bl_train_config (every key is
 * checked; a misspelt one raises with the nearest accepted name), builds the model's net on
 * the device, calls bl_train and returns the run table.
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
#include "lua/lbl.h"

#define LBL_JOB "batchlab.Job"

static const char *const train_keys[] = {
    "dataset", "model", "device", "seed", "epochs", "max_steps", "max_seconds", "batch",
    "max_batch", "drop_last", "micro_batch", "optimizer", "lr_scaling", "lr_schedule",
    "eval_every", "eval_batch", "train_eval_samples", "skip_test", "skip_eval", "measure_gns",
    "gns_chunks", "gns_ema", "target", "stop_at_target", "stop", "quiet", "label", "on_point",
    "threads", "tensorboard", "db", "experiment", "resume", "prefetch", NULL};

/* ---- the job ------------------------------------------------------------------------------- */

static int job_close(lua_State *L)
{
    lbl_job *j = luaL_checkudata(L, 1, LBL_JOB);
    bl__lua_store_close(j);                        /* before the result is freed */
    if (j->data) {
        j->data->busy--;
        j->data = NULL;
    }
    if (j->have_result) {
        bl_run_result_free(&j->result);
        j->have_result = false;
    }
    bl_tfevents_close(NULL, j->tb);                /* left open only by a raised error */
    j->tb = NULL;
    bl_scheduler_close(j->sched);
    j->sched = NULL;
    bl_net_free(j->net);
    j->net = NULL;
    bl_device_free(j->dev);
    j->dev = NULL;
    free(j->milestones);
    j->milestones = NULL;
    bl_ctx_free(j->ctx);
    j->ctx = NULL;
    return 0;
}

static lbl_job *new_job(lua_State *L)
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

static bool opt_number(lua_State *L, const char *key, double *out)
{
    int t = get(L, key);
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER)
            type_error(L, key, "a number");
        *out = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return t != LUA_TNIL;
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

static bool opt_integer(lua_State *L, const char *key, int64_t *out)
{
    int t = get(L, key);
    if (t != LUA_TNIL)
        *out = to_integer(L, "bl.train", key);
    lua_pop(L, 1);
    return t != LUA_TNIL;
}

static bool opt_bool(lua_State *L, const char *key, bool *out)
{
    int t = get(L, key);
    if (t != LUA_TNIL) {
        if (t != LUA_TBOOLEAN)
            type_error(L, key, "a boolean");
        *out = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return t != LUA_TNIL;
}

/* A string key; the string stays valid while the config table holds it. */
static const char *opt_string(lua_State *L, const char *key, const char *def)
{
    int t = get(L, key);
    const char *s = def;
    if (t != LUA_TNIL) {
        if (t != LUA_TSTRING)
            type_error(L, key, "a string");
        s = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    return s;
}

/* Index of `name` in `names` (n entries), or raises naming the nearest. */
static int choice(lua_State *L, const char *what, const char *name, const char *const *names,
                  size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    const char *near = bl_nearest_name(name, names, n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++) {
        luaL_addstring(&b, i ? ", " : "");
        luaL_addstring(&b, names[i]);
    }
    luaL_pushresult(&b);
    if (near)
        return luaL_error(L, "bl.train: unknown %s '%s'; did you mean '%s'? (accepted: %s)",
                          what, name, near, lua_tostring(L, -1));
    return luaL_error(L, "bl.train: unknown %s '%s' (accepted: %s)", what, name,
                      lua_tostring(L, -1));
}

/* ---- the composite keys -------------------------------------------------------------------- */

static const char *const scaling_names[] = {"none", "linear", "sqrt"};

/* lr_scaling = "linear" | {rule =, base_batch =, warmup_epochs =, warmup_steps =} */
static void read_lr_scaling(lua_State *L, bl_train_config *cfg)
{
    int t = get(L, "lr_scaling");
    if (t == LUA_TSTRING) {
        cfg->lr_scaling = (bl_lr_scaling)choice(L, "lr_scaling rule", lua_tostring(L, -1),
                                                scaling_names, 3);
    } else if (t == LUA_TTABLE) {
        static const char *const keys[] = {"rule", "base_batch", "warmup_epochs",
                                           "warmup_steps", NULL};
        int ti = lua_gettop(L);
        bl__lua_check_keys(L, ti, keys, "bl.train: lr_scaling");
        if (lua_getfield(L, ti, "rule") != LUA_TNIL) {
            if (!lua_isstring(L, -1) || lua_type(L, -1) != LUA_TSTRING)
                type_error(L, "lr_scaling.rule", "a string");
            cfg->lr_scaling = (bl_lr_scaling)choice(L, "lr_scaling rule", lua_tostring(L, -1),
                                                    scaling_names, 3);
        }
        lua_pop(L, 1);
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
    } else if (t != LUA_TNIL) {
        type_error(L, "lr_scaling", "a rule name or a table {rule =, base_batch =, ...}");
    }
    lua_pop(L, 1);
}

static const char *const schedule_names[] = {"constant", "step", "cosine", "linear"};

/* lr_schedule = "cosine" | {kind = "step", milestones = {...}, gamma = 0.1} */
static void read_lr_schedule(lua_State *L, lbl_job *j, bl_train_config *cfg)
{
    int t = get(L, "lr_schedule");
    if (t == LUA_TSTRING) {
        cfg->lr_schedule = (bl_lr_schedule)choice(L, "lr_schedule", lua_tostring(L, -1),
                                                  schedule_names, 4);
    } else if (t == LUA_TTABLE) {
        static const char *const keys[] = {"kind", "milestones", "gamma", NULL};
        int ti = lua_gettop(L);
        bl__lua_check_keys(L, ti, keys, "bl.train: lr_schedule");
        if (lua_getfield(L, ti, "kind") != LUA_TSTRING)
            type_error(L, "lr_schedule.kind", "a string (\"step\", \"cosine\", ...)");
        cfg->lr_schedule = (bl_lr_schedule)choice(L, "lr_schedule", lua_tostring(L, -1),
                                                  schedule_names, 4);
        lua_pop(L, 1);
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
        lua_pop(L, 1);
    } else if (t != LUA_TNIL) {
        type_error(L, "lr_schedule", "a name or a table {kind =, milestones =, gamma =}");
    }
    lua_pop(L, 1);
}

/* eval_every = 1 (epochs) | {steps = N} | {samples = N} | {epochs = x} */
static void read_eval_every(lua_State *L, bl_train_config *cfg)
{
    int t = get(L, "eval_every");
    if (t == LUA_TNUMBER) {
        cfg->eval_unit = BL_EVAL_EPOCHS;
        cfg->eval_every = lua_tonumber(L, -1);
    } else if (t == LUA_TTABLE) {
        static const char *const keys[] = {"epochs", "steps", "samples", NULL};
        static const bl_eval_unit units[] = {BL_EVAL_EPOCHS, BL_EVAL_STEPS, BL_EVAL_SAMPLES};
        int ti = lua_gettop(L);
        bl__lua_check_keys(L, ti, keys, "bl.train: eval_every");
        int found = 0;
        for (int i = 0; i < 3; i++) {
            if (lua_getfield(L, ti, keys[i]) != LUA_TNIL) {
                if (lua_type(L, -1) != LUA_TNUMBER)
                    type_error(L, "eval_every", "{epochs = x}, {steps = n} or {samples = n}");
                cfg->eval_unit = units[i];
                cfg->eval_every = lua_tonumber(L, -1);
                found++;
            }
            lua_pop(L, 1);
        }
        if (found != 1)
            luaL_error(L, "bl.train: eval_every: give exactly one of epochs, steps, samples");
    } else if (t != LUA_TNIL) {
        type_error(L, "eval_every", "a number of epochs or {steps = n} / {samples = n}");
    }
    lua_pop(L, 1);
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

static bool metric_higher_better(bl_metric m)
{
    return m == BL_METRIC_VAL_ACCURACY || m == BL_METRIC_TRAIN_ACCURACY;
}

/* target = 0.9 (val_accuracy ≥ 0.9) | {val_loss = 0.3} | {metric =, at_least = | at_most =} */
static void read_target(lua_State *L, lbl_job *j, bl_train_config *cfg)
{
    int t = get(L, "target");
    if (t == LUA_TNUMBER) {
        cfg->has_target = true;
        cfg->target_metric = BL_METRIC_VAL_ACCURACY;
        cfg->target_higher_better = true;
        cfg->target_value = lua_tonumber(L, -1);
    } else if (t == LUA_TTABLE) {
        int ti = lua_gettop(L);
        cfg->has_target = true;
        if (lua_getfield(L, ti, "metric") != LUA_TNIL) {
            static const char *const keys[] = {"metric", "at_least", "at_most", "value", NULL};
            bl__lua_check_keys(L, ti, keys, "bl.train: target");
            if (lua_type(L, -1) != LUA_TSTRING)
                type_error(L, "target.metric", "a string");
            if (bl_metric_parse(j->ctx, lua_tostring(L, -1), &cfg->target_metric) != BL_OK)
                bl__lua_raise(L, j->ctx, "bl.train: target");
            cfg->target_higher_better = metric_higher_better(cfg->target_metric);
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
            cfg->target_higher_better = metric_higher_better(cfg->target_metric);
            cfg->target_value = lua_tonumber(L, -1);
            lua_pop(L, 1);
            if (lua_next(L, ti))
                luaL_error(L, "bl.train: target: the shorthand names one metric, e.g. "
                              "{val_accuracy = 0.9}");
        }
    } else if (t != LUA_TNIL) {
        type_error(L, "target", "a number or a table {metric =, at_least = | at_most =}");
    }
    lua_pop(L, 1);
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
 * batch's description (for the run table) at the stack top. */
static void read_batch(lua_State *L, lbl_job *j, bl_train_config *cfg)
{
    int t = get(L, "batch");
    int bi = lua_gettop(L);
    int64_t declared = 0;
    bool needs_gns = false;
    if (t == LUA_TNIL)
        luaL_error(L, "bl.train: 'batch' is required (a number, a scheduler or a function)");
    if (t == LUA_TNUMBER) {
        cfg->batch = to_integer(L, "bl.train", "batch");
        if (cfg->batch < 1)
            luaL_error(L, "bl.train: 'batch' must be ≥ 1, got %I", (lua_Integer)cfg->batch);
        return;                                     /* [batch] is its own description */
    }
    lbl_scheduler *s = luaL_testudata(L, bi, LBL_SCHEDULER);
    if (s) {
        s = bl__lua_check_scheduler(L, bi);
        lua_pushstring(L, s->name);                 /* [spec, name] */
        if (s->kind == LBL_SCHED_PLUGIN) {
            if (bl_scheduler_open(j->ctx, s->plugin, s->opts, &j->sched) != BL_OK)
                bl__lua_raise(L, j->ctx, "bl.train: batch");
            cfg->scheduler = j->sched;
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
    cfg->max_batch = declared;
    int64_t mb = 0;
    if (opt_integer(L, "max_batch", &mb))
        cfg->max_batch = mb;
    if (cfg->max_batch < 1)
        luaL_error(L, "bl.train: a batch function needs 'max_batch' (the largest batch it "
                      "returns; the engine sizes its buffers for it)");
    if (needs_gns)
        cfg->measure_gns = true;
    j->max_batch = cfg->max_batch;
    cfg->batch_fn = bl__lua_batch_fn;
    cfg->batch_user = j;
}

static const char *const optim_names[] = {"sgd", "adam", "adamw", "lars", "lamb"};

static void read_optimizer(lua_State *L, bl_train_config *cfg)
{
    int t = get(L, "optimizer");
    if (t == LUA_TSTRING) {
        bl_optim_kind kind = (bl_optim_kind)choice(L, "optimizer", lua_tostring(L, -1),
                                                   optim_names, 5);
        cfg->optim = bl_optim_defaults(kind);
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

int bl__lua_train(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 40, "bl.train");
    bl__lua_check_keys(L, 1, train_keys, "bl.train");
    lbl_state *st = bl__lua_state(L);
    if (st->interrupt && *st->interrupt)
        return luaL_error(L, "interrupted");

    lbl_job *j = new_job(L);                                  /* [cfg, job] */
    lua_toclose(L, 2);
    lua_pushcfunction(L, bl__lua_traceback);                  /* [cfg, job, msgh] */
    j->msgh = 3;
    lua_newtable(L);                                          /* [.., run] */
    j->run = lua_gettop(L);
    bl_train_config cfg = bl_train_defaults();

    /* what to train */
    if (get(L, "dataset") == LUA_TNIL)
        return luaL_error(L, "bl.train: 'dataset' is required (from bl.dataset)");
    if (!luaL_testudata(L, -1, LBL_DATASET))
        type_error(L, "dataset", "a dataset (from bl.dataset)");
    lbl_dataset *d = bl__lua_check_dataset(L, -1);
    cfg.data = d->ds;
    set_field_string(L, j->run, "dataset", d->name);
    /* stays on the stack (never collected during the run) and may not be closed by it */
    d->busy++;
    j->data = d;
    if (get(L, "model") == LUA_TNIL)
        return luaL_error(L, "bl.train: 'model' is required (from bl.model)");
    if (!luaL_testudata(L, -1, LBL_MODEL))
        type_error(L, "model", "a model (from bl.model)");
    lbl_model *m = bl__lua_check_model(L, -1);
    set_field_string(L, j->run, "model", m->name);
    lua_pop(L, 1);

    int64_t seed = (int64_t)cfg.seed;
    opt_integer(L, "seed", &seed);
    if (seed < 0)
        return luaL_error(L, "bl.train: 'seed' must be ≥ 0");
    cfg.seed = (uint64_t)seed;
    opt_number(L, "epochs", &cfg.epochs);
    opt_integer(L, "max_steps", &cfg.max_steps);
    opt_number(L, "max_seconds", &cfg.max_seconds);

    read_batch(L, j, &cfg);                                   /* [.., (fn,) batch desc] */
    lua_setfield(L, j->run, "batch");
    opt_bool(L, "drop_last", &cfg.drop_last);
    opt_integer(L, "micro_batch", &cfg.micro_batch);
    const char *prefetch = opt_string(L, "prefetch", "auto");
    if (strcmp(prefetch, "auto") == 0)
        cfg.prefetch = BL_PREFETCH_AUTO;
    else if (strcmp(prefetch, "on") == 0)
        cfg.prefetch = BL_PREFETCH_ON;
    else if (strcmp(prefetch, "off") == 0)
        cfg.prefetch = BL_PREFETCH_OFF;
    else
        return luaL_error(L, "bl.train: 'prefetch' must be \"auto\", \"on\" or \"off\", got \"%s\"",
                          prefetch);
    read_optimizer(L, &cfg);
    read_lr_scaling(L, &cfg);
    read_lr_schedule(L, j, &cfg);
    read_eval_every(L, &cfg);
    opt_integer(L, "eval_batch", &cfg.eval_batch);
    opt_integer(L, "train_eval_samples", &cfg.train_eval_samples);
    opt_bool(L, "skip_test", &cfg.skip_test);
    opt_bool(L, "skip_eval", &cfg.skip_eval);
    opt_bool(L, "measure_gns", &cfg.measure_gns);
    int64_t chunks = cfg.gns_chunks;
    if (opt_integer(L, "gns_chunks", &chunks))
        cfg.gns_chunks = (int)(chunks > 1000000 ? 1000000 : chunks < -1 ? -1 : chunks);
    opt_number(L, "gns_ema", &cfg.gns_ema);
    read_target(L, j, &cfg);
    opt_bool(L, "stop_at_target", &cfg.stop_at_target);
    bool quiet = st->quiet;
    opt_bool(L, "quiet", &quiet);
    /* the label stays on the stack: the progress printer reads it during the run */
    const char *label = NULL;
    if (get(L, "label") == LUA_TSTRING)
        label = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1))
        type_error(L, "label", "a string");
    int64_t threads = st->threads;
    if (opt_integer(L, "threads", &threads) && (threads < 0 || threads > 4096))
        return luaL_error(L, "bl.train: 'threads' must be in [0, 4096], got %I",
                          (lua_Integer)threads);
    const char *device = opt_string(L, "device", "cpu");

    bool have_stop = read_function(L, "stop", &j->stop);
    bool have_on_point = read_function(L, "on_point", &j->on_point);
    if (have_stop) {
        cfg.criterion = bl__lua_criterion;
        cfg.criterion_user = j;
    }
    if (have_stop || have_on_point) {
        cfg.on_point = bl__lua_on_point;
        cfg.point_user = j;
        lua_pushnil(L);
        j->point = lua_gettop(L);
    }
    if (j->fn)
        bl__lua_prepare_schedule(L, j);

    /* the config echo */
    lua_pushnumber(L, cfg.optim.lr);
    lua_setfield(L, j->run, "lr");
    set_field_string(L, j->run, "optimizer", bl_optim_name(cfg.optim.kind));
    lua_pushinteger(L, (lua_Integer)cfg.seed);
    lua_setfield(L, j->run, "seed");
    set_field_string(L, j->run, "device", device);
    if (label)
        set_field_string(L, j->run, "label", label);
    lua_newtable(L);
    lua_setfield(L, j->run, "history");
    if (bl__lua_store_prepare(L, j, &cfg, label, quiet))
        return 1;                                             /* resumed: the stored run */

    /* the device and the net */
    int rc = strcmp(device, "cpu") == 0 ? bl_device_cpu_open(j->ctx, (int)threads, &j->dev)
                                        : bl_device_open(j->ctx, device, &j->dev);
    if (rc != BL_OK)
        return bl__lua_raise(L, j->ctx, "bl.train");
    rc = bl_model_build(j->ctx, m->plugin, m->opts, bl_dataset_info(d->ds), j->dev, cfg.seed,
                        &j->net);
    if (rc != BL_OK)
        return bl__lua_raise(L, j->ctx, "bl.train");
    cfg.net = j->net;
    cfg.interrupt = st->interrupt;

    bl_progress_printer printer = {0};
    printer.label = label;
    printer.live = isatty(STDERR_FILENO);
    if (!quiet) {
        cfg.on_progress = bl_progress_print;
        cfg.progress_user = &printer;
    }

    bl__lua_tensorboard_open(L, j, &cfg, label);
    bl__lua_store_begin(L, j, &cfg, label);

    st->interrupted = false;
    j->have_result = true;
    rc = bl_train(j->ctx, &cfg, &j->result);
    bl__lua_tensorboard_end(j, rc);
    bl__lua_store_end(j, rc);
    /* A live progress line is left open unless the run ended at its epoch budget. */
    double n_train = (double)bl_dataset_info(d->ds)->count[BL_SPLIT_TRAIN];
    int64_t planned = cfg.epochs > 0 ? (int64_t)(cfg.epochs * n_train) : 0;
    if (printer.live && printer.last_print > 0 && !(planned > 0 && j->result.samples >= planned))
        fputc('\n', stderr);
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
    bl__lua_set_result(L, j->run, &cfg, &j->result);
    lua_pushvalue(L, j->run);
    return 1;
}

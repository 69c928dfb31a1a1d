/* bl.probe{...}: the probe's prediction of the best batch size (batchlab/probe.h) from Lua.
 *
 *   local p = bl.probe { dataset = data, model = model, batch = 32,
 *                        optimizer = bl.optim.sgd{ lr = 0.05 }, target = { val_loss = 0.2 },
 *                        probe_steps = 300, batches = { 8, 16, 32, 64 } }
 *   print(p.summary)   -- "predicted best batch 64 ...; 32–64 within 10%; B_noise ≈ ..."
 *
 * The table takes bl.train's keys (translated by bl.train's own code, bl__lua_train_plan; the
 * batch is the one the noise scale is measured at) and the probe's: batches, probe_steps,
 * time_steps, rounds, warmup_steps, min_batch, batch_limit, budget, tie. Keys that record or observe
 * a run (db, experiment, resume, tensorboard, stop, on_point) raise: the probe's short runs
 * are not recorded. bl.recommend{...} given one configuration (a table with `model`) calls
 * this.
 *
 * The result: best, within (the batches within `tie` of the best time, increasing), b_noise,
 * s_min, s_min_basis, noise_batch, noise_steps, noise_steps_to_target, gns_points,
 * largest_fit (with a budget), seconds (the probe's own cost), summary (one sentence) and
 * curve = {{batch=, steps=, step_time=, time=, relative_time=, within=, timed_steps=,
 * memory=}, ...} by increasing batch. Unknown numbers (NaN) are left out. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "batchlab/find_batch.h"
#include "batchlab/probe.h"
#include "batchlab/run_spec.h"
#include "lua/lbl.h"

#define LBL_PROBE "batchlab.Probe"

static const char *const probe_keys[] = {"batches",   "probe_steps", "time_steps", "rounds",
                                         "warmup_steps", "min_batch", "batch_limit",
                                         "budget",    "tie",         NULL};
static const char *const refused_keys[] = {"db", "experiment", "resume", "tensorboard", "stop",
                                           "on_point", NULL};

/* What one call holds besides bl.train's job: the batches list and the result. */
typedef struct probe_job {
    int64_t batches[64];
    bl_probe_result result;
    bl_run_output progress;
    bool have_progress;
} probe_job;

static int probe_close(lua_State *L)
{
    probe_job *p = luaL_checkudata(L, 1, LBL_PROBE);
    bl_probe_result_free(&p->result);
    if (p->have_progress)
        bl_run_outputs_close(&p->progress, 1);
    p->have_progress = false;
    return 0;
}

static bool is_one_of(const char *key, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(key, list[i]) == 0)
            return true;
    return false;
}

/* args[key] as an integer ≥ lo into *out, when present. */
static void opt_integer(lua_State *L, int args, const char *key, int64_t lo, int64_t *out)
{
    if (lua_getfield(L, args, key) != LUA_TNIL) {
        int isint = 0;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (!isint || v < lo)
            luaL_error(L, "bl.probe: '%s' must be an integer ≥ %I, got %s", key,
                       (lua_Integer)lo, luaL_tolstring(L, -1, NULL));
        *out = (int64_t)v;
    }
    lua_pop(L, 1);
}

/* The probe's own keys of the table at `args` into *c (batches into p->batches). */
static void read_probe_keys(lua_State *L, int args, probe_job *p, bl_probe_config *c)
{
    opt_integer(L, args, "probe_steps", 1, &c->probe_steps);
    opt_integer(L, args, "time_steps", 1, &c->time_steps);
    int64_t rounds = c->rounds;
    opt_integer(L, args, "rounds", 1, &rounds);
    if (rounds > 16)
        luaL_error(L, "bl.probe: 'rounds' must be in [1, 16], got %I", (lua_Integer)rounds);
    c->rounds = (int)rounds;
    opt_integer(L, args, "warmup_steps", 0, &c->warmup_steps);
    opt_integer(L, args, "min_batch", 1, &c->min_batch);
    opt_integer(L, args, "batch_limit", 1, &c->max_batch);
    int t = lua_getfield(L, args, "tie");
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER)
            luaL_error(L, "bl.probe: 'tie' must be a fraction (0.1 for 10%%), got %s",
                       luaL_typename(L, -1));
        c->tie_fraction = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    t = lua_getfield(L, args, "budget");
    if (t == LUA_TSTRING) {
        bl_ctx *ctx = bl__lua_state(L)->ctx;
        if (bl_parse_size(ctx, lua_tostring(L, -1), &c->budget_bytes) != BL_OK)
            bl__lua_raise(L, ctx, "bl.probe: 'budget'");
    } else if (t == LUA_TNUMBER) {
        if (!(lua_tonumber(L, -1) >= 1))
            luaL_error(L, "bl.probe: 'budget' must be ≥ 1 byte");
        c->budget_bytes = (size_t)lua_tonumber(L, -1);
    } else if (t != LUA_TNIL) {
        luaL_error(L, "bl.probe: 'budget' must be bytes or a size like \"512MB\", got %s",
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    t = lua_getfield(L, args, "batches");
    if (t == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        if (n < 1 || n > 64)
            luaL_error(L, "bl.probe: 'batches' must list 1 to 64 batch sizes, got %I", n);
        for (lua_Integer i = 1; i <= n; i++) {
            int isint = 0;
            lua_rawgeti(L, -1, i);
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint)
                luaL_error(L, "bl.probe: batches[%I] must be an integer, got %s", i,
                           luaL_tolstring(L, -1, NULL));
            p->batches[i - 1] = (int64_t)v;
            lua_pop(L, 1);
        }
        c->batches = p->batches;
        c->batch_count = (size_t)n;
    } else if (t != LUA_TNIL) {
        luaL_error(L, "bl.probe: 'batches' must be a list of batch sizes, got %s",
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* Every key of the table is bl.train's or the probe's: "did you mean" looks at both. */
static void check_all_keys(lua_State *L, int args)
{
    const char *keys[96];
    size_t n_set, n = 0;
    const bl_run_setting *set = bl_run_spec_settings(&n_set);
    for (size_t i = 0; i < n_set && n < 80; i++)
        keys[n++] = set[i].opt.name;
    for (const bl_run_object_key *k = bl_run_spec_object_keys(); k->name && n < 80; k++)
        keys[n++] = k->name;
    for (size_t i = 0; probe_keys[i]; i++)
        keys[n++] = probe_keys[i];
    keys[n] = NULL;
    bl__lua_check_keys(L, args, keys, "bl.probe");
}

/* A copy of the table at `args` without the probe's keys (bl.train's part); raises on a key
 * that records or observes a run. */
static void train_part(lua_State *L, int args)
{
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, args)) {                     /* [.., copy, key, value] */
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *key = lua_tostring(L, -2);
            if (is_one_of(key, refused_keys))
                luaL_error(L, "bl.probe: '%s' is not accepted: the probe's short runs are not "
                              "recorded or observed", key);
            if (is_one_of(key, probe_keys)) {
                lua_pop(L, 1);
                continue;
            }
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);                           /* [.., copy, key, key, value] */
        lua_rawset(L, -4);
    }
}

static void set_number(lua_State *L, const char *key, double v)
{
    if (isnan(v))
        return;
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

static void set_integer(lua_State *L, const char *key, int64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, key);
}

static void push_result(lua_State *L, const bl_probe_result *r, double tie)
{
    lua_createtable(L, 0, 14);
    set_integer(L, "best", r->best_batch);
    set_number(L, "b_noise", r->b_noise);
    set_number(L, "s_min", r->s_min);
    lua_pushstring(L, bl_probe_s_min_basis_name(r->s_min_basis));
    lua_setfield(L, -2, "s_min_basis");
    set_integer(L, "noise_batch", r->noise_batch);
    set_integer(L, "noise_steps", r->noise_steps);
    set_number(L, "noise_steps_to_target", r->noise_steps_to_target);
    set_integer(L, "gns_points", r->gns_points);
    if (r->largest_fit > 0)
        set_integer(L, "largest_fit", r->largest_fit);
    set_number(L, "seconds", r->seconds);
    set_number(L, "tie", tie);
    lua_createtable(L, (int)r->within_count, 0);
    for (size_t i = 0; i < r->within_count; i++) {
        lua_pushinteger(L, (lua_Integer)r->within[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "within");
    lua_createtable(L, (int)r->count, 0);
    for (size_t i = 0; i < r->count; i++) {
        const bl_probe_point *p = &r->points[i];
        lua_createtable(L, 0, 8);
        set_integer(L, "batch", p->batch);
        set_number(L, "steps", p->steps);
        set_number(L, "step_time", p->step_time);
        set_number(L, "time", p->time);
        set_number(L, "relative_time", p->relative_time);
        lua_pushboolean(L, p->within);
        lua_setfield(L, -2, "within");
        set_integer(L, "timed_steps", p->timed_steps);
        set_integer(L, "memory", (int64_t)p->peak_bytes);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "curve");
    char text[512];
    lua_pushstring(L, bl_probe_summary(r, tie, text, sizeof text));
    lua_setfield(L, -2, "summary");
}

/* [train, config (light userdata), probe] → result: bl.train's translation of the table in
 * a frame of its own (it wants the table alone on its stack), then the probe. */
static int probe_run(lua_State *L)
{
    bl_probe_config *c = lua_touserdata(L, 2);
    probe_job *p = luaL_checkudata(L, 3, LBL_PROBE);  /* kept alive by bl.probe's frame */
    lua_settop(L, 1);
    bl_run_plan plan;
    lbl_job *j = bl__lua_train_plan(L, &plan);
    if (!bl_config_bool(j->spec, "quiet")) {
        if (bl_run_progress_output(j->ctx, "probe", isatty(STDERR_FILENO), &p->progress) !=
            BL_OK)
            return bl__lua_raise(L, j->ctx, "bl.probe");
        p->have_progress = true;
        c->outputs = &p->progress;
        c->n_outputs = 1;
    }
    lbl_state *st = bl__lua_state(L);
    st->interrupted = false;
    int rc = bl_probe(j->ctx, &plan, c, &p->result);
    if (rc == BL_EINTERRUPTED) {
        st->interrupted = true;
        return luaL_error(L, "interrupted");
    }
    if (rc != BL_OK) {
        const char *msg = bl_errmsg(j->ctx);  /* the core's messages start with "probe: " */
        return luaL_error(L, "%s%s", strncmp(msg, "probe: ", 7) == 0 ? "bl." : "bl.probe: ",
                          msg);
    }
    push_result(L, &p->result, c->tie_fraction);
    return 1;
}

int bl__lua_probe(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    probe_job *p = lua_newuserdatauv(L, sizeof *p, 0);         /* [args, probe] */
    memset(p, 0, sizeof *p);                                    /* closed: nothing held */
    if (luaL_newmetatable(L, LBL_PROBE)) {
        lua_pushcfunction(L, probe_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, probe_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    lua_toclose(L, 2);
    bl_probe_config c = bl_probe_defaults();
    check_all_keys(L, 1);
    read_probe_keys(L, 1, p, &c);
    lua_pushcfunction(L, probe_run);                            /* [args, probe, fn] */
    train_part(L, 1);                                           /* [.., fn, train] */
    lua_pushlightuserdata(L, &c);
    lua_pushvalue(L, 2);
    lua_call(L, 3, 1);                                          /* [args, probe, result] */
    return 1;
}

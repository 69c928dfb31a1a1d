/* Recording runs in the results store (batchlab/store.h) from bl.train and bl.sweep.
 *
 * A run is recorded when its bl.train table has `db = "FILE"`, `experiment = "NAME"` or
 * `resume = true`, or when the host set a store (bl_lua_set_db: `batchlab run` always does,
 * with --db FILE, $BATCHLAB_DB or ./batchlab.db, unless --no-db), or when the host never set
 * one and $BATCHLAB_DB is set (a stock lua5.4); `db = false` turns it off. The file is `db`,
 * else the host's, else $BATCHLAB_DB, else batchlab.db. The run's row is written when it starts, each evaluation point as it is made,
 * and its result at the end — also when it fails, diverges or is interrupted. bl.sweep records
 * each run in the experiment named after the sweep.
 *
 * Resume (`resume = true`; bl.sweep passes it to every run unless its own `resume = false`):
 * when the experiment already has a finished run (completed or diverged) with the same
 * configuration, bl.train does not train: it returns that run as it was recorded, with
 * `resumed = true`, and says so on stderr (unless quiet). Failed, interrupted and unfinished
 * runs are trained again.
 *
 * The configuration is the bl.train table as JSON, keys sorted: every key except label,
 * quiet, threads, on_point, tensorboard, db, experiment and resume; a dataset or model as
 * {name, options} (options with their defaults), a scheduler as {scheduler, options}, and
 * the optimizer as bl.train resolved it (all its fields, defaults included). A Lua function
 * is written as its identity, "function <file>:<line> #<hash>" (a hash of its stripped
 * bytecode and its upvalues' values; see put_function), and the run's label is added to the
 * configuration: such a run resumes only under the same label and the same function.
 *
 * The run table gets `db`, `experiment` (when given) and `run_id`. Recording itself is the
 * core's store output (batchlab/run.h): the start, each point and the end — also when the
 * run fails, diverges or is interrupted. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/strbuf.h"
#include "batchlab/run.h"
#include "batchlab/sweep.h"
#include "batchlab/json.h"
#include "batchlab/run_spec.h"
#include "batchlab/store.h"
#include "dist/dist.h"
#include "lua/lbl.h"

#define DEFAULT_DB_KEY "batchlab.store.default"

/* ---- host default ----------------------------------------------------------------------- */

/* The registry field is nil until the host calls bl_lua_set_db, then the file or false. */
void bl_lua_set_db(lua_State *L, const char *path)
{
    if (path && *path)
        lua_pushstring(L, path);
    else
        lua_pushboolean(L, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_DB_KEY);
}

/* The store every run records in unless its table says otherwise: the host's (bl_lua_set_db),
 * or — when the host never chose, as under a stock lua5.4 — $BATCHLAB_DB when set, as in
 * `batchlab run`. NULL = none. Pushes nothing. */
static const char *host_db(lua_State *L)
{
    int t = lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_DB_KEY);
    const char *path = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL; /* anchored there */
    lua_pop(L, 1);
    if (t == LUA_TNIL) {
        const char *env = getenv("BATCHLAB_DB");
        path = env && *env ? env : NULL;
    }
    return path;
}

/* ---- the configuration as JSON ----------------------------------------------------------- */

/* The text is canonicalized by the store (bl_json_canonical: sorted keys, numbers in their
 * shortest round-trip form, one escaping), so this writer only has to write valid JSON. */
typedef struct jw {
    bl__sbuf b;
    bool has_function;       /* a value that cannot be compared was written */
} jw;

static void puts_(jw *w, const char *s)
{
    bl__sb_puts(&w->b, s);
}

/* A Lua string, embedded NULs included (escaped as \u0000). */
static void put_string(jw *w, const char *s, size_t n)
{
    bl__sb_json_stringn(&w->b, s, n);
}

static void put_number(jw *w, double v)
{
    char num[40];
    bl__format_json_number(num, sizeof num, v, 15);
    puts_(w, num);
}

/* "name":<options as JSON> for a validated config. */
static void put_config(jw *w, const char *name, const bl_config *cfg)
{
    char *json = NULL;
    puts_(w, "{\"name\":");
    put_string(w, name, strlen(name));
    puts_(w, ",\"options\":");
    if (cfg && bl_config_to_json(NULL, cfg, &json) == BL_OK) {
        puts_(w, json);
        free(json);
    } else {
        puts_(w, cfg ? "null" : "{}");
        w->b.failed = w->b.failed || cfg != NULL;
    }
    puts_(w, "}");
}

static void put_value(jw *w, lua_State *L, int idx, int depth);

typedef struct tkey {
    const char *s;           /* string key (anchored in the table), or NULL */
    char num[32];            /* a number key as text */
    lua_Number n;
} tkey;

static int cmp_tkey(const void *a, const void *b)
{
    const tkey *x = a, *y = b;
    return strcmp(x->s ? x->s : x->num, y->s ? y->s : y->num);
}

/* A plain table: a list as an array, anything else as an object with sorted keys. */
static void put_table(jw *w, lua_State *L, int idx, int depth, const char *const *skip)
{
    size_t count = 0, len = lua_rawlen(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
    }
    if (!skip && len > 0 && count == len) {
        puts_(w, "[");
        for (size_t i = 1; i <= len; i++) {
            if (i > 1)
                puts_(w, ",");
            lua_rawgeti(L, idx, (lua_Integer)i);
            put_value(w, L, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        puts_(w, "]");
        return;
    }
    tkey *keys = calloc(count ? count : 1, sizeof *keys);
    if (!keys) {
        w->b.failed = true;
        return;
    }
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int t = lua_type(L, -1);
        if (t == LUA_TSTRING) {
            const char *s = lua_tostring(L, -1);
            bool skipped = false;
            for (size_t k = 0; skip && skip[k] && !skipped; k++)
                skipped = strcmp(skip[k], s) == 0;
            if (!skipped)
                keys[n++].s = s;
        } else if (t == LUA_TNUMBER && n < count) {
            keys[n].n = lua_tonumber(L, -1);
            if (lua_isinteger(L, -1))
                snprintf(keys[n].num, sizeof keys[n].num, "%lld",
                         (long long)lua_tointeger(L, -1));
            else
                snprintf(keys[n].num, sizeof keys[n].num, "%.17g", keys[n].n);
            n++;
        } else {
            w->has_function = true; /* a key that cannot be written */
        }
    }
    qsort(keys, n, sizeof *keys, cmp_tkey);
    puts_(w, "{");
    for (size_t k = 0; k < n; k++) {
        const char *name = keys[k].s ? keys[k].s : keys[k].num;
        if (k)
            puts_(w, ",");
        put_string(w, name, strlen(name));
        puts_(w, ":");
        if (keys[k].s)
            lua_pushstring(L, keys[k].s);
        else
            lua_pushnumber(L, keys[k].n);
        lua_rawget(L, idx);
        put_value(w, L, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    puts_(w, "}");
    free(keys);
}

static void put_optim(jw *w, const bl_optim_config *o)
{
    char *json = NULL;
    if (bl_run_spec_optim_json(NULL, o, &json) == BL_OK)
        puts_(w, json);
    else
        w->b.failed = true;
    free(json);
}

/* ---- a function's identity ----------------------------------------------------------------
 *
 * A function is written as "function <file>:<line> #<hash>": where it was defined (for the
 * reader) and a 64-bit FNV-1a hash of its bytecode (lua_dump, debug information stripped) and
 * of its upvalues, so two functions that can behave differently never match, while the same
 * function in a rerun of the same script does. Upvalues are hashed by value: numbers (integer
 * and float told apart), strings and booleans as they are; a table by its keys and values
 * (order-independent); a Lua function by its own identity; C functions, userdata and threads
 * by their type only. `_ENV` is left out (the globals are the whole program), recursion stops
 * at IDENT_DEPTH and after IDENT_BUDGET values (past the budget, which values were seen depends
 * on table order, so such a function may not resume; it never matches a different one).
 * Nothing here raises or calls a metamethod. */
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull
#define IDENT_DEPTH 8
#define IDENT_BUDGET 100000

typedef struct ident {
    size_t budget;           /* values left to visit */
} ident;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * FNV_PRIME;
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return fnv(h, s, strlen(s) + 1);
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
    uint64_t *h = ud;
    *h = fnv(*h, p, n);
    return 0;
}

static uint64_t hash_value(lua_State *L, int idx, int depth, ident *id);

static uint64_t hash_function(lua_State *L, int idx, int depth, ident *id)
{
    uint64_t h = fnv_str(FNV_OFFSET, "function");
    if (lua_iscfunction(L, idx))
        return fnv_str(h, "C");
    lua_pushvalue(L, idx);                          /* [f] */
    lua_dump(L, dump_writer, &h, 1);
    lua_pop(L, 1);
    for (int i = 1;; i++) {
        const char *name = lua_getupvalue(L, idx, i); /* [up] */
        if (!name)
            break;
        h = fnv_str(h, name);
        if (strcmp(name, "_ENV") != 0)
            h = fnv(h, &(uint64_t){hash_value(L, lua_gettop(L), depth + 1, id)},
                    sizeof(uint64_t));
        lua_pop(L, 1);
    }
    return h;
}

static uint64_t hash_value(lua_State *L, int idx, int depth, ident *id)
{
    int t = lua_type(L, idx);
    uint64_t h = fnv(FNV_OFFSET, &t, sizeof t);
    if (depth > IDENT_DEPTH || id->budget == 0 || !lua_checkstack(L, 4))
        return fnv_str(h, "(deep)");
    id->budget--;
    switch (t) {
    case LUA_TBOOLEAN: return fnv_str(h, lua_toboolean(L, idx) ? "true" : "false");
    case LUA_TNUMBER: {
        char num[48];
        if (lua_isinteger(L, idx))
            snprintf(num, sizeof num, "i%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(num, sizeof num, "f%.17g", (double)lua_tonumber(L, idx));
        return fnv_str(h, num);
    }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return fnv(h, s, len);
    }
    case LUA_TFUNCTION: return hash_function(L, idx, depth, id);
    case LUA_TTABLE: {
        uint64_t sum = 0;                           /* order-independent */
        lua_pushnil(L);
        while (lua_next(L, idx)) {                  /* [k, v] */
            int top = lua_gettop(L);
            uint64_t k = hash_value(L, top - 1, depth + 1, id);
            uint64_t v = hash_value(L, top, depth + 1, id);
            sum += fnv(k, &v, sizeof v);
            lua_pop(L, 1);
        }
        return fnv(h, &sum, sizeof sum);
    }
    default: return h;                              /* nil, userdata, threads: the type */
    }
}

static void put_function(jw *w, lua_State *L, int idx)
{
    ident id = {IDENT_BUDGET};
    uint64_t h = hash_function(L, idx, 0, &id);
    lua_Debug ar;
    lua_pushvalue(L, idx);
    lua_getinfo(L, ">S", &ar);
    const char *src = ar.short_src;
    const char *slash = strrchr(src, '/');
    char text[LUA_IDSIZE + 64];
    snprintf(text, sizeof text, "function %s:%d #%016llx", slash ? slash + 1 : src,
             ar.linedefined, (unsigned long long)h);
    put_string(w, text, strlen(text));
    w->has_function = true;
}

/* A value of the configuration; never raises (no metamethods are called). */
static void put_value(jw *w, lua_State *L, int idx, int depth)
{
    if (depth > 16) {
        puts_(w, "\"(too deep)\"");
        w->has_function = true;
        return;
    }
    size_t len;
    const char *s;
    void *u;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: puts_(w, "null"); return;
    case LUA_TBOOLEAN: puts_(w, lua_toboolean(L, idx) ? "true" : "false"); return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            char num[32];
            snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
            puts_(w, num);
        } else {
            put_number(w, lua_tonumber(L, idx));
        }
        return;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        put_string(w, s, len);
        return;
    case LUA_TTABLE: put_table(w, L, idx, depth, NULL); return;
    case LUA_TUSERDATA:
        if ((u = luaL_testudata(L, idx, LBL_DATASET)) != NULL) {
            lbl_dataset *d = u;
            put_config(w, d->name, d->ds ? bl_dataset_options(d->ds) : NULL);
            return;
        }
        if ((u = luaL_testudata(L, idx, LBL_MODEL)) != NULL) {
            lbl_model *m = u;
            put_config(w, m->name, m->opts);
            return;
        }
        if ((u = luaL_testudata(L, idx, LBL_OPTIM)) != NULL) {
            put_optim(w, u);
            return;
        }
        if ((u = luaL_testudata(L, idx, LBL_SCHEDULER)) != NULL) {
            lbl_scheduler *sc = u;
            puts_(w, "{\"options\":");
            if (sc->kind == LBL_SCHED_PLUGIN) {
                char *json = NULL;
                if (sc->opts && bl_config_to_json(NULL, sc->opts, &json) == BL_OK) {
                    puts_(w, json);
                    free(json);
                } else {
                    puts_(w, "{}");
                }
            } else {
                lua_getiuservalue(L, idx, 2);            /* [opts] */
                put_value(w, L, lua_gettop(L), depth + 1);
                lua_pop(L, 1);
            }
            puts_(w, ",\"scheduler\":");
            put_string(w, sc->name, strlen(sc->name));
            puts_(w, "}");
            return;
        }
        break;
    case LUA_TFUNCTION: put_function(w, L, idx); return;
    default: break;
    }
    /* threads, other userdata: not comparable */
    w->has_function = true;
    puts_(w, "\"");
    puts_(w, luaL_typename(L, idx));
    puts_(w, "\"");
}

/* Not part of the configuration; "optimizer" is written as bl.train resolved it. Where the
 * state is written (checkpoints, save) does not change the run; `init` does, and is part. */
static const char *const not_configuration[] = {"label", "quiet", "threads", "on_point",
                                                "tensorboard", "db", "experiment", "resume",
                                                "optimizer", "checkpoint_every", "checkpoint",
                                                "save", NULL};

/* The configuration of the bl.train table at `idx` (read into `cfg`) as JSON: a malloc'd
 * string, or NULL when memory ran out. */
static char *config_json(lua_State *L, int idx, const bl_train_config *cfg, const char *label)
{
    jw w = {0};
    put_table(&w, L, idx, 0, not_configuration);
    if (w.b.failed || w.b.len < 2) {
        free(w.b.p);
        return NULL;
    }
    w.b.len--;                                                  /* reopen the object */
    puts_(&w, w.b.len > 1 ? ",\"optimizer\":" : "\"optimizer\":");
    put_optim(&w, &cfg->optim);
    if (w.has_function) {
        /* the label stands in for what cannot be compared */
        puts_(&w, ",\"label\":");
        if (label)
            put_string(&w, label, strlen(label));
        else
            puts_(&w, "null");
    }
    puts_(&w, "}");
    if (w.b.failed) {
        free(w.b.p);
        return NULL;
    }
    return w.b.p;
}

/* ---- the run's output ---------------------------------------------------------------------- */

static void claim(lua_State *L, lbl_job *j, lbl_state *st, bl_store *store, int64_t exp_id,
                  const char *label, bool quiet);
/* What resume_main decides: give back run `id`, or train (give_back 0). */
typedef struct resume_call {
    lbl_job *j;
    lbl_state *st;
    bl_run_output *out;
    const char *label;
    bool quiet;
    int64_t exp_id;
    int64_t id, lost;
    int give_back;
} resume_call;
static int resume_main(lua_State *L);
static void send_note(lua_State *L, lbl_state *st, const char *path, const char *experiment,
                      const char *label, const char *config, uint64_t seed);

bool bl__lua_store_output(lua_State *L, lbl_job *j, const bl_train_config *cfg,
                          const char *label, bool quiet)
{
    int top = lua_gettop(L);
    int dbt = lua_getfield(L, 1, "db");                         /* [db] */
    if (dbt == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {         /* db = false */
        lua_settop(L, top);
        return false;
    }
    if (dbt != LUA_TNIL && dbt != LUA_TSTRING)
        luaL_error(L, "bl.train: 'db' must be a file name (or false), got %s",
                   luaL_typename(L, -1));
    int et = lua_getfield(L, 1, "experiment");                  /* [db, exp] */
    if (et != LUA_TNIL && (et != LUA_TSTRING || lua_rawlen(L, -1) == 0))
        luaL_error(L, "bl.train: 'experiment' must be a non-empty string, got %s",
                   et == LUA_TSTRING ? "\"\"" : luaL_typename(L, -1));
    bool resume = bl_config_bool(j->spec, "resume");            /* checked by the run spec */
    const char *experiment = et == LUA_TSTRING ? lua_tostring(L, top + 2) : NULL;
    const char *path = dbt == LUA_TSTRING ? lua_tostring(L, top + 1) : NULL;
    if (!path)
        path = host_db(L);
    if (!path && !experiment && !resume) {
        lua_settop(L, top);
        return false;
    }
    if (!path)
        path = bl_store_default_path();

    bl_run_output *out = &j->outputs[j->n_outputs];
    if (bl_run_store_output(j->ctx, path, experiment, out) != BL_OK)
        bl__lua_raise(L, j->ctx, "bl.train");
    j->n_outputs++;                                             /* closed with the job */
    if (!(j->config_json = config_json(L, 1, cfg, label)))
        luaL_error(L, "bl.train: out of memory");
    lua_pushstring(L, path);
    lua_setfield(L, j->run, "db");
    if (experiment) {
        lua_pushstring(L, experiment);
        lua_setfield(L, j->run, "experiment");
    }
    lbl_state *st = bl__lua_state(L);
    if (st->isolate_fd >= 0)
        send_note(L, st, path, experiment, label, j->config_json, cfg->seed);
    lua_settop(L, top);
    if (!resume)
        return false;

    resume_call a = {j, st, out, label, quiet, 0, 0, 0, 0};
    /* A data-parallel run on several ranks: its rank 0 claims and decides, the others follow
     * (they must train, or not, together; only rank 0 holds the claim). */
    bl_dist_comm *dp = cfg->data_parallel && bl__dist_size(bl__dist_current()) > 1
                           ? bl__dist_current() : NULL;
    int64_t decision[2] = {0, -1};            /* {run id, 0 train / 1 give back / -1 error} */
    int prc = LUA_OK;
    if (!dp || bl__dist_rank(dp) == 0) {
        lua_pushcfunction(L, resume_main);
        lua_pushlightuserdata(L, &a);
        prc = lua_pcall(L, 1, 0, 0);
        decision[0] = a.id;
        decision[1] = prc == LUA_OK ? a.give_back : -1;
    }
    if (dp) {                /* rank 0's decision; the others receive a new buffer */
        bool root = bl__dist_rank(dp) == 0;
        int64_t *msg = root ? malloc(sizeof decision) : NULL;
        size_t len = sizeof decision;
        if (msg)
            memcpy(msg, decision, sizeof decision);
        int brc = msg || !root ? bl__dist_bcast(j->ctx, dp, 0, (void **)&msg, &len)
                               : bl_error(j->ctx, BL_ENOMEM, "out of memory");
        if (brc == BL_OK && len == sizeof decision)
            memcpy(decision, msg, sizeof decision);
        free(msg);
        if (brc != BL_OK && prc == LUA_OK)
            bl__lua_raise(L, j->ctx, "bl.train");
    }
    if (prc != LUA_OK)
        lua_error(L);
    if (decision[1] < 0)
        luaL_error(L, "bl.train: the data-parallel run's rank 0 could not start it");
    if (decision[1] == 0)
        return false;
    int64_t id = decision[0], lost = a.lost;
    bl_run_result res;
    if (bl_run_store_output_load(j->ctx, out, id, &res) != BL_OK)
        bl__lua_raise(L, j->ctx, "bl.train");
    bl__lua_set_result(L, j->run, cfg, &res);
    bl_run_status status = res.status;
    if (lost > 0 && !quiet)
        fprintf(stderr, "batchlab: %s: skipped: %s %lld time(s), last as run %lld in '%s' (%s); "
                        "retries = %d (raise bl.sweep's `retries`, or resume = false, to train "
                        "it again)\n",
                label ? label : "run", bl_run_status_name(status), (long long)lost,
                (long long)id, path, res.error[0] ? res.error : "no message", st->retries);
    else if (!quiet)
        fprintf(stderr, "batchlab: %s: skipped: already %s as run %lld in '%s'\n",
                label ? label : "run", bl_run_status_name(status), (long long)id, path);
    bl_run_result_free(&res);
    lua_pushboolean(L, 1);
    lua_setfield(L, j->run, "resumed");
    lua_pushinteger(L, (lua_Integer)id);
    lua_setfield(L, j->run, "run_id");
    lua_pushvalue(L, j->run);
    return true;
}

/* Under lua_pcall (argument 1: the resume_call): claims the configuration and looks for its
 * finished run. */
static int resume_main(lua_State *L)
{
    resume_call *a = lua_touserdata(L, 1);
    lbl_job *j = a->j;
    bl_store *store = bl_run_store_output_store(a->out, &a->exp_id);
    claim(L, j, a->st, store, a->exp_id, a->label, a->quiet);
    int rc = bl_run_store_output_find(j->ctx, a->out, j->config_json, &a->id);
    if (rc == BL_ENOTFOUND) {
        bl_clear_error(j->ctx);
        if (bl_store_count_lost(j->ctx, store, a->exp_id, j->config_json, &a->lost, &a->id) !=
            BL_OK)
            bl__lua_raise(L, j->ctx, "bl.train");
        if (a->lost <= a->st->retries)
            return 0;              /* never crashed, or retries left: train it */
        rc = BL_OK;
    }
    if (rc != BL_OK)
        bl__lua_raise(L, j->ctx, "bl.train");
    a->give_back = 1;
    return 0;
}

/* ---- isolated and concurrent sweeps --------------------------------------------------------- */

/* Waits until this process holds the claim of the run's configuration (bl_store_claim): while
 * another live process trains it, checks again every 100 ms; then the caller looks for its
 * finished run. Raises "interrupted" when the interrupt flag is set meanwhile. */
static void claim(lua_State *L, lbl_job *j, lbl_state *st, bl_store *store, int64_t exp_id,
                  const char *label, bool quiet)
{
    bool said = false;
    for (;;) {
        bool busy;
        long holder;
        if (bl_store_claim(j->ctx, store, exp_id, j->config_json, &busy, &holder) != BL_OK)
            bl__lua_raise(L, j->ctx, "bl.train");
        if (!busy)
            return;
        if (!quiet && !said)
            fprintf(stderr, "batchlab: %s: process %ld is training this configuration; "
                            "waiting for its result\n",
                    label ? label : "run", holder);
        said = true;
        if (st->interrupt && *st->interrupt) {
            st->interrupted = true;
            luaL_error(L, "interrupted");
        }
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
}

/* The note an isolated child sends before it trains: what its parent needs to record the run
 * if the child dies — store, experiment, label, configuration, seed, NUL-separated. */
static void send_note(lua_State *L, lbl_state *st, const char *path, const char *experiment,
                      const char *label, const char *config, uint64_t seed)
{
    bl__sbuf b = {0};
    const char *fields[] = {path, experiment ? experiment : "", label ? label : "", config};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        bl__sb_putn(&b, fields[i], strlen(fields[i]) + 1);
    bl__sb_printf(&b, "%llu", (unsigned long long)seed);
    bl__sb_putn(&b, "", 1);
    int rc = b.failed ? bl_error(st->ctx, BL_ENOMEM, "out of memory")
                      : bl_isolate_note(st->ctx, st->isolate_fd, b.p, b.len);
    free(b.p);
    if (rc != BL_OK)
        bl__lua_raise(L, st->ctx, "bl.train");
}

int64_t bl__lua_store_lost(lua_State *L, const bl_isolate_loss *loss, bool quiet)
{
    const char *f[5] = {0};
    const char *p = loss->note, *end = p ? p + loss->note_len : NULL;
    for (size_t i = 0; p && i < 5 && p < end; i++) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        if (!nul)
            break;
        f[i] = p;
        p = nul + 1;
    }
    if (!f[4])
        return 0;                  /* no note: the run was not recorded */
    lbl_state *st = bl__lua_state(L);
    bl_ctx *ctx = st->ctx;
    bl_store *store = NULL;
    int64_t exp = 0, id = 0;
    bl_run_result r;
    bl_run_result_blank(&r);
    r.status = loss->status;
    snprintf(r.stopped_by, sizeof r.stopped_by, "%s", loss->stopped_by);
    snprintf(r.error, sizeof r.error, "%s", loss->what);
    int rc = bl_store_open(ctx, f[0], &store);
    if (rc == BL_OK && f[1][0])
        rc = bl_store_experiment(ctx, store, f[1], &exp);
    if (rc == BL_OK)
        rc = bl_store_run_lost(ctx, store, exp, f[2][0] ? f[2] : NULL, f[3],
                               strtoull(f[4], NULL, 10), loss->pid, &r, &id);
    bl_store_close(store);
    if (rc != BL_OK)
        bl__lua_raise(L, ctx, "bl.sweep: recording a lost run");
    if (!quiet)
        fprintf(stderr, "batchlab: %s: %s: %s (run %lld in '%s')\n", f[2][0] ? f[2] : "run",
                bl_run_status_name(loss->status), loss->what, (long long)id, f[0]);
    return id;
}

/* ---- bl.sweep ------------------------------------------------------------------------------ */

/* True when the value of key `key` of the table at `idx` is a string / is true. */
static bool field_is(lua_State *L, int idx, const char *key, int type)
{
    int t = lua_getfield(L, idx, key);
    bool yes = t == type && (type != LUA_TBOOLEAN || lua_toboolean(L, -1));
    lua_pop(L, 1);
    return yes;
}

void bl__lua_store_sweep(lua_State *L, int sweep, int ci, const char *name)
{
    int top = lua_gettop(L);
    int dbt = lua_getfield(L, sweep, "db");                     /* [db] */
    if (dbt != LUA_TNIL && dbt != LUA_TSTRING && dbt != LUA_TBOOLEAN)
        luaL_error(L, "bl.sweep: 'db' must be a file name (or false), got %s",
                   luaL_typename(L, -1));
    int rt = lua_getfield(L, sweep, "resume");                  /* [db, resume] */
    if (rt != LUA_TNIL && rt != LUA_TBOOLEAN)
        luaL_error(L, "bl.sweep: 'resume' must be a boolean, got %s", luaL_typename(L, -1));
    bool off = dbt == LUA_TBOOLEAN && !lua_toboolean(L, top + 1);
    bool recording = !off && (dbt == LUA_TSTRING || (rt == LUA_TBOOLEAN && lua_toboolean(L, -1)) ||
                              field_is(L, ci, "db", LUA_TSTRING) ||
                              field_is(L, ci, "experiment", LUA_TSTRING) ||
                              field_is(L, ci, "resume", LUA_TBOOLEAN) ||
                              host_db(L) != NULL);
    lua_settop(L, top + 2);
    if (off || dbt == LUA_TSTRING) {                            /* the sweep's db for each run */
        if (lua_getfield(L, ci, "db") == LUA_TNIL) {
            lua_pushvalue(L, top + 1);
            lua_setfield(L, ci, "db");
        }
        lua_pop(L, 1);
    }
    if (recording) {
        if (lua_getfield(L, ci, "experiment") == LUA_TNIL) {
            lua_pushstring(L, name);
            lua_setfield(L, ci, "experiment");
        }
        if (lua_getfield(L, ci, "resume") == LUA_TNIL) {
            lua_pushboolean(L, rt == LUA_TNIL || lua_toboolean(L, top + 2));
            lua_setfield(L, ci, "resume");
        }
    }
    lua_settop(L, top);
}

/* bl.sweep{...}: the runs of a grid, trained one after the other with bl.train semantics.
 *
 * The grid is the cartesian product of `vary` over `base`: keys in sorted order, the first
 * key varying slowest, values in the order given (the order of batchlab.sweep.grid). `lr` in
 * `vary` sets the optimizer's learning rate; every other key is a bl.train key. A run that
 * cannot start or fails is recorded (status "failed", its message in `error`) and the sweep
 * goes on; an interrupt ends the sweep by raising "interrupted". `on_run(run, i, n)` is called
 * after each run — the place where a results store can record it. `tensorboard = "DIR"` gives
 * every run an event file in DIR/<its label> (see l_tensorboard.c). `db = "FILE"` /
 * `resume = true` (or batchlab run --db FILE) record every run in the results store under
 * the experiment `name`, and resume: finished runs of the same configuration are given back
 * instead of trained again (`resume = false` trains them afresh; see l_store.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lua/lbl.h"

static const char *const sweep_keys[] = {"name", "base", "vary", "target", "score",
                                         "higher_is_better", "quiet", "on_run",
                                         "tensorboard", "db", "resume", NULL};

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The number of values of vary[key] (the value at the stack top): a list's length, or 1 for a
 * single non-table value. */
static lua_Integer count_values(lua_State *L, const char *key)
{
    if (!lua_istable(L, -1) || luaL_getmetafield(L, -1, "__name") != LUA_TNIL) {
        if (!lua_istable(L, -1))
            return 1;
        lua_pop(L, 1);                       /* an object (has __name): a single value */
        return 1;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    if (n < 1)
        luaL_error(L, "bl.sweep: vary.%s must be a non-empty list of values (write {v} for "
                      "one value)", key);
    return n;
}

/* Pushes value i (1-based) of vary[key] (at index `vi`). */
static void push_value(lua_State *L, int vi, lua_Integer i)
{
    if (lua_istable(L, vi) && luaL_getmetafield(L, vi, "__name") == LUA_TNIL)
        lua_rawgeti(L, vi, i);
    else {
        if (lua_istable(L, vi))
            lua_pop(L, 1);
        lua_pushvalue(L, vi);
    }
}

/* Sets cfg.optimizer (table at `ci`) to a copy with learning rate `lr` (at the stack top). */
static void set_lr(lua_State *L, int ci)
{
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "bl.sweep: vary.lr values must be numbers, got %s",
                   luaL_typename(L, -1));
    bl_optim_config oc = bl_optim_defaults(BL_OPTIM_SGD);
    int t = lua_getfield(L, ci, "optimizer");
    if (t == LUA_TSTRING) {
        lbl_state *st = bl__lua_state(L);
        bl_optim_kind kind;
        if (bl_optim_parse(st->ctx, lua_tostring(L, -1), &kind) != BL_OK)
            bl__lua_raise(L, st->ctx, "bl.sweep");
        oc = bl_optim_defaults(kind);
    } else if (t != LUA_TNIL) {
        oc = *bl__lua_check_optim(L, -1);
    }
    lua_pop(L, 1);
    oc.lr = lua_tonumber(L, -1);
    bl__lua_push_optim(L, &oc);
    lua_setfield(L, ci, "optimizer");
}

/* The default score of a completed run at `ri`: time_to_target when `by_target`, else the final
 * validation loss; NAN when there is none. */
static double default_score(lua_State *L, int ri, bool by_target)
{
    double v = NAN;
    if (by_target) {
        if (lua_getfield(L, ri, "time_to_target") == LUA_TNUMBER)
            v = lua_tonumber(L, -1);
        lua_pop(L, 1);
        return v;
    }
    if (lua_getfield(L, ri, "final") == LUA_TTABLE) {
        if (lua_getfield(L, -1, "val_loss") == LUA_TNUMBER)
            v = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return v;
}

static bool completed(lua_State *L, int ri)
{
    lua_getfield(L, ri, "status");
    bool ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "completed") == 0;
    lua_pop(L, 1);
    return ok;
}

/* bl.sweep{name =, base =, vary =, target =, score =, higher_is_better =, quiet =, on_run =}
 * → {name =, runs = {...}, best = run | nil, failed = n, total = n} */
int bl__lua_sweep(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 40, "bl.sweep");
    bl__lua_check_keys(L, 1, sweep_keys, "bl.sweep");
    const char *name = "sweep";
    if (lua_getfield(L, 1, "name") != LUA_TNIL) {                        /* 2: name */
        if (lua_type(L, 2) != LUA_TSTRING)
            return luaL_error(L, "bl.sweep: 'name' must be a string");
        name = lua_tostring(L, 2);
    }
    if (lua_getfield(L, 1, "base") != LUA_TTABLE)                        /* 3: base */
        return luaL_error(L, "bl.sweep: 'base' must be a table of bl.train keys, got %s",
                          luaL_typename(L, 3));
    int vt = lua_getfield(L, 1, "vary");                                 /* 4: vary */
    if (vt == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
    } else if (vt != LUA_TTABLE) {
        return luaL_error(L, "bl.sweep: 'vary' must be a table key → list of values, got %s",
                          luaL_typename(L, 4));
    }
    lua_getfield(L, 1, "target");                                        /* 5: target */
    int st_score = lua_getfield(L, 1, "score");                          /* 6: score */
    if (st_score != LUA_TNIL && st_score != LUA_TFUNCTION)
        return luaL_error(L, "bl.sweep: 'score' must be a function(run), got %s",
                          luaL_typename(L, 6));
    lua_getfield(L, 1, "higher_is_better");                              /* 7 */
    bool higher = lua_toboolean(L, 7);
    int qt = lua_getfield(L, 1, "quiet");                                /* 8: quiet */
    if (qt != LUA_TNIL && qt != LUA_TBOOLEAN)
        return luaL_error(L, "bl.sweep: 'quiet' must be a boolean, got %s", luaL_typename(L, 8));
    int ot = lua_getfield(L, 1, "on_run");                               /* 9: on_run */
    if (ot != LUA_TNIL && ot != LUA_TFUNCTION)
        return luaL_error(L, "bl.sweep: 'on_run' must be a function(run, i, n), got %s",
                          luaL_typename(L, 9));

    /* the keys of vary, sorted; the strings stay anchored in the vary table */
    size_t nk = 0;
    lua_pushnil(L);
    while (lua_next(L, 4)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "bl.sweep: vary keys must be names, got a %s key",
                              luaL_typename(L, -1));
        nk++;
    }
    const char **keys = lua_newuserdatauv(L, (nk ? nk : 1) * sizeof *keys, 0);   /* 10 */
    lua_Integer *len = lua_newuserdatauv(L, (nk ? nk : 1) * sizeof *len, 0);     /* 11 */
    lua_Integer *at = lua_newuserdatauv(L, (nk ? nk : 1) * sizeof *at, 0);       /* 12 */
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, 4)) {
        lua_pop(L, 1);
        keys[k++] = lua_tostring(L, -1);
    }
    qsort(keys, nk, sizeof *keys, cmp_names);
    lua_Integer total = 1;
    for (k = 0; k < nk; k++) {
        lua_getfield(L, 4, keys[k]);
        len[k] = count_values(L, keys[k]);
        lua_pop(L, 1);
        at[k] = 1;
        if (total > ((lua_Integer)1 << 40) / len[k])
            return luaL_error(L, "bl.sweep: the grid is too large");
        total *= len[k];
    }

    lua_createtable(L, 0, 6);                                            /* 13: result */
    lua_pushstring(L, name);
    lua_setfield(L, 13, "name");
    lua_createtable(L, total < (1 << 16) ? (int)total : 0, 0);           /* 14: runs */
    lua_Integer failed = 0, resumed = 0;
    lbl_state *st = bl__lua_state(L);

    for (lua_Integer r = 1; r <= total; r++) {
        int top = lua_gettop(L);
        /* cfg = copy of base, with this run's values */
        lua_newtable(L);                                                 /* cfg */
        int ci = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, ci);
        }
        lua_newtable(L);                                                 /* params */
        int pi = lua_gettop(L);
        for (k = 0; k < nk; k++) {
            lua_getfield(L, 4, keys[k]);                                 /* [list] */
            push_value(L, lua_gettop(L), at[k]);                         /* [list, v] */
            lua_remove(L, -2);                                           /* [v] */
            lua_pushvalue(L, -1);
            lua_setfield(L, pi, keys[k]);
            if (strcmp(keys[k], "lr") == 0) {
                set_lr(L, ci);
                lua_pop(L, 1);
            } else {
                lua_setfield(L, ci, keys[k]);
            }
        }
        /* label "name batch=32 seed=1" */
        lua_pushstring(L, name);                                         /* label */
        int li = lua_gettop(L);
        for (k = 0; k < nk; k++) {
            lua_getfield(L, pi, keys[k]);                                /* [label, v] */
            luaL_tolstring(L, -1, NULL);                                 /* [label, v, s] */
            lua_pushfstring(L, " %s=%s", keys[k], lua_tostring(L, -1));
            lua_replace(L, -3);                                          /* [label, piece, s] */
            lua_pop(L, 1);
            lua_concat(L, 2);                                            /* [label] */
        }
        if (lua_getfield(L, ci, "label") == LUA_TNIL) {
            lua_pushvalue(L, li);
            lua_setfield(L, ci, "label");
        }
        lua_settop(L, li);
        if (!lua_isnil(L, 5)) {
            if (lua_getfield(L, ci, "target") == LUA_TNIL) {
                lua_pushvalue(L, 5);
                lua_setfield(L, ci, "target");
            }
            lua_settop(L, li);
        }
        if (!lua_isnil(L, 8)) {
            lua_pushvalue(L, 8);
            lua_setfield(L, ci, "quiet");
        }
        /* tensorboard = "DIR": each run writes DIR/<its label> (a run's own key wins) */
        if (lua_getfield(L, 1, "tensorboard") != LUA_TNIL &&
            lua_getfield(L, ci, "tensorboard") == LUA_TNIL) {
            lua_pop(L, 1);
            lua_setfield(L, ci, "tensorboard");
        }
        lua_settop(L, li);
        bl__lua_store_sweep(L, 1, ci, name);   /* db, experiment, resume (l_store.c) */

        /* the run */
        lua_pushcfunction(L, bl__lua_train);
        lua_pushvalue(L, ci);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {                           /* [.., run|msg] */
            if (st->interrupted || (st->interrupt && *st->interrupt))
                return lua_error(L);
            const char *msg = bl__lua_errstring(L, -1);
            lua_createtable(L, 0, 8);
            lua_pushliteral(L, "failed");
            lua_setfield(L, -2, "status");
            lua_pushliteral(L, "error");
            lua_setfield(L, -2, "stopped_by");
            lua_pushstring(L, msg);
            lua_setfield(L, -2, "error");
            lua_remove(L, -2);
            /* echo the parameters, as a run that started would */
            for (k = 0; k < nk; k++) {
                if (strcmp(keys[k], "lr") == 0)
                    continue;
                lua_getfield(L, pi, keys[k]);
                lua_setfield(L, -2, keys[k]);
            }
            lua_pushvalue(L, li);
            lua_setfield(L, -2, "label");
        }
        int ri = lua_gettop(L);
        lua_getfield(L, ri, "status");
        if (strcmp(lua_tostring(L, -1), "failed") == 0)
            failed++;
        lua_pop(L, 1);
        if (lua_getfield(L, ri, "resumed") == LUA_TBOOLEAN)
            resumed++;
        lua_pop(L, 1);
        lua_pushvalue(L, pi);
        lua_setfield(L, ri, "params");
        lua_pushinteger(L, r);
        lua_setfield(L, ri, "index");
        lua_pushvalue(L, ri);
        lua_rawseti(L, 14, r);
        if (!lua_isnil(L, 9)) {
            lua_pushvalue(L, 9);
            lua_pushvalue(L, ri);
            lua_pushinteger(L, r);
            lua_pushinteger(L, total);
            lua_call(L, 3, 0);
        }
        lua_settop(L, top);
        /* the odometer: the last key fastest */
        for (size_t kk = nk; kk-- > 0;) {
            if (++at[kk] <= len[kk])
                break;
            at[kk] = 1;
        }
    }

    /* scores and the best run */
    bool by_target = false;
    if (lua_isnil(L, 6)) {
        for (lua_Integer r = 1; r <= total && !by_target; r++) {
            lua_rawgeti(L, 14, r);
            if (completed(L, -1) && lua_getfield(L, -1, "time_to_target") == LUA_TNUMBER)
                by_target = true;
            lua_settop(L, 14);
        }
    }
    lua_Integer best = 0;
    double best_score = NAN;
    for (lua_Integer r = 1; r <= total; r++) {
        lua_rawgeti(L, 14, r);                                           /* 15: run */
        if (!completed(L, 15)) {
            lua_settop(L, 14);
            continue;
        }
        double s = NAN;
        if (lua_isnil(L, 6)) {
            s = default_score(L, 15, by_target);
        } else {
            lua_pushcfunction(L, bl__lua_traceback);
            lua_pushvalue(L, 6);
            lua_pushvalue(L, 15);
            if (lua_pcall(L, 1, 1, 16) != LUA_OK)
                return luaL_error(L, "bl.sweep: score function: %s", lua_tostring(L, -1));
            if (lua_type(L, -1) == LUA_TNUMBER)
                s = lua_tonumber(L, -1);
            else if (!lua_isnil(L, -1) && !(lua_isboolean(L, -1) && !lua_toboolean(L, -1)))
                return luaL_error(L, "bl.sweep: the score function returned a %s; expected a "
                                     "number (or nil for a run that does not count)",
                                  luaL_typename(L, -1));
        }
        if (isfinite(s)) {
            lua_pushnumber(L, s);
            lua_setfield(L, 15, "score");
            if (best == 0 || (higher ? s > best_score : s < best_score)) {
                best = r;
                best_score = s;
            }
        }
        lua_settop(L, 14);
    }
    lua_pushvalue(L, 14);
    lua_setfield(L, 13, "runs");
    if (best > 0) {
        lua_rawgeti(L, 14, best);
        lua_setfield(L, 13, "best");
    }
    lua_pushinteger(L, failed);
    lua_setfield(L, 13, "failed");
    lua_pushinteger(L, resumed);
    lua_setfield(L, 13, "resumed");
    lua_pushinteger(L, total);
    lua_setfield(L, 13, "total");
    lua_pushvalue(L, 13);
    return 1;
}

/* bl.optim.sgd{...}, adam, adamw, lars, lamb and the batchlab.Optim object: an optimizer
 * configuration (bl_optim_config), checked by bl_optim_validate. Fields read as o.lr,
 * o.momentum, ...; o.kind is the name; o:with{lr = 0.1} is a copy with some fields changed. */
#include <stdio.h>
#include <string.h>

#include "lua/lbl.h"

/* The keys each kind accepts, in the order __tostring shows them. */
static const char *const sgd_keys[] = {"lr", "momentum", "dampening", "nesterov",
                                       "weight_decay", "clip_norm", NULL};
static const char *const adam_keys[] = {"lr", "beta1", "beta2", "eps", "weight_decay",
                                        "clip_norm", NULL};
static const char *const lars_keys[] = {"lr", "momentum", "nesterov", "weight_decay",
                                        "trust_coefficient", "clip_norm", NULL};

static const char *const *keys_of(bl_optim_kind kind)
{
    switch (kind) {
    case BL_OPTIM_SGD: return sgd_keys;
    case BL_OPTIM_LARS: return lars_keys;
    default: return adam_keys;
    }
}

/* The double field called `key`, or NULL (nesterov and unknown keys). */
static double *field(bl_optim_config *c, const char *key)
{
    if (strcmp(key, "lr") == 0) return &c->lr;
    if (strcmp(key, "momentum") == 0) return &c->momentum;
    if (strcmp(key, "dampening") == 0) return &c->dampening;
    if (strcmp(key, "weight_decay") == 0) return &c->weight_decay;
    if (strcmp(key, "beta1") == 0) return &c->beta1;
    if (strcmp(key, "beta2") == 0) return &c->beta2;
    if (strcmp(key, "eps") == 0) return &c->eps;
    if (strcmp(key, "trust_coefficient") == 0) return &c->trust_coefficient;
    if (strcmp(key, "clip_norm") == 0) return &c->clip_norm;
    return NULL;
}

bl_optim_config *bl__lua_check_optim(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, LBL_OPTIM);
}

void bl__lua_push_optim(lua_State *L, const bl_optim_config *cfg)
{
    bl_optim_config *o = lua_newuserdatauv(L, sizeof *o, 0);
    *o = *cfg;
    luaL_setmetatable(L, LBL_OPTIM);
}

/* Applies the option table at `idx` to *c, checks the result and pushes a new object. */
static int apply(lua_State *L, int idx, bl_optim_config c, const char *who)
{
    const char *const *keys = keys_of(c.kind);
    if (!lua_isnoneornil(L, idx)) {
        luaL_checktype(L, idx, LUA_TTABLE);
        bl__lua_check_keys(L, idx, keys, who);
        for (size_t i = 0; keys[i]; i++) {
            int t = lua_getfield(L, idx, keys[i]);
            if (t != LUA_TNIL) {
                if (strcmp(keys[i], "nesterov") == 0) {
                    if (t != LUA_TBOOLEAN)
                        return luaL_error(L, "%s: 'nesterov' must be a boolean, got %s", who,
                                          luaL_typename(L, -1));
                    c.nesterov = lua_toboolean(L, -1);
                } else {
                    if (t != LUA_TNUMBER)
                        return luaL_error(L, "%s: '%s' must be a number, got %s", who, keys[i],
                                          luaL_typename(L, -1));
                    *field(&c, keys[i]) = lua_tonumber(L, -1);
                }
            }
            lua_pop(L, 1);
        }
    }
    lbl_state *st = bl__lua_state(L);
    if (bl_optim_validate(st->ctx, &c) != BL_OK)
        return bl__lua_raise(L, st->ctx, NULL);
    bl__lua_push_optim(L, &c);
    return 1;
}

/* bl.optim.<kind>{...} → Optim (upvalue 1: the kind) */
static int l_new(lua_State *L)
{
    bl_optim_kind kind = (bl_optim_kind)lua_tointeger(L, lua_upvalueindex(1));
    char who[32];
    snprintf(who, sizeof who, "bl.optim.%s", bl_optim_name(kind));
    return apply(L, 1, bl_optim_defaults(kind), who);
}

/* o:with{lr = 0.1} → a new Optim */
static int o_with(lua_State *L)
{
    bl_optim_config *o = bl__lua_check_optim(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    char who[40];
    snprintf(who, sizeof who, "%s:with", bl_optim_name(o->kind));
    return apply(L, 2, *o, who);
}

static int o_index(lua_State *L)
{
    bl_optim_config *o = bl__lua_check_optim(L, 1);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "with") == 0) {
        lua_pushcfunction(L, o_with);
        return 1;
    }
    if (strcmp(key, "kind") == 0) {
        lua_pushstring(L, bl_optim_name(o->kind));
        return 1;
    }
    if (strcmp(key, "nesterov") == 0) {
        lua_pushboolean(L, o->nesterov);
        return 1;
    }
    double *f = field(o, key);
    if (f)
        lua_pushnumber(L, *f);
    else
        lua_pushnil(L);
    return 1;
}

static int o_tostring(lua_State *L)
{
    bl_optim_config *o = bl__lua_check_optim(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "batchlab.Optim(");
    luaL_addstring(&b, bl_optim_name(o->kind));
    for (const char *const *k = keys_of(o->kind); *k; k++) {
        luaL_addstring(&b, ", ");
        luaL_addstring(&b, *k);
        luaL_addchar(&b, '=');
        if (strcmp(*k, "nesterov") == 0) {
            luaL_addstring(&b, o->nesterov ? "true" : "false");
        } else {
            lua_pushfstring(L, "%f", *field(o, *k));
            /* %f of lua_pushfstring is LUAI_NUMFFORMAT ("%.14g") */
            luaL_addvalue(&b);
        }
    }
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    return 1;
}

static const luaL_Reg optim_meta[] = {
    {"__index", o_index},
    {"__tostring", o_tostring},
    {NULL, NULL}};

void bl__lua_open_optim(lua_State *L)
{
    bl__lua_newclass(L, LBL_OPTIM, optim_meta, NULL);
    static const bl_optim_kind kinds[] = {BL_OPTIM_SGD, BL_OPTIM_ADAM, BL_OPTIM_ADAMW,
                                          BL_OPTIM_LARS, BL_OPTIM_LAMB};
    lua_createtable(L, 0, 5);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        lua_pushinteger(L, kinds[i]);
        lua_pushcclosure(L, l_new, 1);
        lua_setfield(L, -2, bl_optim_name(kinds[i]));
    }
}

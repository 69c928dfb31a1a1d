/* Plain Lua values as bytes, for isolated sweeps (l_sweep.c): the run table a child process
 * trained is sent to the parent this way and rebuilt there.
 *
 * Written: nil, booleans, integers and floats (told apart), strings (any bytes) and tables
 * (key/value pairs, nested to ISO_DEPTH; a table met twice is written twice). Functions,
 * userdata and threads are left out, with the pair holding them: a run table's values are
 * plain data. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "lua/lbl.h"

#define ISO_DEPTH 32

enum { T_NIL = 'n', T_FALSE = 'f', T_TRUE = 't', T_INT = 'i', T_FLOAT = 'd', T_STRING = 's',
       T_TABLE = 'T', T_END = 'e' };

static bool plain(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    return t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING ||
           t == LUA_TTABLE;
}

static void put(bl__sbuf *b, const void *p, size_t n)
{
    bl__sb_putn(b, (const char *)p, n);
}

static void pack_value(lua_State *L, int idx, bl__sbuf *b, int depth)
{
    char tag;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        tag = lua_toboolean(L, idx) ? T_TRUE : T_FALSE;
        put(b, &tag, 1);
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            int64_t v = (int64_t)lua_tointeger(L, idx);
            tag = T_INT;
            put(b, &tag, 1);
            put(b, &v, sizeof v);
        } else {
            double v = (double)lua_tonumber(L, idx);
            tag = T_FLOAT;
            put(b, &tag, 1);
            put(b, &v, sizeof v);
        }
        return;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        uint64_t len = n;
        tag = T_STRING;
        put(b, &tag, 1);
        put(b, &len, sizeof len);
        put(b, s, n);
        return;
    }
    case LUA_TTABLE:
        if (depth < ISO_DEPTH && lua_checkstack(L, 3)) {
            tag = T_TABLE;
            put(b, &tag, 1);
            for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
                int top = lua_gettop(L);
                if (!plain(L, top - 1) || !plain(L, top))
                    continue;
                pack_value(L, top - 1, b, depth + 1);
                pack_value(L, top, b, depth + 1);
            }
            tag = T_END;
            put(b, &tag, 1);
            return;
        }
        break;
    default: break;
    }
    tag = T_NIL;
    put(b, &tag, 1);
}

int bl__lua_pack(lua_State *L, int idx, char **data, size_t *len)
{
    bl__sbuf b = {0};
    pack_value(L, lua_absindex(L, idx), &b, 0);
    if (b.failed) {
        free(b.p);
        return BL_ENOMEM;
    }
    *data = b.p;
    *len = b.len;
    return BL_OK;
}

typedef struct reader {
    const char *p, *end;
} reader;

static bool take(reader *r, void *out, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return false;
    memcpy(out, r->p, n);
    r->p += n;
    return true;
}

/* Pushes the next value; false (nothing pushed) when the bytes are malformed. */
static bool unpack_value(lua_State *L, reader *r, int depth)
{
    char tag;
    if (depth > ISO_DEPTH + 1 || !lua_checkstack(L, 4) || !take(r, &tag, 1))
        return false;
    switch (tag) {
    case T_NIL: lua_pushnil(L); return true;
    case T_FALSE: lua_pushboolean(L, 0); return true;
    case T_TRUE: lua_pushboolean(L, 1); return true;
    case T_INT: {
        int64_t v;
        if (!take(r, &v, sizeof v))
            return false;
        lua_pushinteger(L, (lua_Integer)v);
        return true;
    }
    case T_FLOAT: {
        double v;
        if (!take(r, &v, sizeof v))
            return false;
        lua_pushnumber(L, (lua_Number)v);
        return true;
    }
    case T_STRING: {
        uint64_t n;
        if (!take(r, &n, sizeof n) || n > (uint64_t)(r->end - r->p))
            return false;
        lua_pushlstring(L, r->p, (size_t)n);
        r->p += n;
        return true;
    }
    case T_TABLE:
        lua_newtable(L);
        for (;;) {
            if (r->p < r->end && *r->p == T_END) {
                r->p++;
                return true;
            }
            if (!unpack_value(L, r, depth + 1)) {
                lua_pop(L, 1);
                return false;
            }
            if (!unpack_value(L, r, depth + 1)) {
                lua_pop(L, 2);
                return false;
            }
            if (lua_isnil(L, -2))
                lua_pop(L, 2);      /* a nil key cannot be set (never written) */
            else
                lua_rawset(L, -3);
        }
    default: return false;
    }
}

bool bl__lua_unpack(lua_State *L, const void *data, size_t len)
{
    reader r = {data, (const char *)data + len};
    return unpack_value(L, &r, 0) && r.p == r.end;
}

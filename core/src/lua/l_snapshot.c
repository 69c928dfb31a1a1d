/* bl.read_snapshot(FILE): what a checkpoint or `save` file holds (batchlab/snapshot.h), for
 * Lua: the counters of the run it was taken from and its weights.
 *
 *   bl.read_snapshot(file) → {step =, samples =, epoch =, epoch_progress =, wall =, batch =,
 *                             lr =, n_params =, history_count =, optimizer =, tag =,
 *                             weights = <string of n_params little-endian float32>}
 *                          | nil, message          (missing, damaged or foreign file)
 * A bad argument raises. */
#include <stdlib.h>
#include <string.h>

#include "batchlab/snapshot.h"
#include "lua/lbl.h"

static int l_read_snapshot(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    bl_ctx *ctx = bl__lua_state(L)->ctx;
    bl_snapshot *snap = NULL;
    bl_snapshot_info info;
    int rc = bl_snapshot_read(ctx, path, &snap);
    if (rc == BL_OK)
        rc = bl_snapshot_get_info(ctx, snap, &info);
    float *w = NULL;
    if (rc == BL_OK) {
        w = malloc(info.n_params > 0 ? (size_t)info.n_params * sizeof *w : 1);
        rc = w ? bl_snapshot_params(ctx, snap, w, (size_t)info.n_params)
               : bl_error(ctx, BL_ENOMEM, "'%s': out of memory", path);
    }
    if (rc != BL_OK) {
        free(w);
        bl_snapshot_free(snap);
        luaL_pushfail(L);
        lua_pushstring(L, bl_errmsg(ctx));
        return 2;
    }
    lua_createtable(L, 0, 12);
    const struct {
        const char *k;
        lua_Integer v;
    } ints[] = {{"step", info.step},       {"samples", info.samples},
                {"epoch", info.epoch},     {"batch", info.batch},
                {"n_params", info.n_params}, {"history_count", info.history_count}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        lua_pushinteger(L, ints[i].v);
        lua_setfield(L, -2, ints[i].k);
    }
    lua_pushnumber(L, info.epoch_progress);
    lua_setfield(L, -2, "epoch_progress");
    lua_pushnumber(L, info.wall);
    lua_setfield(L, -2, "wall");
    lua_pushnumber(L, info.lr);
    lua_setfield(L, -2, "lr");
    lua_pushstring(L, info.optimizer);
    lua_setfield(L, -2, "optimizer");
    lua_pushstring(L, bl_snapshot_tag(snap));
    lua_setfield(L, -2, "tag");
    /* little-endian bytes on every host, as in the file */
    size_t n = (size_t)info.n_params;
    unsigned char *b = (unsigned char *)w;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &w[i], 4);
        for (int k = 0; k < 4; k++)
            b[4 * i + (size_t)k] = (unsigned char)(u >> (8 * k));
    }
    lua_pushlstring(L, (const char *)b, n * 4);
    lua_setfield(L, -2, "weights");
    free(w);
    bl_snapshot_free(snap);
    return 1;
}

static const luaL_Reg snapshot_funcs[] = {{"read_snapshot", l_read_snapshot}, {NULL, NULL}};

void bl__lua_open_snapshot(lua_State *L)
{
    luaL_setfuncs(L, snapshot_funcs, 0);
}

/* Embedding the `batchlab` Lua module in another program: this file includes only the public
 * <batchlab/lua.h> and Lua's own headers, opens the module in its own lua_State as a host
 * program would, and lists the plugins through bl.plugins(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <batchlab/lua.h>

/* Runs `chunk` in L; fails the test with Lua's message when it raises. */
static void run(lua_State *L, const char *chunk, int results)
{
    if (luaL_loadstring(L, chunk) != LUA_OK || lua_pcall(L, 0, results, 0) != LUA_OK)
        fail_msg("Lua: %s", lua_tostring(L, -1));
}

static void test_embed_and_list_plugins(void **state)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    luaL_requiref(L, "batchlab", luaopen_batchlab, 0);
    assert_int_equal(lua_type(L, -1), LUA_TTABLE);
    lua_pop(L, 1);
    bl_lua_set_quiet(L, true);
    bl_lua_set_threads(L, 1);

    /* The build tree's plugins (BATCHLAB_PLUGIN_PATH is empty): every entry has a kind, a
     * name and the file it came from; the built-in scheduler 'constant' and dataset
     * 'synthetic' are there, with their declared options. */
    run(L,
        "local bl = require 'batchlab'\n"
        "local list = bl.plugins()\n"
        "assert(type(list) == 'table', 'bl.plugins() returned ' .. type(list))\n"
        "local found = {}\n"
        "for _, p in ipairs(list) do\n"
        "  assert(p.kind == 'model' or p.kind == 'dataset' or p.kind == 'scheduler', p.kind)\n"
        "  assert(p.name:match('^[a-z0-9_]+$'), p.name)\n"
        "  assert(p.file:match('%.so$'), p.file)\n"
        "  assert(type(p.options) == 'table')\n"
        "  found[p.kind .. ':' .. p.name] = p\n"
        "end\n"
        "local c, s = found['scheduler:constant'], found['dataset:synthetic']\n"
        "return #list, c and c.file or '', s ~= nil",
        3);
    lua_Integer n = lua_tointeger(L, -3);
    const char *file = lua_tostring(L, -2);
    bool synthetic = lua_toboolean(L, -1);
    if (n < 3)
        fail_msg("bl.plugins() listed %lld plugins", (long long)n);
    if (!strstr(file, "bl_constant.so"))
        fail_msg("scheduler 'constant' not listed from bl_constant.so (file '%s')", file);
    assert_true(synthetic);
    lua_pop(L, 3);
    assert_false(bl_lua_interrupted(L));
    lua_close(L); /* frees the module's state (registry, context) */
}

int main(void)
{
    setenv("BATCHLAB_PLUGIN_PATH", "", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed_and_list_plugins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

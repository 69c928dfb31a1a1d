/* batchlab.so — the `batchlab` Lua module for a stock lua5.4 interpreter:
 *
 *     package.cpath = "<build>/lua/?.so;" .. package.cpath
 *     local bl = require "batchlab"
 *
 * The bindings and luaopen_batchlab live in libbatchlab, which this module links; `require`
 * finds the entry point there (dlsym on a loaded module searches its dependencies too). The
 * reference below keeps libbatchlab a needed library of this module whatever the linker's
 * --as-needed default. */
#include "lua/lbl.h"

BL_EXPORT lua_CFunction const bl_lua_module_entry = luaopen_batchlab;

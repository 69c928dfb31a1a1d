/* batchlab — the `batchlab` Lua module, for a program that embeds Lua 5.4.
 *
 *     #include <lauxlib.h>
 *     #include <lualib.h>
 *     #include <batchlab/lua.h>
 *
 *     lua_State *L = luaL_newstate();
 *     luaL_openlibs(L);
 *     luaL_requiref(L, "batchlab", luaopen_batchlab, 0);   -- or package.preload
 *     lua_pop(L, 1);
 *     bl_lua_set_quiet(L, true);
 *     luaL_dostring(L, "local bl = require 'batchlab' ...");
 *
 * Link libbatchlab and Lua 5.4. Each lua_State gets its own module state (plugin registry,
 * error context and what the bl_lua_set_* calls set), freed when the state is closed.
 * docs/lua-api.md describes the module's functions. A stock lua5.4 interpreter loads the
 * module with `require "batchlab"` from the batchlab.so Lua C module instead.
 */
#ifndef BATCHLAB_LUA_H
#define BATCHLAB_LUA_H

#include <signal.h>
#include <stdbool.h>

#include <lua.h>

#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens the module: `require "batchlab"` (package.preload, luaL_requiref, or the batchlab.so
 * Lua C module). Returns the module table. */
BL_EXPORT int luaopen_batchlab(lua_State *L);

/* Gives the module an interrupt flag (e.g. set by a SIGINT handler; NULL = none). Every run
 * started by bl.train watches it: once it is non-zero the run ends after the current step,
 * bl.train raises "interrupted", and bl.train refuses to start further runs. The flag must
 * outlive the lua_State. */
BL_EXPORT void bl_lua_set_interrupt(lua_State *L, volatile sig_atomic_t *flag);

/* For isolated sweeps (bl.sweep{isolate = true}): a flag the module sets to 1 while it waits
 * on a child process that trains a run, and back to 0 after (NULL = none). A host whose signal
 * handler exits on a second signal should not exit while the flag is set, but set the
 * interrupt flag to 2: the sweep then kills the child, records the run as interrupted and
 * raises "interrupted" (see core/cli/signals.c). The flag must outlive the lua_State. */
BL_EXPORT void bl_lua_set_supervising(lua_State *L, volatile sig_atomic_t *flag);

/* Defaults for every run: `quiet` suppresses progress lines and warnings; `threads` is the CPU
 * thread count (0 = leave OpenBLAS's default). A run's own `quiet` / `threads` keys win. */
BL_EXPORT void bl_lua_set_quiet(lua_State *L, bool quiet);
BL_EXPORT void bl_lua_set_threads(lua_State *L, int threads);

/* A default log directory for runs without their own `tensorboard` key (`batchlab run
 * --tensorboard DIR`); NULL clears it. The string is copied. */
BL_EXPORT void bl_lua_set_tensorboard(lua_State *L, const char *dir);

/* The results store every run records in (batchlab run --db FILE), as if each bl.train had
 * `db = path`; NULL = none (runs record only when they ask). Until the host calls this (a
 * stock lua5.4), $BATCHLAB_DB is that store when it is set, as in `batchlab run`. */
BL_EXPORT void bl_lua_set_db(lua_State *L, const char *path);

/* The folder of the Lua library that belongs to this libbatchlab (the one holding
 * batchlab/schedules.lua): <prefix>/share/batchlab/lua beside an installed library, wherever
 * the install tree was moved, or the source tree's scripts/ for a library in the build tree.
 * `require "batchlab"` adds it to package.path (unless already there); a host that wants
 * `require "batchlab.schedules"` to work before that adds it itself. A static string, never
 * NULL. */
BL_EXPORT const char *bl_lua_script_dir(void);

/* Runs of this state that failed or diverged. Each is announced on stderr as it ends
 * ("batchlab: run 'LABEL' failed: REASON"; also with quiet). Returns how many runs failed;
 * *diverged (may be NULL) receives how many diverged and *ended (may be NULL) how many runs
 * ended in all. When index is below the number kept (the first 1000 failed or diverged runs),
 * *line receives "LABEL: failed: REASON" (valid until the state is closed), else NULL. */
BL_EXPORT size_t bl_lua_run_failures(lua_State *L, size_t index, const char **line,
                                     size_t *diverged, size_t *ended);

/* True when the last run ended because of the interrupt flag. */
BL_EXPORT bool bl_lua_interrupted(lua_State *L);

#ifdef __cplusplus
}
#endif
#endif

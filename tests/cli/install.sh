#!/usr/bin/env bash
# A relocatable install (issue 14, found 4): after `cmake --install --prefix P1` and moving
# the tree to P2, P2/bin/batchlab finds P2's plugins and P2's Lua library — relative to the
# installed libbatchlab — and never the build tree's, and trains the quick start.
. "$(dirname "$0")/lib/common.sh"
command -v cmake >/dev/null || skip "cmake is not on PATH"
rm -rf "$SCRATCH/P1" "$SCRATCH/P2"
run cmake --install "$BATCHLAB_BUILD_DIR" --prefix "$SCRATCH/P1"
expect_status 0
mv "$SCRATCH/P1" "$SCRATCH/P2"
P2=$(cd "$SCRATCH/P2" && pwd -P)
BIN="$P2/bin/batchlab"
[ -x "$BIN" ] || fail "no installed batchlab at $BIN"
PLUGDIR=$(cd "$P2"/lib*/batchlab/plugins && pwd -P)
unset BATCHLAB_PLUGIN_PATH BATCHLAB_PATH

run "$BIN" plugins
expect_status 0
expect_out "$PLUGDIR/bl_synthetic.so"
expect_out "$PLUGDIR/bl_mlp.so"
expect_no_out "$BATCHLAB_BUILD_DIR/plugins"
expect_no_out "$SCRATCH/P1"

# a plugin that is not there: the search path named is the install's alone
run "$BIN" run -e 'local bl = require "batchlab"; bl.model("no_such_model")'
[ "$STATUS" -ne 0 ] || fail "an unknown model was accepted"
expect_err "$PLUGDIR"
case "$ERR" in *"$BATCHLAB_BUILD_DIR/plugins"*) fail "the build tree is searched" ;; esac

# the quick start: the Lua library from P2, a run on the synthetic dataset
run "$BIN" run --no-db -e '
local bl = require "batchlab"
local s = require "batchlab.schedules"
print("schedules " .. package.searchpath("batchlab.schedules", package.path))
local r = bl.train { dataset = bl.dataset("synthetic", { samples = 200, dim = 4, classes = 2 }),
                     model = bl.model("logreg"), batch = s.constant(16), max_steps = 5,
                     quiet = true }
print("status " .. r.status .. " steps " .. r.steps)'
expect_status 0
expect_out "schedules $P2/share/batchlab/lua/batchlab/schedules.lua"
expect_out "status completed steps 5"
case "$OUT$ERR" in *"$BATCHLAB_SOURCE_DIR/scripts"*) fail "the source tree's scripts are used" ;; esac
run "$BIN" run --no-db -e 'print(package.path)'
case "$OUT" in *"$BATCHLAB_SOURCE_DIR/scripts"*) fail "package.path has the source tree" ;; esac

# a stock lua5.4 with the installed module finds the moved install's library too
LUA54=$(command -v lua5.4 || true)
if [ -n "$LUA54" ] && ! ldd "$BIN" 2>/dev/null | grep -q libasan; then
    run env -u LUA_PATH -u LUA_PATH_5_4 "$LUA54" -e "
package.cpath = '$(echo "$P2"/lib*/lua/5.4)/?.so;' .. package.cpath
local bl = require 'batchlab'
require 'batchlab.schedules'
print('stock ' .. package.searchpath('batchlab.schedules', package.path))
for _, p in ipairs(bl.plugins()) do print('plugin ' .. p.file) end"
    expect_status 0
    expect_out "stock $P2/share/batchlab/lua/batchlab/schedules.lua"
    expect_out "plugin $PLUGDIR/bl_synthetic.so"
    expect_no_out "$BATCHLAB_BUILD_DIR/plugins"
fi
echo "install.sh: all checks passed"

#!/usr/bin/env bash
# batchlab run: exit statuses and messages — syntax and runtime errors name file:line with a
# traceback, -e, the arg table, package.path, a missing script.
. "$(dirname "$0")/lib/common.sh"
S=$SCRATCH

# Success, the arg table (as the stock interpreter makes it) and the chunk's `...`.
cat >"$S/args.lua" <<'LUA'
print("arg0=" .. arg[0], "arg1=" .. tostring(arg[1]), "arg2=" .. tostring(arg[2]), "n=" .. #arg)
print("argm1=" .. tostring(arg[-1]), "argm2=" .. tostring(arg[-2]))
local a, b = ...
print("dots=" .. tostring(a) .. "," .. tostring(b))
LUA
run "$BATCHLAB" run "$S/args.lua" one two
expect_status 0
expect_out "arg0=$S/args.lua"
expect_out "arg1=one"
expect_out "arg2=two"
expect_out "n=2"
expect_out "argm1=run"
expect_out "argm2=batchlab"
expect_out "dots=one,two"
# Options before the script show up at negative indices; options after it are the script's.
run "$BATCHLAB" run --quiet "$S/args.lua" --quiet
expect_status 0
expect_out "arg1=--quiet"
expect_out "argm1=--quiet"

# A syntax error: exit 1, file:line: and the message on stderr, without a traceback (issue
# 14: nothing ran, so "stack traceback: [C]: in ?" said nothing).
printf 'local x = 1\nlocal y = = 2\n' >"$S/syntax.lua"
run "$BATCHLAB" run "$S/syntax.lua"
expect_status 1
expect_err "syntax.lua:2: unexpected symbol near '='"
case "$ERR" in *"traceback"* | *"[C]: in ?"*) fail "a syntax error printed a useless traceback" ;; esac

# A runtime error: exit 1, file:line: message and a traceback through the functions.
cat >"$S/runtime.lua" <<'LUA'
local function inner()
  error("something broke")
end
local function outer() inner() end
outer()
LUA
run "$BATCHLAB" run "$S/runtime.lua"
expect_status 1
expect_err "runtime.lua:2: something broke"
expect_err "stack traceback:"
expect_err "in local 'outer'"
expect_no_out "something broke"
# A non-string error value still gives a message.
run "$BATCHLAB" run -e 'error({})'
expect_status 1
expect_err "error object is a table value"

# -e: code on the command line, alone, repeated, and before a script.
run "$BATCHLAB" run -e 'print("hello from -e")'
expect_status 0
expect_out "hello from -e"
run "$BATCHLAB" run -e 'x = 41' -e 'print("x=" .. x + 1)'
expect_out "x=42"
run "$BATCHLAB" run -e 'print(arg[0])'
expect_status 0
run "$BATCHLAB" run -e 'GREETING = "hi"' "$S/args.lua" z
expect_status 0
expect_out "arg1=z"
run "$BATCHLAB" run -e 'local = 1'
expect_status 1
expect_err "(command line):1:"
run "$BATCHLAB" run -e 'error("from e")'
expect_status 1
expect_err "(command line):1: from e"

# The batchlab module and the script library are found.
run "$BATCHLAB" run -e 'local bl = require "batchlab"; local s = require "batchlab.schedules"; print(bl.version, type(s.step))'
expect_status 0
expect_out "function"
# The script's own directory comes first on package.path, then BATCHLAB_PATH.
mkdir -p "$S/lib/pkg"
echo 'return "mine"' >"$S/helper.lua"
echo 'return "from BATCHLAB_PATH"' >"$S/lib/elsewhere.lua"
echo 'return "init"' >"$S/lib/pkg/init.lua"
echo 'print(require "helper", require "elsewhere", require "pkg")' >"$S/uses.lua"
BATCHLAB_PATH="/nonexistent:$S/lib" run "$BATCHLAB" run "$S/uses.lua"
expect_status 0
expect_out "mine"
expect_out "from BATCHLAB_PATH"
expect_out "init"

# A Lua error raised by the API is a Lua error like any other.
run "$BATCHLAB" run -e 'require("batchlab").model("mpl")'
expect_status 1
expect_err "did you mean 'mlp'"

# Missing script file: a clear message, no traceback.
run "$BATCHLAB" run "$S/nope.lua"
expect_status 1
expect_err "cannot open script '$S/nope.lua'"
expect_no_out "traceback"
# Usage errors: exit 2.
run "$BATCHLAB" run
expect_status 2
expect_err "give a script"
run "$BATCHLAB" run --frobnicate x.lua
expect_status 2
expect_err "unknown option '--frobnicate'"
run "$BATCHLAB" run -e
expect_status 2
run "$BATCHLAB" run --threads many x.lua
expect_status 2
run "$BATCHLAB" run --help
expect_status 0
expect_out "usage: batchlab run"
# --plugin-path and --threads reach the module.
FX=${BATCHLAB_TEST_PLUGIN_DIR:-$BATCHLAB_BUILD_DIR/tests/fixtures}
if [ -f "$FX/fx_good.so" ]; then
    run "$BATCHLAB" run --quiet --threads 1 --plugin-path "$FX" -e '
      for _, p in ipairs(require("batchlab").plugins()) do
        if p.name == "fx_model" then print("found " .. p.file) end
      end'
    expect_status 0
    expect_out "found $FX/fx_good.so"
fi
# os.exit keeps its status.
run "$BATCHLAB" run -e 'os.exit(3)'
expect_status 3
echo "ok"

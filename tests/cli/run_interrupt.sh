#!/usr/bin/env bash
# batchlab run and Ctrl-C: the first SIGINT ends the training run after its step, bl.train
# raises "interrupted", the script ends and the command exits 130.
. "$(dirname "$0")/lib/common.sh"
S=$SCRATCH
cat >"$S/long.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 2000, dim = 16 })
local model = bl.model("mlp", { hidden = { 32 } })
local f = io.open(arg[1], "w"); f:write("started\n"); f:close()
local r = bl.train { dataset = data, model = model, batch = 8, max_seconds = 60, quiet = true }
print("not reached: " .. r.status)
LUA
"$BATCHLAB" run "$S/long.lua" "$S/started" >"$S/.stdout" 2>"$S/.stderr" &
pid=$!
for _ in $(seq 1 200); do
    [ -f "$S/started" ] && break
    sleep 0.05
done
[ -f "$S/started" ] || { kill "$pid" 2>/dev/null; fail "the script did not start"; }
sleep 0.5
kill -INT "$pid"
set +e
wait "$pid"
STATUS=$?
set -e
OUT=$(cat "$S/.stdout")
ERR=$(cat "$S/.stderr")
LAST="batchlab run long.lua (SIGINT)"
expect_status 130
expect_err "interrupted"
expect_no_out "not reached"
echo "ok"

#!/usr/bin/env bash
# Issue 15, Found 4 / Build 2: SIGTERM and SIGHUP are handled like SIGINT — the run ends after
# its step, is recorded "interrupted", and the command exits 128 + the signal (143, 129) — and
# a plugin stuck inside a step is stopped by the second signal: in an isolated sweep the parent
# kills the child, records the run "interrupted" and exits at once.
. "$(dirname "$0")/../cli/lib/common.sh"
command -v sqlite3 >/dev/null || skip "the sqlite3 command (Debian package sqlite3) is missing"
S=$SCRATCH
DB=$S/sig.db
q() { sqlite3 -batch -noheader "$DB" "$1"; }
cat >"$S/long.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 2000, dim = 16 })
local model = bl.model("mlp", { hidden = { 32 } })
local f = io.open(arg[1], "w"); f:write("started\n"); f:close()
local r = bl.train { dataset = data, model = model, batch = 8, max_seconds = 60, quiet = true,
                     experiment = arg[2] }
print("not reached: " .. r.status)
LUA

# Runs CMD in the background, waits for the file $S/started, sends the signals given in SIGS
# (0.5 s apart) and sets STATUS, OUT, ERR; fails when the command outlives the deadline.
signal_when_started() {
    rm -f "$S/started"
    LAST="$*"
    "$@" >"$S/.stdout" 2>"$S/.stderr" &
    local pid=$!
    for _ in $(seq 1 300); do
        [ -f "$S/started" ] && break
        sleep 0.05
    done
    [ -f "$S/started" ] || { kill -KILL "$pid" 2>/dev/null; fail "the script did not start"; }
    if [ -n "${READY_SQL:-}" ]; then      # and until the store shows what READY_SQL asks
        for _ in $(seq 1 300); do
            [ "$(q "$READY_SQL" 2>/dev/null)" = 1 ] && break
            sleep 0.05
        done
    fi
    for sig in $SIGS; do
        sleep 0.5
        kill -"$sig" "$pid" 2>/dev/null || true
    done
    local waited=0
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt 200 ]; do
        sleep 0.05
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null || true
        fail "the command did not end within 10 s of the signals $SIGS"
    fi
    set +e
    wait "$pid"
    STATUS=$?
    set -e
    OUT=$(cat "$S/.stdout")
    ERR=$(cat "$S/.stderr")
}

SIGS=TERM signal_when_started "$BATCHLAB" run --db "$DB" "$S/long.lua" "$S/started" term
expect_status 143
expect_err "interrupted"
expect_no_out "not reached"
[ "$(q "SELECT status FROM runs r JOIN experiments e ON e.id = r.experiment_id
        WHERE e.name = 'term'")" = "interrupted" ] || fail "SIGTERM: the run is not recorded interrupted"

SIGS=HUP signal_when_started "$BATCHLAB" run --db "$DB" "$S/long.lua" "$S/started" hup
expect_status 129
[ "$(q "SELECT status FROM runs r JOIN experiments e ON e.id = r.experiment_id
        WHERE e.name = 'hup'")" = "interrupted" ] || fail "SIGHUP: the run is not recorded interrupted"

# A plugin stuck inside forward, in an isolated sweep: the first SIGTERM asks for a clean
# stop (which never comes), the second has the parent kill the child and record the run.
export BATCHLAB_PLUGIN_PATH=$BATCHLAB_TEST_FAULT_DIR
cat >"$S/stuck.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 400, validation = 100, dim = 8, classes = 2 })
local f = io.open(arg[1], "w"); f:write("started\n"); f:close()
bl.sweep { name = "stuck", isolate = true,
           base = { dataset = data, epochs = 1, batch = 32, quiet = true },
           vary = { model = { bl.model("fx_fault", { fault = "hang", after = 1 }) } } }
print("not reached")
LUA
READY_SQL="SELECT count(*) FROM runs r JOIN experiments e ON e.id = r.experiment_id
           WHERE e.name = 'stuck' AND status = 'running'" \
SIGS="TERM TERM" signal_when_started "$BATCHLAB" run --db "$DB" "$S/stuck.lua" "$S/started"
expect_status 143
expect_no_out "not reached"
[ "$(q "SELECT status FROM runs r JOIN experiments e ON e.id = r.experiment_id
        WHERE e.name = 'stuck'")" = "interrupted" ] ||
    fail "the stuck isolated run is not recorded interrupted"
[ "$(q "SELECT count(*) FROM runs WHERE status = 'running'")" -eq 0 ] || fail "a run was left running"
echo "signals.sh: all checks passed"

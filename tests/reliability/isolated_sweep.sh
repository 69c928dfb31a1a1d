#!/usr/bin/env bash
# Issue 15, Found 1 / Build 1: a crashing or hanging plugin in a sweep.
# - A 6-run isolated sweep with a model that segfaults in forward and one that hangs leaves 4
#   completed runs, one "crashed" (SIGSEGV) and one "timed_out" (its limit), exit 0; a rerun
#   trains none of them again.
# - retries = 1 trains a crashed configuration once more, then skips it with a message.
# - A crash in the model's build and an abort leave rows too (crashed, with their signal).
# - Without isolation a timeout is refused (it could not be enforced in process).
. "$(dirname "$0")/../cli/lib/common.sh"
command -v sqlite3 >/dev/null || skip "the sqlite3 command (Debian package sqlite3) is missing"
export BATCHLAB_PLUGIN_PATH=$BATCHLAB_TEST_FAULT_DIR
DB=$SCRATCH/iso.db
q() { sqlite3 -batch -noheader "$DB" "$1"; }

cat > "$SCRATCH/sweep.lua" <<'EOF2'
local bl = require "batchlab"
local name, faults, retries = arg[1], arg[2], tonumber(arg[3] or "0")
local data = bl.dataset("synthetic", { samples = 400, validation = 100, test = 0, dim = 8,
                                       classes = 2, seed = 3 })
local models = {}
for f in faults:gmatch("[^,]+") do
  models[#models + 1] = bl.model("fx_fault", { fault = f, after = #models + 2 })
end
local s = bl.sweep {
  name = name, isolate = true, timeout = 1.5, retries = retries,
  base = { dataset = data, epochs = 2, batch = 32, seed = 1, quiet = true },
  vary = { model = models },
  on_run = function(run, i)
    print(("run %d %s %s %s %s"):format(i, run.status, run.signal or "-",
                                        tostring(run.timeout or "-"),
                                        run.resumed and "resumed" or "trained"))
  end,
}
print(("done %d runs, %d resumed, %d failed"):format(s.total, s.resumed, s.failed))
EOF2

run "$BATCHLAB" run --db "$DB" "$SCRATCH/sweep.lua" six none,segv,none,hang,none,none
expect_status 0
expect_out "run 2 crashed SIGSEGV - trained"
expect_out "run 4 timed_out"
expect_out "1.5 trained"
expect_out "done 6 runs, 0 resumed, 2 failed"
expect_err "crashed: the run's process was killed by SIGSEGV"
expect_err "timed_out: ran past its timeout of 1.5 s"
six="JOIN experiments e ON e.id = r.experiment_id WHERE e.name = 'six'"
[ "$(q "SELECT count(*) FROM runs r $six AND status = 'completed'")" -eq 4 ] ||
    fail "not 4 completed runs"
[ "$(q "SELECT count(*) FROM runs r $six AND status = 'crashed' AND error LIKE '%SIGSEGV%'")" -eq 1 ] ||
    fail "the crash is not recorded with its signal"
[ "$(q "SELECT count(*) FROM runs r $six AND status = 'timed_out' AND error LIKE '%1.5 s%'")" -eq 1 ] ||
    fail "the hang is not recorded as timed out with its limit"
[ "$(q "SELECT count(*) FROM runs r $six AND status = 'running'")" -eq 0 ] ||
    fail "a run was left running"
run "$BATCHLAB" runs --db "$DB"
expect_out "crashed"
expect_out "timed_out"

# The rerun trains nothing: the crashed and the timed-out configurations are skipped.
rows=$(q "SELECT count(*) FROM runs")
run "$BATCHLAB" run --db "$DB" "$SCRATCH/sweep.lua" six none,segv,none,hang,none,none
expect_status 0
expect_out "done 6 runs, 6 resumed, 2 failed"
expect_out "run 2 crashed"
expect_no_out "trained"
[ "$(q "SELECT count(*) FROM runs")" -eq "$rows" ] || fail "the rerun added rows"

# retries = 1: the crashed configuration is trained once more (and crashes), then skipped.
run "$BATCHLAB" run --db "$DB" "$SCRATCH/sweep.lua" six none,segv,none,hang,none,none 1
expect_status 0
expect_out "run 2 crashed SIGSEGV - trained"
expect_out "run 4 timed_out"
[ "$(q "SELECT count(*) FROM runs r $six AND status = 'crashed'")" -eq 2 ] ||
    fail "retries = 1 did not train the crashed configuration once more"
run "$BATCHLAB" run --db "$DB" "$SCRATCH/sweep.lua" six none,segv,none,hang,none,none 1
expect_status 0
expect_out "done 6 runs, 6 resumed, 2 failed"
[ "$(q "SELECT count(*) FROM runs r $six AND status = 'crashed'")" -eq 2 ] ||
    fail "the crashed configuration was trained a third time"

# A crash in build (before any row exists) and an abort in forward leave rows.
run "$BATCHLAB" run --db "$DB" "$SCRATCH/sweep.lua" build build_segv,abort,none
expect_status 0
expect_out "run 1 crashed SIGSEGV"
expect_out "run 2 crashed SIGABRT"
expect_out "run 3 completed"
build="JOIN experiments e ON e.id = r.experiment_id WHERE e.name = 'build'"
[ "$(q "SELECT count(*) FROM runs r $build AND status = 'crashed'")" -eq 2 ] ||
    fail "the build crash or the abort left no row"
[ "$(q 'PRAGMA integrity_check')" = "ok" ] || fail "integrity_check failed"

# In process, a timeout cannot be enforced: refused.
cat > "$SCRATCH/inproc.lua" <<'EOF2'
local bl = require "batchlab"
bl.sweep { isolate = false, timeout = 1, base = { dataset = "synthetic", model = "mlp" } }
EOF2
run "$BATCHLAB" run --no-db "$SCRATCH/inproc.lua"
expect_status 1
expect_err "'timeout' needs isolate = true"
echo "isolated_sweep.sh: all checks passed"

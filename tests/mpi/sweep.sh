#!/usr/bin/env bash
# A distributed sweep on 2 ranks (issue 12): 6 runs land 6 rows in the store, none twice; only
# rank 0 prints; a run that fails (batch larger than the data with drop_last) is recorded as
# failed and the others go on, exit 0; resume gives back every finished run and trains only
# the failed one again; an LR-tuned sweep's trials are work items like runs.
. "$(dirname "$0")/../cli/lib/common.sh"
. "$(dirname "$0")/lib/mpi.sh"
mpi_require
db="$SCRATCH/s.db"
cat >"$SCRATCH/six.lua" <<'LUA'
local bl = require "batchlab"
local bad = arg[1] == "bad"
local function boom(state)                  -- fails in the middle of the run
  if state.step >= 3 then error("boom at step " .. state.step) end
  return 8
end
local data = bl.dataset("synthetic", { samples = 400, validation = 100, test = 100, dim = 8,
                                       classes = 3, seed = 7 })
local r = bl.sweep { name = "six",
  base = { dataset = data, model = bl.model("mlp", { hidden = { 16 } }), epochs = 2,
           drop_last = true, optimizer = bl.optim.sgd { lr = 0.1 } },
  vary = { batch = { 8, 16, bad and boom or 32 }, seed = { 1, 2 } },
  on_run = function(run, i, n) print(("on_run %d/%d"):format(i, n)) end }
local rank, ranks = bl.rank()
io.stderr:write(("rank %d of %d\n"):format(rank, ranks))
print(("total %d failed %d resumed %d best %s"):format(r.total, r.failed, r.resumed,
                                                      r.best and r.best.batch or "none"))
for i, run in ipairs(r.runs) do print(("run %d %s batch %s"):format(i, run.status, run.batch)) end
LUA

mpi 2 "$BATCHLAB" run --db "$db" "$SCRATCH/six.lua"
expect_status 0
expect_out "total 6 failed 0 resumed 0"
[ "$(rows "$db" "SELECT count(*) FROM runs")" = 6 ] || fail "expected 6 rows"
[ "$(rows "$db" "SELECT count(DISTINCT label) FROM runs WHERE status = 'completed'")" = 6 ] ||
    fail "expected 6 different completed runs"
[ "$(printf '%s\n' "$OUT" | grep -c '^total ')" = 1 ] || fail "only rank 0 prints the result"
expect_err "rank 0 of 2"
expect_err "rank 1 of 2"
[ "$(printf '%s\n' "$OUT" | grep -c '^on_run ')" = 6 ] || fail "on_run: once per run on rank 0"
[ "$(printf '%s\n' "$OUT" | grep -c ' completed batch ')" = 6 ] || fail "every rank's run table"

# resume on 2 ranks: all 6 given back, nothing trained again
mpi 2 "$BATCHLAB" run --db "$db" "$SCRATCH/six.lua"
expect_status 0
expect_out "total 6 failed 0 resumed 6"
[ "$(rows "$db" "SELECT count(*) FROM runs")" = 6 ] || fail "resume must not add rows"

# a failing run on whichever rank: recorded, the others go on, exit 0
db2="$SCRATCH/f.db"
mpi 2 "$BATCHLAB" run --db "$db2" "$SCRATCH/six.lua" bad
expect_status 0
expect_out "total 6 failed 2 resumed 0"
[ "$(printf '%s\n' "$OUT" | grep -c ' failed batch ')" = 2 ] || fail "2 failed run tables"
[ "$(rows "$db2" "SELECT count(*) FROM runs WHERE status = 'completed'")" = 4 ] ||
    fail "the 4 good runs completed"
[ "$(rows "$db2" "SELECT count(*) FROM runs WHERE status = 'failed'")" = 2 ] ||
    fail "the 2 failed runs are recorded"

# a fatal error (the script's on_run raises on rank 0): the job ends non-zero, nothing hangs
cat >"$SCRATCH/fatal.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 400, validation = 100, dim = 8, classes = 3 })
bl.sweep { name = "fatal",
  base = { dataset = data, model = bl.model("logreg"), epochs = 1, quiet = true },
  vary = { seed = { 1, 2, 3, 4, 5, 6 } },
  on_run = function(run, i) if i == 3 then error("on_run gave up at run 3") end end }
print("not reached")
LUA
mpi 2 "$BATCHLAB" run --no-db "$SCRATCH/fatal.lua"
[ "$STATUS" -ne 0 ] || fail "a script error ends the job with a non-zero exit"
expect_err "on_run gave up at run 3"
expect_no_out "not reached"

# an LR-tuned sweep: every trial is a work item, each lands once
cat >"$SCRATCH/tune.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 400, validation = 100, test = 100, dim = 8,
                                       classes = 3, seed = 7 })
local r = bl.sweep { name = "tuned",
  base = { dataset = data, model = bl.model("mlp", { hidden = { 16 } }), epochs = 1,
           optimizer = bl.optim.sgd { lr = 0.1 } },
  vary = { batch = { 16, 32 } }, tune = { lr = { factors = { 0.5, 1, 2, 4 }, eta = 2 } },
  seeds = { 1, 2 } }
print(("tuned runs %d"):format(#r.runs))
LUA
db3="$SCRATCH/t.db"
mpi 2 "$BATCHLAB" run --db "$db3" "$SCRATCH/tune.lua"
expect_status 0
n=$(printf '%s\n' "$OUT" | sed -n 's/^tuned runs //p')
[ -n "$n" ] || fail "no result"
run "$BATCHLAB" run --db "$SCRATCH/t1.db" "$SCRATCH/tune.lua"
expect_status 0
expect_out "tuned runs $n"
[ "$(rows "$db3" "SELECT count(*) FROM runs")" = "$(rows "$SCRATCH/t1.db" "SELECT count(*) FROM runs")" ] ||
    fail "2 ranks and 1 process record the same number of trials"
[ "$(rows "$db3" "SELECT count(*) FROM (SELECT label, count(*) c FROM runs GROUP BY label, config_hash HAVING c > 1)")" = 0 ] ||
    fail "a trial landed twice"
# branched critical-batch measurements: the branches are work items; 2 ranks find what one
# process finds, and only rank 0 prints
cat >"$SCRATCH/cb.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { task = "blobs", samples = 1200, dim = 8, classes = 4,
                                       noise = 2.0, seed = 3, validation = 200 })
local cbs = bl.critical_batch { dataset = data, model = bl.model("mlp", { hidden = { 16 } }),
  batch = 8, epochs = 2, seed = 2, quiet = true, optimizer = bl.optim.sgd { lr = 0.02 },
  n_points = 2, ks = { 1, 2, 4, 8 }, branch_samples = 400 }
for i, p in ipairs(cbs.points) do
  local l = {}
  for _, k in ipairs(cbs.ks) do l[#l + 1] = ("%.9g"):format(p.losses[k]) end
  print(("point %d b_crit %d losses %s"):format(i, p.b_crit, table.concat(l, " ")))
end
LUA
run "$BATCHLAB" run --no-db "$SCRATCH/cb.lua"
expect_status 0
cb_one=$OUT
mpi 2 "$BATCHLAB" run --no-db "$SCRATCH/cb.lua"
expect_status 0
[ "$OUT" = "$cb_one" ] || fail "critical batch: 2 ranks '$OUT' vs one process '$cb_one'"
echo "sweep.sh: all checks passed"

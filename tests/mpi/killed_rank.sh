#!/usr/bin/env bash
# A rank that dies (SIGKILL in the middle of a distributed sweep) ends the job with a non-zero
# exit, and loses no run that another rank (or itself) finished: every run recorded as
# completed is in the store once, and the same sweep run again resumes them and trains only
# the rest, ending with the 6 runs, none twice.
. "$(dirname "$0")/../cli/lib/common.sh"
. "$(dirname "$0")/lib/mpi.sh"
mpi_require
db="$SCRATCH/k.db"
cat >"$SCRATCH/kill.lua" <<'LUA'
local bl = require "batchlab"
-- what the batch function reads is global, not an upvalue: upvalues are part of a run's
-- configuration (its resume hash), and the resumed sweep must be the same configuration
DIE = arg[1] == "die" and os.getenv("OMPI_COMM_WORLD_RANK") == "1"
STARTED = 0
local function batch(state)
  if state.step == 0 then
    STARTED = STARTED + 1
    if DIE and STARTED == 2 then            -- rank 1 dies as its second run starts
      local pid = io.open("/proc/self/stat"):read("n")
      os.execute("kill -KILL " .. math.tointeger(pid))
    end
    if os.getenv("OMPI_COMM_WORLD_RANK") == "0" then    -- rank 0 is slow: rank 1 gets 2 runs
      local t = os.clock() + 0.3
      while os.clock() < t do end
    end
  end
  return 16
end
local r = bl.sweep { name = "k",
  base = { dataset = bl.dataset("synthetic", { samples = 400, validation = 100, dim = 8,
                                               classes = 3, seed = 7 }),
           model = bl.model("mlp", { hidden = { 16 } }), epochs = 2, batch = batch,
           max_batch = 16, optimizer = bl.optim.sgd { lr = 0.1 } },
  vary = { seed = { 1, 2, 3, 4, 5, 6 } } }
print(("total %d resumed %d failed %d"):format(r.total, r.resumed, r.failed))
LUA
mpi 2 "$BATCHLAB" run --db "$db" "$SCRATCH/kill.lua" die
[ "$STATUS" -ne 0 ] || fail "a killed rank must end the job with a non-zero exit"
done_before=$(rows "$db" "SELECT count(*) FROM runs WHERE status = 'completed'")
[ "$done_before" -ge 1 ] || fail "the runs finished before the kill are in the store"
[ "$(rows "$db" "SELECT count(*) FROM (SELECT label FROM runs WHERE status = 'completed' GROUP BY label HAVING count(*) > 1)")" = 0 ] ||
    fail "no run recorded twice"

mpi 2 "$BATCHLAB" run --db "$db" "$SCRATCH/kill.lua"
expect_status 0
expect_out "total 6 resumed $done_before failed 0"
[ "$(rows "$db" "SELECT count(*) FROM runs WHERE status = 'completed'")" = 6 ] ||
    fail "6 completed runs after the resume"
[ "$(rows "$db" "SELECT count(DISTINCT label) FROM runs WHERE status = 'completed'")" = 6 ] ||
    fail "none twice"
echo "killed_rank.sh: all checks passed (runs finished before the kill: $done_before)"

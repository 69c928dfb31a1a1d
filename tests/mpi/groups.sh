#!/usr/bin/env bash
# A sweep of data-parallel runs on 4 ranks with ranks_per_run = 2 (issue 12): two groups of
# 2 ranks (MPI_Comm_split) take the 4 points from the queue; each point is one run trained
# by its group, recorded once, with ranks = 2, and ends with the validation loss one process
# gets for the same point. A ranks_per_run that does not divide the job is refused.
. "$(dirname "$0")/../cli/lib/common.sh"
. "$(dirname "$0")/lib/mpi.sh"
mpi_require
cat >"$SCRATCH/groups.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 512, validation = 128, test = 0, dim = 16,
                                       classes = 4, seed = 3 })
local r = bl.sweep { name = "g", ranks_per_run = tonumber(arg[1]),
  base = { dataset = data, model = bl.model("mlp", { hidden = { 16 } }), epochs = 2,
           skip_test = true, data_parallel = true, optimizer = bl.optim.sgd { lr = 0.1 } },
  vary = { batch = { 16, 32 }, seed = { 1, 2 } } }
for i, run in ipairs(r.runs) do
  print(("run %d %s %.9g"):format(i, run.status, run.final.val_loss))
end
LUA
run "$BATCHLAB" run --db "$SCRATCH/one.db" "$SCRATCH/groups.lua" 1
expect_status 0
one=$OUT
MPI_TIMEOUT=150 mpi 4 "$BATCHLAB" run --db "$SCRATCH/g.db" "$SCRATCH/groups.lua" 2
expect_status 0
[ "$(printf '%s\n' "$OUT" | grep -c '^run ')" = 4 ] || fail "rank 0 prints the 4 runs once"
python3 - "$one" "$OUT" <<'PY' || fail "groups and one process disagree: $one / $OUT"
import sys
a = [l.split() for l in sys.argv[1].splitlines() if l.startswith("run ")]
b = [l.split() for l in sys.argv[2].splitlines() if l.startswith("run ")]
assert len(a) == len(b) == 4
for x, y in zip(a, b):
    assert x[2] == y[2] == "completed", (x, y)
    assert abs(float(x[3]) - float(y[3])) <= 1e-4 * max(abs(float(x[3])), 1e-3), (x, y)
PY
[ "$(rows "$SCRATCH/g.db" "SELECT count(*) FROM runs")" = 4 ] || fail "4 rows"
[ "$(rows "$SCRATCH/g.db" "SELECT count(DISTINCT label) FROM runs WHERE ranks = 2")" = 4 ] ||
    fail "each run once, trained on 2 ranks"

MPI_TIMEOUT=120 mpi 4 "$BATCHLAB" run --no-db "$SCRATCH/groups.lua" 3
[ "$STATUS" -ne 0 ] || fail "ranks_per_run = 3 on 4 ranks must be refused"
expect_err "ranks_per_run = 3 does not divide the 4 ranks"
echo "groups.sh: all checks passed"

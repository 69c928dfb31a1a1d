#!/usr/bin/env bash
# Issue-level guarantees of the results store, through whole `batchlab run` processes:
# - a sweep killed with SIGKILL in the middle and run again completes, with every
#   configuration completed exactly once, the points of the killed run kept, and
#   PRAGMA integrity_check ok;
# - the same sweep killed with SIGKILL at 10 moments (pseudo-random, 0.05 to 0.8 s after
#   start: opening, training, writing points or ends), then run to its end: every
#   configuration completed exactly once, no run left running, integrity_check ok;
# - two `batchlab run` processes writing one store at the same time both finish with all
#   their rows.
. "$(dirname "$0")/../cli/lib/common.sh"
command -v sqlite3 >/dev/null || skip "the sqlite3 command (Debian package sqlite3) is missing"
DB=$SCRATCH/sweep.db
q() { sqlite3 -batch -noheader "$DB" "$1"; }

# A sweep of 4 runs; every evaluation point is announced on stdout once it is stored.
cat > "$SCRATCH/sweep.lua" <<'EOF2'
local bl = require "batchlab"
local name, epochs, slow = arg[1] or "crash", tonumber(arg[2] or "3"), arg[3] == "slow"
-- "slow" (the run about to be killed) lingers 20 ms at each point, so the kill surely lands
-- mid-run; on_point is not part of a run's configuration, so the rerun resumes the same runs
local function linger()
  local t = os.clock()
  while slow and os.clock() - t < 0.02 do end
end
local data = bl.dataset("synthetic", { samples = 3000, validation = 200, test = 0, dim = 32,
                                       classes = 4, seed = 3 })
local s = bl.sweep {
  name = name,
  base = { dataset = data, model = bl.model("mlp", { hidden = { 128, 128 } }), epochs = epochs,
           seed = 1, quiet = true, eval_every = { steps = 5 }, train_eval_samples = 0,
           optimizer = bl.optim.sgd { lr = 0.05, momentum = 0.9 },
           on_point = function(p, run)
             io.stdout:write("point ", run.label, "\n"); io.stdout:flush(); linger()
           end },
  vary = { batch = { 8, 16, 32, 64 } },
}
print(("done %d runs, %d resumed, %d failed"):format(s.total, s.resumed, s.failed))
EOF2

"$BATCHLAB" run --db "$DB" "$SCRATCH/sweep.lua" crash 3 slow > "$SCRATCH/first.out" 2>&1 &
pid=$!
# wait until the second configuration has stored a few points, then kill -9
for _ in $(seq 600); do
    [ "$(grep -c 'batch=16' "$SCRATCH/first.out" 2>/dev/null)" -ge 3 ] && break
    sleep 0.1
done
grep -q 'batch=16' "$SCRATCH/first.out" || { OUT=$(cat "$SCRATCH/first.out"); fail "the sweep never reached its second run"; }
kill -KILL $pid
wait $pid 2>/dev/null || true
killed_id=$(q "SELECT id FROM runs WHERE label LIKE '%batch=16' AND status = 'running';")
[ -n "$killed_id" ] || fail "the killed run is not in the store as running"
kept=$(q "SELECT count(*) FROM points WHERE run_id = $killed_id;")
[ "$kept" -ge 3 ] || fail "only $kept points of the killed run were committed"

run "$BATCHLAB" run --db "$DB" "$SCRATCH/sweep.lua" crash 3
expect_status 0
expect_out "done 4 runs, 1 resumed, 0 failed"
for b in 8 16 32 64; do
    n=$(q "SELECT count(*) FROM runs r JOIN experiments e ON e.id = r.experiment_id
           WHERE e.name = 'crash' AND r.label LIKE '%batch=$b' AND r.status = 'completed';")
    [ "$n" -eq 1 ] || fail "batch $b completed $n times, not once"
done
[ "$(q "SELECT count(*) FROM points WHERE run_id = $killed_id;")" -eq "$kept" ] ||
    fail "points of the killed run were lost or changed"
[ "$(q "SELECT status FROM runs WHERE id = $killed_id;")" = "interrupted" ] ||
    fail "the killed run is not marked interrupted after the rerun"
[ "$(q 'PRAGMA integrity_check;')" = "ok" ] || fail "integrity_check failed"

# Ten kills at random moments, then a run to the end.
RANDOM=15
for k in $(seq 10); do
    ms=$((50 + RANDOM % 750))
    "$BATCHLAB" run --db "$DB" "$SCRATCH/sweep.lua" kills 2 > "$SCRATCH/kill$k.out" 2>&1 &
    pid=$!
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    kill -KILL $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
done
run "$BATCHLAB" run --db "$DB" "$SCRATCH/sweep.lua" kills 2
expect_status 0
expect_out "done 4 runs"
for b in 8 16 32 64; do
    n=$(q "SELECT count(*) FROM runs r JOIN experiments e ON e.id = r.experiment_id
           WHERE e.name = 'kills' AND r.label LIKE '%batch=$b' AND r.status = 'completed';")
    [ "$n" -eq 1 ] || fail "after 10 kills, batch $b completed $n times, not once"
done
[ "$(q "SELECT count(*) FROM runs WHERE status = 'running'")" -eq 0 ] ||
    fail "a killed run is still shown running"
[ "$(q 'PRAGMA integrity_check;')" = "ok" ] || fail "integrity_check failed after 10 kills"

# Two processes, one store, at the same time: both finish, every row present.
DB=$SCRATCH/shared.db
"$BATCHLAB" run --db "$DB" "$SCRATCH/sweep.lua" left 2 > "$SCRATCH/left.out" 2>&1 &
p1=$!
"$BATCHLAB" run --db "$DB" "$SCRATCH/sweep.lua" right 2 > "$SCRATCH/right.out" 2>&1 &
p2=$!
s1=0; s2=0
wait $p1 || s1=$?
wait $p2 || s2=$?
OUT=$(cat "$SCRATCH/left.out" "$SCRATCH/right.out")
[ "$s1" -eq 0 ] && [ "$s2" -eq 0 ] || fail "concurrent runs exited $s1 and $s2"
case "$OUT" in *locked*) fail "a 'database is locked' error reached the user" ;; esac
for side in left right; do
    n=$(grep -c "^point " "$SCRATCH/$side.out")
    stored=$(q "SELECT count(*) FROM points p JOIN runs r ON r.id = p.run_id
                JOIN experiments e ON e.id = r.experiment_id WHERE e.name = '$side';")
    [ "$stored" -eq "$n" ] || fail "$side: $n points made, $stored stored"
    [ "$(q "SELECT count(*) FROM runs r JOIN experiments e ON e.id = r.experiment_id
            WHERE e.name = '$side' AND r.status = 'completed';")" -eq 4 ] ||
        fail "$side: not all 4 runs completed in the store"
done
[ "$(q 'PRAGMA integrity_check;')" = "ok" ] || fail "integrity_check failed"
echo "store_crash.sh: all checks passed"

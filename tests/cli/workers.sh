#!/usr/bin/env bash
# batchlab run --workers N (docs/distributed.md, "Several processes on one machine"): local
# worker processes share a sweep as MPI ranks do, without MPI.
#  - a sweep of 6 points on 2 workers gives the table of one process, bit for bit (threads = 1),
#    only rank 0 prints, bl.rank() reports, the store has every run once; resume works;
#  - a failing point is recorded as failed, the others complete, exit 0 (3 with
#    --fail-on-error, which a worker's own failure does not replace);
#  - LR-tuning trials and branched critical-batch items work as on one process;
#  - a worker killed mid-sweep: rank 0 exits non-zero within seconds naming the worker, the
#    finished runs are in the store, and a resume completes the sweep;
#  - Ctrl-C (SIGINT to the process group) ends every worker's run as interrupted, exit 130;
#  - bad --workers / BATCHLAB_WORKERS values are usage errors (exit 2) that say what is expected.
. "$(dirname "$0")/lib/common.sh"
command -v sqlite3 >/dev/null || skip "sqlite3 is not installed"
rows() { sqlite3 "$1" "$2"; }
# each call bounded: a hang is a failure, not a stuck test
brun() {
    run timeout -k 5 120 "$BATCHLAB" run "$@"
    [ "$STATUS" -ne 124 ] || fail "batchlab run ran past 120 s"
}

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
           drop_last = true, threads = 1, quiet = true, optimizer = bl.optim.sgd { lr = 0.1 } },
  vary = { batch = { 8, 16, bad and boom or 32 }, seed = { 1, 2 } },
  on_run = function(run, i, n) print(("on_run %d/%d"):format(i, n)) end }
local rank, ranks = bl.rank()
io.stderr:write(("rank %d of %d\n"):format(rank, ranks))
print(("total %d failed %d resumed %d"):format(r.total, r.failed, r.resumed))
for i, run in ipairs(r.runs) do
  local f = run.final or {}
  print(("run %d %s batch %s seed %d val_loss %.17g val_accuracy %.17g"):format(i, run.status,
        (tostring(run.batch):gsub("function.*", "f")), run.seed, f.val_loss or -1,
        f.val_accuracy or -1))
end
LUA
table() { printf '%s\n' "$OUT" | grep -E '^(total|run) '; }

# ---- one process and two workers: the same table, every run once in the store --------------
brun --workers 1 --db "$SCRATCH/one.db" "$SCRATCH/six.lua"
expect_status 0
expect_err "rank 0 of 1"
one=$(table)
brun --workers 2 --db "$SCRATCH/two.db" "$SCRATCH/six.lua"
expect_status 0
expect_out "total 6 failed 0 resumed 0"
[ "$(table)" = "$one" ] || fail "2 workers: a different table than one process:
$one"
expect_err "rank 0 of 2"
expect_err "rank 1 of 2"
[ "$(printf '%s\n' "$OUT" | grep -c '^total ')" = 1 ] || fail "only rank 0 prints"
[ "$(printf '%s\n' "$OUT" | grep -c '^on_run ')" = 6 ] || fail "on_run: once per run on rank 0"
[ "$(rows "$SCRATCH/two.db" "SELECT count(*) FROM runs")" = 6 ] || fail "6 rows in the store"
[ "$(rows "$SCRATCH/two.db" "SELECT count(DISTINCT label) FROM runs WHERE status = 'completed'")" = 6 ] ||
    fail "6 different completed runs"
# resume: every run given back, none trained again (BATCHLAB_WORKERS, the variable, this time)
BATCHLAB_WORKERS=2 brun --db "$SCRATCH/two.db" "$SCRATCH/six.lua"
expect_status 0
expect_out "total 6 failed 0 resumed 6"
expect_err "rank 1 of 2"
[ "$(rows "$SCRATCH/two.db" "SELECT count(*) FROM runs")" = 6 ] || fail "resume adds no rows"

# ---- a failing point: recorded, the others complete ------------------------------------------
brun --workers 2 --db "$SCRATCH/bad.db" "$SCRATCH/six.lua" bad
expect_status 0
expect_out "total 6 failed 2 resumed 0"
[ "$(printf '%s\n' "$OUT" | grep -c ' failed batch ')" = 2 ] || fail "2 failed run tables"
expect_err "boom at step 3"
[ "$(rows "$SCRATCH/bad.db" "SELECT count(*) FROM runs WHERE status = 'completed'")" = 4 ] ||
    fail "the 4 good runs completed"
[ "$(rows "$SCRATCH/bad.db" "SELECT count(*) FROM runs WHERE status = 'failed'")" = 2 ] ||
    fail "the 2 failed runs are recorded"
brun --workers 2 --fail-on-error --no-db "$SCRATCH/six.lua" bad
expect_status 3
# rank 0's own failure status wins over a worker's: rank 0's points fail (3 with
# --fail-on-error; worker 1 is slow to start each run, so that rank 0 surely runs some), and
# worker 1 then fails its script (exit 1) once rank 0's sweep has returned (the file arg[1]: a
# worker that ended while rank 0 still waited for the sweep would fail the sweep itself)
cat >"$SCRATCH/mixed.lua" <<'LUA'
local bl = require "batchlab"
local flag = arg[1]
local function batch(state)
  if state.step == 0 and bl.rank() == 1 then
    local t = os.clock() + 0.3
    while os.clock() < t do end
  end
  if bl.rank() == 0 and state.step >= 3 then error("boom at step " .. state.step) end
  return 8
end
local data = bl.dataset("synthetic", { samples = 400, validation = 100, dim = 8, classes = 3,
                                       seed = 7 })
local r = bl.sweep { name = "mixed",
  base = { dataset = data, model = bl.model("mlp", { hidden = { 16 } }), epochs = 1,
           batch = batch, max_batch = 8, drop_last = true, threads = 1, quiet = true,
           optimizer = bl.optim.sgd { lr = 0.1 } },
  vary = { seed = { 1, 2, 3, 4 } } }
if bl.rank() == 0 then assert(io.open(flag, "w")):close() end
if bl.rank() == 1 then
  local deadline = os.time() + 60
  repeat
    local f = io.open(flag)
    if f then f:close() end
  until f or os.time() > deadline
  error("worker 1 fails after the sweep")
end
print(("total %d"):format(r.total))
LUA
rm -f "$SCRATCH/mixed.done"
brun --workers 2 --fail-on-error --no-db "$SCRATCH/mixed.lua" "$SCRATCH/mixed.done"
expect_status 3
expect_out "total 4"
expect_err "boom at step 3"
expect_err "worker 1 fails after the sweep"
expect_err "worker 1 (pid "

# ---- LR-tuning trials and critical-batch branches are work items too -------------------------
cat >"$SCRATCH/tune.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 400, validation = 100, test = 100, dim = 8,
                                       classes = 3, seed = 7 })
local r = bl.sweep { name = "tuned",
  base = { dataset = data, model = bl.model("mlp", { hidden = { 16 } }), epochs = 1,
           threads = 1, quiet = true, optimizer = bl.optim.sgd { lr = 0.1 } },
  vary = { batch = { 16, 32 } }, tune = { lr = { factors = { 0.5, 1, 2, 4 }, eta = 2 } },
  seeds = { 1, 2 } }
print(("tuned runs %d"):format(#r.runs))
for i, run in ipairs(r.runs) do
  print(("run %d %s lr %.17g val_loss %.17g"):format(i, run.status, run.lr or -1,
        run.final and run.final.val_loss or -1))
end
LUA
brun --no-db "$SCRATCH/tune.lua"
expect_status 0
tune_one=$OUT
brun --workers 2 --db "$SCRATCH/tune.db" "$SCRATCH/tune.lua"
expect_status 0
[ "$OUT" = "$tune_one" ] || fail "tuning: 2 workers differ from one process:
$tune_one"
[ "$(rows "$SCRATCH/tune.db" "SELECT count(*) FROM (SELECT label, count(*) c FROM runs GROUP BY label, config_hash HAVING c > 1)")" = 0 ] ||
    fail "a trial landed twice"
cat >"$SCRATCH/cb.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { task = "blobs", samples = 1200, dim = 8, classes = 4,
                                       noise = 2.0, seed = 3, validation = 200 })
local cbs = bl.critical_batch { dataset = data, model = bl.model("mlp", { hidden = { 16 } }),
  batch = 8, epochs = 2, seed = 2, quiet = true, threads = 1,
  optimizer = bl.optim.sgd { lr = 0.02 }, n_points = 2, ks = { 1, 2, 4, 8 },
  branch_samples = 400 }
for i, p in ipairs(cbs.points) do
  local l = {}
  for _, k in ipairs(cbs.ks) do l[#l + 1] = ("%.9g"):format(p.losses[k]) end
  print(("point %d b_crit %d losses %s"):format(i, p.b_crit, table.concat(l, " ")))
end
LUA
brun --no-db "$SCRATCH/cb.lua"
expect_status 0
cb_one=$OUT
brun --workers 2 --no-db "$SCRATCH/cb.lua"
expect_status 0
[ "$OUT" = "$cb_one" ] || fail "critical batch: 2 workers differ from one process:
$cb_one"

# ---- a worker killed mid-sweep ---------------------------------------------------------------
cat >"$SCRATCH/kill.lua" <<'LUA'
local bl = require "batchlab"
-- globals, not upvalues: upvalues are part of a run's configuration (its resume hash)
DIE = arg[1] == "die" and bl.rank() == 1
STARTED = 0
local function batch(state)
  if state.step == 0 then
    STARTED = STARTED + 1
    if DIE and STARTED == 2 then            -- worker 1 dies as its second run starts
      local pid = io.open("/proc/self/stat"):read("n")
      os.execute("kill -KILL " .. math.tointeger(pid))
    end
    if bl.rank() == 0 then                  -- rank 0 is slow: worker 1 gets 2 runs
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
           max_batch = 16, threads = 1, quiet = true, optimizer = bl.optim.sgd { lr = 0.1 } },
  vary = { seed = { 1, 2, 3, 4, 5, 6 } } }
print(("total %d resumed %d failed %d"):format(r.total, r.resumed, r.failed))
LUA
start=$(date +%s)
brun --workers 2 --db "$SCRATCH/k.db" "$SCRATCH/kill.lua" die
took=$(( $(date +%s) - start ))
[ "$STATUS" -ne 0 ] || fail "a killed worker must make rank 0 exit non-zero"
expect_err "worker 1 (pid "
expect_err "killed by signal 9"
[ "$took" -le 30 ] || fail "rank 0 took $took s to notice the dead worker"
done_before=$(rows "$SCRATCH/k.db" "SELECT count(*) FROM runs WHERE status = 'completed'")
[ "$done_before" -ge 1 ] || fail "the runs finished before the kill are in the store"
[ "$(rows "$SCRATCH/k.db" "SELECT count(*) FROM (SELECT label FROM runs WHERE status = 'completed' GROUP BY label HAVING count(*) > 1)")" = 0 ] ||
    fail "no run recorded twice"
brun --workers 2 --db "$SCRATCH/k.db" "$SCRATCH/kill.lua"
expect_status 0
expect_out "total 6 resumed $done_before failed 0"
[ "$(rows "$SCRATCH/k.db" "SELECT count(DISTINCT label) FROM runs WHERE status = 'completed'")" = 6 ] ||
    fail "6 completed runs after the resume"

# ---- Ctrl-C reaches every worker (the terminal signals the process group) --------------------
if command -v setsid >/dev/null; then
    cat >"$SCRATCH/long.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 4000, validation = 200, dim = 32, classes = 4,
                                       seed = 7 })
bl.sweep { name = "long",
  base = { dataset = data, model = bl.model("mlp", { hidden = { 64 } }), epochs = 1000,
           batch = 16, threads = 1, optimizer = bl.optim.sgd { lr = 0.01 } },
  vary = { seed = { 1, 2, 3, 4 } } }
print("not reached")
LUA
    LAST="setsid batchlab run --workers 2 long.lua (SIGINT to its process group)"
    setsid "$BATCHLAB" run --workers 2 --db "$SCRATCH/l.db" "$SCRATCH/long.lua" \
        >"$SCRATCH/.stdout" 2>"$SCRATCH/.stderr" &
    pid=$!
    # both workers training: two runs in the store as running
    for _ in $(seq 1 600); do
        [ "$(rows "$SCRATCH/l.db" "SELECT count(*) FROM runs WHERE status = 'running'" 2>/dev/null)" = 2 ] && break
        sleep 0.1
    done
    kill -INT -- "-$pid"
    set +e
    timeout 60 tail --pid="$pid" -f /dev/null
    wait "$pid"
    STATUS=$?
    set -e
    OUT=$(cat "$SCRATCH/.stdout")
    ERR=$(cat "$SCRATCH/.stderr")
    expect_status 130
    expect_no_out "not reached"
    [ "$(rows "$SCRATCH/l.db" "SELECT count(*) FROM runs WHERE status = 'interrupted'")" = 2 ] ||
        fail "both workers' runs are recorded as interrupted"
    ! pgrep -g "$pid" >/dev/null || fail "a worker outlived the interrupt"
fi

# ---- bad values -------------------------------------------------------------------------------
for v in 0 -1 abc 257 99999999999 ""; do
    brun --workers "$v" --no-db "$SCRATCH/six.lua"
    expect_status 2
    expect_err "--workers needs a number of worker processes in [1, 256], got '$v'"
done
BATCHLAB_WORKERS=abc brun --no-db "$SCRATCH/six.lua"
expect_status 2
expect_err "BATCHLAB_WORKERS needs a number of worker processes in [1, 256], got 'abc'"
BATCHLAB_WORKERS=abc brun --workers 1 --no-db "$SCRATCH/six.lua"    # the option wins
expect_status 0
expect_err "rank 0 of 1"
echo 'print(1)' >"$SCRATCH/one.lua"
run timeout 60 "$BATCHLAB" run --workers 2 - <"$SCRATCH/one.lua"
expect_status 2
expect_err "not '-' (standard input)"
brun --help
expect_out "--workers N"
echo "workers.sh: all checks passed (runs finished before the kill: $done_before)"

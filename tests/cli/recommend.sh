#!/usr/bin/env bash
# batchlab recommend: the probe's prediction for the configuration a script returns, as a
# table with the sentence and as JSON (parsed by python3 when there is one), --help, and
# errors that name the script and the key.
. "$(dirname "$0")/lib/common.sh"

cat > "$SCRATCH/probe.lua" <<'LUA'
local bl = require "batchlab"
local limit = tonumber((...)) or 256
return { dataset = bl.dataset("synthetic", { task = "teacher", samples = 4000, dim = 10,
                                             noise = 0.5, validation = 0.25, seed = 2 }),
         model = bl.model("logreg"), batch = 64, optimizer = bl.optim.sgd{ lr = 0.005 },
         target = { val_loss = 0.3 }, probe_steps = 200, batch_limit = limit, threads = 1 }
LUA

run "$BATCHLAB" recommend --quiet "$SCRATCH/probe.lua"
expect_status 0
expect_out "steps S(B)"
expect_out "predicted best batch"
expect_out "within 10%"
expect_out "B_noise ≈"
expect_out "(the probe took"

# ARGS reach the script as `...`: a limit of 64 makes 64 the largest batch of the table
run "$BATCHLAB" recommend --json --quiet "$SCRATCH/probe.lua" 64
expect_status 0
printf '%s' "$OUT" > "$SCRATCH/out.json"
if command -v python3 >/dev/null 2>&1; then
    python3 - "$SCRATCH/out.json" <<'PY' || fail "the JSON does not hold the prediction"
import json, sys
r = json.load(open(sys.argv[1]))
batches = [p["batch"] for p in r["curve"]]
assert batches == [1, 2, 4, 8, 16, 32, 64], batches
assert r["best"] in batches and r["best"] in r["within"], r
assert r["b_noise"] > 0 and r["s_min"] > 0 and r["s_min_basis"] == "target", r
assert all(p["step_time"] > 0 and p["timed_steps"] == 20 for p in r["curve"]), r
steps = [p["steps"] for p in r["curve"]]
assert all(a > b for a, b in zip(steps, steps[1:])), steps
assert r["summary"].startswith("predicted best batch %d" % r["best"]), r["summary"]
PY
else
    expect_out '"curve":['
fi

run "$BATCHLAB" recommend --help
expect_status 0
expect_out "usage: batchlab recommend"
run "$BATCHLAB" --help
expect_out "recommend"

# errors: no script, a script that returns nothing, a bad key, a missing target
run "$BATCHLAB" recommend
expect_status 2
expect_err "give a script"
run "$BATCHLAB" recommend "$SCRATCH/nosuch.lua"
expect_status 1
expect_err "nosuch.lua"
echo 'return 42' > "$SCRATCH/number.lua"
run "$BATCHLAB" recommend --quiet "$SCRATCH/number.lua"
expect_status 1
expect_err "number.lua must return one configuration"
sed 's/probe_steps = 200/probe_step = 100/' "$SCRATCH/probe.lua" > "$SCRATCH/typo.lua"
run "$BATCHLAB" recommend --quiet "$SCRATCH/typo.lua"
expect_status 1
expect_err "typo.lua"
expect_err "unknown key 'probe_step'; did you mean 'probe_steps'"
sed 's/target = { val_loss = 0.3 },//' "$SCRATCH/probe.lua" > "$SCRATCH/notarget.lua"
run "$BATCHLAB" recommend --quiet "$SCRATCH/notarget.lua"
expect_status 1
expect_err "notarget.lua: bl.probe: a 'target' is needed"
echo "recommend.sh: all checks passed"

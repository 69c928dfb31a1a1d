#!/usr/bin/env bash
# Golden configuration hashes: bl.train's stored configuration (and so its hash, on which
# resume is keyed) is the same as before the run spec and the orchestrator existed. The
# hashes below were written by the batchlab of commit 937d76d for this very script; if one
# changes, existing stores stop resuming. The fourth (a batch function) changed on purpose in
# issue 14: a function is stored by its identity (source, line, hash of bytecode and upvalues)
# instead of the word "function", so that runs of different functions no longer resume each
# other.
. "$(dirname "$0")/lib/common.sh"
cat >"$SCRATCH/gold.lua" <<'LUA'
local bl = require "batchlab"
local db = arg[1]
local data = bl.dataset("synthetic", { samples = 300, dim = 8, classes = 3 })
local model = bl.model("mlp", { hidden = { 8 } })
local base = function(extra)
  local c = { dataset = data, model = model, batch = 50, max_steps = 3, quiet = true, db = db,
              experiment = "gold", seed = 2 }
  for k, v in pairs(extra) do c[k] = v end
  return c
end
bl.train(base {})
bl.train(base { epochs = 0.5, max_steps = 4,
                lr_scaling = { rule = "linear", base_batch = 32, warmup_epochs = 0.25 },
                lr_schedule = { kind = "step", milestones = { 1, 2 }, gamma = 0.5 },
                eval_every = { steps = 2 }, target = { metric = "val_loss", at_most = 0.5 },
                optimizer = bl.optim.adam { lr = 3e-4 }, train_eval_samples = 100,
                gns_ema = 0.9, prefetch = "off", label = "x" })
bl.train(base { target = 0.9, eval_every = 0.5, lr_scaling = "sqrt", lr_schedule = "cosine" })
bl.train(base { batch = function() return 10 end, max_batch = 10, label = "fn" })
LUA
run "$BATCHLAB" run "$SCRATCH/gold.lua" "$SCRATCH/gold.db"
expect_status 0
n=0
for want in bfc8c093105f4ea8 ace089260a41afff 7a734813e0ba5958 b4b1b29906378370; do
    n=$((n + 1))
    run "$BATCHLAB" show --db "$SCRATCH/gold.db" "$n"
    expect_status 0
    expect_out "config hash        $want"
done
echo "store_hash.sh: all checks passed"

-- batch_sweep.lua — which batch size reaches 85 % validation accuracy soonest?
--
-- Shows a batch-size sweep the way Shallue et al. (2018) measure one: the same model trained
-- at batch sizes 16, 32, …, 1024 until the validation accuracy reaches a target, recording
-- the time and the number of steps each needed. The learning rate follows the linear scaling
-- rule (lr = 0.05 · B/128, Goyal et al. 2017) with one epoch of gradual warmup. Then it
--   * prints a table of the runs (batchlab.tables), the recommended one marked, and
--   * recommends a batch size (batchlab.recommend, docs/recommend.md): the batch sizes whose
--     time to target is not distinguishable from the fastest are tied, and the smallest of
--     them is picked; the critical batch size is given three ways (the fit of
--     S(B) = S_min + E_min/B over steps-to-target, the 20 %-overhead batch, the gradient
--     noise scale when measured).
--
-- Model: MLP 784-256-128-10 on Fashion-MNIST, SGD momentum 0.9, evaluation every ¼ epoch,
-- each run stops at the target or after 5 epochs. The sweep is recorded in the store and
-- resumes: runs already finished with the same configuration are not trained again.
--
-- Takes about 20–40 seconds on 2 CPU cores: every batch size reaches 85 % within 1–2 epochs
-- (give a harder target, e.g. 0.88, and more epochs to separate them further: minutes).
--
-- Run:   batchlab run examples/batch_sweep.lua [max epochs] [fashion-mnist dir] [target]

local bl = require "batchlab"
local sweep = require "batchlab.sweep"
local tables = require "batchlab.tables"
local recommend = require "batchlab.recommend"

local args = arg or {}
local epochs = tonumber(args[1]) or 5
local dir = args[2] or "/usr/share/datasets/fashion-mnist"
local target = tonumber(args[3]) or 0.85

local BASE_LR, BASE_BATCH = 0.05, 128
local batches = sweep.powers_of_two(16, 1024)

local data = bl.dataset("idx", { dir = dir, validation = 5000 })
local model = bl.model("mlp", { hidden = { 256, 128 } })

local s = bl.sweep {
  name = "example-batch-sweep",
  base = {
    dataset = data, model = model, device = "cpu", seed = 1, epochs = epochs,
    optimizer = bl.optim.sgd { lr = BASE_LR, momentum = 0.9 },
    lr_scaling = { rule = "linear", base_batch = BASE_BATCH, warmup_epochs = 1 },
    eval_every = 0.25,          -- epochs: a finer clock for time-to-target
    stop_at_target = true,
  },
  vary = { batch = batches },
  target = { metric = "val_accuracy", at_least = target },
  score = function(r) return r.time_to_target end,   -- lower is better
}

local rec, why = recommend(s.runs)

print()
tables.print_runs(s.runs, {
  title = ("Fashion-MNIST MLP: time to %.0f %% validation accuracy (linear LR scaling, warmup 1 epoch)")
    :format(target * 100),
  columns = {
    "batch",
    { title = "lr", format = "%.4g",
      get = function(r)
        local b = tables.batch_of(r)
        return type(b) == "number" and sweep.scaled_lr(BASE_LR, BASE_BATCH, b, "linear") or nil
      end },
    "status", "time_to_target", "steps_to_target", "epochs_to_target", "val_accuracy",
    "test_accuracy", "time",
  },
  best = rec and rec.run,
  best_label = rec and ("recommended: batch " .. tostring(rec.batch)),
})
print()
if rec then
  recommend.print(rec)           -- the pick, one row per candidate, the CBS three ways
  print()
  print(rec.reason)
else
  print("No recommendation: " .. tostring(why))
end

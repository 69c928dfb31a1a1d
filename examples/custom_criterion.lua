-- custom_criterion.lua — stop a run with your own rule.
--
-- Shows a stop criterion: a function(point, run) that bl.train calls at every evaluation
-- point and that returns false to go on or a string (the reason) to stop. This one combines
--   * patience: stop when the validation loss has not improved by 0.002 for 3 evaluations
--     in a row (early stopping), and
--   * a time budget: stop after a number of seconds of training (evaluation not counted),
-- and adds batchlab.criteria.divergence as a safety net. The same rule from the library is
-- one line:  criteria.any { criteria.patience {...}, criteria.time_budget {...} }.
--
-- Model: MLP 784-256-128-10 on Fashion-MNIST, SGD lr 0.05 momentum 0.9, batch 128, at most
-- 30 epochs, evaluated every half epoch. Takes at most about 1.5 minutes on 2 CPU cores (the
-- 60-second training budget plus evaluation); patience usually stops it sooner (after 8–10
-- epochs, about 30–50 seconds).
--
-- Run:   batchlab run examples/custom_criterion.lua [seconds] [fashion-mnist dir]

local bl = require "batchlab"
local criteria = require "batchlab.criteria"
local tables = require "batchlab.tables"

local args = arg or {}
local budget = tonumber(args[1]) or 60
local dir = args[2] or "/usr/share/datasets/fashion-mnist"

--- A criterion keeps its state in the closure; make a fresh one for each run.
local function patience_or_budget(patience, min_delta, seconds)
  local best, waited = math.huge, 0
  -- Build the reasons once, not at every point.
  local out_of_patience = ("no val_loss improvement of %g in %d evaluations"):format(min_delta, patience)
  local out_of_time = ("time budget of %g s used"):format(seconds)
  return function(p, run)
    if p.wall >= seconds then return out_of_time end
    local loss = p.val_loss
    if loss == loss and loss < best - min_delta then   -- (loss == loss) is false for NaN
      best, waited = loss, 0
    else
      waited = waited + 1
      if waited >= patience then return out_of_patience end
    end
    return false
  end
end

local data = bl.dataset("idx", { dir = dir, validation = 5000 })
local model = bl.model("mlp", { hidden = { 256, 128 } })

local run = bl.train {
  dataset = data, model = model, device = "cpu", seed = 1, epochs = 30,
  optimizer = bl.optim.sgd { lr = 0.05, momentum = 0.9 },
  batch = 128,
  eval_every = 0.5,
  stop = criteria.any {
    patience_or_budget(3, 0.002, budget),
    criteria.divergence { metric = "train_loss", factor = 10 },
  },
  label = "custom-criterion",
}

print()
io.write(tables.format_table(run.history, {
  { key = "epoch", format = "%.1f" },
  { key = "wall", title = "time", format = "seconds" },
  { key = "train_loss", title = "train loss", format = "%.4f" },
  { key = "val_loss", title = "val loss", format = "%.4f" },
  { key = "val_accuracy", title = "val acc", format = "percent" },
}, {
  best = function(p) return p.val_loss end, best_label = "lowest validation loss",
}))
print()
print(("Stopped after %.1f epochs by: %s (status %s)."):format(run.epochs, tostring(run.stopped_by), run.status))
print(("Final validation accuracy %s, test accuracy %s."):format(
  tables.format_value(run.final.val_accuracy, "percent"), tables.format_value(run.final.test_accuracy, "percent")))

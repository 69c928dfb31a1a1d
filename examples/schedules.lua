-- schedules.lua — a constant batch against batch-size schedules.
--
-- Shows the three ways to give `batch` to bl.train: a number, a scheduler (a C plugin or a
-- Lua schedule found by name, bl.scheduler) and a Lua function of the training state. Six
-- runs of the same model, each for the same number of epochs:
--
--   constant      batch 128 throughout
--   step LR       batch 128, LR halved at epochs 2 and 4 (the usual way to anneal)
--   smith         instead of halving the LR, double the batch at epochs 2 and 4
--                 (Smith et al. 2017, "Don't decay the learning rate, increase the batch
--                 size"; C plugin), capped at 512 — past the cap the LR decays instead
--   step (Lua)    the same doubling written with batchlab.schedules.step
--   gns           batch = the measured gradient noise scale B_simple (McCandlish et al.
--                 2018), rounded to a multiple of 32 within [32, 1024] (C plugin)
--   function      a Lua function(state): 32 in the first epoch, then 256
--
-- and prints a comparison: final and test accuracy, steps taken, training time and the
-- largest batch used. Schedules that grow the batch take fewer, larger steps for the same
-- epochs; compare their accuracy with the step-LR run's to see Smith et al.'s equivalence.
--
-- Model: MLP 784-256-128-10 on Fashion-MNIST, SGD lr 0.05 momentum 0.9, 6 epochs per run.
-- Takes about 1–2 minutes on 2 CPU cores (measuring the noise scale makes the gns run the
-- slowest).
--
-- Run:   batchlab run examples/schedules.lua [epochs] [fashion-mnist dir]

local bl = require "batchlab"
local schedules = require "batchlab.schedules"
local tables = require "batchlab.tables"

local args = arg or {}
local epochs = tonumber(args[1]) or 6
local dir = args[2] or "/usr/share/datasets/fashion-mnist"

local data = bl.dataset("idx", { dir = dir, validation = 5000 })
local model = bl.model("mlp", { hidden = { 256, 128 } })

-- A schedule written inline: any function(state) → batch [, lr_factor]. The engine sizes its
-- buffers once, so a plain function needs `max_batch` next to it in bl.train.
local function warm_then_large(state)
  if state.epoch < 1 then return 32 end
  return 256
end

local candidates = {
  { label = "constant", batch = 128 },
  { label = "step LR", batch = 128,
    lr_schedule = { kind = "step", milestones = { 2, 4 }, gamma = 0.5 } },
  { label = "smith", batch = bl.scheduler("smith", { batch = 128, factor = 2, milestones = { 2, 4 }, max = 512 }) },
  { label = "step (Lua)", batch = schedules.step { batch = 128, factor = 2, milestones = { 2, 4 }, max = 512 } },
  { label = "gns", batch = bl.scheduler("gns", { batch = 32, min = 32, max = 1024, multiple = 32, every = 50 }) },
  { label = "function", batch = warm_then_large, max_batch = 256 },
}

local runs = {}
for i, c in ipairs(candidates) do
  io.stderr:write(("[%d/%d] %s\n"):format(i, #candidates, c.label))
  local run = bl.train {
    dataset = data, model = model, device = "cpu", seed = 1, epochs = epochs,
    optimizer = bl.optim.sgd { lr = 0.05, momentum = 0.9 },
    batch = c.batch, max_batch = c.max_batch, lr_schedule = c.lr_schedule,
    label = c.label,
  }
  runs[#runs + 1] = run
end

print()
tables.print_runs(runs, {
  title = ("Fashion-MNIST MLP, %d epochs, SGD lr 0.05 momentum 0.9"):format(epochs),
  columns = {
    { key = "label", title = "schedule", align = "left" },
    "status", "steps", "max_batch_used", "val_accuracy", "test_accuracy", "val_loss", "time",
  },
  best = function(r)
    local acc = r.final and r.final.val_accuracy
    return (r.status == "completed" and acc == acc and acc) and -acc or nil
  end,
  best_label = "best validation accuracy",
})
print()
print("Fewer steps for the same epochs means more samples per step: with a fast enough machine")
print("(or more of them, data-parallel), that is shorter wall time at equal accuracy.")

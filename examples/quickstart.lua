-- quickstart.lua — train a small network on Fashion-MNIST and see what a run reports.
--
-- Shows the shape of every batchlab experiment: a dataset, a model, an optimizer and one
-- bl.train call, which returns a run table (status, time, steps, the history of evaluation
-- points, final validation and test metrics).
--
--   model      MLP 784-256-128-10 (ReLU)
--   optimizer  SGD, lr 0.05, momentum 0.9
--   batch      128, 3 epochs, 5,000 training images held out for validation
--
-- Takes about 5–10 seconds on 2 CPU cores (3 s of training when the machine is idle);
-- expect a test accuracy around 86–87 %.
--
-- Run:   batchlab run examples/quickstart.lua [epochs] [fashion-mnist dir]
-- Data:  the Debian package dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist.

local bl = require "batchlab"
local tables = require "batchlab.tables"

local args = arg or {}
local epochs = tonumber(args[1]) or 3
local dir = args[2] or "/usr/share/datasets/fashion-mnist"

local ok, data = pcall(bl.dataset, "idx", { dir = dir, validation = 5000 })
if not ok then
  io.stderr:write(("quickstart: cannot open Fashion-MNIST in %s:\n  %s\n"):format(dir, tostring(data)),
    "Install it with `apt-get install dataset-fashion-mnist`, or give the directory with the\n",
    "four *-ubyte(.gz) files: batchlab run examples/quickstart.lua 3 /path/to/fashion-mnist\n")
  os.exit(1)
end
local model = bl.model("mlp", { hidden = { 256, 128 } })

local run = bl.train {
  dataset = data, model = model, device = "cpu", seed = 1, epochs = epochs,
  optimizer = bl.optim.sgd { lr = 0.05, momentum = 0.9 },
  batch = 128,
  label = "quickstart",
}

if run.status ~= "completed" then
  io.stderr:write(("quickstart: the run %s: %s\n"):format(run.status, run.error or run.stopped_by or "?"))
  os.exit(1)
end

-- One line per evaluation point (here: the end of each epoch).
print()
io.write(tables.format_table(run.history, {
  { key = "epoch", format = "%.0f" },
  { key = "step", format = "int" },
  { key = "train_loss", title = "train loss", format = "%.4f" },
  { key = "val_loss", title = "val loss", format = "%.4f" },
  { key = "val_accuracy", title = "val acc", format = "percent" },
  { key = "samples_per_sec", title = "samples/s", format = "%.0f" },
}))

local f = run.final
print()
print(("Trained %d epochs (%d steps of batch %d) in %s; evaluation took another %s.")
  :format(math.floor(run.epochs + 0.5), run.steps, 128, tables.format_value(run.time, "seconds"),
    tables.format_value(run.eval_time, "seconds")))
print(("Validation accuracy %s (loss %.4f); test accuracy %s (loss %.4f).")
  :format(tables.format_value(f.val_accuracy, "percent"), f.val_loss,
    tables.format_value(f.test_accuracy, "percent"), f.test_loss))
print("Next: examples/batch_sweep.lua asks which batch size reaches 85 % validation accuracy soonest.")

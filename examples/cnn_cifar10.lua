-- cnn_cifar10.lua — a convolutional network on CIFAR-10.
--
-- Shows the cnn model plugin on colour images: its "vgg" preset (conv 32,32 → pool → conv
-- 64,64 → pool → conv 128 → pool → fc 256 → 10; 666,538 parameters), trained with SGD and
-- momentum, linear LR scaling from a base batch of 128 with one epoch of warmup, and
-- evaluated every half epoch. Prints the history and the test accuracy.
--
-- Needs the binary version of CIFAR-10 (about 170 MB):
--   https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
-- unpacked to a directory holding data_batch_1.bin … data_batch_5.bin and test_batch.bin.
-- Without it, this script says where to get it and exits (status 0).
--
-- Takes about 5–10 minutes per epoch on 2 CPU cores with all 45,000 training images (2
-- epochs by default: expect roughly 50–60 % test accuracy); give a sample limit to try it
-- faster, e.g. 10000 (about 1–2 minutes per epoch). device "cuda" needs the CUDA backend
-- (libbatchlab-cuda.so, built with the CUDA toolkit: docs/cuda.md) and a GPU.
--
-- Run:   batchlab run examples/cnn_cifar10.lua [cifar-10-batches-bin dir] [epochs] [limit] [device]

local bl = require "batchlab"
local tables = require "batchlab.tables"

local args = arg or {}
local dir = args[1] or os.getenv("CIFAR10_DIR") or "/usr/share/datasets/cifar-10-batches-bin"
local epochs = tonumber(args[2]) or 2
local limit = tonumber(args[3]) or 0
local device = args[4] or "cpu"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

if not exists(dir .. "/data_batch_1.bin") then
  print(("CIFAR-10 is not in %s (no data_batch_1.bin there)."):format(dir))
  print("Get the binary version and unpack it:")
  print("  wget https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz")
  print("  tar xzf cifar-10-binary.tar.gz          # makes cifar-10-batches-bin/")
  print("then point this script at that directory:")
  print("  batchlab run examples/cnn_cifar10.lua /path/to/cifar-10-batches-bin")
  print("(or set CIFAR10_DIR).")
  os.exit(0)
end

local validation = 5000
if limit > 0 and limit <= 2 * validation then validation = limit // 10 end
local data = bl.dataset("cifar10", { dir = dir, validation = validation, limit = limit })
local model = bl.model("cnn", { preset = "vgg" })

local batch = 128
local run = bl.train {
  dataset = data, model = model, device = device, seed = 1, epochs = epochs,
  optimizer = bl.optim.sgd { lr = 0.05, momentum = 0.9, weight_decay = 5e-4 },
  lr_scaling = { rule = "linear", base_batch = 128, warmup_epochs = 1 },
  batch = batch,
  eval_every = 0.5,
  stop = require("batchlab.criteria").divergence {},
  label = "cnn-cifar10",
}

print()
io.write(tables.format_table(run.history, {
  { key = "epoch", format = "%.1f" },
  { key = "wall", title = "time", format = "seconds" },
  { key = "lr", format = "%.4f" },
  { key = "train_loss", title = "train loss", format = "%.4f" },
  { key = "val_loss", title = "val loss", format = "%.4f" },
  { key = "val_accuracy", title = "val acc", format = "percent" },
  { key = "samples_per_sec", title = "samples/s", format = "%.0f" },
}))
print()
print(("%s after %.1f epochs (%d steps of batch %d) in %s: validation accuracy %s, test accuracy %s.")
  :format(run.status, run.epochs, run.steps, batch, tables.format_value(run.time, "seconds"),
    tables.format_value(run.final.val_accuracy, "percent"),
    tables.format_value(run.final.test_accuracy, "percent")))
if run.status ~= "completed" then
  print(run.error or run.stopped_by)
  os.exit(1)
end

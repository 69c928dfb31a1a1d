-- study.lua — the batch-size study of issue 13, timed: the MLP 784-256-128-10 on
-- Fashion-MNIST at batch 16, 32, …, 1024, three seeds each (21 runs), every run until 85 %
-- validation accuracy (evaluated every ¼ epoch; at most 5 epochs), SGD momentum 0.9 with the
-- learning rate scaled linearly from 0.05 at batch 128 and one epoch of warmup. Nothing is
-- recorded (db = false), so every run trains.
--
-- Prints one line per run and the sum of the runs' own times; bench/study.sh times the whole
-- process (wall time and peak memory). Run through it, or directly:
--
--   batchlab run bench/study.lua [--dir DIR] [--target X] [--epochs N] [--seeds 1,2,3]
--                                [--batches 16,32,...] [--threads N] [--help]

local bl = require "batchlab"
local sweep = require "batchlab.sweep"

local usage = [[
usage: batchlab run bench/study.lua [options]
  --dir DIR        Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)
  --target X       validation accuracy every run trains to (default 0.85)
  --epochs N       the most epochs a run may take (default 5)
  --seeds LIST     seeds of every batch size (default 1,2,3)
  --batches LIST   batch sizes (default 16,32,64,128,256,512,1024)
  --threads N      CPU threads of each run (default: batchlab's choice)
  --help           this text
]]

local function list(text, what)
  local t = {}
  for v in tostring(text):gmatch("[^,]+") do
    local n = math.tointeger(tonumber(v))
    if not n or n < 1 then
      io.stderr:write(("study: %s: '%s' is not a positive whole number\n"):format(what, v))
      os.exit(2)
    end
    t[#t + 1] = n
  end
  return t
end

local opt = { dir = "/usr/share/datasets/fashion-mnist", target = 0.85, epochs = 5,
              seeds = { 1, 2, 3 }, batches = sweep.powers_of_two(16, 1024) }
local args = arg or {}
local i = 1
while i <= #args do
  local k, v = args[i], args[i + 1]
  if k == "--help" or k == "-h" then
    io.write(usage)
    os.exit(0)
  elseif k == "--dir" and v then opt.dir = v
  elseif k == "--target" and tonumber(v) then opt.target = tonumber(v)
  elseif k == "--epochs" and tonumber(v) then opt.epochs = tonumber(v)
  elseif k == "--seeds" and v then opt.seeds = list(v, "--seeds")
  elseif k == "--batches" and v then opt.batches = list(v, "--batches")
  elseif k == "--threads" and math.tointeger(tonumber(v)) then opt.threads = math.tointeger(tonumber(v))
  else
    io.stderr:write(("study: unknown option or missing value: %s\n%s"):format(tostring(k), usage))
    os.exit(2)
  end
  i = i + 2
end

local ok, data = pcall(bl.dataset, "idx", { dir = opt.dir, validation = 5000 })
if not ok then
  io.stderr:write(("study: cannot open Fashion-MNIST in %s:\n  %s\n"):format(opt.dir, tostring(data)),
    "(apt-get install dataset-fashion-mnist, or give --dir)\n")
  os.exit(1)
end

local base = {
  dataset = data, model = bl.model("mlp", { hidden = { 256, 128 } }), device = "cpu",
  seed = 1, epochs = opt.epochs,
  optimizer = bl.optim.sgd { lr = 0.05, momentum = 0.9 },
  lr_scaling = { rule = "linear", base_batch = 128, warmup_epochs = 1 },
  eval_every = 0.25, stop_at_target = true, db = false, quiet = true,
}
if opt.threads then base.threads = opt.threads end

local s = bl.sweep {
  name = "bench-study", base = base, vary = { batch = opt.batches }, seeds = opt.seeds,
  target = { metric = "val_accuracy", at_least = opt.target },
}

print(("%6s %5s %10s %8s %8s %8s %9s"):format("batch", "seed", "status", "epochs", "reached",
  "val acc", "time s"))
local train_s, reached = 0, 0
for _, r in ipairs(s.runs) do
  local hit = r.epochs_to_target ~= nil
  reached = reached + (hit and 1 or 0)
  train_s = train_s + (r.time or 0)
  print(("%6s %5s %10s %8.2f %8s %8.4f %9.2f"):format(tostring(r.params.batch), tostring(r.seed),
    tostring(r.status), r.epochs or 0, hit and ("%.2f"):format(r.epochs_to_target) or "no",
    r.final and r.final.val_accuracy or 0, r.time or 0))
end
print(("study: %d runs, %d reached %.2f, the runs' own time %.2f s (the process's wall time: bench/study.sh)")
  :format(#s.runs, reached, opt.target, train_s))

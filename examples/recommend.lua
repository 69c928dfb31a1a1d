-- recommend.lua — which batch size should I use? The whole flow, from a cheap prediction to a
-- validated answer.
--
--   1. predict   bl.probe: the gradient noise scale over a few hundred steps and the step time
--                of every power-of-two batch give a predicted time-to-target curve and the
--                batches within 10 % of the predicted best (seconds, before any sweep).
--   2. measure   bl.sweep with the learning rate tuned per batch size (successive halving over
--                factors of the linearly scaled LR) and repeats over seeds; every run stops at
--                the target, with steps-to-target interpolated between evaluation points.
--   3. branch    bl.critical_batch: the critical batch size over training from branches of
--                one base run (Merrill et al. 2025), and the batch-size warmup schedule it gives.
--   4. answer    bl.recommend: the tied-best set given the spread over seeds, the pick, the
--                critical batch size three ways, the Pareto front and one sentence — and
--                whether the probe's prediction is in the measured tied set.
--
-- The defaults take about 1 minute on 2 idle CPU cores (MLP 784-256-128-10, batches 32…1024, two
-- seeds, target 85 % validation accuracy). The study in docs/recommend.md is this script with
-- more batches and seeds:
--
--   batchlab run examples/recommend.lua                         # the quick flow
--   batchlab run examples/recommend.lua mlp 16 2048 3 0.85      # model, batches lo hi, seeds, target
--   batchlab run examples/recommend.lua cnn 16 2048 3 0.85
--   batchlab run examples/recommend.lua mlp 16 2048 3 0.85 sweep   # stage 2 only (the store)
--
-- The sweep is recorded in the results store (experiment "recommend-<model>-…") and resumes:
-- run it again and only what is missing is trained.

local bl = require "batchlab"
local sweep = require "batchlab.sweep"
local recommend = require "batchlab.recommend"

local args = arg or {}
local model_name = args[1] or "mlp"
local lo, hi = tonumber(args[2]) or 32, tonumber(args[3]) or 1024
local n_seeds = tonumber(args[4]) or 2
local target = tonumber(args[5]) or 0.85
local stages = args[6] or "all"             -- "sweep": only stage 2 (fills the store)
local dir = args[7] or "/usr/share/datasets/fashion-mnist"

local BASE_LR, BASE_BATCH = 0.05, 128
local presets = {
  mlp = { opts = { hidden = { 256, 128 } }, epochs = 30 },
  cnn = { opts = {}, epochs = 20 },
}
local preset = presets[model_name]
if not preset then
  error(("recommend.lua: model must be 'mlp' or 'cnn', got %q"):format(model_name), 0)
end

local data = bl.dataset("idx", { dir = dir, validation = 5000 })
local model = bl.model(model_name, preset.opts)
local sgd = bl.optim.sgd { lr = BASE_LR, momentum = 0.9 }
local seeds = {}
for s = 1, n_seeds do seeds[s] = s end

local function section(title) print(("\n== %s ==\n"):format(title)) end

-- 1. predict -------------------------------------------------------------------------------
local probe
if stages == "all" then
  section("1. the probe's prediction")
  probe = bl.probe {
    dataset = data, model = model, optimizer = sgd, batch = 64, seed = 1,
    lr_scaling = { rule = "linear", base_batch = BASE_BATCH },
    target = { val_accuracy = target }, probe_steps = 300,
    min_batch = lo, batch_limit = hi, quiet = true,
  }
  print(probe.summary)
end

-- 2. measure -------------------------------------------------------------------------------
section(("2. the sweep: batches %d…%d, LR tuned per batch, %d seed(s)"):format(lo, hi, n_seeds))
local s = bl.sweep {
  name = ("recommend-%s-%d-%d-t%g"):format(model_name, lo, hi, target),
  base = {
    dataset = data, model = model, device = "cpu", epochs = preset.epochs, optimizer = sgd,
    lr_scaling = { rule = "linear", base_batch = BASE_BATCH },
    eval_every = "auto", stop_at_target = true, measure_gns = true,
  },
  vary = { batch = sweep.powers_of_two(lo, hi) },
  tune = { lr = { factors = { 0.25, 0.5, 1, 2 } } },
  seeds = seeds,
  target = { metric = "val_accuracy", at_least = target },
}

if stages == "sweep" then return end

-- 3. branch --------------------------------------------------------------------------------
section("3. branched training from one base run")
local cbs = bl.critical_batch {
  dataset = data, model = model, optimizer = sgd, batch = lo, epochs = 1, seed = 1,
  n_points = 3, ks = { 1, 2, 4, 8, 16, 32 }, branch_samples = 5500, tolerance = 0.05,
  evals = 4, quiet = true,
}
for _, p in ipairs(cbs.points) do
  print(("after %6d samples: local critical batch %4d  [%d, %s)"):format(p.samples, p.b_crit,
    p.lo, p.capped and "capped" or tostring(p.hi)))
end

-- 4. answer --------------------------------------------------------------------------------
section("4. the recommendation")
local rec, why = recommend(s.runs, { branched = cbs.estimate })
if not rec then
  print("no recommendation: " .. why)
  return
end
recommend.print(rec)

local tied = {}
for _, c in ipairs(rec.tied) do tied[#tied + 1] = tostring(c.batch or c) end
local in_tied = false
for _, c in ipairs(rec.tied) do
  if (c.batch or c) == probe.best then in_tied = true end
end
print(("\nThe probe predicted batch %d; the measured tied-best set is {%s}: %s."):format(
  probe.best, table.concat(tied, ", "), in_tied and "the prediction is in it"
    or "the prediction is outside it"))

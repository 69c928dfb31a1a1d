-- The critical batch size over training by branched training (docs/branched.md), and the
-- batch-size warmup derived from it, on Fashion-MNIST with the mlp:
--
--   batchlab run examples/critical_batch.lua [TOLERANCE [EVALS]]      (default 0.05 4)
--
-- A base run at batch 32 for one epoch is branched at 3 points (factor 2 apart) with batches
-- 32 … 1024 (LR scaled linearly) for a tenth of an epoch each; then one epoch each of the
-- warmup schedule, the fixed batch of the schedule's final size and batch 32. About a minute
-- on 2 cores (one thread, so that the numbers in docs/branched.md come out exactly).
local bl = require "batchlab"
local tolerance, evals = tonumber(arg and arg[1]) or 0.05, tonumber(arg and arg[2]) or 4
local data = bl.dataset("idx", { dir = "/usr/share/datasets/fashion-mnist", validation = 5000 })
local model = bl.model("mlp", { hidden = { 256, 128 } })
local LR = 0.02
local sgd = bl.optim.sgd { lr = LR, momentum = 0.9 }
local cbs = bl.critical_batch { dataset = data, model = model, batch = 32, epochs = 1, seed = 1,
  optimizer = sgd, n_points = 3, ks = { 1, 2, 4, 8, 16, 32 }, branch_samples = 5500,
  tolerance = tolerance, evals = evals, quiet = true, threads = 1 }
print(("measure %s (tolerance %g, %d evaluations), base LR %g, %.0f s"):format(cbs.measure,
  tolerance, evals, cbs.base_lr, cbs.cost_seconds))
for _, p in ipairs(cbs.points) do
  local ls = {}
  for _, k in ipairs(cbs.ks) do ls[#ls + 1] = ("%d: %.4f"):format(32 * k, p.losses[k]) end
  print(("samples %6d (step %4d): B_crit %4d [%d, %s)  %s"):format(p.samples, p.step, p.b_crit,
    p.lo, p.capped and "capped" or tostring(p.hi), table.concat(ls, ", ")))
end
print(("estimate for bl.recommend: batch %d, lo %d, hi %s"):format(cbs.estimate.batch,
  cbs.estimate.lo, tostring(cbs.estimate.hi)))

local function one_epoch(batch, lr)
  return bl.train { dataset = data, model = model, epochs = 1, seed = 1, batch = batch,
                    optimizer = bl.optim.sgd { lr = lr, momentum = 0.9 }, quiet = true,
                    db = false, threads = 1 }
end
local last = cbs.schedule_points[#cbs.schedule_points]
local final, factor = last.batch, last.lr
for _, c in ipairs { { "warmup schedule", cbs.schedule, LR },
                     { ("fixed %d"):format(final), final, LR * factor },
                     { "fixed 32", 32, LR } } do
  local r = one_epoch(c[2], c[3])
  print(("%-16s %5d steps, val_loss %.4f, val_accuracy %.4f"):format(c[1], r.steps,
    r.final.val_loss, r.final.val_accuracy))
end

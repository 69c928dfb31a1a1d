-- bl.critical_batch: branched training from snapshots of a base run (docs/branched.md).
--
--  * the result table: points with the losses per k, b_crit by the stated rule (the largest
--    k·B0 before the first loss above (1 + tolerance) × the k = 1 loss) and its bracket;
--    the estimate {batch, lo, hi} a recommendation takes (the last point's);
--  * the warmup schedule starts at B0, never shrinks, is in force from each point with at
--    least that point's b_crit, and trains under bl.train;
--  * on the synthetic teacher–student regression, the critical batch against the gradient
--    noise scale, which is known there (below);
--  * bad inputs raise naming the key.
local bl = require "batchlab"
local T = require "bltest"

local blobs = bl.dataset("synthetic", { task = "blobs", samples = 2200, dim = 8, classes = 4,
                                         noise = 2.0, seed = 3, validation = 200 })
local mlp = bl.model("mlp", { hidden = { 16 } })
local function base(extra)
  local t = { dataset = blobs, model = mlp, batch = 8, epochs = 3, seed = 2, quiet = true,
              optimizer = bl.optim.sgd { lr = 0.02, momentum = 0 } }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

T.test("points, losses, the b_crit rule, the estimate", function()
  local cbs = bl.critical_batch(base { n_points = 3, ks = { 1, 2, 4, 8, 16, 32 },
                                       branch_samples = 1000, tolerance = 0.01 })
  T.eq(cbs.base_batch, 8)
  T.eq(cbs.measure, "val_loss", "a validation split: the validation loss")
  T.eq(#cbs.points, 3)
  T.eq(#cbs.ks, 6)
  T.eq(cbs.lrs[4], 4 * cbs.lrs[1], "linear rule by default")
  local prev = 0
  for i, p in ipairs(cbs.points) do
    T.truthy(p.samples > prev, "points increase")
    prev = p.samples
    T.eq(p.step * 8, p.samples, "within the first epoch a step is 8 samples")
    local last = 1
    for j = 2, #cbs.ks do
      local k = cbs.ks[j]
      T.truthy(p.losses[k] == p.losses[k], "a loss for k = " .. k)
      if p.losses[k] > p.losses[1] * 1.01 then break end
      last = j
    end
    T.eq(p.b_crit, 8 * cbs.ks[last], "point " .. i .. ": the rule")
    T.eq(p.lo, p.b_crit)
    T.eq(p.capped, last == #cbs.ks)
    T.eq(p.hi, p.capped and nil or 8 * cbs.ks[last + 1], "bracket")
    T.truthy(p.branch_samples[1] >= 1000 and p.branch_samples[32] < 1000 + 256)
  end
  -- geometric: factor 2 apart, the last Δ before the horizon (6000 samples)
  T.eq(cbs.points[3].samples, 5000)
  T.eq(cbs.points[2].samples, 2504)          -- 2500 rounded up to a step of 8
  local last = cbs.points[3]
  T.eq(cbs.estimate.batch, last.b_crit)
  T.eq(cbs.estimate.lo, last.lo)
  T.eq(cbs.estimate.hi, last.hi)
  T.eq(cbs.b_crit, last.b_crit)
  T.truthy(cbs.cost_seconds > 0)

  -- the schedule: the "breakpoints" plugin with the table in schedule_points
  T.eq(cbs.schedule:name(), "breakpoints")
  local o = cbs.schedule:options()
  T.eq(o.unit, "samples")
  T.eq(#o.at, #cbs.schedule_points)
  for i, p in ipairs(cbs.schedule_points) do
    T.eq(o.at[i], p.samples)
    T.eq(o.batch[i], p.batch)
    T.eq(o.lr[i], p.lr)
  end
  local s = require("batchlab.schedules").breakpoints(o)   -- the same plugin, callable
  T.eq(s { samples = 0, step = 0 }, 8, "starts at B0")
  local b_prev = 0
  for samples = 0, 6000, 50 do
    local b, f = s { samples = samples, step = 0 }
    T.truthy(b >= b_prev, "monotone")
    T.eq(f, b / 8, "the LR follows the linear rule")
    b_prev = b
  end
  for _, p in ipairs(cbs.points) do
    T.truthy(s { samples = p.samples } >= p.b_crit, "in force from the point")
  end
  local r = bl.train { dataset = blobs, model = mlp, batch = cbs.schedule, epochs = 3, seed = 2,
                       quiet = true, db = false, optimizer = bl.optim.sgd { lr = 0.02 } }
  T.eq(r.status, "completed")
  T.eq(r.batch, "breakpoints")
  T.eq(r.max_batch_used or r.final.batch, cbs.schedule_points[#cbs.schedule_points].batch)
end)

T.test("given points, per-k LRs, train_loss measure", function()
  local cbs = bl.critical_batch(base { points = { 800, 3200 }, ks = { 1, 2, 4 },
                                       lrs = { [1] = 0.02, [2] = 0.03, [4] = 0.05 },
                                       branch_samples = 800, measure = "train_loss" })
  T.eq(cbs.measure, "train_loss")
  T.eq(cbs.points[1].samples, 800)
  T.eq(cbs.points[2].samples, 3200)
  T.eq(cbs.lrs[2], 0.03)
  local s = require("batchlab.schedules").breakpoints(cbs.schedule:options())
  T.eq(s { samples = 0 }, 8)
  local _, f = s { samples = 0 }
  T.eq(f, 1.0)
end)

-- The synthetic teacher–student regression (plugins/datasets/synthetic.c): x ~ N(0, I_D),
-- y = w*·x + ε, ε ~ N(0, σ²), a linear student with loss (w·x + b − y)² (Hessian 2I). SGD at
-- LR ε0 and batch B0 settles at an excess |d|² ≈ ε0·D·σ² / (B0·(1 − ε0 − ε0(D+1)/B0)), where
-- the gradient noise scale B_noise = D + 1 + Dσ²/|d|² (the plugin's header) is
-- B* = B0·(1/ε0 − 1). Under the linear rule a branch at k keeps ε/B, so its excess stays the
-- same but for the factor 1/(1 − kε0 − …) that grows as kε0 nears the curvature limit; it
-- leaves a relative tolerance τ of the loss σ² + |d|² when (k − 1)ε0·|d|² ≈ τσ², i.e. at
-- B_crit ≈ τ·B*²/D: below B* for τ < D/B*, about B* for τ ≈ D/B*. With D = 16, B0 = 8,
-- ε0 = 0.005 (B* = 1592) and τ = 0.01 ≈ D/B*, the branched B_crit should come out near B*:
-- checked loosely, within a factor 4, and never above B* (the noise scale bounds it), for
-- three data/training seeds (measured: 512–1024; a branch's end point carries noise of about
-- ±35% of the excess, √(2/D), which is why the check is loose).
T.test("teacher–student: B_crit against the known noise scale", function()
  local D, B0, LR = 16, 8, 0.005
  local b_star = B0 * (1 / LR - 1)
  for seed = 5, 7 do
    local data = bl.dataset("synthetic", { task = "teacher", samples = 40000, validation = 8000,
                                           test = 0, dim = D, noise = 1, teacher_norm = 1,
                                           seed = seed })
    local cbs = bl.critical_batch { dataset = data, model = bl.model("logreg"), batch = B0,
      seed = seed, quiet = true, max_steps = 100000,
      optimizer = bl.optim.sgd { lr = LR, momentum = 0 }, points = { 8000 },
      ks = { 1, 2, 4, 8, 16, 32, 64, 128, 256 }, branch_samples = 4000, tolerance = 0.01 }
    local b = cbs.points[1].b_crit
    print(("seed %d: branched B_crit %d [%d, %s), B_noise %d"):format(seed, b, cbs.points[1].lo,
      tostring(cbs.points[1].hi), b_star))
    T.truthy(b <= b_star, "B_noise bounds the critical batch")
    T.truthy(4 * b >= b_star, "within a factor 4 of B_noise")
  end
end)

T.test("the breakpoints scheduler: the table's values", function()
  local BP = require("batchlab.schedules").breakpoints
  local s = BP { at = { 100, 300 }, batch = { 4, 16 }, lr = { 1, 3 } }
  T.eq(s.max_batch, 16)
  T.eq(s { samples = 0, step = 0 }, 4, "before the first breakpoint the first entry holds")
  T.eq(s { samples = 299, step = 0 }, 4)
  local b, f = s { samples = 300, step = 0 }
  T.eq(b, 16, "from a breakpoint on")
  T.eq(f, 3)
  local u = BP { at = { 0, 2 }, batch = { 8, 32 }, unit = "epochs" }
  T.eq(u { epoch = 1, epoch_progress = 1.99, samples = 0, step = 0 }, 8)
  local b2, f2 = u { epoch = 2, epoch_progress = 2, samples = 0, step = 0 }
  T.eq(b2, 32)
  T.eq(f2, 1, "no lr: factor 1")
  T.raises(function() BP { at = { 0, 1 }, batch = { 8 } } end, "'batch'", "one batch per breakpoint")
  T.raises(function() BP { at = { 5, 1 }, batch = { 8, 9 } } end, "'at'", "increasing")
end)

T.test("bad inputs name the key", function()
  T.raises(function() bl.critical_batch(base { ks = { 1, 2 } }) end, "'branch_samples' is required")
  T.raises(function() bl.critical_batch(base { branch_samples = 0 }) end, "'branch_samples'", "≥ 1")
  T.raises(function() bl.critical_batch(base { branch_samples = 100, kss = { 1, 2 } }) end,
           "unknown key 'kss'", "'ks'")
  T.raises(function() bl.critical_batch(base { branch_samples = 100, ks = { 2, 4 } }) end,
           "'ks' must start at 1")
  T.raises(function() bl.critical_batch(base { branch_samples = 100, ks = { 1, 2.5 } }) end,
           "'ks' must hold integers")
  T.raises(function() bl.critical_batch(base { branch_samples = 100, tolerance = "x" }) end,
           "'tolerance' must be a number")
  T.raises(function() bl.critical_batch(base { branch_samples = 100, points = { 500, 100 } }) end,
           "'points' must be increasing")
  T.raises(function() bl.critical_batch(base { branch_samples = 100, points = { 100 }, n_points = 2 }) end,
           "'points' or 'n_points'")
  T.raises(function() bl.critical_batch(base { branch_samples = 100, lr_rule = "cubic" }) end,
           "'lr_rule'")
  T.raises(function() bl.critical_batch(base { branch_samples = 100, ks = { 1, 2 }, lrs = { [1] = 0.1 } }) end,
           "'lrs' has no LR for k = 2")
  T.raises(function() bl.critical_batch(base { branch_samples = 100, measure = "acc" }) end,
           "'measure'")
  T.raises(function() bl.critical_batch(base { branch_samples = 100, stop = function() end }) end,
           "'stop' is not taken")
  T.raises(function() bl.critical_batch(base { branch_samples = 100, max_seconds = 3 }) end,
           "'max_seconds' is not taken")
  T.raises(function()
    bl.critical_batch(base { branch_samples = 100, batch = function() return 8 end, max_batch = nil })
  end, "'batch' must be a number")
  T.raises(function()
    bl.critical_batch(base { branch_samples = 100, batch = bl.scheduler("constant", { batch = 8 }) })
  end, "'batch' must be a number")
  T.raises(function() bl.critical_batch(base { branch_samples = 5995 }) end, "branch_samples",
           "leaves no room")
end)

T.done()

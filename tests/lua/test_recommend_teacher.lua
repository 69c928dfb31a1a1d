-- Issue 10, "what must be true": on the synthetic teacher–student regression, whose gradient
-- noise is known, the critical batch size fitted from steps-to-target and the measured gradient
-- noise scale agree within a factor of 2.
--
-- The problem (plugins/datasets/synthetic.c): x ~ N(0, I_D), y = w*·x + ε, ε ~ N(0, σ²), a
-- linear student with MSE loss ℓ = (w·x + b − y)². Its Hessian is 2I, so the largest useful
-- SGD step is ε_max = 1/2, and with d = w − w* the noise scale is B_simple = B_noise ≈
-- D + 1 + Dσ²/|d|² (the plugin's header; H ∝ I makes B_simple equal McCandlish's B_noise). At
-- a validation-loss target σ²(1 + δ) the excess |d|² is δσ², so there B_noise ≈ D + 1 + D/δ:
-- 97 for D = 16, δ = 0.2.
--
-- Why these choices:
--  * The student starts close to the target (|w*| = 1, so the initial excess is about 1, five
--    times δσ²): the whole run is in the noise-dominated phase, where B_noise changes by that
--    factor only, rather than a long noiseless phase that says nothing about the noise.
--  * The LR is tuned per batch (Shallue et al. 2018) over a grid of √2 steps up to ε_max/2 =
--    0.25. McCandlish et al. 2018: ε_opt(B) = ε_max / (1 + B_noise/B); capped at ε_c, the step
--    stops growing with the batch at B = B_noise · ε_c / (ε_max − ε_c), which is B_noise for
--    ε_c = ε_max/2 — so the fitted B_crit measures B_noise. Uncapped, GD at ε_max solves an
--    isotropic quadratic in one step: S_min would be below one step, finer than steps can be
--    measured, and the fit's B_crit = E_min/S_min would be an artefact of the step resolution.
--  * Three seeds per (batch, LR); the LR whose median steps is fewest counts (the other
--    trials are marked as the `tune` helper marks them: tune.best = false, left out).
--  * gns_ema = 0.5: runs last 2–60 steps, so the estimate must settle within a few steps.
--
-- What is checked: the fit's B_crit within a factor 2 of the analytic B_noise at the target
-- (this holds across data seeds: 0.8–1.3× for seeds 5–8), and within a factor 2 of the
-- measured noise scale (the recommendation's median over the runs' later halves). The
-- measured B_simple reads lower than the analytic value at the target (about 45 against 97:
-- B_simple grows as the loss falls, and the later half of a run is not yet at the target), so
-- the second check has less room: 1.7× for seed 5 (1.7–2.9× across seeds 5–8).
local bl = require "batchlab"
local T = require "bltest"

local D, SIGMA, DELTA = 16, 1, 0.2
local data = bl.dataset("synthetic", { task = "teacher", samples = 60000, validation = 40000,
                                       test = 0, dim = D, noise = SIGMA, teacher_norm = 1,
                                       seed = 5 })
local model = bl.model("logreg")
local target = SIGMA ^ 2 * (1 + DELTA)

T.test("teacher–student: fitted B_crit, measured B_simple and analytic B_noise agree", function()
  local runs = {}
  for _, b in ipairs { 8, 16, 32, 64, 128, 256, 512, 1024 } do
    local best, best_steps
    local trials = {}
    for k = 0, 9 do
      local lr = 0.25 * 2 ^ (-k / 2)
      local trial, steps = {}, {}
      for seed = 1, 3 do
        local r = bl.train { dataset = data, model = model, batch = b, seed = seed, epochs = 30,
          quiet = true, db = false, optimizer = bl.optim.sgd { lr = lr, momentum = 0 },
          eval_every = "auto", stop_at_target = true, measure_gns = true, gns_ema = 0.5,
          target = { metric = "val_loss", at_most = target } }
        r.params = { batch = b, seed = seed }
        trial[#trial + 1] = r
        steps[#steps + 1] = r.status == "completed" and r.steps_to_target or math.huge
      end
      table.sort(steps)
      trials[#trials + 1] = { runs = trial, lr = lr }
      if steps[2] < math.huge and (not best or steps[2] < best_steps) then
        best, best_steps = trials[#trials], steps[2]
      end
    end
    T.truthy(best, "batch " .. b .. " reached the target")
    for _, t in ipairs(trials) do
      for _, r in ipairs(t.runs) do
        r.tune = { best = t == best, lr = t.lr }
        runs[#runs + 1] = r
      end
    end
  end
  local rec = bl.recommend(runs)
  local b_noise = D + 1 + D * SIGMA ^ 2 / (target - SIGMA ^ 2)
  T.truthy(rec.fit and rec.fit.valid, "a valid fit")
  local fit, gns = rec.fit.b_crit, rec.cbs.gns
  print(("B_crit (fit) %.1f [%.1f, %.1f], R² %.3f; B_simple (measured) %.1f over %d runs; " ..
         "B_noise (analytic, at the target) %.1f"):format(fit, rec.cbs.fit.lo, rec.cbs.fit.hi,
         rec.fit.r2, gns, rec.cbs.gns_runs, b_noise))
  T.eq(rec.cbs.gns_runs, 24, "the 3 counted runs of each of the 8 batches")
  T.truthy(fit / b_noise < 2 and b_noise / fit < 2, "fit within 2× of the analytic B_noise")
  T.truthy(fit / gns < 2 and gns / fit < 2, "fit within 2× of the measured B_simple")
  -- the tuned LR per batch grows with the batch up to the cap, as ε_opt(B) predicts
  T.truthy(rec.by_candidate[1].lr < rec.by_candidate[#rec.by_candidate].lr, "tuned LR grows")
end)

T.done()

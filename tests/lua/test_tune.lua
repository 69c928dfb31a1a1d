-- bl.sweep{tune = {lr = ...}, seeds = / repeats =}: the LR tuned per batch by successive
-- halving, the winner repeated over seeds, r.tune / s.tuned / s.lr_fit, resume of a tuned
-- sweep, bad inputs; bl.fit_lr.
local bl = require "batchlab"
local T = require "bltest"

local data, model = T.data(), T.model()
local base = { dataset = data, model = model, epochs = 2, quiet = true, seed = 1,
               optimizer = bl.optim.sgd { lr = 0.05, momentum = 0.9 },
               lr_scaling = { rule = "linear", base_batch = 32 } }

local tmp = os.tmpname()
os.remove(tmp)
local function fresh(name)
  local path = tmp .. "_" .. name .. ".db"
  for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(path .. suffix) end
  return path
end

local function by_batch(runs, b)
  local out = {}
  for _, r in ipairs(runs) do if r.params.batch == b then out[#out + 1] = r end end
  return out
end

T.test("successive halving per batch, repeats over seeds", function()
  local seen = 0
  local s = bl.sweep { name = "tuned", base = base, vary = { batch = { 16, 64 } },
    tune = { lr = { factors = { 0.5, 1, 2, 4 }, eta = 2 } }, seeds = { 1, 2 },
    on_run = function(r, i, n)
      seen = seen + 1
      T.eq(i, seen)
      T.eq(n, 2 * (4 + 2 + 1 + 1), "planned runs")
    end }
  -- 4 candidates, eta 2: rungs of 4, 2, 1 trials per batch, then one repeat (seed 2)
  T.eq(s.total, 16)
  T.eq(#s.runs, 16)
  T.eq(seen, 16)
  for _, b in ipairs { 16, 64 } do
    local runs = by_batch(s.runs, b)
    T.eq(#runs, 8, "runs of batch " .. b)
    local rungs, counted, trials = { 0, 0, 0 }, {}, 0
    for _, r in ipairs(runs) do
      T.eq(type(r.tune), "table")
      T.truthy(r.tune.factor and r.tune.lr and r.tune.rung and r.tune.trial, "tune fields")
      T.eq(type(r.tune.best), "boolean")
      T.truthy(math.abs(r.tune.lr - r.tune.factor * 0.05 * b / 32) < 1e-12,
        "the scaled LR × the factor")
      T.eq(r.lr, 0.05 * r.tune.factor, "the optimizer's LR × the factor")
      T.eq(r.tune.factor, ({ 0.5, 1, 2, 4 })[r.tune.trial])
      if r.tune.best then counted[#counted + 1] = r else trials = trials + 1 end
      if r.seed == 1 then rungs[r.tune.rung] = rungs[r.tune.rung] + 1 end
    end
    T.eq(rungs[1], 4)
    T.eq(rungs[2], 2)
    T.eq(rungs[3], 1)
    -- counted: the last rung's trial (seed 1) and the repeat (seed 2), same LR
    T.eq(#counted, 2)
    T.eq(trials, 6)
    T.eq(counted[1].seed, 1)
    T.eq(counted[2].seed, 2)
    T.eq(counted[1].params.seed, 1)
    T.eq(counted[1].tune.rung, 3)
    T.eq(counted[1].tune.lr, counted[2].tune.lr)
    T.eq(counted[1].epochs, 2, "the winner ran the full budget")
    -- the first rung ran a quarter of the budget: 0.5 epoch (to the step past it)
    for _, r in ipairs(runs) do
      if r.tune.rung == 1 then
        T.truthy(r.epochs >= 0.5 and r.epochs < 0.5 + b / 500, "rung 1 budget " .. r.epochs)
      elseif r.tune.rung == 2 then
        T.truthy(r.epochs >= 1 and r.epochs < 1 + b / 500, "rung 2 budget " .. r.epochs)
      end
    end
  end
  -- only counted runs are scored and can be best
  for _, r in ipairs(s.runs) do
    T.eq(r.score ~= nil, r.tune.best and r.status == "completed", "score only on counted runs")
  end
  T.truthy(s.best and s.best.tune.best, "the best run counts")
  -- s.tuned: ascending by batch
  T.eq(#s.tuned, 2)
  T.eq(s.tuned[1].batch, 16)
  T.eq(s.tuned[2].batch, 64)
  for _, t in ipairs(s.tuned) do
    local winner = by_batch(s.runs, t.batch)
    for _, r in ipairs(winner) do
      if r.tune.best then T.eq(r.tune.lr, t.lr); T.eq(r.tune.factor, t.factor) end
    end
    T.eq(t.trials, 7)
    T.eq(t.abandoned, 3)
  end
  T.eq(s.lr_fit, nil, "no fit from 2 batch sizes")
end)

T.test("a target: trials ranked by time to target; a diverging LR is dropped", function()
  local s = bl.sweep { name = "target", base = base, vary = { batch = { 32 } },
    target = { metric = "val_accuracy", at_least = 0.5 },
    tune = { lr = { factors = { 1, 1e4 }, rungs = 2 } } }
  -- factor 1e4 diverges at rung 1 and never runs again
  local huge = {}
  for _, r in ipairs(s.runs) do if r.tune.factor == 1e4 then huge[#huge + 1] = r end end
  T.eq(#huge, 1)
  T.eq(huge[1].status, "diverged")
  T.eq(huge[1].tune.best, false)
  T.eq(s.tuned[1].factor, 1)
  T.eq(s.tuned[1].abandoned, 1)
  T.eq(s.best.tune.factor, 1)
  T.eq(s.best.score, s.best.time_to_target)
end)

T.test("an LR range test centres the candidates", function()
  local s = bl.sweep { name = "range", base = base, vary = { batch = { 32 } },
    tune = { lr = { factors = { 0.5, 1 }, rungs = 1,
                     range_test = { steps = 60, from = 1e-3, to = 1e3 } } } }
  local rt = s.runs[1]
  T.eq(rt.tune.range_test, true, "the range test runs first")
  T.eq(rt.tune.best, false, "and does not count")
  T.eq(rt.steps <= 60, true)
  T.truthy(#rt.history >= 5, "a point per step")
  T.truthy(rt.history[2].lr > rt.history[1].lr, "the LR grows")
  T.eq(rt.score, nil)
  local c = rt.tune.centre
  T.truthy(c and c > 1e-3 and c < 1e3, "a centre within the range: " .. tostring(c))
  T.truthy(math.abs(rt.tune.suggested_lr - c * rt.tune.lr) < 1e-12 * rt.tune.suggested_lr)
  T.eq(#s.runs, 3)
  for i = 2, 3 do
    local r = s.runs[i]
    T.truthy(math.abs(r.tune.factor - ({ 0.5, 1 })[r.tune.trial] * c) < 1e-12 * c,
      "factors × the centre")
  end
  T.eq(s.tuned[1].centre, c)
  T.eq(s.tuned[1].trials, 2)
  T.raises(function()
    bl.sweep { base = base, vary = { batch = { 32 } },
               tune = { lr = { range_test = { from = 1, to = 0.5 } } } }
  end, "'tune.lr.range_test'", "0 < from < to")
  T.raises(function()
    bl.sweep { base = base, vary = { batch = { 32 } },
               tune = { lr = { range_test = { step = 9 } } } }
  end, "tune.lr.range_test", "'step'")
end)

T.test("bl.fit_lr and s.lr_fit", function()
  local pts = {}
  for _, b in ipairs { 16, 64, 256, 1024 } do
    pts[#pts + 1] = { batch = b, lr = 0.8 / (1 + 200 / b) }
  end
  local f = bl.fit_lr(pts)
  T.truthy(math.abs(f.eps_max - 0.8) < 1e-9, "eps_max")
  T.truthy(math.abs(f.b_noise - 200) < 1e-6, "b_noise")
  T.eq(f.valid, true)
  T.eq(f.n, 4)
  local none, why = bl.fit_lr { { batch = 16, lr = 0.1 }, { batch = 32, lr = 0.2 } }
  T.eq(none, nil)
  T.contains(why, "at least 3 batch sizes")
  -- an entry without lr (a batch with no winner) is left out; a malformed one raises
  T.eq(select(1, bl.fit_lr { { batch = 16 }, pts[1], pts[2] }), nil)
  T.raises(function() bl.fit_lr { { batch = 0, lr = 0.1 } } end, "entry 1", "batch = B > 0")

  local s = bl.sweep { name = "fit", base = base, vary = { batch = { 16, 32, 64 } },
    tune = { lr = { factors = { 0.5, 1 }, rungs = 1 } } }
  T.eq(#s.tuned, 3)
  T.eq(type(s.lr_fit), "table", "fitted from 3 batch sizes")
  T.eq(s.lr_fit.n, 3)
  local direct = bl.fit_lr(s.tuned)
  T.eq(direct.eps_max, s.lr_fit.eps_max)
  for _, t in ipairs(s.tuned) do T.eq(t.abandoned, 0) end
end)

T.test("resume: a tuned sweep trains nothing new; trials and counted runs stay apart", function()
  local db = fresh("tune")
  local args = { name = "resumed", db = db, base = base, vary = { batch = { 16, 32 } },
                 tune = { lr = { factors = { 0.5, 2 }, eta = 2, range_test = { steps = 20 } } },
                 repeats = 2 }
  local first = bl.sweep(args)
  T.eq(first.resumed, 0)
  local again = bl.sweep(args)
  T.eq(again.total, first.total)
  T.eq(again.resumed, again.total, "every run given back")
  for i, r in ipairs(again.runs) do
    T.eq(r.resumed, true)
    T.eq(r.run_id, first.runs[i].run_id)
    T.eq(r.tune.best, first.runs[i].tune.best)
    T.eq(r.tune.factor, first.runs[i].tune.factor)
  end
  T.eq(again.best.run_id, first.best.run_id)
  T.eq(again.tuned[1].lr, first.tuned[1].lr)
  T.eq(again.tuned[1].centre, first.tuned[1].centre)

  -- the untuned sweep of the winner's LR: the same training as the counted seed-1 run, but
  -- a counted run of a plain sweep is not a trial: trained, not resumed
  local w = first.tuned[1]
  local plain = bl.sweep { name = "resumed", db = db, vary = { batch = { w.batch } },
    base = (function()
      local b = {}
      for k, v in pairs(base) do b[k] = v end
      b.optimizer = bl.optim.sgd { lr = 0.05 * w.factor, momentum = 0.9 }
      return b
    end)() }
  T.eq(plain.resumed, 0)
  -- and a tuned sweep whose only candidate is that LR (one rung: full budget) does not take
  -- the plain run, nor a repeat, as its trial
  local one = bl.sweep { name = "resumed", db = db, base = base, vary = { batch = { w.batch } },
                         tune = { lr = { factors = { w.factor / w.centre }, rungs = 1,
                                         range_test = { steps = 20 } } }, seeds = { 1 } }
  T.eq(one.resumed, 1, "only its range test is given back")
  T.eq(one.runs[1].tune.range_test, true)
end)

T.test("seeds without tune are vary.seed", function()
  local s = bl.sweep { base = base, vary = { batch = { 32 } }, repeats = 2 }
  T.eq(s.total, 2)
  T.eq(s.runs[1].params.seed, 1)
  T.eq(s.runs[2].params.seed, 2)
  T.eq(s.runs[1].tune, nil)
  T.eq(s.tuned, nil)
  local b7 = {}
  for k, v in pairs(base) do b7[k] = v end
  b7.seed = 7
  local r = bl.sweep { base = b7, vary = { batch = { 32 } }, repeats = 2 }
  T.eq(r.runs[2].seed, 8)
  local l = bl.sweep { base = base, vary = { batch = { 32 } }, seeds = { 5, 3 } }
  T.eq(l.runs[1].seed, 5)
  T.eq(l.runs[2].seed, 3)
end)

T.test("bad tune, seeds and repeats inputs name the key", function()
  local function sweep(extra)
    local a = { base = base, vary = { batch = { 32 } } }
    for k, v in pairs(extra) do a[k] = v end
    return function() bl.sweep(a) end
  end
  T.raises(sweep { tune = 3 }, "'tune' must be a table")
  T.raises(sweep { tune = { learning_rate = true } }, "tune", "'learning_rate'")
  T.raises(sweep { tune = { lr = "yes" } }, "'tune.lr' must be true or a table")
  T.raises(sweep { tune = { lr = { factor = { 1 } } } }, "tune.lr", "'factor'", "'factors'")
  T.raises(sweep { tune = { lr = { factors = {} } } }, "'tune.lr.factors'", "non-empty")
  T.raises(sweep { tune = { lr = { factors = { 1, -2 } } } }, "'tune.lr.factors'", "factors[2]")
  T.raises(sweep { tune = { lr = { eta = 1 } } }, "'tune.lr.eta'", "≥ 2")
  T.raises(sweep { tune = { lr = { rungs = 0 } } }, "'tune.lr.rungs'")
  T.raises(sweep { tune = { lr = { rungs = 2.5 } } }, "'tune.lr.rungs'")
  T.raises(sweep { seeds = {} }, "'seeds' must be a non-empty list")
  T.raises(sweep { seeds = { 1, "two" } }, "'seeds'", "seeds[2]")
  T.raises(sweep { repeats = 0 }, "'repeats' must be an integer ≥ 1")
  T.raises(sweep { repeats = 2, seeds = { 1 } }, "'seeds' or 'repeats'")
  T.raises(sweep { tune = { lr = true }, isolate = true }, "'tune'", "isolated runs")
  T.raises(sweep { repeats = 2, vary = { batch = { 32 }, seed = { 1, 2 } } }, "vary.seed")
  -- no budget to divide among rungs
  local nobudget = {}
  for k, v in pairs(base) do nobudget[k] = v end
  nobudget.epochs = nil
  nobudget.max_steps = 20
  local ok = bl.sweep { base = nobudget, vary = { batch = { 32 } },
                        tune = { lr = { factors = { 1, 2 }, eta = 2 } } }
  for _, r in ipairs(ok.runs) do
    if r.tune.rung == 1 then T.eq(r.steps, 10, "max_steps halved") end
  end
  nobudget.max_steps = nil
  nobudget.stop = function(p) return p.epoch >= 1 end
  T.raises(function()
    bl.sweep { base = nobudget, vary = { batch = { 32 } },
               tune = { lr = { factors = { 1, 2 }, eta = 2 } } }
  end, "tune.lr", "budget", "rungs = 1")
end)

T.done()

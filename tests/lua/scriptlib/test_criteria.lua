-- Tests of batchlab.criteria on synthetic sequences of evaluation points.
local T = dofile(((arg and arg[0]) or ""):match("^(.*/)") .. "harness.lua")
local K = require "batchlab.criteria"

local NAN = 0 / 0
local HERE = "test_criteria.lua"

-- Points numbered by step; `field` takes the values in order.
local function points(field, values, extra)
  local list = {}
  for i, v in ipairs(values) do
    local p = { step = i * 100, samples = i * 6400, epoch = i, wall = i * 2.0, batch = 64,
      lr = 0.1, train_loss = 1, train_accuracy = 0.5, val_loss = 1, val_accuracy = 0.5,
      gns = NAN, samples_per_sec = 3200 }
    p[field] = v
    if extra then for k, x in pairs(extra) do p[k] = x end end
    list[i] = p
  end
  return list
end

-- Feeds points to a criterion; returns the index of the first stop and its result.
local function first_stop(crit, list, run)
  for i, p in ipairs(list) do
    local r = crit(p, run)
    if r then return i, r end
  end
  return nil
end

T.test("target at_least / at_most", function()
  local c = K.target { metric = "val_accuracy", at_least = 0.85 }
  local i, r = first_stop(c, points("val_accuracy", { 0.5, 0.8, NAN, 0.85, 0.9 }))
  T.eq(i, 4)
  T.eq(r, "target val_accuracy ≥ 0.85")
  local l = K.target { metric = "val_loss", at_most = 0.3 }
  i, r = first_stop(l, points("val_loss", { 1.0, 0.5, 0.31, 0.29 }))
  T.eq(i, 4)
  T.eq(r, "target val_loss ≤ 0.3")
  T.eq((first_stop(K.target { at_least = 0.99 }, points("val_accuracy", { 0.5, 0.9 }))), nil)
end)

T.test("target: errors", function()
  T.raises(function() K.target { metric = "val_acc", at_least = 0.9 } end,
    "criteria.target: unknown metric 'val_acc' (did you mean 'val_accuracy'?)", HERE)
  T.raises(function() K.target { metric = "val_accuracy" } end, "one of 'at_least', 'at_most' is required", HERE)
  T.raises(function() K.target { at_least = 0.9, at_most = 0.1 } end, "give only one of", HERE)
  T.raises(function() K.target { at_least = "0.9" } end, "'at_least' must be a finite number", HERE)
  T.raises(function() K.target { at_least = 0.9, metrc = "x" } end, "did you mean 'metric'?", HERE)
end)

T.test("patience: absolute delta, min mode by default for losses", function()
  local c = K.patience { metric = "val_loss", patience = 2 }
  local i, r = first_stop(c, points("val_loss", { 1.0, 0.8, 0.9, 0.7, 0.75, 0.71, 0.6 }))
  T.eq(i, 6)
  T.eq(r, "patience: no improvement in val_loss for 2 evaluations")
  -- min_delta: an improvement smaller than it does not count
  local d = K.patience { metric = "val_loss", patience = 2, min_delta = 0.05 }
  T.eq((first_stop(d, points("val_loss", { 1.0, 0.97, 0.96, 0.5 }))), 3)
  -- accuracy: max mode inferred; NaN never improves
  local a = K.patience { metric = "val_accuracy", patience = 1 }
  T.eq((first_stop(a, points("val_accuracy", { 0.5, 0.6, NAN }))), 3)
  -- explicit mode
  local m = K.patience { metric = "train_loss", patience = 1, mode = "max" }
  T.eq((first_stop(m, points("train_loss", { 1.0, 2.0, 1.5 }))), 3)
end)

T.test("patience: starts over on a new run", function()
  local c = K.patience { metric = "val_loss", patience = 2 }
  -- run A: best 0.1, then one point without improvement
  T.eq((first_stop(c, points("val_loss", { 0.5, 0.1, 0.2 }), "A")), nil)
  -- run B (different run value) starts at higher loss: must not inherit A's best
  T.eq((first_stop(c, points("val_loss", { 0.9, 0.8, 0.7 }), "B")), nil)
  -- no run value: the step going back marks the new run
  local d = K.patience { metric = "val_loss", patience = 2 }
  T.eq((first_stop(d, points("val_loss", { 0.5, 0.1, 0.2 }))), nil)
  T.eq((first_stop(d, points("val_loss", { 0.9, 0.8, 0.7 }))), nil)
end)

T.test("plateau: relative delta", function()
  local c = K.plateau { metric = "val_loss", patience = 2, min_delta = 0.1 }
  -- 1.0 → 0.85 improves (> 10 %); 0.85 → 0.8 (< 10 %) and → 0.78 do not
  local i, r = first_stop(c, points("val_loss", { 1.0, 0.85, 0.8, 0.78, 0.5 }))
  T.eq(i, 4)
  T.eq(r, "plateau: val_loss improved by less than 10% for 2 evaluations")
  -- default 1 %
  local d = K.plateau { metric = "val_accuracy", patience = 1 }
  T.eq((first_stop(d, points("val_accuracy", { 0.80, 0.82, 0.825 }))), 3)
  T.raises(function() K.plateau { patience = 0 } end, "criteria.plateau: 'patience' must be an integer ≥ 1", HERE)
  T.raises(function() K.plateau { mode = "up" } end, "'mode' must be one of \"min\", \"max\"", HERE)
end)

T.test("time_budget", function()
  local c = K.time_budget { seconds = 5 }
  local i, r = first_stop(c, points("wall", { 1, 4.9, 5, 6 }))
  T.eq(i, 3)
  T.eq(r, "time budget of 5 s")
  T.eq((first_stop(K.time_budget(10), points("wall", { 1, 11 }))), 2)
  T.raises(function() K.time_budget {} end, "criteria.time_budget: option 'seconds' is required", HERE)
  T.raises(function() K.time_budget { seconds = -1 } end, "greater than 0", HERE)
end)

T.test("divergence", function()
  local c = K.divergence {}
  local i, r = first_stop(c, points("train_loss", { 2.3, 1.0, 0.5, 4.0, 6.0 }))
  T.eq(i, 5)
  T.eq(r, "diverged: train_loss above 10 × its best")
  i, r = first_stop(K.divergence(), points("train_loss", { 2.3, NAN }))
  T.eq(i, 2)
  T.eq(r, "diverged: train_loss is not finite")
  T.eq((first_stop(K.divergence(), points("train_loss", { 2.3, math.huge }))), 2)
  T.eq((first_stop(K.divergence { nan = false }, points("train_loss", { 2.3, NAN, 1 }))), nil)
  T.eq((first_stop(K.divergence { factor = 2, metric = "val_loss" }, points("val_loss", { 1, 0.5, 1.01 }))), 3)
  T.raises(function() K.divergence { factor = 1 } end, "criteria.divergence: 'factor' must be greater than 1", HERE)
end)

T.test("any: first reason wins, all criteria stay current", function()
  local c = K.any {
    K.target { metric = "val_accuracy", at_least = 0.9 },
    K.patience { metric = "val_accuracy", patience = 2 },
    K.time_budget { seconds = 100 },
  }
  local i, r = first_stop(c, points("val_accuracy", { 0.5, 0.6, 0.55, 0.58 }))
  T.eq(i, 4)
  T.eq(r, "patience: no improvement in val_accuracy for 2 evaluations")
  local both = K.any { K.time_budget { seconds = 1 }, K.target { at_least = 0.1 } }
  T.eq(select(2, first_stop(both, points("val_accuracy", { 0.5 }))), "time budget of 1 s")
  local plain = K.any { function(p) return p.step >= 300 end }
  T.eq(select(2, first_stop(plain, points("val_accuracy", { 1, 2, 3, 4 }))), true)
  T.raises(function() K.any {} end, "criteria.any: expected a non-empty list of criteria", HERE)
  T.raises(function() K.any { 3 } end, "element 1 is a number, not a criterion function", HERE)
end)

T.test("all: every criterion must agree", function()
  local c = K.all { K.time_budget { seconds = 4 }, K.target { metric = "val_accuracy", at_least = 0.8 } }
  local i, r = first_stop(c, points("val_accuracy", { 0.9, 0.7, 0.85 }))
  T.eq(i, 3)
  T.eq(r, "time budget of 4 s and target val_accuracy ≥ 0.8")
end)

T.test("metrics list", function()
  for _, m in ipairs(K.metrics) do
    T.eq(type(K.target { metric = m, at_least = 0 }), "function")
  end
end)

T.done()

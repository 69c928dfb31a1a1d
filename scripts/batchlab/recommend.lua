--- batchlab.recommend — a batch size recommendation from the runs of a sweep.
--
--   recommend(runs [, opts]) → { batch =, reason =, ... } | nil, message
--   fit_steps(points)        → { s_min =, e_min =, b_crit =, r2 =, ... }
--
-- (The module itself is callable: `require("batchlab.recommend")(runs)`.)
--
-- `runs` is a list of run result tables (or a sweep object with a `runs` field). Each run's
-- batch is `params.batch` or `batch`; it has a `status` ("completed" counts; a missing status
-- counts as completed), `time_to_target` and `steps_to_target` (NaN, nil or negative when
-- the target was not reached) and `final.val_accuracy`. Runs whose batch is not a number (a
-- schedule) are left out.
--
-- The rule:
--
--  1. Among completed runs that reached the target, the batch with the lowest median
--     time-to-target over its runs wins (ties go to the smaller batch).
--  2. If no run reached the target, the batch of the completed run with the best final
--     `val_accuracy` (or `opts.metric`, with `opts.higher_better`) wins.
--
-- When steps-to-target is known for at least 3 batch sizes, the explanation also fits
-- S(B) = S_min + E_min / B by least squares on 1/B (McCandlish et al. 2018; Shallue et al.
-- 2018), using per batch the fewest steps any of its runs needed, and reports the critical
-- batch size B_crit = E_min / S_min: below it training is in the perfect-scaling regime
-- (doubling the batch halves the steps), above it in the regime of diminishing returns.
--
-- The result: `batch`, `reason` (one paragraph), `basis` ("time_to_target" or the metric),
-- `run` (a representative run of that batch), `by_batch` (one summary per batch size, sorted:
-- batch, runs, completed, reached, time_to_target (median), steps_to_target (min), best value
-- of the metric), and `fit` (the fit_steps result, when made).
--
-- @module batchlab.recommend

local C = require "batchlab._check"
local tables = require "batchlab.tables"

local M = {}

local type, format, huge = type, string.format, math.huge
local get = tables.get

local function finite(v)
  return type(v) == "number" and v == v and v ~= huge and v ~= -huge
end

local function median(list)
  local t = {}
  for i = 1, #list do t[i] = list[i] end
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

local function seconds(v) return tables.format_value(v, "seconds") end

local function num(v)
  if math.abs(v) >= 100 then return format("%.0f", v) end
  return format("%.3g", v)
end

--- Least-squares fit of S = S_min + E_min · (1/B) to points {batch = B, steps = S}.
-- @param points list of at least 2 points with distinct batches
-- @return table: s_min, e_min, r2, n, valid (S_min > 0 and E_min > 0) and, when valid,
--   b_crit = E_min / S_min; or nil and a message
function M.fit_steps(points)
  local who = "recommend.fit_steps"
  if type(points) ~= "table" then C.fail(who, "expected a list of {batch =, steps =}, got " .. C.typename(points)) end
  local n = #points
  local sx, sy = 0, 0
  for i = 1, n do
    local p = points[i]
    if type(p) ~= "table" or not finite(p.batch) or p.batch <= 0 or not finite(p.steps) then
      C.fail(who, format("point %d must be {batch = B > 0, steps = S}", i))
    end
    sx, sy = sx + 1 / p.batch, sy + p.steps
  end
  if n < 2 then return nil, "need at least 2 batch sizes to fit S(B) = S_min + E_min/B" end
  local mx, my = sx / n, sy / n
  local sxx, sxy, syy = 0, 0, 0
  for i = 1, n do
    local dx, dy = 1 / points[i].batch - mx, points[i].steps - my
    sxx, sxy, syy = sxx + dx * dx, sxy + dx * dy, syy + dy * dy
  end
  if sxx == 0 then return nil, "all points have the same batch size" end
  local e_min = sxy / sxx
  local s_min = my - e_min * mx
  local ss_res = 0
  for i = 1, n do
    local r = points[i].steps - (s_min + e_min / points[i].batch)
    ss_res = ss_res + r * r
  end
  local r2 = syy > 0 and 1 - ss_res / syy or 1
  local fit = { s_min = s_min, e_min = e_min, r2 = r2, n = n, valid = s_min > 0 and e_min > 0 }
  if fit.valid then fit.b_crit = e_min / s_min end
  return fit
end

local function is_completed(r)
  local s = get(r, "status")
  return s == nil or s == "completed"
end

local function metric_of(r, metric)
  local v = get(get(r, "final"), metric)
  if v == nil then v = get(r, metric) end
  return v
end

local function list_batches(bs)
  local parts = {}
  for i, b in ipairs(bs) do parts[i] = tostring(b) end
  if #parts == 1 then return "batch " .. parts[1] end
  return "batches " .. table.concat(parts, ", ", 1, #parts - 1) .. " and " .. parts[#parts]
end

--- Groups the runs by batch size.
local function summarize(runs, metric, higher)
  local groups, order = {}, {}
  for _, r in ipairs(runs) do
    local b = get(get(r, "params"), "batch")
    if b == nil then b = get(r, "batch") end
    if finite(b) then
      local g = groups[b]
      if not g then
        g = { batch = b, runs = 0, completed = 0, reached = 0, times = {}, steps = {} }
        groups[b] = g
        order[#order + 1] = g
      end
      g.runs = g.runs + 1
      if is_completed(r) then
        g.completed = g.completed + 1
        g.any_run = g.any_run or r
        local t, s = get(r, "time_to_target"), get(r, "steps_to_target")
        if finite(t) and t >= 0 then
          g.reached = g.reached + 1
          g.times[#g.times + 1] = t
          if not g.fastest_run or t < get(g.fastest_run, "time_to_target") then g.fastest_run = r end
        end
        if finite(s) and s >= 0 and (g.steps_to_target == nil or s < g.steps_to_target) then
          g.steps_to_target = s
        end
        local v = metric_of(r, metric)
        if finite(v) and (g.metric == nil or (higher and v > g.metric) or (not higher and v < g.metric)) then
          g.metric, g.metric_run = v, r
        end
      end
    end
  end
  table.sort(order, function(a, b) return a.batch < b.batch end)
  for _, g in ipairs(order) do
    if #g.times > 0 then g.time_to_target = median(g.times) end
  end
  return order
end

--- The paragraph about the fit, or nil when fewer than 3 batch sizes have steps-to-target.
local function fit_sentence(by_batch, chosen)
  local points = {}
  for _, g in ipairs(by_batch) do
    if g.steps_to_target then points[#points + 1] = { batch = g.batch, steps = g.steps_to_target } end
  end
  if #points < 3 then return nil, nil end
  local fit = M.fit_steps(points)
  if not fit then return nil, nil end
  local lo, hi = points[1].batch, points[#points].batch
  if not fit.valid then
    if fit.e_min > 0 then
      -- S_min ≤ 0: the steps fell like 1/B across the whole range
      return fit, format("Steps-to-target fell in proportion to 1/B across all %d batch sizes " ..
        "(%s to %s; fitting S(B) = S_min + E_min/B gives S_min ≈ %s, i.e. none measurable): " ..
        "training is in the perfect-scaling regime throughout, and the critical batch size, " ..
        "where diminishing returns begin, lies above %s. Larger batches are worth trying if " ..
        "they keep the time per step.", fit.n, tostring(lo), tostring(hi), num(fit.s_min),
        tostring(hi))
    end
    return fit, format("Steps-to-target did not fall as the batch grew from %s to %s (fitting " ..
      "S(B) = S_min + E_min/B gives E_min ≈ %s ≤ 0): every batch measured is in the regime of " ..
      "diminishing returns, so the critical batch size lies below %s and smaller batches " ..
      "cost no more steps.", tostring(lo), tostring(hi), num(fit.e_min), tostring(lo))
  end
  local bc = fit.b_crit
  local text = format("Fitting steps-to-target S(B) = S_min + E_min/B over %d batch sizes gives " ..
    "S_min ≈ %s steps and E_min ≈ %s samples (R² = %.3f), so the critical batch size is " ..
    "B_crit = E_min/S_min ≈ %s. Below B_crit training is in the perfect-scaling regime: " ..
    "doubling the batch nearly halves the steps to the target. Above it lies the regime of " ..
    "diminishing returns: the steps approach S_min and a larger batch mostly spends more samples.",
    fit.n, num(fit.s_min), num(fit.e_min), fit.r2, num(bc))
  if bc > hi or bc < lo then
    text = text .. format(" (B_crit lies outside the batch sizes measured, %s to %s: an " ..
      "extrapolation.)", tostring(lo), tostring(hi))
  end
  if chosen then
    local r = tonumber(format("%.2g", chosen / bc))   -- as shown: "2×" is "close to", not above
    local where
    if r < 0.5 then
      where = format("Batch %s is %s× B_crit, in the perfect-scaling regime: a larger batch " ..
        "would need proportionally fewer steps, so it may pay off if it keeps the time per step.",
        tostring(chosen), num(r))
    elseif r <= 2 then
      where = format("Batch %s is close to B_crit (%s×), where the two regimes meet and steps " ..
        "and samples are traded evenly.", tostring(chosen), num(r))
    else
      where = format("Batch %s is %s× B_crit, in the diminishing-returns regime: its lead comes " ..
        "from faster steps on this machine, not from needing fewer samples.", tostring(chosen), num(r))
    end
    text = text .. " " .. where
  end
  return fit, text
end

--- Recommends a batch size (see the module header).
-- @param runs list of run results (or a sweep with `runs`)
-- @param opts optional: `metric` (fallback metric, default "val_accuracy"), `higher_better`
--   (default true for accuracies, false otherwise)
-- @return table, or nil and a message when no completed run has a numeric batch
function M.recommend(runs, opts)
  local who = "recommend"
  if type(runs) == "table" and #runs == 0 and get(runs, "runs") ~= nil then runs = runs.runs end
  if type(runs) ~= "table" then C.fail(who, "expected a list of runs, got " .. C.typename(runs)) end
  opts = opts or {}
  C.options(who, opts, { "metric", "higher_better" })
  local metric = opts.metric or "val_accuracy"
  if type(metric) ~= "string" then C.fail(who, "'metric' must be a string") end
  local higher = opts.higher_better
  if higher == nil then higher = metric:find("accuracy", 1, true) ~= nil end

  local by_batch = summarize(runs, metric, higher)
  local candidates, never = {}, {}
  local completed = 0
  for _, g in ipairs(by_batch) do
    completed = completed + g.completed
    if g.time_to_target then candidates[#candidates + 1] = g
    elseif g.completed > 0 then never[#never + 1] = g.batch end
  end
  if completed == 0 then
    return nil, "recommend: no completed run with a numeric batch size to recommend from"
  end

  local result = { by_batch = by_batch }
  local parts = {}
  if #candidates > 0 then
    table.sort(candidates, function(a, b)
      if a.time_to_target ~= b.time_to_target then return a.time_to_target < b.time_to_target end
      return a.batch < b.batch
    end)
    local best = candidates[1]
    result.batch, result.basis, result.run = best.batch, "time_to_target", best.fastest_run
    result.time_to_target = best.time_to_target
    local how = best.reached > 1 and format("a median time-to-target of %s over %d runs",
      seconds(best.time_to_target), best.reached) or format("a time-to-target of %s",
      seconds(best.time_to_target))
    parts[1] = format("Batch %s reached the target fastest, with %s", tostring(best.batch), how)
    if best.reached < best.runs then
      parts[1] = parts[1] .. format(" (%d of its %d runs reached it)", best.reached, best.runs)
    end
    local second = candidates[2]
    if second then
      parts[1] = parts[1] .. format("; the next best, batch %s, took %s (%.0f%% longer).",
        tostring(second.batch), seconds(second.time_to_target),
        (second.time_to_target / best.time_to_target - 1) * 100)
    else
      parts[1] = parts[1] .. "; no other batch size reached the target."
    end
    if #never > 0 and second then
      parts[#parts + 1] = format("%s never reached it.", (list_batches(never):gsub("^b", "B")))
    end
  else
    local best
    for _, g in ipairs(by_batch) do
      if g.metric ~= nil and (best == nil or (higher and g.metric > best.metric)
          or (not higher and g.metric < best.metric)) then
        best = g
      end
    end
    if best == nil then
      local g = by_batch[1]
      for _, x in ipairs(by_batch) do
        if x.completed > 0 then g = x; break end
      end
      result.batch, result.basis, result.run = g.batch, metric, g.any_run
      parts[1] = format("No run reached the target and none reports %s; batch %s is only the " ..
        "smallest completed batch size, not a measured choice.", metric, tostring(g.batch))
    else
      result.batch, result.basis, result.run = best.batch, metric, best.metric_run
      result[metric] = best.metric
      local shown = metric:find("accuracy", 1, true) and tables.format_value(best.metric, "percent")
        or num(best.metric)
      parts[1] = format("No run reached the target; batch %s had the best final %s (%s), so it " ..
        "is the safest choice until a longer budget or a lower target separates the batch sizes.",
        tostring(best.batch), metric, shown)
    end
  end

  local fit, text = fit_sentence(by_batch, result.batch)
  result.fit = fit
  if text then parts[#parts + 1] = text end
  result.reason = table.concat(parts, " ")
  return result
end

return setmetatable(M, { __call = function(_, ...) return M.recommend(...) end })

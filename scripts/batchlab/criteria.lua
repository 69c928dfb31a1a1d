--- batchlab.criteria — stop criteria for training runs.
--
-- A **criterion** is a function `function(point, run) → stop` called at every evaluation
-- point of a run (pass it as `stop =` to `bl.train`). It returns
--
--  * `false` or `nil` to go on,
--  * a string to stop, naming the reason (it becomes the run's `stopped_by`),
--  * `true` to stop without a particular reason.
--
-- `point` is the evaluation point: `step`, `samples`, `epoch` (fractional), `wall` (training
-- seconds, evaluation excluded), `batch`, `lr`, `train_loss`, `train_accuracy`, `val_loss`,
-- `val_accuracy`, `gns`, `samples_per_sec`; values not measured are NaN. `run` identifies the
-- run the point belongs to (the same value for all points of one run); it may be nil.
--
-- The criteria made here keep state (the best value so far, evaluations without improvement).
-- They start over by themselves when a new run begins — when `run` differs from the previous
-- call's, or when the point's `step` or `samples` goes back — so one criterion can serve the
-- runs of a sweep one after the other. Options are checked when the criterion is made;
-- a mistake raises "criteria.<name>: ...". NaN values never count as an improvement and
-- never reach a target.
--
-- Metric names: val_accuracy, val_loss, train_loss, train_accuracy, gns, samples_per_sec, lr,
-- batch, wall, epoch, step, samples. Accuracy and throughput are "higher is better"; the rest
-- "lower is better" unless `mode` says otherwise.
--
-- @module batchlab.criteria
-- @usage
--   local criteria = require "batchlab.criteria"
--   local stop = criteria.any {
--     criteria.target { metric = "val_accuracy", at_least = 0.88 },
--     criteria.patience { metric = "val_loss", patience = 3 },
--     criteria.time_budget { seconds = 300 },
--   }

local C = require "batchlab._check"

local M = {}

local type, format, huge = type, string.format, math.huge

local METRICS = { "val_accuracy", "val_loss", "train_loss", "train_accuracy", "gns",
  "samples_per_sec", "lr", "batch", "wall", "epoch", "step", "samples" }
local HIGHER_BETTER = { val_accuracy = true, train_accuracy = true, samples_per_sec = true }
M.metrics = METRICS

--- The metric option checked against the known names (with a "did you mean").
local function metric_of(who, opts, default, level)
  level = (level or 2) + 1
  local m = opts.metric
  if m == nil then return default end
  if type(m) ~= "string" then C.fail(who, "'metric' must be a string, got " .. C.typename(m), level) end
  for _, n in ipairs(METRICS) do
    if n == m then return m end
  end
  local hint = C.nearest(m, METRICS)
  C.fail(who, format("unknown metric '%s'%s (metrics: %s)", m,
    hint and format(" (did you mean '%s'?)", hint) or "", table.concat(METRICS, ", ")), level)
end

--- Returns a function(point, run) → true when the point starts a new run.
local function new_run_detector()
  local last_run, last_step, last_samples = nil, -1, -1
  return function(p, run)
    local step, samples = p.step or 0, p.samples or 0
    local fresh = (run ~= last_run) or step < last_step or samples < last_samples
    last_run, last_step, last_samples = run, step, samples
    return fresh
  end
end

------------------------------------------------------------------------------------------------

--- Stops when `metric` reaches a value: `at_least` (metric ≥ value) or `at_most` (≤ value).
-- @param opts `metric` (default "val_accuracy"), exactly one of `at_least` / `at_most`
-- @return criterion whose reason is e.g. "target val_accuracy ≥ 0.88"
function M.target(opts)
  local who = "criteria.target"
  C.options(who, opts, { "metric", "at_least", "at_most" })
  local metric = metric_of(who, opts, "val_accuracy")
  local key, value = C.one_of(who, opts, { "at_least", "at_most" }, true)
  C.number(who, opts, key)
  if key == "at_least" then
    local reason = format("target %s ≥ %g", metric, value)
    return function(p)
      local x = p[metric]
      if x ~= nil and x >= value then return reason end
      return false
    end
  end
  local reason = format("target %s ≤ %g", metric, value)
  return function(p)
    local x = p[metric]
    if x ~= nil and x <= value then return reason end
    return false
  end
end

--- Shared by patience and plateau: stop after `patience` evaluation points in a row without
-- an improvement of `min_delta` (absolute, or relative to |best| when `relative`).
local function no_improvement(who, opts, relative, default_delta)
  C.options(who, opts, { "metric", "patience", "min_delta", "mode" }, 3)
  local metric = metric_of(who, opts, "val_loss", 3)
  local patience = C.count(who, opts, "patience", { default = 3 }, 3)
  local delta = C.number(who, opts, "min_delta", { default = default_delta, ge = 0 }, 3)
  local mode = C.choice(who, opts, "mode", { "min", "max" },
    HIGHER_BETTER[metric] and "max" or "min", 3)
  local short = who:match("%.(.*)$")
  local reason
  if delta == 0 then
    reason = format("%s: no improvement in %s for %d evaluation%s", short, metric, patience,
      patience == 1 and "" or "s")
  else
    reason = format("%s: %s improved by less than %s for %d evaluation%s", short, metric,
      relative and format("%g%%", delta * 100) or format("%g", delta), patience,
      patience == 1 and "" or "s")
  end
  local maximize = mode == "max"
  local fresh = new_run_detector()
  local best, wait = nil, 0
  return function(p, run)
    if fresh(p, run) then best, wait = nil, 0 end
    local x = p[metric]
    local improved = false
    if x ~= nil and x == x then
      if best == nil then
        improved = true
      else
        local d = relative and delta * (best < 0 and -best or best) or delta
        if maximize then improved = x > best + d else improved = x < best - d end
      end
    end
    if improved then
      best, wait = x, 0
      return false
    end
    wait = wait + 1
    if wait >= patience then return reason end
    return false
  end
end

--- Early stopping: stops after `patience` evaluation points in a row in which `metric` did
-- not improve on its best by more than `min_delta`.
-- @param opts `metric` (default "val_loss"), `patience` (default 3), `min_delta` (absolute,
--   default 0), `mode` ("min" or "max"; default from the metric)
function M.patience(opts)
  local c = no_improvement("criteria.patience", opts, false, 0)  -- not a tail call: keeps error levels
  return c
end

--- Like `patience`, with `min_delta` relative to the best value: an improvement must beat
-- best by min_delta · |best| (default 0.01, i.e. 1 %).
function M.plateau(opts)
  local c = no_improvement("criteria.plateau", opts, true, 0.01)  -- not a tail call: keeps error levels
  return c
end

--- Stops once the run has trained for `seconds` (training time `point.wall`; evaluation
-- time is not counted).
function M.time_budget(opts)
  local who = "criteria.time_budget"
  if type(opts) == "number" then opts = { seconds = opts } end
  C.options(who, opts, { "seconds" })
  local seconds = C.number(who, opts, "seconds", { required = true, gt = 0 })
  local reason = format("time budget of %g s", seconds)
  return function(p)
    local w = p.wall
    if w ~= nil and w >= seconds then return reason end
    return false
  end
end

--- Stops a run whose loss blows up: when `metric` is NaN or infinite (with `nan`, default
-- true) or exceeds `factor` times its lowest value so far.
-- @param opts `metric` (default "train_loss"), `factor` (> 1, default 10), `nan` (default true)
function M.divergence(opts)
  local who = "criteria.divergence"
  opts = opts or {}
  C.options(who, opts, { "metric", "factor", "nan" })
  local metric = metric_of(who, opts, "train_loss")
  local factor = C.number(who, opts, "factor", { default = 10, gt = 1 })
  local nan = opts.nan
  if nan == nil then nan = true end
  if type(nan) ~= "boolean" then C.fail(who, "'nan' must be a boolean") end
  local reason_nan = format("diverged: %s is not finite", metric)
  local reason_big = format("diverged: %s above %g × its best", metric, factor)
  local fresh = new_run_detector()
  local best = nil
  return function(p, run)
    if fresh(p, run) then best = nil end
    local x = p[metric]
    if x == nil then return false end
    if x ~= x or x == huge or x == -huge then
      if nan then return reason_nan end
      return false
    end
    if best ~= nil and best > 0 and x > factor * best then return reason_big end
    if best == nil or x < best then best = x end
    return false
  end
end

local function check_list(who, list)
  if not C.is_list(list) or #list == 0 then
    C.fail(who, "expected a non-empty list of criteria", 3)
  end
  for i = 1, #list do
    local c = list[i]
    local mt = type(c) == "table" and getmetatable(c) or nil
    if type(c) ~= "function" and not (mt and mt.__call) then
      C.fail(who, format("element %d is a %s, not a criterion function", i, C.typename(c)), 3)
    end
  end
  local copy = {}
  for i = 1, #list do copy[i] = list[i] end
  return copy
end

--- Stops when any of the criteria says stop; the first one (in list order) gives the reason.
-- All criteria before it are called at every point, so their state stays current.
function M.any(list)
  local cs = check_list("criteria.any", list)
  local n = #cs
  return function(p, run)
    for i = 1, n do
      local r = cs[i](p, run)
      if r then return r end
    end
    return false
  end
end

--- Stops when all of the criteria say stop at the same point; the reason joins theirs.
-- Every criterion is called at every point.
function M.all(list)
  local cs = check_list("criteria.all", list)
  local n = #cs
  local results = {}
  return function(p, run)
    local stop = true
    for i = 1, n do
      local r = cs[i](p, run)
      results[i] = r
      if not r then stop = false end
    end
    if not stop then return false end
    local reasons = {}
    for i = 1, n do
      if type(results[i]) == "string" then reasons[#reasons + 1] = results[i] end
    end
    if #reasons == 0 then return true end
    return table.concat(reasons, " and ")
  end
end

return M

--- batchlab.schedules — batch-size schedules written in Lua.
--
-- A **schedule** decides the batch size of the next training step from the training state.
-- It is either
--
--  * a function `function(state) return batch [, lr_factor] end`, or
--  * a callable table (a table whose metatable has `__call(self, state)` returning the same),
--    which may carry these optional fields:
--      - `max_batch` (integer): the largest batch it can return. The engine sizes its buffers
--        once for it; a plain function needs `max_batch` given to `bl.train` instead.
--      - `name` (string): shown in progress lines, tables and the store.
--      - `needs_gns` (boolean): true when it reads `state.gns`, so the engine measures the
--        gradient noise scale.
--
-- The engine calls the schedule before every step with `state`, a table with the fields
-- `step` (steps done, 0 before the first), `epoch` (completed epochs), `epoch_progress`
-- (fractional epochs done), `samples` (training samples processed), `train_size` (samples per
-- epoch), `wall` (training seconds), `batch` (batch of the previous step), `lr` (effective LR
-- of the previous step), `gns` (smoothed gradient noise scale B_simple, NaN until measured)
-- and `last` (the latest evaluation point, nil before the first). The schedule returns an
-- integer batch ≥ 1 and optionally a factor on the learning rate (1 when omitted).
--
-- Every constructor here returns a callable table with `max_batch` and `name`. The built-in
-- schedules `constant`, `step`, `smith`, `linear_ramp`, `exponential_ramp`, `warmup`, `gns`
-- and `breakpoints` are thin wrappers over the scheduler plugins of the same names (plugins/schedulers): the
-- same options, defaults, error messages and batch sizes (`name` aside, a display name the
-- plugin does not see). `piecewise` — a list of breakpoint tables, which plugin options (flat
-- name = value pairs) cannot hold — and `wrap` are Lua's own; they validate their options when
-- called (a mistake raises "schedules.<name>: ..."). None allocates per step.
--
-- A schedule that keeps state between calls (`gns`) starts over when it sees step 0 or the
-- step count go back (a new run), so one object can serve several runs of a sweep in turn.
-- (`bl.train` also accepts a table with a `next(state)` function and the same fields, and
-- `bl.scheduler(name, opts)` makes a fresh schedule per run from a constructor found by name.)
--
-- Named schedules: `schedules.get(name)` returns the constructor of a built-in schedule or of a
-- module `batchlab.schedules.<name>` found on `package.path` (for example
-- `scripts/batchlab/schedules/warmup_double.lua`), which returns `function(opts) → schedule`.
--
-- @module batchlab.schedules
-- @usage
--   local schedules = require "batchlab.schedules"
--   local s = schedules.step { batch = 64, factor = 2, milestones = {2, 4}, max = 512 }
--   s(state)        --> 64 before epoch 2, 128 from epoch 2, 256 from epoch 4
--   s.max_batch     --> 256

local C = require "batchlab._check"
local util = require("batchlab")._util

local M = {}

local type, format, floor = type, string.format, math.floor
local setmetatable, getmetatable, tointeger = setmetatable, getmetatable, math.tointeger

-- Epoch milestones are compared with a tiny tolerance so that an epoch_progress computed as
-- samples / train_size that lands a hair under an integer still counts.
local EPS = 1e-9

--- A function of the state returning the schedule's clock in `unit`.
local function clock_of(unit)
  if unit == "epochs" then
    return function(s)
      local e, c = s.epoch_progress, s.epoch
      if e == nil or (c ~= nil and c > e) then e = c end
      return (e or 0) + EPS
    end
  elseif unit == "steps" then
    return function(s) return s.step or 0 end
  end
  return function(s) return s.samples or 0 end
end

local function describe(self)
  return format("schedule %s (max batch %s)", tostring(self.name), tostring(self.max_batch))
end

--- Makes a schedule object: a table with `name`, `max_batch` and the extra `fields`, called
-- through `call(self, state)`.
local function new(name, max_batch, call, fields)
  local obj = fields or {}
  obj.name, obj.max_batch = name, max_batch
  return setmetatable(obj, { __call = call, __tostring = describe, __name = "batchlab.schedule" })
end

--- True when `v` can be used as a schedule: a function or a callable table/userdata.
function M.is_schedule(v)
  local t = type(v)
  if t == "function" then return true end
  if t == "table" or t == "userdata" then
    local mt = getmetatable(v)
    return type(mt) == "table" and mt.__call ~= nil
  end
  return false
end

--- Turns a plain function into a schedule object.
-- @param fn `function(state) → batch [, lr_factor]`
-- @param info table: `max_batch` (required), `name` (default "lua"), `needs_gns`
function M.wrap(fn, info)
  local who = "schedules.wrap"
  if type(fn) ~= "function" then
    C.fail(who, "expected a function(state) as argument 1, got " .. C.typename(fn))
  end
  C.options(who, info, { "max_batch", "name", "needs_gns" })
  local mb = C.count(who, info, "max_batch", { required = true,
    hint = " (the engine sizes its buffers for the largest batch)" })
  local name = info.name or "lua"
  return new(name, mb, function(_, s) return fn(s) end, { needs_gns = info.needs_gns and true or nil })
end

local function check_name(who, opts, default, level)
  local name = opts.name
  if name == nil then return default end
  if type(name) ~= "string" or name == "" then
    C.fail(who, "'name' must be a non-empty string", (level or 2) + 1)
  end
  return name
end

------------------------------------------------------------------------------------------------

--- A built-in schedule that is the scheduler plugin `plugin` (plugins/schedulers): its
-- options, defaults, errors and batch sizes, as a callable table. `name` (a display name) is
-- the one option the plugin does not see.
local function from_plugin(who, plugin, opts, level)
  level = (level or 2) + 1
  if type(opts) ~= "table" then
    C.fail(who, "expected a table of options, got " .. C.typename(opts), level)
  end
  local name = check_name(who, opts, plugin, level)
  local copy = {}
  for k, v in pairs(opts) do
    if k ~= "name" then copy[k] = v end
  end
  local obj, err = util.schedule(plugin, copy)
  if not obj then error(err, level) end
  return new(name, obj.max_batch, function(_, s) return obj(s) end,
    { needs_gns = obj.needs_gns or nil })
end

--- A constant batch: the "constant" plugin.
-- @param b the batch (or a table `{batch = b [, name =]}`)
function M.constant(b)
  if type(b) ~= "table" or getmetatable(b) ~= nil then b = { batch = b } end
  local s = from_plugin("schedules.constant", "constant", b)  -- not a tail call: keeps error levels
  return s
end

--- Step schedule: multiply the batch by `factor` at each milestone, capped at `max`: the
-- "step" plugin.
-- @param opts `batch` (default 128), `factor` (default 2), `milestones` (increasing; none: a
--   constant batch), `unit` ("epochs" (default), "steps" or "samples"), `max` (a cap; 0: none),
--   `name`
function M.step(opts)
  local s = from_plugin("schedules.step", "step", opts)  -- not a tail call: keeps error levels
  return s
end

--- Smith et al. 2017, "Don't decay the learning rate, increase the batch size": at each
-- milestone where a step LR schedule would divide the LR by `factor`, multiply the batch by
-- `factor` instead; past the cap `max`, the batch goes as far as the cap allows and the LR
-- decays by the remaining factor. The "smith" plugin: after n milestones the batch is
-- B = min(round(batch · factor^n), max) and the LR factor B / (batch · factor^n).
-- @param opts `batch` (default 128), `factor` (> 1, default 5), `milestones` (default
--   {60, 120, 160}, the paper's), `unit` (as for `step`), `max` (0: none), `name`
-- @return schedule returning `batch, lr_factor`
function M.smith(opts)
  local s = from_plugin("schedules.smith", "smith", opts)
  return s
end

--- Linear ramp of the batch from `start` to `stop` over a length, then `stop`: the
-- "linear_ramp" plugin. Every batch is the multiple of `multiple` nearest to the ramp's value
-- (`start` and `stop` must be multiples); `stop` < `start` ramps down.
-- @param opts `start`, `stop` (required), one of `epochs` / `steps` / `samples` (the length of
--   the ramp, required), `multiple` (default 1), `name`
function M.linear_ramp(opts)
  local s = from_plugin("schedules.linear_ramp", "linear_ramp", opts)  -- keeps error levels
  return s
end

--- Exponential (geometric) ramp: batch = start · (stop/start)^p at progress p of the length
-- (equal factors per equal progress), rounded to the nearest multiple of `multiple`; `stop`
-- afterwards. The "exponential_ramp" plugin.
-- @param opts as for `linear_ramp`
function M.exponential_ramp(opts)
  local s = from_plugin("schedules.exponential_ramp", "exponential_ramp", opts)
  return s
end

--- Batch warmup: grow the batch linearly from `start` to `batch` over the warmup length, then
-- keep `batch`: the "warmup" plugin. (For the Goyal et al. LR warmup use
-- `lr_scaling.warmup_epochs` of `bl.train`.)
-- @param opts `batch`, `start` (required), one of `epochs` / `steps` / `samples` (required),
--   `multiple` (default 1), `name`
function M.warmup(opts)
  local s = from_plugin("schedules.warmup", "warmup", opts)
  return s
end

--- A piecewise-constant batch (and LR factor) from a table: the "breakpoints" plugin. From
-- each breakpoint `at[i]` on (in `unit`: "samples" (default), "steps" or "epochs") the batch is
-- `batch[i]` and the LR factor `lr[i]` (1 when `lr` is not given); before `at[1]` the first
-- entry holds. What `bl.critical_batch` derives (its `schedule` is the plugin itself).
-- @param opts `at`, `batch` (required, one per breakpoint), `lr`, `unit`, `name`
function M.breakpoints(opts)
  local s = from_plugin("schedules.breakpoints", "breakpoints", opts)  -- keeps error levels
  return s
end

local PIECE_KEYS = { epoch = "epochs", step = "steps", samples = "samples" }

--- Piecewise-constant schedule from a list of breakpoints, all keyed by the same unit:
-- `{ {epoch = 0, batch = 32}, {epoch = 2, batch = 128, lr = 0.5}, ... }` (or `step =`,
-- `samples =`). From each breakpoint on, its `batch` (and its LR factor `lr`, default 1) holds;
-- before the first breakpoint the first entry's values hold. A string field `name` may sit
-- next to the list.
function M.piecewise(points)
  local who = "schedules.piecewise"
  if type(points) ~= "table" then
    C.fail(who, "expected a list of breakpoints {epoch|step|samples = t, batch = b}, got " .. C.typename(points))
  end
  local k = #points
  for key in pairs(points) do
    if not (math.type(key) == "integer" and key >= 1 and key <= k) and key ~= "name" then
      C.fail(who, format("unexpected key '%s' (give a list of breakpoints and optionally 'name')", tostring(key)))
    end
  end
  if k == 0 then C.fail(who, "give at least one breakpoint {epoch = 0, batch = b}") end
  local unit_key
  local at, bs, lrs, has_lr, mb = {}, {}, {}, false, 0
  for i = 1, k do
    local p = points[i]
    local where = format("%s (breakpoint %d)", who, i)
    C.options(where, p, { "epoch", "step", "samples", "batch", "lr" })
    local key, t = C.one_of(where, p, { "epoch", "step", "samples" }, true)
    if unit_key == nil then unit_key = key
    elseif key ~= unit_key then
      C.fail(where, format("uses '%s' but breakpoint 1 uses '%s'; use one unit for all", key, unit_key))
    end
    if not C.is_finite(t) or t < 0 or (i > 1 and t <= at[i - 1]) then
      C.fail(who, format("breakpoints must be increasing: %s = %s at breakpoint %d", key, tostring(t), i))
    end
    at[i] = t
    bs[i] = C.count(where, p, "batch", { required = true })
    lrs[i] = C.number(where, p, "lr", { default = 1.0, gt = 0 })
    if p.lr ~= nil then has_lr = true end
    if bs[i] > mb then mb = bs[i] end
  end
  local clock = clock_of(PIECE_KEYS[unit_key])
  local name = check_name(who, points, "piecewise")
  if has_lr then
    return new(name, mb, function(_, s)
      local t, n = clock(s), 1
      for i = 2, k do
        if t >= at[i] then n = i else break end
      end
      return bs[n], lrs[n]
    end)
  end
  return new(name, mb, function(_, s)
    local t, n = clock(s), 1
    for i = 2, k do
      if t >= at[i] then n = i else break end
    end
    return bs[n]
  end)
end

--- Adaptive batch from the gradient noise scale (McCandlish et al. 2018): the "gns" plugin.
-- The batch follows k · state.gns, rounded to the nearest multiple of `multiple` and clamped
-- to [min, max]; it stays at `batch` until the noise scale is measured, changes at most once
-- every `every` steps, never decreases with `monotonic`, and starts over at step 0 or when
-- the step goes back (a new run).
-- @param opts `max` (default 4096), `k` (default 1), `min` (default: the smallest multiple of
--   `multiple` ≥ 16, at most `max`), `multiple` (default 1), `every` (steps, default 50),
--   `batch` (initial, default `min`), `monotonic` (default true), `name`
function M.gns(opts)
  local s = from_plugin("schedules.gns", "gns", opts)  -- not a tail call: keeps error levels
  return s
end

------------------------------------------------------------------------------------------------

local BUILTIN = {
  constant = M.constant, step = M.step, smith = M.smith, linear_ramp = M.linear_ramp,
  exponential_ramp = M.exponential_ramp, warmup = M.warmup, piecewise = M.piecewise, gns = M.gns,
  breakpoints = M.breakpoints,
}

--- The constructor of the schedule called `name`: a built-in one above, or the function
-- returned by the module `batchlab.schedules.<name>` on `package.path`.
-- @return constructor, or nil and a message when there is none
function M.get(name)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    return nil, "schedules.get: a schedule name is letters, digits and '_', got " ..
      (type(name) == "string" and ('"' .. name .. '"') or C.typename(name))
  end
  if BUILTIN[name] then return BUILTIN[name] end
  local modname = "batchlab.schedules." .. name
  if not package.loaded[modname] and not package.searchpath(modname, package.path) then
    local names = {}
    for n in pairs(BUILTIN) do names[#names + 1] = n end
    table.sort(names)
    local hint = C.nearest(name, names)
    return nil, format("no schedule named '%s'%s: not built in (%s) and no module %s on package.path",
      name, hint and format(" (did you mean '%s'?)", hint) or "", table.concat(names, ", "), modname)
  end
  local ctor = require(modname)
  if not M.is_schedule(ctor) then
    return nil, format("module %s must return a constructor function(opts), returned %s",
      modname, C.typename(ctor))
  end
  return ctor
end

--- Creates the schedule `name` with `opts` (see `get`); raises when there is none.
function M.create(name, opts)
  local ctor, err = M.get(name)
  if not ctor then error(err, 2) end
  return ctor(opts)
end

return M

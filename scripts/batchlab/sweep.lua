--- batchlab.sweep — building the configurations of a sweep.
--
-- Helpers that make lists of values or of parameter tables for `bl.sweep` (its `vary`) or
-- for a loop over `bl.train`:
--
--  * `powers_of_two(lo, hi)` — {lo, 2·lo, …, hi}.
--  * `grid(space [, base])` — the cartesian product of lists, in a deterministic order.
--  * `random_search{space, n, seed [, base]}` — n random configurations from distributions,
--    drawn with this module's own seeded generator (xoshiro256** seeded through splitmix64),
--    so the same seed gives the same configurations whatever else uses `math.random`.
--  * `rng(seed)` — that generator, for scripts of your own.
--  * `scaled_lr(base_lr, base_batch, batch [, rule])` — the learning rate for a batch under a
--    scaling rule: "linear" (Goyal et al. 2017), "sqrt" (Hoffer et al. 2017) or "none".
--
-- Mistakes raise "sweep.<function>: ...".
--
-- @module batchlab.sweep
-- @usage
--   local sweep = require "batchlab.sweep"
--   sweep.powers_of_two(16, 128)          --> {16, 32, 64, 128}
--   sweep.grid { batch = {32, 64}, seed = {1, 2} }
--     --> {{batch=32,seed=1}, {batch=32,seed=2}, {batch=64,seed=1}, {batch=64,seed=2}}
--   sweep.random_search { space = { lr = { log_uniform = {1e-4, 1e-1} },
--                                   batch = { choice = {32, 64} } }, n = 20, seed = 1 }
--   sweep.scaled_lr(0.05, 128, 512, "linear")   --> 0.2

local C = require "batchlab._check"
local util = require("batchlab")._util

local M = {}

local type, format, floor, tointeger = type, string.format, math.floor, math.tointeger
local log, exp = math.log, math.exp

local function shallow_copy(t, into)
  into = into or {}
  if t then
    for k, v in pairs(t) do into[k] = v end
  end
  return into
end

local function sorted_keys(who, t, level)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      C.fail(who, format("keys must be parameter names (strings), got %s %s", C.typename(k),
        tostring(k)), level + 1)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

------------------------------------------------------------------------------------------------

--- The powers of two from `lo` to `hi` inclusive; both must be powers of two with lo ≤ hi.
function M.powers_of_two(lo, hi)
  local who = "sweep.powers_of_two"
  local function check(v, which)
    local i = type(v) == "number" and tointeger(v) or nil
    if i == nil or i < 1 or (i & (i - 1)) ~= 0 then
      C.fail(who, format("%s (%s) must be a power of two ≥ 1", which,
        type(v) == "number" and tostring(v) or C.typename(v)), 3)
    end
    return i
  end
  local a, b = check(lo, "lo"), check(hi, "hi")
  if a > b then C.fail(who, format("lo (%d) must be ≤ hi (%d)", a, b)) end
  local out, v = {}, a
  while v <= b do
    out[#out + 1] = v
    v = v * 2
  end
  return out
end

--- The cartesian product of the lists in `space`: one table per combination, each also
-- holding the fields of `base` (copied). Order: keys sorted by name; the first key varies
-- slowest, the last fastest (like nested loops in key order).
-- @param space table name → non-empty list of values
-- @param base optional table of fixed fields
-- @return list of tables
function M.grid(space, base)
  local who = "sweep.grid"
  if type(space) ~= "table" then
    C.fail(who, "expected a table name → list of values, got " .. C.typename(space))
  end
  if base ~= nil and type(base) ~= "table" then
    C.fail(who, "'base' (argument 2) must be a table, got " .. C.typename(base))
  end
  local keys = sorted_keys(who, space, 2)
  for _, k in ipairs(keys) do
    local vs = space[k]
    if not C.is_list(vs) or #vs == 0 then
      C.fail(who, format("'%s' must be a non-empty list of values (write {v} for a single value)", k))
    end
  end
  local lens = {}
  for _, k in ipairs(keys) do lens[k] = #space[k] end
  local out = {}
  for i, at in ipairs(util.grid(lens)) do     -- the sweep's own order (engine/sweep.c)
    local row = shallow_copy(base)
    for k, j in pairs(at) do row[k] = space[k][j] end
    out[i] = row
  end
  return out
end

------------------------------------------------------------------------------------------------
-- The generator: xoshiro256** (Blackman & Vigna) on Lua 5.4's 64-bit wrapping integers,
-- its state filled from the seed by splitmix64.

local Rng = {}
Rng.__index = Rng
Rng.__name = "batchlab.rng"

local function splitmix64(x)
  x = x + 0x9e3779b97f4a7c15
  local z = x
  z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * 0x94d049bb133111eb
  return x, z ~ (z >> 31)
end
M.splitmix64 = splitmix64

--- A new generator seeded with the integer `seed` (default 1).
function M.rng(seed)
  if seed == nil then seed = 1 end
  local s = type(seed) == "number" and tointeger(seed) or nil
  if s == nil then
    C.fail("sweep.rng", "the seed must be an integer, got " ..
      (type(seed) == "number" and tostring(seed) or C.typename(seed)))
  end
  local self = setmetatable({}, Rng)
  local x = s
  x, self[1] = splitmix64(x)
  x, self[2] = splitmix64(x)
  x, self[3] = splitmix64(x)
  x, self[4] = splitmix64(x)
  return self
end

--- The next 64-bit output as a Lua integer (all 64 bits; may be negative).
function Rng:next()
  local s0, s1, s2, s3 = self[1], self[2], self[3], self[4]
  local x = s1 * 5
  x = (x << 7) | (x >> 57)
  local result = x * 9
  local t = s1 << 17
  s2 = s2 ~ s0
  s3 = s3 ~ s1
  s1 = s1 ~ s2
  s0 = s0 ~ s3
  s2 = s2 ~ t
  s3 = (s3 << 45) | (s3 >> 19)
  self[1], self[2], self[3], self[4] = s0, s1, s2, s3
  return result
end

--- A float uniform in [0, 1) with 53 random bits.
function Rng:random()
  return (self:next() >> 11) * 0x1p-53
end

--- A float uniform in [a, b).
function Rng:uniform(a, b)
  return a + (b - a) * self:random()
end

--- A float whose logarithm is uniform in [log a, log b) (a, b > 0).
function Rng:log_uniform(a, b)
  local la = log(a)
  return exp(la + (log(b) - la) * self:random())
end

--- An integer uniform in [lo, hi] (inclusive).
function Rng:integer(lo, hi)
  return lo + floor(self:random() * (hi - lo + 1))
end

--- A uniformly chosen element of a non-empty list.
function Rng:choice(list)
  return list[1 + floor(self:random() * #list)]
end

local DISTRIBUTIONS = { "uniform", "log_uniform", "int_uniform", "choice" }

--- Checks one entry of a random-search space; returns a sampler kind and its parameters.
local function distribution(who, key, spec)
  if type(spec) ~= "table" then return "constant", spec end
  local kind
  for k in pairs(spec) do
    if kind ~= nil or type(k) ~= "string" then kind = false; break end
    kind = k
  end
  local known = false
  for _, d in ipairs(DISTRIBUTIONS) do
    if kind == d then known = true end
  end
  if not known then
    C.fail(who, format("'%s' must be one of {uniform = {a, b}}, {log_uniform = {a, b}}, " ..
      "{int_uniform = {a, b}}, {choice = {v1, v2, …}} or a fixed value", key), 3)
  end
  local args = spec[kind]
  if kind == "choice" then
    if not C.is_list(args) or #args == 0 then
      C.fail(who, format("'%s': choice needs a non-empty list", key), 3)
    end
    return kind, args
  end
  local a, b = type(args) == "table" and args[1], type(args) == "table" and args[2]
  if not (C.is_finite(a) and C.is_finite(b)) or a > b then
    C.fail(who, format("'%s': %s needs {low, high} with low ≤ high", key, kind), 3)
  end
  if kind == "log_uniform" and a <= 0 then
    C.fail(who, format("'%s': log_uniform needs 0 < low ≤ high", key), 3)
  end
  if kind == "int_uniform" and (not tointeger(a) or not tointeger(b)) then
    C.fail(who, format("'%s': int_uniform needs integer bounds", key), 3)
  end
  return kind, args
end

--- `n` random configurations drawn from `space`.
-- @param opts `space` (name → {uniform = {a, b}} | {log_uniform = {a, b}} |
--   {int_uniform = {a, b}} | {choice = {…}} | a fixed value), `n` (count), `seed` (integer,
--   default 1), `base` (optional fixed fields copied into each configuration)
-- @return list of n tables; the same seed and space always give the same list. Keys are drawn
--   in sorted order, one draw per key per configuration.
function M.random_search(opts)
  local who = "sweep.random_search"
  C.options(who, opts, { "space", "n", "seed", "base" })
  local space = opts.space
  if type(space) ~= "table" then
    C.fail(who, "'space' must be a table name → distribution, got " .. C.typename(space))
  end
  local n = C.count(who, opts, "n", { required = true })
  if opts.base ~= nil and type(opts.base) ~= "table" then
    C.fail(who, "'base' must be a table, got " .. C.typename(opts.base))
  end
  local keys = sorted_keys(who, space, 2)
  local kinds, args = {}, {}
  for i, k in ipairs(keys) do kinds[i], args[i] = distribution(who, k, space[k]) end
  local rng = M.rng(opts.seed == nil and 1 or C.count(who, opts, "seed", { min = math.mininteger }))
  local out = {}
  for j = 1, n do
    local row = shallow_copy(opts.base)
    for i, k in ipairs(keys) do
      local kind, a = kinds[i], args[i]
      local v
      if kind == "constant" then v = a
      elseif kind == "uniform" then v = rng:uniform(a[1], a[2])
      elseif kind == "log_uniform" then v = rng:log_uniform(a[1], a[2])
      elseif kind == "int_uniform" then v = rng:integer(tointeger(a[1]), tointeger(a[2]))
      else v = rng:choice(a) end
      row[k] = v
    end
    out[j] = row
  end
  return out
end

------------------------------------------------------------------------------------------------

--- The learning rate for `batch` when `base_lr` suits `base_batch`:
-- "linear": base_lr · batch / base_batch (Goyal et al. 2017); "sqrt": base_lr ·
-- sqrt(batch / base_batch) (Hoffer et al. 2017); "none": base_lr.
function M.scaled_lr(base_lr, base_batch, batch, rule)
  local who = "sweep.scaled_lr"
  if not C.is_finite(base_lr) or base_lr <= 0 then
    C.fail(who, "base_lr (argument 1) must be a positive number, got " .. tostring(base_lr))
  end
  if not C.is_finite(base_batch) or base_batch <= 0 then
    C.fail(who, "base_batch (argument 2) must be a positive number, got " .. tostring(base_batch))
  end
  if not C.is_finite(batch) or batch <= 0 then
    C.fail(who, "batch (argument 3) must be a positive number, got " .. tostring(batch))
  end
  rule = rule or "linear"
  if rule == "linear" or rule == "sqrt" or rule == "none" then
    return base_lr * util.lr_scale(rule, batch, base_batch)   -- bl.train's rule (lr.c)
  end
  C.fail(who, format('rule (argument 4) must be "linear", "sqrt" or "none", got %s',
    type(rule) == "string" and ('"' .. rule .. '"') or C.typename(rule)))
end

return M

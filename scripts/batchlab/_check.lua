--- batchlab._check — argument checks shared by the batchlab Lua library (internal).
--
-- Every check raises `error("<who>: <what is wrong>", level)` so that the message names the
-- function the user called and the position points at the user's call. `level` means what it
-- would mean to `error` called in place of the check: 2 (the default) blames the caller of the
-- function that runs the check — the user's call of a constructor.
--
-- Not part of the public API: names and signatures may change.
-- @module batchlab._check

local util = require("batchlab")._util

local M = {}

local type, pairs, ipairs, tostring, format = type, pairs, ipairs, tostring, string.format
local math_type = math.type

--- The entry of `names` nearest to `name`, or nil when none is close: the rule of every
-- "did you mean" in batchlab (C's bl_nearest_name: a name of 3 or more characters that begins
-- an entry abbreviates it, else at most 3 edits).
function M.nearest(name, names)
  return util.nearest(name, names)
end

--- A short description of a value's type for messages: "number", "string", "nil", "integer".
function M.typename(v)
  local t = type(v)
  if t == "number" and v ~= v then return "NaN" end
  return t
end

--- Raises "<who>: <message>" at `level` (as for the checks: default 2).
function M.fail(who, message, level)
  error(who .. ": " .. message, (level or 2) + 1)
end

--- Checks that `opts` is a table whose string keys are all in `allowed` (a list of names);
-- an unknown key raises with the nearest allowed name. Returns opts.
function M.options(who, opts, allowed, level)
  level = (level or 2) + 1
  if type(opts) ~= "table" then
    error(format("%s: expected a table of options, got %s", who, M.typename(opts)), level)
  end
  local set = {}
  for _, k in ipairs(allowed) do set[k] = true end
  for k in pairs(opts) do
    if type(k) == "string" and not set[k] then
      local hint = M.nearest(k, allowed)
      error(format("%s: unknown option '%s'%s (options: %s)", who, k,
        hint and format(" (did you mean '%s'?)", hint) or "", table.concat(allowed, ", ")), level)
    end
  end
  return opts
end

local function is_finite(v)
  return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge
end
M.is_finite = is_finite

--- A finite number option. `required` makes nil an error; otherwise nil gives `default`.
-- `min_excl` / `min_incl` / `max_incl` bound the value when given.
function M.number(who, opts, key, spec, level)
  level = (level or 2) + 1
  spec = spec or {}
  local v = opts[key]
  if v == nil then
    if spec.required then
      error(format("%s: option '%s' is required%s", who, key, spec.hint or ""), level)
    end
    return spec.default
  end
  if not is_finite(v) then
    error(format("%s: '%s' must be a finite number, got %s", who, key,
      type(v) == "number" and tostring(v) or M.typename(v)), level)
  end
  if spec.gt ~= nil and not (v > spec.gt) then
    error(format("%s: '%s' must be greater than %s, got %s", who, key, tostring(spec.gt), tostring(v)), level)
  end
  if spec.ge ~= nil and not (v >= spec.ge) then
    error(format("%s: '%s' must be at least %s, got %s", who, key, tostring(spec.ge), tostring(v)), level)
  end
  if spec.le ~= nil and not (v <= spec.le) then
    error(format("%s: '%s' must be at most %s, got %s", who, key, tostring(spec.le), tostring(v)), level)
  end
  return v
end

--- A positive integer option (a float with an integral value is accepted and converted).
function M.count(who, opts, key, spec, level)
  level = (level or 2) + 1
  spec = spec or {}
  local v = opts[key]
  if v == nil then
    if spec.required then
      error(format("%s: option '%s' is required%s", who, key, spec.hint or ""), level)
    end
    return spec.default
  end
  local i = type(v) == "number" and math.tointeger(v) or nil
  local min = spec.min or 1
  if i == nil or i < min then
    error(format("%s: '%s' must be an integer ≥ %d, got %s", who, key, min,
      type(v) == "number" and tostring(v) or M.typename(v)), level)
  end
  return i
end

--- A string option restricted to `choices` (a list); nil gives `default`.
function M.choice(who, opts, key, choices, default, level)
  level = (level or 2) + 1
  local v = opts[key]
  if v == nil then return default end
  for _, c in ipairs(choices) do
    if v == c then return v end
  end
  error(format("%s: '%s' must be one of %s, got %s", who, key,
    '"' .. table.concat(choices, '", "') .. '"',
    type(v) == "string" and ('"' .. v .. '"') or M.typename(v)), level)
end

--- True when `t` is a sequence 1..n with no other keys (n may be 0).
function M.is_list(t)
  if type(t) ~= "table" then return false end
  local n = #t
  for k in pairs(t) do
    if math_type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

--- Exactly one of `keys` present in opts; returns that key and its value (or nil, nil when
-- none and not required).
function M.one_of(who, opts, keys, required, level)
  level = (level or 2) + 1
  local found
  for _, k in ipairs(keys) do
    if opts[k] ~= nil then
      if found then
        error(format("%s: give only one of '%s' and '%s'", who, found, k), level)
      end
      found = k
    end
  end
  if not found and required then
    error(format("%s: one of '%s' is required", who, table.concat(keys, "', '")), level)
  end
  if found then return found, opts[found] end
  return nil, nil
end

return M

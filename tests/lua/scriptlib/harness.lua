-- A small test harness for the batchlab Lua library tests (plain lua5.4, no dependencies).
--
--   local T = dofile((arg and arg[0] or ""):match("^(.*/)") .. "harness.lua")
--   T.test("name", function() T.eq(1 + 1, 2) end)
--   T.done()   -- prints "N passed, M failed" and exits 1 when anything failed

local T = { passed = 0, failed = 0 }

local format = string.format

local function show(v)
  if type(v) == "string" then return format("%q", v) end
  if math.type(v) == "float" then return format("%.17g", v) end
  return tostring(v)
end

local function fail(msg, level)
  error(msg, (level or 1) + 2)
end

--- Runs one named test; an error inside counts as a failure and is printed.
function T.test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    T.passed = T.passed + 1
  else
    T.failed = T.failed + 1
    io.stderr:write(format("FAIL %s\n  %s\n", name, tostring(err):gsub("\n", "\n  ")))
  end
end

function T.eq(got, want, what)
  if got ~= want then
    fail(format("%sexpected %s, got %s", what and (what .. ": ") or "", show(want), show(got)))
  end
end

function T.truthy(v, what)
  if not v then fail(format("%sexpected a true value, got %s", what and (what .. ": ") or "", show(v))) end
end

function T.near(got, want, tol, what)
  tol = tol or 1e-9
  if type(got) ~= "number" or math.abs(got - want) > tol * math.max(1, math.abs(want)) then
    fail(format("%sexpected %s ± %g, got %s", what and (what .. ": ") or "", show(want), tol, show(got)))
  end
end

--- Deep equality of plain tables and values.
local function deep_eq(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not deep_eq(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
T.deep_eq = deep_eq

local function dump(v)
  if type(v) ~= "table" then return show(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(x, y)
    if type(x) == type(y) and (type(x) == "number" or type(x) == "string") then return x < y end
    return type(x) < type(y)
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = (math.type(k) == "integer" and "" or (tostring(k) .. "=")) .. dump(v[k])
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end
T.dump = dump

function T.same(got, want, what)
  if not deep_eq(got, want) then
    fail(format("%sexpected %s, got %s", what and (what .. ": ") or "", dump(want), dump(got)))
  end
end

--- Calls fn and expects an error whose message contains `pattern` (plain text). Returns the
-- message. When `file` is given, also expects the message to point at that file (the
-- caller's position), i.e. the error level is right.
function T.raises(fn, pattern, file)
  local ok, err = pcall(fn)
  if ok then fail("expected an error containing " .. show(pattern) .. ", got none") end
  err = tostring(err)
  if pattern and not err:find(pattern, 1, true) then
    fail(format("expected an error containing %s, got %s", show(pattern), show(err)))
  end
  if file and not err:match("^[^:]*" .. file:gsub("%p", "%%%0") .. ":%d+: ") then
    fail(format("expected the error to point at %s, got %s", file, show(err)))
  end
  return err
end

--- Memory allocated (KiB) by calling fn n times with the collector stopped.
function T.allocated(fn, n)
  collectgarbage("collect")
  collectgarbage("stop")
  local before = collectgarbage("count")
  fn(n)
  local after = collectgarbage("count")
  collectgarbage("restart")
  return after - before
end

function T.done()
  print(format("%d passed, %d failed", T.passed, T.failed))
  if T.failed > 0 then os.exit(1) end
end

return T

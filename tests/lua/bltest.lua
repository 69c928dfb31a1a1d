--- bltest — the little harness of the tests/lua scripts (run by `batchlab run`, which puts
-- the script's directory on package.path, so `local T = require "bltest"` finds this file).
--
--   T.test("name", function() T.eq(1 + 1, 2) end)
--   T.done()   -- prints "N passed, M failed"; exits 1 when anything failed
--
-- It also makes the small synthetic data and model every test uses, so each test takes
-- seconds.

local bl = require "batchlab"

local T = { passed = 0, failed = 0 }
local format = string.format

local function show(v)
  if type(v) == "string" then return format("%q", v) end
  if math.type(v) == "float" then return format("%.17g", v) end
  return tostring(v)
end

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
    error(format("%sexpected %s, got %s", what and (what .. ": ") or "", show(want), show(got)), 2)
  end
end

function T.truthy(v, what)
  if not v then error(format("%sexpected a true value, got %s", what and (what .. ": ") or "", show(v)), 2) end
end

--- Asserts that `s` (a string) contains `needle` (plain text).
function T.contains(s, needle, what)
  if type(s) ~= "string" or not s:find(needle, 1, true) then
    error(format("%sexpected a string containing %q, got %s", what and (what .. ": ") or "",
      needle, show(s)), 2)
  end
end

--- Calls fn(...) and asserts that it raises an error whose message contains every needle.
function T.raises(fn, ...)
  local needles = { ... }
  local ok, err = pcall(fn)
  if ok then error("expected an error, got none", 2) end
  for _, n in ipairs(needles) do
    if not tostring(err):find(n, 1, true) then
      error(format("error %q lacks %q", tostring(err), n), 2)
    end
  end
  return err
end

function T.done()
  print(format("%d passed, %d failed", T.passed, T.failed))
  if T.failed > 0 then os.exit(1) end
end

--- Small synthetic data: 3 Gaussian blobs in 8 dimensions, 500 training samples.
function T.data(extra)
  local opts = { samples = 600, validation = 100, test = 100, dim = 8, classes = 3, seed = 7 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return bl.dataset("synthetic", opts)
end

function T.model()
  return bl.model("mlp", { hidden = { 16 } })
end

--- A bl.train configuration over the shared data and model, with `extra` merged in.
function T.cfg(data, model, extra)
  local c = { dataset = data, model = model, seed = 1, epochs = 2, batch = 32, quiet = true,
              optimizer = bl.optim.sgd { lr = 0.1, momentum = 0.9 } }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

return T

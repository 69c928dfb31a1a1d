-- A batch function's identity in the stored configuration (issue 14, found 3): runs that
-- differ only in their batch function — a literal or an upvalue — never resume each other,
-- while the same function (also a fresh closure of the same code, as in a rerun of the same
-- script) does.
local bl = require "batchlab"
local T = require "bltest"

local data, model = T.data(), T.model()
local db = os.tmpname()
os.remove(db)

local function train(fn, label)
  return bl.train(T.cfg(data, model, { db = db, experiment = "fi", resume = true,
                                       label = label or "fn", batch = fn, max_batch = 256,
                                       epochs = 0.1 }))
end

-- the same chunk text compiled twice: two closures of one function, as in two runs of a script
local src = "local k = ... ; return function(state) return k end"
local function closure(k) return assert(load(src, "=schedule.lua"))(k) end

T.test("a literal 16 and a literal 256 are different functions", function()
  local a = train(function() return 16 end)
  T.eq(a.status, "completed")
  T.eq(a.resumed, nil)
  local b = train(function() return 256 end)
  T.eq(b.resumed, nil, "returning 256 resumed the run returning 16")
  T.truthy(b.run_id ~= a.run_id, "a new run")
  T.eq(b.max_batch_used, 256)
end)

T.test("an upvalue of 16 and of 256 are different functions", function()
  local a = train(closure(16), "up")
  T.eq(a.resumed, nil)
  local b = train(closure(256), "up")
  T.eq(b.resumed, nil, "upvalue 256 resumed the run with upvalue 16")
  T.truthy(b.run_id ~= a.run_id, "a new run")
end)

T.test("the same function, compiled again, resumes", function()
  local first = train(closure(32), "same")
  T.eq(first.resumed, nil)
  local again = train(closure(32), "same")
  T.eq(again.resumed, true, "the same function did not resume")
  T.eq(again.run_id, first.run_id)
end)

for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(db .. suffix) end
T.done()

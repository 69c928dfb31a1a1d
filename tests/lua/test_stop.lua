-- Stop criteria: a reason string, true, false/nil; an error inside ends that run (status
-- "failed", the Lua message with its position in `error`) and the script continues.
local bl = require "batchlab"
local T = require "bltest"
local criteria = require "batchlab.criteria"

local data, model = T.data(), T.model()

T.test("stop with a reason", function()
  local r = bl.train(T.cfg(data, model, { epochs = 5, stop = function(p, run)
    if p.epoch >= 2 then return "enough" end
  end }))
  T.eq(r.status, "completed")
  T.eq(r.stopped_by, "enough")
  T.eq(#r.history, 2)
end)

T.test("stop with true, and the run argument", function()
  local runs = {}
  local r = bl.train(T.cfg(data, model, { epochs = 5, label = "x", stop = function(p, run)
    runs[#runs + 1] = run
    T.eq(run.label, "x")
    T.eq(run.history[#run.history], p, "the current point is the last of run.history")
    return p.epoch >= 3
  end }))
  T.eq(r.stopped_by, "stop")
  T.eq(#r.history, 3)
  T.eq(runs[1], runs[3], "one run table for the whole run")
  T.eq(runs[1], r, "and bl.train returns it")
end)

T.test("an error in the criterion fails that run only", function()
  local r = bl.train(T.cfg(data, model, { epochs = 3, stop = function(p)
    if p.epoch >= 2 then error("criterion broke") end
    return false
  end }))
  T.eq(r.status, "failed")
  T.eq(r.stopped_by, "error")
  T.contains(r.error, "criterion broke")
  T.contains(r.error, "test_stop.lua:")
  T.contains(r.error, "traceback")
  T.eq(#r.history, 2, "the point where it failed is recorded")
  -- the script continues, and the next run is fine
  local ok = bl.train(T.cfg(data, model, { epochs = 1 }))
  T.eq(ok.status, "completed")
end)

T.test("a runtime error (not error()) in the criterion", function()
  local r = bl.train(T.cfg(data, model, { epochs = 2, stop = function(p)
    return p.nonexistent.field
  end }))
  T.eq(r.status, "failed")
  T.contains(r.error, "attempt to index")
end)

T.test("a bad return value fails the run", function()
  local r = bl.train(T.cfg(data, model, { epochs = 2, stop = function() return 42 end }))
  T.eq(r.status, "failed")
  T.contains(r.error, "returned a number")
end)

T.test("an error in on_point fails the run", function()
  local r = bl.train(T.cfg(data, model, { epochs = 2, on_point = function() error("observer") end }))
  T.eq(r.status, "failed")
  T.contains(r.error, "observer")
end)

T.test("batchlab.criteria work as stop", function()
  local r = bl.train(T.cfg(data, model, { epochs = 10,
    stop = criteria.any { criteria.target { metric = "val_accuracy", at_least = 0.5 },
                          criteria.patience { patience = 2 } } }))
  T.eq(r.status, "completed")
  T.contains(r.stopped_by, "target val_accuracy")
end)

T.done()

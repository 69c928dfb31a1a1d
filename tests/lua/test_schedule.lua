-- Lua batch schedules: called once per step with the state; bad values and errors end the
-- run (status "failed", message in `error`) without raising.
local bl = require "batchlab"
local T = require "bltest"
local schedules = require "batchlab.schedules"

local data, model = T.data(), T.model()

T.test("called once per step, with the state", function()
  local calls, steps_seen, last_seen = 0, {}, nil
  local state_obj
  local r = bl.train(T.cfg(data, model, { max_batch = 64, batch = function(s)
    calls = calls + 1
    state_obj = state_obj or s
    T.eq(s, state_obj, "the same state table every call")
    steps_seen[#steps_seen + 1] = s.step
    T.eq(s.train_size, 500)
    T.eq(math.type(s.step), "integer")
    if s.step == 0 then
      T.eq(s.last, nil, "no point before the first evaluation")
    end
    if s.epoch >= 1 then last_seen = s.last end
    return s.epoch == 0 and 32 or 64
  end }))
  T.eq(r.status, "completed", r.error)
  T.eq(calls, r.steps, "one call per step")
  for i, st in ipairs(steps_seen) do T.eq(st, i - 1, "state.step") end
  T.eq(r.batch, "function")
  T.eq(r.max_batch_used, 64)
  T.truthy(last_seen, "state.last after the first point")
  T.eq(last_seen.epoch, 1.0)
  T.eq(type(last_seen.val_loss), "number")
end)

T.test("lr factor", function()
  local r = bl.train(T.cfg(data, model, { epochs = 1, max_batch = 32,
    batch = function(s) return 32, 0.5 end }))
  T.eq(r.status, "completed", r.error)
  T.truthy(math.abs(r.final.lr - 0.05) < 1e-12, "lr halved: " .. r.final.lr)
end)

local function failed_with(batch_fn, ...)
  local r = bl.train(T.cfg(data, model, { epochs = 1, max_batch = 64, batch = batch_fn }))
  T.eq(r.status, "failed")
  T.eq(r.stopped_by, "error")
  for _, needle in ipairs { ... } do T.contains(r.error, needle) end
  return r
end

T.test("bad values fail the run", function()
  failed_with(function() return nil end, "returned nil", "test_schedule.lua")
  failed_with(function() return 0 end, "returned batch 0")
  failed_with(function() return 2.5 end, "2.5")
  failed_with(function() return 65 end, "65", "max_batch")
  failed_with(function() return "32" end, "returned string")
  failed_with(function() return 32, "fast" end, "LR factor")
  failed_with(function() return 32, -1 end, "LR factor")
  -- the script goes on after each
  T.eq(1 + 1, 2)
end)

T.test("an error in the schedule fails the run with the message and position", function()
  local r = failed_with(function(s)
    if s.step == 5 then error("schedule exploded") end
    return 16
  end, "schedule exploded", "test_schedule.lua:")
  T.eq(r.steps, 5, "the steps before the error were done")
end)

T.test("schedule objects from batchlab.schedules", function()
  local s = schedules.step { batch = 16, factor = 2, milestones = { 1 }, max = 64 }
  local r = bl.train(T.cfg(data, model, { batch = s }))    -- max_batch declared by the object
  T.eq(r.status, "completed", r.error)
  T.eq(r.batch, "step")
  T.eq(r.max_batch_used, 32)
  local g = schedules.gns { max = 64, min = 8 }
  local rg = bl.train(T.cfg(data, model, { batch = g, epochs = 1 }))
  T.eq(rg.status, "completed", rg.error)
  T.eq(type(rg.final.gns), "number")
  T.truthy(rg.final.gns == rg.final.gns, "needs_gns turns measurement on (not NaN)")
  local w = schedules.wrap(function() return 8 end, { max_batch = 8, name = "eight" })
  T.eq(bl.train(T.cfg(data, model, { batch = w, epochs = 1 })).batch, "eight")
  -- a table with `next`
  local t = { max_batch = 16, next = function(st) return 16 end }
  T.eq(bl.train(T.cfg(data, model, { batch = t, epochs = 1 })).max_batch_used, 16)
  T.raises(function() bl.train(T.cfg(data, model, { batch = {} })) end, "expected a schedule")
end)

T.test("bl.scheduler: plugins and Lua schedules by name", function()
  local p = bl.scheduler("step", { batch = 16, milestones = { 1 }, max = 64 })
  local r = bl.train(T.cfg(data, model, { batch = p }))
  T.eq(r.status, "completed", r.error)
  T.eq(r.batch, "step")
  T.eq(r.max_batch_used, 32)
  local l = bl.scheduler("linear_ramp", { start = 8, stop = 64, epochs = 1 })
  local r2 = bl.train(T.cfg(data, model, { batch = l }))
  T.eq(r2.status, "completed", r2.error)
  T.eq(r2.batch, "linear_ramp")
  T.eq(r2.max_batch_used, 64)
  -- a schedule module on package.path (scripts/batchlab/schedules/warmup_double.lua)
  local wd = bl.scheduler("warmup_double", { batch = 32, max = 64, warmup = 1 })
  local r3 = bl.train(T.cfg(data, model, { batch = wd }))
  T.eq(r3.status, "completed", r3.error)
  -- each run gets a fresh schedule from the same spec
  local r4 = bl.train(T.cfg(data, model, { batch = wd }))
  T.eq(r4.steps, r3.steps)
  -- bad options are reported when the scheduler is made
  T.raises(function() bl.scheduler("linear_ramp", { start = 8 }) end, "stop")
end)

T.test("errors inside the run fail it, they do not raise", function()
  local s = bl.scheduler("step", { batch = 600, milestones = { 1 } })
  local r = bl.train(T.cfg(data, model, { batch = s, drop_last = true, epochs = 1 }))
  T.eq(r.status, "failed")
  T.contains(r.error, "600")
end)

T.done()

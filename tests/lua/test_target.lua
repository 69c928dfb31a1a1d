-- Targets: the shorthand forms fill time_to_target (and the steps/samples/epochs to it).
local bl = require "batchlab"
local T = require "bltest"

local data, model = T.data(), T.model()

local function check_reached(r)
  T.eq(r.status, "completed", r.error)
  T.eq(r.reached_target, true)
  T.eq(type(r.time_to_target), "number")
  T.eq(type(r.wall_time_to_target), "number")
  T.truthy(r.wall_time_to_target > 0 and r.wall_time_to_target <= r.time, "wall_time_to_target in the run")
  -- the robust time: steps to target × the median step time
  T.truthy(r.step_time_median > 0, "a median step time")
  T.eq(r.time_to_target, r.steps_to_target * r.step_time_median)
  T.eq(math.type(r.steps_to_target), "integer")
  T.truthy(r.steps_to_target >= 1 and r.steps_to_target <= r.steps)
  T.eq(math.type(r.samples_to_target), "integer")
  T.eq(type(r.epochs_to_target), "number")
  T.eq(math.type(r.steps_to_target_error), "integer")
  -- interpolated between the last point short of the target and the first at or past it
  local before, first
  for _, p in ipairs(r.history) do
    local v = p[r.target.metric]
    if (r.target.at_least and v >= r.target.at_least) or (r.target.at_most and v <= r.target.at_most) then
      first = first or p
    elseif not first then
      before = p
    end
  end
  if before then
    local t = r.target.at_least or r.target.at_most
    local m = r.target.metric
    local f = (t - before[m]) / (first[m] - before[m])
    T.eq(r.steps_to_target, math.floor(before.step + f * (first.step - before.step) + 0.5))
    T.truthy(math.abs(r.wall_time_to_target - (before.wall + f * (first.wall - before.wall))) < 1e-9)
    T.eq(r.steps_to_target_error, first.step - before.step)
  else   -- the first point: the crossing is somewhere in [0, its step]
    T.eq(r.steps_to_target, first.step)
    T.eq(r.wall_time_to_target, first.wall)
    T.eq(r.steps_to_target_error, first.step)
  end
  return before
end

T.test("a number: val_accuracy at least", function()
  local r = bl.train(T.cfg(data, model, { epochs = 3, target = 0.6 }))
  T.eq(r.target.metric, "val_accuracy")
  T.eq(r.target.at_least, 0.6)
  check_reached(r)
  T.eq(r.stopped_by, "epochs", "goes on without stop_at_target")
end)

T.test("{metric = value} shorthand", function()
  local r = bl.train(T.cfg(data, model, { epochs = 3, target = { val_loss = 5.0 } }))
  T.eq(r.target.metric, "val_loss")
  T.eq(r.target.at_most, 5.0, "losses: at most")
  check_reached(r)
end)

T.test("interpolated between evaluation points", function()
  local r = bl.train(T.cfg(data, model, { epochs = 3, eval_every = { steps = 5 }, batch = 16,
    optimizer = bl.optim.sgd { lr = 0.01 }, target = { metric = "val_accuracy", at_least = 0.9 } }))
  T.truthy(check_reached(r), "reached after the first point")
  T.truthy(r.steps_to_target_error == 5)
end)

T.test("eval_every = \"auto\" and {auto = n}: every step to step n, then 1/n further", function()
  for _, form in ipairs { { "auto", 8 }, { { auto = 4 }, 4 } } do
    local r = bl.train(T.cfg(data, model, { epochs = 3, eval_every = form[1], batch = 16,
      optimizer = bl.optim.sgd { lr = 0.01 }, target = { metric = "val_accuracy", at_least = 0.9 } }))
    local n, want = form[2], 1
    for i, p in ipairs(r.history) do
      if i < #r.history then    -- the last may be the end of the run
        T.eq(p.step, want, "point " .. i)
        want = math.max(want + 1, math.ceil(want * (1 + 1 / n) - 1e-9))
      end
    end
    T.truthy(#r.history > n, "dense points")
    check_reached(r)
  end
  T.raises(function() bl.train(T.cfg(data, model, { epochs = 1, eval_every = "often" })) end,
    "eval_every")
end)

T.test("full form and stop_at_target", function()
  local r = bl.train(T.cfg(data, model, { epochs = 10, stop_at_target = true,
    target = { metric = "train_accuracy", at_least = 0.5 } }))
  check_reached(r)
  T.eq(r.stopped_by, "target")
  T.truthy(r.steps_to_target <= r.steps and r.steps_to_target > r.steps - r.steps_to_target_error,
    "stopped at the first point at the target, the crossing just before")
end)

T.test("not reached: the fields are absent", function()
  local r = bl.train(T.cfg(data, model, { epochs = 1, target = { val_loss = -1 } }))
  T.eq(r.reached_target, false)
  T.eq(r.time_to_target, nil)
  T.eq(r.wall_time_to_target, nil)
  T.eq(r.steps_to_target, nil)
  T.eq(r.steps_to_target_error, nil)
end)

T.done()

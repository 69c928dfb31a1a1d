-- Two runs with the same seed give the same history; another seed gives another.
local bl = require "batchlab"
local T = require "bltest"

local data, model = T.data(), T.model()

local function losses(r)
  local out = {}
  for i, p in ipairs(r.history) do out[i] = { p.train_loss, p.val_loss, p.val_accuracy } end
  return out
end

T.test("same seed, same history", function()
  local cfg = T.cfg(data, model, { seed = 11, epochs = 3, eval_every = { steps = 5 } })
  local a, b = bl.train(cfg), bl.train(cfg)
  T.eq(#a.history, #b.history)
  local la, lb = losses(a), losses(b)
  for i = 1, #la do
    for k = 1, 3 do T.eq(la[i][k], lb[i][k], string.format("point %d value %d", i, k)) end
  end
  T.eq(a.final.test_loss, b.final.test_loss)
end)

T.test("same seed with a Lua schedule", function()
  local function sched(s) return 16 + (s.step % 3) * 8 end
  local cfg = T.cfg(data, model, { seed = 5, batch = sched, max_batch = 32 })
  local a, b = bl.train(cfg), bl.train(cfg)
  T.eq(a.steps, b.steps)
  for i = 1, #a.history do T.eq(a.history[i].train_loss, b.history[i].train_loss) end
end)

T.test("another seed, another history", function()
  local a = bl.train(T.cfg(data, model, { seed = 1 }))
  local b = bl.train(T.cfg(data, model, { seed = 2 }))
  T.truthy(a.history[1].train_loss ~= b.history[1].train_loss, "differs")
end)

T.done()

-- Checkpoint keys of bl.train (docs/checkpoints.md): save writes the final state, readable by
-- bl.read_snapshot; init starts from it; a run that stops at an interrupt-free checkpoint
-- interval leaves no checkpoint once completed; bad values raise; missing files give nil.
local bl = require "batchlab"
local T = require "bltest"

local data, model = T.data(), T.model()
local dir = os.tmpname()
os.remove(dir)
local save = dir .. ".final.blsnap"
local ck = dir .. ".ck.blsnap"

T.test("save and read_snapshot", function()
  local r = bl.train(T.cfg(data, model, { save = save, checkpoint_every = 3, checkpoint = ck }))
  T.eq(r.status, "completed")
  local s = assert(bl.read_snapshot(save))
  T.eq(s.step, r.steps)
  T.eq(s.samples, r.samples)
  T.eq(s.optimizer, "sgd")
  T.eq(#s.weights, 4 * s.n_params)
  T.eq(s.history_count, #r.history)
  T.truthy(s.tag:find('"model"', 1, true), "the tag is the run's configuration")
  T.eq(io.open(ck), nil, "a completed run removes its checkpoint")
end)

T.test("init starts from saved weights", function()
  local r = bl.train(T.cfg(data, model, { init = save, epochs = 0.25 }))
  local fresh = bl.train(T.cfg(data, model, { epochs = 0.25 }))
  T.truthy(r.history[1].train_loss < fresh.history[1].train_loss,
           "a trained start has a lower first loss")
end)

T.test("bad values and files", function()
  T.raises(function() bl.train(T.cfg(data, model, { checkpoint_every = "ten" })) end)
  T.raises(function() bl.train(T.cfg(data, model, { init = dir .. ".none" })) end)
  local s, err = bl.read_snapshot(dir .. ".none")
  T.eq(s, nil)
  T.contains(err, ".none")
  local f = io.open(dir .. ".txt", "w"); f:write("not a snapshot"); f:close()
  s, err = bl.read_snapshot(dir .. ".txt")
  T.eq(s, nil)
  T.contains(err, "truncated")
  os.remove(dir .. ".txt")
end)

os.remove(save)
T.done()

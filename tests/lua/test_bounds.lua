-- issue 15, Found 3 and 7: budgets from Lua are finite, refused with the key and its range as
-- the command line refuses them; evaluation buffers are capped to the largest split.
local bl = require "batchlab"
local T = require "bltest"

local data, model = T.data(), T.model()

T.test("infinite and NaN budgets are refused, naming the key and the range", function()
  T.raises(function() bl.train(T.cfg(data, model, { epochs = 1/0 })) end,
    "bl.train: 'epochs' must be a finite number in [0, 1e+06], got inf")
  T.raises(function() bl.train(T.cfg(data, model, { epochs = 0/0 })) end,
    "'epochs' must be a finite number")
  T.raises(function() bl.train(T.cfg(data, model, { max_seconds = 1/0 })) end,
    "'max_seconds' must be a finite number in [0, 3.1536e+07], got inf")
  T.raises(function() bl.train(T.cfg(data, model, { max_seconds = 0/0 })) end,
    "'max_seconds' must be a finite number")
  T.raises(function() bl.train(T.cfg(data, model, { max_steps = math.maxinteger })) end,
    "'max_steps' must be ≤ 1e+12, got 9223372036854775807")
  T.raises(function() bl.train(T.cfg(data, model, { target = 0/0 })) end, "target")
  T.raises(function() bl.train(T.cfg(data, model, { target = { val_loss = 0/0 } })) end,
    "bl.train: target: val_loss must be a finite number")
  T.raises(function()
    bl.train(T.cfg(data, model, { target = { metric = "val_accuracy", at_least = 1/0 } }))
  end, "bl.train: target: val_accuracy must be a finite number, got inf")
end)

T.test("evaluation buffers are capped to the largest split", function()
  -- 2 validation rows of 200,000 features: an uncapped 256-row evaluation buffer alone is
  -- 256 × 200,000 × 4 B = 205 MB; capped it is 2 rows (1.6 MB)
  local wide = bl.dataset("synthetic", { samples = 4, validation = 2, dim = 200000, classes = 2,
                                         seed = 3 })
  local r = bl.train { dataset = wide, model = bl.model("mlp", { hidden = { 2 } }), seed = 1,
                       max_steps = 1, batch = 2, quiet = true, db = false }
  T.eq(r.status, "completed")
  T.truthy(r.peak_device_bytes < 32 * 1024 * 1024,
           "peak device bytes " .. r.peak_device_bytes .. " should stay below 32 MiB")
end)

T.test("run.history keeps a bounded window", function()
  -- 25,000 points (one per step, no evaluation, no store): the window is 10,000 (twice that at
  -- most while the run goes on), the earliest points are counted in history_dropped. Points
  -- go to the results store as they are made, so a recorded run keeps them all there.
  local tiny = bl.dataset("synthetic", { samples = 8, dim = 2, classes = 2, seed = 5 })
  local most = 0
  local r = bl.train { dataset = tiny, model = bl.model("mlp", { hidden = { 2 } }), seed = 1,
                       max_steps = 25000, batch = 8, quiet = true, skip_eval = true,
                       eval_every = { steps = 1 }, db = false,
                       on_point = function(p, run)
                         if #run.history > most then most = #run.history end
                       end }
  T.eq(r.steps, 25000)
  T.truthy(most <= 20000, "the window during the run: " .. most)
  T.eq(#r.history, 10000)
  T.eq(r.history_dropped, 15000)
  T.eq(r.history[1].step, 15001)
  T.eq(r.history[10000].step, 25000)
  T.eq(r.final.step, 25000)
end)

T.done()

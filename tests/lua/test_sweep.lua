-- bl.sweep: the grid in a fixed order; a failing configuration is recorded and the sweep
-- goes on; the best run by score.
local bl = require "batchlab"
local T = require "bltest"

local data, model = T.data(), T.model()
local base = { dataset = data, model = model, epochs = 2, quiet = true,
               optimizer = bl.optim.sgd { lr = 0.1, momentum = 0.9 } }

T.test("grid order, params, a failing configuration", function()
  local seen = {}
  local sw = bl.sweep { name = "grid", base = base,
    vary = { seed = { 1, 2 }, batch = { 16, 0, 64 } },
    on_run = function(run, i, n)
      seen[#seen + 1] = i
      T.eq(n, 6)
    end }
  T.eq(sw.name, "grid")
  T.eq(sw.total, 6)
  T.eq(#sw.runs, 6)
  T.eq(sw.failed, 2)
  T.eq(#seen, 6)
  -- keys sorted (batch before seed), the first varying slowest
  local want = { { 16, 1 }, { 16, 2 }, { 0, 1 }, { 0, 2 }, { 64, 1 }, { 64, 2 } }
  for i, r in ipairs(sw.runs) do
    T.eq(r.params.batch, want[i][1], "run " .. i .. " batch")
    T.eq(r.params.seed, want[i][2], "run " .. i .. " seed")
    T.eq(r.index, i)
    T.eq(r.label, string.format("grid batch=%d seed=%d", want[i][1], want[i][2]))
  end
  for _, i in ipairs { 3, 4 } do
    T.eq(sw.runs[i].status, "failed")
    T.contains(sw.runs[i].error, "batch")
    T.eq(sw.runs[i].batch, 0, "parameters echoed on a failed run")
  end
  for _, i in ipairs { 1, 2, 5, 6 } do T.eq(sw.runs[i].status, "completed") end
  -- default score without a target: final validation loss, lower is better
  T.truthy(sw.best, "a best run")
  for _, r in ipairs(sw.runs) do
    if r.status == "completed" then
      T.truthy(sw.best.score <= r.final.val_loss, "best has the lowest val_loss")
      T.eq(r.score, r.final.val_loss)
    end
  end
end)

T.test("a run failing inside (schedule error) is recorded too", function()
  local sw = bl.sweep { base = base,
    vary = { batch = { 32, { max_batch = 8, next = function() error("bad schedule") end } } } }
  T.eq(sw.failed, 1)
  T.eq(sw.runs[2].status, "failed")
  T.contains(sw.runs[2].error, "bad schedule")
  T.eq(sw.best, sw.runs[1])
end)

T.test("lr in vary, custom score, higher_is_better", function()
  local sw = bl.sweep { base = base, vary = { lr = { 0.01, 0.1 }, batch = { 32 } },
    score = function(r) return r.final.val_accuracy end, higher_is_better = true }
  T.eq(sw.runs[1].lr, 0.01)
  T.eq(sw.runs[2].lr, 0.1)
  T.eq(sw.runs[2].optimizer, "sgd")
  T.eq(sw.runs[1].params.lr, 0.01)
  for _, r in ipairs(sw.runs) do T.truthy(sw.best.score >= r.score) end
  -- a score of nil leaves a run out
  local none = bl.sweep { base = base, vary = { batch = { 32 } }, score = function() return nil end }
  T.eq(none.best, nil)
  T.raises(function()
    bl.sweep { base = base, vary = { batch = { 32 } }, score = function() error("oops") end }
  end, "score", "oops")
end)

T.test("target: time_to_target is the default score", function()
  local sw = bl.sweep { base = base, vary = { batch = { 32, 64 } },
                        target = { metric = "val_accuracy", at_least = 0.5 } }
  for _, r in ipairs(sw.runs) do
    T.eq(r.target.metric, "val_accuracy")
    T.eq(type(r.time_to_target), "number", "target reached")
    T.eq(r.score, r.time_to_target)
  end
  T.truthy(sw.best.time_to_target <= sw.runs[1].time_to_target)
  T.truthy(sw.best.time_to_target <= sw.runs[2].time_to_target)
end)

T.test("sweep argument errors", function()
  T.raises(function() bl.sweep { base = base, vari = {} } end, "'vari'", "'vary'")
  T.raises(function() bl.sweep { vary = {} } end, "base")
  T.raises(function() bl.sweep { base = base, vary = { batch = {} } } end, "non-empty")
  local one = bl.sweep { base = base, vary = { batch = 32 } }
  T.eq(one.total, 1)
end)

T.done()

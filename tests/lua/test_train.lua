-- bl.train returns the run table the API promises.
local bl = require "batchlab"
local T = require "bltest"

local data, model = T.data(), T.model()
-- every field a point of this run measures (gns is not measured: nil, see below)
local POINT_FIELDS = { "step", "epoch", "samples", "wall", "batch", "lr", "train_loss",
  "train_accuracy", "val_loss", "val_accuracy", "samples_per_sec" }

T.test("result fields", function()
  local r = bl.train(T.cfg(data, model, { epochs = 3, label = "basic" }))
  T.eq(r.status, "completed")
  T.eq(r.stopped_by, "epochs")
  T.eq(r.error, nil)
  T.eq(math.type(r.steps), "integer")
  T.eq(r.steps, 3 * math.ceil(500 / 32))
  T.eq(r.samples, 1500)
  T.eq(r.epochs, 3.0)
  T.truthy(r.time > 0, "time")
  T.truthy(r.eval_time >= 0, "eval_time")
  -- the config echo
  T.eq(r.batch, 32)
  T.eq(r.lr, 0.1)
  T.eq(r.seed, 1)
  T.eq(r.model, "mlp")
  T.eq(r.dataset, "synthetic")
  T.eq(r.optimizer, "sgd")
  T.eq(r.device, "cpu")
  T.eq(r.label, "basic")
  T.eq(r.max_batch_used, 32)
  -- no target: no target fields
  T.eq(r.time_to_target, nil)
  T.eq(r.target, nil)
  -- history: one point per epoch
  T.eq(#r.history, 3)
  for i, p in ipairs(r.history) do
    for _, f in ipairs(POINT_FIELDS) do
      T.eq(type(p[f]), "number", "history[" .. i .. "]." .. f)
    end
    T.eq(p.epoch, i * 1.0)
  end
  T.truthy(r.history[3].step > r.history[1].step, "steps increase")
  -- issue 14: a metric that was not measured is nil, never NaN
  for i, p in ipairs(r.history) do T.eq(p.gns, nil, "history[" .. i .. "].gns not measured") end
  T.eq(r.final.gns, nil, "final.gns not measured")
  -- final: the last point plus the test split
  for _, f in ipairs(POINT_FIELDS) do T.eq(type(r.final[f]), "number", "final." .. f) end
  T.eq(r.final.step, r.steps)
  T.truthy(r.final.test_accuracy >= 0 and r.final.test_accuracy <= 1, "test_accuracy")
  T.truthy(r.final.test_loss >= 0, "test_loss")
  T.truthy(r.final.val_accuracy > 0.5, "it learns the blobs")
end)

T.test("budgets and evaluation cadence", function()
  local r = bl.train(T.cfg(data, model, { epochs = nil, max_steps = 7, eval_every = { steps = 3 } }))
  T.eq(r.status, "completed")
  T.eq(r.stopped_by, "max_steps")
  T.eq(r.steps, 7)
  T.eq(#r.history, 3, "points at steps 3, 6 and the end")
  T.eq(r.history[1].step, 3)
  T.eq(r.history[3].step, 7)
  local s = bl.train(T.cfg(data, model, { eval_every = { samples = 250 }, epochs = 1 }))
  T.truthy(#s.history >= 2, "sample-based points")
end)

T.test("optimizers, lr rules", function()
  for _, o in ipairs { bl.optim.adam { lr = 0.01 }, bl.optim.adamw(), bl.optim.lars { lr = 0.5 },
                       bl.optim.lamb { lr = 0.01 }, "sgd" } do
    local r = bl.train(T.cfg(data, model, { optimizer = o, epochs = 1 }))
    T.eq(r.status, "completed", tostring(o))
  end
  local r = bl.train(T.cfg(data, model, {
    batch = 64, lr_scaling = { rule = "linear", base_batch = 32, warmup_epochs = 1 },
    lr_schedule = { kind = "step", milestones = { 1 }, gamma = 0.5 } }))
  T.eq(r.status, "completed")
  T.truthy(r.history[2].lr < 0.2 + 1e-12, "scaled and decayed lr " .. r.history[2].lr)
  local c = bl.train(T.cfg(data, model, { lr_schedule = "cosine", lr_scaling = "sqrt" }))
  T.eq(c.status, "completed")
end)

T.test("micro batches, gns, drop_last", function()
  local r = bl.train(T.cfg(data, model, { batch = 64, micro_batch = 16, measure_gns = true,
                                           gns_chunks = 4, drop_last = true, epochs = 2 }))
  T.eq(r.status, "completed")
  T.eq(r.steps, 2 * (500 // 64))
  T.eq(type(r.final.gns), "number")
end)

T.test("on_point sees every point", function()
  local seen = {}
  local r = bl.train(T.cfg(data, model, { on_point = function(p, run)
    seen[#seen + 1] = p
    T.eq(type(run), "table")
  end }))
  T.eq(#seen, #r.history)
  for i = 1, #seen do T.eq(seen[i], r.history[i], "the same point tables") end
end)

T.test("the dataset cannot be closed during its run", function()
  local d = T.data()
  local r = bl.train(T.cfg(d, model, { epochs = 1, on_point = function() d:close() end }))
  T.eq(r.status, "failed")
  T.contains(r.error, "in use by a run")
  d:close()   -- fine afterwards
  T.raises(function() bl.train(T.cfg(d, model)) end, "closed")
end)

T.test("skip_test, skip_eval", function()
  local r = bl.train(T.cfg(data, model, { skip_test = true, epochs = 1 }))
  T.eq(r.final.test_loss, nil, "no test metrics (nil, issue 14)")
  local e = bl.train(T.cfg(data, model, { skip_eval = true, epochs = 1 }))
  T.eq(e.final.val_loss, nil, "no validation (nil, issue 14)")
end)

T.test("metrics not measured are nil (issue 14)", function()
  -- no validation split, no test split, train accuracy off: nil in points, final and state.last
  local bare = bl.dataset("synthetic", { samples = 300, dim = 4, classes = 2 })
  local seen_last
  local r = bl.train(T.cfg(bare, model, { epochs = 2, train_eval_samples = 0,
    batch = function(s) if s.last then seen_last = s.last.val_accuracy or "nil" end return 32 end,
    max_batch = 32 }))
  T.eq(r.status, "completed", r.error)
  for i, p in ipairs(r.history) do
    for _, f in ipairs({ "val_loss", "val_accuracy", "train_accuracy", "gns" }) do
      T.eq(p[f], nil, "history[" .. i .. "]." .. f)
    end
    T.eq(type(p.train_loss), "number", "train_loss is measured")
  end
  for _, f in ipairs({ "val_loss", "val_accuracy", "train_accuracy", "test_loss", "test_accuracy" }) do
    T.eq(r.final[f], nil, "final." .. f)
  end
  T.eq(seen_last, "nil", "state.last.val_accuracy")
end)

T.done()

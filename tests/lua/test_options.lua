-- Misspelt or wrong options raise clear errors naming the option and the nearest name.
local bl = require "batchlab"
local T = require "bltest"

local data, model = T.data(), T.model()

T.test("plugin option suggestion", function()
  local ok, err = pcall(bl.model, "mlp", { hiden = { 8 } })
  T.eq(ok, false)
  T.truthy(string.find(err, "hiden", 1, true), "names the option")
  T.truthy(string.find(err, "did you mean 'hidden'", 1, true), "suggests: " .. err)
  T.raises(function() bl.dataset("synthetic", { sampels = 10 }) end, "'sampels'", "samples")
  T.raises(function() bl.scheduler("step", { factr = 2 }) end, "'factr'", "factor")
end)

T.test("plugin option types", function()
  T.raises(function() bl.model("mlp", { hidden = "wide" }) end, "hidden")
  T.raises(function() bl.model("mlp", { hidden = { 8, "x" } }) end, "hidden")
  T.raises(function() bl.model("mlp", { dropout = print }) end, "dropout")
end)

T.test("unknown plugin lists what exists", function()
  T.raises(function() bl.model("mpl") end, "mpl", "mlp")
  T.raises(function() bl.dataset("synthetc") end, "synthetc")
end)

T.test("train key suggestion", function()
  local ok, err = pcall(bl.train, T.cfg(data, model, { epoch = 1 }))
  T.eq(ok, false)
  T.truthy(string.find(err, "unknown key 'epoch'; did you mean 'epochs'?", 1, true), err)
  T.raises(function() bl.train(T.cfg(data, model, { bacth = 3 })) end, "'bacth'", "'batch'")
end)

T.test("train values", function()
  T.raises(function() bl.train(T.cfg(data, model, { epochs = "two" })) end,
           "'epochs' must be a number")
  T.raises(function() bl.train(T.cfg(data, model, { batch = 2.5 })) end, "integer")
  T.raises(function() bl.train(T.cfg(data, model, { batch = 0 })) end, "'batch'")
  T.raises(function() bl.train(T.cfg(data, model, { dataset = model })) end, "dataset")
  T.raises(function() bl.train(T.cfg(data, model, { lr_scaling = "lineer" })) end,
           "lineer", "did you mean 'linear'")
  T.raises(function() bl.train(T.cfg(data, model, { lr_scaling = { rul = "linear" } })) end,
           "'rul'", "'rule'")
  T.raises(function() bl.train(T.cfg(data, model, { lr_schedule = "cosin" })) end, "'cosine'")
  T.raises(function() bl.train(T.cfg(data, model, { eval_every = { step = 3 } })) end,
           "'steps'")
  T.raises(function() bl.train(T.cfg(data, model, { target = { metric = "val_acc", at_least = 1 } })) end,
           "val_acc")
  T.raises(function() bl.train(T.cfg(data, model, { optimizer = "sdg" })) end, "'sgd'")
  T.raises(function() bl.train(T.cfg(data, model, { stop = 3 })) end, "'stop' must be a function")
  T.raises(function() bl.train(T.cfg(data, model, { epochs = false })) end, "epochs")
end)

T.test("engine configuration errors raise", function()
  -- no budget at all: the engine refuses to start
  local c = T.cfg(data, model)
  c.epochs = nil
  T.raises(function() bl.train(c) end, "budget")
  T.raises(function() bl.train(T.cfg(data, model, { gns_ema = 2 })) end, "gns_ema")
end)

T.test("a batch function without max_batch: buffers grow (issue 14)", function()
  local r = bl.train(T.cfg(data, model, { max_steps = 12, epochs = nil,
    batch = function(s) return s.step < 6 and 8 or 64 end }))
  T.eq(r.status, "completed", r.error)
  T.eq(r.max_batch_used, 64)
  -- a declared max_batch still bounds the function
  local b = bl.train(T.cfg(data, model, { max_steps = 4, epochs = nil, max_batch = 16,
    batch = function() return 32 end }))
  T.eq(b.status, "failed")
  T.contains(b.error, "expected an integer in [1, 16] (max_batch)")
end)

T.test("unsupported device", function()
  local ok, err = pcall(bl.train, T.cfg(data, model, { device = "cuda" }))
  if ok then
    print("SKIP-PART: this build has a usable CUDA device")
  else
    T.contains(err, "cuda")
  end
  T.raises(function() bl.train(T.cfg(data, model, { device = "tpu" })) end, "tpu")
end)

T.done()

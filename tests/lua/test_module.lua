-- The module loads, lists its plugins, and its objects behave.
local bl = require "batchlab"
local T = require "bltest"

T.test("module table", function()
  T.eq(type(bl), "table")
  T.eq(type(bl.version), "string")
  T.truthy(bl.version:match("^%d+%.%d+%.%d+$"), "version format")
  for _, f in ipairs { "dataset", "model", "scheduler", "train", "sweep", "plugins" } do
    T.eq(type(bl[f]), "function", f)
  end
  for _, k in ipairs { "sgd", "adam", "adamw", "lars", "lamb" } do
    T.eq(type(bl.optim[k]), "function", "optim." .. k)
  end
  T.eq(require "batchlab", bl, "require returns the same table")
end)

T.test("plugins listed", function()
  local ps = bl.plugins()
  T.truthy(#ps >= 3, "some plugins")
  local seen = {}
  for _, p in ipairs(ps) do
    T.eq(type(p.name), "string")
    T.truthy(p.kind == "model" or p.kind == "dataset" or p.kind == "scheduler", p.kind)
    T.eq(type(p.version), "string")
    T.eq(type(p.summary), "string")
    T.truthy(p.file:match("%.so$"), "file " .. p.file)
    T.eq(type(p.options), "table")
    for _, o in ipairs(p.options) do
      T.eq(type(o.name), "string")
      T.eq(type(o.type), "string")
      T.truthy(o.default ~= nil or o.required, o.name .. " has a default or is required")
    end
    seen[p.kind .. ":" .. p.name] = p
  end
  T.truthy(seen["dataset:synthetic"], "synthetic dataset")
  T.truthy(seen["model:mlp"], "mlp model")
  T.truthy(seen["scheduler:step"], "step scheduler")
  local hidden
  for _, o in ipairs(seen["model:mlp"].options) do
    if o.name == "hidden" then hidden = o end
  end
  T.eq(hidden.type, "integer list")
end)

T.test("dataset object", function()
  local d = T.data()
  T.eq(d:name(), "synthetic")
  local info = d:info()
  T.eq(info.train, 500)
  T.eq(info.validation, 100)
  T.eq(info.test, 100)
  T.eq(info.classes, 3)
  T.eq(info.sample[1], 8)
  T.eq(d:options().dim, 8)
  T.eq(d:options().task, "blobs", "defaults filled in")
  T.contains(tostring(d), "batchlab.Dataset(synthetic")
  d:close()
  d:close()  -- idempotent
  T.contains(tostring(d), "closed")
  T.raises(function() d:info() end, "closed")
end)

T.test("dataset closes at scope end", function()
  local name
  do
    local d <close> = T.data()
    name = d:name()
  end
  T.eq(name, "synthetic")
end)

T.test("model object", function()
  local m = bl.model("mlp", { hidden = { 32, 16 }, activation = "tanh" })
  T.eq(m:name(), "mlp")
  local o = m:options()
  T.eq(#o.hidden, 2)
  T.eq(o.hidden[2], 16)
  T.eq(o.activation, "tanh")
  T.eq(o.dropout, 0.0, "default")
  T.contains(tostring(m), "batchlab.Model(mlp)")
end)

T.test("options may be left out", function()
  T.eq(bl.model("logreg"):options().bias, true)
  T.eq(bl.dataset("synthetic"):info().train, 1000)
  T.eq(bl.scheduler("constant"):name(), "constant")
end)

T.test("optimizer objects", function()
  local o = bl.optim.sgd { lr = 0.05, momentum = 0.9, nesterov = true }
  T.eq(o.kind, "sgd")
  T.eq(o.lr, 0.05)
  T.eq(o.momentum, 0.9)
  T.eq(o.nesterov, true)
  local o2 = o:with { lr = 0.2 }
  T.eq(o2.lr, 0.2)
  T.eq(o.lr, 0.05, "original unchanged")
  T.eq(o2.momentum, 0.9)
  T.eq(bl.optim.adam().lr, 0.001, "PyTorch default")
  T.eq(bl.optim.adamw {}.weight_decay, 0.01)
  T.contains(tostring(bl.optim.lamb { lr = 0.01 }), "lamb")
  T.raises(function() bl.optim.sgd { lr = -1 } end, "lr")
  T.raises(function() bl.optim.sgd { lr = "x" } end, "'lr' must be a number")
  T.raises(function() bl.optim.sgd { momentun = 0.9 } end, "unknown key 'momentun'",
           "did you mean 'momentum'")
  T.raises(function() bl.optim.adam { momentum = 0.9 } end, "unknown key 'momentum'")
end)

T.test("scheduler objects", function()
  local s = bl.scheduler("step", { batch = 16, milestones = { 1 } })
  T.eq(s:name(), "step")
  T.eq(s:kind(), "plugin")
  T.eq(s:options().factor, 2.0)
  -- linear_ramp is a plugin now (batchlab.schedules wraps it); warmup_double is Lua
  T.eq(bl.scheduler("linear_ramp", { start = 8, stop = 64, epochs = 1 }):kind(), "plugin")
  local l = bl.scheduler("warmup_double", { batch = 8, max = 64 })
  T.eq(l:kind(), "lua")
  T.eq(l:options().max, 64)
  T.raises(function() bl.scheduler("no_such_schedule") end, "no_such_schedule")
end)

T.done()

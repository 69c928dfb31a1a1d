-- Issue 10, "what must be true": the same sweep run twice gives the same recommendation (the
-- pick and the tied set), even with other processes loading the machine during one of the two
-- runs. The sweep is small but real (blobs, an MLP, four batch sizes, two seeds, a target); the
-- second time two busy processes (`yes`, one per core of a 2-core machine) run throughout.
-- Time-to-target is steps × the median step time of the run (engine), and a gap within the
-- margin or the spread is a tie (analysis/recommend.c), so the load must not change the answer.
local bl = require "batchlab"
local T = require "bltest"

local data = bl.dataset("synthetic", { task = "blobs", samples = 6000, validation = 1000,
                                       test = 0, dim = 32, classes = 8, seed = 3, noise = 6 })
local model = bl.model("mlp", { hidden = { 64 } })

local function sweep(name)
  return bl.sweep { name = name, db = false,
    base = { dataset = data, model = model, epochs = 40, quiet = true, stop_at_target = true,
             eval_every = "auto", optimizer = bl.optim.sgd { lr = 0.002, momentum = 0.9 },
             lr_scaling = { rule = "sqrt", base_batch = 32 } },
    vary = { batch = { 8, 32, 128, 512 }, seed = { 1, 2 } },
    target = { metric = "val_accuracy", at_least = 0.6 } }
end

local function labels(list)
  local out = {}
  for i, c in ipairs(list) do out[i] = c.label end
  return table.concat(out, ", ")
end

-- Starts `n` CPU burners (each stopped by `timeout` after 120 s at the latest, should this
-- script die first); returns their process ids.
local function burn(n)
  local pids = {}
  for i = 1, n do
    local f = os.tmpname()
    os.execute(("timeout 120 sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $! > %s"):format(f))
    local h = io.open(f)
    pids[i] = h and tonumber(h:read("l"))
    if h then h:close() end
    os.remove(f)
  end
  return pids
end

local function stop(pids)
  for _, pid in ipairs(pids) do
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  end
end

T.test("the same sweep twice, once under load: the same pick and tied set", function()
  local quiet = sweep("repeat-quiet")
  local pids = burn(2)
  T.truthy(#pids == 2 and pids[1] and pids[2], "the burners started")
  local ok, loaded = pcall(sweep, "repeat-loaded")
  stop(pids)
  T.truthy(ok, loaded)
  for i, r in ipairs(quiet.runs) do
    T.eq(r.status, "completed", r.label)
    T.eq(loaded.runs[i].steps_to_target, r.steps_to_target, "steps are deterministic")
  end
  local a, b = bl.recommend(quiet), bl.recommend(loaded)
  T.eq(b.pick.label, a.pick.label, "the pick")
  T.eq(labels(b.tied), labels(a.tied), "the tied set")
  print(("quiet: %s; loaded: %s"):format(a.sentence, b.sentence))
end)

T.test("a recorded sweep's recommendation is kept with its experiment", function()
  local sw = bl.sweep { name = "kept",
    base = { dataset = data, model = model, epochs = 2, quiet = true, eval_every = "auto",
             optimizer = bl.optim.sgd { lr = 0.002, momentum = 0.9 } },
    vary = { batch = { 32, 128 } }, target = { metric = "val_accuracy", at_least = 0.3 } }
  T.eq(type(sw.runs[1].db), "string", "recorded (batchlab run --db)")
  local rec = bl.recommend(sw)
  T.eq(rec.stored, true, rec.store_error)
  T.eq(bl.recommend(sw, { store = false }).stored, nil)
  T.raises(function() bl.recommend(sw, { store = 1 }) end, "'store' must be a boolean")
end)

T.done()

-- The results store from Lua: bl.train{db =, experiment =, resume =} records runs; bl.sweep
-- records each run in the experiment named after it and, resuming, gives back the runs that
-- already finished instead of training them again; failed runs are trained again; a file
-- that is not a store is refused and left alone.
local bl = require "batchlab"
local T = require "bltest"

local data, model = T.data(), T.model()

local tmp = os.tmpname()
os.remove(tmp)
local files = {}
local function fresh(name)
  local path = tmp .. "_" .. name .. ".db"
  for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(path .. suffix) end
  files[#files + 1] = path
  return path
end

local function same_history(a, b)
  T.eq(#a.history, #b.history, "history length")
  for i = 1, #a.history do
    for _, k in ipairs { "step", "samples", "epoch", "batch", "lr", "train_loss", "val_loss",
                         "val_accuracy" } do
      T.eq(a.history[i][k], b.history[i][k], "history[" .. i .. "]." .. k)
    end
  end
end

T.test("bl.train records a run; resume gives it back", function()
  local db = fresh("train")
  local run = bl.train(T.cfg(data, model, { db = db, experiment = "one", label = "first" }))
  T.eq(run.status, "completed")
  T.eq(run.db, db)
  T.eq(run.experiment, "one")
  T.truthy(math.type(run.run_id) == "integer" and run.run_id > 0, "run_id")
  T.eq(run.resumed, nil)

  -- resume: the same configuration (label, quiet and key order do not count)
  local again = bl.train(T.cfg(data, model, { db = db, experiment = "one", resume = true,
                                              label = "second", quiet = true }))
  T.eq(again.resumed, true)
  T.eq(again.run_id, run.run_id)
  T.eq(again.status, "completed")
  T.eq(again.steps, run.steps)
  T.eq(again.time, run.time)
  T.eq(again.final.val_loss, run.final.val_loss)
  T.eq(again.final.test_accuracy, run.final.test_accuracy)
  same_history(again, run)
  T.eq(again.model, "mlp", "the config echo is there too")

  -- another configuration, another experiment, or no resume: trained
  local other = bl.train(T.cfg(data, model, { db = db, experiment = "one", resume = true,
                                              batch = 64 }))
  T.eq(other.resumed, nil)
  T.truthy(other.run_id > run.run_id)
  local elsewhere = bl.train(T.cfg(data, model, { db = db, experiment = "two", resume = true }))
  T.eq(elsewhere.resumed, nil)
  local fresh_run = bl.train(T.cfg(data, model, { db = db, experiment = "one" }))
  T.eq(fresh_run.resumed, nil)
  T.truthy(fresh_run.run_id > other.run_id)
  -- and now the newest finished run is the one given back
  local newest = bl.train(T.cfg(data, model, { db = db, experiment = "one", resume = true }))
  T.eq(newest.run_id, fresh_run.run_id)
end)

T.test("a sweep records its runs and resumes", function()
  local db = fresh("sweep")
  local base = T.cfg(data, model, { epochs = 1 })
  base.batch = nil
  local seen = 0
  local sw = bl.sweep { name = "grid", db = db, base = base, vary = { batch = { 16, 0, 32 } },
                        on_run = function() seen = seen + 1 end }
  T.eq(sw.total, 3)
  T.eq(sw.failed, 1)
  T.eq(sw.resumed, 0)
  T.eq(sw.runs[1].experiment, "grid")
  T.truthy(sw.runs[1].run_id and sw.runs[3].run_id, "recorded")

  -- again: the two finished runs come back, the failed one (it never started) is tried again
  local again = bl.sweep { name = "grid", db = db, base = base, vary = { batch = { 16, 0, 32 } },
                           on_run = function() seen = seen + 1 end }
  T.eq(seen, 6, "on_run sees resumed runs too")
  T.eq(again.resumed, 2)
  T.eq(again.failed, 1)
  for _, i in ipairs { 1, 3 } do
    T.eq(again.runs[i].resumed, true)
    T.eq(again.runs[i].run_id, sw.runs[i].run_id)
    T.eq(again.runs[i].label, sw.runs[i].label)
    T.eq(again.runs[i].params.batch, sw.runs[i].params.batch)
    same_history(again.runs[i], sw.runs[i])
  end
  T.eq(again.best.run_id, sw.best.run_id, "the same best run")

  -- resume = false: everything is trained again (and recorded as new runs)
  local afresh = bl.sweep { name = "grid", db = db, base = base, resume = false,
                            vary = { batch = { 16, 32 } } }
  T.eq(afresh.resumed, 0)
  T.truthy(afresh.runs[1].run_id > sw.runs[3].run_id)
end)

T.test("a run that fails inside is recorded failed and trained again", function()
  local db = fresh("failed")
  local bad = { max_batch = 8, next = function(s) if s.step > 3 then error("bad schedule") end return 8 end }
  local cfg = T.cfg(data, model, { db = db, experiment = "f", resume = true, batch = bad,
                                   label = "bad" })
  local r = bl.train(cfg)
  T.eq(r.status, "failed")
  T.contains(r.error, "bad schedule")
  T.truthy(r.run_id)
  local r2 = bl.train(cfg)
  T.eq(r2.resumed, nil, "a failed run is not given back")
  T.truthy(r2.run_id > r.run_id)
end)

T.test("functions: the label stands in for them", function()
  local db = fresh("functions")
  local function fixed(_) return 16 end
  local cfg = T.cfg(data, model, { db = db, experiment = "fn", resume = true, batch = fixed,
                                   max_batch = 16, label = "fixed 16", epochs = 1 })
  local r = bl.train(cfg)
  T.eq(r.status, "completed")
  T.eq(bl.train(cfg).resumed, true, "same label: given back")
  cfg.label = "another function"
  T.eq(bl.train(cfg).resumed, nil, "another label: trained")
end)

T.test("recorded by default under batchlab run; db = false records nothing", function()
  -- ctest runs this script as `batchlab run --db FILE`; without --db it would be ./batchlab.db
  local r = bl.train(T.cfg(data, model, { epochs = 1 }))
  T.truthy(r.run_id, "a plain run is recorded in the host's store")
  T.eq(type(r.db), "string")
  local off = bl.train(T.cfg(data, model, { epochs = 1, db = false, experiment = "x" }))
  T.eq(off.run_id, nil)
end)

T.test("bad keys and files that are not stores", function()
  T.raises(function() bl.train(T.cfg(data, model, { db = 3 })) end, "'db' must be a file name")
  T.raises(function() bl.train(T.cfg(data, model, { db = fresh("x"), experiment = "" })) end,
           "'experiment' must be a non-empty string")
  T.raises(function() bl.train(T.cfg(data, model, { db = fresh("y"), resume = "yes" })) end,
           "'resume' must be a boolean")
  T.raises(function() bl.sweep { base = T.cfg(data, model), db = 1 } end, "bl.sweep: 'db'")

  local notes = fresh("notes")
  local f = assert(io.open(notes, "w"))
  f:write(string.rep("my notes, not a database\n", 20))
  f:close()
  T.raises(function() bl.train(T.cfg(data, model, { db = notes })) end, notes,
           "not a SQLite database")
  f = assert(io.open(notes))
  T.eq(f:read("a"), string.rep("my notes, not a database\n", 20), "the file is untouched")
  f:close()
end)

for _, path in ipairs(files) do
  for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(path .. suffix) end
end
T.done()

-- Divergence (issue 10): a run whose loss grows far above its start, or whose validation
-- accuracy sits at chance, ends early as "diverged" with the reason — not as "completed".
-- A sweep records it and goes on; the store keeps the status; a healthy run is not flagged.
local bl = require "batchlab"
local T = require "bltest"

-- ten classes of overlapping blobs: learnable, but not at a far too large LR with a large batch
local data = bl.dataset("synthetic", { task = "blobs", samples = 3000, validation = 500,
                                       test = 0, dim = 16, classes = 10, seed = 7, noise = 2 })
local model = bl.model("mlp", { hidden = { 32 } })

-- the found case: batch 1024 at an LR that suits small batches poorly; 6 epochs of budget
local function cfg(extra)
  local c = { dataset = data, model = model, seed = 1, epochs = 6, batch = 1024, quiet = true,
              eval_every = 0.5, optimizer = bl.optim.sgd { lr = 4 } }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local tmp = os.tmpname()
os.remove(tmp)
local function fresh(name)
  local path = tmp .. "_" .. name .. ".db"
  for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(path .. suffix) end
  return path
end

local function ended_early(r)
  T.eq(r.status, "diverged", r.error)
  T.eq(r.stopped_by, "diverged")
  T.truthy(r.epochs < 6, "ended before its budget")
  T.eq(r.diverged_step, r.steps, "at the point that showed it")
  T.eq(r.final.step, r.steps)
end

T.test("the loss far above its start ends the run as diverged", function()
  local r = bl.train(cfg { db = false })
  ended_early(r)
  T.contains(r.error, "more than 3× its starting value")
end)

T.test("accuracy at chance ends the run as diverged", function()
  local r = bl.train(cfg { db = false, diverge_loss_factor = 0 })
  ended_early(r)
  T.contains(r.error, "at chance (1/10 classes) for 3 evaluations")
  T.truthy(r.final.val_accuracy <= 0.1 + 0.02)
  T.truthy(r.final.epoch > 1, "points before epoch 1 do not count")
end)

T.test("with both checks off the run trains its budget (as before)", function()
  local r = bl.train(cfg { db = false, diverge_loss_factor = 0, diverge_chance_evals = 0 })
  T.eq(r.status, "completed")
  T.eq(r.stopped_by, "epochs")
  T.eq(r.epochs, 6)
end)

T.test("a healthy run is not flagged", function()
  local r = bl.train(cfg { db = false, batch = 64, optimizer = bl.optim.sgd { lr = 0.05 } })
  T.eq(r.status, "completed", r.error)
  T.eq(r.epochs, 6)
  T.eq(r.diverged_step, nil)
end)

T.test("a sweep records the diverged run and goes on; the store keeps it", function()
  local db = fresh("sweep")
  local base = cfg()
  base.optimizer = nil
  local sw = bl.sweep { name = "lr4", db = db, base = base, vary = { lr = { 4, 0.5 } } }
  T.eq(sw.total, 2)
  T.eq(#sw.runs, 2)
  T.eq(sw.failed, 0, "diverged is not failed")
  T.eq(sw.runs[1].status, "diverged")
  T.eq(sw.runs[2].status, "completed")
  T.eq(sw.best, sw.runs[2], "a diverged run is not the best")
  T.eq(sw.runs[1].lr, 4)
  -- the same sweep again gives both back from the store: status, reason and step as stored
  local again = bl.sweep { name = "lr4", db = db, base = base, vary = { lr = { 4, 0.5 } } }
  T.eq(again.resumed, 2)
  T.eq(again.runs[1].run_id, sw.runs[1].run_id)
  T.eq(again.runs[1].status, "diverged")
  T.eq(again.runs[1].stopped_by, "diverged")
  T.eq(again.runs[1].error, sw.runs[1].error)
  T.eq(again.runs[1].diverged_step, sw.runs[1].diverged_step)
  T.eq(again.runs[2].status, "completed")
  -- and the recommendation counts it as not completed
  local rec = bl.recommend(sw.runs)
  T.eq(rec.by_batch[1].batch, 1024)
  T.eq(rec.by_batch[1].runs, 2)
  T.eq(rec.by_batch[1].completed, 1)
  T.eq(rec.run, sw.runs[2], "recommended from the completed run")
  for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(db .. suffix) end
end)

T.done()

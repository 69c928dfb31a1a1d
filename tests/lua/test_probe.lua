-- bl.probe and bl.recommend{...one configuration...}: the prediction before a sweep on the
-- synthetic teacher task (B_noise is checked against the analytic value in
-- tests/unit/test_probe.c); the result's shape, the curve, the batches given, and errors.
local bl = require "batchlab"
local T = require "bltest"

local data = bl.dataset("synthetic", { task = "teacher", samples = 4000, dim = 10, noise = 0.5,
                                       validation = 0.25, seed = 2 })
local model = bl.model("logreg")
local function config(extra)
  local t = { dataset = data, model = model, batch = 64, optimizer = bl.optim.sgd{ lr = 0.005 },
              target = { val_loss = 0.3 }, probe_steps = 200, batch_limit = 128, threads = 1 }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

T.test("bl.probe predicts a curve over powers of two", function()
  local p = bl.probe(config())
  T.eq(#p.curve, 8)                    -- 1, 2, ..., 128
  T.eq(p.noise_batch, 64)
  T.eq(p.noise_steps, 200)
  T.eq(p.s_min_basis, "target")
  T.truthy(p.b_noise > 5 and p.b_noise < 500, "B_noise is plausible: " .. p.b_noise)
  T.truthy(p.seconds > 0, "the probe's cost")
  local best_seen = false
  for i, c in ipairs(p.curve) do
    T.eq(c.batch, 2 ^ (i - 1))
    T.truthy(c.step_time > 0, "a step time")
    T.eq(c.timed_steps, 20)
    T.truthy(math.abs(c.steps - p.s_min * (1 + p.b_noise / c.batch)) < 1e-6 * c.steps,
             "S(B) = S_min (1 + B_noise/B)")
    if i > 1 then T.truthy(c.steps < p.curve[i - 1].steps, "S(B) falls with B") end
    T.truthy(c.relative_time >= 1 - 1e-12, "relative to the best")
    T.eq(c.within, c.relative_time <= 1.1 + 1e-12)
    if c.batch == p.best then best_seen = true; T.eq(c.within, true) end
  end
  T.truthy(best_seen, "the best batch is on the curve")
  local found = false
  for _, b in ipairs(p.within) do if b == p.best then found = true end end
  T.truthy(found, "the best batch is within")
  T.truthy(p.summary:find("predicted best batch " .. p.best, 1, true), p.summary)
end)

T.test("batches given are timed as given; bl.recommend dispatches a configuration", function()
  local p = bl.recommend(config { batches = { 16, 48, 96 }, probe_steps = 40, time_steps = 3,
                                  rounds = 1, warmup_steps = 0, tie = 0.5 })
  T.eq(#p.curve, 3)
  T.eq(p.curve[2].batch, 48)
  T.eq(p.curve[3].timed_steps, 3)
  T.eq(p.tie, 0.5)
  T.truthy(p.summary:find("within 50%", 1, true), p.summary)
end)

T.test("bad inputs are clear errors", function()
  T.raises(function() bl.probe(config { target = false }) end, "target")
  T.raises(function() bl.probe(config { probe_step = 10 }) end, "did you mean 'probe_steps'")
  T.raises(function() bl.probe(config { batch = 4 }) end, "too small to measure the noise scale")
  T.raises(function() bl.probe(config { batches = { 64, 32 } }) end, "must be increasing")
  T.raises(function() bl.probe(config { batches = "all" }) end, "'batches' must be a list")
  T.raises(function() bl.probe(config { db = "x.db" }) end, "'db' is not accepted")
  T.raises(function() bl.probe(config { stop = function() end }) end, "'stop' is not accepted")
  T.raises(function() bl.probe(config { budget = "lots" }) end, "not a memory size")
  T.raises(function() bl.probe(config { probe_steps = 5 }) end, "'probe_steps' must be ≥ 20")
  T.raises(function() bl.probe(config { rounds = 100 }) end, "'rounds' must be in [1, 16], got 100")
  T.raises(function() bl.probe(config { batch = bl.scheduler("constant", { batch = 32 }) }) end,
           "not a schedule")
  T.raises(function() bl.probe(config { model = "mlp" }) end, "model")
end)

T.done()

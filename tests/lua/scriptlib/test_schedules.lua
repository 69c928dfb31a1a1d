-- Tests of batchlab.schedules and the named module batchlab.schedules.warmup_double.
local T = dofile(((arg and arg[0]) or ""):match("^(.*/)") .. "harness.lua")
local S = require "batchlab.schedules"

local NAN = 0 / 0
local HERE = "test_schedules.lua"

-- A training state as the engine shows it; `ep` is the fractional epoch.
local TRAIN = 1000
local function st(t)
  local ep = t.ep or ((t.samples or 0) / TRAIN)
  return {
    step = t.step or 0, epoch = math.floor(ep), epoch_progress = ep,
    samples = t.samples or math.floor(ep * TRAIN), train_size = TRAIN, wall = 0,
    batch = 32, lr = 0.1, gns = t.gns or NAN, last = nil,
  }
end

-- Batches (and LR factors) of a schedule along a list of states.
local function seq(s, states)
  local bs, lrs = {}, {}
  for i, x in ipairs(states) do
    local b, lr = s(x)
    bs[i], lrs[i] = b, lr
  end
  return bs, lrs
end
local function at_epochs(s, eps)
  local states = {}
  for i, e in ipairs(eps) do states[i] = st { ep = e } end
  return seq(s, states)
end

T.test("constant", function()
  local s = S.constant(64)
  T.eq(s(st {}), 64)
  T.eq(s(st { ep = 7 }), 64)
  T.eq(s.max_batch, 64)
  T.eq(s.name, "constant")
  T.eq(math.type(s(st {})), "integer")
  T.eq(S.constant { batch = 16 }(st {}), 16)
  T.eq(S.constant(32.0)(st {}), 32)
  T.raises(function() S.constant(0) end, "scheduler constant: option 'batch' must be a batch size in 1..2^31-1, got 0", HERE)
  T.raises(function() S.constant(1.5) end, "got a number (1.5)", HERE)
  T.raises(function() S.constant("64") end, "got a string", HERE)
end)

T.test("step: milestones in epochs, capped", function()
  local s = S.step { batch = 64, factor = 2, milestones = { 2, 4 }, max = 200 }
  T.same(at_epochs(s, { 0, 1, 1.999, 2, 3.5, 4, 10 }), { 64, 64, 64, 128, 128, 200, 200 })
  T.eq(s.max_batch, 200)
  T.eq(s.name, "step")
  -- epoch_progress a hair under the milestone still counts once `epoch` says it is done
  T.eq(s { step = 0, epoch = 2, epoch_progress = 1.9999999999, samples = 0 }, 128)
  T.eq(math.type(s(st { ep = 3 })), "integer")
end)

T.test("step: milestones in steps and samples units, uncapped", function()
  local s = S.step { batch = 32, milestones = { 1 } }
  T.same(at_epochs(s, { 0, 1 }), { 32, 64 })
  T.eq(s.max_batch, 64)
  local by_steps = S.step { batch = 10, factor = 3, milestones = { 100, 200 }, unit = "steps" }
  T.same(seq(by_steps, { st { step = 0 }, st { step = 99 }, st { step = 100 }, st { step = 250 } }),
    { 10, 10, 30, 90 })
  T.eq(by_steps.max_batch, 90)
  local by_samples = S.step { batch = 8, milestones = { 500 }, unit = "samples", name = "mine" }
  T.same(seq(by_samples, { st { samples = 499 }, st { samples = 500 } }), { 8, 16 })
  T.eq(by_samples.name, "mine")
  -- a factor below 1 shrinks the batch; max_batch is then the initial batch
  local shrink = S.step { batch = 256, factor = 0.5, milestones = { 1, 2 } }
  T.same(at_epochs(shrink, { 0, 1, 2 }), { 256, 128, 64 })
  T.eq(shrink.max_batch, 256)
end)

T.test("step: errors", function()
  T.raises(function() S.step { batch = 64, milestones = { 4, 2 } } end,
    "scheduler step: option 'milestones' must be strictly increasing, got 2 after 4", HERE)
  T.raises(function() S.step { batch = 64, milestones = { 1, 1 } } end,
    "scheduler step: option 'milestones' must be strictly increasing", HERE)
  T.raises(function() S.step { batch = 64, milestones = { -1 }, unit = "steps" } end,
    "option 'milestones': milestones must be ≥ 0", HERE)
  T.raises(function() S.step { batch = 64, milestones = { 1 }, unit = "hours" } end,
    "option 'unit' must be epochs, steps or samples", HERE)
  -- the plugin's defaults: no milestones is a constant batch, the batch defaults to 128
  T.same(at_epochs(S.step { batch = 64, milestones = {} }, { 0, 9 }), { 64, 64 })
  T.same(at_epochs(S.step { batch = 64 }, { 0, 9 }), { 64, 64 })
  T.same(at_epochs(S.step { milestones = { 1 } }, { 0, 1 }), { 128, 256 })
  T.raises(function() S.step { batch = 64, epochs = { 1 } } end, "unknown option 'epochs'", HERE)
  T.raises(function() S.step { batch = 64, milestones = { 1 }, milestone = { 2 } } end,
    "unknown option 'milestone'; did you mean 'milestones'?", HERE)
  T.raises(function() S.step { batch = 64, milestones = { 1 }, max = 32 } end, "option 'max' (32) must be ≥ 'batch' (64)", HERE)
  T.raises(function() S.step { batch = 64, milestones = { 1 }, factor = 0 } end, "option 'factor' must be > 0", HERE)
  T.raises(function() S.step { batch = 64, factor = 100, milestones = { 1, 2, 3, 4, 5, 6 } } end, "set option 'max'", HERE)
  T.raises(function() S.step(64) end, "schedules.step: expected a table of options, got number", HERE)
end)

T.test("smith: grow the batch, then decay the LR by the remaining factor", function()
  -- cap reached exactly at a milestone: 1/factor per milestone past it
  local s = S.smith { batch = 100, factor = 2, milestones = { 1, 2, 3, 4 }, max = 400 }
  local bs, lrs = at_epochs(s, { 0, 1, 2, 3, 4, 9 })
  T.same(bs, { 100, 200, 400, 400, 400, 400 })
  T.same(lrs, { 1, 1, 1, 0.5, 0.25, 0.25 })
  T.eq(s.max_batch, 400)
  T.eq(s.name, "smith")
  -- cap between milestones: as far as the cap allows, then the remaining factor on the LR
  local t = S.smith { batch = 128, factor = 5, milestones = { 1, 2, 3 }, max = 1000 }
  bs, lrs = at_epochs(t, { 0, 1, 2, 3 })
  T.same(bs, { 128, 640, 1000, 1000 })
  T.near(lrs[3], 1000 / 3200)
  T.near(lrs[4], 1000 / 16000)
  -- the noise scale ε/B always falls by factor^n, whichever way it is reached
  for n = 1, 4 do
    T.near(lrs[n] / bs[n], 1 / (128 * 5 ^ (n - 1)), 1e-12, "lr/B after " .. (n - 1) .. " milestones")
  end
  -- without a cap, only the batch grows
  local u = S.smith { batch = 32, factor = 2, milestones = { 1, 2 } }
  bs, lrs = at_epochs(u, { 0, 1, 2 })
  T.same(bs, { 32, 64, 128 })
  T.same(lrs, { 1, 1, 1 })
  T.eq(u.max_batch, 128)
  -- a fractional factor: the LR factor absorbs the rounding of the batch (as the C plugin)
  local f = S.smith { batch = 3, factor = 1.5, milestones = { 1 } }
  bs, lrs = at_epochs(f, { 0, 1 })
  T.same(bs, { 3, 5 })
  T.near(lrs[2], 5 / 4.5)
end)

T.test("smith: errors", function()
  -- the plugin's defaults: factor 5 and milestones 60, 120, 160 (the paper's)
  T.same(at_epochs(S.smith { batch = 128, milestones = { 1 } }, { 0, 1 }), { 128, 640 })
  T.same(at_epochs(S.smith {}, { 59, 60, 120, 160 }), { 128, 640, 3200, 16000 })
  T.raises(function() S.smith { batch = 128, factor = 1, milestones = { 1 } } end, "option 'factor' must be > 1", HERE)
  T.raises(function() S.smith { batch = 128, factor = 2, milestones = { 2, 1 } } end,
    "scheduler smith: option 'milestones' must be strictly increasing", HERE)
end)

T.test("linear_ramp", function()
  local s = S.linear_ramp { start = 32, stop = 256, samples = 1000, multiple = 32 }
  T.same(seq(s, { st { samples = 0 }, st { samples = 500 }, st { samples = 999 }, st { samples = 1000 },
    st { samples = 5000 } }), { 32, 160, 256, 256, 256 })
  T.eq(s.max_batch, 256)
  T.eq(s.name, "linear_ramp")
  local by_steps = S.linear_ramp { start = 10, stop = 20, steps = 10 }
  T.same(seq(by_steps, { st { step = 0 }, st { step = 5 }, st { step = 10 } }), { 10, 15, 20 })
  -- decreasing ramp
  local down = S.linear_ramp { start = 256, stop = 64, epochs = 2 }
  T.same(at_epochs(down, { 0, 1, 2, 3 }), { 256, 160, 64, 64 })
  T.eq(down.max_batch, 256)
  -- every value is an integer
  for i = 0, 1000, 37 do T.eq(math.type(s(st { samples = i })), "integer") end
  T.raises(function() S.linear_ramp { start = 32, stop = 256 } end, "one of 'epochs', 'steps', 'samples' is required", HERE)
  T.raises(function() S.linear_ramp { start = 32, stop = 256, epochs = -1 } end, "option 'epochs' must be a positive number", HERE)
  T.raises(function() S.linear_ramp { start = 32, stop = 256, epochs = 0 } end, "one of 'epochs', 'steps', 'samples' is required", HERE)
  T.raises(function() S.linear_ramp { start = 32, epochs = 1 } end, "missing required option 'stop'", HERE)
end)

T.test("exponential_ramp", function()
  local s = S.exponential_ramp { start = 32, stop = 512, epochs = 4 }
  T.same(at_epochs(s, { 0, 1, 2, 3, 4, 8 }), { 32, 64, 128, 256, 512, 512 })
  T.eq(s.max_batch, 512)
  local m = S.exponential_ramp { start = 16, stop = 1024, steps = 60, multiple = 16 }
  local prev = 0
  for step = 0, 70 do
    local b = m(st { step = step })
    T.truthy(b >= prev and b % 16 == 0 and b >= 16 and b <= 1024, "monotone multiples at step " .. step)
    prev = b
  end
  T.eq(prev, 1024)
end)

T.test("warmup", function()
  local s = S.warmup { batch = 256, start = 32, epochs = 2 }
  T.same(at_epochs(s, { 0, 1, 2, 5 }), { 32, 144, 256, 256 })
  T.eq(s.max_batch, 256)
  T.eq(s.name, "warmup")
  local m = S.warmup { batch = 128, start = 16, steps = 100, multiple = 16 }
  T.same(seq(m, { st { step = 0 }, st { step = 50 }, st { step = 100 } }), { 16, 80, 128 })
  T.raises(function() S.warmup { batch = 128, start = 16, steps = 100, multiple = 32 } end,
    "scheduler warmup: option 'start' (16) must be a multiple of 'multiple' (32)", HERE)
  T.raises(function() S.warmup { batch = 128, epochs = 1 } end, "scheduler warmup: missing required option 'start'", HERE)
end)

T.test("piecewise", function()
  local s = S.piecewise { { epoch = 0, batch = 32 }, { epoch = 2, batch = 128 }, { epoch = 5, batch = 512 } }
  T.same(at_epochs(s, { 0, 1.5, 2, 4.9, 5, 9 }), { 32, 32, 128, 128, 512, 512 })
  T.eq(s.max_batch, 512)
  T.eq(select("#", s(st {})), 1, "no LR factor when no breakpoint sets one")
  -- LR factors, by step; before the first breakpoint the first entry holds
  local l = S.piecewise { { step = 10, batch = 64, lr = 2 }, { step = 20, batch = 32 }, name = "pw" }
  local bs, lrs = seq(l, { st { step = 0 }, st { step = 10 }, st { step = 25 } })
  T.same(bs, { 64, 64, 32 })
  T.same(lrs, { 2, 2, 1 })
  T.eq(l.name, "pw")
  T.eq(l.max_batch, 64)
  local by_samples = S.piecewise { { samples = 0, batch = 8 }, { samples = 100, batch = 16 } }
  T.same(seq(by_samples, { st { samples = 99 }, st { samples = 100 } }), { 8, 16 })
end)

T.test("piecewise: errors", function()
  T.raises(function() S.piecewise {} end, "give at least one breakpoint", HERE)
  T.raises(function() S.piecewise { { epoch = 0, batch = 32 }, { step = 10, batch = 64 } } end,
    "uses 'step' but breakpoint 1 uses 'epoch'", HERE)
  T.raises(function() S.piecewise { { epoch = 2, batch = 32 }, { epoch = 1, batch = 64 } } end,
    "breakpoints must be increasing", HERE)
  T.raises(function() S.piecewise { { epoch = 0 } } end, "(breakpoint 1): option 'batch' is required", HERE)
  T.raises(function() S.piecewise { { epochs = 0, batch = 1 } } end, "unknown option 'epochs' (did you mean 'epoch'?)", HERE)
  T.raises(function() S.piecewise { { epoch = 0, batch = 32 }, foo = 1 } end, "unexpected key 'foo'", HERE)
end)

T.test("gns: adaptive, monotonic, at most one change per `every` steps, resets", function()
  local s = S.gns { k = 1, min = 32, max = 1024, multiple = 32, every = 10 }
  T.eq(s.needs_gns, true)
  T.eq(s.max_batch, 1024)
  T.eq(s.name, "gns")
  T.same(seq(s, {
    st { step = 0 },                 -- NaN: start at min
    st { step = 5, gns = 500 },      -- fewer than `every` steps since the start
    st { step = 10, gns = 500 },     -- 500 → nearest multiple of 32: 512
    st { step = 15, gns = 900 },     -- changed 5 steps ago: keeps 512
    st { step = 20, gns = 300 },     -- monotonic: keeps 512 (no change recorded)
    st { step = 25, gns = 600 },     -- 15 steps since the change: 608
    st { step = 30, gns = 5000 },    -- changed 5 steps ago
    st { step = 35, gns = 5000 },    -- capped at max
    st { step = 50, gns = NAN },     -- NaN later: keeps the batch
    st { step = 0 },                 -- a new run: starts over
    st { step = 10, gns = 10 },      -- below min
  }), { 32, 32, 512, 512, 512, 608, 608, 1024, 1024, 32, 32 })
  -- a step before the previous call's also starts a new run
  local r = S.gns { min = 32, max = 1024, multiple = 32, every = 1 }
  T.same(seq(r, { st { step = 100, gns = 700 }, st { step = 101, gns = 700 }, st { step = 7 } }), { 704, 704, 32 })
end)

T.test("gns: options and defaults", function()
  local s = S.gns { k = 0.5, max = 512, batch = 64, monotonic = false, every = 1 }
  T.same(seq(s, { st { step = 0 }, st { step = 1, gns = 400 }, st { step = 2, gns = 100 },
    st { step = 3, gns = 1e9 } }), { 64, 200, 50, 512 })
  local d = S.gns {}
  T.eq(d { step = 0, gns = nil }, 16, "default min 16; a missing gns counts as unmeasured")
  T.eq(d.max_batch, 4096)
  T.eq(S.gns { multiple = 32 } { step = 0 }, 32, "default min: the first multiple ≥ 16")
  T.raises(function() S.gns { max = 100, multiple = 32 } end,
    "scheduler gns: option 'max' (100) must be a multiple of 'multiple' (32)", HERE)
  T.raises(function() S.gns { max = 64, min = 128 } end, "'min' (128) must be ≤ 'max' (64)", HERE)
  T.raises(function() S.gns { max = 64, batch = 128 } end, "option 'batch' (128) must be in [min, max] = [16, 64]", HERE)
  T.raises(function() S.gns { max = 64, monotonic = "yes" } end, "option 'monotonic' must be a boolean", HERE)
  T.raises(function() S.gns { monotone = false } end, "unknown option 'monotone'; did you mean 'monotonic'?", HERE)
end)

T.test("schedules allocate nothing per call", function()
  local state = st { ep = 0.5, step = 500, gns = 300 }
  local list = {
    S.constant(32),
    S.step { batch = 64, milestones = { 1, 2, 3 }, max = 256 },
    S.smith { batch = 64, factor = 2, milestones = { 0.25, 2 }, max = 100 },
    S.linear_ramp { start = 32, stop = 256, epochs = 1, multiple = 8 },
    S.exponential_ramp { start = 32, stop = 256, epochs = 1 },
    S.warmup { batch = 128, start = 8, epochs = 1 },
    S.piecewise { { epoch = 0, batch = 32, lr = 1 }, { epoch = 0.25, batch = 64, lr = 0.5 } },
    S.gns { max = 1024, multiple = 32 },
    S.create("warmup_double", { batch = 64, max = 512 }),
  }
  for _, s in ipairs(list) do
    local kib = T.allocated(function(n)
      for i = 1, n do
        state.step = i
        s(state)
      end
    end, 100000)
    T.truthy(kib < 4, s.name .. " allocated " .. kib .. " KiB over 100000 calls")
  end
end)

T.test("get, create, is_schedule, wrap", function()
  T.eq(S.get("step"), S.step)
  T.eq(S.create("constant", { batch = 8 })(st {}), 8)
  local ctor = assert(S.get("warmup_double"))
  T.eq(type(ctor), "function")
  local none, msg = S.get("stepp")
  T.eq(none, nil)
  T.truthy(msg:find("no schedule named 'stepp' (did you mean 'step'?)", 1, true), msg)
  T.eq((S.get("../etc/passwd")), nil)
  T.raises(function() S.create("nope", {}) end, "no schedule named 'nope'", HERE)
  T.truthy(S.is_schedule(function() end))
  T.truthy(S.is_schedule(S.constant(1)))
  T.eq(S.is_schedule({}), false)
  T.eq(S.is_schedule(3), false)
  local w = S.wrap(function(s) return 16 * (s.epoch + 1) end, { max_batch = 64, name = "linear" })
  T.eq(w(st { ep = 2 }), 48)
  T.eq(w.max_batch, 64)
  T.eq(w.name, "linear")
  T.truthy(tostring(w):find("schedule linear (max batch 64)", 1, true))
  T.raises(function() S.wrap(function() end, {}) end, "schedules.wrap: option 'max_batch' is required", HERE)
end)

T.test("warmup_double (named module)", function()
  local s = S.create("warmup_double", { batch = 128, max = 1024, start = 16, warmup = 1, every = 2 })
  T.same(at_epochs(s, { 0, 0.5, 1, 2.9, 3, 5, 7, 20 }), { 16, 72, 128, 128, 256, 512, 1024, 1024 })
  T.eq(s.max_batch, 1024)
  T.eq(s.name, "warmup_double")
  T.truthy(S.is_schedule(s))
  local nw = S.create("warmup_double", { batch = 100, max = 300, warmup = 0 })
  T.same(at_epochs(nw, { 0, 1, 2, 3 }), { 100, 200, 300, 300 })
  T.raises(function() S.create("warmup_double", { batch = 128 }) end, "warmup_double: option 'max' is required")
  T.raises(function() S.create("warmup_double", { batch = 128, max = 256, evry = 2 }) end,
    "unknown option 'evry' (did you mean 'every'?)")
end)

T.done()

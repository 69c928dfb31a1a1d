-- Tests of batchlab.sweep: powers of two, grids, seeded random search, LR scaling.
local T = dofile(((arg and arg[0]) or ""):match("^(.*/)") .. "harness.lua")
local W = require "batchlab.sweep"

local HERE = "test_sweep.lua"

T.test("powers_of_two", function()
  T.same(W.powers_of_two(16, 1024), { 16, 32, 64, 128, 256, 512, 1024 })
  T.same(W.powers_of_two(1, 1), { 1 })
  T.same(W.powers_of_two(8.0, 32), { 8, 16, 32 })
  T.eq(math.type(W.powers_of_two(2, 4)[2]), "integer")
  T.raises(function() W.powers_of_two(48, 256) end, "sweep.powers_of_two: lo (48) must be a power of two ≥ 1", HERE)
  T.raises(function() W.powers_of_two(16, 100) end, "hi (100) must be a power of two", HERE)
  T.raises(function() W.powers_of_two(0, 4) end, "lo (0) must be a power of two", HERE)
  T.raises(function() W.powers_of_two(2.5, 4) end, "lo (2.5)", HERE)
  T.raises(function() W.powers_of_two(64, 16) end, "sweep.powers_of_two: lo (64) must be ≤ hi (16)", HERE)
  T.raises(function() W.powers_of_two(nil, 16) end, "lo (nil)", HERE)
end)

T.test("grid: cartesian product in sorted key order, last key fastest", function()
  local g = W.grid { seed = { 1, 2 }, batch = { 32, 64, 128 } }
  T.same(g, {
    { batch = 32, seed = 1 }, { batch = 32, seed = 2 },
    { batch = 64, seed = 1 }, { batch = 64, seed = 2 },
    { batch = 128, seed = 1 }, { batch = 128, seed = 2 },
  })
  -- the same whatever order the table was written in
  T.same(W.grid { batch = { 32, 64, 128 }, seed = { 1, 2 } }, g)
  -- base fields are copied into each; tables as values are kept by reference
  local hidden = { 256, 128 }
  local h = W.grid({ hidden = { hidden } , lr = { 0.1, 0.2 } }, { epochs = 3 })
  T.eq(#h, 2)
  T.eq(h[1].epochs, 3)
  T.eq(h[2].lr, 0.2)
  T.eq(h[2].hidden, hidden)
  T.truthy(h[1] ~= h[2])
  T.same(W.grid {}, { {} })
  T.raises(function() W.grid { batch = 32 } end, "sweep.grid: 'batch' must be a non-empty list of values", HERE)
  T.raises(function() W.grid { batch = {} } end, "non-empty list", HERE)
  T.raises(function() W.grid { 1, 2 } end, "keys must be parameter names", HERE)
  T.raises(function() W.grid("x") end, "sweep.grid: expected a table", HERE)
end)

T.test("rng: xoshiro256** seeded by splitmix64 matches the C reference", function()
  local _, z = W.splitmix64(0)
  T.eq(z, 0xe220a8397b1dcdaf)
  -- reference values from the published C code (xoshiro256starstar.c, splitmix64.c)
  local r = W.rng(1)
  T.eq(r:next(), 0xb3f2af6d0fc710c5)
  T.eq(r:next(), 0x853b559647364cea)
  T.eq(r:next(), 0x92f89756082a4514)
  local r2 = W.rng(2)
  T.eq(r2:next(), 0x1a28690da8a8d057)
  T.eq(W.rng(-5):next(), 0x7a01d79fc1d93784)
  -- floats in [0, 1)
  local g = W.rng(7)
  local lo, hi, sum = 1, 0, 0
  for _ = 1, 10000 do
    local u = g:random()
    if u < lo then lo = u end
    if u > hi then hi = u end
    sum = sum + u
  end
  T.truthy(lo >= 0 and hi < 1, "range")
  T.near(sum / 10000, 0.5, 0.02, "mean")
  for _ = 1, 1000 do
    local k = g:integer(3, 5)
    T.truthy(k >= 3 and k <= 5 and math.type(k) == "integer")
  end
  T.raises(function() W.rng(1.5) end, "sweep.rng: the seed must be an integer", HERE)
end)

local SPACE = {
  lr = { log_uniform = { 1e-4, 1e-1 } },
  batch = { choice = { 32, 64, 128 } },
  momentum = { uniform = { 0.8, 0.99 } },
  layers = { int_uniform = { 1, 3 } },
  optimizer = "sgd",
}

T.test("random_search: reproducible whatever math.random does", function()
  math.randomseed(123)
  local a = W.random_search { space = SPACE, n = 20, seed = 1 }
  math.randomseed(999)
  for _ = 1, 10 do math.random() end
  local b = W.random_search { space = SPACE, n = 20, seed = 1 }
  T.same(a, b)
  T.eq(#a, 20)
  local c = W.random_search { space = SPACE, n = 20, seed = 2 }
  T.truthy(not T.deep_eq(a, c), "another seed gives other configurations")
  -- the first n of a longer search are the same configurations
  local longer = W.random_search { space = SPACE, n = 30, seed = 1 }
  for i = 1, 20 do T.same(longer[i], a[i]) end
  local seen = {}
  for _, cfg in ipairs(a) do
    T.truthy(cfg.lr >= 1e-4 and cfg.lr < 1e-1, "lr range")
    T.truthy(cfg.momentum >= 0.8 and cfg.momentum < 0.99, "momentum range")
    T.truthy(cfg.batch == 32 or cfg.batch == 64 or cfg.batch == 128, "choice")
    T.truthy(cfg.layers >= 1 and cfg.layers <= 3 and math.type(cfg.layers) == "integer", "int_uniform")
    T.eq(cfg.optimizer, "sgd")
    seen[cfg.batch] = true
  end
  T.truthy(seen[32] and seen[64] and seen[128], "all choices appear in 20 draws")
  -- log-uniform: about half the draws below the geometric midpoint 10^-2.5
  local many = W.random_search { space = { lr = SPACE.lr }, n = 2000, seed = 3 }
  local below = 0
  for _, cfg in ipairs(many) do if cfg.lr < 10 ^ -2.5 then below = below + 1 end end
  T.near(below / 2000, 0.5, 0.06, "log-uniform median")
  local based = W.random_search { space = { lr = SPACE.lr }, n = 2, base = { epochs = 3 } }
  T.eq(based[2].epochs, 3)
end)

T.test("random_search: errors", function()
  T.raises(function() W.random_search { space = SPACE } end, "sweep.random_search: option 'n' is required", HERE)
  T.raises(function() W.random_search { space = { lr = { loguniform = { 1, 2 } } }, n = 1 } end,
    "'lr' must be one of", HERE)
  T.raises(function() W.random_search { space = { lr = { log_uniform = { 0, 1 } } }, n = 1 } end,
    "log_uniform needs 0 < low", HERE)
  T.raises(function() W.random_search { space = { lr = { uniform = { 2, 1 } } }, n = 1 } end,
    "uniform needs {low, high} with low ≤ high", HERE)
  T.raises(function() W.random_search { space = { b = { choice = {} } }, n = 1 } end, "choice needs a non-empty list", HERE)
  T.raises(function() W.random_search { space = { b = { 32, 64 } }, n = 1 } end, "'b' must be one of", HERE)
  T.raises(function() W.random_search { space = SPACE, n = 1, sed = 1 } end, "did you mean 'seed'?", HERE)
end)

T.test("scaled_lr", function()
  T.near(W.scaled_lr(0.05, 128, 512), 0.2)
  T.near(W.scaled_lr(0.05, 128, 512, "linear"), 0.2)
  T.near(W.scaled_lr(0.05, 128, 32, "linear"), 0.0125)
  T.near(W.scaled_lr(0.1, 100, 400, "sqrt"), 0.2)
  T.eq(W.scaled_lr(0.1, 100, 400, "none"), 0.1)
  T.raises(function() W.scaled_lr(0.1, 100, 400, "cubic") end,
    'sweep.scaled_lr: rule (argument 4) must be "linear", "sqrt" or "none", got "cubic"', HERE)
  T.raises(function() W.scaled_lr(0, 100, 400) end, "base_lr (argument 1) must be a positive number", HERE)
  T.raises(function() W.scaled_lr(0.1, 100, -1) end, "batch (argument 3)", HERE)
end)

T.done()

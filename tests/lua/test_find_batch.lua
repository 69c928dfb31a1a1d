-- bl.find_max_batch: both modes under a memory budget, the margin, the trial list, and errors.
local bl = require "batchlab"
local T = require "bltest"

local data = bl.dataset("synthetic", { task = "blobs", samples = 2000, dim = 32, classes = 4,
                                       validation = 0, test = 0 })
local model = bl.model("mlp", { hidden = {256, 256} })

T.test("power mode doubles until a trial runs out of memory", function()
  local r = bl.find_max_batch { dataset = data, model = model, budget = "6MB" }
  T.truthy(r.largest >= 2, "something fits")
  T.eq(r.recommended, math.floor(r.largest * 0.95))
  local last = r.trials[#r.trials]
  T.eq(last.fits, false)
  T.eq(last.batch, 2 * r.largest)
  for i = 1, #r.trials - 1 do
    T.eq(r.trials[i].fits, true)
    T.eq(r.trials[i].batch, 2 ^ i)
    T.truthy(r.trials[i].memory > 0 and r.trials[i].memory <= 6 * 1024 * 1024, "memory within budget")
  end
end)

T.test("binsearch refines between the last fit and the first failure", function()
  local p = bl.find_max_batch { dataset = data, model = model, budget = "6MB" }
  local b = bl.find_max_batch { dataset = data, model = model, budget = 6 * 1024 * 1024,
                                mode = "binsearch", margin = 0 }
  T.truthy(b.largest >= p.largest and b.largest < 2 * p.largest, "binsearch in [power, 2·power)")
  T.eq(b.recommended, b.largest)
  local fits_above = false
  for _, t in ipairs(b.trials) do
    if t.fits and t.batch > b.largest then fits_above = true end
  end
  T.eq(fits_above, false)
end)

T.test("the max limit stops the search", function()
  local r = bl.find_max_batch { dataset = data, model = model, budget = "1GB", max = 64 }
  T.eq(r.largest, 64)
  T.eq(r.hit_max, true)
end)

T.test("bad arguments are clear errors", function()
  T.raises(function() bl.find_max_batch { dataset = data, model = model } end, "memory budget")
  T.raises(function() bl.find_max_batch { dataset = data, model = model, budget = "lots" } end,
           "not a memory size")
  T.raises(function() bl.find_max_batch { dataset = data, model = model, budget = "1KB" } end,
           "not even batch")
  T.raises(function() bl.find_max_batch { dataset = data, model = model, budget = "1GB",
                                          mode = "linear" } end, "power, binsearch")
  T.raises(function() bl.find_max_batch { dataset = data, model = model, budjet = "1GB" } end,
           "did you mean 'budget'")
  T.raises(function() bl.find_max_batch { model = model, budget = "1GB" } end, "dataset")
end)

T.done()

--- batchlab.schedules.warmup_double — an example of a named schedule module.
--
-- A module `batchlab.schedules.<name>` on `package.path` (or on `BATCHLAB_PATH`) is found by
-- name: `bl.scheduler("warmup_double", {...})` or `require("batchlab.schedules").create(
-- "warmup_double", {...})`. It returns a constructor `function(opts) → schedule`; the schedule
-- follows the contract in `batchlab.schedules` (a callable table with `max_batch` and `name`).
-- Copy this file to start your own.
--
-- This one warms the batch up linearly from `start` to `batch` over `warmup` epochs, then
-- doubles it every `every` epochs until it reaches `max`:
--
--     epoch:  0 ─ warmup ─┬─ every ─┬─ every ─┬─ …
--     batch:  start ↗ batch│ 2·batch │ 4·batch │ … ≤ max
--
-- Options: `batch` (required), `max` (required), `start` (default batch/8, at least 1),
-- `warmup` (epochs, default 1; 0 for none), `every` (epochs, default 1), `multiple` (the
-- warmup's batches are rounded to the nearest multiple of it, default 1).
--
-- @module batchlab.schedules.warmup_double
-- @usage
--   local s = require("batchlab.schedules").create("warmup_double",
--                                                  { batch = 128, max = 1024, every = 2 })

local C = require "batchlab._check"

local floor = math.floor
local WHO = "warmup_double"

return function(opts)
  C.options(WHO, opts, { "batch", "max", "start", "warmup", "every", "multiple", "name" })
  local batch = C.count(WHO, opts, "batch", { required = true })
  local max = C.count(WHO, opts, "max", { required = true })
  if max < batch then C.fail(WHO, "'max' must be ≥ 'batch'") end
  local start = C.count(WHO, opts, "start", { default = math.max(1, batch // 8) })
  if start > batch then C.fail(WHO, "'start' must be ≤ 'batch'") end
  local warmup = C.number(WHO, opts, "warmup", { default = 1, ge = 0 })
  local every = C.number(WHO, opts, "every", { default = 1, gt = 0 })
  local multiple = C.count(WHO, opts, "multiple", { default = 1 })
  local name = opts.name or WHO

  -- Precompute the doubled batches: doubled[n + 1] = min(batch · 2^n, max).
  local doubled, b = {}, batch
  repeat
    doubled[#doubled + 1] = b
    b = math.min(b * 2, max)
  until doubled[#doubled] == max
  local last = #doubled
  local slope = warmup > 0 and (batch - start) / warmup or 0

  local function call(_, state)
    local e, c = state.epoch_progress or 0, state.epoch or 0
    if c > e then e = c end
    if e < warmup then
      local w = floor((start + slope * e) / multiple + 0.5) * multiple
      if w < start then w = start end
      return w
    end
    local n = floor((e - warmup) / every + 1e-9) + 1
    if n > last then n = last end
    return doubled[n]
  end

  return setmetatable({ name = name, max_batch = max },
    { __call = call, __name = "batchlab.schedule" })
end

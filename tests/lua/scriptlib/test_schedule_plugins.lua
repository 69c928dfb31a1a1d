-- Every built-in Lua schedule that wraps a scheduler plugin gives what the plugin gives: the
-- same batch sizes and LR factors step by step over a synthetic training run, the same
-- max_batch and needs_gns, and the same error for the same bad options.
local T = dofile(((arg and arg[0]) or ""):match("^(.*/)") .. "harness.lua")
local S = require "batchlab.schedules"
local bl = require "batchlab"

local NAN = 0 / 0
local TRAIN = 1000

-- A synthetic run: batches of 37 samples, a noise scale that rises and wobbles (NaN at first),
-- then a second run starting at step 0 (schedules that keep state start over).
local function states()
  local out, samples = {}, 0
  for run = 1, 2 do
    samples = 0
    for step = 0, 400 do
      local ep = samples / TRAIN
      out[#out + 1] = { step = step, epoch = math.floor(ep), epoch_progress = ep,
        samples = samples, train_size = TRAIN, wall = step * 0.01, batch = 37, lr = 0.1,
        gns = step < 20 and NAN or (30 + 3 * step + (step % 7) * 11) / run }
      samples = samples + 37
    end
  end
  return out
end
local RUN = states()

-- name → { good option tables }, { bad option tables }
local CASES = {
  constant = { { { batch = 64 }, { batch = 1 } }, { { batch = 0 }, { batch = 1.5 }, { bach = 2 } } },
  gns = { { {}, { k = 2, min = 32, max = 1024, multiple = 32, every = 10 },
            { batch = 64, monotonic = false, every = 1, max = 512 } },
          { { max = 100, multiple = 32 }, { min = 128, max = 64 }, { k = 0 }, { monotone = true } } },
  linear_ramp = { { { start = 32, stop = 256, samples = 5000, multiple = 32 },
                    { start = 256, stop = 64, epochs = 7.5 }, { start = 10, stop = 20, steps = 300 } },
                  { { start = 32, stop = 256 }, { start = 30, stop = 64, steps = 5, multiple = 4 },
                    { start = 32, epochs = 1 }, { start = 8, stop = 16, steps = 1, samples = 2 } } },
  step = { { { batch = 64, factor = 2, milestones = { 2, 4 }, max = 200 },
             { batch = 10, factor = 3, milestones = { 100, 200 }, unit = "steps" },
             { batch = 8, milestones = { 500, 4000.5 }, unit = "samples" },
             { batch = 256, factor = 0.5, milestones = { 0.25, 2.5 } } },
           { { milestones = { 2, 1 } }, { batch = 64, milestones = { 1 }, max = 32 }, { factor = 0 },
             { factor = 100, milestones = { 1, 2, 3, 4, 5, 6 } }, { epochs = { 1 } }, { unit = "hours" } } },
  smith = { { { batch = 100, factor = 2, milestones = { 1, 2, 3, 4 }, max = 400 },
              { batch = 128, factor = 5, milestones = { 1, 2, 3 }, max = 1000 },
              { batch = 3, factor = 1.5, milestones = { 50, 150 }, unit = "steps" },
              { milestones = { 0.5, 3 } } },
            { { factor = 1 }, { milestones = { 2, 1 } }, { batch = 128, max = 100 } } },
  exponential_ramp = { { { start = 16, stop = 1024, epochs = 10 }, { start = 16, stop = 1024, steps = 250, multiple = 16 } },
                       { { start = 0, stop = 16, steps = 1 }, { start = 16, stop = 32, epochs = -1 } } },
  breakpoints = { { { at = { 0, 500, 3000 }, batch = { 32, 64, 256 }, lr = { 1, 2, 8 } },
                    { at = { 10, 100 }, batch = { 16, 8 }, unit = "steps" },
                    { at = { 1.5, 4 }, batch = { 7, 70 }, lr = { 0.5, 3 }, unit = "epochs" } },
                  { { at = { 0, 10 }, batch = { 8 } }, { at = { 10, 5 }, batch = { 1, 2 } },
                    { at = { 0 }, batch = { 0 } }, { at = { 0 }, batch = { 8 }, lr = { 0 } },
                    { at = { 0 }, batch = { 8 }, unit = "days" }, { batch = { 8 } } } },
  warmup = { { { batch = 256, start = 32, epochs = 8 }, { batch = 128, start = 16, steps = 100, multiple = 16 } },
             { { batch = 128, epochs = 1 }, { batch = 128, start = 16, steps = 100, multiple = 32 } } },
}

local function strip(msg) return (tostring(msg):gsub("^[^:]*:%d+: ", "")) end

for name, case in pairs(CASES) do
  T.test(name .. " wraps the plugin", function()
    T.truthy(bl.scheduler(name, case[1][1]):kind() == "plugin", name .. " is a plugin")
    for i, opts in ipairs(case[1]) do
      local lua = S[name](opts)
      local plugin = assert(bl._util.schedule(name, opts))
      T.eq(lua.max_batch, plugin.max_batch, name .. " max_batch")
      T.eq(lua.needs_gns or false, plugin.needs_gns, name .. " needs_gns")
      local seen = {}
      for j, st in ipairs(RUN) do
        local b1, f1 = lua(st)
        local b2, f2 = plugin(st)
        if b1 ~= b2 or f1 ~= f2 then
          error(("%s options #%d, state %d (step %d): Lua %s, %s; plugin %s, %s"):format(name, i, j,
            st.step, b1, f1, b2, f2))
        end
        seen[b1] = true
      end
      local distinct = 0
      for _ in pairs(seen) do distinct = distinct + 1 end
      T.truthy(distinct > 1 or name == "constant", name .. " options #" .. i .. " changed the batch")
    end
    for _, opts in ipairs(case[2]) do
      local ok, err = pcall(S[name], opts)
      local none, perr = bl._util.schedule(name, opts)
      T.eq(ok, false, name .. " refuses")
      T.eq(none, nil, name .. " plugin refuses")
      T.eq(strip(err), perr)
    end
  end)
end

T.done()

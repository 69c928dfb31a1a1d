-- tensorboard = "DIR" on bl.train and bl.sweep: an event file per run whose records are read
-- back here (framing and CRC-32C checked by a bitwise implementation in Lua).
local bl = require "batchlab"
local T = require "bltest"

local data, model = T.data(), T.model()

local root = os.tmpname()
os.remove(root)
root = root .. "_tensorboard"

-- CRC-32C, bit at a time (independent of the C table version)
local function crc32c(s)
  local crc = 0xFFFFFFFF
  for i = 1, #s do
    crc = crc ~ s:byte(i)
    for _ = 1, 8 do
      crc = (crc & 1) ~= 0 and ((crc >> 1) ~ 0x82F63B78) or (crc >> 1)
    end
  end
  return crc ~ 0xFFFFFFFF
end

local function masked(s)
  local c = crc32c(s)
  return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
end

-- The records of an event file, each checked.
local function records(path)
  local f = assert(io.open(path, "rb"))
  local buf = f:read("a")
  f:close()
  local out, pos = {}, 1
  while pos <= #buf do
    local len, hcrc = string.unpack("<I8I4", buf, pos)
    T.eq(hcrc, masked(buf:sub(pos, pos + 7)), "length CRC of record " .. #out + 1)
    local body = buf:sub(pos + 12, pos + 11 + len)
    T.eq(#body, len, "record " .. #out + 1 .. " is complete")
    T.eq(string.unpack("<I4", buf, pos + 12 + len), masked(body), "data CRC of record " .. #out + 1)
    out[#out + 1] = body
    pos = pos + 16 + len
  end
  return out
end

local function count(recs, needle)
  local n = 0
  for _, r in ipairs(recs) do
    if r:find(needle, 1, true) then n = n + 1 end
  end
  return n
end

T.test("bl.train writes points, hparams and the end status", function()
  local seen = 0
  local r = bl.train(T.cfg(data, model, { epochs = 3, label = "tb run/one",
    tensorboard = root, on_point = function() seen = seen + 1 end }))
  T.eq(r.status, "completed")
  T.eq(seen, #r.history, "on_point is still called")
  T.contains(r.tensorboard, root .. "/tb_run/one/events.out.tfevents.")
  local recs = records(r.tensorboard)
  T.contains(recs[1], "brain.Event:2")
  T.eq(count(recs, "_hparams_/experiment"), 1)
  T.eq(count(recs, "_hparams_/session_start_info"), 1)
  T.eq(count(recs, "train/loss"), #r.history + 1, "one event per point (and the experiment)")
  T.eq(count(recs, "schedule/batch_size"), #r.history)
  -- the hyperparameters: bl.train's scalar keys and the config echo
  for _, name in ipairs { "batch", "epochs", "seed", "lr", "optimizer", "model", "dataset" } do
    T.truthy(recs[2]:find(name, 1, true), "hparam " .. name)
  end
  T.eq(recs[2]:find("tb run", 1, true), nil, "the label is not an hparam")
  -- the last record: SessionEndInfo{status = 1 (success), end_time_secs}
  local last = recs[#recs]
  T.contains(last, "_hparams_/session_end_info")
  T.contains(last, "\x22\x0b\x08\x01\x11")
  -- the point events carry the training step (the last point: the last record with a batch)
  local step = r.history[#r.history].step
  T.truthy(step < 128, "a one-byte step varint")
  local last_point
  for i = #recs, 1, -1 do
    if recs[i]:find("schedule/batch_size", 1, true) then last_point = recs[i]; break end
  end
  T.contains(last_point, "\x10" .. string.char(step) .. "\x2a")
end)

-- The entries of a directory (sorted).
local function entries(dir)
  local out = {}
  local p = assert(io.popen("ls -A '" .. dir .. "'"))
  for name in p:lines() do out[#out + 1] = name end
  p:close()
  return out
end

local function dir_of(path) return path:match("^(.*)/[^/]*$") end

-- The simple_value of the scalar `tag` (Summary.Value{tag 1, simple_value 2}) in a record.
local function scalar(rec, tag)
  local at = rec:find("\x0a" .. string.char(#tag) .. tag .. "\x15", 1, true)
  return at and string.unpack("<f", rec, at + 3 + #tag)
end

-- Issue 14, found 7: runs sharing one directory are drawn by TensorBoard as one.
T.test("two runs of one label get a directory each, one event file in each", function()
  local dir = root .. "/same"
  local a = bl.train(T.cfg(data, model, { epochs = 1, label = "twin", tensorboard = dir }))
  local b = bl.train(T.cfg(data, model, { epochs = 1, label = "twin", tensorboard = dir }))
  T.eq(dir_of(a.tensorboard), dir .. "/twin")
  T.eq(dir_of(b.tensorboard), dir .. "/twin-2")
  T.eq(#entries(dir), 2, "two run directories")
  T.eq(#entries(dir .. "/twin"), 1, "one event file")
  T.eq(#entries(dir .. "/twin-2"), 1, "one event file")
end)

T.test("two unlabelled runs started in one second get a directory each", function()
  local dir = root .. "/unlabelled"
  local paths = {}
  for i = 1, 2 do
    paths[i] = bl.train(T.cfg(data, model, { epochs = 1, tensorboard = dir })).tensorboard
  end
  T.truthy(dir_of(paths[1]) ~= dir_of(paths[2]), "two directories")
  T.eq(#entries(dir), 2)
  for i = 1, 2 do T.eq(#entries(dir_of(paths[i])), 1, "one event file") end
end)

T.test("the HParams hold the LR scaling, target, model and schedule; final figures logged",
  function()
  local r = bl.train(T.cfg(data, model, { epochs = 3, label = "full", tensorboard = root,
    lr_scaling = { rule = "linear", base_batch = 16, warmup_epochs = 1 },
    target = { metric = "val_accuracy", at_least = 0.05 },
    batch = bl.scheduler("step", { batch = 32, factor = 2, milestones = { 2 } }) }))
  T.eq(r.status, "completed")
  T.truthy(r.reached_target, "the target (a low one) is reached")
  local recs = records(r.tensorboard)
  local experiment, start = recs[2], recs[3]
  T.contains(experiment, "_hparams_/experiment")
  T.contains(start, "_hparams_/session_start_info")
  for _, name in ipairs { "lr_scaling", "base_batch", "warmup_epochs", "warmup_steps",
      "lr_schedule", "target_metric", "target_value", "model.hidden", "model.activation",
      "scheduler", "scheduler.factor", "scheduler.milestones" } do
    T.contains(experiment, "\x0a" .. string.char(#name) .. name, "declared: " .. name)
    T.contains(start, "\x0a" .. string.char(#name) .. name, "valued: " .. name)
  end
  T.contains(start, "\x1a\x06linear", "the rule")
  T.contains(start, "\x1a\x0cval_accuracy", "the target's metric")
  T.contains(start, string.pack("<d", 0.05), "the target's value")
  T.contains(start, string.pack("<d", 16), "the base batch")
  T.contains(start, "\x1a\x04step", "the scheduler")
  -- test accuracy and loss, time and steps to target: metrics of the table and final scalars
  local finals = {}
  for _, rec in ipairs(recs) do
    for _, tag in ipairs { "test/accuracy", "test/loss", "target/time_to_target",
        "target/steps_to_target" } do
      local v = scalar(rec, tag)
      if v then finals[tag] = v end
    end
  end
  for _, tag in ipairs { "test/accuracy", "test/loss", "target/time_to_target",
      "target/steps_to_target" } do
    T.contains(experiment, "\x12" .. string.char(#tag) .. tag, "an HParams metric: " .. tag)
  end
  T.eq(finals["test/accuracy"], string.unpack("<f", string.pack("<f", r.final.test_accuracy)))
  T.eq(finals["test/loss"], string.unpack("<f", string.pack("<f", r.final.test_loss)))
  T.eq(finals["target/time_to_target"], string.unpack("<f", string.pack("<f", r.time_to_target)))
  T.eq(finals["target/steps_to_target"], r.steps_to_target)
  T.contains(recs[#recs], "_hparams_/session_end_info")
end)

T.test("a run without a target declares target_value but gives it no value", function()
  local r = bl.train(T.cfg(data, model, { epochs = 1, label = "notarget",
    tensorboard = root, batch = bl.scheduler("warmup_double", { batch = 32, max = 64, start = 16 }) }))
  local recs = records(r.tensorboard)
  T.contains(recs[2], "\x0a\x0ctarget_value")
  T.eq(recs[3]:find("target_value", 1, true), nil)
  T.contains(recs[3], "\x1a\x04none", "target_metric none")
  T.contains(recs[3], "\x1a\x0dwarmup_double", "the Lua schedule's name")
  T.contains(recs[3], "\x0a\x0fscheduler.start", "the Lua schedule's options")
  T.contains(recs[3], "\x0a\x0dscheduler.max", "the Lua schedule's options")
  T.eq(count(recs, "target/time_to_target"), 1, "declared, never logged")
end)

T.test("a run without a label is named after its model", function()
  local r = bl.train(T.cfg(data, model, { epochs = 1, tensorboard = root }))
  T.contains(r.tensorboard, root .. "/mlp-")
end)

T.test("bl.sweep gives every run its own directory", function()
  local sw = bl.sweep { name = "tbsweep", base = T.cfg(data, model, { epochs = 1 }),
    vary = { batch = { 16, 32 } }, tensorboard = root }
  T.eq(sw.failed, 0)
  T.contains(sw.runs[1].tensorboard, root .. "/tbsweep_batch=16/")
  T.contains(sw.runs[2].tensorboard, root .. "/tbsweep_batch=32/")
  local recs = records(sw.runs[2].tensorboard)
  T.contains(recs[#recs], "_hparams_/session_end_info")
end)

T.test("a diverged run ends with STATUS_FAILURE", function()
  local r = bl.train(T.cfg(data, model, { epochs = 2, label = "diverged", tensorboard = root,
    optimizer = bl.optim.sgd { lr = 1e30 } }))
  T.eq(r.status, "diverged")
  local recs = records(r.tensorboard)
  T.contains(recs[#recs], "\x22\x0b\x08\x02\x11")
end)

T.test("errors", function()
  T.raises(function() bl.train(T.cfg(data, model, { tensorboard = 5 })) end,
    "'tensorboard' must be a string")
  local file = root .. "/plainfile"
  local f = assert(io.open(file, "w"))
  f:close()
  T.raises(function() bl.train(T.cfg(data, model, { tensorboard = file .. "/logs" })) end,
    "bl.train", file)
end)

os.execute("rm -rf '" .. root .. "'")
T.done()

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
  -- the point events carry the training step
  local step = r.history[#r.history].step
  T.truthy(step < 128, "a one-byte step varint")
  T.contains(recs[#recs - 1], "\x10" .. string.char(step) .. "\x2a")
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

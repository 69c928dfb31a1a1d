--- batchlab.tables — results as aligned text tables for the terminal.
--
--   print_runs(runs [, opts])            prints a table of run results; returns the text
--   format_table(rows, columns [, opts]) the same text as a string (nothing printed)
--   format_value(v, kind)                one cell
--   print_recommendation(rec [, opts])   prints bl.recommend's result: the pick, the sentence,
--                                        one row per candidate, the critical batch size three
--                                        ways; returns the text
--   format_recommendation(rec)           the same text as a string
--
-- `runs` is a list of run result tables (what `bl.train` returns, or `sweep.runs`; a sweep
-- object with a `runs` field is accepted too). A **column** is either a name or a table:
--
--  * a name of a known column: batch, status, stopped_by, time_to_target (steps × the median
--    step time), wall_time_to_target, step_time_median, steps_to_target, epochs_to_target,
--    samples_to_target, val_accuracy, val_loss, train_loss, train_accuracy, test_accuracy,
--    test_loss, time, steps, epochs, samples, lr, seed, gns, samples_per_sec,
--    max_batch_used. Known columns look in the places a run keeps them (`run.final.val_accuracy`,
--    `run.final.test_accuracy`, `run.params.batch` or `run.batch`, ...).
--  * any other name: looked up as `row[name]`, then `row.params[name]`, then
--    `row.final[name]`; a dotted path ("final.val_loss") is followed as written.
--  * a table `{ key = "lr", title = "LR", format = "%.3g" | kind | function(v, row) → string,
--    get = function(row) → value, align = "left" | "right" }` (all fields but one of key/get
--    optional).
--
-- Kinds of formatting: "percent" (0.8734 → "87.34%"), "seconds" (12.3 → "12.3 s", 245 →
-- "4m 05s"), "int", "count" (an integer where a negative value means "none", like the engine's
-- steps_to_target = -1), "number" ("%.4g"), "string". Missing values — nil, NaN — print as "—".
-- Numbers align right, text left. Widths count UTF-8 characters.
--
-- Options (`opts`): `columns` (print_runs; default batch, status, time_to_target,
-- steps_to_target, val_accuracy, test_accuracy, time), `best` (a row index, a row, or a
-- function(row) → score where the lowest score wins; that row is marked with "*"),
-- `best_label` (a footnote for the mark, e.g. "fastest to target"), `title` (a line above),
-- `out` (print_runs: a file to write to, default io.stdout).
--
-- @module batchlab.tables
-- @usage
--   local tables = require "batchlab.tables"
--   tables.print_runs(sweep.runs, { best = function(r) return r.time_to_target end,
--                                   best_label = "fastest to target" })

local C = require "batchlab._check"

local M = {}

local type, format, floor, tostring = type, string.format, math.floor, tostring
local huge = math.huge

M.MISSING = "—"
M.DEFAULT_COLUMNS = { "batch", "status", "time_to_target", "steps_to_target", "val_accuracy",
  "test_accuracy", "time" }

--- Indexes t[k] when t is a table, or a userdata whose __index does not raise.
local function get(t, k)
  local ty = type(t)
  if ty == "table" then return t[k] end
  if ty == "userdata" then
    local ok, v = pcall(function() return t[k] end)
    if ok then return v end
  end
  return nil
end
M.get = get

local function is_missing(v)
  return v == nil or (type(v) == "number" and v ~= v)
end

--- The batch a run used: params.batch, batch or config.batch; a schedule shows its name.
local function batch_of(r)
  local b = get(get(r, "params"), "batch")
  if b == nil then b = get(r, "batch") end
  if b == nil then b = get(get(r, "config"), "batch") end
  if type(b) == "table" or type(b) == "userdata" then
    b = get(b, "name") or "schedule"
  elseif type(b) == "function" then
    b = "lua"
  end
  return b
end
M.batch_of = batch_of

local function first_of(...)
  local n = select("#", ...)
  for i = 1, n do
    local v = select(i, ...)
    if v ~= nil then return v end
  end
  return nil
end

--- Getter for a generic name: row[name], row.params[name], row.final[name]; dotted paths.
local function generic_getter(name)
  if name:find(".", 1, true) then
    local parts = {}
    for p in name:gmatch("[^%.]+") do parts[#parts + 1] = p end
    return function(row)
      local v = row
      for i = 1, #parts do v = get(v, parts[i]) end
      return v
    end
  end
  return function(row)
    return first_of(get(row, name), get(get(row, "params"), name), get(get(row, "final"), name))
  end
end

local function final_getter(name)
  return function(row) return first_of(get(get(row, "final"), name), get(row, name)) end
end

local KNOWN = {
  batch = { title = "batch", kind = "int", get = batch_of },
  status = { title = "status", kind = "string" },
  stopped_by = { title = "stopped by", kind = "string" },
  time_to_target = { title = "time→target", kind = "seconds" },
  wall_time_to_target = { title = "wall→target", kind = "seconds" },
  step_time_median = { title = "step (s)", kind = "%.3g" },
  steps_to_target = { title = "steps→target", kind = "count" },
  samples_to_target = { title = "samples→target", kind = "count" },
  epochs_to_target = { title = "epochs→target", kind = "%.2f" },
  val_accuracy = { title = "val acc", kind = "percent", get = final_getter("val_accuracy") },
  val_loss = { title = "val loss", kind = "%.4f", get = final_getter("val_loss") },
  train_loss = { title = "train loss", kind = "%.4f", get = final_getter("train_loss") },
  train_accuracy = { title = "train acc", kind = "percent", get = final_getter("train_accuracy") },
  test_accuracy = { title = "test acc", kind = "percent", get = final_getter("test_accuracy") },
  test_loss = { title = "test loss", kind = "%.4f", get = final_getter("test_loss") },
  time = { title = "time", kind = "seconds" },
  steps = { title = "steps", kind = "count" },
  samples = { title = "samples", kind = "count" },
  epochs = { title = "epochs", kind = "%.2f" },
  lr = { title = "lr", kind = "%.4g" },
  seed = { title = "seed", kind = "int" },
  gns = { title = "GNS", kind = "%.0f", get = final_getter("gns") },
  samples_per_sec = { title = "samples/s", kind = "%.0f", get = final_getter("samples_per_sec") },
  max_batch_used = { title = "max batch", kind = "count" },
}

--- The kind of formatting suited to a column name not in the known list.
local function infer_kind(name)
  local last = name:match("([^%.]+)$") or name
  if last:find("accuracy", 1, true) then return "percent" end
  if last == "time" or last:find("time_", 1, true) or last:find("_time", 1, true)
    or last == "wall" or last:find("seconds", 1, true) then
    return "seconds"
  end
  if last == "status" or last == "name" or last == "stopped_by" then return "string" end
  return "auto"
end

local seconds = require("batchlab")._util.format_seconds   -- the C formatter (report, CLI)

--- One cell: `v` formatted as `kind` (see the module header; a string with '%' is a format).
function M.format_value(v, kind)
  if is_missing(v) then return M.MISSING end
  local tv = type(v)
  if tv == "boolean" then return v and "yes" or "no" end
  if tv ~= "number" then return tostring(v) end
  if v == huge or v == -huge then return v > 0 and "∞" or "-∞" end
  kind = kind or "auto"
  if kind == "percent" then return format("%.2f%%", v * 100) end
  if kind == "seconds" then return seconds(v) end
  if kind == "count" then
    if v < 0 then return M.MISSING end
    return format("%d", floor(v + 0.5))
  end
  if kind == "int" then return format("%d", floor(v + 0.5)) end
  if kind == "string" then return tostring(v) end
  if kind == "number" then return format("%.4g", v) end
  if kind == "auto" then
    if math.type(v) == "integer" then return format("%d", v) end
    return format("%.4g", v)
  end
  if type(kind) == "string" and kind:find("%", 1, true) then return format(kind, v) end
  C.fail("tables.format_value", "unknown kind '" .. tostring(kind) .. "'")
end

--- A column spec made complete: title, getter, formatter, alignment.
local function resolve(col, i)
  local who = "tables.format_table"
  local spec
  if type(col) == "string" then
    spec = { key = col }
  elseif type(col) == "table" then
    spec = col
    C.options(format("%s (column %d)", who, i), col, { "key", "title", "format", "get", "align" }, 3)
  else
    C.fail(who, format("column %d must be a name or a table, got %s", i, C.typename(col)), 3)
  end
  local key = spec.key
  if key ~= nil and type(key) ~= "string" then
    C.fail(who, format("column %d: 'key' must be a string", i), 3)
  end
  if key == nil and spec.get == nil then
    C.fail(who, format("column %d needs a 'key' or a 'get' function", i), 3)
  end
  local known = key and KNOWN[key]
  local getter = spec.get or (known and known.get) or
    (known and function(row) return get(row, key) end) or generic_getter(key)
  local kind = spec.format or (known and known.kind) or (key and infer_kind(key)) or "auto"
  local fmt
  if type(kind) == "function" then
    fmt = kind
  else
    fmt = function(v) return M.format_value(v, kind) end
  end
  return {
    title = spec.title or (known and known.title) or key or ("column " .. i),
    get = getter, fmt = fmt, kind = kind, align = spec.align,
  }
end

local function width(s)
  return utf8.len(s) or #s
end

local function pad(s, w, right)
  local n = w - width(s)
  if n <= 0 then return s end
  if right then return string.rep(" ", n) .. s end
  return s .. string.rep(" ", n)
end

--- Which row is best: an index, a row, or a function(row) → score (lowest wins).
local function best_index(rows, best)
  if best == nil then return nil end
  if math.type(best) == "integer" then return best end
  if type(best) == "function" then
    local bi, bs = nil, huge
    for i, r in ipairs(rows) do
      local s = best(r)
      if type(s) == "number" and s == s and s < bs then bi, bs = i, s end
    end
    return bi
  end
  for i, r in ipairs(rows) do
    if r == best then return i end
  end
  return nil
end

--- The rows as an aligned text table (ends with a newline).
-- @param rows list of tables (run results or any records)
-- @param columns list of column names or specs (see the module header)
-- @param opts optional: `best`, `best_label`, `title`
-- @return string
function M.format_table(rows, columns, opts)
  local who = "tables.format_table"
  if type(rows) ~= "table" then C.fail(who, "rows (argument 1) must be a list, got " .. C.typename(rows)) end
  if type(columns) ~= "table" or #columns == 0 then
    C.fail(who, "columns (argument 2) must be a non-empty list of column names or specs")
  end
  opts = opts or {}
  local cols = {}
  for i, c in ipairs(columns) do cols[i] = resolve(c, i) end
  local bi = best_index(rows, opts.best)

  -- cells and widths
  local cells, widths, right = {}, {}, {}
  for j, c in ipairs(cols) do
    widths[j] = width(c.title)
    right[j] = c.align == "right" or (c.align == nil and c.kind ~= "string")
  end
  for i, r in ipairs(rows) do
    local line = {}
    for j, c in ipairs(cols) do
      local v = c.get(r)
      local s = c.fmt(v, r)
      if type(s) ~= "string" then s = tostring(s) end
      -- text in a numeric column (a schedule's name in "batch") still aligns right
      line[j] = s
      if width(s) > widths[j] then widths[j] = width(s) end
    end
    cells[i] = line
  end

  local out = {}
  local mark = bi and true or false
  if opts.title then out[#out + 1] = tostring(opts.title) end
  local head = {}
  for j, c in ipairs(cols) do head[j] = pad(c.title, widths[j], right[j]) end
  out[#out + 1] = ((mark and "  " or "") .. table.concat(head, "  ")):gsub("%s+$", "")
  local rule = {}
  for j = 1, #cols do rule[j] = string.rep("-", widths[j]) end
  out[#out + 1] = (mark and "  " or "") .. table.concat(rule, "  ")
  for i, line in ipairs(cells) do
    local padded = {}
    for j = 1, #cols do padded[j] = pad(line[j], widths[j], right[j]) end
    local prefix = mark and (i == bi and "* " or "  ") or ""
    out[#out + 1] = (prefix .. table.concat(padded, "  ")):gsub("%s+$", "")
  end
  if mark and bi and rows[bi] and opts.best_label then
    out[#out + 1] = "* " .. tostring(opts.best_label)
  end
  return table.concat(out, "\n") .. "\n"
end

--- Prints run results as a table (see the module header for `opts`); returns the text.
function M.print_runs(runs, opts)
  local who = "tables.print_runs"
  if type(runs) == "table" and get(runs, "runs") ~= nil and #runs == 0 then runs = runs.runs end
  if type(runs) ~= "table" then C.fail(who, "expected a list of runs, got " .. C.typename(runs)) end
  opts = opts or {}
  C.options(who, opts, { "columns", "best", "best_label", "title", "out" })
  local text = M.format_table(runs, opts.columns or M.DEFAULT_COLUMNS, opts)
  local out = opts.out or io.stdout
  out:write(text)
  return text
end

-- ---- the recommendation (bl.recommend's result: the C in analysis/recommend.c decides, this
-- only lays it out) -------------------------------------------------------------------------

local function interval(lo, hi, kind)
  if is_missing(lo) or is_missing(hi) or lo == hi then return "" end
  local function f(v) return v == huge and "∞" or M.format_value(v, kind) end
  return f(lo) .. " – " .. f(hi)
end

local function estimate(v)
  if v == huge then return "above the largest batch" end
  return is_missing(v) and M.MISSING or format("%.3g", v)
end

--- The recommendation as text (see print_recommendation).
function M.format_recommendation(rec)
  local who = "tables.format_recommendation"
  if type(rec) ~= "table" or rec.by_candidate == nil then
    C.fail(who, "expected the result of bl.recommend, got " .. C.typename(rec))
  end
  local out = {}
  out[#out + 1] = ("Recommendation: %s. %s"):format(rec.pick.label, rec.sentence)
  out[#out + 1] = ""
  local columns = {
    { title = "candidate", get = function(c) return c.label end, align = "left" },
    { title = "runs", get = function(c) return c.runs end, format = "int" },
    { title = "time to target", get = function(c) return c.time_to_target end,
      format = "seconds" },
    { title = "95% interval", get = function(c) return interval(c.time_lo, c.time_hi, "seconds") end },
    { title = "tied", get = function(c) return c.tied and "tied" or "" end },
    { title = "Pareto", get = function(c) return c.pareto and "yes" or "" end },
    { title = "regime", get = function(c) return c.regime ~= "unknown" and c.regime or "" end,
      align = "left" },
    { title = "samples vs perfect", get = function(c)
        return not is_missing(c.overhead) and format("%+.0f%%", 100 * c.overhead) or nil end },
    { title = "val acc", get = function(c) return c.val_accuracy end, format = "percent" },
    { title = "gap", get = function(c)
        return not is_missing(c.gap) and format("%+.2f", 100 * c.gap) or nil end },
    { title = "lr", get = function(c) return c.lr end, format = "%.4g" },
  }
  out[#out + 1] = M.format_table(rec.by_candidate, columns,
    { best = function(c) return c == rec.pick and 0 or 1 end, best_label = "the pick" })
  local cbs, fit = rec.cbs or {}, (rec.cbs or {}).fit
  out[#out + 1] = "Critical batch size, three ways:"
  if fit and fit.valid then
    out[#out + 1] = ("  fit S(B) = S_min + E_min/B   B_crit ≈ %s  [%s]  R² = %.3f, n = %d%s%s")
      :format(estimate(fit.b_crit), interval(fit.lo, fit.hi, "number"), fit.r2, fit.n,
              fit.few_points and " (fewer than 4 batch sizes)" or "",
              fit.trusted and "" or " — not trusted: evaluation too coarse")
  else
    out[#out + 1] = "  fit S(B) = S_min + E_min/B   " .. (fit and "no B_crit in range" or "not made (fewer than 3 batch sizes)")
  end
  out[#out + 1] = ("  20%% overhead (from batch %s) B_20 ≈ %s  [%s]"):format(
    estimate(cbs.b_ref), estimate(cbs.b20), interval(cbs.b20_lo, cbs.b20_hi, "number"))
  if cbs.gns then
    out[#out + 1] = ("  noise scale B_simple          %s  [%s]  over %d runs"):format(
      estimate(cbs.gns), interval(cbs.gns_lo, cbs.gns_hi, "number"), cbs.gns_runs)
  else
    out[#out + 1] = "  noise scale B_simple          not measured (measure_gns = true)"
  end
  if cbs.branched then
    out[#out + 1] = ("  branched training             %s  [%s]"):format(
      estimate(cbs.branched.batch), interval(cbs.branched.lo, cbs.branched.hi, "number"))
  end
  return table.concat(out, "\n") .. "\n"
end

--- Prints bl.recommend's result (opts.out: a file, default io.stdout); returns the text.
function M.print_recommendation(rec, opts)
  opts = opts or {}
  C.options("tables.print_recommendation", opts, { "out" })
  local text = M.format_recommendation(rec)
  local out = opts.out or io.stdout
  out:write(text)
  return text
end

return M

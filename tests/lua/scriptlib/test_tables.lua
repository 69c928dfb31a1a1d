-- Tests of batchlab.tables: cell formatting, alignment, missing values, the best-row mark.
local T = dofile(((arg and arg[0]) or ""):match("^(.*/)") .. "harness.lua")
local TB = require "batchlab.tables"

local NAN = 0 / 0
local HERE = "test_tables.lua"

T.test("format_value", function()
  local f = TB.format_value
  T.eq(f(0.8734, "percent"), "87.34%")
  T.eq(f(1, "percent"), "100.00%")
  T.eq(f(0.4213, "seconds"), "0.42 s")
  T.eq(f(12.34, "seconds"), "12.3 s")
  T.eq(f(245, "seconds"), "4m 05s")
  T.eq(f(7325, "seconds"), "2h 02m")
  T.eq(f(1500, "count"), "1500")
  T.eq(f(-1, "count"), "—")
  T.eq(f(12.6, "int"), "13")
  T.eq(f(0.000123456, "number"), "0.0001235")
  T.eq(f(3, "auto"), "3")
  T.eq(f(0.5, "auto"), "0.5")
  T.eq(f(0.5, "%.3f"), "0.500")
  T.eq(f(nil, "percent"), "—")
  T.eq(f(NAN, "seconds"), "—")
  T.eq(f(math.huge), "∞")
  T.eq(f("completed", "string"), "completed")
  T.eq(f(true), "yes")
  T.eq(TB.MISSING, "—")
end)

local RUNS = {
  { params = { batch = 32 }, status = "completed", time_to_target = 42.5, steps_to_target = 3000,
    final = { val_accuracy = 0.8612, val_loss = 0.41 }, test_accuracy = 0.8533, time = 61.2 },
  { params = { batch = 256 }, status = "completed", time_to_target = 18.25, steps_to_target = 1250,
    final = { val_accuracy = 0.8701, val_loss = 0.39 }, test_accuracy = 0.8650, time = 95 },
  { batch = 1024, status = "diverged", time_to_target = NAN, steps_to_target = -1,
    final = { val_accuracy = NAN }, test_accuracy = nil, time = 3.5 },
}

T.test("format_table: exact text", function()
  local text = TB.format_table(RUNS, { "batch", "status", "time_to_target", "steps_to_target", "val_accuracy" })
  T.eq(text, table.concat({
    "batch  status     time→target  steps→target  val acc",
    "-----  ---------  -----------  ------------  -------",
    "   32  completed       42.5 s          3000   86.12%",
    "  256  completed       18.2 s          1250   87.01%",
    " 1024  diverged             —             —        —",
    "",
  }, "\n"))
end)

T.test("format_table: best mark, label and title", function()
  local text = TB.format_table(RUNS, { "batch", "time_to_target" },
    { best = function(r) return r.time_to_target end, best_label = "fastest", title = "Sweep" })
  T.eq(text, table.concat({
    "Sweep",
    "  batch  time→target",
    "  -----  -----------",
    "     32       42.5 s",
    "*   256       18.2 s",
    "   1024            —",
    "* fastest",
    "",
  }, "\n"))
  -- best as an index or as the row itself
  T.truthy(TB.format_table(RUNS, { "batch" }, { best = 1 }):find("\n*    32\n", 1, true))
  T.truthy(TB.format_table(RUNS, { "batch" }, { best = RUNS[3] }):find("\n*  1024", 1, true))
end)

T.test("format_table: columns are aligned (display width)", function()
  local text = TB.format_table(RUNS, { "batch", "status", "val_accuracy", "test_accuracy", "time", "val_loss" })
  local widths = {}
  for line in text:gmatch("[^\n]+") do widths[#widths + 1] = utf8.len(line) end
  for i = 2, #widths do T.eq(widths[i], widths[1], "line " .. i) end
end)

T.test("format_table: custom columns, generic names, dotted paths", function()
  local rows = { { name = "a", final = { gns = 812.4 }, params = { lr = 0.05 }, extra = { x = 2 } } }
  local text = TB.format_table(rows, {
    { key = "name", title = "run", align = "left" },
    "lr",                                             -- known: row.lr, missing here
    "gns",                                            -- known: final.gns
    "extra.x",                                        -- dotted path
    { title = "double", get = function(r) return r.final.gns * 2 end, format = "%.1f" },
    { key = "params.lr", format = function(v) return "η=" .. v end },
  })
  T.eq(text, table.concat({
    "run  lr  GNS  extra.x  double  params.lr",
    "---  --  ---  -------  ------  ---------",
    "a     —  812        2  1624.8     η=0.05",
    "",
  }, "\n"))
  -- a generic name looks in params and final
  T.truthy(TB.format_table(rows, { "momentum", "val_accuracy" }):find("—", 1, true))
  T.truthy(TB.format_table({ { params = { momentum = 0.9 } } }, { "momentum" }):find("0.9", 1, true))
end)

T.test("batch of a scheduled run shows the schedule's name", function()
  local sched = setmetatable({ name = "smith", max_batch = 512 }, { __call = function() return 1 end })
  T.eq(TB.batch_of({ params = { batch = sched } }), "smith")
  T.eq(TB.batch_of({ batch = function() end }), "lua")
  T.eq(TB.batch_of({ config = { batch = 64 } }), 64)
end)

T.test("print_runs writes the table and returns it", function()
  local written = {}
  local out = { write = function(_, s) written[#written + 1] = s end }
  local text = TB.print_runs(RUNS, { out = out })
  T.eq(table.concat(written), text)
  T.truthy(text:find("test acc", 1, true) and text:find("1m 01s", 1, true))
  -- a sweep object with `runs`
  local again = TB.print_runs({ runs = RUNS }, { out = out, columns = { "batch" } })
  T.truthy(again:find("1024", 1, true))
  T.raises(function() TB.print_runs(RUNS, { colums = { "batch" } }) end,
    "tables.print_runs: unknown option 'colums' (did you mean 'columns'?)", HERE)
end)

T.test("format_table: errors", function()
  T.raises(function() TB.format_table(RUNS, {}) end, "columns (argument 2) must be a non-empty list", HERE)
  T.raises(function() TB.format_table(RUNS, { 3 }) end, "column 1 must be a name or a table", HERE)
  T.raises(function() TB.format_table(RUNS, { { title = "x" } }) end, "column 1 needs a 'key' or a 'get' function", HERE)
  T.raises(function() TB.format_table(RUNS, { { key = "x", fmt = "%d" } }) end, "unknown option 'fmt'", HERE)
  T.raises(function() TB.format_table(nil, { "batch" }) end, "rows (argument 1) must be a list", HERE)
end)

T.done()

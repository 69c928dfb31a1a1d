--- batchlab.recommend — the recommendation after a sweep.
--
--   recommend(runs [, opts]) → { pick =, tied =, pareto =, by_candidate =, cbs =, sentence =,
--                                batch =, reason =, ... } | nil, message
--   fit_steps(points)        → { s_min =, e_min =, b_crit =, r2 =, ... } | nil, message
--   print(rec [, opts])      prints it as tables.print_recommendation does
--
-- (The module itself is callable: `require("batchlab.recommend")(runs)`.)
--
-- A thin wrapper: `bl.recommend` and `bl.fit_steps` are the C recommendation that
-- `batchlab report` uses too (core/src/analysis/recommend.c, batchlab/recommend.h), so a
-- script and the report recommend the same thing in the same words. docs/recommend.md
-- explains the rules; docs/lua-api.md lists every field.
--
-- In short: every fixed batch size and every schedule (by its name) is a candidate; runs that
-- are LR-tuning trials (`run.tune.best == false`) are left out. Per candidate the median
-- time-to-target over its runs and a seeded bootstrap 95 % interval. Candidates within
-- max(5 %, the typical spread) of the fastest, or whose interval overlaps the fastest's, are
-- tied; the pick is the smallest fixed batch among them. The critical batch size is given
-- three ways (`cbs`): the S(B) = S_min + E_min/B fit with a bootstrap interval, the
-- 20 %-overhead batch B_20 (Zhang et al. 2024), the gradient noise scale B_simple; and the
-- branched-training estimate when `opts.branched = {batch =, lo =, hi =}` is given.
--
-- @module batchlab.recommend

local bl = require "batchlab"
local tables = require "batchlab.tables"

local M = { recommend = bl.recommend, fit_steps = bl.fit_steps, print = tables.print_recommendation }

return setmetatable(M, { __call = function(_, ...) return bl.recommend(...) end })

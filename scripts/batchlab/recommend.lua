--- batchlab.recommend — a batch size recommendation from the runs of a sweep.
--
--   recommend(runs [, opts]) → { batch =, reason =, ... } | nil, message
--   fit_steps(points)        → { s_min =, e_min =, b_crit =, r2 =, ... } | nil, message
--
-- (The module itself is callable: `require("batchlab.recommend")(runs)`.)
--
-- A thin wrapper: both are `bl.recommend` and `bl.fit_steps`, the C recommendation that
-- `batchlab report` uses too (core/src/analysis/recommend.c, batchlab/recommend.h), so a
-- script and the report recommend the same batch in the same words. See docs/lua-api.md.
--
-- `runs` is a list of run result tables (or a sweep object with a `runs` field). Each run's
-- batch is `params.batch` or `batch`; it has a `status` ("completed" counts; a missing status
-- counts as completed), `time_to_target` and `steps_to_target` (NaN, nil or negative when
-- the target was not reached) and `final.val_accuracy`. Runs whose batch is not a number (a
-- schedule) are left out.
--
-- The rule:
--
--  1. Among completed runs that reached the target, the batch with the lowest median
--     time-to-target over its runs wins (ties go to the smaller batch).
--  2. If no run reached the target, the batch of the completed run with the best final
--     `val_accuracy` (or `opts.metric`, with `opts.higher_better`, by default true when the
--     metric's name contains "accuracy") wins.
--
-- When steps-to-target is known for at least 3 batch sizes, the explanation also fits
-- S(B) = S_min + E_min / B by least squares on 1/B (McCandlish et al. 2018; Shallue et al.
-- 2018) and reports the critical batch size B_crit = E_min / S_min and the regime of the
-- chosen batch: perfect scaling, near B_crit, diminishing returns or the plateau.
--
-- The result: `batch`, `reason` (one paragraph), `basis` ("time_to_target" or the metric),
-- `run` (a representative run of that batch), `regime`, `by_batch` (one summary per batch
-- size, sorted: batch, runs, completed, reached, time_to_target (median), steps_to_target
-- (min), metric (best value)), and `fit` (the fit_steps result, when made).
--
-- @module batchlab.recommend

local bl = require "batchlab"

local M = { recommend = bl.recommend, fit_steps = bl.fit_steps }

return setmetatable(M, { __call = function(_, ...) return bl.recommend(...) end })

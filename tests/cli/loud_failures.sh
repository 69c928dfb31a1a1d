#!/usr/bin/env bash
# Issue 14, found 2: a failed run is announced on stderr with its reason as it ends, the script
# ends with a summary of the runs that failed or diverged, and --fail-on-error (or
# BATCHLAB_FAIL_ON_ERROR=1) makes a failed run fail the command (exit 3). The same for runs of a
# sweep that fail on a corrupt results store.
. "$(dirname "$0")/lib/common.sh"
S=$SCRATCH

# ---- a schedule that returns 0 after 5 steps
cat >"$S/zero.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 200, dim = 4, classes = 2 })
local r = bl.train { dataset = data, model = bl.model("logreg"), max_steps = 20, max_batch = 8,
                     label = "zero-after-5", quiet = true,
                     batch = function(s) if s.step >= 5 then return 0 end return 8 end }
local ok = bl.train { dataset = data, model = bl.model("logreg"), max_steps = 3, batch = 8,
                      label = "fine", quiet = true }
print("script done", r.status, ok.status)
LUA
run "$BATCHLAB" run --no-db "$S/zero.lua"
expect_status 0
expect_out "script done	failed	completed"
expect_err "batchlab: run 'zero-after-5' failed: batch schedule (function at"
expect_err "returned batch 0"
expect_err "batchlab: 1 run did not complete (1 failed, 0 diverged):"
expect_err "  zero-after-5: failed: batch schedule"
case "$ERR" in *"'fine'"*) fail "a completed run was announced as a failure" ;; esac
# the announcement comes as the run ends, before the script goes on (the summary after it)
first=$(printf '%s\n' "$ERR" | grep -n "run 'zero-after-5' failed" | head -1 | cut -d: -f1)
summary=$(printf '%s\n' "$ERR" | grep -n "did not complete" | cut -d: -f1)
[ "$first" -lt "$summary" ] || fail "the failure was not announced before the summary"

run "$BATCHLAB" run --no-db --fail-on-error "$S/zero.lua"
expect_status 3
expect_out "script done"
expect_err "did not complete"
BATCHLAB_FAIL_ON_ERROR=1 run "$BATCHLAB" run --no-db "$S/zero.lua"
expect_status 3
BATCHLAB_FAIL_ON_ERROR=0 run "$BATCHLAB" run --no-db "$S/zero.lua"
expect_status 0

# ---- nothing failed: no summary, exit 0 even with --fail-on-error
run "$BATCHLAB" run --no-db --fail-on-error -e '
local bl = require "batchlab"
bl.train { dataset = bl.dataset("synthetic", { samples = 200, dim = 4, classes = 2 }),
           model = bl.model("logreg"), max_steps = 3, batch = 8, quiet = true }'
expect_status 0
case "$ERR" in *"did not complete"*) fail "a summary without failures" ;; esac

# ---- a sweep on a corrupt results store: every run fails, each one said at once
db="$S/corrupt.db"
run "$BATCHLAB" run --db "$db" -e '
local bl = require "batchlab"
for seed = 1, 3 do
  bl.train { dataset = bl.dataset("synthetic", { samples = 200, dim = 4, classes = 2 }),
             model = bl.model("logreg"), max_steps = 20, batch = 8, quiet = true, seed = seed,
             eval_every = { steps = 1 } }
end'
expect_status 0
python3 - "$db" <<'PY'
import os, sys
path = sys.argv[1]
size = os.path.getsize(path)
with open(path, "r+b") as f:         # keep the header page, scramble the rest
    f.seek(4096)
    f.write(bytes((i * 151 + 7) % 256 for i in range(size - 4096)))
PY
cat >"$S/sweep.lua" <<'LUA'
local bl = require "batchlab"
local s = bl.sweep { name = "corrupt", quiet = true,
                     base = { dataset = bl.dataset("synthetic", { samples = 200, dim = 4, classes = 2 }),
                              model = bl.model("logreg"), max_steps = 3 },
                     vary = { batch = { 8, 16 } } }
print("sweep done", s.failed)
LUA
run "$BATCHLAB" run --db "$db" "$S/sweep.lua"
expect_status 0
expect_out "sweep done	2"
expect_err "batchlab: run 'corrupt batch=8' failed:"
expect_err "batchlab: run 'corrupt batch=16' failed:"
expect_err "2 runs did not complete (2 failed, 0 diverged)"
run "$BATCHLAB" run --db "$db" --fail-on-error "$S/sweep.lua"
expect_status 3

# ---- the help and the docs say it
run "$BATCHLAB" run --help
expect_out "--fail-on-error"
expect_out "3 a run failed"
grep -q -- "--fail-on-error" "$BATCHLAB_SOURCE_DIR/docs/lua-api.md" ||
    fail "docs/lua-api.md does not document --fail-on-error"
echo "ok"

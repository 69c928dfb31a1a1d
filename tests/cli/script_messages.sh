#!/usr/bin/env bash
# Issue 14, found 10: messages that help. A bad LR factor from a batch schedule names the
# function and its line; out of memory names the batch and what to do, not an internal call
# (bl_net_reserve). (A syntax error without a useless traceback: tests/cli/run_errors.sh.)
. "$(dirname "$0")/lib/common.sh"
S=$SCRATCH
cat >"$S/factor.lua" <<'LUA'
local bl = require "batchlab"
local r = bl.train { dataset = bl.dataset("synthetic", { samples = 200, dim = 4, classes = 2 }),
                     model = bl.model("logreg"), max_steps = 10, max_batch = 8, quiet = true,
                     batch = function(s)
                       return 8, -0.5
                     end }
print(r.status, r.error)
LUA
run "$BATCHLAB" run --no-db "$S/factor.lua"
expect_status 0
expect_out "failed	batch schedule (function at"
expect_out "factor.lua:4) returned LR factor -0.5 at step 1"

# (under AddressSanitizer the failed allocation must come back as NULL, as without it)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1" run "$BATCHLAB" run --no-db -e '
local bl = require "batchlab"
bl.train { dataset = bl.dataset("synthetic", { samples = 200, dim = 4, classes = 2 }),
           model = bl.model("mlp"), max_steps = 1, max_batch = 100000000, quiet = true,
           batch = function() return 8 end }'
expect_status 1
expect_err "max_batch 100000000 does not fit in memory"
expect_err "give a smaller max_batch, or micro_batch"
case "$ERR" in *bl_net_reserve*) fail "the message names an internal function" ;; esac
echo "ok"

#!/usr/bin/env bash
# resume = true and a batch function (issue 14, found 3), as a user meets it: the same script
# run twice resumes its run; the script edited so its function returns 256 instead of 16 (a
# literal, or the upvalue it reads) trains a new run instead of giving back the old one.
. "$(dirname "$0")/lib/common.sh"
db="$SCRATCH/fr.db"
rm -f "$db" "$db-wal" "$db-shm"
script() {  # $1: the upvalue, $2: the literal
    cat >"$SCRATCH/fr.lua" <<LUA
local bl = require "batchlab"
local k = $1
local r = bl.train { dataset = bl.dataset("synthetic", { samples = 300, dim = 4, classes = 2 }),
                     model = bl.model("logreg"), max_steps = 3, max_batch = 256, quiet = true,
                     experiment = "fr", resume = true, label = "f",
                     batch = function(state) return math.min(k, $2) end }
print(("run %d resumed %s batch %d"):format(r.run_id, tostring(r.resumed), r.max_batch_used))
LUA
}
script 16 512
run "$BATCHLAB" run --db "$db" "$SCRATCH/fr.lua"
expect_status 0
expect_out "run 1 resumed nil batch 16"
run "$BATCHLAB" run --db "$db" "$SCRATCH/fr.lua"
expect_status 0
expect_out "run 1 resumed true batch 16"
script 256 512                                   # the upvalue changed
run "$BATCHLAB" run --db "$db" "$SCRATCH/fr.lua"
expect_status 0
expect_out "run 2 resumed nil batch 256"
script 256 16                                    # the literal changed
run "$BATCHLAB" run --db "$db" "$SCRATCH/fr.lua"
expect_status 0
expect_out "run 3 resumed nil batch 16"
echo "function_resume.sh: all checks passed"

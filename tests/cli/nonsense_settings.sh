#!/usr/bin/env bash
# Issue 14, found 5: nonsense settings are refused with a message that says what was meant,
# the same from bl.train (the run spec) and from the command line: an accuracy target given as
# a percentage ("did you mean 0.90?"), also for `report --target`; epochs given as 0 or less
# (not "no budget", not silently 1 epoch); --batch beside --scheduler (ignored before); a batch
# larger than the training set (allocated silently before).
. "$(dirname "$0")/lib/common.sh"
DATA=(--dataset synthetic -d samples=300 -d dim=4 -d classes=2 -d validation=100)

run "$BATCHLAB" train --model logreg "${DATA[@]}" --target 90 --no-db --quiet
expect_status 2
expect_err "did you mean 0.90?"
run "$BATCHLAB" train --model logreg "${DATA[@]}" --target 'val_accuracy>=95.5' --no-db --quiet
expect_status 2
expect_err "did you mean 0.955?"

run "$BATCHLAB" train --model logreg "${DATA[@]}" --epochs 0 --no-db --quiet
expect_status 2
expect_err "'epochs' must be > 0, got 0"
run "$BATCHLAB" train --model logreg "${DATA[@]}" --epochs -1 --no-db --quiet
expect_status 2
expect_err "'epochs' must be > 0, got -1"
case "$ERR" in *"no budget"*) fail "epochs was given, yet 'no budget'" ;; esac

run "$BATCHLAB" train --model logreg "${DATA[@]}" --batch 32 --scheduler step --no-db --quiet
expect_status 2
expect_err "--scheduler step chooses every batch"
expect_err "--sched-opt batch=32"

run "$BATCHLAB" train --model logreg "${DATA[@]}" --batch 100000 --no-db --quiet
expect_status 1
expect_err "batch 100000 is larger than the 200 training samples"

# the same checks from bl.train
lua_train() {
    run "$BATCHLAB" run --no-db -e "
local bl = require 'batchlab'
local ok, err = pcall(bl.train, { dataset = bl.dataset('synthetic', { samples = 300, dim = 4,
    classes = 2, validation = 100 }), model = bl.model('logreg'), quiet = true, $1 })
print(ok, err)"
    expect_status 0
}
lua_train "batch = 8, epochs = 1, target = 90"
expect_out "did you mean 0.90?"
lua_train "batch = 8, epochs = 1, target = { val_accuracy = 90 }"
expect_out "did you mean 0.90?"
lua_train "batch = 8, epochs = 1, target = { metric = 'train_accuracy', at_least = 1.5 }"
expect_out "is a fraction in [0, 1], got 1.5"
lua_train "batch = 8, epochs = 0"
expect_out "'epochs' must be > 0, got 0"
lua_train "batch = 8, epochs = -1"
expect_out "'epochs' must be > 0, got -1"
lua_train "batch = 100000, epochs = 1"
expect_out "batch 100000 is larger than the 200 training samples"
# a loss target is not a fraction: accepted
lua_train "batch = 8, epochs = 1, target = { val_loss = 3 }"
expect_out "true"

# report --target: the same rule
db="$SCRATCH/r.db"
run "$BATCHLAB" run --db "$db" -e "
local bl = require 'batchlab'
bl.train { dataset = bl.dataset('synthetic', { samples = 300, dim = 4, classes = 2,
           validation = 100 }), model = bl.model('logreg'), batch = 20, max_steps = 3,
           quiet = true, experiment = 'e' }"
expect_status 0
run "$BATCHLAB" report --db "$db" --experiment e --target 95 -o "$SCRATCH/r.html"
expect_status 2
expect_err "did you mean 0.95?"
[ ! -e "$SCRATCH/r.html" ] || fail "report wrote a page for a nonsense target"
run "$BATCHLAB" report --db "$db" --experiment e --target 0.95 -o "$SCRATCH/r.html"
expect_status 0
echo "ok"

#!/usr/bin/env bash
# batchlab train records its runs like batchlab run does: --db / --no-db / $BATCHLAB_DB,
# --experiment, --label, --target, --eval-every, --resume; `runs`, `show` and `report` work on
# them; Ctrl-C records the run as interrupted and exits 130. Its flags are the run spec's
# settings: the bl.train keys of docs/lua-api.md, the same bounds and "did you mean".
. "$(dirname "$0")/lib/common.sh"
DATA=(--dataset synthetic -d task=blobs -d samples=1500 -d dim=8 -d classes=3 -d validation=300 -d test=300)
DB=$SCRATCH/train.db

run "$BATCHLAB" train --model mlp -m hidden=16 "${DATA[@]}" --epochs 2 --batch 50 --lr 0.1 \
    --db "$DB" --experiment cli-exp --label first --target 'val_accuracy>=0.3' \
    --eval-every steps=10 --tensorboard "$SCRATCH/tb" --quiet
expect_status 0
expect_out "status completed (epochs)"
expect_out "run 1 in $DB"
expect_out "target reached"
expect_out "(median step "                       # time to target = steps × the median step
ls "$SCRATCH"/tb/mlp-b50-seed1/events.out.tfevents.* >/dev/null 2>&1 || fail "no event file"

run "$BATCHLAB" runs --db "$DB"
expect_status 0
expect_out "cli-exp"
expect_out "first"
expect_out "completed"
run "$BATCHLAB" show --db "$DB" 1
expect_status 0
expect_out "first"
expect_out "\"batch\": 50"
expect_out "\"eval_every\": \"steps=10\""
# eval_every=steps=10 over 48 steps (1200 training samples, batch 50, 2 epochs): points at
# steps 10, 20, 30, 40 and the end
expect_out "history (5 points)"
run "$BATCHLAB" report --db "$DB" -o "$SCRATCH/out.html"
expect_status 0
[ -s "$SCRATCH/out.html" ] || fail "no report written"
grep -q "cli-exp\|first" "$SCRATCH/out.html" || fail "the report does not show the run"

# --resume: the same configuration again is not trained; its record is given back
run "$BATCHLAB" train --model mlp -m hidden=16 "${DATA[@]}" --epochs 2 --batch 50 --lr 0.1 \
    --db "$DB" --experiment cli-exp --label again --target 'val_accuracy>=0.3' \
    --eval-every steps=10 --resume --quiet
expect_status 0
expect_err "skipped: already completed as run 1"
expect_out "run 1 in $DB"

# $BATCHLAB_DB is the default store; --no-db records nothing
rm -f "$BATCHLAB_DB"
run "$BATCHLAB" train --model mlp -m hidden=16 "${DATA[@]}" --max-steps 5 --batch 50 --quiet
expect_status 0
expect_out "run 1 in $BATCHLAB_DB"
rm -f "$SCRATCH/none.db"
run env BATCHLAB_DB="$SCRATCH/none.db" "$BATCHLAB" train --model mlp "${DATA[@]}" --max-steps 5 --no-db --quiet
expect_status 0
expect_no_out "run 1 in"
[ ! -e "$SCRATCH/none.db" ] || fail "--no-db created a store"

# the flags are the run spec: its bounds, its choices and "did you mean"
run "$BATCHLAB" train --model mlp "${DATA[@]}" --epochs -1
expect_status 2
expect_err "'epochs' must be > 0, got -1"   # issue 14: not "≥ 0" (0 is refused too)
run "$BATCHLAB" train --model mlp "${DATA[@]}" --lr-scaling lineer
expect_status 2
expect_err "did you mean 'linear'"
run "$BATCHLAB" train --model mlp "${DATA[@]}" --epoch 1
expect_status 2
expect_err "unknown option '--epoch'; did you mean '--epochs'?"
expect_err "batchlab train --help"
run "$BATCHLAB" train --model mlp "${DATA[@]}" --target 'val_los<=0.5'
expect_status 2
expect_err "did you mean 'val_loss'"

# --help lists a flag for every bl.train key of docs/lua-api.md (the Lua functions and the
# key bl.sweep's tuning sets aside)
run "$BATCHLAB" train --help
expect_status 0
keys=$(sed -n '/^## `bl.train{...}`/,/^## /p' "$BATCHLAB_SOURCE_DIR/docs/lua-api.md" |
       sed -n 's/^| `\([a-z_]*\)` |.*/\1/p')
[ -n "$keys" ] || fail "no bl.train keys found in docs/lua-api.md"
for key in $keys; do
    case "$key" in stop|on_point|tune) continue ;; esac
    expect_out "--$(printf '%s' "$key" | tr _ -)"
done
expect_out "(default 2000)"

# Ctrl-C: the run ends after its step, is recorded as interrupted, exit status 130
rm -f "$SCRATCH/int.db"
interrupt_when_training "$BATCHLAB" train --model mlp -m hidden=256,256 --dataset synthetic \
    -d task=blobs -d samples=20000 -d dim=256 -d classes=10 --epochs 1000 --batch 32 \
    --db "$SCRATCH/int.db" --label long
expect_status 130
expect_out "status interrupted (interrupt)"
expect_err "interrupted; ending the run after this step"
run "$BATCHLAB" runs --db "$SCRATCH/int.db"
expect_status 0
expect_out "long"
expect_out "interrupted"
echo "train_store.sh: all checks passed"

#!/usr/bin/env bash
# Checkpoints (docs/checkpoints.md): a 3-epoch `batchlab train` killed with SIGKILL mid-way and
# resumed from its last checkpoint (--resume) ends with the same weights, byte for byte, as
# the run that was never stopped (both written with --save, compared by bl.read_snapshot); a
# completed run removes its checkpoint; a damaged checkpoint is refused, not trained over; a
# checkpoint of another configuration is refused; --init starts from saved weights; a --save
# target that is a FIFO is left alone.
. "$(dirname "$0")/lib/common.sh"
S=$SCRATCH
ARGS=(--dataset synthetic -d samples=10000 -d dim=256 -d validation=0.1 --model mlp
      -m hidden=512,512 -m dropout=0.1 --epochs 3 --batch 32 --seed 3 --threads 1
      --prefetch on --eval-every steps=100 --no-db --quiet)

cat >"$S/same.lua" <<'LUA'
local bl = require "batchlab"
local a = assert(bl.read_snapshot(arg[1]))
local b = assert(bl.read_snapshot(arg[2]))
print(("steps %d %d samples %d %d params %d"):format(a.step, b.step, a.samples, b.samples,
                                                   a.n_params))
assert(#a.weights == 4 * a.n_params and a.n_params > 0)
if a.weights ~= b.weights then error("the weights differ") end
print("same weights")
LUA
cat >"$S/step.lua" <<'LUA'
local bl = require "batchlab"
local s, err = bl.read_snapshot(arg[1])
if not s then print("unreadable: " .. err) os.exit(1) end
print("checkpoint at step " .. s.step)
LUA

# the run that is never stopped
run "$BATCHLAB" train "${ARGS[@]}" --save "$S/full.blsnap"
expect_status 0
expect_out "status completed (epochs)"
expect_no_out "continued from"

# the same run, checkpointing every 40 steps, killed once the first checkpoint is there
"$BATCHLAB" train "${ARGS[@]}" --checkpoint-every 40 --checkpoint "$S/ck.blsnap" \
    --save "$S/resumed.blsnap" >"$S/.stdout" 2>"$S/.stderr" &
pid=$!
for _ in $(seq 1 3000); do
    [ -f "$S/ck.blsnap" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
done
kill -KILL "$pid" 2>/dev/null || true
set +e
wait "$pid"
killed=$?
set -e
LAST="batchlab train --checkpoint-every 40 (SIGKILL)"
[ "$killed" -eq 137 ] || skip "the run ended (status $killed) before it could be killed"
[ -f "$S/ck.blsnap" ] || fail "no checkpoint before the kill"
[ ! -f "$S/resumed.blsnap" ] || fail "a killed run wrote its final weights"
run "$BATCHLAB" run "$S/step.lua" "$S/ck.blsnap"
expect_status 0
expect_out "checkpoint at step"
at=$(printf '%s\n' "$OUT" | sed -n 's/checkpoint at step //p')
[ "$at" -ge 40 ] && [ "$at" -lt 846 ] || fail "checkpoint at step $at, expected mid-way"
ls "$S" | grep -q '\.tmp\.' && fail "a temporary file was left next to the checkpoint"

# another configuration does not take this checkpoint
run "$BATCHLAB" train "${ARGS[@]}" --lr 0.5 --checkpoint-every 40 --checkpoint "$S/ck.blsnap" \
    --resume
expect_status 1
expect_err "another configuration"

# resumed: continues from the checkpoint and ends where the uninterrupted run ended
run "$BATCHLAB" train "${ARGS[@]}" --checkpoint-every 40 --checkpoint "$S/ck.blsnap" \
    --save "$S/resumed.blsnap" --resume
expect_status 0
expect_out "status completed (epochs)"
expect_out "steps 846"
expect_out "continued from the checkpoint at step $at"
[ ! -f "$S/ck.blsnap" ] || fail "a completed run left its checkpoint"
run "$BATCHLAB" run "$S/same.lua" "$S/full.blsnap" "$S/resumed.blsnap"
expect_status 0
expect_out "steps 846 846"
expect_out "same weights"

# Ctrl-C: the interrupted run writes a checkpoint at the step it stopped at, and --resume
# finishes it with the same weights (skipped when the run ended before the signal landed)
LOUD=("${ARGS[@]/--quiet/--label=ck}")
interrupt_when_training "$BATCHLAB" train "${LOUD[@]}" --checkpoint-every 100000 \
    --checkpoint "$S/int.blsnap" --save "$S/int_final.blsnap"
if [ "$STATUS" -eq 130 ]; then
    [ -f "$S/int.blsnap" ] || fail "an interrupted run wrote no checkpoint"
    [ ! -f "$S/int_final.blsnap" ] || fail "an interrupted run wrote its final weights"
    run "$BATCHLAB" train "${ARGS[@]}" --checkpoint-every 100000 --checkpoint "$S/int.blsnap" \
        --save "$S/int_final.blsnap" --resume
    expect_status 0
    expect_out "continued from the checkpoint at step"
    run "$BATCHLAB" run "$S/same.lua" "$S/full.blsnap" "$S/int_final.blsnap"
    expect_out "same weights"
else
    echo "note: the run ended (status $STATUS) before SIGINT; the interrupt case was not checked"
fi

# a damaged checkpoint is refused with the file named, and left for the user
cp "$S/full.blsnap" "$S/ck.blsnap"
printf 'XXXX' | dd of="$S/ck.blsnap" bs=1 seek=2000 conv=notrunc 2>/dev/null
run "$BATCHLAB" train "${ARGS[@]}" --checkpoint-every 40 --checkpoint "$S/ck.blsnap" --resume
expect_status 1
expect_err "ck.blsnap"
expect_err "checksum"
[ -f "$S/ck.blsnap" ] || fail "the damaged checkpoint was removed"
head -c 100 "$S/full.blsnap" >"$S/short.blsnap"
run "$BATCHLAB" run "$S/step.lua" "$S/short.blsnap"
expect_out "truncated"

# --init: start from saved weights (a different model is refused)
run "$BATCHLAB" train "${ARGS[@]}" --epochs 0.2 --init "$S/full.blsnap"
expect_status 0
expect_out "val accuracy 1.0000"
run "$BATCHLAB" train "${ARGS[@]/512,512/64}" --epochs 0.1 --init "$S/full.blsnap"
expect_status 1
expect_err "another model"

# --save over a FIFO: refused, the FIFO stays
mkfifo "$S/fifo"
run "$BATCHLAB" train "${ARGS[@]}" --epochs 0.05 --save "$S/fifo"
expect_status 1
expect_err "FIFO"
[ -p "$S/fifo" ] || fail "the FIFO was replaced"
echo "ok"

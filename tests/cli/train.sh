#!/usr/bin/env bash
# batchlab train and batchlab find-batch on synthetic data: a run, its summary, bad options,
# a misspelt model option, Ctrl-C (finish the step, record "interrupted", exit 130), and the
# max-batch finder in both modes under a memory budget.
. "$(dirname "$0")/lib/common.sh"
DATA=(--dataset synthetic -d task=blobs -d samples=3000 -d dim=16 -d classes=4 -d validation=500 -d test=500)

run "$BATCHLAB" train --model mlp -m hidden=32 "${DATA[@]}" --epochs 2 --batch 64 --lr 0.1 --momentum 0.9 --quiet
expect_status 0
expect_out "status completed (epochs)"
expect_out "val accuracy"
expect_out "test accuracy"

# --tensorboard: one event file for the run, under DIR/<model>-b<batch>-seed<seed>
run "$BATCHLAB" train --model mlp -m hidden=32 "${DATA[@]}" --epochs 1 --batch 64 --quiet \
    --tensorboard "$SCRATCH/tb"
expect_status 0
expect_out "tensorboard: $SCRATCH/tb"
ls "$SCRATCH"/tb/mlp-b64-seed1/events.out.tfevents.* >/dev/null 2>&1 || fail "no event file"

# a schedule plugin and the noise scale
run "$BATCHLAB" train --model mlp -m hidden=32 "${DATA[@]}" --epochs 1 --scheduler step \
    --sched-opt batch=32 --sched-opt milestones=1 --gns --quiet
expect_status 0
expect_out "gradient noise scale"

# bad input: clear messages, exit 1 or 2, never a crash
run "$BATCHLAB" train --model mlp -m hiden=32 "${DATA[@]}" --quiet
expect_status 1
expect_err "hiden"
expect_err "did you mean 'hidden'"
run "$BATCHLAB" train --model nosuch "${DATA[@]}" --quiet
expect_status 1
expect_err "nosuch"
run "$BATCHLAB" train --model mlp "${DATA[@]}" --batch -3
expect_status 2
expect_err "--batch expects an integer"
run "$BATCHLAB" train --model mlp "${DATA[@]}" --bogus
expect_status 2
expect_err "unknown option '--bogus'"

# Ctrl-C: the run stops after the current step, is reported interrupted, exit status 130
interrupt_when_training "$BATCHLAB" train --model mlp -m hidden=256,256 --dataset synthetic \
    -d task=blobs -d samples=20000 -d dim=256 -d classes=10 --epochs 1000 --batch 32
expect_status 130
expect_out "status interrupted (interrupt)"

# find-batch: power and binsearch against a budget; the binsearch result lies between the
# power result and twice it
run "$BATCHLAB" find-batch --model mlp -m hidden=512,512 "${DATA[@]}" --budget 24MB
expect_status 0
expect_out "largest batch that fits"
power=$(printf '%s\n' "$OUT" | sed -n 's/^largest batch that fits: \([0-9]*\).*/\1/p')
run "$BATCHLAB" find-batch --model mlp -m hidden=512,512 "${DATA[@]}" --budget 24MB --mode binsearch
expect_status 0
bins=$(printf '%s\n' "$OUT" | sed -n 's/^largest batch that fits: \([0-9]*\).*/\1/p')
[ "$bins" -ge "$power" ] && [ "$bins" -lt $((2 * power)) ] || fail "binsearch $bins vs power $power"
expect_out " no "
run "$BATCHLAB" find-batch --model mlp "${DATA[@]}"
expect_status 1
expect_err "memory budget"
run "$BATCHLAB" find-batch --model mlp "${DATA[@]}" --budget 1KB
expect_status 1
expect_err "not even batch"
echo "train.sh: all checks passed"

#!/usr/bin/env bash
# Issue 14, found 7: TensorBoard runs kept apart and complete HParams, from the command line.
# Two `batchlab train --tensorboard` runs of one configuration (so one run name) get a
# directory each, one event file in each; the HParams (decoded with `protoc --decode_raw`)
# hold the LR scaling rule, the target, the model's and the scheduler's options, and the test
# accuracy and time to target are logged as scalars and declared as HParams metrics.
. "$(dirname "$0")/lib/common.sh"
command -v protoc >/dev/null 2>&1 ||
    skip "protoc is not installed (Debian package protobuf-compiler)"
DATA=(--dataset synthetic -d task=blobs -d samples=600 -d dim=8 -d classes=3 -d validation=100 -d test=100)
ARGS=(train --model mlp -m hidden=16 "${DATA[@]}" --epochs 1 --scheduler step --sched-opt batch=32
      --sched-opt milestones=1 --lr-scaling linear --target 'val_accuracy>=0.05' --no-db --quiet
      --tensorboard "$SCRATCH/tb")
for i in 1 2; do
    run "$BATCHLAB" "${ARGS[@]}"
    expect_status 0
    expect_out "target reached"
done
dirs=$(cd "$SCRATCH/tb" && ls -d *)
[ "$dirs" = "mlp-step-seed1
mlp-step-seed1-2" ] || fail "expected two run directories, got: $dirs"
for d in mlp-step-seed1 mlp-step-seed1-2; do
    [ "$(ls "$SCRATCH/tb/$d" | wc -l)" = 1 ] || fail "$d: expected one event file"
done
expect_out "tensorboard: $SCRATCH/tb/mlp-step-seed1-2/events.out.tfevents."

# The records of the second file (TFRecord framing: u64 length, u32 CRC, data, u32 CRC), each
# decoded by protoc.
FILE=$(ls "$SCRATCH"/tb/mlp-step-seed1-2/events.out.tfevents.*)
run python3 - "$FILE" "$SCRATCH/rec" <<'PY'
import struct, sys
buf = open(sys.argv[1], 'rb').read()
off = n = 0
while off < len(buf):
    (length,) = struct.unpack_from('<Q', buf, off)
    open("%s.%d" % (sys.argv[2], n), 'wb').write(buf[off + 12:off + 12 + length])
    off += 16 + length
    n += 1
print(n)
PY
expect_status 0
n=$OUT
all=""
for ((i = 0; i < n; i++)); do
    run protoc --decode_raw <"$SCRATCH/rec.$i"
    expect_status 0
    printf '%s\n' "$OUT" >"$SCRATCH/rec.$i.txt"
    all+="$OUT"$'\n'
done
# Record 1: the experiment: the new hyperparameters and the final metrics.
OUT=$(cat "$SCRATCH/rec.1.txt")
expect_out '1: "_hparams_/experiment"'
for name in lr_scaling base_batch warmup_epochs lr_schedule target_metric target_value \
    model.hidden model.activation scheduler scheduler.milestones scheduler.factor; do
    expect_out "1: \"$name\""
done
for tag in test/accuracy test/loss target/time_to_target target/steps_to_target; do
    expect_out "2: \"$tag\""
done
# Record 2: their values (string_value 3; number_value 2: 0.05 = 0x3fa999999999999a).
OUT=$(cat "$SCRATCH/rec.2.txt")
expect_out '1: "_hparams_/session_start_info"'
for want in '3: "linear"' '3: "val_accuracy"' '2: 0x3fa999999999999a' '3: "step"' \
    '1: "model.hidden"' '3: "16"'; do
    expect_out "$want"
done
# The final scalars, each in an event of its own before the session end.
OUT=$all
expect_out '1: "test/accuracy"'
expect_out '1: "target/time_to_target"'
expect_out '1: "target/steps_to_target"'
OUT=$(cat "$SCRATCH/rec.$((n - 1)).txt")
expect_out '1: "_hparams_/session_end_info"'
echo "ok: two directories, new HParams decoded"

# TensorBoard event files read by independent tools: the framing and both masked CRC-32Cs of
# every record checked with Python's crcmod, every record decoded with `protoc --decode_raw`,
# and the decoded fields compared with what tests/tools/tfevents_sample wrote.
. "$(dirname "$0")/lib/common.sh"

SAMPLE=$BATCHLAB_BUILD_DIR/tests/tools/tfevents_sample
[ -x "$SAMPLE" ] ||
    skip "$SAMPLE is not built (tests/CMakeLists.txt must add_subdirectory(tools))"
command -v protoc >/dev/null 2>&1 ||
    skip "protoc is not installed (Debian package protobuf-compiler)"
PY=""
for py in /usr/bin/python3 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c "import crcmod.predefined" 2>/dev/null; then
        PY=$py
        break
    fi
done
[ -n "$PY" ] || skip "Python's crcmod is not installed (Debian package python3-crcmod)"

run "$SAMPLE" "$SCRATCH/logs"
expect_status 0
FILE=$OUT
D='[0-9]'
case "$FILE" in
    "$SCRATCH/logs/sample/events.out.tfevents."$D$D$D$D$D$D$D$D$D$D.?*) ;;
    *) fail "unexpected event file name: $FILE" ;;
esac
[ -s "$FILE" ] || fail "the event file is missing or empty"

# Split the file into records, checking the framing and CRCs; record i's data goes to rec.i.
run "$PY" - "$FILE" "$SCRATCH/rec" <<'PYEOF'
import struct, sys
import crcmod.predefined

crc32c = crcmod.predefined.mkCrcFun('crc-32c')
assert crc32c(b'123456789') == 0xE3069283

def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

buf = open(sys.argv[1], 'rb').read()
off = n = 0
while off < len(buf):
    if len(buf) - off < 12:
        sys.exit("record %d: truncated header at byte %d" % (n, off))
    (length,) = struct.unpack_from('<Q', buf, off)
    (hcrc,) = struct.unpack_from('<I', buf, off + 8)
    if hcrc != masked(buf[off:off + 8]):
        sys.exit("record %d: length CRC 0x%08x, expected 0x%08x"
                 % (n, hcrc, masked(buf[off:off + 8])))
    if len(buf) - off - 16 < length:
        sys.exit("record %d: %d data bytes announced, file too short" % (n, length))
    data = buf[off + 12:off + 12 + length]
    (dcrc,) = struct.unpack_from('<I', buf, off + 12 + length)
    if dcrc != masked(data):
        sys.exit("record %d: data CRC 0x%08x, expected 0x%08x" % (n, dcrc, masked(data)))
    with open("%s.%d" % (sys.argv[2], n), 'wb') as f:
        f.write(data)
    off += 16 + length
    n += 1
print(n)
PYEOF
expect_status 0
[ "$OUT" = 8 ] || fail "expected 8 records (version, experiment, start, scalar, 3 points, end)"

for i in 0 1 2 3 4 5 6 7; do
    run protoc --decode_raw <"$SCRATCH/rec.$i"
    expect_status 0
    printf '%s\n' "$OUT" >"$SCRATCH/rec.$i.txt"
done

# Event 0: file version. protoc shows doubles and floats as their bits in hex.
OUT=$(cat "$SCRATCH/rec.0.txt")
expect_out '3: "brain.Event:2"'
# Event 1: the HParams experiment: hparam_infos (name, type: FLOAT64 3, STRING 1, BOOL 2) and
# metric_infos (group "", tag; dataset_type TRAINING 1 / VALIDATION 2).
OUT=$(cat "$SCRATCH/rec.1.txt")
expect_out '1: "_hparams_/experiment"'
expect_out '1: "hparams"'
for want in '1: "batch"' '4: 3' '1: "optimizer"' '4: 1' '1: "nesterov"' '4: 2' \
    '2: "train/loss"' '2: "val/accuracy"' '5: 2' '1: "target_value"'; do
    expect_out "$want"
done
# Event 2: session start: hparams map of google.protobuf.Value (number_value 2 = 128.0 and 0.5,
# string_value 3, bool_value 4).
OUT=$(cat "$SCRATCH/rec.2.txt")
for want in '1: "_hparams_/session_start_info"' '2: 0x4060000000000000' \
    '2: 0x3fe0000000000000' '3: "sgd"' '4: 1'; do
    expect_out "$want"
done
expect_no_out 'target_value'         # a NaN hparam: a column without a value in this run
# Event 3: the scalar 42.0 at step 7.
OUT=$(cat "$SCRATCH/rec.3.txt")
expect_out '2: 7'
expect_out '1: "custom/answer"'
expect_out '2: 0x42280000'
# Events 4-6: points at steps 10, 20, 30; the first has no val/ values (NaN, skipped).
OUT=$(cat "$SCRATCH/rec.4.txt")
expect_out '2: 10'
expect_out '1: "train/loss"'
expect_out '2: 0x3f800000'
expect_out '1: "schedule/batch_size"'
expect_out '2: 0x43000000'
expect_out '1: "gns/b_simple"'
expect_out '1: "progress/samples"'
expect_no_out 'val/'
OUT=$(cat "$SCRATCH/rec.6.txt")
expect_out '2: 30'
expect_out '1: "val/accuracy"'
expect_out '2: 0x3f400000'
# Event 7: session end, status SUCCESS (1).
OUT=$(cat "$SCRATCH/rec.7.txt")
expect_out '1: "_hparams_/session_end_info"'
expect_out '1: 1'
echo "ok: 8 records, CRCs checked with crcmod, decoded with protoc"

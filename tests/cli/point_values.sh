#!/usr/bin/env bash
# Issue 14, found 6: a point made at an epoch end reports the scheduled batch and its LR, not
# the epoch's leftover partial batch (200 training samples in batches of 64: the last step of
# each epoch has 8) with the LR scaled to it — in the run table's history, the store (`show`,
# the CSV export: a groupby on `batch` gives only scheduled batches) and TensorBoard's
# schedule/batch_size.
. "$(dirname "$0")/lib/common.sh"
db="$SCRATCH/p.db"
run "$BATCHLAB" run --db "$db" -e "
local bl = require 'batchlab'
local r = bl.train { dataset = bl.dataset('synthetic', { samples = 300, dim = 4, classes = 2,
                     validation = 100 }), model = bl.model('logreg'), batch = 64, epochs = 3,
                     lr_scaling = { rule = 'linear', base_batch = 32 }, quiet = true,
                     experiment = 'pv', label = 'pv', tensorboard = '$SCRATCH/tb' }
for _, p in ipairs(r.history) do print('point', p.step, p.batch, p.lr) end"
expect_status 0
expect_out "point	4	64	0.02"
expect_out "point	8	64	0.02"
expect_out "point	12	64	0.02"
case "$OUT" in *"	8	0.0025"* | *"point	4	8"*) fail "a point shows the partial batch" ;; esac

run "$BATCHLAB" export --db "$db" --experiment pv -o "$SCRATCH/p.csv"
expect_status 0
run python3 - "$SCRATCH/p.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
groups = {}
for r in rows:                         # pandas: df.groupby("batch")
    groups.setdefault(r["batch"], []).append(float(r["lr"]))
print("groups", sorted(groups), "lrs", sorted({lr for v in groups.values() for lr in v}))
PY
expect_status 0
expect_out "groups ['64'] lrs [0.02]"

# TensorBoard: every schedule/batch_size scalar is 64 (Summary.Value: tag, then simple_value)
ev=$(ls "$SCRATCH"/tb/pv/events.out.tfevents.* | head -1)
run python3 - "$ev" <<'PY'
import re, struct, sys
data = open(sys.argv[1], "rb").read()
tag = b"schedule/batch_size"
vals = [struct.unpack("<f", m.group(1))[0]
        for m in re.finditer(re.escape(bytes([0x0A, len(tag)]) + tag + b"\x15") + b"(.{4})",
                             data, re.S)]
print("tb", sorted(set(vals)), len(vals))
PY
expect_status 0
expect_out "tb [64.0] 3"

# metrics not measured (no validation, no test split) are null in the JSON export, never NaN
run "$BATCHLAB" run --db "$db" -e "
local bl = require 'batchlab'
bl.train { dataset = bl.dataset('synthetic', { samples = 200, dim = 4, classes = 2 }),
           model = bl.model('logreg'), batch = 50, epochs = 1, quiet = true,
           train_eval_samples = 0, experiment = 'bare' }"
expect_status 0
run "$BATCHLAB" export --db "$db" --experiment bare --format json -o "$SCRATCH/bare.json"
expect_status 0
run python3 - "$SCRATCH/bare.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
assert "NaN" not in text, "NaN in the JSON"
rows = json.loads(text)
keys = ["val_accuracy", "val_loss", "train_accuracy", "final_val_accuracy", "test_accuracy"]
print("nulls", all(r[k] is None for r in rows for k in keys), len(rows))
PY
expect_status 0
expect_out "nulls True 1"
echo "ok"

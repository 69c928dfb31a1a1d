#!/usr/bin/env bash
# batchlab runs / show / export on a results store, and the stores they must refuse.
# The store is written through the API by the unit test binary (test_store --fixture FILE):
# experiment "sweep" with runs 1–3 (run 3 failed, no points), run 4 outside any experiment.
. "$(dirname "$0")/lib/common.sh"
MAKER=$BATCHLAB_BUILD_DIR/tests/test_store
[ -x "$MAKER" ] || skip "the store fixture maker $MAKER is not built"
command -v python3 >/dev/null || skip "python3 is needed to check the exports"
DB=$SCRATCH/results.db
"$MAKER" --fixture "$DB" >/dev/null || fail "cannot make the fixture store"

# ---- runs ----------------------------------------------------------------------------------
run "$BATCHLAB" runs --db "$DB"
expect_status 0
for h in ID "STARTED (UTC)" TARGET EXPERIMENT LABEL STATUS BATCH BASE_LR STEPS "TIME(S)" VAL_ACC TEST_ACC \
    TIME_TO_TARGET; do
    expect_out "$h"
done
[ "$(printf '%s\n' "$OUT" | wc -l)" -eq 5 ] || fail "expected a header and 4 rows"
expect_out 'b=256, "large"'
expect_out "4096"
expect_out "3.2"
expect_out "failed"
row=$(printf '%s\n' "$OUT" | awk '$1 == 2')
case "$row" in *sweep*completed*256*0.4*30*3.75*0.5300*-*2.50) ;; *) fail "bad row 2: $row" ;; esac
row=$(printf '%s\n' "$OUT" | awk '$1 == 4')
case "$row" in *" - "*loose*completed*8*0.01*) ;; *) fail "bad row 4: $row" ;; esac
# Aligned: every line has STATUS at the same column.
col=$(printf '%s\n' "$OUT" | awk 'NR == 1 { print index($0, "STATUS") }')
printf '%s\n' "$OUT" | awk -v c="$col" 'NR > 1 && substr($0, c, 1) !~ /[a-z]/ { exit 1 }' ||
    fail "the STATUS column is not aligned"

# --experiment, $BATCHLAB_DB, and the errors.
run "$BATCHLAB" runs --db "$DB" --experiment sweep
expect_status 0
[ "$(printf '%s\n' "$OUT" | wc -l)" -eq 4 ] || fail "expected 3 runs of 'sweep'"
expect_no_out "loose"
run env BATCHLAB_DB="$DB" "$BATCHLAB" runs
expect_status 0
expect_out "loose"
run "$BATCHLAB" runs --db "$DB" --experiment nope
expect_status 1
expect_err "$DB"
expect_err "no experiment named 'nope'; it has: 'sweep'"
run "$BATCHLAB" runs --db "$SCRATCH/absent.db"
expect_status 1
expect_err "no results store at '$SCRATCH/absent.db'"
[ ! -e "$SCRATCH/absent.db" ] || fail "runs created a store"
run "$BATCHLAB" runs --db
expect_status 2
run "$BATCHLAB" runs --frobnicate
expect_status 2
expect_err "unexpected argument '--frobnicate'"
run "$BATCHLAB" runs --help
expect_status 0
expect_out "usage: batchlab runs"

# ---- stores that must be refused, untouched -------------------------------------------------
printf 'not a database\n%.0s' $(seq 50) > "$SCRATCH/notes.txt"
cp "$SCRATCH/notes.txt" "$SCRATCH/notes.orig"
run "$BATCHLAB" runs --db "$SCRATCH/notes.txt"
expect_status 1
expect_err "'$SCRATCH/notes.txt' is not a batchlab results store: it is not a SQLite database"
cmp -s "$SCRATCH/notes.txt" "$SCRATCH/notes.orig" || fail "the text file was modified"
if command -v sqlite3 >/dev/null; then
    sqlite3 "$SCRATCH/other.db" "CREATE TABLE t (x); INSERT INTO t VALUES (1);"
    cp "$SCRATCH/other.db" "$SCRATCH/other.orig"
    for cmd in runs "show 1" "export"; do
        run "$BATCHLAB" $cmd --db "$SCRATCH/other.db"
        expect_status 1
        expect_err "'$SCRATCH/other.db' is a SQLite database of another application"
    done
    cmp -s "$SCRATCH/other.db" "$SCRATCH/other.orig" || fail "the foreign database was modified"
    cp "$DB" "$SCRATCH/newer.db"
    sqlite3 "$SCRATCH/newer.db" "PRAGMA user_version = 9;"
    cp "$SCRATCH/newer.db" "$SCRATCH/newer.orig"
    run "$BATCHLAB" runs --db "$SCRATCH/newer.db"
    expect_status 1
    expect_err "has schema version 9, newer than this batchlab"
    cmp -s "$SCRATCH/newer.db" "$SCRATCH/newer.orig" || fail "the newer store was modified"
fi

# ---- show ----------------------------------------------------------------------------------
run "$BATCHLAB" show 2 --db "$DB"
expect_status 0
expect_out "run 2 of experiment 'sweep'"
expect_out 'b=256, "large"'
expect_out "completed (stopped by epochs)"
expect_out '"lr": 0.4'
expect_out '"hidden": ['
expect_out "history (3 points):"
expect_out "steps to target    20 ± 10"      # interpolated, ± the evaluation resolution
expect_out "time to target     2.5"          # steps × the median step time
expect_out "wall to target     2.75"
expect_out "median step (s)    0.125"
for h in STEP SAMPLES EPOCH WALL BATCH LR TRAIN_LOSS TRAIN_ACC VAL_LOSS VAL_ACC GNS SAMPLES/S; do
    expect_out "$h"
done
[ "$(printf '%s\n' "$OUT" | awk '/^ +STEP/ { on = 1; next } on && NF == 12' | wc -l)" -eq 3 ] ||
    fail "expected 3 history rows of 12 columns"
run "$BATCHLAB" show 3 --db "$DB"
expect_status 0
expect_out "out of memory for batch 4096"
expect_out "history (0 points):"
run "$BATCHLAB" show 99 --db "$DB"
expect_status 1
expect_err "results store '$DB' has no run 99"
run "$BATCHLAB" show abc --db "$DB"
expect_status 2
expect_err "RUN must be a run id"
run "$BATCHLAB" show --db "$DB"
expect_status 2

# ---- export --------------------------------------------------------------------------------
run "$BATCHLAB" export --db "$DB" --format csv -o "$SCRATCH/all.csv"
expect_status 0
expect_err "wrote 9 rows from 4 runs to '$SCRATCH/all.csv'"
python3 - "$SCRATCH/all.csv" <<'EOF' || fail "the CSV export is wrong"
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert len(rows) == 9, len(rows)     # one row per point; run 3 failed without any: one row
assert [r["run_id"] for r in rows] == ["1"] * 3 + ["2"] * 3 + ["3"] + ["4"] * 2
failed = rows[6]
assert failed["status"] == "failed" and "out of memory for batch 4096" in failed["error"], failed
assert failed["step"] == "" and failed["val_accuracy"] == "", failed
r = rows[3]
assert r["label"] == 'b=256, "large"' and r["experiment"] == "sweep", r
assert r["status"] == "completed" and r["stopped_by"] == "epochs"
assert r["cfg.batch"] == "256" and r["cfg.optimizer.lr"] == "0.4", r
assert r["cfg.optimizer.name"] == "sgd" and r["cfg.model.hidden"] == "[64,32]"
assert r["step"] == "10" and r["batch"] == "256" and r["samples"] == "320"
assert float(r["val_accuracy"]) == 0.51 and float(r["train_loss"]) == 1 / 11
assert r["train_accuracy"] == "" and r["gns"] == ""      # NaN -> NULL -> empty
assert r["final_val_accuracy"] == rows[5]["val_accuracy"]
assert r["time_to_target"] == "2.5" and r["test_accuracy"] == ""
assert r["steps_to_target"] == "20" and r["steps_to_target_error"] == "10", r
assert r["wall_time_to_target"] == "2.75" and r["step_time_median"] == "0.125", r
loose = rows[7]
assert loose["experiment"] == "" and loose["cfg.lr"] == "0.01" and loose["cfg.optimizer.lr"] == ""
assert "cfg.epochs" in rows[0] and rows[0]["cfg.epochs"] == "3"
for col in ("seed", "config_hash", "started", "host", "batchlab_version", "samples_per_sec"):
    assert col in r and r[col] != "", col
EOF

run "$BATCHLAB" export --db "$DB" --format json --experiment sweep -o "$SCRATCH/sweep.json"
expect_status 0
python3 - "$SCRATCH/sweep.json" <<'EOF' || fail "the JSON export is wrong"
import json, sys
rows = json.load(open(sys.argv[1]))
assert isinstance(rows, list) and len(rows) == 7, len(rows)  # run 3's row has no point
assert rows[6]["run_id"] == 3 and rows[6]["step"] is None
r = rows[0]
assert r["run_id"] == 1 and r["cfg.batch"] == 32 and r["cfg.optimizer.lr"] == 0.05
assert r["cfg.model.hidden"] == [64, 32] and r["cfg.model.name"] == "mlp"
assert r["train_accuracy"] is None and r["gns"] is None
assert r["label"] == "b=32" and r["status"] == "completed"
assert rows[3]["label"] == 'b=256, "large"'
EOF

# To standard output; an empty selection is still valid CSV / JSON.
run "$BATCHLAB" export --db "$DB"
expect_status 0
[ "$(printf '%s\n' "$OUT" | wc -l)" -eq 10 ] || fail "expected a header and 9 rows on stdout"
run "$BATCHLAB" export --db "$DB" --format json --experiment sweep
expect_status 0
printf '%s' "$OUT" | python3 -c 'import json, sys; assert len(json.load(sys.stdin)) == 7' ||
    fail "the JSON on stdout does not load"
run "$BATCHLAB" export --db "$DB" --format xml
expect_status 2
expect_err "--format must be csv or json"
run "$BATCHLAB" export --db "$DB" -o "$SCRATCH/no/such/dir/out.csv"
expect_status 1
expect_err "cannot write '$SCRATCH/no/such/dir/out.csv'"
ls "$SCRATCH"/all.csv.tmp.* >/dev/null 2>&1 && fail "a temporary file was left behind"
cp "$DB" "$SCRATCH/before.db"
run "$BATCHLAB" export --db "$DB" -o "$DB"
expect_status 1
expect_err "refusing to write the export over the results store '$DB'"
cmp -s "$DB" "$SCRATCH/before.db" || fail "export -o overwrote the store"

# ---- batchlab run --db: runs recorded by scripts; killed runs; a resumed sweep -------------
LDB=$SCRATCH/lua.db
cat > "$SCRATCH/long.lua" <<'EOF'
-- One long run: evaluates every 2 steps and prints "point" after each point is stored.
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 4000, validation = 200, test = 200, dim = 16,
                                       classes = 3, seed = 7 })
local model = bl.model("mlp", { hidden = { 64 } })
bl.train { dataset = data, model = model, batch = 8, epochs = 100000, max_seconds = 120,
           eval_every = { steps = 2 }, experiment = "long", label = arg[1], quiet = true,
           on_point = function() io.stdout:write("point\n"); io.stdout:flush() end }
EOF
# Waits (up to 60 s) until FILE has a line "point".
wait_point() {
    for _ in $(seq 600); do
        grep -q point "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "no evaluation point was made in 60 s"
}

# Killed (SIGKILL): the row stays "running" until someone looks; then it is interrupted.
"$BATCHLAB" run --db "$LDB" "$SCRATCH/long.lua" killed > "$SCRATCH/killed.out" 2>&1 &
pid=$!
wait_point "$SCRATCH/killed.out"
kill -KILL $pid
wait $pid 2>/dev/null || true
run "$BATCHLAB" runs --db "$LDB"
expect_status 0
row=$(printf '%s\n' "$OUT" | awk '$1 == 1')
case "$row" in *long*killed*interrupted*) ;; *) fail "the killed run is not interrupted: $row" ;; esac
run "$BATCHLAB" show 1 --db "$LDB"
expect_out "interrupted (stopped by stale)"
expect_out "ended without recording the end of the run"
points=$(printf '%s\n' "$OUT" | sed -n 's/^history (\([0-9]*\) points*):$/\1/p')
[ "${points:-0}" -ge 1 ] || fail "the points made before the kill are lost"

# Stopped with Ctrl-C (SIGINT): the run ends itself and is recorded interrupted, with its points.
"$BATCHLAB" run --db "$LDB" "$SCRATCH/long.lua" stopped > "$SCRATCH/stopped.out" 2>&1 &
pid=$!
wait_point "$SCRATCH/stopped.out"
kill -INT $pid
status=0
wait $pid || status=$?
[ "$status" -eq 130 ] || fail "batchlab run ended with $status after SIGINT, not 130"
run "$BATCHLAB" show 2 --db "$LDB"
expect_out "label              stopped"
expect_out "interrupted (stopped by interrupt)"
expect_no_out "history (0 points)"

# A sweep: recorded in experiment "grid", then resumed — finished runs are not trained again.
cat > "$SCRATCH/sweep.lua" <<'EOF'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 600, validation = 100, test = 100, dim = 8,
                                       classes = 3, seed = 7 })
local model = bl.model("mlp", { hidden = { 16 } })
local sw = bl.sweep { name = "grid", base = { dataset = data, model = model, epochs = 2,
                      seed = 1, optimizer = bl.optim.sgd { lr = 0.1, momentum = 0.9 } },
                      vary = { batch = { 16, 32 } } }
print(("resumed %d of %d"):format(sw.resumed, sw.total))
EOF
run "$BATCHLAB" run --db "$LDB" "$SCRATCH/sweep.lua"
expect_status 0
expect_out "resumed 0 of 2"
run "$BATCHLAB" run --db "$LDB" "$SCRATCH/sweep.lua"
expect_status 0
expect_out "resumed 2 of 2"
expect_err "grid batch=16: skipped: already completed as run 3 in '$LDB'"
expect_err "grid batch=32: skipped: already completed as run 4 in '$LDB'"
run "$BATCHLAB" runs --db "$LDB" --experiment grid
[ "$(printf '%s\n' "$OUT" | wc -l)" -eq 3 ] || fail "the resumed sweep recorded new runs"
case "$OUT" in *"grid        grid batch=16  completed     16      0.1"*) ;; *) fail "bad sweep rows" ;; esac
run "$BATCHLAB" export --db "$LDB" --experiment grid --format csv
python3 -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
assert len(rows) == 4, len(rows)                          # 2 runs x 2 epochs
assert {r["cfg.batch"] for r in rows} == {"16", "32"}
assert {r["cfg.optimizer.lr"] for r in rows} == {"0.1"}
assert all(r["cfg.dataset.name"] == "synthetic" and r["cfg.model.options.hidden"] == "[16]"
           for r in rows)
' <<< "$OUT" || fail "the sweep's export is wrong"

echo "ok"

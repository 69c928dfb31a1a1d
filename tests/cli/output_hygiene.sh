#!/usr/bin/env bash
# issue 15, Found 11: names that hold invalid UTF-8, terminal escape sequences or spreadsheet
# formulas. The JSON export stays valid UTF-8 JSON (bad bytes become U+FFFD), `runs` and
# `show` print control characters escaped (\xHH), and the CSV export neutralises formula-like
# text cells with a leading ' while numbers (negative ones too) stay numbers.
. "$(dirname "$0")/lib/common.sh"
command -v python3 >/dev/null || skip "python3 is needed to check the exports"
DB=$SCRATCH/results.db
DATA=(--dataset synthetic -d task=blobs -d samples=400 -d dim=4 -d classes=2 -d validation=100)
ESC=$(printf '\033')
BAD=$(printf '\377\376')
train() {
    run "$BATCHLAB" train --model mlp -m hidden=4 "${DATA[@]}" --max-steps 2 --batch 32 --quiet \
        --db "$DB" "$@"
    expect_status 0
}
train --experiment "exp${ESC}]0;pwned${ESC}\\" --label "red${ESC}[31m${BAD}"
train --experiment plain --label "=HYPERLINK(\"http://x\")"
train --experiment plain --label "-2+3"
train --experiment plain --label "-2.5"

# runs / show: no raw ESC on the terminal
run "$BATCHLAB" runs --db "$DB"
expect_status 0
case "$OUT" in *"$ESC"*) fail "runs printed a raw ESC" ;; esac
expect_out 'red\x1B[31m\xFF\xFE'
run "$BATCHLAB" show --db "$DB" 1
expect_status 0
case "$OUT" in *"$ESC"*) fail "show printed a raw ESC" ;; esac
case "$OUT" in *"$BAD"*) fail "show printed invalid UTF-8" ;; esac
expect_out "experiment 'exp\\x1B]0;pwned\\x1B\\'"

# JSON: valid UTF-8 and valid JSON, the bad bytes as U+FFFD
run "$BATCHLAB" export --db "$DB" --format json -o "$SCRATCH/out.json"
expect_status 0
python3 - "$SCRATCH/out.json" <<'PY' || fail "the JSON export is not valid UTF-8 JSON"
import json, sys
rows = json.loads(open(sys.argv[1], 'rb').read().decode('utf-8'))   # strict UTF-8
labels = {r['label'] for r in rows}
assert 'red\x1b[31m\ufffd\ufffd' in labels, labels
assert any(r['experiment'] == 'exp\x1b]0;pwned\x1b\\' for r in rows)
PY

# CSV: formula-like text neutralised, numbers kept
run "$BATCHLAB" export --db "$DB" -o "$SCRATCH/out.csv"
expect_status 0
python3 - "$SCRATCH/out.csv" <<'PY' || fail "the CSV export does not neutralise formulas"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding='utf-8', errors='replace', newline='')))
labels = {r['label'] for r in rows}
assert '\'=HYPERLINK("http://x")' in labels, labels
assert "'-2+3" in labels, labels
assert '-2.5' in labels, labels            # a plain number stays a number
for r in rows:
    for k, v in r.items():
        if v and v[0] in '=+@\t\r':
            raise SystemExit(f'{k}: {v!r} starts a formula')
        if v and v[0] == '-':
            float(v)                          # only numbers may start with '-'
PY
echo ok

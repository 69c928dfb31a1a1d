# batchlab report: usage and store errors, the page's structure (balanced SVG, one table, the
# recommendation, no network references, escaped labels) for a sample sweep written by
# tests/tools/report_sample (known numbers: B_crit = 64) and for a real sweep trained by
# `batchlab run`. No browser is needed; tests/cli/report_browser.sh renders the same pages in
# Debian's chromium (and says SKIP when it is not installed).
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/report_pages.sh"

make_sample_store

# ---- usage and errors --------------------------------------------------------------------------
run "$BATCHLAB" report --help
expect_status 0
expect_out "usage: batchlab report"
run "$BATCHLAB" --help
expect_out "report"
run "$BATCHLAB" report --db "$DB"
expect_status 2
expect_err "-o FILE"
run "$BATCHLAB" report --db "$DB" --target abc -o "$HTML"
expect_status 2
expect_err "--target must be a number, got 'abc'"
run "$BATCHLAB" report --db "$DB" --target-metric val_loss -o "$HTML"
expect_status 2
expect_err "--target-metric needs --target"
run "$BATCHLAB" report --db "$DB" --target 0.5 --target-metric val_los -o "$HTML"
expect_status 2
expect_err "val_loss"
run "$BATCHLAB" report --db "$SCRATCH/none.db" -o "$HTML"
expect_status 1
expect_err "none.db"
run "$BATCHLAB" report --db "$DB" -o "$HTML"
expect_status 1
expect_err "'bs-sweep', 'other'"
expect_err "--experiment"
run "$BATCHLAB" report --db "$DB" --experiment nope -o "$HTML"
expect_status 1
expect_err "nope"
run "$BATCHLAB" report --db "$DB" --experiment bs-sweep -o "$DB"
expect_status 1
expect_err "refusing"
[ ! -e "$HTML" ] || fail "a failed report left $HTML behind"

# ---- the page ----------------------------------------------------------------------------------
make_sample_page
ls "$SCRATCH" | grep -q '\.tmp\.' && fail "a temporary file was left behind"
head -c 15 "$HTML" | grep -q '<!DOCTYPE html>' || fail "not an HTML5 page"
svgs=$(count '<svg' "$HTML")
[ "$svgs" -eq "$(count '</svg>' "$HTML")" ] || fail "unbalanced <svg> tags"
[ "$svgs" -eq 12 ] || fail "expected 12 charts, found $svgs"
[ "$(count '<table' "$HTML")" -eq 1 ] || fail "expected one table"
[ "$(count '<script' "$HTML")" -eq 1 ] || fail "expected one script (the table sorter)"
for id in loss-samples loss-step loss-wall val-step batch-samples lr-samples steps-target time-target acc-batch gns-step cbs-three pareto-front; do
    contains "id=\"$id\"" "$HTML"
done
# the ramp is 30 % faster than any fixed batch: schedules are candidates, and it wins
contains 'Recommended schedule: <strong>ramp (from=16, to=128)</strong>' "$HTML"
contains 'Use schedule ramp (from=16, to=128) at learning rate 0.2: it reached the target fastest' "$HTML"
contains 'batch 64: 24.5 s to the target (median of 2, 95% interval 23.4 s&ndash;25.7 s) &middot; near the critical batch size' "$HTML"
contains 'B_crit &asymp; 64' "$HTML"
contains 'val_accuracy ≥ 0.85 (recorded with the runs)' "$HTML"
contains 'The fastest schedule to the target, ramp (from=16, to=128)' "$HTML"
contains '&lt;script&gt;alert(1)&lt;/script&gt; &amp;&quot;&#39;' "$HTML"
contains 'title="out of memory &lt;allocating&gt; 2 GiB"' "$HTML"
lacks '<script>alert(1)' "$HTML"
lacks 'http://' "$HTML"
lacks 'https://' "$HTML"
lacks 'src=' "$HTML"
lacks '<link' "$HTML"
[ "$(count '<tr' "$HTML")" -eq 12 ] || fail "expected 11 runs and a header row"

# Another target, a title, standard output.
run "$BATCHLAB" report --db "$DB" --experiment bs-sweep --target 0.95 --title 'A & B' -o -
expect_status 0
expect_out '<h1>A &amp; B</h1>'
expect_out 'val_accuracy ≥ 0.95 (given for this report)'
expect_out 'No completed run with a fixed batch size reached the target'
expect_out 'No run reached the target; batch 16 had the best final val_accuracy'
run "$BATCHLAB" report --db "$DB" --experiment other --target 0.5 --target-metric val_loss -o -
expect_status 0
expect_out 'Recommended batch size: <strong>8</strong>'
expect_out 'val_loss ≤ 0.5'

# ---- a real sweep, recorded by batchlab run ---------------------------------------------------
make_real_page
[ "$(count '<svg' "$REAL_HTML")" -eq "$(count '</svg>' "$REAL_HTML")" ] || fail "unbalanced <svg>"
[ "$(count '<svg' "$REAL_HTML")" -ge 6 ] || fail "charts are missing from the real sweep's page"
[ "$(count '<table' "$REAL_HTML")" -eq 1 ] || fail "expected one table"
[ "$(count '<tr' "$REAL_HTML")" -eq 8 ] || fail "expected 7 runs and a header row"
contains 'Recommended batch size: <strong>' "$REAL_HTML"
contains 'val_accuracy ≥ 0.7 (recorded with the runs)' "$REAL_HTML"
contains 'ramp &lt;b&gt;&amp;' "$REAL_HTML"
contains 'ramp (epochs=2' "$REAL_HTML"
contains 'stop=64' "$REAL_HTML"
contains 'id="gns-step"' "$REAL_HTML"
lacks 'ramp <b>' "$REAL_HTML"
lacks 'http://' "$REAL_HTML"
lacks 'https://' "$REAL_HTML"

# batchlab report: usage and store errors, the page's structure (balanced SVG, one table, the
# recommendation, no network references, escaped labels) for a sample sweep written by
# tests/tools/report_sample (known numbers: B_crit = 64) and for a real sweep trained by
# `batchlab run`, and — when Debian's chromium is installed — the page rendered by a headless
# browser: no script errors, the charts in the DOM, the table sorting on a click.
. "$(dirname "$0")/lib/common.sh"

SAMPLE=$BATCHLAB_BUILD_DIR/tests/tools/report_sample
[ -x "$SAMPLE" ] ||
    skip "$SAMPLE is not built (tests/CMakeLists.txt must add_subdirectory(tools))"
DB=$SCRATCH/sweep.db
HTML=$SCRATCH/report.html
run "$SAMPLE" "$DB"
expect_status 0

count() { grep -o -- "$1" "$2" | wc -l; }
contains() { grep -q -F -- "$1" "$2" || fail "$2 lacks: $1"; }
lacks() { ! grep -q -F -- "$1" "$2" || fail "$2 should not contain: $1"; }

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
run "$BATCHLAB" report --db "$DB" --experiment bs-sweep -o "$HTML"
expect_status 0
[ -s "$HTML" ] || fail "no report written"
ls "$SCRATCH" | grep -q '\.tmp\.' && fail "a temporary file was left behind"
head -c 15 "$HTML" | grep -q '<!DOCTYPE html>' || fail "not an HTML5 page"
svgs=$(count '<svg' "$HTML")
[ "$svgs" -eq "$(count '</svg>' "$HTML")" ] || fail "unbalanced <svg> tags"
[ "$svgs" -eq 7 ] || fail "expected 7 charts, found $svgs"
[ "$(count '<table' "$HTML")" -eq 1 ] || fail "expected one table"
[ "$(count '<script' "$HTML")" -eq 1 ] || fail "expected one script (the table sorter)"
for id in loss-step loss-wall val-step steps-target time-target acc-batch gns-step; do
    contains "id=\"$id\"" "$HTML"
done
contains 'Recommended batch size: <strong>64</strong>' "$HTML"
contains 'regime: <strong>near the critical batch size</strong>' "$HTML"
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
REAL=$SCRATCH/real.db
run "$BATCHLAB" run --quiet --db "$REAL" -e '
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 4000, validation = 500, test = 500, dim = 16,
                                       classes = 4, seed = 3, noise = 2, spread = 1 })
local base = { dataset = data, model = bl.model("mlp", { hidden = { 32 } }), epochs = 3,
               eval_every = { steps = 10 }, train_eval_samples = 0, measure_gns = true,
               optimizer = bl.optim.sgd { lr = 0.02, momentum = 0.5 } }
local target = { metric = "val_accuracy", at_least = 0.7 }
bl.sweep { name = "real", base = base, vary = { batch = { 16, 32, 64 }, seed = { 1, 2 } },
           target = target }
base.batch = bl.scheduler("ramp", { start = 16, stop = 64, epochs = 2 })
base.experiment, base.label, base.target = "real", "ramp <b>&", target
bl.train(base)'
expect_status 0
REAL_HTML=$SCRATCH/real.html
run "$BATCHLAB" report --db "$REAL" --experiment real -o "$REAL_HTML"
expect_status 0
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

# ---- in a browser ------------------------------------------------------------------------------
if ! command -v chromium >/dev/null 2>&1; then
    echo "chromium is not installed: skipping the browser checks (the structural checks ran)"
    exit 0
fi
browse() { # browse PAGE DOM LOG
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --disable-background-networking --disable-component-update --disable-sync \
        --no-first-run --user-data-dir="$(mktemp -d "$SCRATCH/chromium.XXXXXX")" \
        --enable-logging=stderr --v=0 --dump-dom "file://$1" >"$2" 2>"$3" ||
        { tail -20 "$3" >&2; fail "chromium failed on $1"; }
    if grep -q 'Uncaught' "$3"; then
        grep 'Uncaught' "$3" >&2
        fail "script errors in $1"
    fi
}
browse "$HTML" "$SCRATCH/dom.html" "$SCRATCH/chromium.log"
[ "$(count '<svg' "$SCRATCH/dom.html")" -eq 7 ] || fail "the browser's DOM lacks the charts"
contains '<path' "$SCRATCH/dom.html"
contains 'Recommended batch size' "$SCRATCH/dom.html"
browse "$REAL_HTML" "$SCRATCH/real-dom.html" "$SCRATCH/real.log"
contains '<path' "$SCRATCH/real-dom.html"

# Click "Steps" (column 7): ascending puts the diverged run (448 steps, id 11) first; a second
# click, descending, the batch-16 runs (7500 steps, ids 1 and 2, in that order). Then "Batch /
# schedule" (column 4): by number, 16 (id 1) first, the schedule (id 9, no number) last.
SORT=$SCRATCH/sort.html
sed 's|</body>|<script>var ths = document.querySelectorAll("table.runs th"), th = ths[6];\
var rows = function () { return document.querySelector("table.runs tbody").rows; };\
var id = function (i) { var r = rows(); return r[i < 0 ? r.length + i : i].cells[0].textContent; };\
th.click(); var up = id(0); th.click(); var down = id(0); ths[3].click();\
document.body.setAttribute("data-sorted", [up, down, th.getAttribute("aria-sort"), id(0), id(-1),\
ths[3].getAttribute("aria-sort")].join());</script></body>|' \
    "$HTML" >"$SORT"
browse "$SORT" "$SCRATCH/sort-dom.html" "$SCRATCH/sort.log"
contains 'data-sorted="11,1,,1,9,ascending"' "$SCRATCH/sort-dom.html"
echo "ok (rendered in chromium)"

# batchlab report in a headless browser (Debian's chromium): the pages that report.sh checks
# for structure load with no script errors, their charts are in the DOM, and the table sorts on
# a click. Without chromium this test says SKIP (exit 77), not a pass.
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/report_pages.sh"

command -v chromium >/dev/null 2>&1 ||
    skip "chromium is not installed (apt-get install chromium): the report pages were not" \
        "rendered in a browser; report.sh checked their structure"

make_sample_store
make_sample_page
make_real_page

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

# batchlab report --watch: the page is rewritten (atomically) while runs are written to the
# store, refreshes itself (a meta refresh, only in watch mode), and the watch ends cleanly
# (status 0, no temporary file left) on SIGTERM and on SIGINT. Also --experiment '' (the runs
# outside any experiment) and the option errors.
. "$(dirname "$0")/lib/common.sh"
S=$SCRATCH
DB=$S/watch.db
HTML=$S/watch.html

train() {   # train LABEL: one short run outside any experiment
    run "$BATCHLAB" run --quiet --db "$DB" -e "
local bl = require 'batchlab'
bl.train { dataset = bl.dataset('synthetic', { samples = 400, validation = 100, dim = 8,
                                               classes = 3, seed = 1 }),
           model = bl.model('mlp', { hidden = { 8 } }), batch = 32, epochs = 1,
           label = '$1', quiet = true }"
    expect_status 0
}
wait_for() {   # wait_for TEXT: until the page holds TEXT (30 s at most)
    for _ in $(seq 1 300); do
        grep -q -F -- "$1" "$HTML" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "the watched page never showed: $1"
}

train first-run
run "$BATCHLAB" report --db "$DB" --interval 1 -o "$HTML"
expect_status 2
expect_err "--interval needs --watch"
run "$BATCHLAB" report --db "$DB" --watch -o -
expect_status 2
expect_err "--watch rewrites a file"
run "$BATCHLAB" report --db "$DB" --watch --interval 0 -o "$HTML"
expect_status 2
expect_err "--interval must be"

# A plain report has no refresh; runs outside any experiment are reported with --experiment ''.
run "$BATCHLAB" report --db "$DB" --experiment '' -o -
expect_status 0
expect_out "first-run"
expect_no_out "http-equiv"

for sig in TERM INT; do
    rm -f "$HTML"
    "$BATCHLAB" report --db "$DB" --watch --interval 0.2 -o "$HTML" >"$S/.wout" 2>"$S/.werr" &
    pid=$!
    wait_for "first-run"
    grep -q -F '<meta http-equiv="refresh" content="1">' "$HTML" ||
        { kill "$pid"; fail "the watched page does not refresh itself"; }
    train "second-$sig"                 # written while the page is watched
    wait_for "second-$sig"
    kill -"$sig" "$pid"
    set +e
    wait "$pid"
    STATUS=$?
    set -e
    OUT=$(cat "$S/.wout")
    ERR=$(cat "$S/.werr")
    LAST="batchlab report --watch (SIG$sig)"
    expect_status 0
    expect_err "watching"
    ls "$S" | grep -q '\.tmp' && fail "a temporary file was left behind"
    grep -q '</html>' "$HTML" || fail "the page was left incomplete"
done
echo "ok"

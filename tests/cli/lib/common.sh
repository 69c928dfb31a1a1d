# Helpers for tests/cli/*.sh. Source it first:  . "$(dirname "$0")/lib/common.sh"
# It sets -eu, checks the environment that tests/cli/CMakeLists.txt passes, empties the
# scratch directory ($SCRATCH) and provides:
#   run CMD...            runs CMD, keeps its stdout in $OUT, stderr in $ERR, status in $STATUS
#   expect_status N       fails unless the last run exited with N
#   expect_out TEXT       fails unless stdout contains TEXT (fixed string)
#   expect_err TEXT       the same for stderr
#   expect_no_out TEXT    fails if stdout contains TEXT
#   fail MESSAGE          prints MESSAGE and what the last run printed, exits 1
#   skip REASON           prints "SKIP: REASON" and exits 77
#   interrupt_when_training CMD...  runs CMD in the background, sends it SIGINT once its stderr
#                         shows a progress line (it is training), and sets OUT, ERR, STATUS
set -eu

BATCHLAB=${BATCHLAB:-${1:-}}
if [ -z "$BATCHLAB" ] || [ ! -x "$BATCHLAB" ]; then
    echo "error: the batchlab command is not given (argument 1 or \$BATCHLAB)" >&2
    exit 1
fi
: "${BATCHLAB_SOURCE_DIR:?}" "${BATCHLAB_BUILD_DIR:?}"
SCRATCH=${BATCHLAB_TEST_SCRATCH:-$BATCHLAB_BUILD_DIR/tests/cli/scratch/$(basename "$0" .sh)}
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
OUT=""
ERR=""
STATUS=0
LAST=""

run() {
    LAST="$*"
    set +e
    "$@" >"$SCRATCH/.stdout" 2>"$SCRATCH/.stderr"
    STATUS=$?
    set -e
    OUT=$(cat "$SCRATCH/.stdout")
    ERR=$(cat "$SCRATCH/.stderr")
}

fail() {
    {
        echo "FAIL: $*"
        echo "  command: $LAST (exit $STATUS)"
        echo "  --- stdout"
        printf '%s\n' "$OUT" | sed 's/^/  | /'
        echo "  --- stderr"
        printf '%s\n' "$ERR" | sed 's/^/  | /'
    } >&2
    exit 1
}

skip() {
    echo "SKIP: $*"
    exit 77
}

expect_status() {
    [ "$STATUS" -eq "$1" ] || fail "expected exit status $1"
}

expect_out() {
    case "$OUT" in *"$1"*) ;; *) fail "stdout lacks: $1" ;; esac
}

expect_err() {
    case "$ERR" in *"$1"*) ;; *) fail "stderr lacks: $1" ;; esac
}

expect_no_out() {
    case "$OUT" in *"$1"*) fail "stdout should not contain: $1" ;; *) ;; esac
}

interrupt_when_training() {
    LAST="$* (interrupted)"
    "$@" >"$SCRATCH/.stdout" 2>"$SCRATCH/.stderr" &
    local pid=$!
    # wait for the first progress line, not a fixed time: a loaded machine may take longer to
    # load the data, and a SIGINT before the handler is installed would be lost
    for _ in $(seq 1 600); do
        grep -q "step" "$SCRATCH/.stderr" 2>/dev/null && break
        sleep 0.1
    done
    kill -INT "$pid"
    set +e
    wait "$pid"
    STATUS=$?
    set -e
    OUT=$(cat "$SCRATCH/.stdout")
    ERR=$(cat "$SCRATCH/.stderr")
}

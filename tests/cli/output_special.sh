#!/usr/bin/env bash
# issue 15, Found 13 and Found 10: `export -o` and `report -o` over a file that is not a
# regular file write it in place and never rename over it (as root, a rename over /dev/null
# replaced the device node); a directory is refused; a store that fails to open leaves -o FILE
# untouched (export called fclose(stdout) and unlink(NULL) there). The special file is a FIFO
# made here, read by a background reader: its inode must survive the write.
. "$(dirname "$0")/lib/common.sh"
MAKER=$BATCHLAB_BUILD_DIR/tests/test_store
[ -x "$MAKER" ] || skip "the store fixture maker $MAKER is not built"
command -v mkfifo >/dev/null || skip "mkfifo is needed"
DB=$SCRATCH/results.db
"$MAKER" --fixture "$DB" >/dev/null || fail "cannot make the fixture store"

inode() { stat -c %i "$1"; }

# Writes through the FIFO: $1 = what reads it lands in, the rest the command.
through_fifo() {
    local got=$1
    shift
    rm -f "$SCRATCH/pipe" "$got"
    mkfifo "$SCRATCH/pipe"
    local before
    before=$(inode "$SCRATCH/pipe")
    timeout 30 cat "$SCRATCH/pipe" >"$got" &
    local reader=$!
    run timeout 60 "$@"
    # a command that failed before opening the FIFO leaves the reader waiting for a writer:
    # opening it read-write (which never blocks) and closing it ends the reader either way
    exec 3<>"$SCRATCH/pipe"
    exec 3>&-
    wait "$reader" || true
    [ -p "$SCRATCH/pipe" ] || fail "the FIFO was replaced by a $(stat -c %F "$SCRATCH/pipe")"
    [ "$(inode "$SCRATCH/pipe")" = "$before" ] || fail "the FIFO's inode changed"
    ls "$SCRATCH"/pipe.tmp.* >/dev/null 2>&1 && fail "a temporary file was left next to the FIFO"
    return 0
}

through_fifo "$SCRATCH/got.csv" "$BATCHLAB" export --db "$DB" -o "$SCRATCH/pipe"
expect_status 0
head -1 "$SCRATCH/got.csv" | grep -q '^run_id,seed,' || fail "the reader did not get the CSV"

through_fifo "$SCRATCH/got.json" "$BATCHLAB" export --db "$DB" --format json -o "$SCRATCH/pipe"
expect_status 0
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$SCRATCH/got.json" 2>/dev/null ||
    fail "the reader did not get valid JSON"

through_fifo "$SCRATCH/got.html" "$BATCHLAB" report --db "$DB" --experiment sweep -o "$SCRATCH/pipe"
expect_status 0
grep -q '<html' "$SCRATCH/got.html" || fail "the reader did not get the report"

# A symbolic link to a FIFO is a special file too.
rm -f "$SCRATCH/pipe"
mkfifo "$SCRATCH/pipe"
ln -sf "$SCRATCH/pipe" "$SCRATCH/link"
timeout 30 cat "$SCRATCH/pipe" >"$SCRATCH/got.csv" &
reader=$!
run timeout 60 "$BATCHLAB" export --db "$DB" -o "$SCRATCH/link"
exec 3<>"$SCRATCH/pipe"
exec 3>&-
wait "$reader" || true
expect_status 0
[ -L "$SCRATCH/link" ] && [ -p "$SCRATCH/pipe" ] || fail "the link or its FIFO was replaced"

# A regular file is replaced whole; a link to one stays a link.
echo old >"$SCRATCH/target.csv"
ln -sf "$SCRATCH/target.csv" "$SCRATCH/file_link"
run "$BATCHLAB" export --db "$DB" -o "$SCRATCH/file_link"
expect_status 0
[ -L "$SCRATCH/file_link" ] || fail "the link to a regular file was replaced by a file"
head -1 "$SCRATCH/target.csv" | grep -q '^run_id,' || fail "the link's target was not written"

# A directory is refused.
mkdir -p "$SCRATCH/dir"
run "$BATCHLAB" export --db "$DB" -o "$SCRATCH/dir"
expect_status 1
expect_err "it is a directory"

# A store that cannot be opened leaves -o FILE untouched and stdout open.
echo keep >"$SCRATCH/keep.csv"
run "$BATCHLAB" export --db "$SCRATCH/none.db" -o "$SCRATCH/keep.csv"
[ "$STATUS" -ne 0 ] || fail "a missing store should fail"
[ "$(cat "$SCRATCH/keep.csv")" = keep ] || fail "-o FILE was touched although the store failed"
ls "$SCRATCH"/keep.csv.tmp.* >/dev/null 2>&1 && fail "a temporary file was left behind"
echo "ok"

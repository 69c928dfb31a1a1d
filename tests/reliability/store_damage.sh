#!/usr/bin/env bash
# Issue 15, Found 2 and 6: the results store refuses damage and opens read-only for readers.
# - A store with 4 KB overwritten in the middle is refused by `run` (quick_check before any
#   write) with a message naming the file and what to do; the file is left byte for byte.
# - A store another user owns (file and directory not writable) is read by runs, show and
#   export (read-only, immutable when SQLite cannot make its -shm file beside it).
. "$(dirname "$0")/../cli/lib/common.sh"
command -v sqlite3 >/dev/null || skip "the sqlite3 command (Debian package sqlite3) is missing"
S=$SCRATCH
cat >"$S/sweep.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 600, validation = 100, test = 0, dim = 8,
                                       classes = 2, seed = 3 })
local s = bl.sweep { name = arg[1] or "fill",
           base = { dataset = data, model = bl.model("mlp", { hidden = { 8 } }), epochs = 1,
                    seed = 1, quiet = true, eval_every = { steps = 1 } },
           vary = { batch = { 4, 8, 16, 32 } } }
-- a store that cannot be opened fails each run (with the message) and the sweep goes on
for _, r in ipairs(s.runs) do
  if r.status ~= "completed" then io.stderr:write(r.status, ": ", tostring(r.error), "\n") end
end
print(("done, %d failed"):format(s.failed))
LUA
DB=$S/damaged.db
run "$BATCHLAB" run --db "$DB" "$S/sweep.lua"
expect_status 0
expect_out "done, 0 failed"
sqlite3 "$DB" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
pages=$(sqlite3 "$DB" "PRAGMA page_count;")
[ "$pages" -ge 8 ] || fail "the store is too small to damage its middle ($pages pages)"
# 4 KB of a pattern over the middle of the file
page=$(sqlite3 "$DB" "PRAGMA page_size;")
mid=$(( (pages / 2) * page ))
head -c 4096 /dev/zero | tr '\0' '\132' | dd of="$DB" bs=1 seek=$mid conv=notrunc status=none
before=$(cksum < "$DB")
run "$BATCHLAB" run --db "$DB" "$S/sweep.lua" more
expect_out "done, 4 failed"
expect_err "damaged.db' is damaged"
expect_err "nothing was written"
expect_err ".recover"
[ "$(cksum < "$DB")" = "$before" ] || fail "the damaged store was changed"
[ ! -s "$DB-wal" ] || fail "a -wal file was written beside the damaged store"

# Read-only: as another user when this is root, else with the permissions taken away.
DB=$S/ro/store.db
mkdir -p "$S/ro"
run "$BATCHLAB" run --db "$DB" "$S/sweep.lua" ro
expect_status 0
chmod 0555 "$S/ro"
chmod 0444 "$DB"
as_other() { "$@"; }
if [ "$(id -u)" -eq 0 ]; then
    command -v setpriv >/dev/null || { chmod 0755 "$S/ro"; skip "root without setpriv"; }
    chmod 0755 "$S" "$(dirname "$S")"
    as_other() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
    # The other user must reach the binary, its library and the store: a checkout in a
    # `mktemp -d` folder (0700) is not searchable by others. Grant search (o+x, not listing)
    # on the ancestors that lack it, and take it back when the test ends.
    granted=()
    for p in "$BATCHLAB" "$DB"; do
        d=$(dirname "$(readlink -f "$p")")
        while [ "$d" != / ]; do
            if [ -z "$(find "$d" -maxdepth 0 -perm -o=x)" ]; then
                chmod o+x "$d" && granted+=("$d")
            fi
            d=$(dirname "$d")
        done
    done
    trap 'for d in "${granted[@]}"; do chmod o-x "$d"; done' EXIT
    as_other "$BATCHLAB" --version >/dev/null 2>&1 ||
        { chmod 0755 "$S/ro"; skip "user nobody cannot run $BATCHLAB"; }
fi
for cmd in "runs" "show 1" "export --format csv"; do
    # shellcheck disable=SC2086
    run as_other "$BATCHLAB" $cmd --db "$DB"
    expect_status 0
    case "$ERR" in *readonly*|*read-only*) fail "$cmd: $ERR" ;; esac
done
run as_other "$BATCHLAB" runs --db "$DB"
expect_out "completed"
chmod 0755 "$S/ro"
chmod 0644 "$DB"
echo "store_damage.sh: all checks passed"

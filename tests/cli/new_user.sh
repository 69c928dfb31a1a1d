#!/usr/bin/env bash
# What a new user tripped over (issue 14, found 10): `export -o` writes its file with the
# same mode as `report -o` (0666 less the umask, not 0600); `find-batch` without --budget
# prints its error and no table header; docs/lua-api.md's `batchlab run` options table lists
# every flag of `batchlab run --help` and its run statuses include interrupted and diverged.
. "$(dirname "$0")/lib/common.sh"
DOC="$BATCHLAB_SOURCE_DIR/docs/lua-api.md"

# ---- export -o and report -o: the same file mode, from the umask
db="$SCRATCH/nu.db"
rm -f "$db" "$SCRATCH/out.csv" "$SCRATCH/out.html"
run "$BATCHLAB" run --db "$db" -e '
local bl = require "batchlab"
bl.train { dataset = bl.dataset("synthetic", { samples = 200, dim = 4, classes = 2 }),
           model = bl.model("logreg"), batch = 20, max_steps = 3, quiet = true,
           experiment = "nu" }'
expect_status 0
umask 022
run "$BATCHLAB" export --db "$db" -o "$SCRATCH/out.csv"
expect_status 0
run "$BATCHLAB" report --db "$db" --experiment nu -o "$SCRATCH/out.html"
expect_status 0
mode_csv=$(stat -c %a "$SCRATCH/out.csv")
mode_html=$(stat -c %a "$SCRATCH/out.html")
[ "$mode_csv" = 644 ] || fail "export -o wrote mode $mode_csv under umask 022 (want 644)"
[ "$mode_html" = 644 ] || fail "report -o wrote mode $mode_html under umask 022 (want 644)"
umask 077
rm -f "$SCRATCH/out.csv"
run "$BATCHLAB" export --db "$db" -o "$SCRATCH/out.csv"
expect_status 0
mode_csv=$(stat -c %a "$SCRATCH/out.csv")
[ "$mode_csv" = 600 ] || fail "export -o ignored umask 077: mode $mode_csv"
umask 022
ls "$SCRATCH" | grep -q '\.tmp\.' && fail "a temporary file was left: $(ls "$SCRATCH")"

# ---- find-batch without --budget: the error alone, no table header
run "$BATCHLAB" find-batch --model logreg --dataset synthetic -d samples=200 -d dim=4
[ "$STATUS" -ne 0 ] || fail "find-batch without --budget succeeded"
expect_err "memory budget is needed"
expect_no_out "fits"
[ -z "$OUT" ] || fail "find-batch printed to stdout before its error"

# ---- docs/lua-api.md's `batchlab run` table is `batchlab run --help`
run "$BATCHLAB" run --help
expect_status 0
flags=$(printf '%s\n' "$OUT" | sed -n 's/^  \(-[^ ].*\)$/\1/p' | grep -o -- '--\?[a-z][a-z-]*' |
        grep -- '^-' | sort -u)
[ -n "$flags" ] || fail "no flags found in batchlab run --help"
table=$(sed -n '/^## Running scripts/,/^## /p' "$DOC" | sed -n 's/^| \(`-[^|]*\) |.*/\1/p')
[ -n "$table" ] || fail "no options table under 'Running scripts' in docs/lua-api.md"
documented=$(printf '%s\n' "$table" | grep -o -- '`-[-a-z]*' | tr -d '`' | sort -u)
for f in $flags; do
    printf '%s\n' "$documented" | grep -qx -- "$f" ||
        fail "docs/lua-api.md's batchlab run table lacks $f"
done
for f in $documented; do
    printf '%s\n' "$flags" | grep -qx -- "$f" ||
        fail "docs/lua-api.md's batchlab run table lists $f, which batchlab run --help lacks"
done
status_row=$(sed -n '/^## The run table/,/^## /p' "$DOC" | grep '^| `status` |')
for s in completed failed diverged interrupted; do
    case "$status_row" in *"\"$s\""*) ;; *) fail "the run table's status row lacks \"$s\"" ;; esac
done
echo "new_user.sh: all checks passed"

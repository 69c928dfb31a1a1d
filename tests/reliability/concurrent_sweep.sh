#!/usr/bin/env bash
# Issue 15, Found 5: the same named sweep started twice at once trains each configuration
# once — a process claims a configuration before training it (the claims table), the other
# waits for its result and gives it back as resumed; a claim of a process that is gone is
# taken over (the SIGKILL test, store_crash.sh, covers that path).
. "$(dirname "$0")/../cli/lib/common.sh"
command -v sqlite3 >/dev/null || skip "the sqlite3 command (Debian package sqlite3) is missing"
S=$SCRATCH
DB=$S/shared.db
q() { sqlite3 -batch -noheader "$DB" "$1"; }
cat >"$S/sweep.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 3000, validation = 100, test = 0, dim = 16,
                                       classes = 4, seed = 3 })
-- both processes start their sweeps together: when the file arg[1] appears
while not io.open(arg[1]) do local t = os.clock() while os.clock() - t < 0.005 do end end
local s = bl.sweep { name = "twice",
  base = { dataset = data, model = bl.model("mlp", { hidden = { 64 } }), epochs = 6, seed = 1, threads = 1,
           quiet = true },
  vary = { batch = { 4, 8, 16, 32, 64, 128 } } }
print(("done %d runs, %d resumed, %d failed"):format(s.total, s.resumed, s.failed))
LUA
"$BATCHLAB" run --db "$DB" "$S/sweep.lua" "$S/go" > "$S/a.out" 2>&1 &
a=$!
"$BATCHLAB" run --db "$DB" "$S/sweep.lua" "$S/go" > "$S/b.out" 2>&1 &
b=$!
sleep 0.5
touch "$S/go"
sa=0; sb=0
wait $a || sa=$?
wait $b || sb=$?
OUT=$(cat "$S/a.out" "$S/b.out")
[ "$sa" -eq 0 ] && [ "$sb" -eq 0 ] || fail "the two sweeps exited $sa and $sb"
[ "$(grep -c 'done 6 runs' <<<"$OUT")" -eq 2 ] || fail "a sweep did not end with its 6 runs"
for b in 4 8 16 32 64 128; do
    n=$(q "SELECT count(*) FROM runs WHERE label LIKE '%batch=$b'")
    [ "$n" -eq 1 ] || fail "batch $b was trained $n times"
done
[ "$(q "SELECT count(*) FROM runs WHERE status = 'completed'")" -eq 6 ] || fail "not 6 completed runs"
[ "$(q "SELECT count(*) FROM claims")" -eq 0 ] || fail "claims were left behind"
[ "$(q 'PRAGMA integrity_check')" = "ok" ] || fail "integrity_check failed"
echo "concurrent_sweep.sh: all checks passed"

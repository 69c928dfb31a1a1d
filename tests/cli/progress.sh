#!/usr/bin/env bash
# Issue 14, found 1: progress lines.
#  - On a terminal (tmux, 80 columns): a sweep's progress stays on one line per run — cut to
#    the width, redrawn in place — with "run i/n", and each run's line ends with its status and
#    final evaluation. The pane is captured and checked.
#  - Off a terminal: one plain line per evaluation point, and a final line for every run, also
#    one stopped at its target, showing the final evaluation (not the one before).
. "$(dirname "$0")/lib/common.sh"
S=$SCRATCH

# ---- off a terminal
cat >"$S/plain.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 2000, dim = 8, classes = 3, validation = 400 })
local r = bl.train { dataset = data, model = bl.model("logreg"), batch = 16, max_steps = 40,
                     eval_every = { steps = 10 }, label = "plain", db = false }
print(string.format("final %.4f", r.final.val_accuracy))
local t = bl.train { dataset = data, model = bl.model("logreg"), batch = 16, max_steps = 400,
                     eval_every = { steps = 5 }, target = 0.5, stop_at_target = true,
                     label = "tgt", db = false }
print(string.format("target %s %.4f", t.stopped_by, t.final.val_accuracy))
LUA
run "$BATCHLAB" run "$S/plain.lua"
expect_status 0
for step in 10 20 30 40; do
    printf '%s\n' "$ERR" | grep -q "^plain loss .* val_acc .* step $step batch 16" ||
        fail "no plain line for the point at step $step"
done
final=$(printf '%s\n' "$OUT" | sed -n 's/^final //p')
last=$(printf '%s\n' "$ERR" | grep '^plain ' | tail -1)
case "$last" in "plain completed (max_steps) val_acc $final"*) ;;
    *) fail "the last line of run 'plain' is not its final evaluation (val_acc $final): $last" ;; esac
tfinal=$(printf '%s\n' "$OUT" | sed -n 's/^target target //p')
[ -n "$tfinal" ] || fail "the target run did not stop at its target"
tlast=$(printf '%s\n' "$ERR" | grep '^tgt ' | tail -1)
case "$tlast" in "tgt completed (target) val_acc $tfinal"*) ;;
    *) fail "a run stopped at its target has no final line: $tlast" ;; esac
case "$ERR" in *$'\r'* | *$'\033'*) fail "control characters in plain lines" ;; esac

# ---- in tmux at 80 columns
command -v tmux >/dev/null 2>&1 || skip "tmux is not installed (Debian package tmux)"
cat >"$S/sweep.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 4000, dim = 32, classes = 4, validation = 500 })
bl.sweep { name = "a-sweep-with-a-name-long-enough-to-wrap-an-eighty-column-line",
           base = { dataset = data, model = bl.model("mlp", { hidden = 64 }), max_steps = 300,
                    eval_every = { steps = 50 }, db = false },
           vary = { batch = { 16, 32, 64 } } }
LUA
sock="$S/tmux.sock"
cleanup() { tmux -S "$sock" kill-server >/dev/null 2>&1 || true; }
trap cleanup EXIT
tmux -S "$sock" -f /dev/null new-session -d -x 80 -y 40 \
    "env COLUMNS= '$BATCHLAB' run '$S/sweep.lua'; echo SWEEP-END \$?; sleep 600" ||
    skip "tmux cannot start a session here"
tmux -S "$sock" set-option -g history-limit 5000 >/dev/null 2>&1 || true
width=$(tmux -S "$sock" display-message -p '#{pane_width}')
[ "$width" = 80 ] || skip "tmux gave a pane of $width columns, not 80"
for _ in $(seq 1 1200); do
    tmux -S "$sock" capture-pane -p -S - >"$S/pane.txt"
    grep -q "SWEEP-END" "$S/pane.txt" && break
    sleep 0.1
done
OUT=$(cat "$S/pane.txt")
expect_out "SWEEP-END 0"
lines=$(grep -v '^$' "$S/pane.txt" | grep -v "SWEEP-END")
n=$(printf '%s\n' "$lines" | wc -l)
[ "$n" = 3 ] || fail "expected 3 lines (one per run) in the pane, got $n"
i=0
while IFS= read -r line; do
    i=$((i + 1))
    [ "${#line}" -lt 80 ] || fail "line $i is ${#line} columns: $line"
    case "$line" in "a-sweep-with..."*"batch=$((8 << i)) run $i/3 completed (max_steps) val_acc "*) ;;
        *) fail "line $i is not run $i's final line: $line" ;; esac
done <<<"$lines"
echo "ok"

#!/usr/bin/env bash
# bench_mpi_sweep.sh: a sweep of single-threaded runs on 1 process and on N ranks under
# mpirun (issue 12: 2 ranks in <= 0.6x the time of 1), alternating, medians of the rounds.
set -eu
usage() {
    cat <<'USAGE'
usage: bench_mpi_sweep.sh [--runs N] [--ranks N] [--rounds N] [--samples N] [--batchlab PATH]
Times a sweep of N single-threaded runs (threads = 1, synthetic data, an MLP) with
`batchlab run` in one process and with `mpirun -np RANKS batchlab run` (the distributed
sweep), ROUNDS times each, alternating, and prints the medians and their ratio, the median
seconds per run (the per-run cost of docs/distributed.md's model) and the start of an empty
script under mpirun. On a loaded machine (ranks not getting a core each) wall times say little:
it also prints the CPU seconds of the sweep in the busiest rank against one process's, the
ratio a machine with a free core per rank would show.
  --runs N      runs in the sweep (default 8)
  --ranks N     ranks of the distributed sweep (default 2)
  --rounds N    repetitions of each (default 3)
  --samples N   training samples per run (default 6000: about a second per run)
  --batchlab P  the batchlab command (default: build/bin/batchlab next to this script)
USAGE
}
runs=8 ranks=2 rounds=3 samples=6000
here=$(cd "$(dirname "$0")" && pwd)
batchlab=$here/../build/bin/batchlab
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --runs | --ranks | --rounds | --samples)
        [ $# -ge 2 ] || { echo "bench_mpi_sweep.sh: $1 needs a value" >&2; exit 2; }
        case $2 in '' | *[!0-9]* | 0) echo "bench_mpi_sweep.sh: $1 must be a whole number ≥ 1, got '$2'" >&2; exit 2 ;; esac
        eval "${1#--}=$2"; shift 2 ;;
    --batchlab)
        [ $# -ge 2 ] || { echo "bench_mpi_sweep.sh: $1 needs a value" >&2; exit 2; }
        batchlab=$2; shift 2 ;;
    *) echo "bench_mpi_sweep.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$batchlab" ] || { echo "bench_mpi_sweep.sh: no batchlab command at $batchlab" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "bench_mpi_sweep.sh: mpirun not found" >&2; exit 2; }
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/sweep.lua" <<LUA
local bl = require "batchlab"
local t0 = os.clock()
local seeds = {}
for i = 1, $runs do seeds[i] = i end
bl.sweep { name = "bench", quiet = true,
  base = { dataset = bl.dataset("synthetic", { samples = $samples, validation = 500, test = 0,
                                               dim = 64, classes = 10, seed = 1 }),
           model = bl.model("mlp", { hidden = { 128 } }), epochs = 3, batch = 32, threads = 1,
           skip_test = true, prefetch = "off", optimizer = bl.optim.sgd { lr = 0.05 } },
  vary = { seed = seeds } }
io.stderr:write(("cpu %.4f\n"):format(os.clock() - t0))
LUA
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# secs OUT CMD...: the wall seconds of CMD into OUT, the busiest rank's CPU seconds into OUT.cpu
secs() {
    local out=$1 t0 t1
    shift
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>"$dir/err" || { echo "bench_mpi_sweep.sh: '$*' failed:" >&2; cat "$dir/err" >&2; exit 1; }
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }' >>"$out"
    awk '/^cpu / { if ($2 > m) m = $2 } END { print m }' "$dir/err" >>"$out.cpu"
}
mpi=(mpirun -np "$ranks" --oversubscribe "${root[@]}")
: >"$dir/one" && : >"$dir/many" && : >"$dir/start"
for r in $(seq 1 "$rounds"); do
    secs "$dir/one" "$batchlab" run --no-db "$dir/sweep.lua"
    secs "$dir/many" "${mpi[@]}" "$batchlab" run --no-db "$dir/sweep.lua"
    secs "$dir/start" "${mpi[@]}" "$batchlab" run --no-db -e ''
done
one=$(median <"$dir/one")
many=$(median <"$dir/many")
start=$(median <"$dir/start")
one_cpu=$(median <"$dir/one.cpu")
many_cpu=$(median <"$dir/many.cpu")
printf 'runs %d  samples %d  rounds %d\n' "$runs" "$samples" "$rounds"
printf '1 process  %8.2f s  (%.3f s per run)\n' "$one" "$(awk -v a="$one" -v n="$runs" 'BEGIN { print a / n }')"
printf '%d ranks    %8.2f s\n' "$ranks" "$many"
printf 'ratio      %8.3f  (target for 2 ranks: <= 0.6)\n' "$(awk -v a="$many" -v b="$one" 'BEGIN { print a / b }')"
printf 'mpirun start of an empty script: %.2f s\n' "$start"
printf 'CPU s in the sweep: 1 process %.2f, busiest of %d ranks %.2f: ratio %.3f\n' "$one_cpu" \
    "$ranks" "$many_cpu" "$(awk -v a="$many_cpu" -v b="$one_cpu" 'BEGIN { print a / b }')"

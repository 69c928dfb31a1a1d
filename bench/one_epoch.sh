#!/bin/sh
# one_epoch.sh — the whole process of a 1-epoch quick start, timed: `batchlab run
# examples/quickstart.lua 1` (MLP 784-256-128-10, SGD momentum 0.9, batch 128, 5,000
# validation images, evaluation at the end of the epoch, the test split, the results store),
# from the command's start to its exit, with its peak memory (/usr/bin/time). One untimed run
# first warms the page cache and the decompressed-data cache (docs/loading.md); then REPEATS
# timed runs and their median. Each run works in a temporary folder (its results store is
# thrown away). Nothing is built: give batchlab's build folder.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build"
dir=/usr/share/datasets/fashion-mnist
repeats=5

usage() {
    cat <<EOF2
usage: bench/one_epoch.sh [--build DIR] [--dir DIR] [--repeats N] [--help]
  --build DIR    batchlab's build folder, holding bin/batchlab (default: build/ beside bench/)
  --dir DIR      Fashion-MNIST IDX files (default $dir)
  --repeats N    timed runs after the warm-up run (default $repeats)
Prints wall seconds, peak RSS and CPU seconds of each run, then the medians.
EOF2
}
while [ $# -gt 0 ]; do
    case "$1" in
    --help|-h) usage; exit 0 ;;
    --build|--dir|--repeats)
        [ $# -ge 2 ] || { echo "one_epoch: $1 needs a value (see --help)" >&2; exit 2; }
        case "$1" in --build) build=$2 ;; --dir) dir=$2 ;; --repeats) repeats=$2 ;; esac
        shift 2 ;;
    *) echo "one_epoch: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$repeats" in ''|*[!0-9]*|0) echo "one_epoch: --repeats must be a count >= 1" >&2; exit 2 ;; esac
bin="$build/bin/batchlab"
[ -x "$bin" ] || { echo "one_epoch: no $bin: build batchlab first (cmake -S . -B build && cmake --build build), or give --build DIR" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "one_epoch: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
[ -d "$dir" ] || { echo "one_epoch: no data folder $dir (apt-get install dataset-fashion-mnist, or give --dir)" >&2; exit 1; }
script=$(cd "$here/../examples" && pwd)/quickstart.lua

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
once() { # → "WALL_S PEAK_KB CPU_S"
    rm -f "$work/batchlab.db"
    (cd "$work" && /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$bin" run --quiet "$script" 1 "$dir" \
        > "$work/out" 2>&1) || { cat "$work/out" >&2; echo "one_epoch: the run failed" >&2; exit 1; }
    awk '{ print $1, $2, $3 + $4 }' "$work/time"
}
once > /dev/null
echo "run  wall s  peak MB  cpu s"
i=1
while [ "$i" -le "$repeats" ]; do
    once | awk -v i="$i" '{ printf "%3d %7.2f %8.1f %6.2f\n", i, $1, $2 / 1024, $3 }' | tee -a "$work/all"
    i=$((i + 1))
done
sort -k2,2n "$work/all" | awk '{ w[NR] = $2 } END { printf "median wall %.2f s\n", NR % 2 ? w[(NR + 1) / 2] : (w[NR / 2] + w[NR / 2 + 1]) / 2 }'
sort -k4,4n "$work/all" | awk '{ c[NR] = $4 } END { printf "median cpu %.2f s (user + system: less sensitive to a busy machine than the wall time)\n", NR % 2 ? c[(NR + 1) / 2] : (c[NR / 2] + c[NR / 2 + 1]) / 2 }'
sort -k3,3n "$work/all" | awk '{ m[NR] = $3 } END { printf "median peak %.1f MB (largest %.1f MB)\n", NR % 2 ? m[(NR + 1) / 2] : (m[NR / 2] + m[NR / 2 + 1]) / 2, m[NR] }'

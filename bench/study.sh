#!/bin/sh
# study.sh — the 21-run batch-size study of issue 13 (bench/study.lua: MLP, batch 16 … 1024 ×
# 3 seeds to 85 % validation accuracy, linear LR scaling with one warmup epoch), timed as a
# whole process with its peak memory (/usr/bin/time; with --workers, the peak of the largest
# process). Nothing is built: give batchlab's build folder. Options other than --build and
# --workers are passed to study.lua (see --help).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build"
workers=1
while [ $# -gt 0 ]; do
    case "$1" in
    --build|--workers)
        [ $# -ge 2 ] || { echo "study: $1 needs a value" >&2; exit 2; }
        if [ "$1" = --build ]; then build=$2; else workers=$2; fi
        shift 2 ;;
    *) break ;;
    esac
done
bin="$build/bin/batchlab"
case " $* " in
*" --help "*|*" -h "*)
    echo "usage: bench/study.sh [--build DIR] [--workers N] [study.lua options]"
    echo "  --build DIR    batchlab's build folder, holding bin/batchlab (default: build/ beside bench/)"
    echo "  --workers N    batchlab run --workers N: N processes share the 21 runs (default 1;"
    echo "                 each process's runs get cores / N threads unless --threads is given)"
    [ -x "$bin" ] && "$bin" run "$here/study.lua" --help | sed 1d
    exit 0 ;;
esac
[ -x "$bin" ] || { echo "study: no $bin: build batchlab first (cmake -S . -B build && cmake --build build), or give --build DIR" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "study: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
(cd "$work" && /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$bin" run --workers "$workers" "$here/study.lua" "$@")
awk -v w="$workers" '{ printf "study process%s: wall %.2f s (user %.2f s, system %.2f s), peak RSS %.1f MB\n", (w > 1 ? "es (" w " workers)" : ""), $1, $2, $3, $4 / 1024 }' "$work/time"

#!/usr/bin/env bash
# Issue 11's benchmark in one go, on a GPU machine: batchlab's bench_cuda and PyTorch eager
# (bench/pytorch_cuda.py) on the same GPU, same model, data and settings, then one table side
# by side with the speed-up (PyTorch's epoch time / batchlab's; > 1: batchlab is faster).
#
#   bench/run_cuda_bench.sh [BUILD_DIR] [extra options for both, e.g. --epochs 5 --tf32]
#
# BUILD_DIR defaults to ./build (configured with the CUDA backend: docs/cuda.md). The raw
# outputs are kept in $BUILD_DIR/bench/cuda_*.txt. Exit 77 when either side has no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ $# -gt 0 ] && shift
extra=()
tf32=0
for a in "$@"; do
    if [ "$a" = "--tf32" ]; then tf32=1; else extra+=("$a"); fi
done
out="$build/bench"
[ -x "$out/bench_cuda" ] || { echo "no $out/bench_cuda: build first (docs/cuda.md)" >&2; exit 2; }
python=${PYTHON:-/usr/bin/python3}

rc=0
BATCHLAB_CUDA_TF32=$tf32 "$out/bench_cuda" "${extra[@]}" | tee "$out/cuda_batchlab.txt" || rc=$?
[ "$rc" -eq 0 ] || { echo "bench_cuda exited $rc" >&2; exit "$rc"; }
ptargs=("${extra[@]}")
[ "$tf32" = 1 ] && ptargs+=(--tf32)
"$python" bench/pytorch_cuda.py "${ptargs[@]}" | tee "$out/cuda_pytorch.txt" || rc=$?
[ "$rc" -eq 0 ] || { echo "pytorch_cuda.py exited $rc" >&2; exit "$rc"; }

echo
echo "== epoch time (s), MLP 784-256-128-10, data resident, median of timed epochs"
awk 'FNR == 1 { file++ }
     $1 ~ /^[0-9]+$/ && NF >= 5 { t[file, $1] = $3; if (file == 1) order[++n] = $1 }
     END {
         printf "%8s %12s %12s %10s\n", "batch", "batchlab", "pytorch", "speed-up"
         for (i = 1; i <= n; i++) {
             b = order[i]
             p = ((2, b) in t) ? t[2, b] : "-"
             s = (p != "-" && t[1, b] > 0) ? sprintf("%.2fx", p / t[1, b]) : "-"
             printf "%8s %12s %12s %10s\n", b, t[1, b], p, s
         }
     }' "$out/cuda_batchlab.txt" "$out/cuda_pytorch.txt"

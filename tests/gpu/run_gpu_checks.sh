#!/usr/bin/env bash
# Every check of issue 11 that needs a GPU, in one go, for a machine that has one: builds with
# the CUDA backend required, runs the gpu-labelled tests (they must PASS here, not skip), the
# device tests that also run elsewhere, then the benchmark side by side with PyTorch eager.
#
#   tests/gpu/run_gpu_checks.sh [BUILD_DIR] [options for bench/run_cuda_bench.sh]
#
# BUILD_DIR defaults to build-gpu. A few minutes on an H100 (most of it the build). Prints
# what the GPU is; exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-gpu}
[ $# -gt 0 ] && shift
command -v nvidia-smi >/dev/null && nvidia-smi -L
cmake -S . -B "$build" -DBATCHLAB_CUDA=ON -DBATCHLAB_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
# gpu tests: a skip here means the GPU was not usable, which is a failure of this script
out=$(ctest --test-dir "$build" -L gpu --output-on-failure 2>&1) || { echo "$out"; exit 1; }
echo "$out"
if grep -q "Skipped\|SKIP" <<<"$out"; then
    echo "the gpu tests skipped: no usable GPU" >&2
    exit 1
fi
ctest --test-dir "$build" -R "device|kernel_math|cuda" --output-on-failure
bench/run_cuda_bench.sh "$build" "$@"

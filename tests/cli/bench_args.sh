#!/usr/bin/env bash
# The benchmarks' command lines (issue 13): --help prints the usage and exits 0 without
# running anything; an unknown option or a bad number is refused with exit status 2 (they
# used to run with defaults, and bench_idx took --help for its data directory).
. "$(dirname "$0")/lib/common.sh"

BENCH="$BATCHLAB_BUILD_DIR/bench"
[ -x "$BENCH/bench_engine" ] || skip "benchmarks not built (BATCHLAB_BUILD_BENCH=OFF)"

for b in bench_core bench_engine bench_conv bench_idx bench_lua_schedule bench_allreduce \
    bench_fingerprint; do
    run timeout 10 "$BENCH/$b" --help
    expect_status 0
    expect_out "usage: $b"
    run timeout 10 "$BENCH/$b" --no-such-option
    expect_status 2
done
run timeout 10 "$BENCH/bench_engine" --rounds 0
expect_status 2
expect_err "--rounds must be a whole number ≥ 1, got '0'"
run timeout 10 "$BENCH/bench_engine" --epochs
expect_status 2
expect_err "--epochs needs a value"
run timeout 10 "$BENCH/bench_fingerprint" --batches 8,0
expect_status 2
expect_err "each batch and thread count must be a whole number ≥ 1, got '0'"
run timeout 10 "$BENCH/bench_fingerprint" --epochs 0
expect_status 2
expect_err "--epochs must be in (0, 100], got '0'"
run timeout 10 "$BENCH/bench_engine" --warmup 99999999999
expect_status 2
expect_err "--warmup must be at most 1000000 steps"
run timeout 10 "$BENCH/bench_fingerprint" --models ""
expect_status 2
expect_err "--models needs at least one model"
run timeout 10 "$BENCH/bench_engine" --batches 8,x
expect_status 2
expect_err "--batches must be a whole number ≥ 1, got 'x'"
run timeout 10 "$BENCH/bench_core" --seconds x
expect_status 2
expect_err "--seconds must be in (0, 3600], got 'x'"
run timeout 10 "$BENCH/bench_conv" --threads ,
expect_status 2
expect_err "--threads needs at least one value"
run timeout 10 "$BENCH/bench_engine" --warmup x
expect_status 2
expect_err "--warmup must be a whole number ≥ 0, got 'x'"
run timeout 10 "$BENCH/bench_idx" /usr/share/datasets/fashion-mnist many
expect_status 2
expect_err "REPEATS must be a whole number ≥ 1, got 'many'"
run timeout 10 "$BENCH/bench_lua_schedule" 10
expect_status 2
expect_err "CALLS must be a whole number ≥ 1000"
run timeout 10 "$BENCH/bench_conv" -3
expect_status 2
run timeout 10 bash "$BATCHLAB_SOURCE_DIR/bench/bench_mpi_sweep.sh" --help
expect_status 0
expect_out "usage: bench_mpi_sweep.sh"
run timeout 10 bash "$BATCHLAB_SOURCE_DIR/bench/bench_mpi_sweep.sh" --rounds x
expect_status 2
expect_err "--rounds must be a whole number ≥ 1, got 'x'"
echo "ok"

#!/usr/bin/env bash
# The benchmark scripts over a build (bench/compare_pytorch.sh, one_epoch.sh, study.sh and
# study.lua; issue 13): --help prints the usage and exits 0 without running anything; an
# unknown option or a bad value exits 2; a missing build, Python with torch or data folder
# exits 1 with a message that says what to install or give. Nothing here trains.
. "$(dirname "$0")/lib/common.sh"

B="$BATCHLAB_SOURCE_DIR/bench"
S="$BATCHLAB_TEST_SCRATCH"
for s in compare_pytorch one_epoch study; do
    run timeout 20 sh "$B/$s.sh" --build "$BATCHLAB_BUILD_DIR" --help
    expect_status 0
    expect_out "usage: bench/$s.sh"
done
run timeout 20 sh "$B/study.sh" --build "$BATCHLAB_BUILD_DIR" --help
expect_out "--seeds LIST"
run timeout 20 sh "$B/compare_pytorch.sh" --no-such-option
expect_status 2
run timeout 20 sh "$B/compare_pytorch.sh" --models mlp,resnet
expect_status 2
expect_err "unknown model 'resnet'"
run timeout 20 sh "$B/compare_pytorch.sh" --rounds 0
expect_status 2
run timeout 20 sh "$B/one_epoch.sh" --repeats x
expect_status 2
run timeout 20 sh "$B/one_epoch.sh" --frobnicate
expect_status 2

# what is missing, said plainly
run timeout 20 sh "$B/compare_pytorch.sh" --build "$S/no-build"
expect_status 1
expect_err "build batchlab first"
run timeout 20 sh "$B/one_epoch.sh" --build "$S/no-build"
expect_status 1
expect_err "build batchlab first"
run timeout 20 sh "$B/study.sh" --build "$S/no-build"
expect_status 1
expect_err "build batchlab first"
if [ -x "$BATCHLAB_BUILD_DIR/bench/bench_engine" ]; then
    run timeout 20 sh "$B/compare_pytorch.sh" --build "$BATCHLAB_BUILD_DIR" --dir "$S/no-data"
    expect_status 1
    expect_err "no data folder $S/no-data"
    mkdir -p "$S/data"
    run timeout 20 sh "$B/compare_pytorch.sh" --build "$BATCHLAB_BUILD_DIR" --dir "$S/data" \
        --python /bin/false
    expect_status 1
    expect_err "cannot import torch"
fi
if command -v python3 >/dev/null 2>&1; then
    run timeout 60 python3 "$B/pytorch_models.py" --model mlp --batches 0
    expect_status 2
fi

# study.lua refuses what it does not know
run timeout 20 "$BATCHLAB" run "$B/study.lua" --seeds 1,x
expect_status 2
expect_err "'x' is not a positive whole number"
run timeout 20 "$BATCHLAB" run "$B/study.lua" --bogus 1
expect_status 2
expect_err "unknown option"
echo "ok"

#!/usr/bin/env bash
# device = "cuda" where no GPU can run it (issue 11): `batchlab run` exits 1 and says what is
# missing — the backend (built without CUDA), the driver or the device — and "cpu" still works.
# Where a CUDA device is usable the failure cannot be shown: SKIP.
. "$(dirname "$0")/lib/common.sh"
S=$SCRATCH

cat >"$S/cuda.lua" <<'LUA'
local bl = require "batchlab"
local data = bl.dataset("synthetic", { task = "blobs", samples = 200, dim = 4, classes = 2,
                                       validation = 40, test = 0 })
local model = bl.model("mlp", { hidden = { 8 } })
local r = bl.train { model = model, dataset = data, device = arg[1], max_steps = 3, batch = 16,
                     seed = 1, quiet = true }
print("status=" .. r.status)
LUA

run "$BATCHLAB" run "$S/cuda.lua" cpu
expect_status 0
expect_out "status=completed"

run "$BATCHLAB" run "$S/cuda.lua" cuda
if [ "$STATUS" -eq 0 ]; then
    skip "a CUDA device is usable here, so a CUDA request does not fail"
fi
expect_status 1
expect_err "cuda.lua:5:"
if [ -f "$BATCHLAB_BUILD_DIR/plugins/libbatchlab-cuda.so" ]; then
    # built with CUDA: the backend's probe says what is missing
    expect_err "libbatchlab-cuda.so) cannot run here: no CUDA"
    case "$ERR" in
        *"no CUDA driver"* | *"no CUDA device"*) ;;
        *) fail "the message names neither the driver nor the device" ;;
    esac
else
    expect_err "no backend libbatchlab-cuda.so on the plugin search path"
    expect_err "this batchlab was built without CUDA"
fi
case "$ERR" in *"Segmentation"* | *"Aborted"*) fail "crashed" ;; esac

# a device number beyond what is there fails the same clean way
run "$BATCHLAB" run "$S/cuda.lua" cuda:7
expect_status 1
expect_err "cuda"

# The benchmark: its usage, a refused option, and "SKIP" with the reason (77) without a GPU.
if [ -x "$BATCHLAB_BUILD_DIR/bench/bench_cuda" ]; then
    run "$BATCHLAB_BUILD_DIR/bench/bench_cuda" --help
    expect_status 0
    expect_out "usage: bench_cuda"
    run "$BATCHLAB_BUILD_DIR/bench/bench_cuda" --epochs 0
    expect_status 2
    run "$BATCHLAB_BUILD_DIR/bench/bench_cuda" --max-batch 64 --epochs 1
    expect_status 77
    expect_err "bench_cuda: SKIP: "
fi
echo "ok"

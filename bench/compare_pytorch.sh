#!/bin/sh
# compare_pytorch.sh — batchlab against PyTorch on the same models, side by side: training
# throughput (samples/s, no evaluation) of the MLP 784-256-128-10 and the cnn plugin's LeNet
# preset on Fashion-MNIST, over batch sizes. The two run alternately in one sitting (round r
# runs batchlab then PyTorch, round r+1 the other way round), and the table gives the median
# of the rounds and the ratio batchlab / PyTorch.
#
# batchlab side: the build's bench/bench_engine (whole epochs through the engine, evaluation
# off). PyTorch side: bench/pytorch_models.py under /usr/bin/python3 (Debian python3-torch),
# torch.set_num_threads(1). Both leave their first 5 steps out of the timing (first-call and
# allocation costs: bench_engine --warmup 5), so that at a large batch, where --epochs is
# only a few steps, one side's start-up is not counted against the other's steady state.
# Nothing is built: give the build folder of batchlab.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build"
dir=/usr/share/datasets/fashion-mnist
models=mlp,cnn
batches=16,32,128,512
epochs=0.25
rounds=3
threads=
torch_threads=1
python=/usr/bin/python3

usage() {
    cat <<EOF
usage: bench/compare_pytorch.sh [options]
  --build DIR          batchlab's build folder, holding bench/bench_engine (default: build/
                       beside bench/); build it first: cmake -S . -B build && cmake --build build
  --dir DIR            Fashion-MNIST IDX files (default $dir)
  --models LIST        mlp, cnn or both (default $models)
  --batches LIST       batch sizes (default $batches)
  --epochs X           epochs timed per model and batch size, each side (default $epochs)
  --rounds N           alternations; the table shows the median (default $rounds)
  --threads N          batchlab's CPU threads (default: batchlab's choice)
  --torch-threads N    torch.set_num_threads (default $torch_threads)
  --python PATH        the Python with torch (default $python)
  --help               this text
Prints one line per measurement as it goes, then the table. Exit status 0; 2 for a bad
option; 1 when batchlab's build, torch or the data is missing (the message says which).
EOF
}

die() { echo "compare_pytorch: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
    --help|-h) usage; exit 0 ;;
    --build|--dir|--models|--batches|--epochs|--rounds|--threads|--torch-threads|--python)
        [ $# -ge 2 ] || { echo "compare_pytorch: $1 needs a value (see --help)" >&2; exit 2; }
        case "$1" in
        --build) build=$2 ;; --dir) dir=$2 ;; --models) models=$2 ;; --batches) batches=$2 ;;
        --epochs) epochs=$2 ;; --rounds) rounds=$2 ;; --threads) threads=$2 ;;
        --torch-threads) torch_threads=$2 ;; --python) python=$2 ;;
        esac
        shift 2 ;;
    *) echo "compare_pytorch: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$rounds" in ''|*[!0-9]*|0) echo "compare_pytorch: --rounds must be a count >= 1" >&2; exit 2 ;; esac
case "$batches" in ''|*[!0-9,]*) echo "compare_pytorch: --batches must be like 16,32,128" >&2; exit 2 ;; esac
for m in $(echo "$models" | tr , ' '); do
    case "$m" in mlp|cnn) ;; *) echo "compare_pytorch: unknown model '$m' (mlp, cnn)" >&2; exit 2 ;; esac
done

engine="$build/bench/bench_engine"
[ -x "$engine" ] || die "no $engine: build batchlab first (cmake -S . -B build && cmake --build build), or give --build DIR"
[ -d "$dir" ] || die "no data folder $dir (apt-get install dataset-fashion-mnist, or give --dir)"
command -v "$python" >/dev/null 2>&1 || die "no Python at $python (give --python)"
"$python" -c 'import torch' 2>/dev/null ||
    die "$python cannot import torch: install Debian's python3-torch (apt-get install python3-torch)"

out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM

run_batchlab() { # model → lines "batchlab MODEL BATCH RATE"
    set -- --models "$1" --batches "$batches" --epochs "$epochs" --rounds 1 --warmup 5 \
        --dir "$dir"
    [ -z "$threads" ] || set -- "$@" --threads "$threads"
    "$engine" "$@" > "$out.bl" || die "bench_engine failed: $engine $*"
    # the header names the columns; take "samples/s" by its name
    awk 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "samples/s") c = i; next }
         c && NF >= c { print "batchlab", $1, $2, $c }' "$out.bl"
}

run_pytorch() {
    "$python" "$here/pytorch_models.py" --model "$1" --batches "$batches" --epochs "$epochs" \
        --threads "$torch_threads" --dir "$dir" || die "pytorch_models.py failed for $1"
}

echo "batchlab: $engine (threads: ${threads:-default}); PyTorch: $python, $torch_threads thread(s)"
echo "models $models, batches $batches, $epochs epoch(s) each, $rounds round(s)"
r=1
while [ "$r" -le "$rounds" ]; do
    for m in $(echo "$models" | tr , ' '); do
        if [ $((r % 2)) -eq 1 ]; then
            run_batchlab "$m" | tee -a "$out"
            run_pytorch "$m" | tee -a "$out"
        else
            run_pytorch "$m" | tee -a "$out"
            run_batchlab "$m" | tee -a "$out"
        fi
    done
    r=$((r + 1))
done
rm -f "$out.bl"

echo
sort -k2,2 -k3,3n "$out" | awk '
    function median(key,   n, i, j, t, a) {
        n = cnt[key]
        for (i = 1; i <= n; i++) a[i] = val[key, i]
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { key = $1 SUBSEP $2 SUBSEP $3; val[key, ++cnt[key]] = $4
      if (!(($2, $3) in seen)) { seen[$2, $3] = 1; order[++n] = $2 " " $3 } }
    END {
        printf "%-5s %6s %14s %14s %8s\n", "model", "batch", "batchlab smp/s", "pytorch smp/s", "ratio"
        for (i = 1; i <= n; i++) {
            split(order[i], mb, " ")
            b = "batchlab" SUBSEP mb[1] SUBSEP mb[2]; p = "pytorch" SUBSEP mb[1] SUBSEP mb[2]
            if (!(b in cnt) || !(p in cnt)) continue
            vb = median(b); vp = median(p)
            printf "%-5s %6d %14.0f %14.0f %7.2fx\n", mb[1], mb[2], vb, vp, (vp > 0 ? vb / vp : 0)
        }
    }'

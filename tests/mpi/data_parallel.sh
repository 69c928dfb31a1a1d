#!/usr/bin/env bash
# data_parallel = true on 2 ranks (issue 12): the run ends with the same weights as one
# process training the same logical batch (within float tolerance: the sum over ranks adds
# in another order), the same validation loss and steps, and the same gradient noise scale
# (the per-rank gradients are the small batches; one process with gns_chunks = 2 splits the
# batch at the same row). Only rank 0 records the run; the store keeps its world size.
. "$(dirname "$0")/../cli/lib/common.sh"
. "$(dirname "$0")/lib/mpi.sh"
mpi_require
cat >"$SCRATCH/dp.lua" <<'LUA'
local bl = require "batchlab"
local dp, save = arg[1] == "dp", arg[2]
local data = bl.dataset("synthetic", { samples = 640, validation = 128, test = 0, dim = 16,
                                       classes = 4, seed = 3 })
local r = bl.train { dataset = data, model = bl.model("mlp", { hidden = { 32 } }), epochs = 3,
  batch = 64, seed = 5, optimizer = bl.optim.sgd { lr = 0.1, momentum = 0.9 },
  data_parallel = dp, quiet = true, measure_gns = true, gns_chunks = 2, skip_test = true,
  save = save, experiment = "dp" }
print(("status %s steps %d val_loss %.9g gns %.9g"):format(r.status, r.steps, r.final.val_loss,
                                                         r.final.gns))
LUA
run "$BATCHLAB" run --db "$SCRATCH/one.db" "$SCRATCH/dp.lua" single "$SCRATCH/one.blsnap"
expect_status 0
one=$OUT
mpi 2 "$BATCHLAB" run --db "$SCRATCH/two.db" "$SCRATCH/dp.lua" dp "$SCRATCH/two.blsnap"
expect_status 0
two=$OUT
[ "$(printf '%s\n' "$two" | grep -c '^status ')" = 1 ] || fail "only rank 0 prints"
read -r _ s1 _ n1 _ v1 _ g1 <<<"$one"
read -r _ s2 _ n2 _ v2 _ g2 <<<"$two"
[ "$s1" = completed ] && [ "$s2" = completed ] && [ "$n1" = "$n2" ] ||
    fail "both complete with the same steps: '$one' vs '$two'"
python3 - "$v1" "$v2" "$g1" "$g2" <<'PY' || fail "val_loss or noise scale differ: '$one' vs '$two'"
import sys
v1, v2, g1, g2 = map(float, sys.argv[1:])
assert abs(v1 - v2) <= 1e-4 * max(abs(v1), 1e-3), (v1, v2)
assert g1 == g1 and g1 > 0 and abs(g1 - g2) <= 1e-3 * abs(g1), (g1, g2)
PY
run "$BATCHLAB_WEIGHTS_DIFF" "$SCRATCH/one.blsnap" "$SCRATCH/two.blsnap"
expect_status 0
rel=$(printf '%s\n' "$OUT" | sed -n 's/.*max_rel //p')
python3 -c "import sys; sys.exit(0 if float('$rel') <= 1e-5 else 1)" ||
    fail "the weights differ by $rel (relative to the largest)"
[ "$(rows "$SCRATCH/two.db" "SELECT count(*) FROM runs")" = 1 ] || fail "rank 0 records the run once"
[ "$(rows "$SCRATCH/two.db" "SELECT ranks FROM runs")" = 2 ] || fail "the store keeps the 2 ranks"
[ "$(rows "$SCRATCH/one.db" "SELECT coalesce(ranks, 1) FROM runs")" = 1 ] || fail "one process: 1"

# a data-parallel run whose batch does not split evenly: still one logical batch
sed -i 's/batch = 64,/batch = 63,/' "$SCRATCH/dp.lua"
run "$BATCHLAB" run --no-db "$SCRATCH/dp.lua" single "$SCRATCH/one63.blsnap"
expect_status 0
mpi 2 "$BATCHLAB" run --no-db "$SCRATCH/dp.lua" dp "$SCRATCH/two63.blsnap"
expect_status 0
run "$BATCHLAB_WEIGHTS_DIFF" "$SCRATCH/one63.blsnap" "$SCRATCH/two63.blsnap"
rel=$(printf '%s\n' "$OUT" | sed -n 's/.*max_rel //p')
python3 -c "import sys; sys.exit(0 if float('$rel') <= 1e-5 else 1)" ||
    fail "uneven shares: the weights differ by $rel"
echo "data_parallel.sh: all checks passed"

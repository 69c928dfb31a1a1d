# Issue 14, found 8: `runs` shows each run's target and start date; `show` prints the stored
# configuration's doubles tidily (0.3, never 0.30000000000000004) and only the settings its
# optimizer reads (no Adam betas for SGD).
. "$(dirname "$0")/lib/common.sh"
DB=$SCRATCH/views.db
run "$BATCHLAB" run --quiet --db "$DB" -e "
local bl = require 'batchlab'
bl.train { dataset = bl.dataset('synthetic', { samples = 400, validation = 100, dim = 8,
                                               classes = 3, seed = 1 }),
           model = bl.model('mlp', { hidden = { 8 } }), batch = 32, epochs = 1, quiet = true,
           optimizer = bl.optim.sgd { lr = 0.1 * 3, momentum = 0.9 },  -- 0.30000000000000004
           target = { metric = 'val_accuracy', at_least = 0.5 } }"
expect_status 0

today=$(date -u +%Y-%m-%d)
run "$BATCHLAB" runs --db "$DB"
expect_status 0
expect_out "STARTED (UTC)"
expect_out "TARGET"
row=$(printf '%s\n' "$OUT" | awk '$1 == 1')
case "$row" in *"$today "[0-2][0-9]:[0-5][0-9]*"val_accuracy>=0.5"*completed*32*0.3*) ;;
    *) fail "the run's date or target is missing: $row" ;; esac
expect_no_out "0.30000000000000004"

run "$BATCHLAB" show 1 --db "$DB"
expect_status 0
expect_out '"lr": 0.3,'
expect_out '"momentum": 0.9,'
expect_out '"bn_momentum": 0.1,'
expect_out '"weight_decay": 0'
expect_no_out "0.30000000000000004"
for k in beta1 beta2 eps trust_coefficient; do
    expect_no_out "\"$k\""
done
# The optimizer's object stays well formed after the cut: its last line has no comma.
printf '%s\n' "$OUT" | awk '/"optimizer": \{/ { on = 1; next } on && /^ *\}/ { exit !ok }
                             on { ok = ($0 !~ /,$/) }' ||
    fail "the optimizer's last setting keeps a dangling comma"
echo "ok"

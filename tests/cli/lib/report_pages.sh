# The pages that tests/cli/report.sh checks for structure and tests/cli/report_browser.sh
# renders in a browser. Source it after common.sh. It sets the paths below and provides:
#   make_sample_store   the sample sweep of tests/tools/report_sample in $DB (known numbers:
#                       B_crit = 64); SKIP when that tool is not built
#   make_sample_page    its page for experiment bs-sweep in $HTML
#   make_real_page      a real sweep trained by `batchlab run` in $REAL, its page in $REAL_HTML
#   count PATTERN FILE, contains TEXT FILE, lacks TEXT FILE

SAMPLE=$BATCHLAB_BUILD_DIR/tests/tools/report_sample
DB=$SCRATCH/sweep.db
HTML=$SCRATCH/report.html
REAL=$SCRATCH/real.db
REAL_HTML=$SCRATCH/real.html

count() { grep -o -- "$1" "$2" | wc -l; }
contains() { grep -q -F -- "$1" "$2" || fail "$2 lacks: $1"; }
lacks() { ! grep -q -F -- "$1" "$2" || fail "$2 should not contain: $1"; }

make_sample_store() {
    [ -x "$SAMPLE" ] ||
        skip "$SAMPLE is not built (tests/CMakeLists.txt must add_subdirectory(tools))"
    run "$SAMPLE" "$DB"
    expect_status 0
}

make_sample_page() {
    run "$BATCHLAB" report --db "$DB" --experiment bs-sweep -o "$HTML"
    expect_status 0
    [ -s "$HTML" ] || fail "no report written"
}

make_real_page() {
    run "$BATCHLAB" run --quiet --db "$REAL" -e '
local bl = require "batchlab"
local data = bl.dataset("synthetic", { samples = 4000, validation = 500, test = 500, dim = 16,
                                       classes = 4, seed = 3, noise = 2, spread = 1 })
local base = { dataset = data, model = bl.model("mlp", { hidden = { 32 } }), epochs = 3,
               eval_every = { steps = 10 }, train_eval_samples = 0, measure_gns = true,
               optimizer = bl.optim.sgd { lr = 0.02, momentum = 0.5 } }
local target = { metric = "val_accuracy", at_least = 0.7 }
bl.sweep { name = "real", base = base, vary = { batch = { 16, 32, 64 }, seed = { 1, 2 } },
           target = target }
base.batch = bl.scheduler("ramp", { start = 16, stop = 64, epochs = 2 })
base.experiment, base.label, base.target = "real", "ramp <b>&", target
bl.train(base)'
    expect_status 0
    run "$BATCHLAB" report --db "$REAL" --experiment real -o "$REAL_HTML"
    expect_status 0
}

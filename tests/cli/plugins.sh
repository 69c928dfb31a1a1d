#!/usr/bin/env bash
# batchlab plugins: the list (with warnings for files that fail to load), one plugin's
# options, an unknown name, and the search order options.
. "$(dirname "$0")/lib/common.sh"
FX=${BATCHLAB_TEST_PLUGIN_DIR:-$BATCHLAB_BUILD_DIR/tests/fixtures}
[ -f "$FX/fx_good.so" ] || skip "fixture plugins not built in $FX"

# The list: a header, one aligned row per plugin, sorted by kind then name.
run "$BATCHLAB" plugins --plugin-path "$FX"
expect_status 0
expect_out "KIND"
expect_out "SUMMARY"
expect_out "fx_model"
expect_out "$FX/fx_good.so"
expect_out "fixture scheduler"
expect_out "fx_open_fails"
line=$(printf '%s\n' "$OUT" | grep ' fx_model ')
case "$line" in "model "*"1.2"*"$FX/fx_good.so"*"fixture model") ;; *) fail "bad row: $line" ;; esac
# Columns line up: NAME starts at the same offset on every line.
offsets=$(printf '%s\n' "$OUT" | awk '{ match($0, /^[^ ]+ +/); print RLENGTH }' | sort -u | wc -l)
[ "$offsets" -eq 1 ] || fail "the NAME column is not aligned"
# Rows are grouped by kind: models, then datasets, then schedulers.
kinds=$(printf '%s\n' "$OUT" | awk 'NR > 1 { print $1 }' | uniq | tr '\n' ' ')
case "$kinds" in "model dataset scheduler "*|"model dataset scheduler") ;; *) fail "kinds not grouped in order: $kinds" ;; esac
# Files that fail to load: a warning each on stderr with the reason; nothing on stdout.
expect_err "batchlab: warning: plugin file '$FX/fx_wrong_abi.so'"
expect_err "rebuild the plugin against batchlab"
expect_err "'$FX/fx_not_elf.so' could not be loaded"
expect_err "'$FX/fx_no_entry.so' has no entry symbol"
expect_no_out "fx_wrong_abi"

# BATCHLAB_PLUGIN_PATH works the same; the global option too.
run env BATCHLAB_PLUGIN_PATH="$FX" "$BATCHLAB" plugins
expect_status 0
expect_out "fx_sched"
run "$BATCHLAB" --plugin-path "$FX" plugins
expect_status 0
expect_out "fx_sched"

# Duplicates: the first directory wins, with a warning naming both files.
run "$BATCHLAB" plugins --plugin-path "$FX/path1" --plugin-path "$FX/path2" fx_dup
expect_status 0
expect_out "$FX/path1/fx_dup_b.so"
expect_err "two scheduler plugins named 'fx_dup'"
run "$BATCHLAB" --plugin-path "$FX/path2" plugins --plugin-path "$FX/path1" fx_dup
expect_status 0
expect_out "$FX/path2/fx_dup_a.so"

# One plugin: its options with types, defaults and help.
run "$BATCHLAB" plugins --plugin-path "$FX" fx_model
expect_status 0
expect_out "model fx_model 1.2"
expect_out "file: $FX/fx_good.so"
for want in "hidden      integer list  8,4" "scale       number        0.5" \
            "bias        boolean       true" "activation  string        relu" \
            "dropouts    number list   (empty)" 'tag         string        ""' \
            "widths of the hidden layers"; do
    expect_out "$want"
done
run "$BATCHLAB" plugins --plugin-path "$FX" fx_open_fails
expect_status 0
expect_out "(required)"

# A file given by path shows its plugins.
run "$BATCHLAB" plugins "$FX/fx_data.so"
expect_status 0
expect_out "dataset fx_data 1.0"
expect_out "dataset fx_old_ops"
run "$BATCHLAB" plugins "$FX/fx_wrong_abi.so"
expect_status 1
expect_err "plugin ABI 99"

# An unknown name: exit 1, the nearest name and the available ones.
run "$BATCHLAB" plugins --plugin-path "$FX" fx_modle
expect_status 1
expect_err "batchlab: error: no plugin named 'fx_modle'; did you mean 'fx_model'?"
expect_err "available: "
expect_err "fx_sched"
[ -z "$OUT" ] || fail "nothing should go to stdout"

# Usage errors and help.
run "$BATCHLAB" plugins --bogus
expect_status 2
run "$BATCHLAB" plugins --plugin-path
expect_status 2
run "$BATCHLAB" plugins --help
expect_status 0
expect_out "usage: batchlab plugins"
run "$BATCHLAB" --help
expect_status 0
expect_out "plugins"
run "$BATCHLAB" plugin
expect_status 2
expect_err "did you mean 'plugins'?"

# The plugins of this build tree, if any are built, list without warnings about them.
if ls "$BATCHLAB_BUILD_DIR"/plugins/*.so >/dev/null 2>&1; then
    run "$BATCHLAB" plugins
    expect_status 0
    expect_out "$BATCHLAB_BUILD_DIR/plugins/"
    first=$(printf '%s\n' "$OUT" | awk 'NR == 2 { print $2 }')
    run "$BATCHLAB" plugins "$first"
    expect_status 0
    expect_out "options"
fi
# Device backends (libbatchlab-<name>.so) share the plugin search path: a scan leaves them
# alone instead of warning that they are not plugins, and bl_device_open still finds them.
if ls "$BATCHLAB_TEST_PLUGIN_DIR"/backends/libbatchlab-*.so >/dev/null 2>&1; then
    run env BATCHLAB_PLUGIN_PATH="$BATCHLAB_TEST_PLUGIN_DIR/backends" "$BATCHLAB" -v plugins
    expect_status 0
    case "$ERR" in *libbatchlab-*) fail "a device backend was scanned as a plugin" ;; esac
    run env BATCHLAB_PLUGIN_PATH="$BATCHLAB_TEST_PLUGIN_DIR/backends" "$BATCHLAB" run --no-db \
        -e 'local bl = require "batchlab"
            local d = bl.dataset("synthetic", { samples = 64, validation = 0, test = 0, dim = 4, classes = 2 })
            local r = bl.train { dataset = d, model = bl.model("logreg"), device = "fixture",
                                 epochs = 1, batch = 16, quiet = true, skip_test = true }
            print(r.status)'
    expect_status 0
    expect_out "completed"
fi
echo "ok"

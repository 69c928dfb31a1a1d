#!/usr/bin/env bash
# examples/plugin-template builds against an installed batchlab (find_package + 
# batchlab_add_plugin), and the installed batchlab command finds both its own libbatchlab and
# the new plugin through BATCHLAB_PLUGIN_PATH.
. "$(dirname "$0")/lib/common.sh"
command -v cmake >/dev/null || skip "cmake is not on PATH"

prefix=$SCRATCH/prefix
build=$SCRATCH/template-build

run cmake --install "$BATCHLAB_BUILD_DIR" --prefix "$prefix"
expect_status 0
[ -x "$prefix/bin/batchlab" ] || fail "no $prefix/bin/batchlab after install"
[ -f "$prefix/include/batchlab/plugin.h" ] || fail "headers not installed"
ls "$prefix"/lib*/cmake/batchlab/batchlabConfig.cmake >/dev/null 2>&1 ||
    fail "batchlabConfig.cmake not installed"

# The installed command runs without help from LD_LIBRARY_PATH, using the installed library.
run env -u LD_LIBRARY_PATH "$prefix/bin/batchlab" --version
expect_status 0
expect_out "batchlab "
if command -v ldd >/dev/null; then
    run ldd "$prefix/bin/batchlab"
    # libbatchlab's SOVERSION is the plugin ABI (docs/plugins.md)
    abi=$(sed -n 's/^#define BL_PLUGIN_ABI \([0-9]*\).*/\1/p' \
        "$BATCHLAB_SOURCE_DIR/core/include/batchlab/plugin.h")
    expect_out "libbatchlab.so.$abi => $prefix/"
fi

run cmake -S "$BATCHLAB_SOURCE_DIR/examples/plugin-template" -B "$build" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
expect_status 0
run cmake --build "$build"
expect_status 0
[ -f "$build/bl_tiny_mlp.so" ] || fail "the template did not produce bl_tiny_mlp.so"

run env -u LD_LIBRARY_PATH BATCHLAB_PLUGIN_PATH="$build" "$prefix/bin/batchlab" plugins tiny_mlp
expect_status 0
expect_out "model tiny_mlp 1.0"
expect_out "file: $build/bl_tiny_mlp.so"
expect_out "hidden"
expect_out "slope"

run env -u LD_LIBRARY_PATH BATCHLAB_PLUGIN_PATH="$build" "$prefix/bin/batchlab" plugins
expect_status 0
expect_out "tiny_mlp"
expect_out "$build/bl_tiny_mlp.so"

# Installing the template puts the plugin in its prefix's lib/batchlab/plugins.
run cmake --install "$build" --prefix "$prefix"
expect_status 0
[ -f "$prefix/lib/batchlab/plugins/bl_tiny_mlp.so" ] || fail "template plugin not installed"
echo "ok"

#!/usr/bin/env bash
# docs/architecture.md matches the tree: no source file sits directly in core/src, every
# folder of core/src is described in the page's folder table, and every core/src folder the
# table names exists and holds sources.
. "$(dirname "$0")/lib/common.sh"
SRC=$BATCHLAB_SOURCE_DIR
DOC=$SRC/docs/architecture.md
[ -f "$DOC" ] || fail "docs/architecture.md is missing"

loose=$(find "$SRC/core/src" -maxdepth 1 -type f -name '*.[ch]' -printf '%f ')
[ -z "$loose" ] || fail "files left directly in core/src: $loose"

# Folders holding sources (lua/module is the stock-interpreter shim, described with lua/).
while read -r dir; do
    rel=${dir#"$SRC/"}
    case "$rel" in core/src/lua/module) continue ;; esac
    grep -q "\`$rel/\`" "$DOC" || fail "docs/architecture.md does not describe $rel/"
done < <(find "$SRC/core/src" -mindepth 1 -type d \
    -exec sh -c 'ls "$1"/*.c >/dev/null 2>&1 || ls "$1"/*.cu >/dev/null 2>&1' _ {} \; -print | sort)

# Every core/src folder named in the folder table exists and holds sources.
for rel in $(grep -o '^| `core/src/[a-z/]*/`' "$DOC" | sed 's/^| `//; s/`$//'); do
    ls "$SRC/$rel"*.c >/dev/null 2>&1 || ls "$SRC/$rel"*.cu >/dev/null 2>&1 ||
        fail "docs/architecture.md names $rel, which holds no source"
done

# The object libraries in CMake are the same folders.
for rel in $(find "$SRC/core/src" -mindepth 1 -type d -exec sh -c 'ls "$1"/*.c >/dev/null 2>&1' _ {} \; -print | sed "s|$SRC/core/src/||" | grep -v '^lua/module$'); do
    grep -q "[( ]$rel[ )]" <(sed -n '/set(BATCHLAB_SUBSYSTEMS/,/)/p' "$SRC/CMakeLists.txt" | tr '\n' ' ') ||
        fail "CMakeLists.txt's BATCHLAB_SUBSYSTEMS lacks $rel"
done
echo "architecture.sh: all checks passed"

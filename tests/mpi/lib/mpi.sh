# Helpers for tests/mpi/*.sh, after tests/cli/lib/common.sh:
#   mpi_require          SKIP (exit 77) with the reason when the MPI part is not built
#   mpi N CMD...         runs CMD on N ranks (mpirun -np N --oversubscribe), at most
#                        $MPI_TIMEOUT seconds (default 120), with run's OUT/ERR/STATUS
#   rows DB SQL          prints what sqlite3 answers
MPI_TIMEOUT=${MPI_TIMEOUT:-120}

mpi_require() {
    if [ -z "${BATCHLAB_MPIEXEC:-}" ]; then
        skip "batchlab was built without MPI (BATCHLAB_MPI=OFF, or AUTO without libopenmpi-dev)"
    fi
    command -v sqlite3 >/dev/null || skip "sqlite3 is not installed"
}

mpi() {
    local n=$1
    shift
    local root=()
    [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
    local pass=()
    for v in LSAN_OPTIONS ASAN_OPTIONS UBSAN_OPTIONS BATCHLAB_PLUGIN_PATH \
             OMPI_MCA_mca_base_component_disable_dlclose; do
        [ -n "${!v+set}" ] && pass+=(-x "$v")
    done
    run timeout -k 10 "$MPI_TIMEOUT" "$BATCHLAB_MPIEXEC" -np "$n" --oversubscribe "${root[@]}" \
        "${pass[@]}" "$@"
    [ "$STATUS" -ne 124 ] || fail "mpirun ran past $MPI_TIMEOUT s"
}

rows() {
    sqlite3 "$1" "$2"
}

#!/usr/bin/env bash
# Runs a GPU rank process under mpirun, or reports the test as skipped
# (exit 77, ctest's SKIP_RETURN_CODE) when the process sees no CUDA device:
# mpirun itself does not pass a rank's exit code through reliably.
#   mpirun_or_skip.sh BINARY MPIRUN [MPIRUN-ARGS...]
set -uo pipefail
binary=$1
shift
"$binary" --probe
rc=$?
[[ $rc -eq 0 ]] || exit $rc
exec "$@" "$binary"

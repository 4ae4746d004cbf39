#!/usr/bin/env bash
# Fortran callers are forwarded: fortran_check's checksums are identical
# without the interposer and under LD_PRELOAD=libsqz_mpi.so with
# SQZ_COMPRESSION=q8, and the interposer adopted no communicator (Open MPI's
# Fortran bindings call PMPI_Allreduce, past it).
#   run_fortran_check.sh FORTRAN_CHECK LIBSQZ_MPI NP
set -euo pipefail
bin=$1 lib=$2 np=$3
mpirun=(mpirun --allow-run-as-root --oversubscribe -np "$np" -x OMP_NUM_THREADS=1)
plain=$("${mpirun[@]}" "$bin" | sort)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
preloaded=$("${mpirun[@]}" -x LD_PRELOAD="$lib" -x SQZ_COMPRESSION=q8 -x SQZ_DEBUG=INFO "$bin" 2>"$log" | sort)
echo "$plain"
[ "$(wc -l <<<"$plain")" -eq "$np" ] || { echo "expected $np checksum lines"; exit 1; }
if [ "$plain" != "$preloaded" ]; then
  echo "Fortran results differ under the interposer:"; diff <(echo "$plain") <(echo "$preloaded"); exit 1
fi
if grep -q "libsqz_mpi: adopted" "$log"; then echo "a Fortran call was served:"; cat "$log"; exit 1; fi
# The interposer was loaded (its library is in the ranks' maps): the calls
# passed it by, rather than it being absent.
maps=$("${mpirun[@]}" -x LD_PRELOAD="$lib" sh -c 'grep -c libsqz_mpi /proc/$$/maps' | sort -u)
[ "$maps" != 0 ] || { echo "libsqz_mpi.so was not loaded under LD_PRELOAD"; exit 1; }
echo "fortran: $np ranks, checksums identical with and without libsqz_mpi.so (SQZ_COMPRESSION=q8): forwarded"

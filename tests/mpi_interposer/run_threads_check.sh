#!/usr/bin/env bash
# threads_check under LD_PRELOAD=libsqz_mpi.so with SQZ_COMPRESSION=q8: it
# must pass its own checks, and each rank's MPI_Finalize summary must count
# (threads - 1) x calls served and the integer calls forwarded, with the
# float threads' sqz communicators destroyed at MPI_Comm_free.
#   run_threads_check.sh THREADS_CHECK LIBSQZ_MPI NP
set -euo pipefail
bin=$1 lib=$2 np=$3
served=16 forwarded=9 freed=2  # threads_check.c: 3 threads x 8 calls, one thread on integers; + its final sum
log=$(mktemp)
trap 'rm -f "$log"' EXIT
mpirun --allow-run-as-root --oversubscribe -np "$np" -x LD_PRELOAD="$lib" -x SQZ_COMPRESSION=q8 -x SQZ_DEBUG=INFO \
  -x SQZ_TIMEOUT=120 "$bin" 2>"$log"
for ((r = 0; r < np; r++)); do
  grep -E ":$r sqz INFO libsqz_mpi: MPI_Allreduce: $served served by sqz .*, $forwarded forwarded \(type $forwarded\)" "$log" \
    || { echo "rank $r: unexpected summary"; grep "libsqz_mpi: MPI_Allreduce" "$log"; exit 1; }
  n=$(grep -c ":$r sqz INFO libsqz_mpi: destroyed an sqz communicator at MPI_Comm_free" "$log" || true)
  [ "$n" -eq "$freed" ] || { echo "rank $r: $n sqz communicators destroyed at MPI_Comm_free, expected $freed"; exit 1; }
done

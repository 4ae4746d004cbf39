#!/usr/bin/env bash
# The interposer's agreement and error paths, with probe.c:
#  1. SQZ_COMPRESSION=q8 on both ranks: the call is served, so its result
#     misses a 1e-4 tolerance (the negative control for 2);
#  2. q8 on rank 0, q4 on rank 1: the adoption's agreement finds the
#     mismatch, every rank forwards (exact: within 1e-4), WARN logged,
#     summary counts the call as unservable;
#  3. counts that differ between ranks (an erroneous program), served: every
#     rank gets an error through the communicator's error handler
#     (MPI_ERRORS_RETURN) with libsqz_mpi's error string, and the next
#     correct call succeeds;
#  4. a malformed SQZ_MIN_BYTES or an SQZ_COMPRESSION sqz refuses: the calls
#     it would serve fail (the job stops, MPI_ERRORS_ARE_FATAL) with sqz's
#     message naming the variable, instead of being forwarded as if unset.
#   run_probe_checks.sh PROBE LIBSQZ_MPI
set -euo pipefail
probe=$1 lib=$2
mpirun=(mpirun --allow-run-as-root --oversubscribe)
# Open MPI applies -x to the app context it precedes: every context repeats it.
env=(-x LD_PRELOAD="$lib" -x SQZ_DEBUG=INFO -x SQZ_TIMEOUT=60)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if "${mpirun[@]}" -np 2 "${env[@]}" -x SQZ_COMPRESSION=q8 "$probe" sum 1e-4 >"$log" 2>&1; then
  cat "$log"; echo "1: a q8-served sum passed a 1e-4 tolerance: the tolerance would not tell served from forwarded"; exit 1
fi
grep -q "libsqz_mpi: MPI_Allreduce: 1 served" "$log" || { cat "$log"; echo "1: not served"; exit 1; }
echo "1: q8 served, outside 1e-4 as it must be"

"${mpirun[@]}" -np 1 "${env[@]}" -x SQZ_COMPRESSION=q8 "$probe" sum 1e-4 : \
  -np 1 "${env[@]}" -x SQZ_COMPRESSION=q4 "$probe" sum 1e-4 >"$log" 2>&1 \
  || { cat "$log"; echo "2: mismatched SQZ_COMPRESSION: not forwarded exactly"; exit 1; }
grep -q "differ from rank 0's" "$log" || { cat "$log"; echo "2: no mismatch warning"; exit 1; }
for r in 0 1; do
  grep -qE ":$r sqz INFO libsqz_mpi: MPI_Allreduce: 0 served .* forwarded \(.*unservable 1\)" "$log" \
    || { cat "$log"; echo "2: rank $r's summary does not count the call as unservable"; exit 1; }
done
echo "2: mismatched SQZ_COMPRESSION: every rank forwarded, exact"

"${mpirun[@]}" -np 2 "${env[@]}" -x SQZ_COMPRESSION=q8 "$probe" mismatch >"$log" 2>&1 \
  || { cat "$log"; echo "3: error path"; exit 1; }
grep -q "served by sqz failed" "$log" || { cat "$log"; echo "3: no WARN line for the failed call"; exit 1; }
grep "probe mismatch" "$log"
echo "3: a failed served call reaches the error handler; the next call succeeds"

for bad in "SQZ_MIN_BYTES=99999999999999999999:expected a byte count" "SQZ_COMPRESSION=zstd:unknown codec"; do
  setting=${bad%%:*} message=${bad#*:}
  compression=q8
  [ "${setting%%=*}" = SQZ_COMPRESSION ] && compression=${setting#*=}
  if "${mpirun[@]}" -np 2 "${env[@]}" -x SQZ_COMPRESSION="$compression" -x "$setting" "$probe" sum 1e-4 >"$log" 2>&1; then
    cat "$log"; echo "4: $setting: the job succeeded"; exit 1
  fi
  grep -q "libsqz_mpi: $setting.*$message" "$log" || { cat "$log"; echo "4: $setting: no error naming it"; exit 1; }
  echo "4: $setting: the calls it would serve fail, naming it"
done

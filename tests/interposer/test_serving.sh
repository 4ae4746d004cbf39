#!/usr/bin/env bash
# The interposer serves an unmodified NCCL program (GPU machine only): the
# program's checks pass alone and under
#   LD_PRELOAD=libsqz_nccl.so SQZ_COMPRESSION=q4 SQZ_DEBUG=INFO
# and the log shows its large float allreduces intercepted (adopted into
# sqz and served; with one rank sqz runs its exact plan, @ring), the one
# inside an NCCL group served at its ncclGroupEnd, its other calls
# forwarded, and the sqz communicator released at ncclCommDestroy.
# Exit 77 (skipped) without a GPU.
#   test_serving.sh NCCL_APP LIBSQZ_NCCL
set -uo pipefail
app=$1 lib=$2
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no GPU: skipping"
  exit 77
fi
"$app" || { echo "nccl_app fails without the interposer"; exit 1; }
log=$(LD_PRELOAD="$lib" SQZ_COMPRESSION=q4 SQZ_DEBUG=INFO "$app" --tolerance 0.3 2>&1)
rc=$?
echo "$log"
[[ $rc -eq 0 ]] || { echo "nccl_app fails under the interposer (exit $rc)"; exit 1; }
for want in "adopted ncclComm" "intercepted ncclAllReduce" "served by sqz plan @" "forwarding ncclAllReduce" \
            "destroyed the sqz communicator"; do
  grep -q "$want" <<<"$log" || { echo "missing from the log: '$want'"; exit 1; }
done
grep -Eq "summary: .*served by sqz \([1-9][0-9]* of them deferred to their ncclGroupEnd\)" <<<"$log" ||
  { echo "the grouped allreduce was not served at ncclGroupEnd"; exit 1; }
echo "interposer: nccl_app served by sqz (SQZ_COMPRESSION=q4) and the rest forwarded"

#!/usr/bin/env bash
# The interposer's handling of NCCL groups, against a fake libnccl.so.2 (no
# GPU): the probe's calls reach the fake directly without LD_PRELOAD, and
# under LD_PRELOAD=libsqz_nccl.so with compression asked for, eligible calls
# inside a group on one communicator come after the real ncclGroupEnd (and
# after a non-blocking communicator settled), a group over two communicators
# is forwarded inside the group, and the SQZ_DEBUG summary counts each call
# under its reason. (sqz cannot adopt a communicator without a GPU, so the
# deferred calls end up forwarded too, counted as such.)
#   test_groups.sh GROUP_PROBE LIBSQZ_NCCL
set -euo pipefail
probe=$1 lib=$2
check() {
  local what=$1 got=$2 want=$3
  if [[ "$got" != "$want" ]]; then
    echo "$what: got"; echo "$got"; echo "expected"; echo "$want"; exit 1
  fi
}
f32='type=7' bf16='type=9' i32='type=2'
plain=$("$probe")
check "without the interposer" "$plain" "one communicator: groupStart | allreduce comm=1 count=262144 $f32 in-group | allreduce comm=1 count=262145 $bf16 in-group | groupEnd
nested, with an ineligible call: groupStart | groupStart | allreduce comm=3 count=262144 $f32 in-group | groupEnd | allreduce comm=3 count=7 $i32 in-group | groupEnd
two communicators: groupStart | allreduce comm=4 count=262144 $f32 in-group | allreduce comm=5 count=262144 $f32 in-group | groupEnd
no group: allreduce comm=6 count=262144 $f32"

err=$(mktemp)
trap 'rm -f "$err"' EXIT
got=$(LD_PRELOAD="$lib" SQZ_COMPRESSION=q4 SQZ_MIN_BYTES=0 SQZ_DEBUG=INFO FAKE_NCCL_INPROGRESS=2 "$probe" 2>"$err")
check "under the interposer" "$got" "one communicator: groupStart | groupEnd | asyncError=inProgress | asyncError=inProgress | allreduce comm=1 count=262144 $f32 | allreduce comm=1 count=262145 $bf16
nested, with an ineligible call: groupStart | groupStart | groupEnd | allreduce comm=3 count=7 $i32 in-group | groupEnd | asyncError=inProgress | asyncError=inProgress | allreduce comm=3 count=262144 $f32
two communicators: groupStart | allreduce comm=4 count=262144 $f32 in-group | allreduce comm=5 count=262144 $f32 in-group | groupEnd
no group: allreduce comm=6 count=262144 $f32"
want="0 served by sqz (0 of them deferred to their ncclGroupEnd), 0 failed in sqz, 7 forwarded to NCCL: 1 not eligible (SQZ_COMPRESSION, type, op, SQZ_MIN_BYTES), 2 because they were inside an NCCL group over several communicators, 4 on a communicator sqz could not adopt"
grep -qF "$want" "$err" || { echo "summary missing or wrong; stderr:"; cat "$err"; exit 1; }
grep -q "cannot adopt ncclComm" "$err" || { echo "no adoption attempt logged; stderr:"; cat "$err"; exit 1; }
# A malformed SQZ_TIMEOUT (which bounds the wait for a settling group) throws
# nothing out of the C entry points: the same answers, and the probe lives.
for t in inf 0 12abc; do
  again=$(LD_PRELOAD="$lib" SQZ_TIMEOUT=$t SQZ_COMPRESSION=q4 SQZ_MIN_BYTES=0 FAKE_NCCL_INPROGRESS=2 "$probe" 2>/dev/null)
  check "under the interposer with SQZ_TIMEOUT=$t" "$again" "$got"
done
cat "$err"
echo "interposer: grouped calls deferred to ncclGroupEnd (after a non-blocking group settled), groups over several communicators forwarded inside the group, every call counted"

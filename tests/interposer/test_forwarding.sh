#!/usr/bin/env bash
# The interposer changes no answer NCCL gives: the probe's output is the
# same with and without LD_PRELOAD=libsqz_nccl.so, and with SQZ_DEBUG=INFO
# the interposer reports that it forwarded ncclAllReduce (so it really sat
# in front of NCCL). Runs without a GPU.
#   test_forwarding.sh PROBE LIBSQZ_NCCL
set -euo pipefail
probe=$1 lib=$2
plain=$("$probe")
preloaded=$(LD_PRELOAD="$lib" "$probe")
if [ "$plain" != "$preloaded" ]; then
  echo "answers differ under LD_PRELOAD:"; diff <(echo "$plain") <(echo "$preloaded"); exit 1
fi
log=$(LD_PRELOAD="$lib" SQZ_DEBUG=INFO SQZ_COMPRESSION=q4 "$probe" 2>&1 >/dev/null)
echo "$log" | grep -q "forwarding ncclAllReduce" || { echo "no forwarding reported: $log"; exit 1; }
echo "$log" | grep -q "eligible for SQZ_COMPRESSION=q4" || { echo "eligibility not reported: $log"; exit 1; }
echo "$plain"
echo "interposer: identical answers with and without LD_PRELOAD; ncclAllReduce forwarded"

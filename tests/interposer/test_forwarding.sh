#!/usr/bin/env bash
# The interposer changes no answer NCCL gives: the probe's output is the
# same with and without LD_PRELOAD=libsqz_nccl.so, also with compression
# asked for (SQZ_COMPRESSION=q4) so that the float calls are ones sqz would
# serve: on a bad communicator (and on a machine without a GPU) they must be
# forwarded and come back with NCCL's own error. With SQZ_DEBUG=INFO the
# interposer reports that it forwarded ncclAllReduce (so it really sat in
# front of NCCL). Runs without a GPU.
#   test_forwarding.sh PROBE LIBSQZ_NCCL
set -euo pipefail
probe=$1 lib=$2
plain=$("$probe")
same() {
  local got=$1 what=$2
  if [ "$plain" != "$got" ]; then
    echo "answers differ $what:"; diff <(echo "$plain") <(echo "$got"); exit 1
  fi
}
same "$(LD_PRELOAD="$lib" "$probe")" "under LD_PRELOAD"
same "$(LD_PRELOAD="$lib" SQZ_COMPRESSION=q4 SQZ_MIN_BYTES=0 "$probe")" "under LD_PRELOAD with SQZ_COMPRESSION=q4"
log=$(LD_PRELOAD="$lib" SQZ_DEBUG=INFO SQZ_COMPRESSION=q4 "$probe" 2>&1 >/dev/null)
grep -q "forwarding ncclAllReduce" <<<"$log" || { echo "no forwarding reported: $log"; exit 1; }
if grep -q "intercepted ncclAllReduce" <<<"$log"; then
  echo "a call on a bogus communicator was served by sqz: $log"; exit 1
fi
# A malformed SQZ_MIN_BYTES is an error naming the variable (sqz's strict
# parser), not a threshold guessed from its leading digits.
bad=$(LD_PRELOAD="$lib" SQZ_COMPRESSION=q4 SQZ_MIN_BYTES=99999999999999999999 "$probe" 2>&1 >/dev/null)
grep -q "SQZ_MIN_BYTES=99999999999999999999: expected a byte count" <<<"$bad" || {
  echo "a malformed SQZ_MIN_BYTES was not reported: $bad"; exit 1; }
# libsqz_nccl.so finds libsqz through its RPATH, and needs no libnccl itself.
# ldd's output is read whole first: under pipefail, `ldd | grep -q` fails
# whenever grep exits on its match before ldd has written everything (SIGPIPE).
deps=$(ldd "$lib")
if grep -q "not found" <<<"$deps"; then echo "unresolved dependencies:"; echo "$deps"; exit 1; fi
grep -q "libsqz\.so" <<<"$deps" || { echo "libsqz_nccl.so does not link libsqz"; echo "$deps"; exit 1; }
if grep -q "libnccl" <<<"$deps"; then echo "libsqz_nccl.so links libnccl"; echo "$deps"; exit 1; fi
echo "$plain"
echo "$log"
echo "interposer: identical answers with and without LD_PRELOAD (and with SQZ_COMPRESSION=q4); ncclAllReduce forwarded"

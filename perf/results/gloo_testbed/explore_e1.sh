#!/bin/bash
# Exploration at 1gbit, 4 MiB: sqz vs gloo CPU time; chunk size variants.
cd "$(dirname "$0")/../../.."
T=perf/netbench/testbed.sh
bash $T up --ns 4 --rate 1gbit --name gwt --subnet 10.220.0 >/dev/null
trap 'bash $T down --name gwt >/dev/null 2>&1' EXIT
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') commit $(git rev-parse --short HEAD)"
stat() { head -1 /proc/stat; }
run() { # label env... -- prog args
  local label=$1; shift
  echo "## $label"
  local s0; s0=$(stat); local t0; t0=$(date +%s.%N)
  timeout 300 bash $T run --name gwt "$@" 2>&1 | grep -E "^ +[0-9]|^cpu|Elapsed|rank" 
  local s1; s1=$(stat); local t1; t1=$(date +%s.%N)
  echo "procstat0 $s0"; echo "procstat1 $s1"; echo "wall $(echo "$t1 - $t0" | bc)"
}
A="-b 4M -e 4M -n 20 -w 2 -c 1"
TM=(/usr/bin/time -f "cpu user %U sys %S wall %e")
for r in 1 2; do
run "sqz default r$r" -- "${TM[@]}" build/perf/sqz_allreduce_perf $A
run "gloo r$r" -- "${TM[@]}" build/perf/gloo_allreduce_perf $A
run "sqz chunk256K r$r" --env SQZ_CHUNK_BYTES=262144 -- build/perf/sqz_allreduce_perf $A
run "sqz chunk1M r$r" --env SQZ_CHUNK_BYTES=1048576 -- build/perf/sqz_allreduce_perf $A
done

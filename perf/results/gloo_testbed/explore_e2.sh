#!/bin/bash
cd "$(dirname "$0")/../../.."
T=perf/netbench/testbed.sh
bash $T up --ns 4 --rate ${RATE:-1gbit} --name gwt --subnet 10.220.0 >/dev/null
trap 'bash $T down --name gwt >/dev/null 2>&1' EXIT
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty) rate ${RATE:-1gbit}"
run() { local label=$1; shift; echo "## $label"; local s0; s0=$(head -1 /proc/stat)
  timeout 300 bash $T run --name gwt "$@" 2>&1 | grep -E "^ +[0-9]|^cpu"
  echo "procstat0 $s0"; echo "procstat1 $(head -1 /proc/stat)"; }
A=${A:-"-b 4M -e 4M -n 20 -w 2 -c 1"}
TM=(/usr/bin/time -f "cpu user %U sys %S wall %e")
for r in 1 2; do
run "sqz sleep r$r" -- "${TM[@]}" build/perf/sqz_allreduce_perf $A
run "sqz yield r$r" --env SQZ_WAIT_SLEEP=0 -- "${TM[@]}" build/perf/sqz_allreduce_perf $A
run "gloo r$r" -- "${TM[@]}" build/perf/gloo_allreduce_perf $A
done

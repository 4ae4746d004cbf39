#!/bin/bash
cd "$(dirname "$0")/../../.."
T=perf/netbench/testbed.sh
bash $T up --ns 4 --rate ${RATE:-1gbit} --name gwt --subnet 10.220.0 >/dev/null
trap 'bash $T down --name gwt >/dev/null 2>&1' EXIT
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty) rate ${RATE:-1gbit}"
run() { local label=$1; shift; echo "## $label"; timeout 300 bash $T run --name gwt "$@" 2>&1 | grep -E "^ +[0-9]|rror|network work|thresholds" | head -12; }
S=build/perf/sqz_allreduce_perf
run "debug" --env SQZ_DEBUG=1 -- $S -b 1M -e 1M -n 1 -w 0 -c 1
run "sqz 1M-64M" -- $S -b 1M -e 64M -f 4 -n 3 -w 1 -c 1
run "gloo 1M-64M" -- build/perf/gloo_allreduce_perf -b 1M -e 64M -f 4 -n 3 -w 1 -c 1

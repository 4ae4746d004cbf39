#!/bin/bash
cd "$(dirname "$0")/../../.."
T=perf/netbench/testbed.sh
bash $T up --ns 4 --rate ${RATE:-1gbit} --name gwt --subnet 10.220.0 >/dev/null
trap 'bash $T down --name gwt >/dev/null 2>&1' EXIT
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty) rate ${RATE:-1gbit}"
run() { local label=$1; shift; echo "## $label"; timeout 300 bash $T run --name gwt "$@" 2>&1 | grep -E "^ +[0-9]|rror|rndv|thresh"; }
S=build/perf/sqz_allreduce_perf
run "thresh 600K 4M" --env UCX_RNDV_THRESH=600K -- $S -b 4M -e 4M -n 10 -w 1 -c 1
run "thresh 600K 1M-64M" --env UCX_RNDV_THRESH=600K -- $S -b 1M -e 64M -f 4 -n 3 -w 1 -c 1
run "chunk256K 1M-4M thresh 300K" --env SQZ_CHUNK_BYTES=262144 --env UCX_RNDV_THRESH=300K -- $S -b 1M -e 4M -f 2 -n 10 -w 1 -c 1

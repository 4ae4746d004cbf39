#!/bin/bash
cd "$(dirname "$0")/../../.."
T=perf/netbench/testbed.sh
bash $T up --ns 4 --rate ${RATE:-1gbit} --name gwt --subnet 10.220.0 >/dev/null
trap 'bash $T down --name gwt >/dev/null 2>&1' EXIT
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty) rate ${RATE:-1gbit}"
run() { local label=$1; shift; echo "## $label"; timeout 300 bash $T run --name gwt "$@" 2>&1 | grep -E "^ +[0-9]|rror"; }
S=build/perf/sqz_allreduce_perf
run "sqz 1M-16M x2" -- $S -b 1M -e 16M -f 2 -n 10 -w 1 -c 1
run "gloo 1M-16M x2" -- build/perf/gloo_allreduce_perf -b 1M -e 16M -f 2 -n 10 -w 1 -c 1
run "sqz rndv_thresh=inf 4M" --env UCX_RNDV_THRESH=inf -- $S -b 4M -e 4M -n 10 -w 1 -c 1
run "sqz chunk 4M at 16M" --env SQZ_CHUNK_BYTES=4194304 -- $S -b 16M -e 16M -n 5 -w 1 -c 1
run "sqz rndv put_zcopy 4M" --env UCX_RNDV_SCHEME=put_zcopy -- $S -b 4M -e 4M -n 10 -w 1 -c 1
run "sqz rndv get_zcopy 4M" --env UCX_RNDV_SCHEME=get_zcopy -- $S -b 4M -e 4M -n 10 -w 1 -c 1

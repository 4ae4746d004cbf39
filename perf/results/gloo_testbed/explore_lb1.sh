#!/bin/bash
cd "$(dirname "$0")/../../.."
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') loopback, commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty)"
for r in 1 2; do
for th in default 1M; do
  echo "## r$r thresh $th"
  e=(); [ $th != default ] && e=(-x UCX_RNDV_THRESH=$th)
  timeout 300 mpirun --allow-run-as-root --oversubscribe -np 4 "${e[@]}" build/perf/sqz_allreduce_perf -b 256K -e 64M -f 4 -n 5 -w 1 -m 1 2>&1 | grep -E "^ +[0-9]|rror"
done; done

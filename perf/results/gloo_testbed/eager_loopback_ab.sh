#!/bin/bash
# Loopback A/B, small messages: main 860da30 (built in /tmp/i19w/main) vs this branch, alternating, 3 repeats.
cd /work/wt/i19w
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') loopback, 4 ranks, new = commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty), main = 860da30"
for r in 1 2 3; do
  for b in main new; do
    bin=build/perf/sqz_allreduce_perf; [ $b = main ] && bin=/tmp/i19w/main/build/perf/sqz_allreduce_perf
    echo "## repeat $r $b"
    echo "\$ mpirun --allow-run-as-root --oversubscribe -np 4 $bin -b 8 -e 64K -f 4 -m 1"
    timeout 300 mpirun --allow-run-as-root --oversubscribe -np 4 $bin -b 8 -e 64K -f 4 -m 1 2>&1 | grep -E "^ +[0-9]|rror"
  done
done

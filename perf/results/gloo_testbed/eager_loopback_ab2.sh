#!/bin/bash
# Loopback A/B, small messages, second campaign: main 860da30 (built in /tmp/i19w/main) vs this branch,
# 5 repeats, the order alternating between repeats (main first in odd ones).
cd "$(dirname "$0")/../../.."
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') loopback, 4 ranks, new = commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty), main = 860da30"
for r in 1 2 3 4 5; do
  order="main new"; [ $((r % 2)) = 0 ] && order="new main"
  for b in $order; do
    bin=build/perf/sqz_allreduce_perf; [ $b = main ] && bin=/tmp/i19w/main/build/perf/sqz_allreduce_perf
    echo "## repeat $r $b"
    echo "\$ mpirun --allow-run-as-root --oversubscribe -np 4 $bin -b 8 -e 64K -f 4 -m 1"
    timeout 300 mpirun --allow-run-as-root --oversubscribe -np 4 $bin -b 8 -e 64K -f 4 -m 1 2>&1 | grep -E "^ +[0-9]|rror"
  done
done

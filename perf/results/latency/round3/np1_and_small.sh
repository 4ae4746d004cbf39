#!/bin/bash
# 1-rank software cost and 4-rank small sizes: issue-19 e190340 (its worktree build) against main ce5c593
# (fresh-clone CI build), alternating, 3 launches each
out=$1
date -u > $out/when_ab.txt
for i in 1 2 3; do for tag in i19 main; do
  B=/tmp/ci28/sqz/build; [ $tag = i19 ] && B=/work/wt/i19/build
  echo "== $tag $i" >> $out/np1_8B.txt
  mpirun --allow-run-as-root -np 1 $B/perf/sqz_allreduce_perf -b 8 -e 8 -n 100000 -w 1000 -c 0 -m 0 2>&1 | grep -v "^#" >> $out/np1_8B.txt
  mpirun --allow-run-as-root --oversubscribe -np 4 $B/perf/sqz_allreduce_perf -b 8 -e 32K -f 4 -n 200 -w 20 -c 1 -m 1 > $out/ab_small_${tag}_$i.txt 2>&1
done; done
date -u >> $out/when_ab.txt

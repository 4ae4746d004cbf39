#!/bin/bash
# Alternating launches, 3 each: "rs" = issue-19-shm (its worktree build), "main" = main 20d7956
# (git archive into /tmp/i19s5-main, built with the same flags); both CPU-only RelWithDebInfo with
# .ci/build.sh's flags. Small sizes, then 128K-32M, then 64M: the same three mpirun lines as rounds 1-3.
# usage (under /work/tools/quiet.sh): run.sh OUTDIR RS_BUILD MAIN_BUILD
out=$1; rs=$2; main=$3
date -u > $out/when.txt
for i in 1 2 3; do for tag in rs main; do
  B=$main; [ $tag = rs ] && B=$rs
  mpirun --allow-run-as-root --oversubscribe -np 4 $B/perf/sqz_allreduce_perf -b 8 -e 32K -f 4 -n 200 -w 20 -c 1 -m 1 > $out/small_${tag}_$i.txt 2>&1
  mpirun --allow-run-as-root --oversubscribe -np 4 $B/perf/sqz_allreduce_perf -b 128K -e 32M -f 4 -n 20 -w 5 -c 1 -m 1 > $out/large_${tag}_$i.txt 2>&1
  mpirun --allow-run-as-root --oversubscribe -np 4 $B/perf/sqz_allreduce_perf -b 64M -e 64M -n 10 -w 3 -c 1 -m 1 > $out/x64m_${tag}_$i.txt 2>&1
done; done
date -u >> $out/when.txt

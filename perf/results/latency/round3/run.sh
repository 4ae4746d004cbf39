#!/bin/bash
# Alternating launches, 3 each: "i19" = issue-19 e190340 (its worktree build), "main" = main ce5c593
# (/work/main/build); both CPU-only RelWithDebInfo with .ci/build.sh's flags. Small sizes, then 128K-32M, then 64M.
# usage (under /work/tools/quiet.sh): run.sh OUTDIR
out=$1
date -u > $out/when.txt
for i in 1 2 3; do for tag in i19 main; do
  B=/work/main/build; [ $tag = i19 ] && B=/work/wt/i19/build
  mpirun --allow-run-as-root --oversubscribe -np 4 $B/perf/sqz_allreduce_perf -b 8 -e 32K -f 4 -n 200 -w 20 -c 1 -m 1 > $out/small_${tag}_$i.txt 2>&1
  mpirun --allow-run-as-root --oversubscribe -np 4 $B/perf/sqz_allreduce_perf -b 128K -e 32M -f 4 -n 20 -w 5 -c 1 -m 1 > $out/large_${tag}_$i.txt 2>&1
  mpirun --allow-run-as-root --oversubscribe -np 4 $B/perf/sqz_allreduce_perf -b 64M -e 64M -n 10 -w 3 -c 1 -m 1 > $out/x64m_${tag}_$i.txt 2>&1
done; done
date -u >> $out/when.txt

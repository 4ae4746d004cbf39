#!/bin/bash
# alternating launches: base (main 148d9bc) then new, 3 times; small, large, 64M
out=$1; shift
date -u > $out/when.txt
for i in 1 2 3; do for tag in base new; do
  B=/work/wt/i19/build; [ $tag = base ] && B=/tmp/i19-base/build
  mpirun --allow-run-as-root --oversubscribe -np 4 $B/perf/sqz_allreduce_perf -b 8 -e 32K -f 4 -n 200 -w 20 -c 1 -m 1 > $out/small_${tag}_$i.txt 2>&1
  mpirun --allow-run-as-root --oversubscribe -np 4 $B/perf/sqz_allreduce_perf -b 128K -e 32M -f 4 -n 20 -w 5 -c 1 -m 1 > $out/large_${tag}_$i.txt 2>&1
  mpirun --allow-run-as-root --oversubscribe -np 4 $B/perf/sqz_allreduce_perf -b 64M -e 64M -n 10 -w 3 -c 1 -m 1 > $out/x64m_${tag}_$i.txt 2>&1
done; done
date -u >> $out/when.txt

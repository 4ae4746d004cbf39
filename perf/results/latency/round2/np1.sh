#!/bin/bash
for i in 1 2 3; do for tag in base new; do
  B=/work/wt/i19/build; [ $tag = base ] && B=/tmp/i19-base/build
  echo "== $tag $i"
  mpirun --allow-run-as-root -np 1 $B/perf/sqz_allreduce_perf -b 8 -e 8 -n 100000 -w 1000 -c 0 -m 0 2>&1 | grep -v "^#"
done; done

#!/bin/bash
# Where shm stops paying: the same binary (issue-19-shm) with the exact
# algorithm forced through the communicator's policy (SQZ_COMPRESSION=@ALGO),
# alternating, one launch each per round, 2 rounds. Sizes 2 KiB-128 KiB.
# usage (under /work/tools/quiet.sh): switch.sh OUTDIR BUILD
out=$1; B=$2
date -u > $out/switch_when.txt
for i in 1 2; do for algo in shm direct ring; do
  SQZ_COMPRESSION=@$algo mpirun --allow-run-as-root --oversubscribe -x SQZ_COMPRESSION -np 4 $B/perf/sqz_allreduce_perf -b 2K -e 128K -f 2 -n 300 -w 30 -c 1 -m 1 > $out/switch_${algo}_$i.txt 2>&1
done; done
date -u >> $out/switch_when.txt

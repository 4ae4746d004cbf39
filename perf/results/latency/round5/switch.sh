#!/bin/bash
# Where shm_rs pays against the ring: the same binary (issue-19-shm) with the
# exact algorithm forced through the communicator's policy
# (SQZ_COMPRESSION=@ALGO), alternating, one launch each per round, 3 rounds.
# Sizes 8 KiB-8 MiB (above a large slot, 4 MiB on 4 ranks, "@shm_rs" runs the ring).
# usage (under /work/tools/quiet.sh): switch.sh OUTDIR BUILD
out=$1; B=$2
date -u > $out/switch_when.txt
for i in 1 2 3; do for algo in shm_rs ring; do
  SQZ_COMPRESSION=@$algo mpirun --allow-run-as-root --oversubscribe -x SQZ_COMPRESSION -np 4 $B/perf/sqz_allreduce_perf -b 8K -e 8M -f 4 -n 20 -w 5 -c 1 -m 1 > $out/switch_${algo}_$i.txt 2>&1
done; done
date -u >> $out/switch_when.txt

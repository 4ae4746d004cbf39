#!/bin/bash
# Where shm_rs (now in slot-sized pieces past a 4 MiB slot on 4 ranks) pays
# against the ring: the same binary with the exact algorithm forced through
# the communicator's policy (SQZ_COMPRESSION=@ALGO), alternating, one launch
# each per round, 3 rounds, 2-64 MiB.
# usage (under /work/tools/quiet.sh): switch.sh OUTDIR BUILD
out=$1; B=$2
date -u >> $out/switch_when.txt
for i in 1 2 3; do for algo in shm_rs ring; do
  SQZ_COMPRESSION=@$algo mpirun --allow-run-as-root --oversubscribe -x SQZ_COMPRESSION -np 4 $B/perf/sqz_allreduce_perf -b 2M -e 64M -f 2 -n 10 -w 3 -c 1 -m 1 > $out/switch_${algo}_$i.txt 2>&1
done; done
date -u >> $out/switch_when.txt

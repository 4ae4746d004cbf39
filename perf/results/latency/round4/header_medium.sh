#!/bin/bash
# Does the header round's medium change the ring's time? The same binary
# (issue-19-shm) with SQZ_SHM=1 (header rounds through the segment) and
# SQZ_SHM=0 (through UCX, as main), alternating, 3 launches each, 128 KiB-2 MiB.
# usage (under /work/tools/quiet.sh): header_medium.sh OUTDIR BUILD
out=$1; B=$2
date -u > $out/header_medium_when.txt
for i in 1 2 3; do for v in 1 0; do
  SQZ_SHM=$v mpirun --allow-run-as-root --oversubscribe -x SQZ_SHM -np 4 $B/perf/sqz_allreduce_perf -b 128K -e 2M -f 4 -n 40 -w 5 -c 1 -m 1 > $out/hdr_shm${v}_$i.txt 2>&1
done; done
date -u >> $out/header_medium_when.txt

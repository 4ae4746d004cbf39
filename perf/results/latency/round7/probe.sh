#!/bin/bash
# Round 7's probe: @ring and @shm_rs, out of place and in place, one mode per
# launch (onemode.cc), 8 MiB and 2 MiB, 40 timed calls, 2 rounds.
# usage (under /work/tools/quiet.sh): probe.sh OUTDIR ONEMODE_BINARY
out=$1; P=$2
date -u >> $out/probe_when.txt
for i in 1 2; do for mib in 8 2; do for algo in ring shm_rs; do for m in oop ip; do
  SQZ_COMPRESSION=@$algo mpirun --allow-run-as-root --oversubscribe -x SQZ_COMPRESSION -np 4 $P $m $mib 40 2>&1 | sort > $out/probe_${algo}_${m}_${mib}m_$i.txt
done; done; done; done
date -u >> $out/probe_when.txt

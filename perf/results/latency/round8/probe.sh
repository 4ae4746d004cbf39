#!/bin/bash
# Round 8's probe (small.cc): 8 B float32 sum, blocks of 20000 calls, sqz and MPI alternating in each
# launch, 3 blocks each; variants alternating launch by launch, 3 rounds, out of place and in place.
# usage (under /work/tools/quiet.sh): probe.sh OUTDIR TAG=BINARY[:ENV=VALUE] ...
out=$1; shift
date -u >> "$out/probe_when.txt"
for i in 1 2 3; do for tb in "$@"; do for m in oop ip; do
  tag=${tb%%=*}; rest=${tb#*=}; P=${rest%%:*}; envs=(); [ "$rest" != "$P" ] && envs=(-x "${rest#*:}")
  mpirun --allow-run-as-root --oversubscribe "${envs[@]}" -np 4 "$P" 8 20000 3 $m > "$out/probe_${tag}_${m}_$i.txt" 2>&1
done; done; done
date -u >> "$out/probe_when.txt"

#!/bin/bash
# Loopback latency campaign of issue 19: 4 ranks, float32 sum, sqz_allreduce_perf -m 1 (MPI_Allreduce
# measured in the same launch). Builds alternate launch by launch, ROUNDS rounds (default 3). Parts
# (PARTS, default "small large x64m"): 8 B-32 KiB, 128 KiB-32 MiB, 64 MiB, with the iteration counts of
# rounds 1-5; "x8m": 8 MiB alone, 40 iterations. Outputs OUTDIR/{part}_{tag}_{i}.txt; summarize with round2/summarize.py OUTDIR part tags...
# usage (under /work/tools/quiet.sh): [PARTS=...] [ROUNDS=N] loopback.sh OUTDIR TAG=BUILD_DIR [TAG=BUILD_DIR...]
set -u
out=$1; shift
parts=${PARTS:-small large x64m}
date -u >> "$out/when.txt"
for i in $(seq 1 "${ROUNDS:-3}"); do for tb in "$@"; do
  tag=${tb%%=*}; B=${tb#*=}
  for part in $parts; do
    case $part in
      small) a=(-b 8 -e 32K -f 4 -n 200 -w 20) ;;
      large) a=(-b 128K -e 32M -f 4 -n 20 -w 5) ;;
      x64m) a=(-b 64M -e 64M -n 10 -w 3) ;;
      x8m) a=(-b 8M -e 8M -n 40 -w 5) ;;  # a second look at one size, more iterations
      *) echo "unknown part $part" >&2; exit 2 ;;
    esac
    mpirun --allow-run-as-root --oversubscribe -np 4 "$B/perf/sqz_allreduce_perf" "${a[@]}" -c 1 -m 1 \
      > "$out/${part}_${tag}_$i.txt" 2>&1
  done
done; done
date -u >> "$out/when.txt"

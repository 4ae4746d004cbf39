#!/usr/bin/env bash
# Loopback A/B of the pipelined codec ring (issue 19): 4 ranks on this
# machine, main 860da30's sqz_allreduce_perf (BASE) against this branch's,
# alternating per repeat, for -Z q4 (whatever plan q4 picks here) and
# -Z @qring:q4 (the changed algorithm). Run under /work/tools/quiet.sh.
#   qring_loopback_ab.sh BASE_BIN NEW_BIN OUT_DIR [REPEATS] [SPECS]
set -euo pipefail
base=$1 new=$2 out=$3 repeats=${4:-3} specs=${5:-"q4 @qring:q4"}
mkdir -p "$out"
for ((r = 1; r <= repeats; ++r)); do
  for spec in $specs; do
    for build in base new; do
      bin=$base; [ "$build" = new ] && bin=$new
      f="$out/${build}_$(echo "$spec" | tr -cd 'a-z0-9')_$r.txt"
      echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC') $build repeat $r" > "$f"
      mpirun --allow-run-as-root --oversubscribe -np 4 "$bin" -b 1K -e 64M -f 4 -n 10 -w 3 -c 1 -m 0 -Z "$spec" >> "$f" 2>&1
    done
  done
done

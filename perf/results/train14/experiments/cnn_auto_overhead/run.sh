#!/usr/bin/env bash
# Issue 14, CNN on loopback: auto against none, interleaved per seed (order
# alternating), with a per-step timing log per rank (torch_train_bench.py
# --step-log). Same environment as perf/train/matrix.sh's loopback runs
# (SQZ_SHM=0 as the cell's rows), evaluation every 100 steps instead of 30.
#   perf/results/train14/experiments/cnn_auto_overhead/run.sh "SEEDS" [BUILD]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../../../.." && pwd)
here=$root/perf/results/train14/experiments/cnn_auto_overhead
build=${2:-$root/build}
cd "$root"
mkdir -p "$here/curves" "$here/steps" "$here/tuner" "$here/logs"
[ -f "$here/profile_loopback.json" ] || cp perf/results/train14/profile_loopback.json "$here/"
for seed in $1; do
  if [ $((seed % 2)) = 1 ]; then order="none auto"; else order="auto none"; fi
  for spec in $order; do
    tag=loopback_cnn_s${seed}_$spec
    env=(-x SQZ_PROFILE="$here/profile_loopback.json" -x SQZ_CALIBRATE=quick -x UCX_WARN_UNUSED_ENV_VARS=n
         -x SQZ_SEED="$seed" -x OMP_NUM_THREADS=1 -x SQZ_SPIN_POLLS=1 -x SQZ_SHM=0)
    [ "$spec" = auto ] && rm -f "$here/tuner/$tag.jsonl" && env+=(-x SQZ_TUNER_LOG="$here/tuner/$tag.jsonl")
    env+=(-x PYTHONPATH="$root/python" -x SQZ_LIBRARY="$build/libsqz.so")
    t0=$(date +%s.%N)
    mpirun --allow-run-as-root --oversubscribe --bind-to none -np 4 "${env[@]}" /usr/bin/python3 \
      perf/train/torch_train_bench.py --method "$spec" --steps 300 --eval-every 100 --seed "$seed" --link loopback \
      --out "$here/curves/$tag.csv" --step-log "$here/steps/$tag" > /dev/null 2> "$here/logs/$tag.log" < /dev/null
    echo "# $tag $(date -u +%H:%M:%S) elapsed $(python3 -c "import time; print('%.1f' % (time.time() - $t0))") s, wall $(tail -1 "$here/curves/$tag.csv" | cut -d, -f16)"
  done
done

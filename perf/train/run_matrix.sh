#!/usr/bin/env bash
# Issue 7's matrix: sqz_train_bench on every link profile (loopback = shared
# memory on one host; 1gbit, 100mbit, 10mbit = 4 network namespaces with
# tbf-shaped links, perf/netbench/testbed.sh), both models, all methods in
# one process per (link, model); then the plots and the results page.
#
#   perf/train/run_matrix.sh [LINK...]        (default: loopback 1gbit 100mbit 10mbit)
#
# Environment: BUILD (build dir holding perf/train/sqz_train_bench; default
# build-train, else build), OUT (default perf/results/train), MODELS
# (default "logreg mlp"), METHODS (default all twelve), NP (ranks = namespaces;
# default 4), STEPS_SCALE (multiplies every step budget; default 1), PAGE (the results
# page; default perf/results/training.md; empty: skip it).
# Needs root for the testbed. Budgets (steps, time cap per method) are in
# args_for() below; the whole matrix takes about 25 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-}
if [ -z "$build" ]; then
  build=$root/build-train
  [ -x "$build/perf/train/sqz_train_bench" ] || build=$root/build
fi
bin=$build/perf/train/sqz_train_bench
[ -x "$bin" ] || { echo "build first: bash .ci/build.sh build-train" >&2; exit 1; }
out=${OUT:-$root/perf/results/train}
models=${MODELS:-logreg mlp}
np=${NP:-4}
scale=${STEPS_SCALE:-1}
methods=${METHODS:-none,mpi,bf16,q8,q4,q2,q1,topk:0.1,topk:0.01,topk:0.001,randk:0.01,auto}
links=("$@")
[ ${#links[@]} -gt 0 ] || links=(loopback 1gbit 100mbit 10mbit)
testbed=$root/perf/netbench/testbed.sh
name=sqztrn
subnet=10.217.0
mkdir -p "$out"

# Per (link, model): steps, evaluation cadence and the per-method time cap.
# The cosine learning-rate schedule always spans --steps; a method stopped
# by --max-seconds stops part-way through it.
args_for() {
  local link=$1 model=$2 steps=400
  [ "$model" = mlp ] && steps=300
  steps=$(/usr/bin/python3 -c "print(max(1, round($steps * $scale)))")
  local a="--model $model --steps $steps --eval-every 20"
  [ "$model" = mlp ] && a="--model $model --steps $steps --eval-every 30"
  case "$link/$model" in
    loopback/*|1gbit/logreg) ;;
    1gbit/mlp)      a="$a --max-seconds 25 --eval-seconds 2.5";;
    100mbit/logreg) a="$a --max-seconds 20 --eval-seconds 1.5";;
    100mbit/mlp)    a="$a --max-seconds 20 --eval-seconds 2.5";;
    10mbit/*)       a="$a --max-seconds 15 --eval-seconds 1.5";;
  esac
  echo "$a"
}

cleanup() { "$testbed" down --name "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

log=$out/commands.txt
{
  echo "# perf/train/run_matrix.sh ${links[*]}  ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo "# binary: $bin"
} > "$log"
start=$(date +%s)
for link in "${links[@]}"; do
  # A fresh profile per link: auto calibrates it on its first call (in the
  # first model's run) and the second model's run reuses it.
  profile=$(mktemp -u "/tmp/sqz-train-profile-$link-XXXXXX.json")
  if [ "$link" != loopback ]; then
    cleanup
    "$testbed" up --ns "$np" --rate "$link" --name "$name" --subnet "$subnet" >/dev/null
  fi
  for model in $models; do
    csv=$out/${link}_${model}.csv
    # shellcheck disable=SC2046
    set -- $(args_for "$link" "$model") --methods "$methods" --link "$link" --out "$csv"
    t0=$(date +%s)
    if [ "$link" = loopback ]; then
      cmd=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$np"
           -x SQZ_PROFILE="$profile" -x SQZ_CALIBRATE=quick -x UCX_WARN_UNUSED_ENV_VARS=n "$bin" "$@")
    else
      cmd=("$testbed" run --name "$name" --env SQZ_PROFILE="$profile" --env SQZ_CALIBRATE=quick
           --env UCX_WARN_UNUSED_ENV_VARS=n -- "$bin" "$@")
    fi
    echo "\$ ${cmd[*]}" | sed "s|$root/||g" >> "$log"
    "${cmd[@]}" 2> "$out/${link}_${model}.log" || { echo "FAILED: $link $model (see $out/${link}_${model}.log)" | tee -a "$log"; }
    echo "# $link $model: $(( $(date +%s) - t0 )) s" | tee -a "$log"
  done
  [ -f "$profile" ] && cp "$profile" "$out/profile_${link}.json"
  rm -f "$profile"
  [ "$link" != loopback ] && cleanup
done
echo "# matrix: $(( $(date +%s) - start )) s" | tee -a "$log"
{ echo "# lscpu"; lscpu; } > "$out/machine.txt"

/usr/bin/python3 "$here/plot.py" "$out"
if [ -n "${PAGE-$root/perf/results/training.md}" ]; then
  /usr/bin/python3 "$here/report.py" "$out" "${PAGE:-$root/perf/results/training.md}"
fi

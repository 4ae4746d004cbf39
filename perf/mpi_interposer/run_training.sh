#!/usr/bin/env bash
# One repeat of the interposer's training comparison on the namespace
# testbed (4 namespaces, one rank each, links shaped to RATE): the same
# unmodified training script run with plain MPI and under
# LD_PRELOAD=libsqz_mpi.so with SQZ_COMPRESSION=auto, one after the other
# (the order alternates with the repeat number). Before them, an untimed
# auto run of a few steps calibrates sqz's link profile for this testbed
# (its first step's time is recorded as the calibration cost).
#
#   perf/mpi_interposer/run_training.sh CLIENT REPEAT
#     CLIENT: mpi4py (perf/mpi_interposer/mpi4py_mlp.py, Debian's python3)
#             horovod (perf/mpi_interposer/horovod_mlp.py, HOROVOD_CPU_OPERATIONS=mpi,
#                      the venv of python/tests/tools/build_horovod.sh)
#   Environment: BUILD (default build; holds src/mpi_interposer/libsqz_mpi.so),
#   OUT (default perf/results/mpi_interposer), RATE (default 100mbit),
#   STEPS (default 200), HIDDEN (default 1024), HOROVOD_VENV (default /work/venvs/horovod).
# Needs root (testbed). Run each repeat under /work/tools/quiet.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
client=${1:?client: mpi4py or horovod}
repeat=${2:?repeat number}
lib=$root/${BUILD:-build}/src/mpi_interposer/libsqz_mpi.so
[ -f "$lib" ] || { echo "build libsqz_mpi.so first (bash .ci/build.sh build)" >&2; exit 1; }
out=${OUT:-$root/perf/results/mpi_interposer}/$client
rate=${RATE:-100mbit}
steps=${STEPS:-200}
hidden=${HIDDEN:-1024}
mkdir -p "$out"
testbed=$root/perf/netbench/testbed.sh
name=mpib
subnet=10.216.0

case "$client" in
  mpi4py) py=/usr/bin/python3; script=$here/mpi4py_mlp.py; extra_env=() ;;
  horovod)
    venv=${HOROVOD_VENV:-/work/venvs/horovod}
    py=$venv/bin/python; script=$here/horovod_mlp.py
    [ -x "$py" ] || { echo "no Horovod venv at $venv: python/tests/tools/build_horovod.sh" >&2; exit 1; }
    extra_env=(HOROVOD_CPU_OPERATIONS=mpi HOROVOD_CONTROLLER=mpi) ;;
  *) echo "client: mpi4py or horovod" >&2; exit 1 ;;
esac

cache=$(mktemp -d /tmp/sqz-mpi-train-cache.XXXXXX)
cleanup() { bash "$testbed" down --name "$name" >/dev/null 2>&1 || true; rm -rf "$cache"; }
trap cleanup EXIT
bash "$testbed" down --name "$name" >/dev/null 2>&1 || true
bash "$testbed" up --ns 4 --rate "$rate" --name "$name" --subnet "$subnet"

# run LABEL PRELOAD(0|1) STEPS JSON LOG
run() {
  local label=$1 preload=$2 n=$3 json=$4 log=$5 envs=(env OMP_NUM_THREADS=1 XDG_CACHE_HOME="$cache" "${extra_env[@]}")
  [ "$preload" = 1 ] && envs+=(LD_PRELOAD="$lib" SQZ_COMPRESSION=auto SQZ_DEBUG=INFO)
  bash "$testbed" run --name "$name" -- "${envs[@]}" "$py" "$script" --hidden "$hidden" --steps "$n" \
    --eval-every 10 --label "$label" --out "$json" 2>"$log"
}

echo "== $client repeat $repeat: calibration run (untimed)"
run calibrate 1 3 "$out/rep${repeat}_calibrate.json" "$out/rep${repeat}_calibrate.log"
order=(mpi auto)
[ $((repeat % 2)) -eq 0 ] && order=(auto mpi)
for method in "${order[@]}"; do
  echo "== $client repeat $repeat: $method"
  preload=0
  [ "$method" = auto ] && preload=1
  run "$method" "$preload" "$steps" "$out/rep${repeat}_${method}.json" "$out/rep${repeat}_${method}.log"
done
# Keep what the results page cites (the interposer's own lines), not the
# library's per-call log.
for f in "$out"/rep"${repeat}"_*.log; do
  grep -E "libsqz_mpi|WARN|rror" "$f" > "$f.tmp" || true
  mv "$f.tmp" "$f"
done
echo "== $client repeat $repeat done: $(date -u)"

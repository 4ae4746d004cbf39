#!/usr/bin/env bash
# One repeat of the interposer's training comparison on the namespace
# testbed (4 namespaces, one rank each, links shaped to RATE): the same
# unmodified training script run with plain MPI (method `mpi`) and under
# LD_PRELOAD=libsqz_mpi.so with SQZ_COMPRESSION=<method> (`auto`, or a
# fixed spec such as `q4`), one after the other (the order rotates with the
# repeat number). Before them, an untimed auto run of a few steps calibrates
# sqz's link profile for this testbed (its first step's time is recorded as
# the calibration cost).
#
#   perf/mpi_interposer/run_training.sh CLIENT REPEAT
#     CLIENT: mpi4py (perf/mpi_interposer/mpi4py_mlp.py, Debian's python3)
#             horovod (perf/mpi_interposer/horovod_mlp.py, HOROVOD_CPU_OPERATIONS=mpi,
#                      the venv of python/tests/tools/build_horovod.sh)
#   Environment: BUILD (default build; holds src/mpi_interposer/libsqz_mpi.so),
#   OUT (default perf/results/mpi_interposer), RATE (default 100mbit),
#   STEPS (default 300), HIDDEN (default 1024), METHODS (default "mpi auto"),
#   HOROVOD_VENV (default /work/venvs/horovod), NAME and SUBNET (the
#   testbed's; default mpib, 10.216.0).
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
steps=${STEPS:-300}
read -r -a methods <<<"${METHODS:-mpi auto}"
hidden=${HIDDEN:-1024}
mkdir -p "$out"
testbed=$root/perf/netbench/testbed.sh
name=${NAME:-mpib}
subnet=${SUBNET:-10.216.0}

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

# run LABEL SPEC STEPS JSON LOG   (SPEC: SQZ_COMPRESSION under the interposer, or "" for plain MPI)
run() {
  local label=$1 spec=$2 n=$3 json=$4 log=$5 envs=(env OMP_NUM_THREADS=1 XDG_CACHE_HOME="$cache" "${extra_env[@]}")
  [ -n "$spec" ] && envs+=(LD_PRELOAD="$lib" SQZ_COMPRESSION="$spec" SQZ_DEBUG=INFO)
  bash "$testbed" run --name "$name" -- "${envs[@]}" "$py" "$script" --hidden "$hidden" --steps "$n" \
    --eval-every 10 --label "$label" --out "$json" 2>"$log"
}

echo "== $client repeat $repeat: calibration run (untimed)"
run calibrate auto 3 "$out/rep${repeat}_calibrate.json" "$out/rep${repeat}_calibrate.log"
n=${#methods[@]}
for ((i = 0; i < n; i++)); do
  method=${methods[$(((i + repeat - 1) % n))]}
  echo "== $client repeat $repeat: $method"
  spec=$method
  [ "$method" = mpi ] && spec=""
  run "$method" "$spec" "$steps" "$out/rep${repeat}_${method//:/_}.json" "$out/rep${repeat}_${method//:/_}.log"
done
# Keep what the results page cites (the interposer's own lines), not the
# library's per-call log.
for f in "$out"/rep"${repeat}"_*.log; do
  grep -E "libsqz_mpi|WARN|rror" "$f" > "$f.tmp" || true
  mv "$f.tmp" "$f"
done
echo "== $client repeat $repeat done: $(date -u)"

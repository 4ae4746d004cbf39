#!/usr/bin/env bash
# Horovod's own PyTorch examples with sqz.torch in place of horovod.torch
# (the import line is the only change, printed as a diff), and the same
# files unchanged under real Horovod 0.28.1 as the baseline; both under the
# same mpirun, python and environment.
#   perf/horovod_examples.sh EXAMPLES_DIR WHICH [ARGS...]
#     EXAMPLES_DIR  holds Horovod's examples/pytorch/pytorch_mnist.py and
#                   pytorch_synthetic_benchmark.py, checked against the sha256
#                   of the versions in perf/results/python.md (Horovod's code
#                   stays out of this repository; the error says where to get them)
#     WHICH         mnist-sqz | mnist-horovod | synthetic-sqz | synthetic-horovod
#     ARGS          passed to the example (e.g. --epochs 2)
# env: HOROVOD_VENV (default /work/venvs/horovod, from python/tests/tools/build_horovod.sh),
#      SQZ_LIBRARY (default build/libsqz.so), NP (default 4), OUT (logs and data, default /tmp/sqz-horovod-examples),
#      LOCAL_BN=1: run the example through a wrapper that sets hvd.SyncBatchNorm = torch.nn.BatchNorm2d first
#      (Horovod 0.28.1's SyncBatchNorm raises "expected input tensor to be on GPU" on CPU tensors, so the
#      synthetic benchmark runs under Horovod on a CPU machine only this way; the example file is unchanged)
# pytorch_mnist.py reads Fashion-MNIST from Debian's dataset-fashion-mnist,
# unpacked where torchvision's MNIST looks for its files, so it runs offline.
set -euo pipefail
cd "$(dirname "$0")/.."
examples=$(cd "$1" && pwd)
which=$2
shift 2
np=${NP:-4}
venv=${HOROVOD_VENV:-/work/venvs/horovod}
out=${OUT:-/tmp/sqz-horovod-examples}
mkdir -p "$out"
bash .ci/deps.sh python3-torchvision python3-filelock dataset-fashion-mnist openmpi-bin

case $which in
  mnist-*) script=pytorch_mnist.py commit=9f69c255221b1951999b94afdbd53659b74f1592
           sha=241858dbf4ad0e9a9c530797f2c68c178ac53af8fbdcc8cbf8ec9bba0acb689b ;;
  synthetic-*) script=pytorch_synthetic_benchmark.py commit=cf63b2ed3f8f47f65c2b3c885a22087fd5188eb4
               sha=d0b2b5e078618616e10a434aadb040c1362e408946ed75e0249fc85e92f1cfb6 ;;
  *) echo "unknown example run: $which" >&2; exit 2 ;;
esac
if ! echo "$sha  $examples/$script" | sha256sum -c --status 2>/dev/null; then
  echo "$examples/$script is missing or not the version measured: fetch" \
    "https://raw.githubusercontent.com/horovod/horovod/$commit/examples/pytorch/$script (sha256 $sha)" >&2
  exit 2
fi

# One python for both runs: the Horovod venv's (system torch and
# torchvision, plus Horovod). pytorch_mnist.py also has `import horovod`
# (for its --num-proc mode); without Horovod installed, that line changes too.
py=/usr/bin/python3
[ -x "$venv/bin/python" ] && py=$venv/bin/python

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=$out/data
extra=()
if [ "$script" = pytorch_mnist.py ]; then
  if [ ! -f "$data/MNIST/raw/t10k-labels-idx1-ubyte" ]; then
    mkdir -p "$data/MNIST/raw"
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
      gunzip -c "/usr/share/datasets/fashion-mnist/$f.gz" > "$data/MNIST/raw/$f"
    done
  fi
  extra=(--data-dir "$data")
fi

run=$examples/$script
env_args=(-x OMP_NUM_THREADS=1 -x UCX_WARN_UNUSED_ENV_VARS=n)
if [ "${which#*-}" = sqz ]; then
  run=$work/$script
  sed 's/^import horovod\.torch as hvd$/import sqz.torch as hvd/' "$examples/$script" > "$run"
  if ! "$py" -c "import horovod" 2>/dev/null; then
    sed -i 's/^import horovod$/import sqz as horovod  # unused unless --num-proc/' "$run"
  fi
  echo "== changed lines:"
  diff "$examples/$script" "$run" || true
  env_args+=(-x PYTHONPATH="$PWD/python" -x SQZ_LIBRARY="${SQZ_LIBRARY:-$PWD/build/libsqz.so}")
fi

cmd=("$py" "$run")
if [ "${LOCAL_BN:-0}" = 1 ]; then
  module=horovod.torch
  [ "${which#*-}" = sqz ] && module=sqz.torch
  cat > "$work/local_bn.py" <<EOF
import runpy, sys, torch
import $module as hvd
hvd.SyncBatchNorm = torch.nn.BatchNorm2d  # per-rank batch statistics; see perf/horovod_examples.sh
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
EOF
  cmd=("$py" "$work/local_bn.py" "$run")
fi

log=$out/$which.log
start=$(date +%s.%N)
status=0
mpirun --allow-run-as-root --oversubscribe -np "$np" "${env_args[@]}" "${cmd[@]}" "${extra[@]}" "$@" 2>&1 \
  | tee "$log" || status=$?
echo "== $which: exit $status, wall $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }") s, log $log"
exit "$status"

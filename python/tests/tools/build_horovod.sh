#!/usr/bin/env bash
# Builds real Horovod 0.28.1 (CPU only, against Debian's torch) into a venv
# outside the repository, as a test-time reference for sqz.torch's
# Horovod semantics (python/tests/horovod_reference.py) and for the MPI
# interposer's Horovod runs. Horovod is not a dependency of sqz.
#   python/tests/tools/build_horovod.sh [VENV]     (default /work/venvs/horovod; env HOROVOD_VENV)
# About 10 minutes on 2 cores; run it under /work/tools/cpu.sh on the shared machine.
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv=${1:-${HOROVOD_VENV:-/work/venvs/horovod}}
bash .ci/deps.sh libtorch-dev pybind11-dev python3-dev libopenmpi-dev openmpi-bin cmake
if "$venv/bin/python" -c "import horovod, horovod.torch; assert horovod.__version__ == '0.28.1'" 2>/dev/null; then
  echo "horovod 0.28.1 already in $venv"
  exit 0
fi
/usr/bin/python3 -m venv --system-site-packages "$venv"
py_include=$(/usr/bin/python3 -c "import sysconfig; print(sysconfig.get_paths()['include'])")
export CPLUS_INCLUDE_PATH=/usr/include/torch/csrc/api/include:$py_include
export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 HOROVOD_WITH_GLOO=1
export HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1
export MAKEFLAGS=-j${HOROVOD_BUILD_JOBS:-2}
# --no-build-isolation: build against the system torch the venv sees.
"$venv/bin/python" -m pip install --no-build-isolation --no-cache-dir horovod==0.28.1
"$venv/bin/python" -c "import horovod.torch as hvd; print('horovod', __import__('horovod').__version__, \
'mpi', hvd.mpi_built(), 'gloo', hvd.gloo_built())"

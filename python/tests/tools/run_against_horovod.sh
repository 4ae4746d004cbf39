#!/usr/bin/env bash
# Runs the `horovod_reference` tests of python/tests/test_horovod_semantics.py
# against real Horovod 0.28.1 (horovod.torch instead of sqz.torch) under
# mpirun -np 2 and -np 4: the semantics sqz's tests expect, checked on
# Horovod itself. Not part of CI (Horovod takes ~10 min to build).
#   python/tests/tools/run_against_horovod.sh      (env: HOROVOD_VENV, default /work/venvs/horovod)
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv=${HOROVOD_VENV:-/work/venvs/horovod}
[ -x "$venv/bin/python" ] || bash python/tests/tools/build_horovod.sh "$venv"
for np in 2 4; do
  echo "== Horovod 0.28.1 reference: mpirun -np $np"
  timeout 900 mpirun --allow-run-as-root --oversubscribe -np "$np" -x SQZ_TEST_AGAINST=horovod -x OMP_NUM_THREADS=1 \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider --color=no python/tests/test_horovod_semantics.py
done

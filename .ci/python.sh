#!/usr/bin/env bash
# Python package CI: installs the package the way a user does (pip install
# ./python, which builds and bundles libsqz) into a venv over Debian's CPU
# torch, then runs the python tests under mpirun -np 2 and -np 4 and the
# launcher tests (which start their own ranks) once without mpirun.
# Fails on any test failure and on "no tests collected" (pytest's exit 5).
#   .ci/python.sh            (env: SQZ_PY_VENV, SQZ_CMAKE_ARGS, SQZ_PY_SKIP_DEPS=1)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
if [ "${SQZ_PY_SKIP_DEPS:-0}" != 1 ]; then
  bash .ci/deps.sh python3-torch python3-numpy python3-pytest python3-venv python3-setuptools python3-wheel \
    dataset-fashion-mnist openmpi-bin
fi
venv=${SQZ_PY_VENV:-build-py-venv}
# The package's own CMake build of libsqz: CPU-only unless told otherwise
# (CUDA kernels take long on small CI machines; they are built by .ci/run).
export SQZ_CMAKE_ARGS=${SQZ_CMAKE_ARGS:--DSQZ_WITH_CUDA=OFF -DSQZ_WITH_NCCL=OFF}
unset SQZ_LIBRARY  # test the library bundled into the wheel

echo "== python: venv ($venv) over /usr/bin/python3 with system site packages, pip install ./python"
/usr/bin/python3 -m venv --system-site-packages "$venv"
# --no-build-isolation: setuptools and wheel come from Debian, so no network is needed.
"$venv/bin/python" -m pip install -q --no-build-isolation --force-reinstall --no-deps ./python
py=$(cd "$venv/bin" && pwd)/python
"$py" -c "import sqz, sqz.torch; print('sqz', sqz.__version__, 'lib', sqz.load_library().path)"

# The C++ tests' checker of lossy results, for the Python tests (python/tests/lossy.py):
# built in the CI build dir (by .ci/run already; configured CPU-only if absent).
checks_dir=${SQZ_CHECKS_BUILD:-build}
if [ ! -f "$checks_dir/build.ninja" ]; then
  cmake -S . -B "$checks_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSQZ_WITH_CUDA=OFF -DSQZ_WITH_NCCL=OFF \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
fi
cmake --build "$checks_dir" --target sqz_test_checks_c >/dev/null
export SQZ_TEST_CHECKS=$(cd "$checks_dir/tests" && pwd)/libsqz_test_checks_c.so
test -f "$SQZ_TEST_CHECKS"

export OMPI_MCA_rmaps_base_oversubscribe=1 UCX_WARN_UNUSED_ENV_VARS=n SQZ_TIMEOUT=${SQZ_TIMEOUT:-60}
# What was built, for the test that cuda_built() tells the truth.
case " $SQZ_CMAKE_ARGS " in
  *" -DSQZ_WITH_CUDA=OFF "*) export SQZ_EXPECT_CUDA_BUILT=0 ;;
  *" -DSQZ_WITH_CUDA=ON "*) export SQZ_EXPECT_CUDA_BUILT=1 ;;
esac
export OMP_NUM_THREADS=1
pytest_args=(-q -p no:cacheprovider --color=no)

check() {  # name rc
  if [ "$2" -eq 5 ]; then echo "python: $1: pytest collected no tests" >&2; exit 1; fi
  if [ "$2" -ne 0 ]; then echo "python: $1 failed (exit $2)" >&2; exit "$2"; fi
  echo "python: $1 passed"
}

for np in 2 4; do
  echo "== python: pytest under mpirun -np $np"
  rc=0
  # One rank's exit code is enough: every rank runs the same tests; mpirun
  # returns the first non-zero one (5 included).
  timeout 600 mpirun --allow-run-as-root --oversubscribe -np "$np" \
    -x OMP_NUM_THREADS -x SQZ_TIMEOUT -x UCX_WARN_UNUSED_ENV_VARS -x SQZ_TEST_CHECKS ${SQZ_EXPECT_CUDA_BUILT:+-x SQZ_EXPECT_CUDA_BUILT} \
    "$py" -m pytest "${pytest_args[@]}" -m "not launcher" python/tests || rc=$?
  check "mpirun -np $np" "$rc"
done

echo "== python: launcher and example tests"
rc=0
timeout 600 "$py" -m pytest "${pytest_args[@]}" -m launcher python/tests || rc=$?
check "launcher" "$rc"
echo "== python CI finished in $(( $(date +%s) - start ))s"

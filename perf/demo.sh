#!/usr/bin/env bash
# The demo: installs dependencies, builds, and runs a 4-rank allreduce
# benchmark on this machine (loopback / shared memory), next to Open MPI's
# MPI_Allreduce measured in the same run.
#   bash perf/demo.sh [sqz_allreduce_perf flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh
export PATH=/usr/local/cuda/bin:$PATH
bash .ci/build.sh build >/dev/null
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-b 8 -e 64M -f 4 -c 1 -m 1)
exec mpirun --allow-run-as-root --oversubscribe -np 4 build/perf/sqz_allreduce_perf "${args[@]}"

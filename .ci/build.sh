#!/usr/bin/env bash
# Configures and builds sqz into BUILD_DIR (default build/) with ccache; CUDA
# is compiled for one architecture (SQZ_CUDA_ARCHITECTURES, default 90).
#   .ci/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
jobs=${SQZ_JOBS:-$(nproc)}
cmake -S . -B "$dir" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSQZ_CUDA_ARCHITECTURES="${SQZ_CUDA_ARCHITECTURES:-90}" \
  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
  -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache "$@" >/dev/null
cmake --build "$dir" -j "$jobs"

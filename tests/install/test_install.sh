#!/usr/bin/env bash
# Installs sqz from BUILD_DIR into a temporary prefix, then builds a user
# program against it twice (find_package(sqz) and pkg-config) and runs it
# under mpirun, where it must match MPI_Allreduce bit for bit.
set -euo pipefail
build_dir=$1
src_dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
# --mca op ^avx: see tests/CMakeLists.txt (Open MPI's AVX ops saturate int8 sums).
mpirun=(mpirun --allow-run-as-root --oversubscribe --mca op ^avx)

# 1. CMake package.
cmake -S "$src_dir" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
LD_LIBRARY_PATH="$work/prefix/lib:${LD_LIBRARY_PATH:-}" "${mpirun[@]}" -np 3 -x LD_LIBRARY_PATH \
  "$work/cmake-build/mpi_allreduce_check"

# 2. pkg-config.
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
mpicc "$src_dir/mpi_allreduce_check.c" -o "$work/pc-check" $(pkg-config --cflags --libs sqz)
LD_LIBRARY_PATH="$work/prefix/lib:${LD_LIBRARY_PATH:-}" "${mpirun[@]}" -np 2 -x LD_LIBRARY_PATH "$work/pc-check"
echo "install test: find_package and pkg-config builds both match MPI_Allreduce"

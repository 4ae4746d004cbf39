#!/usr/bin/env bash
# Installs sqz from BUILD_DIR into a temporary prefix (outside the system
# library path), runs an installed program from it with no LD_LIBRARY_PATH
# (its RUNPATH, $ORIGIN/../lib, must find the installed libsqz), then builds
# a user program against it twice (find_package(sqz) and pkg-config) and
# runs it under mpirun, where it must match MPI_Allreduce bit for bit.
set -euo pipefail
build_dir=$1
src_dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
# --mca op ^avx: see tests/CMakeLists.txt (Open MPI's AVX ops saturate int8 sums).
mpirun=(mpirun --allow-run-as-root --oversubscribe --mca op ^avx)

# 0. An installed executable runs as installed.
perf=$work/prefix/bin/sqz_allreduce_perf
if [ -x "$build_dir/perf/sqz_allreduce_perf" ]; then  # built (SQZ_BUILD_PERF): then installed too
  [ -x "$perf" ] || { echo "$perf was not installed"; exit 1; }
  dyn=$(readelf -d "$perf")
  grep -q 'RUNPATH.*\[\$ORIGIN/\.\./lib\]' <<<"$dyn" || { echo "no RUNPATH \$ORIGIN/../lib in $perf:"; echo "$dyn"; exit 1; }
  libs=$(env -u LD_LIBRARY_PATH ldd "$perf")
  grep -qE "libsqz\.so\.0 => $work/prefix/(bin/\.\./)?lib/libsqz\.so\.0" <<<"$libs" ||
    { echo "libsqz not from the prefix:"; echo "$libs"; exit 1; }
  env -u LD_LIBRARY_PATH "${mpirun[@]}" -np 2 "$perf" -b 1K -e 64K -f 8 -c 1 -n 2 -w 1 >"$work/perf.txt" ||
    { cat "$work/perf.txt"; exit 1; }
  grep -q "Out of bounds values : 0 OK" "$work/perf.txt" || { cat "$work/perf.txt"; exit 1; }
  echo "install test: $perf runs from the prefix with no LD_LIBRARY_PATH"
fi

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

#!/usr/bin/env bash
# Downloads, here, the Debian packages that perf/gpu/run.sh needs on the GPU
# machine, which has CUDA, CMake, ninja, a C++ compiler and PyTorch but no
# UCX, Open MPI, GoogleTest, Google Benchmark, nlohmann-json, pkg-config or
# zlib's headers, and no package registry: into DIR (default .gpu-deps/,
# ignored by git; the device tool carries it), with every library they load
# that a base system lacks. run.sh unpacks them with dpkg -x into a private
# prefix.
#
# Checks, before it says done: every shared library the unpacked programs
# and libraries load resolves inside the folder or to a package of the base
# system (libc, the C++ runtime, zlib, ...); the folder stays under 40 MiB.
#   perf/gpu/fetch_deps.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.gpu-deps}
pkgs=(
  # UCX, and what its transports load
  libucx-dev libucx0 libibverbs1 ibverbs-providers librdmacm1 libnuma1 libnl-3-200 libnl-route-3-200
  # Open MPI (mpirun, mpicc, libmpi) and its runtime
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libpmix2 libhwloc15 libevent-core-2.1-7
  libevent-pthreads-2.1-7 libfabric1 libpsm2-2 libpsm-infinipath1 libmunge2 libltdl7
  # test and benchmark libraries, and pkg-config for CMake's UCX lookup
  libgtest-dev libbenchmark-dev libbenchmark1debian nlohmann-json3-dev pkgconf pkgconf-bin libpkgconf3
  # zlib's headers for perf/train (and its library, which their libz.so names)
  zlib1g-dev zlib1g
)
# What any Debian or Ubuntu system with a C++ compiler has.
base=(libc6 libgcc-s1 libstdc++6 zlib1g libudev1 libuuid1 libatomic1)
max_mib=40

rm -rf "$dir" && mkdir -p "$dir"
download() { (cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "${pkgs[@]}" >/dev/null); }
if ! download; then
  apt-get update -qq  # no package lists yet (a fresh machine)
  download
fi

# Unpack into a scratch prefix and resolve every ELF file's libraries there.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for deb in "$dir"/*.deb; do dpkg-deb -x "$deb" "$scratch"; done
source perf/gpu/prefix_env.sh
prefix_links "$scratch"
libpath=$(prefix_library_path "$scratch")
missing=() outside=()
while IFS= read -r -d '' f; do
  head -c 4 "$f" | grep -q $'\x7fELF' || continue
  while read -r line; do
    case $line in
      *"not found"*) missing+=("$f: $line") ;;
      *" => /"*)
        lib=${line#*=> }
        lib=${lib%% (*}
        [[ $lib == "$scratch"/* ]] || outside+=("$lib")
        ;;
    esac
  done < <(LD_LIBRARY_PATH=$libpath ldd "$f" 2>/dev/null)
done < <(find "$scratch" -type f \( -name '*.so*' -o -path '*/bin/*' \) -print0)
if ((${#missing[@]})); then
  printf 'unresolved: %s\n' "${missing[@]}" | sort -u >&2
  exit 1
fi
bad=()
for lib in $(printf '%s\n' "${outside[@]}" | sort -u); do
  real=$(readlink -f "$lib")
  owner=$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || dpkg -S "/usr$real" 2>/dev/null || true)
  owner=${owner%%:*}
  [[ " ${base[*]} " == *" $owner "* ]] || bad+=("$lib (${owner:-no package})")
done
if ((${#bad[@]})); then
  printf 'loaded from outside the folder and not a base package (add it to pkgs): %s\n' "${bad[@]}" >&2
  exit 1
fi
kib=$(du -sk "$dir" | cut -f1)
if ((kib > max_mib * 1024)); then
  echo "$dir holds $((kib / 1024)) MiB, over the $max_mib MiB the device tool's carry can spare" >&2
  exit 1
fi
echo "fetch_deps: $(ls "$dir"/*.deb | wc -l) packages, $((kib / 1024)) MiB in $dir; every library resolves in it or to ${base[*]}"

#!/usr/bin/env bash
# Rehearses the GPU check here, without a GPU (CI runs this): perf/gpu/run.sh
# exactly as the GPU machine will run it, in a mount namespace that hides
# from the system every file of the packages run.sh brings along (UCX, Open
# MPI, GoogleTest, Google Benchmark, nlohmann-json, pkg-config, zlib's
# headers, and the -dev packages they pull in) and the CUDA toolkit's NCCL:
# an overlay of whiteouts on /usr. Step limits are scaled for 2 cores. NCCL comes instead from a folder laid out like
# PyTorch's nvidia-nccl wheel (SQZ_NCCL_HOME: include/, lib/libnccl.so.2).
# So the private prefix, CMake, pkg-config, the loader and mpirun must all
# work from .gpu-deps alone. The run must end at the first GPU step with
# "no GPU" (exit 2), every step before it passed.
#   perf/gpu/rehearse.sh [BUILD_DIR]      (default build-gpu-rehearsal; needs root)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=${1:-build-gpu-rehearsal}
start=$(date +%s)
rm -rf "$build"  # from scratch, as on the GPU machine (a compiler cache may still serve the objects)
bash perf/gpu/fetch_deps.sh .gpu-deps

# Carried but not hidden: zlib1g (carried only so that zlib1g-dev's libz.so
# link resolves in the prefix) is what this machine's own tools run on.
carried=$(for deb in .gpu-deps/*.deb; do dpkg-deb -f "$deb" Package; done | grep -vx zlib1g)
# Installed here, absent there: what the carried -dev packages pull in.
pulled_in=(googletest libhwloc-dev libevent-dev libpmix-dev libibverbs-dev libnl-3-dev libnl-route-3-dev
           libnuma-dev libltdl-dev mpi-default-dev mpi-default-bin pkg-config zlib1g-dev)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/whiteouts" "$work/nccl/include" "$work/nccl/lib"
cuda=$(readlink -f /usr/local/cuda)
cp -r "$cuda"/include/nccl*.h "$cuda"/include/nccl_device "$work/nccl/include/" 2>/dev/null || true
touch "$work/nccl/lib/libnccl.so.2"
# shellcheck disable=SC2086
python3 - "$work/whiteouts" "$cuda" $carried "${pulled_in[@]}" <<'EOF'
# An overlayfs whiteout (a 0/0 character device) for every file of the given
# packages under /usr, and for the CUDA toolkit's NCCL.
import glob, os, stat, subprocess, sys
layer, cuda, pkgs = sys.argv[1], sys.argv[2], sys.argv[3:]
installed = [p for p in pkgs if subprocess.run(["dpkg-query", "-W", p], capture_output=True).returncode == 0]
files = subprocess.run(["dpkg", "-L"] + installed, capture_output=True, text=True).stdout.split("\n")
files += glob.glob(cuda + "/include/nccl*") + glob.glob(cuda + "/lib64/libnccl*") + glob.glob(cuda + "/targets/*/lib/libnccl*")
count = 0
for f in files:
    if not f or (os.path.isdir(f) and not os.path.islink(f) and not f.startswith(cuda)):
        continue
    path = os.path.abspath(f)
    for merged in ("/lib/", "/bin/", "/sbin/"):
        if path.startswith(merged):
            path = "/usr" + path
    if not path.startswith("/usr/") or not os.path.lexists(path):
        continue
    target = os.path.join(layer, os.path.relpath(path, "/usr"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if not os.path.lexists(target):
        os.mknod(target, 0o600 | stat.S_IFCHR, os.makedev(0, 0))
        count += 1
print(f"rehearse: hiding {count} files of {len(installed)} installed packages and the CUDA toolkit's NCCL")
EOF

log=$(mktemp)
set +e
unshare --mount --propagation private env WORK="$work" CUDA_DIR="$cuda" BUILD="$build" ROOT="$root" bash -c '
  set -e
  mount --bind "$CUDA_DIR/lib64/libnccl.so.2" "$WORK/nccl/lib/libnccl.so.2"
  mount -t overlay overlay -o "lowerdir=$WORK/whiteouts:/usr" /usr
  [[ -d /etc/openmpi ]] && mount -t tmpfs tmpfs /etc/openmpi
  for gone in /usr/include/ucp/api/ucp.h /usr/include/gtest/gtest.h /usr/bin/mpirun /usr/bin/pkg-config \
              "$CUDA_DIR/include/nccl.h"; do
    [[ -e $gone ]] && { echo "rehearse: $gone is still visible"; exit 3; }
  done
  set +e
  cd "$ROOT"
  SQZ_GPU_BUILD="$BUILD" OUT="$BUILD/results" SQZ_NCCL_HOME="$WORK/nccl" SQZ_GPU_TIME_SCALE=8 \
    bash perf/gpu/run.sh --budget 3600
' 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
fail() { echo "rehearse: FAILED: $*"; exit 1; }
[[ $rc -eq 2 ]] || fail "perf/gpu/run.sh exited $rc, not 2 (no GPU)"
grep -q "^no GPU: " "$log" || fail "no 'no GPU' line"
for want in "deps: unpack" "configure" "build " "mpi: 2 processes"; do
  grep -Eq "^PASS +$want" "$log" || fail "step '$want' did not pass"
done
grep -Eq "^FAIL " "$log" && fail "a step failed"
echo "rehearse: OK in $(($(date +%s) - start)) s: packages carried, unpacked into the private prefix, configured," \
  "built and run (mpirun over UCX) without the system's; stopped at the first GPU step with 'no GPU'"

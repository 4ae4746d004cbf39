#!/usr/bin/env bash
# Installs what sqz needs to build and test, from Debian's packages (and
# nothing else). Idempotent: apt runs only when something is missing.
set -euo pipefail
pkgs=(build-essential cmake ninja-build ccache pkg-config git
      libucx-dev libssl-dev libopenmpi-dev openmpi-bin
      googletest libgtest-dev libbenchmark-dev nlohmann-json3-dev
      clang libclang-rt-dev iproute2 python3
      python3-torch python3-numpy python3-pytest python3-venv python3-setuptools python3-wheel
      dataset-fashion-mnist python3-mpi4py gfortran libgloo-dev)
pkgs+=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

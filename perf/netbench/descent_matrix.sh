#!/usr/bin/env bash
# Issue 10's measurement: the descent rate (gain / time per call) of every
# fixed spec and of auto on the same drifting gradient stream, 4 ranks in 4
# namespaces, one testbed session per link rate. Each link gets its own
# profile file (calibrated by auto's first call), so curves never leak
# between rates. Writes OUT_DIR/<rate>.txt.
#   perf/netbench/descent_matrix.sh [OUT_DIR] [RATE...]   (default 10gbit 1gbit 100mbit 10mbit)
# SQZ_BUILD_DIR picks the build (default: build); SQZ_DESCENT_ARGS and
# SQZ_DESCENT_ENV (NAME=VAL ...) go to the benchmark.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/perf/results/descent_testbed}
shift || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(10gbit 1gbit 100mbit 10mbit)
build=${SQZ_BUILD_DIR:-$root/build}
bench=$build/perf/descent/sqz_descent_bench
[ -x "$bench" ] || { echo "build first: bash .ci/build.sh build (or set SQZ_BUILD_DIR)" >&2; exit 1; }
extra_env=()
for e in ${SQZ_DESCENT_ENV:-}; do extra_env+=(--env "$e"); done
mkdir -p "$out"
name=sqzdsc
cleanup() { "$here/testbed.sh" down --name "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM
for rate in "${rates[@]}"; do
  file=$out/$rate.txt
  profile=$(mktemp -u /tmp/sqz-profile-$rate-XXXXXX.json)
  {
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
    echo "# testbed: 4 namespaces x 1 rank, tbf rate $rate on both veth ends; auto's profile calibrated (quick) on its first call"
    echo "# build: $build at $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- src perf/descent 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "\$ testbed.sh run --name $name --env SQZ_PROFILE=<fresh file> ${SQZ_DESCENT_ENV:-} -- sqz_descent_bench ${SQZ_DESCENT_ARGS:-}"
  } > "$file"
  "$here/testbed.sh" up --ns 4 --rate "$rate" --name "$name" --subnet 10.216.0 >/dev/null
  # shellcheck disable=SC2086
  "$here/testbed.sh" run --name "$name" --env SQZ_PROFILE="$profile" --env SQZ_CALIBRATE=quick "${extra_env[@]+"${extra_env[@]}"}" -- \
    "$bench" ${SQZ_DESCENT_ARGS:-} 2>&1 | grep -v '^testbed.sh' >> "$file"
  # Keep the calibrated profile auto used, next to the table.
  if [ -f "$profile" ]; then mv "$profile" "$out/$rate.profile.json"; fi
  cleanup
  echo "wrote $file"
done

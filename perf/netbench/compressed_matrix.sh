#!/usr/bin/env bash
# Issue 4's measurement: 4 ranks, one per namespace, 64 MiB float32, the
# dense path, MPI_Allreduce and compressed specs, in one testbed session per
# link rate. Writes the raw tables to OUT_DIR/<rate>.txt.
#   perf/netbench/compressed_matrix.sh [OUT_DIR] [RATE...]   (default 100mbit 1gbit)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/perf/results/compressed_testbed}
shift || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(100mbit 1gbit)
perf=$root/build/perf/sqz_allreduce_perf
[ -x "$perf" ] || { echo "build first: bash .ci/build.sh build" >&2; exit 1; }
mkdir -p "$out"
name=sqzcmp
cleanup() { "$here/testbed.sh" down --name "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM
for rate in "${rates[@]}"; do
  file=$out/$rate.txt
  {
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
    echo "# testbed: 4 namespaces x 1 rank, tbf rate $rate on both veth ends (perf/netbench/testbed.sh)"
  } > "$file"
  "$here/testbed.sh" up --ns 4 --rate "$rate" --name "$name" --subnet 10.214.0 >/dev/null
  # Dense sqz next to MPI_Allreduce in the same launch, then each codec.
  for spec in none q4 @qring:q4 q8 topk:0.01 @sparse_split:topk:0.01 randk:0.01 bf16; do
    args=(-b 64M -e 64M -c 1 -n 2 -w 1 -Z "$spec")
    [ "$spec" = none ] && args+=(-m 1)
    echo "## -Z $spec" >> "$file"
    echo "\$ testbed.sh run --name $name -- sqz_allreduce_perf ${args[*]}" >> "$file"
    "$here/testbed.sh" run --name "$name" --env SQZ_DEBUG=WARN -- "$perf" "${args[@]}" 2>&1 \
      | grep -v '^#$' >> "$file"
  done
  cleanup
  echo "wrote $file"
done

set -euo pipefail
tb=perf/netbench/testbed.sh
trap '$tb down --name cra >/dev/null 2>&1 || true' EXIT
$tb up --ns 4 --rate 100mbit --name cra --subnet 10.221.0 >/dev/null
for r in $REPS; do
  for cb in $CBS; do
    echo "## chunk $cb repeat $r"
    $tb run --name cra --env SQZ_CHUNK_BYTES=$cb -- build/perf/sqz_allreduce_perf -b 16M -e 16M -n 3 -w 1 -c 1 -Z q4 2>&1 | grep -v "^#"
  done
done

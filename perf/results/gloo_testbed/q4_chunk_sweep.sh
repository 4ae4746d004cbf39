# The q4 chunk-size sweep of gloo_testbed.md (issue 19): -Z q4, 16 MiB, 4 namespaces at 100mbit,
# one launch per SQZ_CHUNK_BYTES value per repeat. Run under /work/tools/quiet.sh from the repository root:
#   CBS="32768 65536 131072 262144" REPS="1 2" bash perf/results/gloo_testbed/q4_chunk_sweep.sh
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

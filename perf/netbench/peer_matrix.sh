#!/usr/bin/env bash
# Issue 19's testbed measurement: sqz's dense allreduce next to Gloo's ring
# (gloo_allreduce_perf) and Open MPI's MPI_Allreduce (-m 1 in sqz's launch),
# 4 namespaces x 1 rank at one link rate, interleaved per repeat so the three
# see the same machine. sqz runs twice per repeat: as configured (default)
# and with SQZ_SPIN_POLLS=1 (waits yield at once). Appends the raw tables to
# OUT; perf/netbench/summarize_peer.py OUT... makes the medians and ratios.
# With --specs "none topk:0.01 q4", each repeat instead runs sqz once per
# compression spec (-Z), for the compressed-vs-dense ratios, and, with
# --base BIN --base-specs "S...", those specs once more with another build's
# sqz_allreduce_perf (a before/after in the same session).
#   perf/netbench/peer_matrix.sh --rate R --out OUT [--repeats N] [--first I] [--specs "S..."]
#       [--base BIN --base-specs "S..."]
#       [--sizes "-b 1M -e 64M -f 4"] [--iters N] [--warmup W] [--name P] [--subnet A.B.C]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rate='' out='' repeats=3 first=1 sizes='-b 1M -e 64M -f 4' iters=3 warmup=1 name=sqzpeer subnet=10.215.0 specs='' base='' basespecs=''
while [ $# -gt 0 ]; do
  case $1 in
    --rate) rate=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --first) first=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --specs) specs=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --base-specs) basespecs=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --subnet) subnet=$2; shift 2 ;;
    *) echo "peer_matrix.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$rate" ] && [ -n "$out" ] || { echo "peer_matrix.sh: --rate and --out are required" >&2; exit 2; }
sqz=$root/build/perf/sqz_allreduce_perf gloo=$root/build/perf/gloo_allreduce_perf
for b in "$sqz" "$gloo"; do [ -x "$b" ] || { echo "build first (gloo_allreduce_perf needs libgloo-dev): $b" >&2; exit 1; }; done
cleanup() { "$here/testbed.sh" down --name "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM
"$here/testbed.sh" up --ns 4 --rate "$rate" --name "$name" --subnet "$subnet" >/dev/null
read -r -a sz <<< "$sizes"
common=("${sz[@]}" -n "$iters" -w "$warmup" -c 1)
launch() {  # label, program, args...
  local label=$1; shift
  echo "## rate $rate repeat $r $label"
  echo "\$ testbed.sh run --name $name ${*/#$root\//}"
  "$here/testbed.sh" run --name "$name" "$@" 2>&1 | grep -v '^#$'
}
{
  echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
       "commit $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD || echo +dirty)"
  echo "# testbed: 4 namespaces x 1 rank, tbf rate $rate on both veth ends (perf/netbench/testbed.sh)"
} >> "$out"
for ((r = first; r < first + repeats; ++r)); do
  if [ -n "$specs" ]; then
    for spec in $specs; do launch "sqz-Z:$spec" -- "$sqz" "${common[@]}" -Z "$spec" >> "$out"; done
    if [ -n "$base" ]; then
      for spec in $basespecs; do launch "base-Z:$spec" -- "$base" "${common[@]}" -Z "$spec" >> "$out"; done
    fi
    continue
  fi
  {
    launch "sqz+mpi" -- "$sqz" "${common[@]}" -m 1
    launch "sqz-spin1" --env SQZ_SPIN_POLLS=1 -- "$sqz" "${common[@]}"
    launch "gloo" -- "$gloo" "${common[@]}"
  } >> "$out"
done

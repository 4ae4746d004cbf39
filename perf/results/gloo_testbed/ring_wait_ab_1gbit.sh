#!/bin/bash
# A/B: the ring's reduce-scatter->allgather wait (base cb8101b) vs none (this branch), 1gbit, SQZ_SPIN_POLLS=1
cd /work/wt/i19
T=perf/netbench/testbed.sh
bash $T up --ns 4 --rate 1gbit --name exa --subnet 10.217.0 >/dev/null
trap 'bash $T down --name exa >/dev/null 2>&1' EXIT
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), base = /tmp/i19_base (cb8101b), new = build/ (working tree with the ring change)"
for r in 1 2 3; do
  for b in base new; do
    bin=build/perf/sqz_allreduce_perf; [ $b = base ] && bin=/tmp/i19_base/build/perf/sqz_allreduce_perf
    echo "## repeat $r $b"
    echo "\$ testbed.sh run --name exa --env SQZ_SPIN_POLLS=1 -- $bin -b 1M -e 16M -f 4 -n 5 -w 1 -c 1"
    timeout 300 bash $T run --name exa --env SQZ_SPIN_POLLS=1 -- $bin -b 1M -e 16M -f 4 -n 5 -w 1 -c 1 2>&1 | grep -E "^ +[0-9]"
  done
done

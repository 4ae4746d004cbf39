#!/usr/bin/env bash
# The network curve that sqz_calibrate measures on a shaped link, with the
# host idle and with it loaded (two busy loops beside the 4 ranks on this
# 2-core machine), for two builds of sqz_calibrate in alternation: does a
# loaded host make a token-bucket link look faster than its rate?
#
#   perf/tuner/calibration_under_load.sh OLD_BIN NEW_BIN [RATE] [REPS] [OUT]
#
# RATE: the testbed's (default 10mbit); REPS: default 4; OUT: default
# /tmp/calibration_under_load. Needs root (perf/netbench/testbed.sh: 4
# namespaces, one rank each, on subnet 10.215.0, removed at the end). Prints,
# per build and load, each run's small-message points over the rate.
set -euo pipefail
old=$1 new=$2 rate=${3:-10mbit} reps=${4:-4} out=${5:-/tmp/calibration_under_load}
here=$(cd "$(dirname "$0")" && pwd)
testbed=$here/../netbench/testbed.sh
mkdir -p "$out"
"$testbed" up --ns 4 --rate "$rate" --name cal --subnet 10.215.0 >/dev/null
hogs=()
cleanup() {
  for h in "${hogs[@]}"; do kill "$h" 2>/dev/null || true; done
  "$testbed" down --name cal >/dev/null || true
}
trap cleanup EXIT
for rep in $(seq 1 "$reps"); do
  for load in idle busy; do
    for build in old new; do
      bin=$old; [ "$build" = new ] && bin=$new
      hogs=()
      if [ "$load" = busy ]; then
        for _ in 1 2; do (while :; do :; done) & hogs+=($!); done
      fi
      "$testbed" run --ns 4 --name cal -- "$bin" --quick --no-gpu --out "$out/${build}_${load}_$rep.json" \
        >"$out/${build}_${load}_$rep.log" 2>&1
      for h in "${hogs[@]}"; do kill "$h"; done
      wait 2>/dev/null || true
      hogs=()
    done
  done
done
python3 - "$out" "$rate" <<'PY'
import glob, json, re, sys
from collections import defaultdict
out, rate = sys.argv[1], sys.argv[2]
m = re.fullmatch(r"([0-9.]+)([kmg])bit", rate)
bps = float(m.group(1)) * {"k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)] / 8
runs = defaultdict(list)
for f in sorted(glob.glob(out + "/*.json")):
    build, load, _ = f.rsplit("/", 1)[1][:-5].split("_")
    pts = {int(b): s for b, s in json.load(open(f))["links"]["tcp"]["points"]}
    runs[(build, load)].append(pts)
sizes = (1024, 4096, 16384, 65536)
print("| build | host | runs | " + " | ".join("%d B: time / (bytes / rate), each run" % b for b in sizes) + " |")
print("|---|---|---|" + "---|" * len(sizes))
for (build, load), v in sorted(runs.items()):
    cells = [", ".join("%.2f" % (p[b] / (b / bps)) for p in v) for b in sizes]
    print("| %s | %s | %d | %s |" % (build, load, len(v), " | ".join(cells)))
PY

#!/usr/bin/env python3
"""Tables of an experiment's logreg runs that alternate specs per seed across matrix.sh output folders
(perf/results/training.md, the statistics cadence session): per link and spec, time to target
(acceptance.py's definition; targets from the FIRST folder's loopback `none` runs, same seed), the
whole run's milliseconds per step, the step at which the target is reached, medians and spreads; then
auto's exchanges per run and longest statistics interval from the decision logs.
    perf/train/experiment_table.py EXPERIMENTS_DIR FOLDER [FOLDER...]
A spec from a folder after the first is labelled with its folder. TARGETS=DIR takes the targets from
DIR's runs instead (e.g. perf/results/train14, for experiments that ran no loopback `none`)."""
import gzip, json, os, statistics, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acceptance import load, crossing
if len(sys.argv) < 3:
    sys.exit(__doc__)
E = sys.argv[1]
folders = sys.argv[2:]
runs = []
for f in folders:
    for r in load(os.path.join(E, f)):
        r["folder"] = f
        runs.append(r)
targetRuns = load(os.environ["TARGETS"]) if os.environ.get("TARGETS") else [r for r in runs if r["folder"] == folders[0]]
target = {int(r["seed"]): float(r["final_acc"]) - 0.005 for r in targetRuns
          if r["model"] == "logreg" and r["link"] == "loopback" and r["spec"] == "none"}
cells = {}
for r in runs:
    seed = int(r["seed"])
    r["ttt"] = crossing(r["rows"], target[seed], "wall_s") if seed in target else None
    r["ms"] = float(r["wall_s"]) / int(r["steps_run"]) * 1e3
    r["stt"] = crossing(r["rows"], target[seed], "step") if seed in target else None
    label = r["spec"] + ("" if r["folder"] == folders[0] else " [" + r["folder"] + "]")
    cells.setdefault(r["link"], {}).setdefault(label, []).append(r)
def med(v):
    return statistics.median(v) if v else float("nan")
LINKS = ["loopback", "1gbit", "100mbit", "10mbit"]
for link in LINKS:
    if link not in cells:
        continue
    print(f"### logreg, {link}")
    print("| spec | seeds reaching | median time to target (s) | spread | median ms/step | spread | final acc (median) | plan | commit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, rs in cells[link].items():
        rs.sort(key=lambda r: int(r["seed"]))
        t = [r["ttt"] for r in rs if r["ttt"] is not None]
        ms = [r["ms"] for r in rs]
        plans = sorted({r["plans"].split(";")[-1].split("=")[0] for r in rs})
        print(f"| {label} | {len(t)}/{len(rs)} | {med(t):.3f} | {min(t):.3f}–{max(t):.3f} | {med(ms):.3f} | "
              f"{min(ms):.3f}–{max(ms):.3f} | {100*med([float(r['final_acc']) for r in rs]):.2f} | {','.join(plans)} | "
              f"{','.join(sorted({r['commit'] for r in rs}))} |")
    # per-seed ratios auto / fixed
    for label, rs in cells[link].items():
        print(f"  {label}: ttt " + " ".join(f"s{r['seed']}={r['ttt']:.3f}" if r['ttt'] else f"s{r['seed']}=-" for r in rs)
              + " | ms " + " ".join(f"{r['ms']:.2f}" for r in rs)
              + " | step at target " + " ".join(f"{r['stt']:.0f}" if r['stt'] else "-" for r in rs))
    print()
# statistics cadence in the auto runs: exchanges and the intervals reached
for f in folders:
    for link in LINKS:
        ex, ev, exact, credit = [], [], [], []
        for seed in range(1, 11):
            p = os.path.join(E, f, "tuner", f"{link}_logreg_s{seed}.jsonl.gz")
            if not os.path.exists(p):
                continue
            L = [json.loads(l) for l in gzip.open(p, "rt")]
            ex.append(len(L))
            ev.append(max(d.get("stats_every", 0) for d in L))
            # decisions for an exact plan (no codec in its name), and the credit's share (libraries with the check)
            exact.append(sum(1 for d in L if ":" not in d["chosen"]))
            if "credit_realized" in L[0]:
                c = [d["credit_realized"] for d in L]
                credit.append(f"{min(c):.2f}/{statistics.median(c):.2f}")
        if ex:
            print(f"{f} {link}: decisions (exchanges) per run {ex}, largest interval {ev}, exact decisions {exact}"
                  + (f", credit share min/median {credit}" if credit else ""))

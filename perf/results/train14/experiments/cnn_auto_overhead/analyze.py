"""Per-step breakdown of the interleaved auto/none CNN runs (steps/*.rankN.csv)."""
import csv, glob, statistics as st, sys, os
here = os.path.dirname(os.path.abspath(__file__))
def load(tag):
    ranks = []
    for p in sorted(glob.glob("%s/steps/%s.rank*.csv" % (here, tag))):
        ranks.append(list(csv.DictReader(open(p))))
    return ranks
def q(xs, f): xs = sorted(xs); return xs[int(f * (len(xs) - 1))]
print("| seed | spec | wall (s) | step = max over ranks of compute+wait, median (ms) | compute, median over ranks and steps (ms) | wait in step() (ms) | library call (ms) | tuner share: calls with statistics, median / max (ms) | sum of tuner time, slowest rank (s) |")
print("|---|---|---|---|---|---|---|---|---|")
for seed in (1, 2, 3):
    for spec in ("none", "auto"):
        tag = "loopback_cnn_s%d_%s" % (seed, spec)
        ranks = load(tag)
        wall = float(list(csv.DictReader(open("%s/curves/%s.csv" % (here, tag))))[-1]["wall_s"])
        n = len(ranks[0])
        step = [max(float(r[i]["compute_s"]) + float(r[i]["wait_s"]) for r in ranks) for i in range(n)]
        comp = [float(row["compute_s"]) for r in ranks for row in r]
        wait = [float(row["wait_s"]) for r in ranks for row in r]
        call = [float(row["call_total_s"]) for r in ranks for row in r]
        tune = [float(row["call_tune_s"]) for r in ranks for row in r]
        stats = [t for t in tune if t > 1e-3]
        tsum = max(sum(float(row["call_tune_s"]) for row in r) for r in ranks)
        sc = "%d calls: %.2f / %.2f" % (len(stats) // len(ranks), st.median(stats) * 1e3, max(stats) * 1e3) if stats else "—"
        print("| %d | %s | %.2f | %.1f (%.1f–%.1f) | %.1f | %.1f | %.1f | %s | %.3f |" % (
            seed, spec, wall, st.median(step) * 1e3, q(step, .1) * 1e3, q(step, .9) * 1e3, st.median(comp) * 1e3,
            st.median(wait) * 1e3, st.median(call) * 1e3, sc, tsum))

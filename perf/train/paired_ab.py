#!/usr/bin/env python3
"""A paired comparison of two matrix.sh output folders that ran the same
(model, link, seed, spec) under two settings, e.g. with and without error
feedback: per spec and seed, final accuracy and the step and training time
at which the target is reached (acceptance.py's definitions; the targets
from TARGETS' loopback `none` runs, same seed), then the median of the
paired differences (B - A) and in how many seeds B is below A. A seed's
difference is only as good as the two runs' own noise: the sign count over
seeds is what says whether a difference is systematic.

    perf/train/paired_ab.py A_DIR B_DIR [MODEL [LINK]]   (default cnn loopback)
    TARGETS=DIR (default perf/results/train14)
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acceptance import crossing, load  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    a_dir, b_dir = sys.argv[1], sys.argv[2]
    model = sys.argv[3] if len(sys.argv) > 3 else "cnn"
    link = sys.argv[4] if len(sys.argv) > 4 else "loopback"
    here = os.path.dirname(os.path.abspath(__file__))
    targets_dir = os.environ.get("TARGETS", os.path.join(here, "..", "results", "train14"))
    target = {int(r["seed"]): float(r["final_acc"]) - 0.005 for r in load(targets_dir)
              if r["model"] == model and r["link"] == "loopback" and r["spec"] == "none"}

    def index(folder):
        return {(r["spec"], int(r["seed"])): r for r in load(folder) if r["model"] == model and r["link"] == link}

    a, b = index(a_dir), index(b_dir)
    specs = sorted({s for s, _ in a} & {s for s, _ in b})
    print("A = %s, B = %s; %s on %s; target = exact's final accuracy (loopback, same seed) - 0.5 pp\n"
          % (a_dir, b_dir, model, link))
    print("| spec | seed | final acc A (%) | B (%) | B - A (pp) | steps to target A | B | time to target A (s) | B |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = []
    for spec in specs:
        seeds = sorted(sd for s, sd in a if s == spec and (spec, sd) in b)
        diffs, stepDiffs = [], []
        for sd in seeds:
            ra, rb = a[(spec, sd)], b[(spec, sd)]
            fa, fb = float(ra["final_acc"]) * 100, float(rb["final_acc"]) * 100
            t = target.get(sd)
            sa = crossing(ra["rows"], t, "step") if t is not None else None
            sb = crossing(rb["rows"], t, "step") if t is not None else None
            wa = crossing(ra["rows"], t, "wall_s") if t is not None else None
            wb = crossing(rb["rows"], t, "wall_s") if t is not None else None
            diffs.append(fb - fa)
            if sa is not None and sb is not None:
                stepDiffs.append(sb - sa)

            def f(x, fmt):
                return "—" if x is None else fmt % x

            print("| %s | %d | %.2f | %.2f | %+.2f | %s | %s | %s | %s |" % (
                spec, sd, fa, fb, fb - fa, f(sa, "%.0f"), f(sb, "%.0f"), f(wa, "%.1f"), f(wb, "%.1f")))
        if diffs:
            summary.append((spec, len(diffs), statistics.median(diffs), min(diffs), max(diffs),
                            sum(d < 0 for d in diffs), stepDiffs))
    print("\n| spec | seeds | median B - A (pp) | range (pp) | seeds where B < A | median extra steps to target (B - A), seeds with both |")
    print("|---|---|---|---|---|---|")
    for spec, n, med, lo, hi, below, steps in summary:
        st = "%+.0f (%d)" % (statistics.median(steps), len(steps)) if steps else "—"
        print("| %s | %d | %+.2f | %+.2f..%+.2f | %d of %d | %s |" % (spec, n, med, lo, hi, below, n, st))


if __name__ == "__main__":
    main()

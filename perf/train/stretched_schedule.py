#!/usr/bin/env python3
"""Does the gain model rank the fixed specs when the schedule does not end
training before the slower ones reach the target? (issue 14: the CNN's
100 Mbit/s rank correlation, where `q2` misses the matrix's 300-step target)

    python3 perf/train/stretched_schedule.py [OUT] [EXPERIMENT]

EXPERIMENT (default experiments/cnn_100mbit_600steps, under OUT) was run by
perf/train/matrix.sh with STEPS=600 and --stop-at-acc at the matrix's
target: the cosine schedule spans 600 steps, and each run ends where it
reaches exact's 300-step loopback accuracy minus 0.5 pp (the matrix's
target, from OUT's runs.csv). Time to target, predicted speed and the rank
correlation are acceptance.py's. `none` is not run there: exact training's
curve does not depend on the link (up to the order in which a plan sums),
so its time is projected from the step at which exact reaches the target on
the same 600-step schedule on loopback (experiments/cnn_q2_long) times the
seconds per step of the matrix's own `none` run on this link and seed.
"""
import csv
import os
import statistics
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import acceptance  # noqa: E402

INF = float("inf")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "perf/results/train14"
    exp = os.path.join(out, sys.argv[2] if len(sys.argv) > 2 else "experiments/cnn_100mbit_600steps")
    long_exact = os.path.join(out, "experiments/cnn_q2_long/curves")
    matrix = acceptance.load(out)
    runs = acceptance.load(exp)
    model, link = runs[0]["model"], runs[0]["link"]
    steps = int(runs[0]["steps_planned"])

    def matrix_run(spec, seed, lk):
        return next((r for r in matrix if (r["model"], r["link"], r["spec"], int(r["seed"])) ==
                     (model, lk, spec, seed)), None)

    times = defaultdict(dict)  # spec -> seed -> seconds (INF: not reached)
    projected = set()
    for r in runs:
        seed = int(r["seed"])
        target = float(matrix_run("none", seed, "loopback")["final_acc"]) - 0.005
        t = acceptance.crossing(r["rows"], target, "wall_s")
        times[r["spec"]][seed] = INF if t is None else t
    for seed in sorted({int(r["seed"]) for r in runs}):
        path = os.path.join(long_exact, "loopback_%s_s%d_none_%dsteps.csv" % (model, seed, steps))
        here = matrix_run("none", seed, link)
        if not os.path.exists(path) or here is None:
            continue
        target = float(matrix_run("none", seed, "loopback")["final_acc"]) - 0.005
        at = acceptance.crossing(list(csv.DictReader(open(path))), target, "step")
        if at is not None:
            times["none"][seed] = at * float(here["wall_s"]) / int(here["steps_run"])
            projected.add("none")

    rates = defaultdict(list)
    for seed in sorted({int(r["seed"]) for r in runs if r["spec"] == "auto"}):
        p = os.path.join(exp, "tuner", "%s_%s_s%d.jsonl.gz" % (link, model, seed))
        if os.path.exists(p):
            for plan, v in acceptance.predicted_rates(p).items():
                rates[plan].extend(v)

    print("%s at %s, cosine over %d steps, each run stopped at the matrix's target\n" % (model, link, steps))
    print("| spec | plan | seeds reaching | median time to target (s) | spread (s) | predicted progress/s |")
    print("|---|---|---|---|---|---|")
    xs, ys, rows = [], [], []
    for spec, by_seed in times.items():
        ts = list(by_seed.values())
        med = statistics.median(ts)
        fin = [t for t in ts if t != INF]
        spread = "%.2f–%.2f" % (min(fin), max(fin)) if fin else "—"
        if spec == "none":
            plan = "ring"
        else:
            plan = acceptance.main_plan(next(r for r in runs if r["spec"] == spec))
        pred = statistics.median(rates[plan]) if plan in rates else None
        rows.append((med, "| %s | %s | %d/%d | %s | %s | %s |" % (
            "**auto**" if spec == "auto" else spec, plan, len(fin), len(ts),
            acceptance.fmt(med, spec in projected), spread, "—" if pred is None else "%.4g" % pred)))
        if spec != "auto" and pred is not None:
            xs.append(pred)
            ys.append(0.0 if med == INF else 1.0 / med)
    for _, line in sorted(rows):
        print(line)
    rho = acceptance.spearman(xs, ys) if len(xs) >= 3 else float("nan")
    print("\nSpearman, predicted against measured speed of the fixed specs: %.2f over %d specs" % (rho, len(xs)))


if __name__ == "__main__":
    main()

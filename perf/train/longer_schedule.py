#!/usr/bin/env python3
"""A spec's progress per step against exact's, from runs with the schedule
stretched (perf/results/train14/experiments/cnn_q2_long: the CNN, loopback,
`none` and `q2` with --steps 600): is a spec that misses the matrix's target
on a plateau, or only slower per step?

    python3 perf/train/longer_schedule.py [OUT] [EXPERIMENT] [SPEC] [STEPS]

Per seed: the matrix's target (exact's 300-step final accuracy minus 0.5 pp),
the step at which exact and SPEC reach it on the STEPS schedule, and the step
at which exact reaches SPEC's final accuracy on the same schedule (STEPS and
the matrix's own 300) over that schedule's length: SPEC's progress per step
as a share of exact's, measured on the curves (interpolated linearly).
"""
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import acceptance  # noqa: E402


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "perf/results/train14"
    exp = os.path.join(out, sys.argv[2] if len(sys.argv) > 2 else "experiments/cnn_q2_long")
    spec = sys.argv[3] if len(sys.argv) > 3 else "q2"
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 600
    runs = acceptance.load(out)

    def matrix_run(s, seed):
        return next(r for r in runs if (r["model"], r["link"], r["spec"], int(r["seed"])) == ("cnn", "loopback", s, seed))

    def curve(s, seed):
        p = os.path.join(exp, "curves", "loopback_cnn_s%d_%s_%dsteps.csv" % (seed, s, steps))
        return list(csv.DictReader(open(p))) if os.path.exists(p) else None

    print("| seed | target (%%) | exact@%d reaches it (step) | %s@%d reaches it (step) | %s@%d final (%%) "
          "| exact@%d reaches that (step) | share | %s@300 final (%%) | exact@300 reaches that (step) | share |"
          % (steps, spec, steps, spec, steps, steps, spec))
    print("|---|---|---|---|---|---|---|---|---|---|")
    for seed in range(1, 11):
        exact_long, spec_long = curve("none", seed), curve(spec, seed)
        if not exact_long or not spec_long:
            continue
        exact300, spec300 = matrix_run("none", seed), matrix_run(spec, seed)
        target = float(exact300["final_acc"]) - 0.005
        fmt = lambda v: "—" if v is None else "%.0f" % v  # noqa: E731
        spec_final = float(spec_long[-1]["test_acc"])
        at_long = acceptance.crossing(exact_long, spec_final, "step")
        spec300_final = float(spec300["final_acc"])
        at300 = acceptance.crossing(exact300["rows"], spec300_final, "step")
        print("| %d | %.2f | %s | %s | %.2f | %s | %s | %.2f | %s | %s |" % (
            seed, 100 * target, fmt(acceptance.crossing(exact_long, target, "step")),
            fmt(acceptance.crossing(spec_long, target, "step")), 100 * spec_final, fmt(at_long),
            "—" if at_long is None else "%.2f" % (at_long / steps), 100 * spec300_final, fmt(at300),
            "—" if at300 is None else "%.2f" % (at300 / 300)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Tables for perf/results/mpi_interposer.md from the records that
run_training.sh wrote (OUT/CLIENT/rep<i>_{mpi,auto,calibrate}.json and the
interposer's log lines beside them).

  perf/mpi_interposer/summarize.py [OUT] [CLIENT...]

Target accuracy = plain MPI's final accuracy (median over repeats) minus
0.5 pp. Time to target: training time (compute + allreduce, evaluation
excluded) at which the test accuracy first reaches the target, linearly
interpolated between evaluation points (every 10 steps).
"""
import glob
import json
import os
import re
import statistics
import sys

SUMMARY = re.compile(r":0 sqz INFO libsqz_mpi: (MPI_Allreduce: .*)$")


def time_to_target(curve, target):
    prev = curve[0]
    for point in curve:
        if point["acc"] >= target:
            if point is prev or point["acc"] == prev["acc"]:
                return point["seconds"]
            f = (target - prev["acc"]) / (point["acc"] - prev["acc"])
            return prev["seconds"] + f * (point["seconds"] - prev["seconds"])
        prev = point
    return None


def summary_line(log_path):
    if not os.path.exists(log_path):
        return ""
    with open(log_path) as f:
        for line in f:
            m = SUMMARY.search(line.strip())
            if m:
                return m.group(1)
    return ""


def fmt(x, digits=1):
    return "—" if x is None else f"{x:.{digits}f}"


def spread(values, digits=1, unit=""):
    """Median (min–max); a repeat that never reached the target (None) is
    named, not averaged away."""
    reached = [v for v in values if v is not None]
    missed = len(values) - len(reached)
    note = f"; {missed} of {len(values)} repeats never reached the target" if missed else ""
    if not reached:
        return "—" + note
    return (f"{fmt(statistics.median(reached), digits)}{unit} ({fmt(min(reached), digits)}–{fmt(max(reached), digits)})"
            f"{note}")


def client_section(out, client):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, client, "rep*_*.json"))):
        rep, method = re.match(r"rep(\d+)_([\w.]+)\.json", os.path.basename(path)).groups()
        with open(path) as f:
            runs.setdefault(int(rep), {})[method] = (json.load(f), path[:-5] + ".log")
    reps = sorted(r for r in runs if "mpi" in runs[r] and "auto" in runs[r])
    if not reps:
        return f"## {client}\n\nno complete repeat recorded\n"
    exact_final = statistics.median(runs[r]["mpi"][0]["final_acc"] for r in reps)
    target = exact_final - 0.005
    first = runs[reps[0]]["mpi"][0]
    lines = [f"## {client}", "",
             f"MLP 784-{first['hidden']}-{first['hidden']}-10 ({first['params']:,} parameters, "
             f"{first['params'] * 4 / 1e6:.2f} MB of float32 gradient per step), {first['nranks']} ranks x batch "
             f"{first['batch_per_rank']}, {first['steps']} steps, lr {first['lr']} cosine, momentum {first['momentum']}. "
             f"Plain MPI's final accuracy: **{exact_final * 100:.2f}%**; **target = {target * 100:.2f}%**.", "",
             "| repeat | method | time to target (s) | final acc (%) | training time (s) | median s/step | "
             "interposer summary (rank 0) |",
             "|---|---|---|---|---|---|---|"]
    methods = ["mpi", "auto"] + sorted({m for r in reps for m in runs[r]} - {"mpi", "auto", "calibrate"})
    ttt = {m: [] for m in methods}
    others = {m: {"ratios": [], "deltas": []} for m in methods[2:]}
    ratios, ratios_with_calibration, deltas, calibrations = [], [], [], []
    for r in reps:
        calibration = runs[r].get("calibrate", (None, None))[0]
        calibration_s = calibration["first_step_seconds"] if calibration else None
        if calibration_s is not None:
            calibrations.append(calibration_s)
        for method in methods:
            if method not in runs[r]:
                continue
            rec, log = runs[r][method]
            t = time_to_target(rec["curve"], target)
            ttt[method].append(t)
            if method in others:
                o = others[method]
                o["ratios"].append(ttt["mpi"][-1] / t if t is not None and ttt["mpi"][-1] is not None else None)
                o["deltas"].append((rec["final_acc"] - runs[r]["mpi"][0]["final_acc"]) * 100)
            name = "plain MPI" if method == "mpi" else f"interposer, {method}"
            lines.append(f"| {r} | {name} | {fmt(t)} | "
                         f"{rec['final_acc'] * 100:.2f} | {rec['train_seconds']:.1f} | {rec['median_step_seconds']:.3f} | "
                         f"{summary_line(log) or '(not preloaded)'} |")
        t_mpi, t_auto = ttt["mpi"][-1], ttt["auto"][-1]
        both = t_mpi is not None and t_auto is not None
        ratios.append(t_mpi / t_auto if both else None)
        if calibration_s is not None:
            ratios_with_calibration.append(t_mpi / (t_auto + calibration_s) if both else None)
        deltas.append((runs[r]["auto"][0]["final_acc"] - runs[r]["mpi"][0]["final_acc"]) * 100)
    lines += ["", "| | median (min–max) over repeats |", "|---|---|",
              f"| plain MPI time to target (s) | {spread(ttt['mpi'])} |",
              f"| interposer with auto, time to target (s) | {spread(ttt['auto'])} |",
              f"| speed-up (plain MPI / auto, per repeat) | **{spread(ratios, 2, 'x')}** |",
              f"| auto's one-time link calibration (s; first step of the untimed calibration run) | "
              f"{spread(calibrations)} |",
              f"| speed-up counting that calibration against auto | {spread(ratios_with_calibration, 2, 'x')} |",
              f"| auto final accuracy minus plain MPI final accuracy (pp) | **{spread(deltas, 2)}** |"]
    for method, o in others.items():
        lines += [f"| interposer with {method}, time to target (s) | {spread(ttt[method])} |",
                  f"| speed-up (plain MPI / {method}, per repeat) | {spread(o['ratios'], 2, 'x')} |",
                  f"| {method} final accuracy minus plain MPI final accuracy (pp) | {spread(o['deltas'], 2)} |"]
    lines.append("")
    return "\n".join(lines)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../results/mpi_interposer")
    clients = sys.argv[2:] or ["mpi4py", "horovod"]
    print("\n".join(client_section(out, c) for c in clients))


if __name__ == "__main__":
    main()

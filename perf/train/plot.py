#!/usr/bin/python3
"""Plots of issue 7's training matrix: one PNG per model, one column per link
profile, rows: training loss vs bytes sent per rank, training loss vs wall
time, test accuracy vs wall time. Reads DIR/<link>_<model>.csv (written by
sqz_train_bench), writes DIR/<model>.png.

    /usr/bin/python3 perf/train/plot.py perf/results/train
"""
import csv
import glob
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LINKS = ["loopback", "1gbit", "100mbit", "100mbit-40s", "10mbit"]
METHODS = ["none", "mpi", "bf16", "q8", "q4", "q2", "q1", "topk:0.1", "topk:0.01", "topk:0.001", "randk:0.01", "auto"]
STYLE = {
    "none": dict(color="black", lw=2.2),
    "mpi": dict(color="gray", lw=2.2, ls="--"),
    "auto": dict(color="red", lw=2.6),
}


def load(d):
    runs = {}  # (link, model) -> method -> rows
    for path in sorted(glob.glob(os.path.join(d, "*.csv"))):
        with open(path) as f:
            for r in csv.DictReader(f):
                runs.setdefault((r["link"], r["model"]), {}).setdefault(r["method"], []).append(r)
    return runs


def num(r, k):
    try:
        v = float(r[k])
    except (ValueError, KeyError):
        return math.nan
    return v


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "perf/results/train"
    runs = load(d)
    models = sorted({m for (_, m) in runs})
    cmap = plt.get_cmap("tab10")
    for model in models:
        links = [l for l in LINKS if (l, model) in runs] + sorted(
            l for (l, m) in runs if m == model and l not in LINKS)
        fig, axes = plt.subplots(3, len(links), figsize=(4.6 * len(links), 11), squeeze=False)
        for j, link in enumerate(links):
            methods = runs[(link, model)]
            order = [m for m in METHODS if m in methods] + sorted(m for m in methods if m not in METHODS)
            for i, meth in enumerate(order):
                rows = methods[meth]
                # The same colour for a method in every panel.
                k = METHODS.index(meth) if meth in METHODS else len(METHODS) + i
                style = STYLE.get(meth, dict(color=cmap(k % 10), lw=1.2))
                later = rows[1:]  # step 0 has no training loss and no bytes
                b = [num(r, "bytes_per_rank") / 1e6 for r in later]
                t = [num(r, "wall_s") for r in later]
                loss = [num(r, "train_loss") for r in later]
                acc_t = [num(r, "wall_s") for r in rows]
                acc = [100 * num(r, "test_acc") for r in rows]
                axes[0][j].plot(b, loss, label=meth, **style)
                axes[1][j].plot(t, loss, label=meth, **style)
                axes[2][j].plot(acc_t, acc, label=meth, **style)
            nr = next(iter(methods.values()))[0]["nranks"]
            axes[0][j].set_title(f"{model}, {link} ({nr} ranks)")
            axes[0][j].set_xlabel("MB sent per rank")
            axes[1][j].set_xlabel("wall time of training (s)")
            axes[2][j].set_xlabel("wall time of training (s)")
            for i in range(3):
                axes[i][j].grid(alpha=0.3)
            for i in (0, 1):
                axes[i][j].set_xscale("log")
                axes[i][j].set_ylim(0.3, 2.0)
                axes[i][j].set_ylabel("training loss (mean since last point)")
            axes[2][j].set_xscale("symlog", linthresh=0.1)
            axes[2][j].set_ylim(50, 90)
            axes[2][j].set_ylabel("test accuracy (%)")
        axes[0][0].legend(fontsize=8, ncol=2)
        fig.tight_layout()
        out = os.path.join(d, f"{model}.png")
        fig.savefig(out, dpi=80)
        plt.close(fig)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()

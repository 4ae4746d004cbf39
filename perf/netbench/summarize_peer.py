#!/usr/bin/env python3
"""Medians and ratios of perf/netbench/peer_matrix.sh's raw tables.

busbw is recomputed from the time column (the tables print it to 3
decimals, too coarse at 100 Mbit/s): size / time * 2(n-1)/n.

For each rate and size: out-of-place busbw of sqz (as configured, and with
SQZ_SPIN_POLLS=1), Gloo's ring and MPI_Allreduce as median [min-max] over the
repeats, and the ratios sqz/Gloo and sqz/MPI, each taken within a repeat
(runs adjacent in time) and given as median [min-max]. Files of --specs
runs (labels sqz-Z:SPEC, base-Z:SPEC) give per spec the time per call, the
speedup over -Z none of the same repeat, and the codec columns' medians.
  summarize_peer.py RAW.txt...
"""
import re
import statistics
import sys
from collections import defaultdict

HEADER = re.compile(r"^## rate (\S+) repeat (\d+) (\S+)")


def parse(paths):
    # data[rate][size][label][repeat] = busbw (GB/s); label "mpi" from sqz+mpi.
    data = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    codecs = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))  # [rate][size][label][repeat] = row
    wrong = []
    for path in paths:
        rate = rep = label = None
        factor = 1.5
        for line in open(path):
            m = re.search(r"nranks (\d+)", line)
            if line.startswith("# sqz") and m:
                n = int(m.group(1))
                factor = 2.0 * (n - 1) / n
            m = HEADER.match(line)
            if m:
                rate, rep, label = m.group(1), int(m.group(2)), m.group(3)
                continue
            f = line.split()
            if label is None or len(f) < 13 or not f[0].isdigit():
                continue
            size = int(f[0])
            if "-Z:" in label:
                lossy = len(f) >= 19
                codecs[rate][size][label][rep] = {
                    "time": float(f[5]), "plan": f[11] if lossy else "@ring",
                    "ratio": float(f[13]) if lossy else 1.0,
                    "enc": float(f[16]) if lossy else 0.0, "xfer": float(f[17]) if lossy else 0.0,
                    "dec": float(f[18]) if lossy else 0.0}
                if not lossy and (f[8] != "0" or f[12] != "0"):
                    wrong.append((path, rate, rep, label, size))
                continue
            if f[8] != "0" or f[12] != "0":
                wrong.append((path, rate, rep, label, size))
            base = label.split("+")[0]
            busbw = lambda us: size / (us * 1e-6) / 1e9 * factor
            data[rate][size][base][rep] = busbw(float(f[5]))
            if label == "sqz+mpi" and len(f) >= 16:
                data[rate][size]["mpi"][rep] = busbw(float(f[13]))
    return data, codecs, wrong


def spread(values):
    return f"{statistics.median(values):.4f} [{min(values):.4f}-{max(values):.4f}]"


def ratios(a, b):
    r = [a[k] / b[k] for k in a if k in b and b[k] > 0]
    return f"{statistics.median(r):.2f} [{min(r):.2f}-{max(r):.2f}]" if r else "n/a"


def size_name(n):
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def codec_tables(codecs):
    for rate, sizes in codecs.items():
        for size, labels in sorted(sizes.items()):
            dense = labels.get("sqz-Z:none", {})
            print(f"### {rate}, {size_name(size)} (time per call: median [min-max] over repeats; speedup = "
                  "dense time / spec time within each repeat)\n")
            print("| build | spec | plan | s/call | speedup vs sqz dense | wire ratio | encode ms | transfer ms "
                  "| decode ms |")
            print("|---|---|---|---|---|---|---|---|---|")
            for label, reps in labels.items():
                build, spec = label.split("-Z:", 1)
                times = [r["time"] / 1e6 for r in reps.values()]
                speed = [dense[k]["time"] / reps[k]["time"] for k in reps if k in dense]
                med = lambda key: statistics.median(r[key] for r in reps.values())
                print(f"| {'this branch' if build == 'sqz' else 'base'} | {spec} | {next(iter(reps.values()))['plan']} "
                      f"| {statistics.median(times):.4f} [{min(times):.4f}-{max(times):.4f}] "
                      f"| {statistics.median(speed):.1f}x [{min(speed):.1f}-{max(speed):.1f}] "
                      f"| {med('ratio'):.2f} | {med('enc'):.1f} | {med('xfer'):.1f} | {med('dec'):.1f} |")
            print()


def main(paths):
    data, codecs, wrong = parse(paths)
    codec_tables(codecs)
    for rate, sizes in data.items():
        reps = {k for s in sizes.values() for v in s.values() for k in v}
        print(f"### {rate} ({len(reps)} repeats; out-of-place busbw GB/s, median [min-max])\n")
        print("| size | sqz | sqz, SQZ_SPIN_POLLS=1 | Gloo ring | MPI_Allreduce | sqz/Gloo | sqz spin1/Gloo "
              "| sqz/MPI | sqz spin1/MPI |")
        print("|---|---|---|---|---|---|---|---|---|")
        for size in sorted(sizes):
            s = sizes[size]
            cells = [spread(list(s[k].values())) if s[k] else "n/a" for k in ("sqz", "sqz-spin1", "gloo", "mpi")]
            print(f"| {size_name(size)} | " + " | ".join(cells) + " | "
                  + " | ".join([ratios(s["sqz"], s["gloo"]), ratios(s["sqz-spin1"], s["gloo"]),
                                ratios(s["sqz"], s["mpi"]), ratios(s["sqz-spin1"], s["mpi"])]) + " |")
        print()
    print("#wrong: " + ("0 in every row" if not wrong else f"NONZERO in {wrong}"))


if __name__ == "__main__":
    main(sys.argv[1:])

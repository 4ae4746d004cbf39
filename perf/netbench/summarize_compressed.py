#!/usr/bin/env python3
"""Turns compressed_matrix.sh's raw tables (OUT_DIR/<rate>.txt) into one
markdown table per link: time per call, effective algbw (uncompressed bytes
/ time) and its ratio to the dense path of the same run, wire bytes, and
where the time goes (from sqzGetCallInfo)."""
import re
import sys
from pathlib import Path


def parse(path):
    rows, spec, mpi = [], None, None
    for line in Path(path).read_text().splitlines():
        m = re.match(r"## -Z (\S+)", line)
        if m:
            spec = m.group(1)
            continue
        f = line.split()
        if len(f) < 10 or not f[0].isdigit():
            continue
        t_oop = float(f[5]) / 1e6
        row = {"spec": spec, "bytes": int(f[0]), "time": t_oop, "algbw": float(f[6])}
        if spec == "none":
            row.update(plan="@ring", wire=None, ratio=1.0, meanrel=0.0, enc=None, xfer=None, dec=None)
            if len(f) >= 16:  # MPI columns
                mpi = float(f[-3]) / 1e6
        else:
            # ... in-place (3 cols), then plan wire ratio maxrel meanrel enc xfer dec
            tail = f[-8:]
            row.update(plan=tail[0], wire=int(tail[1]), ratio=float(tail[2]), meanrel=float(tail[4]),
                       enc=float(tail[5]), xfer=float(tail[6]), dec=float(tail[7]))
        rows.append(row)
    return rows, mpi


def main(out_dir):
    for path in sorted(Path(out_dir).glob("*.txt")):
        rows, mpi = parse(path)
        dense = next((r for r in rows if r["spec"] == "none"), None)
        print(f"\n### {path.stem}\n")
        if dense and mpi:
            print(f"Dense sqz ring {dense['time']:.3f} s per call; Open MPI MPI_Allreduce {mpi:.3f} s "
                  f"(same launch): sqz is {mpi / dense['time']:.2f}x faster.\n")
        print("| spec | plan that ran | s/call | effective algbw (GB/s) | vs dense | wire B/rank | ratio | "
              "encode ms | wire ms | decode ms | rel. error (1 call) |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            speed = dense["time"] / r["time"] if dense else float("nan")
            fmt = lambda v: "" if v is None else f"{v:,.0f}" if isinstance(v, int) else f"{v:.1f}"
            print(f"| {r['spec']} | {r['plan']} | {r['time']:.3f} | {r['bytes'] / r['time'] / 1e9:.4f} | "
                  f"{speed:.1f}x | {fmt(r['wire'])} | {r['ratio']:.2f} | {fmt(r['enc'])} | {fmt(r['xfer'])} | "
                  f"{fmt(r['dec'])} | {r['meanrel']:.2e} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "perf/results/compressed_testbed")

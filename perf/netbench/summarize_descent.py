#!/usr/bin/env python3
"""Markdown tables from descent_matrix.sh's outputs (DIR/<rate>.txt).

    summarize_descent.py DIR [RATE ...]   (default 10gbit 1gbit 100mbit 10mbit)

Prints: one row per spec with ms/call, mean gain, descent rate and the ratio
to auto's on each link; the plans auto ran; and the three goals of issue 10
computed from the same numbers (auto >= 0.9x the best fixed spec on every
link; every fixed spec < 0.5x auto on at least one link)."""
import re
import sys


def parse(path):
    rows, order = {}, []
    for line in open(path):
        m = re.match(r"^  (\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(.*)$", line)
        if m:
            spec = m.group(1)
            rows[spec] = dict(ms=float(m.group(2)), gain=float(m.group(3)), rate=float(m.group(4)),
                              plans=m.group(6).strip())
            order.append(spec)
    return rows, order


def main():
    d = sys.argv[1]
    rates = sys.argv[2:] or ["10gbit", "1gbit", "100mbit", "10mbit"]
    data = {r: parse(f"{d}/{r}.txt") for r in rates}
    order = data[rates[0]][1]
    print("| spec | " + " | ".join(f"{r}: ms/call, gain, descent/s (vs auto)" for r in rates) + " |")
    print("|---|" + "---|" * len(rates))
    for spec in order:
        cells = []
        for r in rates:
            rows = data[r][0]
            x, a = rows[spec], rows["auto"]
            cells.append(f"{x['ms']:.1f}, {x['gain']:.3f}, {x['rate']:.2f} ({x['rate'] / a['rate']:.2f})")
        print(f"| {spec} | " + " | ".join(cells) + " |")
    print()
    print("Plans auto ran (calls): " + "; ".join(f"{r}: {data[r][0]['auto']['plans']}" for r in rates))
    print()
    print("| link | best fixed spec | auto / best fixed |")
    print("|---|---|---|")
    ok1 = True
    for r in rates:
        rows = data[r][0]
        best = max((s for s in rows if s != "auto"), key=lambda s: rows[s]["rate"])
        ratio = rows["auto"]["rate"] / rows[best]["rate"]
        ok1 &= ratio >= 0.9
        print(f"| {r} | {best} | {ratio:.3f} |")
    print()
    print("| fixed spec | lowest ratio to auto (link) | below 0.5x somewhere |")
    print("|---|---|---|")
    ok2 = True
    for spec in order:
        if spec == "auto":
            continue
        worst = min(rates, key=lambda r: data[r][0][spec]["rate"] / data[r][0]["auto"]["rate"])
        v = data[worst][0][spec]["rate"] / data[worst][0]["auto"]["rate"]
        ok2 &= v < 0.5
        print(f"| {spec} | {v:.3f} ({worst}) | {'yes' if v < 0.5 else 'NO'} |")
    print()
    print(f"auto >= 0.9x best fixed on every link: {'met' if ok1 else 'NOT met'}; "
          f"every fixed spec < 0.5x auto somewhere: {'met' if ok2 else 'NOT met'}")


if __name__ == "__main__":
    main()

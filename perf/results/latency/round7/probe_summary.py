import sys, glob, re, statistics as st
# usage: probe_summary.py DIR: probe.sh's outputs; per algorithm, mode and size: time per call (the
# slowest rank, each launch), and per call summed over the 4 ranks: user and system CPU time, page faults,
# involuntary context switches (median over launches).
d = sys.argv[1]
pat = re.compile(r"rank (\d+) \w+: ([\d.]+) us/call, minflt/call ([\d.]+), majflt (\d+), nvcsw/call ([\d.]+), "
                 r"nivcsw/call ([\d.]+), utime ([\d.]+) stime ([\d.]+) us/call")
print("| size | algorithm | mode | time/call (us), each launch | user CPU/call, 4 ranks (us) | system CPU/call, 4 ranks (us) | minor faults/call, 4 ranks | invol. switches/call, 4 ranks |")
print("|---:|---|---|---|---:|---:|---:|---:|")
for mib in (2, 8):
    for algo in ("ring", "shm_rs"):
        for mode in ("oop", "ip"):
            runs = []
            for f in sorted(glob.glob(f"{d}/probe_{algo}_{mode}_{mib}m_*.txt")):
                rows = [pat.search(l) for l in open(f)]
                rows = [[float(x) for x in m.groups()] for m in rows if m]
                runs.append((max(r[1] for r in rows), sum(r[6] for r in rows), sum(r[7] for r in rows),
                             sum(r[2] for r in rows), sum(r[5] for r in rows)))
            med = lambda k: st.median(r[k] for r in runs)
            print(f"| {mib} MiB | {algo} | {mode} | {', '.join(f'{r[0]:.0f}' for r in runs)} | {med(1):.0f} | {med(2):.0f} | {med(3):.2f} | {med(4):.0f} |")

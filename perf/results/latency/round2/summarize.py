import sys, glob, statistics as st, re
# usage: summ.py DIR prefix tags...   files DIR/{prefix}_{tag}_{i}.txt
d, prefix = sys.argv[1], sys.argv[2]
tags = sys.argv[3:]
def load(f):
    rows = {}
    for line in open(f):
        if line.startswith('#') or not line.strip(): continue
        p = line.split()
        if len(p) < 16 or not p[0].isdigit(): continue
        rows[int(p[0])] = (float(p[5]), float(p[9]), float(p[13]))
    return rows
res = {}
for t in tags:
    runs = [load(f) for f in sorted(glob.glob(f"{d}/{prefix}_{t}_*.txt"))]
    res[t] = runs
sizes = sorted(res[tags[0]][0].keys())
def cell(v): return f"{st.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"
hdr = "| size (B) |"
for t in tags: hdr += f" {t} oop (us) | {t} ip (us) | MPI, {t} runs (us) | **{t} MPI/oop** | **{t} MPI/ip** |"
print(hdr)
print("|---:|" + "---:|" * (5 * len(tags)))
for s in sizes:
    line = f"| {s} |"
    for t in tags:
        oop = [r[s][0] for r in res[t]]; ip = [r[s][1] for r in res[t]]; mpi = [r[s][2] for r in res[t]]
        line += f" {cell(oop)} | {cell(ip)} | {cell(mpi)} | **{st.median(mpi)/st.median(oop):.2f}** | **{st.median(mpi)/st.median(ip):.2f}** |"
    print(line)

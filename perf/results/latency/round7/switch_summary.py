import sys, glob, statistics as st
# usage: switch_summary.py DIR: the switch_{shm_rs,ring}_{i}.txt of switch.sh (SQZ_COMPRESSION set, so the
# perf binary prints its lossy-format row: oop time p[5], ip time p[8], plan p[11], MPI time p[-3])
d = sys.argv[1]
def load(f):
    rows = {}
    for line in open(f):
        p = line.split()
        if line.startswith('#') or len(p) < 20 or not p[0].isdigit(): continue
        rows[int(p[0])] = (float(p[5]), float(p[8]), float(p[-3]), p[11])
    return rows
res = {a: [load(f) for f in sorted(glob.glob(f"{d}/switch_{a}_*.txt"))] for a in ("shm_rs", "ring")}
def cell(v): return f"{st.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"
print("| size (B) | shm_rs oop (us) | ring oop (us) | **ring/shm_rs oop** | shm_rs ip (us) | ring ip (us) | **ring/shm_rs ip** | MPI, all 6 launches (us) | plan run as @shm_rs |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for s in sorted(res["shm_rs"][0]):
    g = lambda a, k: [r[s][k] for r in res[a]]
    print(f"| {s} | {cell(g('shm_rs',0))} | {cell(g('ring',0))} | **{st.median(g('ring',0))/st.median(g('shm_rs',0)):.2f}** | "
          f"{cell(g('shm_rs',1))} | {cell(g('ring',1))} | **{st.median(g('ring',1))/st.median(g('shm_rs',1)):.2f}** | "
          f"{cell(g('shm_rs',2)+g('ring',2))} | {res['shm_rs'][0][s][3]} |")

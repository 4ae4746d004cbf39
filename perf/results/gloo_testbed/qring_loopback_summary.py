#!/usr/bin/env python3
# Medians (min-max) over launches of qring_loopback_ab.sh raw files, branch/main per size:
#   qring_loopback_summary.py DIR "qringq4 q4"
import glob,re,statistics,sys,os
d=sys.argv[1]
def load(f):
    rows={}
    for l in open(f):
        if l.startswith('#') or not l.strip(): continue
        p=l.split()
        rows[int(p[0])]=(float(p[5]),float(p[8]),p[11])
    return rows
for spec in sys.argv[2].split():
    print(f"## -Z {spec}")
    print("| size (B) | plan | main out-of-place (us) | branch out-of-place (us) | branch/main | main in-place (us) | branch in-place (us) | branch/main |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    B=[load(f) for f in sorted(glob.glob(f"{d}/base_{spec}_*.txt"))]
    N=[load(f) for f in sorted(glob.glob(f"{d}/new_{spec}_*.txt"))]
    for s in sorted(B[0]):
        def m(R,i): v=[r[s][i] for r in R]; return statistics.median(v),min(v),max(v)
        bo,no,bi,ni=m(B,0),m(N,0),m(B,1),m(N,1)
        plans=set(r[s][2] for r in B+N)
        f=lambda t:f"{t[0]:.1f} ({t[1]:.1f}-{t[2]:.1f})"
        print(f"| {s} | {'/'.join(sorted(plans))} | {f(bo)} | {f(no)} | {no[0]/bo[0]:.2f} | {f(bi)} | {f(ni)} | {ni[0]/bi[0]:.2f} |")

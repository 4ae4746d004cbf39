# Round 8's probe table: per library and mode, time per 8 B call over every block of every launch
# (median, min-max; the slowest rank's per block), MPI_Allreduce in the same launches, their ratio, and
# per call summed over the 4 ranks (medians over blocks): involuntary context switches (sched_yield
# counts there), user and system CPU time.   usage: probe_summary.py DIR
import re, sys, glob, statistics as st, collections
d = sys.argv[1]
res = collections.defaultdict(list)
pat = re.compile(r'rank (\d) block (\d) (\w+): ([\d.]+) us/call nvcsw ([\d.]+) nivcsw ([\d.]+) moves ([\d.]+) '
                 r'utime ([\d.]+) stime ([\d.]+)')
for f in sorted(glob.glob(d + '/probe_*_*_*.txt')):
    tag, mode, launch = f.split('/')[-1][:-4].split('_')[1:]
    blocks = collections.defaultdict(list)
    for line in open(f):
        m = pat.match(line)
        if m: blocks[(int(m[2]), m[3].replace('_ip', ''))].append([float(m[j]) for j in range(4, 10)])
    for (b, kind), ranks in blocks.items():
        res[(tag, mode, kind)].append((max(r[0] for r in ranks), [sum(r[j] for r in ranks) for j in (2, 4, 5)]))
def cell(v): return f"{st.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
print("| library | mode | sqz (us/call) | MPI, same launches (us/call) | **MPI/sqz** | sqz switches/call | MPI switches/call"
      " | sqz user / system CPU per call (us) | MPI user / system CPU per call (us) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for tag in ('main', 'nospin', 'new'):
    for mode in ('oop', 'ip'):
        s, m = res.get((tag, mode, 'sqz')), res.get((tag, mode, 'mpi'))
        if not s: continue
        ts, tm = [x[0] for x in s], [x[0] for x in m]
        med = lambda rows, j: st.median(x[1][j] for x in rows)
        print(f"| {tag} | {mode} | {cell(ts)} | {cell(tm)} | **{st.median(tm) / st.median(ts):.2f}** | {med(s, 0):.2f} |"
              f" {med(m, 0):.2f} | {med(s, 1):.2f} / {med(s, 2):.2f} | {med(m, 1):.2f} / {med(m, 2):.2f} |")

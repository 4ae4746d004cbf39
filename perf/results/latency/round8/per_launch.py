# Per launch, sizes 8 and 32 B: sqz out of place / in place / MPI (us) and MPI/sqz ratios.
# usage: per_launch.py DIR tags...   (files DIR/small_{tag}_{i}.txt, as loopback.sh writes them)
import sys, glob
d, tags = sys.argv[1], sys.argv[2:]
for t in tags:
    for f in sorted(glob.glob(f"{d}/small_{t}_*.txt")):
        for line in open(f):
            p = line.split()
            if len(p) >= 16 and p[0].isdigit() and int(p[0]) in (8, 32):
                oop, ip, mpi = float(p[5]), float(p[9]), float(p[13])
                print(f"{t} launch {f[-5]} {p[0]:>3} B: oop {oop:.1f} ip {ip:.1f} MPI {mpi:.1f} us;"
                      f" MPI/oop {mpi / oop:.2f} MPI/ip {mpi / ip:.2f}")

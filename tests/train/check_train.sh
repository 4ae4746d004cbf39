#!/usr/bin/env bash
# CI check of perf/train/sqz_train_bench (2 ranks, loopback, a few steps on a
# subset): the loss goes down; exact sqz (none) and MPI_Allreduce give the
# same curve (2 ranks: a + b is commutative, and sqzAvg divides once as the
# MPI path does, so to float tolerance, in practice bit for bit); the same
# seed gives the same exact curve bit for bit (parameter hash); compressed
# and auto runs train too; --capture writes each rank's gradient at the asked
# steps, and sqz_descent_bench -g replays them. Exit 77 (skipped) without the
# dataset.
#   check_train.sh PATH/TO/sqz_train_bench PATH/TO/sqz_descent_bench
set -euo pipefail
bin=${1:?usage: check_train.sh sqz_train_bench sqz_descent_bench}
descent=${2:?usage: check_train.sh sqz_train_bench sqz_descent_bench}
data=${SQZ_TRAIN_DATA:-/usr/share/datasets/fashion-mnist}
if [ ! -f "$data/train-images-idx3-ubyte.gz" ]; then
  echo "SKIP: no Fashion-MNIST at $data (Debian package dataset-fashion-mnist)"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { mpirun --allow-run-as-root --oversubscribe -np 2 "$bin" --data "$data" --train-n 4096 --test-n 1000 "$@"; }
export SQZ_PROFILE=$tmp/profile.json SQZ_CALIBRATE=quick
run --model logreg --methods none,mpi,q8,topk:0.1 --steps 40 --eval-every 10 --out "$tmp/logreg_a.csv"
run --model logreg --methods none --steps 40 --eval-every 10 --out "$tmp/logreg_b.csv"
run --model mlp --hidden 64 --methods none,mpi,q4,auto --steps 30 --eval-every 10 --out "$tmp/mlp.csv"
python3 - "$tmp" <<'PY'
import csv, math, sys
d = sys.argv[1]
def load(name):
    rows = {}
    for r in csv.DictReader(open(f"{d}/{name}")):
        rows.setdefault(r["method"], []).append(r)
    return rows
fails = []
def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok: fails.append(msg)
a, b, m = load("logreg_a.csv"), load("logreg_b.csv"), load("mlp.csv")
for tag, runs, methods in (("logreg", a, ["none", "mpi", "q8", "topk:0.1"]), ("mlp", m, ["none", "mpi", "q4", "auto"])):
    for meth in methods:
        rows = runs.get(meth, [])
        check(len(rows) >= 3, f"{tag} {meth}: {len(rows)} evaluation points")
        if len(rows) < 3: continue
        l0, l1 = float(rows[0]["test_loss"]), float(rows[-1]["test_loss"])
        t1, t2 = float(rows[1]["train_loss"]), float(rows[-1]["train_loss"])
        acc = float(rows[-1]["test_acc"])
        check(l1 < 0.8 * l0 and t2 < t1, f"{tag} {meth}: test loss {l0:.4f} -> {l1:.4f}, train loss {t1:.4f} -> {t2:.4f}")
        check(acc > 0.6, f"{tag} {meth}: final test accuracy {acc:.4f} > 0.6")
        byts = [float(r["bytes_per_rank"]) for r in rows]
        check(byts[-1] > 0 and all(x <= y for x, y in zip(byts, byts[1:])), f"{tag} {meth}: bytes grow ({byts[-1]:.0f})")
    n, p = runs["none"], runs["mpi"]
    same = len(n) == len(p) and all(abs(float(x["test_loss"]) - float(y["test_loss"])) <= 1e-5 * abs(float(y["test_loss"]))
                                   and x["test_acc"] == y["test_acc"] for x, y in zip(n, p))
    check(same, f"{tag}: none and mpi give the same curve")
    for meth in methods[2:]:
        ratio = float(n[-1]["bytes_per_rank"]) / float(runs[meth][-1]["bytes_per_rank"])
        check(ratio > 1.5 or meth == "auto", f"{tag} {meth}: sends {ratio:.1f}x fewer bytes than none")
ha = [r["param_hash"] for r in a["none"]]
hb = [r["param_hash"] for r in b["none"]]
check(ha == hb, f"logreg none: same seed, same parameter hashes at every point ({ha[-1]})")
check(all("=" in r["plans"] for r in m["auto"][1:]), "mlp auto: plans recorded after step 0")
sys.exit(1 if fails else 0)
PY

# Gradient capture for the descent matrix (issue 10): 2 ranks x 3 steps of
# raw float32, 784*64+64 + 64*64+64 + 64*10+10 = 55050 elements each, and
# the descent benchmark replays them.
run --model mlp --hidden 64 --methods none --steps 5 --eval-every 5 --capture "$tmp/g" --capture-steps 1,3,5 \
  --out "$tmp/capture.csv"
files=$(find "$tmp/g" -name 'rank*_step*.f32' | wc -l)
[ "$files" = 6 ] || { echo "FAIL capture: $files gradient files, expected 6"; exit 1; }
grep -qx 'elements 55050' "$tmp/g/index.txt" || { echo "FAIL capture: index.txt does not say 55050 elements"; exit 1; }
for f in "$tmp"/g/rank*_step*.f32; do
  [ "$(stat -c %s "$f")" = $((55050 * 4)) ] || { echo "FAIL capture: $f is $(stat -c %s "$f") bytes"; exit 1; }
done
echo "ok   capture: 6 files of 55050 float32"
mpirun --allow-run-as-root --oversubscribe -np 2 "$descent" -g "$tmp/g" -t 4 -s none,q4 >"$tmp/descent.txt"
# Rows: spec, median ms, mean gain, descent rate, vs auto, plans that ran (count).
# none: exact every call (gain 1); q4: compressed every call (a q4 plan 4
# times) with a gain strictly between 0 and 1 (1/(1 + omega) of real
# gradients), and both timed. The same check must fail the real rows
# broken one way at a time.
python3 - "$tmp/descent.txt" <<'PY' || { cat "$tmp/descent.txt"; exit 1; }
import copy, re, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    if line.startswith("  ") and len(f) >= 6:
        rows[f[0]] = [float(f[1]), float(f[2]), " ".join(f[5:])]
def check(rows):
    fails = []
    for spec in ("none", "q4"):
        if spec not in rows:
            fails.append(f"no {spec} row")
            continue
        ms, gain, plans = rows[spec]
        if not ms > 0:
            fails.append(f"{spec}: median {ms} ms")
        if spec == "none" and not (gain == 1.0 and re.fullmatch(r"@(ring|direct|shm|shm_rs)\(4\)", plans)):
            fails.append(f"none: gain {gain}, plans {plans} (exact, 4 calls)")
        if spec == "q4" and not (0.0 < gain < 1.0 and re.fullmatch(r"@\w+:q4\(4\)", plans)):
            fails.append(f"q4: gain {gain}, plans {plans} (a q4 plan on all 4 calls, 0 < gain < 1)")
    return fails
fails = check(rows)
for f in fails:
    print("FAIL descent replay: " + f)
def broken(spec, field, value):
    r = copy.deepcopy(rows)
    if field is None:
        del r[spec]
    else:
        r[spec][field] = value
    return r
if not fails:
    for what, r in (("q4 sent exactly", broken("q4", 2, "@ring(4)")), ("q4 compressed 3 of 4 calls",
                    broken("q4", 2, rows["q4"][2].replace("(4)", "(3)") + " @ring(1)")),
                    ("q4 gain 1", broken("q4", 1, 1.0)), ("q4 gain 0", broken("q4", 1, 0.0)),
                    ("none lossy", broken("none", 1, 0.9)), ("none untimed", broken("none", 0, 0.0)),
                    ("no q4 row", broken("q4", None, None))):
        if not check(r):
            fails.append(f"the check passed rows broken so: {what}")
            print("FAIL descent replay: " + fails[-1])
sys.exit(1 if fails else 0)
PY
echo "ok   descent benchmark replays the captured gradients (none exact, q4 compressed every call; 7 broken variants fail)"

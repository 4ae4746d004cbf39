#!/usr/bin/env python3
"""libsqz_mpi.so under a client nobody here wrote: Debian's mpi4py.

`mpi4py_check.py run --np N --lib libsqz_mpi.so` starts the same rank
program (`rank` below) three times under mpirun and compares:

  plain   no interposer: every case's output digest, per rank;
  unset   LD_PRELOAD, SQZ_COMPRESSION unset: every digest equals plain's
          (bit for bit) and the MPI_Finalize summary says nothing was served;
  q8      LD_PRELOAD, SQZ_COMPRESSION=q8: forwarded cases equal plain bit
          for bit; served float cases differ from plain (they really went
          through the codec) and lie within q8's bound, a bound that a
          halved, zeroed or chunk-dropped output fails (checked on every
          served case); served doubles (sqz sums them exactly) lie within
          fp64 rounding; the summary's served and forwarded counts (and
          reasons) equal what the cases expect, and every freed
          communicator's sqz side was destroyed.

Cases: float32 and float64 sums (eligible, with and without MPI.IN_PLACE,
repeated on one buffer), on COMM_WORLD, a duplicate, split communicators
(one with reversed rank order) and Free; and ineligible ones, which must be
forwarded untouched: every integer width, bool, complex, long double,
MAX/MIN/PROD, a user-defined op, float16 as a 2-byte type with a user op
(Open MPI 4.1 has no MPI float16), below SQZ_MIN_BYTES, count 0,
MPI_COMM_SELF, an inter-communicator (4+ ranks), and MPI_Iallreduce.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

BIG = 100003      # float32 elements of an eligible call (400 KB > SQZ_MIN_BYTES = 64 KiB)
SMALL = 1000      # float32 elements below SQZ_MIN_BYTES
EF_CALLS = 5      # calls on one buffer (the library's implicit error-feedback state carries between them)


# ---------------------------------------------------------------- rank side

def rank_main(out_dir, mode):
    import numpy as np
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    records = []
    expect = {"served": 0, "forwarded": {}, "iallreduce": 0, "freed_served": 0}

    def inputs(case_id, dtype, count, comm_ranks):
        """Every rank of the communicator can rebuild every rank's input."""
        out = []
        for r in comm_ranks:
            rng = np.random.default_rng([case_id, r])
            if np.dtype(dtype).kind == "f" or np.dtype(dtype).kind == "c":
                x = rng.standard_normal(count) + (1j * rng.standard_normal(count) if np.dtype(dtype).kind == "c" else 0)
            elif np.dtype(dtype).kind == "b":
                x = rng.integers(0, 2, count)
            else:
                info = np.iinfo(dtype)
                x = rng.integers(max(info.min, -100), min(info.max, 100), count, endpoint=True)
            out.append(np.asarray(x).astype(dtype))
        return out

    def digest(out):
        raw = np.ascontiguousarray(out)
        if raw.dtype == np.longdouble and raw.dtype.itemsize > 10:
            # x87 extended precision: 10 value bytes, the rest padding that
            # nobody writes.
            raw = raw.view(np.uint8).reshape(len(raw), raw.dtype.itemsize)[:, :10]
        return hashlib.sha256(raw.tobytes()).hexdigest()

    def note(route):
        if route == "served":
            expect["served"] += 1
        else:
            expect["forwarded"][route] = expect["forwarded"].get(route, 0) + 1

    def bound_q8(contribs, n):
        # The codec's bound for one call (tests/test_compressed.cc
        # denseCodecBound): stochastic rounding moves a value by less than
        # one step of its block, step <= 2 max|x| / 255; each rank's values
        # are encoded once and each partial sum (|.| <= n max|x|) at most once
        # per hop or owner. The residual a previous call on the same buffer
        # left behind is at most one more step per encoding: covered by n^2.
        max_abs = max(float(np.abs(c).max()) for c in contribs)
        return (n + n * n) * 2.0 * max_abs / 255.0 + 1e-4

    def bound_fp64(contribs, n):
        return n * 2.0 ** -52 * np.sum([np.abs(c) for c in contribs], axis=0) + 1e-300

    def within(out, exact, bound):
        return bool(np.all(np.abs(out.astype(np.float64) - exact) <= bound))

    def check_served(name, out, contribs, dtype, n):
        exact = np.sum([c.astype(np.float64) for c in contribs], axis=0)
        bound = bound_q8(contribs, n) if dtype == np.float32 else bound_fp64(contribs, n)
        ok = within(out, exact, bound)
        # A check that a broken output would pass shows nothing: it must
        # reject the result halved, zeroed, and with one rank's contribution
        # to the first chunk dropped.
        dropped = out.astype(np.float64).copy()
        chunk = len(out) // n
        dropped[:chunk] -= contribs[-1][:chunk]
        rejects = {"halved": not within(out / 2, exact, bound), "zeroed": not within(np.zeros_like(out), exact, bound),
                   "dropped_chunk": not within(dropped, exact, bound)}
        err = float(np.abs(out.astype(np.float64) - exact).max())
        return {"within_bound": ok, "max_err": err, "bound_max": float(np.max(bound)), "rejects": rejects}

    def record(name, comm, out, route_q8, served_check=None, allreduce=True):
        route = route_q8 if mode == "q8" else "disabled"
        if mode == "plain":
            route = "plain"
        if allreduce:
            note(route)
        rec = {"name": name, "route": route, "digest": digest(out)}
        if comm is not None and comm != MPI.COMM_NULL and not comm.Is_inter():
            rec["same_on_all_ranks"] = len(set(comm.allgather(rec["digest"]))) == 1
        if mode == "q8" and route == "served" and served_check is not None:
            rec["served_check"] = served_check()
        records.append(rec)

    case = [0]

    def next_id():
        case[0] += 1
        return case[0]

    def allreduce(name, comm, dtype, count, op=MPI.SUM, in_place=False, route_q8="served", mpi_type=None):
        cid = next_id()
        crank, csize = comm.Get_rank(), comm.Get_size()
        contribs = inputs(cid, dtype, count, range(csize))
        mine = contribs[crank].copy()
        if in_place:
            buf = mine
            comm.Allreduce(MPI.IN_PLACE, [buf, mpi_type] if mpi_type else buf, op=op)
            out = buf
        else:
            out = np.empty_like(mine)
            comm.Allreduce([mine, mpi_type] if mpi_type else mine, [out, mpi_type] if mpi_type else out, op=op)
        record(name, comm, out, route_q8,
               lambda: check_served(name, out, contribs, np.dtype(dtype).type, csize))
        return out

    f32, f64 = np.float32, np.float64
    # --- eligible: served under q8
    allreduce("world_f32", world, f32, BIG)
    allreduce("world_f32_in_place", world, f32, BIG + 7, in_place=True)
    allreduce("world_f64", world, f64, BIG // 2)
    allreduce("world_f64_in_place", world, f64, BIG // 2 + 3, in_place=True)
    # Repeated calls on one pair of buffers: the library's implicit
    # error-feedback state (keyed by the receive buffer) carries a residual
    # from call to call; every call's output must stay within the bound.
    cid = next_id()
    contribs = inputs(cid, f32, BIG, range(size))
    send, recv = contribs[rank].copy(), np.empty(BIG, dtype=f32)
    for t in range(EF_CALLS):
        world.Allreduce(send, recv, op=MPI.SUM)
        record(f"world_f32_repeat{t}", world, recv.copy(), "served",
               lambda: check_served("repeat", recv, contribs, f32, size))

    dup = world.Dup()
    allreduce("dup_f32", dup, f32, BIG)
    allreduce("dup_f64_in_place", dup, f64, BIG // 2, in_place=True)
    dup.Free()
    expect["freed_served"] += 1
    dup2 = world.Dup()  # a new communicator, maybe at the freed one's address
    allreduce("dup2_f32", dup2, f32, BIG)
    dup2.Free()
    expect["freed_served"] += 1

    halves = world.Split(color=rank // 2, key=rank)  # size 2 each (np=2: one communicator)
    allreduce("split_halves_f32", halves, f32, BIG)
    reversed_ = world.Split(color=0, key=size - rank)  # every rank, in reverse order
    allreduce("split_reversed_f32", reversed_, f32, BIG, in_place=True)
    halves.Free()
    reversed_.Free()
    expect["freed_served"] += 2

    # --- ineligible: forwarded untouched, also under q8
    for dt in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64):
        allreduce(f"world_{np.dtype(dt).name}", world, dt, BIG, route_q8="type")
    allreduce("world_complex64", world, np.complex64, BIG // 2, route_q8="type")
    allreduce("world_complex128", world, np.complex128, BIG // 4, route_q8="type")
    allreduce("world_longdouble", world, np.longdouble, BIG // 4, route_q8="type")
    allreduce("world_bool_lor", world, np.bool_, BIG, op=MPI.LOR, route_q8="type")
    for op_name in ("MAX", "MIN", "PROD"):
        allreduce(f"world_f32_{op_name}", world, f32, BIG, op=getattr(MPI, op_name), route_q8="op")
    allreduce("world_f64_MAX_in_place", world, f64, BIG, op=MPI.MAX, in_place=True, route_q8="op")

    def py_sum(a, b, datatype):
        x = np.frombuffer(a, dtype=np.float32)
        y = np.frombuffer(b, dtype=np.float32)
        y += x

    user_op = MPI.Op.Create(py_sum, commute=True)
    allreduce("world_f32_user_op", world, f32, BIG // 10, op=user_op, route_q8="op")
    user_op.Free()

    # float16: Open MPI 4.1 has no MPI float16 type (mpi4py finds none for
    # numpy's 'e'); programs send it as 2-byte elements with their own op.
    half_type = MPI.BYTE.Create_contiguous(2).Commit()

    def half_sum(a, b, datatype):
        x = np.frombuffer(a, dtype=np.float16)
        y = np.frombuffer(b, dtype=np.float16)
        y += x

    half_op = MPI.Op.Create(half_sum, commute=True)
    allreduce("world_f16_as_bytes_user_op", world, np.float16, BIG // 10, op=half_op, route_q8="type",
              mpi_type=half_type)
    half_op.Free()
    half_type.Free()

    allreduce("world_f32_small", world, f32, SMALL, route_q8="small")
    allreduce("world_f32_count0", world, f32, 0, route_q8="small")
    allreduce("self_f32", MPI.COMM_SELF, f32, BIG, route_q8="single-rank")

    if size >= 4:
        # Two groups (even, odd world ranks) joined by an inter-communicator:
        # each side receives the other side's sum.
        local = world.Split(color=rank % 2, key=rank)
        inter = local.Create_intercomm(0, world, 1 - rank % 2, tag=7)
        cid = next_id()
        mine = inputs(cid, f32, BIG, [rank])[0]
        out = np.empty_like(mine)
        inter.Allreduce(mine, out, op=MPI.SUM)
        record("intercomm_f32", None, out, "intercomm")
        inter.Free()
        local.Free()

    # MPI_Iallreduce: forwarded (counted apart), completed through Wait and Test.
    cid = next_id()
    mine = inputs(cid, f32, BIG, [rank])[0]
    out = np.empty_like(mine)
    world.Iallreduce(mine, out, op=MPI.SUM).Wait()
    record("world_f32_iallreduce_wait", world, out, "nonblocking", allreduce=False)
    req = world.Iallreduce(MPI.IN_PLACE, out, op=MPI.SUM)
    while not req.Test():
        pass
    record("world_f32_iallreduce_test_in_place", world, out, "nonblocking", allreduce=False)
    expect["iallreduce"] += 2

    with open(os.path.join(out_dir, f"{mode}.rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "size": size, "records": records, "expect": expect}, f)


# ---------------------------------------------------------------- driver

SUMMARY = re.compile(r":(\d+) sqz INFO libsqz_mpi: MPI_Allreduce: (\d+) served by sqz .*?, (\d+) forwarded"
                     r"(?: \(([^)]*)\))?; MPI_Iallreduce: (\d+) forwarded")
FREED = re.compile(r":(\d+) sqz INFO libsqz_mpi: destroyed an sqz communicator at MPI_Comm_free")


def launch(np_, mode, lib, out_dir):
    env = dict(os.environ)
    env.pop("SQZ_COMPRESSION", None)
    env.pop("LD_PRELOAD", None)
    args = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(np_), "-x", "OMP_NUM_THREADS=1"]
    if mode != "plain":
        args += ["-x", f"LD_PRELOAD={lib}", "-x", "SQZ_DEBUG=INFO", "-x", "SQZ_TIMEOUT=60"]
    if mode == "q8":
        args += ["-x", "SQZ_COMPRESSION=q8"]
    args += [sys.executable, os.path.abspath(__file__), "rank", "--out", out_dir, "--mode", mode]
    p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    if p.returncode != 0:
        print(p.stdout)
        raise SystemExit(f"{mode}: mpirun exited {p.returncode}")
    runs = []
    for r in range(np_):
        with open(os.path.join(out_dir, f"{mode}.rank{r}.json")) as f:
            runs.append(json.load(f))
    return runs, p.stdout


def main_run(np_, lib):
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory() as out_dir:
        plain, _ = launch(np_, "plain", lib, out_dir)
        unset, unset_log = launch(np_, "unset", lib, out_dir)
        q8, q8_log = launch(np_, "q8", lib, out_dir)
    check("libsqz_mpi:" in unset_log, "unset: the interposer left no trace (was it preloaded?)")
    served_cases = 0
    for r in range(np_):
        base = {x["name"]: x for x in plain[r]["records"]}
        for x in unset[r]["records"]:
            check(x["digest"] == base[x["name"]]["digest"], f"unset rank {r} {x['name']}: differs from plain MPI")
        for x in q8[r]["records"]:
            same = x["digest"] == base[x["name"]]["digest"]
            if x["route"] == "served":
                served_cases += r == 0
                sc = x.get("served_check", {})
                check(sc.get("within_bound"), f"q8 rank {r} {x['name']}: outside the bound {sc}")
                check(all(sc.get("rejects", {}).values()), f"q8 rank {r} {x['name']}: bound accepts a broken output {sc}")
                check(x.get("same_on_all_ranks"), f"q8 rank {r} {x['name']}: ranks disagree")
                if "f32" in x["name"]:
                    check(not same, f"q8 rank {r} {x['name']}: bit-identical to plain MPI, so not served by the codec")
            else:
                check(same, f"q8 rank {r} {x['name']} ({x['route']}): forwarded call changed its result")
        for mode, log in (("unset", unset_log), ("q8", q8_log)):
            runs = unset if mode == "unset" else q8
            exp = runs[r]["expect"]
            lines = [m for m in SUMMARY.finditer(log) if int(m.group(1)) == r]
            check(len(lines) == 1, f"{mode} rank {r}: {len(lines)} summary lines")
            if not lines:
                continue
            m = lines[0]
            got_fwd = {}
            for part in filter(None, (m.group(4) or "").split(", ")):
                k, v = part.rsplit(" ", 1)
                got_fwd[k] = int(v)
            check(int(m.group(2)) == exp["served"], f"{mode} rank {r}: served {m.group(2)}, expected {exp['served']}")
            check(got_fwd == exp["forwarded"], f"{mode} rank {r}: forwarded {got_fwd}, expected {exp['forwarded']}")
            check(int(m.group(5)) == exp["iallreduce"], f"{mode} rank {r}: MPI_Iallreduce {m.group(5)}")
            freed = sum(1 for f in FREED.finditer(log) if int(f.group(1)) == r)
            want = exp["freed_served"] if mode == "q8" else 0
            check(freed == want, f"{mode} rank {r}: {freed} sqz communicators destroyed at MPI_Comm_free, expected {want}")
    check(served_cases > 0, "q8: no case was served")
    for line in q8_log.splitlines():
        if "libsqz_mpi: MPI_Allreduce:" in line or "first MPI_Allreduce served" in line:
            print(line)
    if failures:
        print("\n".join(failures))
        raise SystemExit(f"mpi4py_check (np {np_}): {len(failures)} failure(s)")
    n_cases = len(q8[0]["records"])
    print(f"mpi4py_check (np {np_}): {n_cases} cases per rank; SQZ_COMPRESSION unset: all bit-identical to plain MPI; "
          f"q8: {served_cases} served within the codec's bound (which rejects halved, zeroed and dropped-chunk "
          f"outputs), the rest forwarded bit-identical; summary counts as expected")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--np", type=int, required=True)
    r.add_argument("--lib", required=True)
    k = sub.add_parser("rank")
    k.add_argument("--out", required=True)
    k.add_argument("--mode", choices=["plain", "unset", "q8"], required=True)
    a = ap.parse_args()
    if a.cmd == "run":
        main_run(a.np, os.path.abspath(a.lib))
    else:
        rank_main(a.out, a.mode)


if __name__ == "__main__":
    main()

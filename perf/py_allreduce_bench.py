"""Python overhead and training-step benchmark for sqz's Python package.

    python3 perf/py_allreduce_bench.py [-np 4] [--sizes 64K,...,64M] [--iters 20] [--repeats 5]
                                       [--perf build/perf/sqz_allreduce_perf] [--skip-train]

Measures, in one run, on this host (loopback):
  1. Python's overhead over C, like for like: the C perf binary and
     sqz.torch.allreduce / allreduce_ on the same sizes and rank count, both
     started by the same launcher (sqz.run, environment init) and timed the
     same way (the C binary's: `warmup` calls, a barrier, `iters` calls
     back to back, the average, the slowest rank's), out of place and in
     place; the whole comparison repeated `repeats` times, C and Python in
     alternating order; per size the median and range over repeats of
     each, and of overhead = python / C - 1 within a repeat;
  2. one training step of an MLP with sqz.torch.DistributedOptimizer
     (none, and each compression given by --specs) against torch DDP on
     gloo, median step time.
Run it with /usr/bin/python3 (Debian torch) and the package importable
(PYTHONPATH=python SQZ_LIBRARY=build/libsqz.so: then C and Python use the
same libsqz.so).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KMG]?)", s.upper())
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


# ---------------------------------------------------------------- workers
def worker_allreduce(args):
    """The C perf binary's timing (perf/perf_driver.cc timeCalls) from Python."""
    import torch
    import sqz.torch as hvd
    hvd.init()
    torch.set_num_threads(1)
    res = {}
    for size in [parse_size(x) for x in args.sizes.split(",")]:
        n = size // 4
        send, inplace = torch.ones(n), torch.ones(n)

        def timed(call):
            for _ in range(args.warmup):
                call()
            hvd.barrier()
            t0 = time.perf_counter()
            for _ in range(args.iters):
                call()
            dt = (time.perf_counter() - t0) / args.iters
            return hvd.allreduce(torch.tensor([dt], dtype=torch.float64), op=hvd.Max, name="t").item()

        res[size] = {"out-of-place": timed(lambda: hvd.allreduce(send, op=hvd.Sum, name="oop")),
                     "in-place": timed(lambda: hvd.allreduce_(inplace, op=hvd.Sum, name="ip"))}
    if hvd.rank() == 0:
        print("RESULT " + json.dumps(res), flush=True)


def mlp(torch, width):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(1024, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                               torch.nn.ReLU(), torch.nn.Linear(width, 10))


def worker_train(args):
    import datetime
    import torch
    import torch.distributed as dist
    import sqz.torch as hvd
    hvd.init()
    torch.set_num_threads(1)
    r = hvd.rank()
    x = torch.randn(32, 1024, generator=torch.Generator().manual_seed(r))
    y = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(r))
    loss_fn = torch.nn.CrossEntropyLoss()

    def bench(model, opt):
        times = []
        for i in range(args.warmup + args.iters):
            hvd.barrier()
            t0 = time.perf_counter()
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        return statistics.median(hvd.allgather_object(statistics.median(times)))

    res = {}
    for spec in ["none"] + [s for s in args.specs.split(",") if s]:
        m = mlp(torch, args.width)
        comp = hvd.Compression.none if spec == "none" else hvd.Compression.from_spec(spec)
        opt = hvd.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.01),
                                       named_parameters=m.named_parameters(), compression=comp)
        try:
            res["sqz DistributedOptimizer " + spec] = bench(m, opt)
        except RuntimeError as e:
            res["sqz DistributedOptimizer " + spec] = "error: %s" % str(e)[:120]
    # On the namespace testbed each rank's shaped interface is SQZ_SOCKET_IFNAME; gloo must use it too.
    if os.environ.get("SQZ_SOCKET_IFNAME") and not os.environ.get("GLOO_SOCKET_IFNAME"):
        os.environ["GLOO_SOCKET_IFNAME"] = os.environ["SQZ_SOCKET_IFNAME"]
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]) + 2, hvd.size(), r == 0,
                          timeout=datetime.timedelta(seconds=60))
    dist.init_process_group("gloo", store=store, rank=r, world_size=hvd.size())
    m = torch.nn.parallel.DistributedDataParallel(mlp(torch, args.width))
    res["torch DDP gloo"] = bench(m, torch.optim.SGD(m.parameters(), lr=0.01))
    dist.destroy_process_group()
    if r == 0:
        nparams = sum(p.numel() for p in m.parameters())
        print("RESULT " + json.dumps({"params": nparams, "steps": res}), flush=True)


# ---------------------------------------------------------------- driver
def launch(args, cmd):
    return [sys.executable, "-m", "sqz.run", "-np", str(args.np)] + cmd


def run_workers(args, mode):
    cmd = launch(args, [os.path.abspath(__file__), "--worker", mode, "--sizes", args.sizes, "--iters",
                        str(args.iters), "--warmup", str(args.warmup), "--specs", args.specs, "--width",
                        str(args.width)])
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if out.returncode != 0:
        raise SystemExit("worker %s failed:\n%s" % (mode, out.stderr[-3000:]))
    res = json.loads(out.stdout.split("RESULT ", 1)[1].splitlines()[0])
    return {int(k): v for k, v in res.items()} if mode == "allreduce" else res


def c_command(args):
    sizes = [parse_size(x) for x in args.sizes.split(",")]
    factor = sizes[1] // sizes[0] if len(sizes) > 1 else 2
    if any(b != a * factor for a, b in zip(sizes, sizes[1:])):
        raise SystemExit("--sizes must grow by one factor (the C binary's -f)")
    return [args.perf, "-b", str(sizes[0]), "-e", str(sizes[-1]), "-f", str(factor), "-n", str(args.iters),
            "-w", str(args.warmup), "-c", "0"]


def run_c(args):
    """The C binary under the same launcher (sqzCommInitFromEnv)."""
    out = subprocess.run(launch(args, c_command(args)), capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    if out.returncode != 0:
        raise SystemExit("C perf binary failed:\n" + out.stderr[-3000:])
    res = {}
    for line in out.stdout.splitlines():
        f = line.split()
        if f and f[0].isdigit():
            res[int(f[0])] = {"out-of-place": float(f[5]) * 1e-6, "in-place": float(f[9]) * 1e-6}
    return res


def spread(values, fmt):
    return (fmt + " [" + fmt + ", " + fmt + "]") % (statistics.median(values), min(values), max(values))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-np", type=int, default=4)
    p.add_argument("--sizes", default="64K,256K,1M,4M,16M,64M", help="bytes, growing by one factor")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--specs", default="q8,topk:0.01", help="compressions for the training step")
    p.add_argument("--width", type=int, default=2048, help="MLP hidden width")
    p.add_argument("--perf", default=os.path.join(os.path.dirname(HERE), "build", "perf", "sqz_allreduce_perf"))
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--worker", choices=["allreduce", "train"])
    args = p.parse_args()
    if args.worker == "allreduce":
        return worker_allreduce(args)
    if args.worker == "train":
        return worker_train(args)

    print("# py_allreduce_bench: %d ranks, loopback, float32 sum, launcher sqz.run for both, %d warm-up + %d timed "
          "calls per size and mode (average, slowest rank), %d repeats, host %s, %s"
          % (args.np, args.warmup, args.iters, args.repeats, os.uname().nodename, time.strftime("%Y-%m-%d %H:%M")))
    print("# C: python -m sqz.run -np %d %s" % (args.np, " ".join(c_command(args))))
    print("# Python: python -m sqz.run -np %d perf/py_allreduce_bench.py --worker allreduce --sizes %s --iters %d "
          "--warmup %d" % (args.np, args.sizes, args.iters, args.warmup))
    runs = []
    for rep in range(args.repeats):
        if rep % 2 == 0:
            c, py = run_c(args), run_workers(args, "allreduce")
        else:
            py, c = run_workers(args, "allreduce"), run_c(args)
        runs.append((c, py))
        print("# repeat %d: %s" % (rep, json.dumps({"c": c, "python": py})), flush=True)
    print("\n| size | mode | C (ms) | sqz.torch (ms) | Python overhead |")
    print("|---:|---|---:|---:|---:|")
    for size in sorted(runs[0][0]):
        for mode, fn in (("out-of-place", "allreduce"), ("in-place", "allreduce_")):
            cs = [c[size][mode] * 1e3 for c, _ in runs]
            ps = [py[size][mode] * 1e3 for _, py in runs]
            ov = [(py[size][mode] / c[size][mode] - 1) * 100 for c, py in runs]
            print("| %s | %s (`hvd.%s`) | %s | %s | %s |" % (human(size), mode, fn, spread(cs, "%.3f"),
                                                           spread(ps, "%.3f"), spread(ov, "%+.1f%%")))
    print("\n(median [min, max] over %d repeats; overhead per repeat, then its median and range)" % args.repeats)
    if args.skip_train:
        return
    tr = run_workers(args, "train")
    print("\n| MLP training step (%d params, batch 32/rank) | median step (ms) |" % tr["params"])
    print("|---|---|")
    for k, v in tr["steps"].items():
        print("| %s | %s |" % (k, ("%.1f" % (v * 1e3)) if isinstance(v, float) else v))


def human(n):
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return "%d %siB" % (n >> shift, unit)
    return "%d B" % n


if __name__ == "__main__":
    main()

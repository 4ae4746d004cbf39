"""Python overhead and training-step benchmark for sqz's Python package.

    python3 perf/py_allreduce_bench.py [-np 4] [--bytes 64M] [--iters 10] [--perf build/perf/sqz_allreduce_perf]

Measures, in one run, on this host (loopback):
  1. the C perf binary (mpirun, out-of-place and in-place, 64 MiB float32
     sum) against sqz.torch.allreduce / allreduce_ on the same size and rank
     count (sqz.run), median time per call; overhead = python / C - 1;
  2. one training step of an MLP with sqz.torch.DistributedOptimizer
     (none, and each compression given by --specs) against torch DDP on
     gloo, median step time.
Run it with /usr/bin/python3 (Debian torch) and the package importable
(pip install ./python, or PYTHONPATH=python SQZ_LIBRARY=build/libsqz.so).
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
    import torch
    import sqz.torch as hvd
    hvd.init()
    torch.set_num_threads(1)
    n = parse_size(args.bytes) // 4
    src = torch.ones(n)
    res = {}
    for mode in ("out-of-place", "in-place"):
        times = []
        for i in range(args.warmup + args.iters):
            hvd.barrier()
            t0 = time.perf_counter()
            if mode == "in-place":
                hvd.allreduce_(src, op=hvd.Sum)
            else:
                hvd.allreduce(src, op=hvd.Sum)
            dt = time.perf_counter() - t0
            if i >= args.warmup:
                times.append(dt)
            if mode == "in-place":
                src.fill_(1.0)
        res[mode] = statistics.median(hvd.allgather_object(statistics.median(times)))
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
def run_workers(args, mode):
    cmd = [sys.executable, "-m", "sqz.run", "-np", str(args.np), os.path.abspath(__file__), "--worker", mode,
           "--bytes", args.bytes, "--iters", str(args.iters), "--warmup", str(args.warmup), "--specs", args.specs,
           "--width", str(args.width)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if out.returncode != 0:
        raise SystemExit("worker %s failed:\n%s" % (mode, out.stderr[-3000:]))
    return json.loads(out.stdout.split("RESULT ", 1)[1].splitlines()[0])


def run_c(args):
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(args.np), args.perf, "-b", args.bytes,
           "-e", args.bytes, "-n", str(args.iters), "-w", str(args.warmup), "-c", "0"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("C perf binary failed:\n" + out.stderr[-3000:])
    for line in out.stdout.splitlines():
        f = line.split()
        if f and f[0] == str(parse_size(args.bytes)):
            return {"out-of-place": float(f[5]) * 1e-6, "in-place": float(f[9]) * 1e-6}, " ".join(cmd)
    raise SystemExit("cannot parse:\n" + out.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-np", type=int, default=4)
    p.add_argument("--bytes", default="64M")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--specs", default="q8,topk:0.01", help="compressions for the training step")
    p.add_argument("--width", type=int, default=2048, help="MLP hidden width")
    p.add_argument("--perf", default=os.path.join(os.path.dirname(HERE), "build", "perf", "sqz_allreduce_perf"))
    p.add_argument("--worker", choices=["allreduce", "train"])
    args = p.parse_args()
    if args.worker == "allreduce":
        return worker_allreduce(args)
    if args.worker == "train":
        return worker_train(args)

    print("# py_allreduce_bench: %d ranks, loopback, %s float32 sum, %d iters (median), host %s, %s"
          % (args.np, args.bytes, args.iters, os.uname().nodename, time.strftime("%Y-%m-%d")))
    c, ccmd = run_c(args)
    py = run_workers(args, "allreduce")
    print("\n| %s allreduce | C sqz_allreduce_perf (ms) | sqz.torch (ms) | Python overhead |" % args.bytes)
    print("|---|---|---|---|")
    for mode, fn in (("out-of-place", "allreduce"), ("in-place", "allreduce_")):
        print("| %s (`hvd.%s`) | %.1f | %.1f | %+.1f%% |" % (mode, fn, c[mode] * 1e3, py[mode] * 1e3,
                                                           (py[mode] / c[mode] - 1) * 100))
    print("\nC command: `%s`" % ccmd)
    tr = run_workers(args, "train")
    print("\n| MLP training step (%d params, batch 32/rank) | median step (ms) |" % tr["params"])
    print("|---|---|")
    for k, v in tr["steps"].items():
        print("| %s | %s |" % (k, ("%.1f" % (v * 1e3)) if isinstance(v, float) else v))


if __name__ == "__main__":
    main()

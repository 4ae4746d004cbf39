#!/usr/bin/env python3
"""The MLP of mpi4py_mlp.py (784-H-H-10, ReLU, Fashion-MNIST, SGD with
momentum, cosine learning rate, the same data order) written the way a
Horovod user writes it: torch modules, hvd.DistributedOptimizer,
hvd.broadcast_parameters. Run with HOROVOD_CPU_OPERATIONS=mpi, Horovod's
allreduce is an MPI_Allreduce of its fusion buffer, which libsqz_mpi.so
serves when preloaded with SQZ_COMPRESSION set. Nothing here knows about sqz.

Rank 0 writes the same JSON record as mpi4py_mlp.py.
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import horovod.torch as hvd

DATA = "/usr/share/datasets/fashion-mnist"


def load(kind):
    with gzip.open(os.path.join(DATA, f"{kind}-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(DATA, f"{kind}-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    x = (images.astype(np.float32) / 255.0 - 0.2860) / 0.3530
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32, help="per rank")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--label", default="run")
    ap.add_argument("--out")
    a = ap.parse_args()

    torch.set_num_threads(1)
    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    torch.manual_seed(a.seed)
    train_x, train_y = load("train")
    test_x, test_y = load("t10k")
    test_x, test_y = test_x[rank::size], test_y[rank::size]
    model = torch.nn.Sequential(torch.nn.Linear(784, a.hidden), torch.nn.ReLU(), torch.nn.Linear(a.hidden, a.hidden),
                                torch.nn.ReLU(), torch.nn.Linear(a.hidden, 10))
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters(), op=hvd.Average)
    loss_fn = torch.nn.CrossEntropyLoss()

    def evaluate():
        with torch.no_grad():
            logits = model(test_x)
            loss = torch.nn.functional.cross_entropy(logits, test_y, reduction="sum").item()
            correct = (logits.argmax(dim=1) == test_y).sum().item()
        sums = hvd.allreduce(torch.tensor([correct, len(test_y), loss], dtype=torch.float64), op=hvd.Sum,
                             name="eval")
        return (sums[0] / sums[1]).item(), (sums[2] / sums[1]).item()

    global_batch = a.batch * size
    steps_per_epoch = len(train_y) // global_batch
    curve, step_seconds = [], []
    train_seconds = 0.0
    acc, loss = evaluate()
    curve.append({"step": 0, "seconds": 0.0, "acc": acc, "loss": loss})
    order = None
    for step in range(1, a.steps + 1):
        epoch, pos = divmod(step - 1, steps_per_epoch)
        if pos == 0:
            order = torch.from_numpy(np.random.default_rng([a.seed, epoch]).permutation(len(train_y)))
        idx = order[pos * global_batch + rank:(pos + 1) * global_batch:size]
        for group in opt.param_groups:
            group["lr"] = a.lr * 0.5 * (1.0 + np.cos(np.pi * (step - 1) / a.steps))
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(train_x[idx]), train_y[idx]).backward()
        opt.step()
        dt = time.perf_counter() - t0
        train_seconds += dt
        step_seconds.append(dt)
        if step % a.eval_every == 0 or step == a.steps:
            acc, loss = evaluate()
            curve.append({"step": step, "seconds": train_seconds, "acc": acc, "loss": loss})
            if rank == 0:
                print(f"{a.label}: step {step} {train_seconds:.2f} s acc {acc * 100:.2f}% loss {loss:.4f}", flush=True)
    total = hvd.allreduce(torch.tensor([train_seconds], dtype=torch.float64), op=hvd.Max, name="time").item()
    if rank == 0 and a.out:
        record = {"label": a.label, "nranks": size, "hidden": a.hidden, "steps": a.steps, "batch_per_rank": a.batch,
                  "lr": a.lr, "momentum": a.momentum, "seed": a.seed, "train_seconds": total,
                  "first_step_seconds": step_seconds[0], "median_step_seconds": float(np.median(step_seconds)),
                  "final_acc": curve[-1]["acc"], "curve": curve,
                  "params": int(sum(p.numel() for p in model.parameters())),
                  "sqz_compression": os.environ.get("SQZ_COMPRESSION", ""),
                  "horovod_cpu_operations": os.environ.get("HOROVOD_CPU_OPERATIONS", ""),
                  "preloaded": "libsqz_mpi" in os.environ.get("LD_PRELOAD", "")}
        with open(a.out, "w") as f:
            json.dump(record, f, indent=1)
    hvd.shutdown()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Data-parallel training written only against mpi4py and numpy: an MLP
(784-H-H-10, ReLU) on Fashion-MNIST (Debian's dataset-fashion-mnist), SGD
with momentum and a cosine learning-rate schedule. Each rank computes the
mean cross-entropy gradient of its share of the global minibatch; the
gradients are summed with one `comm.Allreduce(MPI.IN_PLACE, g)` per
parameter tensor into buffers allocated once, then divided by the rank
count. Nothing here knows about sqz: run it plain, or with
LD_PRELOAD=libsqz_mpi.so and SQZ_COMPRESSION set, and the allreduces are
served by sqz instead (perf/mpi_interposer/run_mpi4py_training.sh).

Rank 0 writes a JSON record: test accuracy every --eval-every steps against
the training time so far (compute + allreduce; evaluation excluded; ranks
are in lockstep through the allreduces).
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
from mpi4py import MPI

DATA = "/usr/share/datasets/fashion-mnist"


def load(kind):
    with gzip.open(os.path.join(DATA, f"{kind}-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(DATA, f"{kind}-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return ((images.astype(np.float32) / 255.0 - 0.2860) / 0.3530).astype(np.float32), labels.astype(np.int64)


class Mlp:
    def __init__(self, hidden, seed):
        rng = np.random.default_rng(seed)
        sizes = [784, hidden, hidden, 10]
        self.params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            self.params.append((rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32))
            self.params.append(np.zeros(fan_out, np.float32))
        # Gradient buffers, allocated once: the same addresses every step.
        self.grads = [np.zeros_like(p) for p in self.params]
        self.velocity = [np.zeros_like(p) for p in self.params]

    def forward(self, x):
        w1, b1, w2, b2, w3, b3 = self.params
        h1 = np.maximum(x @ w1 + b1, 0)
        h2 = np.maximum(h1 @ w2 + b2, 0)
        return h1, h2, h2 @ w3 + b3

    def gradient(self, x, y):
        """Mean cross-entropy gradient of the batch into self.grads."""
        w1, b1, w2, b2, w3, b3 = self.params
        g1w, g1b, g2w, g2b, g3w, g3b = self.grads
        h1, h2, logits = self.forward(x)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        d3 = p
        d3[np.arange(len(y)), y] -= 1
        d3 /= len(y)
        np.matmul(h2.T, d3, out=g3w)
        np.sum(d3, axis=0, out=g3b)
        d2 = d3 @ w3.T
        d2 *= h2 > 0
        np.matmul(h1.T, d2, out=g2w)
        np.sum(d2, axis=0, out=g2b)
        d1 = d2 @ w2.T
        d1 *= h1 > 0
        np.matmul(x.T, d1, out=g1w)
        np.sum(d1, axis=0, out=g1b)

    def step(self, lr, momentum):
        for p, g, v in zip(self.params, self.grads, self.velocity):
            v *= momentum
            v += g
            p -= lr * v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32, help="per rank")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--label", default="run")
    ap.add_argument("--out", help="JSON record (rank 0)")
    a = ap.parse_args()

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    train_x, train_y = load("train")
    test_x, test_y = load("t10k")
    test_x, test_y = test_x[rank::size], test_y[rank::size]
    model = Mlp(a.hidden, a.seed)
    for p in model.params:
        comm.Bcast(p, root=0)

    def evaluate():
        _, _, logits = model.forward(test_x)
        z = logits - logits.max(axis=1, keepdims=True)
        loss = float(np.sum(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(test_y)), test_y]))
        sums = np.array([np.sum(np.argmax(logits, axis=1) == test_y), len(test_y), loss], np.float64)
        comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        return sums[0] / sums[1], sums[2] / sums[1]

    global_batch = a.batch * size
    steps_per_epoch = len(train_y) // global_batch
    curve = []
    train_seconds = 0.0
    step_seconds = []
    acc, loss = evaluate()
    curve.append({"step": 0, "seconds": 0.0, "acc": acc, "loss": loss})
    comm.Barrier()
    order = None
    for step in range(1, a.steps + 1):
        epoch, pos = divmod(step - 1, steps_per_epoch)
        if pos == 0:
            order = np.random.default_rng([a.seed, epoch]).permutation(len(train_y))
        idx = order[pos * global_batch + rank:(pos + 1) * global_batch:size]
        t0 = time.perf_counter()
        model.gradient(train_x[idx], train_y[idx])
        for g in model.grads:
            comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
            g /= size
        lr = a.lr * 0.5 * (1.0 + np.cos(np.pi * (step - 1) / a.steps))
        model.step(lr, a.momentum)
        dt = time.perf_counter() - t0
        train_seconds += dt
        step_seconds.append(dt)
        if step % a.eval_every == 0 or step == a.steps:
            acc, loss = evaluate()
            curve.append({"step": step, "seconds": train_seconds, "acc": acc, "loss": loss})
            if rank == 0:
                print(f"{a.label}: step {step} {train_seconds:.2f} s acc {acc * 100:.2f}% loss {loss:.4f}", flush=True)
    # Ranks wait on each other in every allreduce; report the slowest.
    total = comm.allreduce(train_seconds, op=MPI.MAX)
    if rank == 0 and a.out:
        record = {"label": a.label, "nranks": size, "hidden": a.hidden, "steps": a.steps, "batch_per_rank": a.batch,
                  "lr": a.lr, "momentum": a.momentum, "seed": a.seed, "train_seconds": total,
                  "first_step_seconds": step_seconds[0], "median_step_seconds": float(np.median(step_seconds)),
                  "final_acc": curve[-1]["acc"], "curve": curve,
                  "params": int(sum(p.size for p in model.params)),
                  "sqz_compression": os.environ.get("SQZ_COMPRESSION", ""),
                  "preloaded": "libsqz_mpi" in os.environ.get("LD_PRELOAD", "")}
        with open(a.out, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()

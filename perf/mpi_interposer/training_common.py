"""What the two training scripts (mpi4py_mlp.py, horovod_mlp.py) share:
arguments, the Fashion-MNIST data (numpy arrays from Debian's
dataset-fashion-mnist), the data order, the learning-rate schedule and the
JSON record. Numpy and the standard library only."""
import argparse
import gzip
import json
import os
import time

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"


def parse_args():
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
    return ap.parse_args()


def load(kind):
    """Images standardized (float32, N x 784) and labels (int64)."""
    with gzip.open(os.path.join(DATA, f"{kind}-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(DATA, f"{kind}-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return ((images.astype(np.float32) / 255.0 - 0.2860) / 0.3530).astype(np.float32), labels.astype(np.int64)


class DataOrder:
    """Epoch e's permutation comes from (seed, e); the global minibatch of a
    step is the next batch x size positions, and rank r takes positions
    r, r + size, ..."""

    def __init__(self, n, seed, batch, rank, size):
        self.n, self.seed, self.rank, self.size = n, seed, rank, size
        self.global_batch = batch * size
        self.steps_per_epoch = n // self.global_batch
        self.epoch, self.order = -1, None

    def indices(self, step):
        epoch, pos = divmod(step - 1, self.steps_per_epoch)
        if epoch != self.epoch:
            self.epoch, self.order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self.order[pos * self.global_batch + self.rank:(pos + 1) * self.global_batch:self.size]


def learning_rate(args, step):
    """Cosine decay from --lr at step 1 to 0 after --steps."""
    return args.lr * 0.5 * (1.0 + np.cos(np.pi * (step - 1) / args.steps))


def train(args, rank, data, step, evaluate):
    """The timed loop: step(indices, lr) once per step (gradient, allreduce,
    update), evaluate() -> (accuracy, loss) every --eval-every steps, outside
    the timing. Returns (training seconds, per-step seconds, curve)."""
    acc, loss = evaluate()
    curve = [{"step": 0, "seconds": 0.0, "acc": acc, "loss": loss}]
    train_seconds, step_seconds = 0.0, []
    for n in range(1, args.steps + 1):
        indices = data.indices(n)
        t0 = time.perf_counter()
        step(indices, learning_rate(args, n))
        dt = time.perf_counter() - t0
        train_seconds += dt
        step_seconds.append(dt)
        if n % args.eval_every == 0 or n == args.steps:
            acc, loss = evaluate()
            curve.append({"step": n, "seconds": train_seconds, "acc": acc, "loss": loss})
            if rank == 0:
                print(f"{args.label}: step {n} {train_seconds:.2f} s acc {acc * 100:.2f}% loss {loss:.4f}", flush=True)
    return train_seconds, step_seconds, curve


def write_record(args, nranks, params, train_seconds, step_seconds, curve, **extra):
    record = {"label": args.label, "nranks": nranks, "hidden": args.hidden, "steps": args.steps,
              "batch_per_rank": args.batch, "lr": args.lr, "momentum": args.momentum, "seed": args.seed,
              "train_seconds": train_seconds, "first_step_seconds": step_seconds[0],
              "median_step_seconds": float(np.median(step_seconds)), "final_acc": curve[-1]["acc"], "curve": curve,
              "params": params, "sqz_compression": os.environ.get("SQZ_COMPRESSION", ""),
              "preloaded": "libsqz_mpi" in os.environ.get("LD_PRELOAD", "")}
    record.update(extra)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)

#!/usr/bin/env python3
"""Data-parallel training written only against mpi4py and numpy: an MLP
(784-H-H-10, ReLU) on Fashion-MNIST (Debian's dataset-fashion-mnist), SGD
with momentum and a cosine learning-rate schedule. Each rank computes the
mean cross-entropy gradient of its share of the global minibatch; the
gradients are summed with one `comm.Allreduce(MPI.IN_PLACE, g)` per
parameter tensor into buffers allocated once, then divided by the rank
count. Nothing here knows about sqz: run it plain, or with
LD_PRELOAD=libsqz_mpi.so and SQZ_COMPRESSION set, and the allreduces are
served by sqz instead (perf/mpi_interposer/run_training.sh). The data,
its order, the schedule and the record come from training_common.py
(numpy and the standard library only), shared with horovod_mlp.py.

Rank 0 writes a JSON record: test accuracy every --eval-every steps against
the training time so far (compute + allreduce; evaluation excluded; ranks
are in lockstep through the allreduces).
"""
import numpy as np
from mpi4py import MPI

from training_common import DataOrder, load, parse_args, train, write_record


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
    a = parse_args()
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

    data = DataOrder(len(train_y), a.seed, a.batch, rank, size)

    def step(idx, lr):
        model.gradient(train_x[idx], train_y[idx])
        for g in model.grads:
            comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
            g /= size
        model.step(lr, a.momentum)

    comm.Barrier()
    train_seconds, step_seconds, curve = train(a, rank, data, step, evaluate)
    # Ranks wait on each other in every allreduce; report the slowest.
    total = comm.allreduce(train_seconds, op=MPI.MAX)
    if rank == 0 and a.out:
        write_record(a, size, int(sum(p.size for p in model.params)), total, step_seconds, curve)

if __name__ == "__main__":
    main()

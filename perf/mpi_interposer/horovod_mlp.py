#!/usr/bin/env python3
"""The MLP of mpi4py_mlp.py (784-H-H-10, ReLU, Fashion-MNIST, SGD with
momentum, cosine learning rate, the same data order) written the way a
Horovod user writes it: torch modules, hvd.DistributedOptimizer,
hvd.broadcast_parameters. Run with HOROVOD_CPU_OPERATIONS=mpi, Horovod's
allreduce is an MPI_Allreduce of its fusion buffer, which libsqz_mpi.so
serves when preloaded with SQZ_COMPRESSION set. Nothing here knows about sqz.

Rank 0 writes the same JSON record as mpi4py_mlp.py.
"""
import os

import torch
import horovod.torch as hvd

from training_common import DataOrder, load, parse_args, train, write_record


def load_tensors(kind):
    x, y = load(kind)
    return torch.from_numpy(x), torch.from_numpy(y)


def main():
    a = parse_args()
    torch.set_num_threads(1)
    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    torch.manual_seed(a.seed)
    train_x, train_y = load_tensors("train")
    test_x, test_y = load_tensors("t10k")
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

    data = DataOrder(len(train_y), a.seed, a.batch, rank, size)

    def step(idx, lr):
        idx = torch.from_numpy(idx)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        loss_fn(model(train_x[idx]), train_y[idx]).backward()
        opt.step()

    train_seconds, step_seconds, curve = train(a, rank, data, step, evaluate)
    total = hvd.allreduce(torch.tensor([train_seconds], dtype=torch.float64), op=hvd.Max, name="time").item()
    if rank == 0 and a.out:
        write_record(a, size, int(sum(p.numel() for p in model.parameters())), total, step_seconds, curve,
                     horovod_cpu_operations=os.environ.get("HOROVOD_CPU_OPERATIONS", ""))
    hvd.shutdown()


if __name__ == "__main__":
    main()

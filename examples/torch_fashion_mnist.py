"""Horovod-style PyTorch training on Fashion-MNIST, with sqz.

    python -m sqz.run -np 4 examples/torch_fashion_mnist.py --compression q8
    mpirun -np 4 python examples/torch_fashion_mnist.py --compression topk:0.01

The script is a Horovod script: only the import line differs
(`import horovod.torch as hvd` -> `import sqz.torch as hvd`). Data: Debian's
dataset-fashion-mnist (gzip'd IDX files under /usr/share/datasets/fashion-mnist).
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.data

import sqz.torch as hvd


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data_dir, split, limit=0):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(data_dir, "%s-images-idx3-ubyte.gz" % prefix))
    y = read_idx(os.path.join(data_dir, "%s-labels-idx1-ubyte.gz" % prefix))
    if limit:
        x, y = x[:limit], y[:limit]
    x = (torch.from_numpy(x.copy()).float().div_(255.0) - 0.2860) / 0.3530
    return torch.utils.data.TensorDataset(x.unsqueeze(1), torch.from_numpy(y.astype(np.int64)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.fc1 = nn.Linear(512, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.fc1(x.flatten(1)))
        return F.log_softmax(self.fc2(x), dim=1)


def compression_of(name):
    return {"none": hvd.Compression.none, "fp16": hvd.Compression.fp16}.get(name) or \
        hvd.Compression.from_spec(name)


def metric_average(val, name):
    return hvd.allreduce(torch.tensor(val), name=name).item()


def main():
    p = argparse.ArgumentParser(description="sqz / Horovod Fashion-MNIST example")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--test-batch-size", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--compression", default="none",
                   help="none, fp16, bf16, q8, q4, q2, q1, topk:RATIO, randk:RATIO, auto")
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (0: all)")
    p.add_argument("--train-limit", type=int, default=0, help="use only the first N training images")
    p.add_argument("--log-interval", type=int, default=100)
    args = p.parse_args()

    hvd.init()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    train_set = load(args.data_dir, "train", args.train_limit)
    test_set = load(args.data_dir, "test")
    train_sampler = torch.utils.data.distributed.DistributedSampler(train_set, num_replicas=hvd.size(),
                                                                    rank=hvd.rank())
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, sampler=train_sampler)
    test_sampler = torch.utils.data.distributed.DistributedSampler(test_set, num_replicas=hvd.size(),
                                                                   rank=hvd.rank(), shuffle=False)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=args.test_batch_size, sampler=test_sampler)

    model = Net()
    # Horovod: scale learning rate by the number of ranks.
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr * hvd.size(), momentum=args.momentum)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)
    optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters(),
                                         compression=compression_of(args.compression), op=hvd.Average)

    start = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        train_sampler.set_epoch(epoch)
        for step, (data, target) in enumerate(train_loader):
            if args.max_steps and step >= args.max_steps:
                break
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            if step % args.log_interval == 0 and hvd.rank() == 0:
                print("epoch %d step %d loss %.4f" % (epoch, step, loss.item()), flush=True)

        model.eval()
        test_loss, correct, seen = 0.0, 0.0, 0.0
        with torch.no_grad():
            for data, target in test_loader:
                out = model(data)
                test_loss += F.nll_loss(out, target, reduction="sum").item()
                correct += out.argmax(1).eq(target).sum().item()
                seen += len(target)
        # Sum over ranks (the test sampler gives each rank its share).
        test_loss = metric_average(test_loss, "test_loss") * hvd.size()
        correct = metric_average(correct, "correct") * hvd.size()
        seen = metric_average(seen, "seen") * hvd.size()
        if hvd.rank() == 0:
            print("epoch %d test loss %.4f accuracy %.2f%% (compression %s, %d ranks, %.1fs)"
                  % (epoch, test_loss / seen, 100.0 * correct / seen, args.compression, hvd.size(),
                     time.time() - start), flush=True)


if __name__ == "__main__":
    main()

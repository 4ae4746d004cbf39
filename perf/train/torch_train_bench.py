"""torch_train_bench: a small CNN on Fashion-MNIST trained with Adam through
sqz.torch's DistributedOptimizer (issue 14: the training benchmark's third
model, a different architecture and optimizer than sqz_train_bench's SGD
models, using only sqz.torch's public API). Writes the CSV columns of
sqz_train_bench, so perf/train/acceptance.py and report.py read both.

    mpirun -np 4 python3 perf/train/torch_train_bench.py --method q4 --steps 400 --out cnn.csv

The method is the communicator's policy (SQZ_COMPRESSION, set here before
init), and the optimizer is created with Compression.none, which defers to
it: "none", a codec ("q4", "sign", "topk:0.01"), or "auto".

Model: conv 5x5 (1->16) ReLU maxpool2, conv 5x5 (16->32) ReLU maxpool2,
linear 1568->512 ReLU, linear 512->10 (820,394 parameters, 3.3 MB of fp32
gradient per step, in one fused buffer). Adam (lr 1e-3 at batch 32 per rank,
betas 0.9/0.999), or with --optimizer sgd momentum SGD (--momentum, default
0.9; give --lr), cosine decay over --steps. Data order as sqz_train_bench:
epoch e's permutation from (seed, e); rank r takes positions r, r+N, ...;
initial weights from the seed. Timing: the training loop (forward,
backward, the optimizer step that waits for the allreduce), evaluation
excluded, the slowest rank.
"""
import argparse
import gzip
import hashlib
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_idx(images, labels, limit):
    with gzip.open(images, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 0x803 or rows != 28 or cols != 28:
            raise SystemExit("%s: not an IDX image file" % images)
        x = np.frombuffer(f.read(n * 784), dtype=np.uint8).reshape(n, 1, 28, 28)
    with gzip.open(labels, "rb") as f:
        magic, m = struct.unpack(">II", f.read(8))
        if magic != 0x801 or m != n:
            raise SystemExit("%s: not an IDX label file for %s" % (labels, images))
        y = np.frombuffer(f.read(n), dtype=np.uint8)
    if limit:
        x, y = x[:limit], y[:limit]
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = nn.Linear(32 * 7 * 7, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def epoch_permutation(n, seed, epoch):
    return np.random.default_rng([seed, epoch]).permutation(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="none")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                    help="Adam (the matrix's CNN) or momentum SGD; sqz.torch tells auto which")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum, or Adam's beta1")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--eval-seconds", type=float, default=0)
    ap.add_argument("--max-seconds", type=float, default=0)
    ap.add_argument("--test-n", type=int, default=0)
    ap.add_argument("--stop-at-acc", type=float, default=0,
                    help="end the run at the first evaluation whose test accuracy reaches this (a time-to-target "
                         "experiment needs nothing after it; 0: run the whole schedule)")
    ap.add_argument("--link", default="unknown")
    ap.add_argument("--drain-bytes", type=int, default=0,
                    help="after every evaluation, untimed: an exact allreduce of this many bytes (each rank sends "
                         "1.5 times that around the ring), emptying a shaper's bucket that refilled while the "
                         "ranks evaluated (sqz_train_bench --drain-bytes)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="")
    ap.add_argument("--step-log", default="",
                    help="per-step timing per rank (PATH.rankN.csv): forward+backward, the wait in step(), and the "
                         "library's time for the step's allreduce and the tuner's share of it (sqzGetCallInfo)")
    a = ap.parse_args()

    os.environ["SQZ_COMPRESSION"] = a.method
    torch.set_num_threads(1)
    import sqz.torch as hvd  # after SQZ_COMPRESSION: the communicator reads it at init
    hvd.init()
    rank, nranks = hvd.rank(), hvd.size()

    xtr, ytr = load_idx(a.data + "/train-images-idx3-ubyte.gz", a.data + "/train-labels-idx1-ubyte.gz", 0)
    xte, yte = load_idx(a.data + "/t10k-images-idx3-ubyte.gz", a.data + "/t10k-labels-idx1-ubyte.gz", a.test_n)
    shard = xtr.shape[0] // nranks
    steps_per_epoch = shard // a.batch

    torch.manual_seed(a.seed)
    model = Cnn()
    nparams = sum(p.numel() for p in model.parameters())
    if a.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(a.momentum, 0.999))
    else:
        opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters(), compression=hvd.Compression.none)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    exact = hvd.Compression.from_spec("none")

    def lr_at(step):
        return a.lr * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / a.steps))

    def total(values):
        t = torch.tensor(values, dtype=torch.float64)
        return hvd.allreduce(t, op=hvd.Sum, compression=exact, name="bench.sum").tolist()

    def maximum(value):
        t = torch.zeros(nranks, dtype=torch.float64)
        t[rank] = value
        return max(hvd.allreduce(t, op=hvd.Sum, compression=exact, name="bench.max").tolist())

    out = None
    if rank == 0:
        out = open(a.out, "w") if a.out else sys.stdout
        out.write("link,model,method,nranks,batch_per_rank,lr,momentum,seed,steps_planned,step,epoch,train_loss,"
                  "test_loss,test_acc,bytes_per_rank,wall_s,comm_s,compute_s,setup_s,param_hash,plans\n")
        out.flush()
        print("# torch_train_bench: cnn (%d parameters), %d ranks x batch %d, %d steps/epoch, %s lr %g, "
              "seed %d, steps %d, method %s" % (nparams, nranks, a.batch, steps_per_epoch, a.optimizer, a.lr, a.seed, a.steps,
                                                 a.method), file=sys.stderr)

    wall = compute = comm = 0.0
    loss_sum, loss_count = 0.0, 0
    plans = {}
    idx_test = torch.arange(rank, xte.shape[0], nranks)

    def evaluate(step):
        nonlocal loss_sum, loss_count
        model.eval()
        with torch.no_grad():
            tl, right = 0.0, 0
            for off in range(0, len(idx_test), 500):
                sel = idx_test[off:off + 500]
                logits = model(xte[sel])
                tl += F.cross_entropy(logits, yte[sel], reduction="sum").item()
                right += (logits.argmax(1) == yte[sel]).sum().item()
        model.train()
        sums = total([tl, right, len(idx_test), loss_sum, loss_count])
        w = maximum(wall)
        wcomm, wcompute = maximum(comm), maximum(compute)
        loss_sum, loss_count = 0.0, 0
        if rank == 0:
            # Bitwise identity of the parameters: exact training is
            # deterministic, so acceptance.py may project an exact run stopped
            # by its time cap from the loopback run when these match.
            digest = hashlib.sha256()
            for p in model.parameters():
                digest.update(p.detach().contiguous().numpy().tobytes())
            param_hash = digest.hexdigest()[:16]
            plan_text = ";".join("%s=%d" % kv for kv in sorted(plans.items()))
            train_loss = sums[3] / sums[4] if sums[4] else float("nan")
            out.write("%s,cnn,%s,%d,%d,%g,%g,%d,%d,%d,%.4f,%.6f,%.6f,%.6f,0,%.4f,%.4f,%.4f,0,%s,\"%s\"\n" % (
                a.link, a.method, nranks, a.batch, a.lr, a.momentum, a.seed, a.steps, step, step / steps_per_epoch, train_loss,
                sums[0] / sums[2], sums[1] / sums[2], w, wcomm, wcompute, param_hash, plan_text))
            out.flush()
            print("%-10s step %5d  train %.4f  test %.4f  acc %.4f  wall %8.2f s" % (
                a.method, step, train_loss, sums[0] / sums[2], sums[1] / sums[2], w), file=sys.stderr)
        if a.drain_bytes > 0:
            hvd.allreduce(torch.ones(a.drain_bytes // 4), compression=exact, name="bench.drain")
        # every rank holds the reduced sums, so every rank takes the same exit
        reached = a.stop_at_acc > 0 and sums[1] / sums[2] >= a.stop_at_acc
        return reached or (a.max_seconds > 0 and w >= a.max_seconds)

    step_log = None
    if a.step_log:
        step_log = open("%s.rank%d.csv" % (a.step_log, rank), "w")
        step_log.write("step,compute_s,wait_s,call_total_s,call_tune_s,plan\n")

    evaluate(0)
    last_eval = 0.0
    current_epoch, local = -1, None
    for step in range(1, a.steps + 1):
        epoch, within = (step - 1) // steps_per_epoch, (step - 1) % steps_per_epoch
        if epoch != current_epoch:
            perm = epoch_permutation(xtr.shape[0], a.seed, epoch)
            local = torch.from_numpy(perm[rank:shard * nranks:nranks].copy())
            current_epoch = epoch
        sel = local[within * a.batch:(within + 1) * a.batch]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(xtr[sel]), ytr[sel])
        loss.backward()  # the fused buffer's allreduce starts when its last gradient is ready
        t1 = time.perf_counter()
        opt.step()  # waits for it, then the update
        t2 = time.perf_counter()
        wall += t2 - t0
        compute += t1 - t0
        comm += t2 - t1
        loss_sum += loss.item()
        loss_count += 1
        info = hvd.last_call_info()
        if info is not None:
            plan = info.get("plan") if isinstance(info, dict) else getattr(info, "plan", None)
            if plan:
                plans[plan] = plans.get(plan, 0) + 1
            if step_log is not None:
                # tune = total - transfer - encode - decode (sqzCallInfo's transferSeconds excludes the tuner's)
                tune = info["totalSeconds"] - info["transferSeconds"] - info["encodeSeconds"] - info["decodeSeconds"]
                step_log.write("%d,%.6f,%.6f,%.6f,%.6f,%s\n" % (step, t1 - t0, t2 - t1, info["totalSeconds"], tune,
                                                               info["plan"]))
        due = step % a.eval_every == 0 or step == a.steps
        if a.eval_seconds > 0 or a.max_seconds > 0:
            # rank 0's clock decides, every rank follows (as sqz_train_bench)
            flag = 1.0 if rank == 0 and ((a.eval_seconds > 0 and wall - last_eval >= a.eval_seconds) or
                                         (a.max_seconds > 0 and wall >= a.max_seconds)) else 0.0
            due = due or total([flag])[0] > 0
        if due:
            last_eval = wall
            if evaluate(step):
                break
    if out is not None and out is not sys.stdout:
        out.close()
    if step_log is not None:
        step_log.close()
    hvd.shutdown()


if __name__ == "__main__":
    main()

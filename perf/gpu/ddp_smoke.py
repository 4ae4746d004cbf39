"""One step of PyTorch DDP on one GPU with the NCCL backend, plus a direct
dist.all_reduce: the calls reach ncclAllReduce, which is what
LD_PRELOAD=libsqz_nccl.so intercepts. The script knows nothing of sqz.

    python3 perf/gpu/ddp_smoke.py [--lossy]

--lossy: accept the error of a compressed allreduce (SQZ_COMPRESSION under
the interposer) instead of demanding NCCL's exact answer."""
import inspect
import os
import socket
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_kwargs(init=None):
    """One rank on GPU 0. device_id (binding the group to the GPU, NCCL set
    up eagerly) exists from PyTorch 2.3 on; older versions reject it."""
    init = init or dist.init_process_group
    kwargs = {"rank": 0, "world_size": 1}
    if "device_id" in inspect.signature(init).parameters:
        kwargs["device_id"] = torch.device("cuda", 0)
    return kwargs


def main():
    lossy = "--lossy" in sys.argv
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", **init_kwargs())
    torch.manual_seed(0)

    # A direct allreduce of 4 Mi floats (16 MiB): the sum over one rank is
    # the input itself.
    x = torch.randn(1 << 22, device="cuda")
    y = x.clone()
    dist.all_reduce(y)
    err = ((y - x).abs().max() / x.abs().max()).item()
    print(f"ddp_smoke: all_reduce float32 16 MiB, max rel error {err:.3e}")
    ok = err <= (0.3 if lossy else 0.0)

    # One DDP step on a model whose gradient bucket is large (4 Mi params).
    model = torch.nn.Sequential(torch.nn.Linear(2048, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 10)).cuda()
    ddp = DDP(model, device_ids=[0], bucket_cap_mb=64)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    inputs, labels = torch.randn(32, 2048, device="cuda"), torch.randint(0, 10, (32,), device="cuda")
    loss = torch.nn.functional.cross_entropy(ddp(inputs), labels)
    loss.backward()
    opt.step()
    torch.cuda.synchronize()
    finite = all(torch.isfinite(p).all().item() for p in model.parameters())
    print(f"ddp_smoke: one DDP step, loss {loss.item():.4f}, parameters finite: {finite}")
    ok = ok and finite
    dist.destroy_process_group()
    print("ddp_smoke:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

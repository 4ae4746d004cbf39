"""A PyTorch DDP communication hook that allreduces buckets with libsqz.

    model = DDP(model)                       # gloo on CPU, nccl on GPU
    sqz.torch.ddp.register(model, spec="q8") # or "auto", "none", "topk:0.01", ...

The sqz communicator is formed through the model's own process group (rank
0 makes the unique id and broadcasts its bytes over the group), so nothing
beyond what DDP needs is configured. The hook averages, as DDP's default
allreduce hook does, and runs on its own progress thread so DDP's next
buckets keep computing while one is on the wire. Each bucket has its own
error-feedback state in the library (keyed by the bucket's index).
"""
import threading

import torch
import torch.distributed as dist

from .. import _lib
from ..comm import Communicator
from ..engine import Engine
from . import mpi_ops, optimizer_kind


class SqzHookState:
    """What the hook needs: the communicator, the compression spec (None:
    the communicator's policy), and a progress engine."""

    def __init__(self, comm, spec="auto"):
        self.comm = comm
        self.spec = spec
        self.engine = Engine(name="sqz-ddp-progress")
        self.calls = 0
        self._lock = threading.Lock()

    @classmethod
    def from_process_group(cls, process_group=None, spec="auto", device=None):
        """Forms an sqz communicator over the ranks of a torch.distributed
        process group (collective over the group)."""
        pg = process_group if process_group is not None else dist.group.WORLD
        rank = dist.get_rank(pg)
        world = dist.get_world_size(pg)
        if device is None:
            device = torch.device("cuda", torch.cuda.current_device()) \
                if dist.get_backend(pg) == "nccl" else torch.device("cpu")
        if rank == 0:
            uid = torch.tensor(list(Communicator.unique_id()), dtype=torch.uint8, device=device)
        else:
            uid = torch.zeros(_lib.UNIQUE_ID_BYTES, dtype=torch.uint8, device=device)
        dist.broadcast(uid, src=dist.distributed_c10d._get_global_rank(pg, 0) if pg is not dist.group.WORLD
                       else 0, group=pg)
        comm = Communicator.init_rank(world, bytes(uid.cpu().tolist()), rank)
        return cls(comm, spec)

    def close(self):
        self.engine.shutdown()
        self.comm.destroy()

    def __getstate__(self):  # DDP may pickle hook state (e.g. for logging); do not copy the comm
        return {"spec": self.spec}


def hook(state, bucket):
    """DDP communication hook: allreduce-average bucket.buffer() with libsqz.
    Returns a torch.futures.Future holding the averaged buffer."""
    buf = bucket.buffer()
    mpi_ops._check_device(buf)
    index = bucket.index()
    comm = state.comm
    dtype = mpi_ops._DTYPE_TO_SQZ.get(buf.dtype)
    if dtype is None:
        raise TypeError("sqz DDP hook: unsupported gradient dtype %s" % buf.dtype)
    spec = state.spec
    if spec is not None and not buf.is_floating_point():
        spec = None
    stream = mpi_ops._stream_of(buf)
    if buf.is_cuda:
        fut = torch.futures.Future(devices=[buf.device])
    else:
        fut = torch.futures.Future()
    state.calls += 1

    def run():
        ctx = torch.cuda.stream(stream) if stream is not None else mpi_ops._null()
        with ctx:
            comm.allreduce(buf.data_ptr(), buf.data_ptr(), buf.numel(), dtype, _lib.AVG, mpi_ops._raw(stream),
                           spec=None if spec in (None, "policy") else spec,
                           state_key=("ddp.bucket", index))

    def done(job):
        if job.error is not None:
            fut.set_exception(job.error if isinstance(job.error, RuntimeError) else RuntimeError(str(job.error)))
        else:
            if stream is not None:
                with torch.cuda.stream(stream):
                    fut.set_result(buf)
            else:
                fut.set_result(buf)

    state.engine.submit(run, "ddp.bucket.%d" % index).add_done_callback(done)
    return fut


def register(model, spec="auto", process_group=None, optimizer=None):
    """Forms the sqz communicator over the DDP model's process group and
    registers `hook`; returns the hook state (close() it to free the
    communicator). spec "none" is exact; None uses SQZ_COMPRESSION.
    optimizer: the torch optimizer the model trains with (optional; DDP's
    hook never sees it): auto's gain model takes its kind and momentum
    from it (else SQZ_OPTIMIZER and SQZ_MOMENTUM), and with an Adam-like
    one the quantizers and casts keep no error-feedback residual."""
    pg = process_group if process_group is not None else getattr(model, "process_group", None)
    if spec not in (None, "none"):
        lib = _lib.load()
        if not lib.has("sqzAllReduceEx"):
            raise RuntimeError("sqz.torch.ddp.register(spec=%r): %s has no compressed collectives "
                               "(sqzAllReduceEx missing); use spec='none'" % (spec, lib.path))
    device = None
    for p in model.parameters():
        device = p.device
        break
    if pg is not None and dist.get_backend(pg) != "nccl":
        device = torch.device("cpu")
    state = SqzHookState.from_process_group(pg, spec=spec, device=device)
    if optimizer is not None:
        optimizer_kind.apply(state.comm, optimizer)
    model.register_comm_hook(state, hook)
    return state

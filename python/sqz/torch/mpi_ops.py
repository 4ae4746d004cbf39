"""Horovod's torch collective ops (horovod/torch/mpi_ops.py) over libsqz.

Names, signatures, defaults and semantics follow Horovod. Asynchronous ops
return an integer handle; the collective runs on sqz's progress thread (one
thread, submission order), so `poll` is False while it is in flight and
`synchronize` returns its output. Errors from the library (mismatched
shapes, dtypes, ops or roots across ranks) raise RuntimeError from
`synchronize` on every rank; a name already in flight raises ValueError at
submission.
"""
import atexit
import hashlib
import os
import socket
import threading
import warnings

import torch

from .. import _lib
from .. import timeline as _timeline
from ..comm import Communicator
from ..engine import Engine
from .compression import Compression, spec_of


class HorovodInternalError(RuntimeError):
    """Internal error raised when a collective fails (dead peer, timeout)."""


# Reduction ops (Horovod's numbering: Average=0, Sum=1, Adasum=2, Min=3, Max=4, Product=5).
Average = 0
Sum = 1
Adasum = 2
Min = 3
Max = 4
Product = 5

_OP_TO_SQZ = {Sum: _lib.SUM, Min: _lib.MIN, Max: _lib.MAX, Product: _lib.PROD, Average: _lib.AVG}

_DTYPE_TO_SQZ = {
    torch.int8: _lib.INT8, torch.uint8: _lib.UINT8, torch.int32: _lib.INT32, torch.int64: _lib.INT64,
    torch.float16: _lib.FLOAT16, torch.float32: _lib.FLOAT32, torch.float64: _lib.FLOAT64,
    torch.bfloat16: _lib.BFLOAT16,
}
# Stable codes for the allgather header (same on every rank and build).
_DTYPE_CODES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16, torch.float32,
                torch.float64, torch.bfloat16, torch.bool, torch.complex64, torch.complex128]


class ProcessSet:
    """Horovod's process set; sqz supports the global one only."""

    def __init__(self, ranks_or_comm=None):
        self.ranks = ranks_or_comm
        self.process_set_id = 0

    def included(self):
        return is_initialized()

    def rank(self):
        return rank()

    def size(self):
        return size()

    def __repr__(self):
        return "ProcessSet(global)"


global_process_set = ProcessSet()


def _check_process_set(process_set):
    if process_set is not global_process_set and process_set is not None:
        raise NotImplementedError("sqz.torch supports only the global process set")


class _State:
    def __init__(self):
        self.lock = threading.RLock()
        self.comm = None
        self.engine = None
        self.local_rank = 0
        self.local_size = 1
        self.cross_rank = 0
        self.cross_size = 1
        self.handles = {}
        self.next_handle = 0
        self.names = set()
        self.pid = None


_state = _State()


# ---------------------------------------------------------------- basics
def init(comm=None, process_sets=None):
    """Forms the communicator from the launcher's environment (sqz.run,
    torchrun, mpirun, SLURM). Idempotent."""
    if comm is not None:
        raise NotImplementedError("sqz.torch.init: the comm argument (mpi4py communicator) is not supported; "
                                  "ranks come from the launcher's environment")
    if process_sets not in (None, [], ()):
        raise NotImplementedError("sqz.torch.init: process sets other than the global one are not supported")
    with _state.lock:
        if _state.comm is not None and _state.pid == os.getpid():
            return
        env = os.environ
        if not any(k in env for k in ("RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")):
            # A plain `python script.py`: a one-rank job, as Horovod allows.
            c = Communicator.init_rank(1, Communicator.unique_id(), 0)
        else:
            c = Communicator.init_from_env()
        _state.comm = c
        _state.pid = os.getpid()
        _compute_topology(c)
        _state.engine = Engine()
        _timeline.start(env.get("SQZ_TIMELINE"), c.rank, c.size, c)


def _compute_topology(c):
    """local/cross rank and size from every rank's node identity (the same
    notion as libsqz's: SQZ_NODE_ID, else the host name)."""
    node = os.environ.get("SQZ_NODE_ID") or socket.gethostname()
    key = int.from_bytes(hashlib.blake2b(node.encode(), digest_size=8).digest(), "little") & ((1 << 63) - 1)
    mine = torch.tensor([key], dtype=torch.int64)
    every = torch.empty(c.size, dtype=torch.int64)
    c.allgather(mine.data_ptr(), every.data_ptr(), 1, _lib.INT64)
    keys = every.tolist()
    same = [r for r in range(c.size) if keys[r] == key]
    _state.local_rank = same.index(c.rank)
    _state.local_size = len(same)
    local_ranks = [sum(1 for q in range(r) if keys[q] == keys[r]) for r in range(c.size)]
    peers = [r for r in range(c.size) if local_ranks[r] == _state.local_rank]
    _state.cross_rank = peers.index(c.rank)
    _state.cross_size = len(peers)


def shutdown():
    """Waits for queued collectives, then frees the communicator."""
    with _state.lock:
        if _state.comm is None or _state.pid != os.getpid():
            _state.comm = None
            return
        _state.engine.shutdown()
        _state.comm.destroy()
        _state.comm = None
        _state.engine = None
        _state.handles.clear()
        _state.names.clear()
        _timeline.stop()


atexit.register(shutdown)


def is_initialized():
    return _state.comm is not None and _state.pid == os.getpid()


def _comm():
    if not is_initialized():
        raise ValueError("Horovod has not been initialized; use hvd.init().")
    return _state.comm


def rank():
    return _comm().rank


def size():
    return _comm().size


def local_rank():
    _comm()
    return _state.local_rank


def local_size():
    _comm()
    return _state.local_size


def cross_rank():
    _comm()
    return _state.cross_rank


def cross_size():
    _comm()
    return _state.cross_size


def is_homogeneous():
    return size() == local_size() * cross_size()


def mpi_threads_supported():
    return False


def mpi_enabled():
    return False


def mpi_built():
    return False


def gloo_enabled():
    return False


def gloo_built():
    return False


def nccl_built():
    return 0


def ddl_built():
    return False


def ccl_built():
    return False


def cuda_built():
    return True


def rocm_built():
    return False


def start_timeline(file_path, mark_cycles=False):
    _timeline.start(file_path, rank(), size())


def stop_timeline():
    _timeline.stop()


def comm():
    """The underlying sqz.Communicator (sqz extension)."""
    return _comm()


def last_call_info():
    """What the library did for the last allreduce (sqzGetCallInfo), or None
    where this libsqz build does not report it (sqz extension)."""
    return _comm().last_call_info()


# ---------------------------------------------------------------- helpers
def handle_average_backwards_compatibility(op, average):
    if op is not None:
        if average is not None:
            raise ValueError('The op parameter supersedes average. Please provide only one of them.')
        return op
    elif average is not None:
        warnings.warn('Parameter `average` has been replaced with `op` and will be removed in v1.0',
                      DeprecationWarning)
        return Average if average else Sum
    else:
        return Average


def _stream_of(tensor):
    """CUDA tensors: libsqz gets the device pointer (data_ptr) and the raw
    handle of the stream current when the op was submitted; it enqueues the
    collective there and returns (sqz.h), and _event_after marks where the
    result is ready. Host tensors: None, the synchronous host path."""
    if tensor.is_cuda:
        return torch.cuda.current_stream(tensor.device)
    return None


def _raw(stream):
    return None if stream is None else stream.cuda_stream


def _register(job, output, name, keep):
    with _state.lock:
        h = _state.next_handle
        _state.next_handle += 1
        _state.handles[h] = (job, output, name, keep)
        return h


def _reserve_name(prefix, name):
    """Horovod's op names: "<op>.<name>", or "<op>.noname.<n>"."""
    with _state.lock:
        if name is None:
            return None
        full = "%s.%s" % (prefix, name)
        if full in _state.names:
            raise ValueError("Requested to %s a tensor with the same name as another tensor that is currently "
                             "being processed. If you want to request another tensor, use a different tensor "
                             "name: %s" % (prefix, name))
        _state.names.add(full)
        return full


def _submit(prefix, name, fn, output, keep):
    engine = _state.engine
    if engine is None:
        _comm()
    full = _reserve_name(prefix, name)
    try:
        job = engine.submit(fn, full or prefix)
    except BaseException:
        if full is not None:
            with _state.lock:
                _state.names.discard(full)
        raise
    return _register(job, output, full, keep)


def _wrap_error(e):
    if isinstance(e, _lib.SqzError) and e.code in _lib.FATAL_RESULTS:
        return HorovodInternalError(str(e))
    if isinstance(e, RuntimeError):
        return e
    return RuntimeError(str(e))


def _scale_(t, factor):
    """In-place scaling as Horovod's ScaleBuffer does it: floats in their own
    type, integers through double and back (truncating)."""
    if factor == 1.0:
        return t
    if t.is_floating_point():
        return t.mul_(factor)
    return t.copy_((t.double() * factor).to(t.dtype))


# ---------------------------------------------------------------- allreduce
def _allreduce_async(tensor, output, name, op, prescale_factor, postscale_factor, process_set, spec=None,
                     state_key=None):
    _check_process_set(process_set)
    c = _comm()
    if op == Adasum:
        raise NotImplementedError("sqz.torch does not implement Adasum")
    if op not in _OP_TO_SQZ:
        raise ValueError("unknown reduction op %r" % (op,))
    if tensor.is_sparse:
        raise NotImplementedError("sqz.torch: sparse tensors are not supported; pass sparse_as_dense=True")
    dtype = tensor.dtype
    wire_dtype = dtype
    if dtype == torch.int16:
        wire_dtype = torch.int32  # not an sqz type: reduce in int32, wrap back (same modular result)
    if wire_dtype not in _DTYPE_TO_SQZ:
        raise TypeError("sqz.torch.allreduce: unsupported dtype %s" % dtype)
    stream = _stream_of(tensor)
    scaled = prescale_factor != 1.0 or postscale_factor != 1.0
    sqz_op = _OP_TO_SQZ[op]
    post = postscale_factor
    if op == Average and scaled:
        sqz_op = _lib.SUM
        post = postscale_factor / c.size
    # Buffers the library reads (send) and writes (buf): contiguous, in the
    # wire dtype. In place when possible; out of place straight from the
    # input into the output when nothing needs converting.
    in_place = output is tensor
    simple = wire_dtype == dtype and tensor.is_contiguous() and prescale_factor == 1.0
    if simple and in_place:
        send = buf = tensor.detach()
    elif simple:
        send, buf = tensor.detach(), output
    else:
        send = buf = tensor.detach().to(wire_dtype, memory_format=torch.contiguous_format, copy=True)
        _scale_(buf, prescale_factor)
    count = buf.numel()
    sqz_dtype = _DTYPE_TO_SQZ[wire_dtype]
    if spec is not None and not buf.is_floating_point():
        spec = None  # integers always take the exact path (sqz.h); keep the policy call

    def run():
        ctx = torch.cuda.stream(stream) if stream is not None else _null()
        with ctx:
            c.allreduce(send.data_ptr(), buf.data_ptr(), count, sqz_dtype, sqz_op, _raw(stream), spec=spec,
                        state_key=state_key)
            if post != 1.0:
                _scale_(buf, post)
            if buf is not output and buf.data_ptr() != output.data_ptr():
                output.copy_(buf)
            return _event_after(stream)

    return _submit("allreduce", name, run, output, (tensor, send, buf))


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _event_after(stream):
    if stream is None:
        return None
    ev = torch.cuda.Event()
    ev.record(stream)
    return ev


def allreduce_async(tensor, average=None, name=None, op=None, prescale_factor=1.0, postscale_factor=1.0,
                    process_set=global_process_set):
    """Asynchronous allreduce into a new tensor; returns a handle for poll()
    and synchronize(). The input is not modified."""
    op = handle_average_backwards_compatibility(op, average)
    output = torch.empty_like(tensor, memory_format=torch.contiguous_format)
    return _allreduce_async(tensor, output, name, op, prescale_factor, postscale_factor, process_set)


def allreduce_async_(tensor, average=None, name=None, op=None, prescale_factor=1.0, postscale_factor=1.0,
                     process_set=global_process_set):
    """In-place asynchronous allreduce of `tensor`."""
    op = handle_average_backwards_compatibility(op, average)
    return _allreduce_async(tensor, tensor, name, op, prescale_factor, postscale_factor, process_set)


def allreduce_(tensor, average=None, name=None, op=None, prescale_factor=1.0, postscale_factor=1.0,
               process_set=global_process_set):
    """In-place allreduce; returns `tensor`."""
    handle = allreduce_async_(tensor, average, name, op, prescale_factor, postscale_factor, process_set)
    return synchronize(handle)


class HorovodAllreduce(torch.autograd.Function):
    """An autograd function that performs allreduce on a tensor."""

    @staticmethod
    def forward(ctx, tensor, average, name, op, prescale_factor, postscale_factor, process_set, spec=None):
        ctx.average = average
        ctx.op = op
        ctx.prescale_factor = prescale_factor
        ctx.postscale_factor = postscale_factor
        ctx.process_set = process_set
        op = handle_average_backwards_compatibility(op, average)
        output = torch.empty_like(tensor, memory_format=torch.contiguous_format)
        state_key = None if name is None else "allreduce." + str(name)
        handle = _allreduce_async(tensor, output, name, op, prescale_factor, postscale_factor, process_set,
                                  spec=spec, state_key=state_key if spec is not None else None)
        return synchronize(handle)

    @staticmethod
    def backward(ctx, grad_output):
        return allreduce(grad_output, average=ctx.average, op=ctx.op, prescale_factor=ctx.prescale_factor,
                         postscale_factor=ctx.postscale_factor,
                         process_set=ctx.process_set), None, None, None, None, None, None, None


def allreduce(tensor, average=None, name=None, compression=Compression.none, op=None, prescale_factor=1.0,
              postscale_factor=1.0, process_set=global_process_set):
    """Allreduce into a new tensor (differentiable). `compression` picks the
    libsqz codec (Compression.q8, .topk(0.01), ...), run inside the library
    with error feedback keyed by `name`."""
    spec = spec_of(compression)
    tensor_compressed, ctx = compression.compress(tensor)
    summed = HorovodAllreduce.apply(tensor_compressed, average, name, op, prescale_factor, postscale_factor,
                                    process_set, spec)
    return compression.decompress(summed, ctx)


# ---------------------------------------------------------------- allgather
def _bytes_view(t):
    """A contiguous uint8 view of t's storage (same bytes)."""
    t = t.contiguous()
    if t.dtype == torch.bool:
        t = t.view(torch.uint8)
    return t.view(-1).view(torch.uint8) if t.numel() else torch.empty(0, dtype=torch.uint8, device=t.device)


def _allgather_async(tensor, output_holder, name, process_set):
    _check_process_set(process_set)
    c = _comm()
    if tensor.dtype not in _DTYPE_CODES:
        raise TypeError("sqz.torch.allgather: unsupported dtype %s" % tensor.dtype)
    t = tensor.detach()
    if t.dim() == 0:
        raise ValueError("allgather needs a tensor with at least one dimension")
    stream = _stream_of(t)
    rest = tuple(t.shape[1:])
    rest_hash = int.from_bytes(hashlib.blake2b(repr(rest).encode(), digest_size=7).digest(), "little")
    header = torch.tensor([_DTYPE_CODES.index(t.dtype), t.dim(), t.shape[0], rest_hash], dtype=torch.int64)
    src = t.contiguous()

    def run():
        ctx = torch.cuda.stream(stream) if stream is not None else _null()
        with ctx:
            every = torch.empty(c.size, 4, dtype=torch.int64)
            c.allgather(header.data_ptr(), every.data_ptr(), 4, _lib.INT64)
            rows = every.tolist()
            for r, h in enumerate(rows):
                if h[0] != rows[0][0]:
                    raise RuntimeError("Mismatched allgather tensor types: rank 0 has %s, rank %d has %s"
                                       % (_DTYPE_CODES[rows[0][0]], r, _DTYPE_CODES[h[0]]))
                if h[1] != rows[0][1] or h[3] != rows[0][3]:
                    raise RuntimeError("Mismatched allgather tensor shapes: every rank's tensor must have the "
                                       "same shape apart from the first dimension (rank %d differs from rank 0)"
                                       % r)
            dims = [h[2] for h in rows]
            out = torch.empty((sum(dims),) + rest, dtype=t.dtype, device=t.device)
            row_bytes = src.element_size() * (int(torch.tensor(rest).prod().item()) if rest else 1)
            mx = max(dims)
            if mx * row_bytes > 0:
                if all(d == mx for d in dims):
                    c.allgather(src.data_ptr(), out.data_ptr(), mx * row_bytes, _lib.UINT8, _raw(stream))
                else:
                    send = torch.zeros(mx * row_bytes, dtype=torch.uint8, device=t.device)
                    if src.numel():
                        send[:src.numel() * src.element_size()].copy_(_bytes_view(src))
                    recv = torch.empty(c.size * mx * row_bytes, dtype=torch.uint8, device=t.device)
                    c.allgather(send.data_ptr(), recv.data_ptr(), mx * row_bytes, _lib.UINT8, _raw(stream))
                    ob = _bytes_view(out)
                    off = 0
                    for r, d in enumerate(dims):
                        n = d * row_bytes
                        ob[off:off + n].copy_(recv[r * mx * row_bytes:r * mx * row_bytes + n])
                        off += n
            output_holder.append(out)
            return _event_after(stream)

    return _submit("allgather", name, run, output_holder, (tensor, src, header))


def allgather_async(tensor, name=None, process_set=global_process_set):
    """Asynchronous allgather along dim 0 (sizes may differ per rank)."""
    return _allgather_async(tensor, [], name, process_set)


class HorovodAllgather(torch.autograd.Function):
    """An autograd function that performs allgather on a tensor."""

    @staticmethod
    def forward(ctx, tensor, name, process_set):
        ctx.dim = tensor.shape[0]
        ctx.process_set = process_set
        handle = allgather_async(tensor, name, process_set)
        return synchronize(handle)

    @staticmethod
    def backward(ctx, grad_output):
        grad_reduced = allreduce(grad_output, op=Average, process_set=ctx.process_set)
        dim_t = torch.IntTensor([ctx.dim])
        dim = allgather(dim_t, process_set=ctx.process_set).view(size())
        r = rank()
        offset = torch.sum(dim.narrow(0, 0, r)).item() if r != 0 else 0
        return grad_reduced.narrow(0, offset, ctx.dim), None, None


def allgather(tensor, name=None, process_set=global_process_set):
    """Concatenation of every rank's tensor along dim 0 (differentiable)."""
    return HorovodAllgather.apply(tensor, name, process_set)


# ---------------------------------------------------------------- broadcast
def _broadcast_async(tensor, output, root_rank, name, process_set):
    _check_process_set(process_set)
    c = _comm()
    root_rank = int(root_rank)
    stream = _stream_of(tensor)
    src = tensor.detach()
    in_place = output is tensor and tensor.is_contiguous()
    if in_place:
        buf = src
    else:
        buf = torch.empty_like(src, memory_format=torch.contiguous_format)
        src = src.contiguous()
    if src.dtype in _DTYPE_TO_SQZ:
        send_t, recv_t, count, dt = src, buf, src.numel(), _DTYPE_TO_SQZ[src.dtype]
    else:  # int16, bool, complex, ...: raw bytes
        send_t, recv_t = _bytes_view(src), _bytes_view(buf)
        count, dt = send_t.numel(), _lib.UINT8

    def run():
        ctx = torch.cuda.stream(stream) if stream is not None else _null()
        with ctx:
            c.broadcast(send_t.data_ptr(), recv_t.data_ptr(), count, dt, root_rank, _raw(stream))
            if not in_place:
                output.copy_(buf)
            return _event_after(stream)

    return _submit("broadcast", name, run, output, (tensor, src, buf, send_t, recv_t))


def broadcast_async(tensor, root_rank, name=None, process_set=global_process_set):
    """Asynchronous broadcast of root_rank's tensor into a new tensor."""
    output = torch.empty_like(tensor, memory_format=torch.contiguous_format)
    return _broadcast_async(tensor, output, root_rank, name, process_set)


def broadcast_async_(tensor, root_rank, name=None, process_set=global_process_set):
    """In-place asynchronous broadcast."""
    return _broadcast_async(tensor, tensor, root_rank, name, process_set)


class HorovodBroadcast(torch.autograd.Function):
    """An autograd function that broadcasts a tensor."""

    @staticmethod
    def forward(ctx, tensor, root_rank, name, process_set):
        ctx.root_rank = root_rank
        ctx.process_set = process_set
        handle = broadcast_async(tensor, root_rank, name, process_set)
        return synchronize(handle)

    @staticmethod
    def backward(ctx, grad_output):
        grad_reduced = allreduce(grad_output, op=Average, process_set=ctx.process_set)
        if rank() != ctx.root_rank:
            grad_reduced *= 0
        return grad_reduced, None, None, None


def broadcast(tensor, root_rank, name=None, process_set=global_process_set):
    """root_rank's tensor, on every rank, as a new tensor (differentiable)."""
    return HorovodBroadcast.apply(tensor, root_rank, name, process_set)


def broadcast_(tensor, root_rank, name=None, process_set=global_process_set):
    """In-place broadcast; returns `tensor`."""
    handle = broadcast_async_(tensor, root_rank, name, process_set)
    return synchronize(handle)


# ---------------------------------------------------------------- handles
def poll(handle):
    """True if the operation behind `handle` has finished."""
    with _state.lock:
        if handle not in _state.handles:
            raise ValueError("Handle %s was not created or has been cleared." % handle)
        job = _state.handles[handle][0]
    return job.done.is_set()


def synchronize(handle):
    """Waits for the operation behind `handle`; returns its output tensor
    (raises the operation's error, RuntimeError, on failure)."""
    with _state.lock:
        if handle not in _state.handles:
            return None
        job, output, name, _keep = _state.handles[handle]
    job.wait()
    with _state.lock:
        _state.handles.pop(handle, None)
        if name is not None:
            _state.names.discard(name)
    if job.error is not None:
        raise _wrap_error(job.error)
    if isinstance(job.result, torch.cuda.Event if torch.cuda.is_available() else ()):
        torch.cuda.current_stream().wait_event(job.result)
    if isinstance(output, list):  # allgather: the output is made once sizes are known
        return output[0]
    return output


def join(device=-1):
    raise NotImplementedError("sqz.torch.join is not implemented: every rank must submit the same collectives")


def barrier(process_set=global_process_set):
    """Returns once every rank has reached the barrier (after this rank's
    previously queued collectives)."""
    _check_process_set(process_set)
    c = _comm()
    handle = _submit("barrier", None, c.barrier, None, None)
    synchronize(handle)


def _submit_job(fn, name=None, prefix="collective"):
    """Runs fn() on the progress thread after everything queued before it;
    returns a handle (used by DistributedOptimizer and the DDP hook)."""
    return _submit(prefix, name, fn, None, None)


def _job_of(handle):
    with _state.lock:
        return _state.handles[handle][0]

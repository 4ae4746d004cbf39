"""Horovod's torch collective ops (horovod/torch/mpi_ops.py) over libsqz.

Names, signatures, defaults and semantics follow Horovod 0.28.1 (the
differences are listed in python/README.md). Asynchronous ops return an
integer handle; the collective runs on sqz's progress thread (one thread,
submission order), so every synchronous call, barrier() and join()
included, runs after the ops this rank submitted before it, and `poll` is
False while an op is in flight.

There is no coordinator: ranks pair their collectives in the order each
submits them. Every call's header carries a digest of its description
(name, shapes, dtypes, op, scale factors, root: agreement.py), so ranks that
disagree all raise HorovodInternalError with Horovod's message, fused or
not, and the job goes on. An op that a rank fails to submit (a name still
in flight, a bad argument) still takes its turn: a placeholder goes out in
its stead, so the other ranks' matching op fails at once and later calls
stay paired.
"""
import atexit
import collections
import functools
import hashlib
import inspect
import os
import socket
import threading
import types
import warnings

import torch

from .. import _lib
from .. import timeline as _timeline
from ..comm import Communicator
from ..engine import Engine
from . import agreement
from .agreement import HorovodInternalError  # noqa: F401 (Horovod's name)
from .compression import Compression, library_spec
from .reduction import (Average, Sum, Adasum, Min, Max, Product,  # noqa: F401 (Horovod's names)
                        DTYPE_TO_SQZ as _DTYPE_TO_SQZ, OP_TO_SQZ as _OP_TO_SQZ, pack, reduce_buffer, unpack,
                        wire_dtype)

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


def add_process_set(process_set):
    raise NotImplementedError("sqz.torch does not provide process sets other than the global one "
                              "(hvd.add_process_set)")


def remove_process_set(process_set):
    raise NotImplementedError("sqz.torch does not provide process sets other than the global one "
                              "(hvd.remove_process_set)")


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
_thread = threading.local()  # per thread: ops submitted, depth of public calls (_paired)


# ---------------------------------------------------------------- basics
# Horovod variables sqz.torch acts on (python/README.md has the full table).
_HONOURED = ("HOROVOD_FUSION_THRESHOLD", "HOROVOD_TIMELINE")
# Variables only Horovod's build reads: no effect at run time, for Horovod either.
_BUILD_ONLY = ("HOROVOD_WITH_", "HOROVOD_WITHOUT_", "HOROVOD_BUILD_", "HOROVOD_GPU", "HOROVOD_NCCL_",
               "HOROVOD_CUDA_", "HOROVOD_ROCM_", "HOROVOD_CMAKE", "HOROVOD_DEBUG", "HOROVOD_MPICXX_SHOW",
               "HOROVOD_ALLOW_MIXED_GPU_IMPL")
_SQZ_INSTEAD = {
    "HOROVOD_CYCLE_TIME": "sqz has no negotiation cycle: an op starts when submitted, and DistributedOptimizer "
                          "submits each fusion bucket as soon as its gradients are ready",
    "HOROVOD_TIMELINE_MARK_CYCLES": "sqz has no cycles to mark",
    "HOROVOD_CACHE_CAPACITY": "sqz has no response cache (no negotiation)",
    "HOROVOD_HIERARCHICAL_ALLREDUCE": "libsqz's tuner picks hierarchical plans; SQZ_TUNE forces one",
    "HOROVOD_HIERARCHICAL_ALLGATHER": "sqz's allgather is flat",
    "HOROVOD_AUTOTUNE": "use SQZ_COMPRESSION=auto / hvd.Compression.auto",
    "HOROVOD_STALL_CHECK_DISABLE": "every sqz collective is bounded by SQZ_TIMEOUT instead",
    "HOROVOD_STALL_CHECK_TIME_SECONDS": "every sqz collective is bounded by SQZ_TIMEOUT instead",
    "HOROVOD_STALL_SHUTDOWN_TIME_SECONDS": "every sqz collective is bounded by SQZ_TIMEOUT instead",
    "HOROVOD_LOG_LEVEL": "use SQZ_DEBUG",
    "HOROVOD_CPU_OPERATIONS": "sqz moves data with libsqz (UCX), never MPI, Gloo or oneCCL",
    "HOROVOD_CONTROLLER": "sqz has no controller",
}


def _horovod_environment():
    """Acts on the HOROVOD_* variables: a horovodrun Gloo launch is an error
    (sqz cannot join its rendezvous), HOROVOD_TIMELINE stands for
    SQZ_TIMELINE, and every other run-time variable gets a warning that sqz
    ignores it. Nothing Horovod reads is ignored in silence."""
    env = os.environ
    if "HOROVOD_RANK" in env and not any(k in env for k in ("RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")):
        raise RuntimeError("sqz.torch: this process was started by horovodrun's Gloo launcher (HOROVOD_RANK is set), "
                           "whose rendezvous sqz cannot join; launch with `python -m sqz.run -np N`, `mpirun`, "
                           "`horovodrun --mpi` or torchrun")
    if env.get("HOROVOD_TIMELINE") and not env.get("SQZ_TIMELINE"):
        env["SQZ_TIMELINE"] = env["HOROVOD_TIMELINE"]
    ignored = []
    for k in sorted(env):
        if not k.startswith("HOROVOD_") or k in _HONOURED or k.startswith(_BUILD_ONLY):
            continue
        if k in ("HOROVOD_RANK", "HOROVOD_SIZE", "HOROVOD_LOCAL_RANK", "HOROVOD_LOCAL_SIZE", "HOROVOD_CROSS_RANK",
                 "HOROVOD_CROSS_SIZE", "HOROVOD_HOSTNAME") and "OMPI_COMM_WORLD_RANK" in env:
            continue  # horovodrun --mpi: the ranks come from mpirun's variables, which agree
        ignored.append("%s (%s)" % (k, _SQZ_INSTEAD.get(k, "no sqz equivalent")))
    if ignored:
        warnings.warn("sqz.torch ignores these Horovod settings: " + "; ".join(ignored)
                      + ". See the Horovod table in sqz's python/README.md.", stacklevel=3)


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
        _horovod_environment()
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


def cuda_built():
    """Whether the loaded libsqz serves CUDA tensors (sqzGetFeatures)."""
    return bool(_lib.load().features() & _lib.FEATURE_CUDA)


def nccl_built():
    """1 when libsqz has its NCCL transport (CUDA builds; NCCL itself is
    loaded at run time), else 0. Horovod returns NCCL's version here."""
    return int(cuda_built())


def ddl_built():
    return False


def ccl_built():
    return False


def rocm_built():
    return False


def start_timeline(file_path, mark_cycles=False):
    if mark_cycles:
        warnings.warn("sqz.torch.start_timeline: mark_cycles has no effect (sqz has no negotiation cycles)",
                      stacklevel=2)
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


_LEGACY_TYPE = {torch.float32: "FloatTensor", torch.float64: "DoubleTensor", torch.float16: "HalfTensor",
                torch.bfloat16: "BFloat16Tensor", torch.int8: "CharTensor", torch.uint8: "ByteTensor",
                torch.int16: "ShortTensor", torch.int32: "IntTensor", torch.int64: "LongTensor",
                torch.bool: "BoolTensor"}


def _type_name(tensor):
    """tensor.type(), which torch does not implement for every device."""
    try:
        return tensor.type()
    except RuntimeError:
        return "torch.%s.%s" % (tensor.device.type, _LEGACY_TYPE.get(tensor.dtype, str(tensor.dtype)))


def _check_device(tensor):
    """CPU tensors always; CUDA tensors only with a CUDA build of libsqz
    (a build without CUDA would read the device pointer as host memory)."""
    dev = tensor.device.type
    if dev == "cpu" or (dev == "cuda" and cuda_built()):
        return
    if dev == "cuda":
        why = ("this libsqz (%s) was built without CUDA (sqz.torch.cuda_built() is False): pass CPU tensors, or "
               "install a CUDA build of sqz" % _lib.load().path)
    else:
        why = "sqz serves CPU tensors, and CUDA tensors in CUDA builds, not tensors on device %r" % dev
    raise ValueError("Tensor type %s is not supported: %s." % (_type_name(tensor), why))


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


class _Later:
    """An output known only when the op has run (allgather's, join's)."""
    value = None


def _register(job, output, name, keep):
    with _state.lock:
        h = _state.next_handle
        _state.next_handle += 1
        _state.handles[h] = (job, output, name, keep)
        return h


_DUPLICATE = ("Requested to allreduce, allgather, or broadcast a tensor with the same name as another tensor that is "
              "currently being processed.  If you want to request another tensor, use a different tensor name.")


def _reserve_name(prefix, name):
    """Horovod's op names: "<op>.<name>"; unnamed ops are never duplicates."""
    with _state.lock:
        if name is None:
            return None
        full = "%s.%s" % (prefix, name)
        if full in _state.names:
            raise ValueError("%s (%s)" % (_DUPLICATE, full))
        _state.names.add(full)
        return full


def _submit(prefix, name, desc, fn, output, keep):
    """Queues fn on the progress thread; `desc` (agreement.describe) tags
    its first libsqz call. Returns the handle."""
    c = _comm()
    full = _reserve_name(prefix, name)
    job_fn = fn if desc is None else functools.partial(agreement.run_agreed, c, desc, fn)
    try:
        job = _state.engine.submit(job_fn, full or prefix)
    except BaseException:
        if full is not None:
            with _state.lock:
                _state.names.discard(full)
        raise
    _thread.submitted = getattr(_thread, "submitted", 0) + 1
    return _register(job, output, full, keep)


def _submit_refused(kind, name, error):
    """The placeholder for an op this rank raised on instead of submitting:
    a tagged barrier. Ranks that refused the same op agree with each other
    and move no data; ranks that submitted it fail it at once, with a
    message naming this rank's error."""
    c = _state.comm
    desc = agreement.rejected(kind, name, error)
    _state.engine.submit(functools.partial(agreement.run_agreed, c, desc, c.barrier), "refused." + kind.lower())


def _paired(kind):
    """Decorates a public op: if it raises before anything was submitted on
    this thread, a placeholder takes its turn (_submit_refused). Only the
    outermost decorated call acts (allreduce -> allreduce_async)."""
    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            depth = getattr(_thread, "depth", 0)
            before = getattr(_thread, "submitted", 0)
            _thread.depth = depth + 1
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                if depth == 0 and getattr(_thread, "submitted", 0) == before and is_initialized():
                    try:
                        name = signature.bind_partial(*args, **kwargs).arguments.get("name")
                    except TypeError:
                        name = None
                    _submit_refused(kind, name, e)
                raise
            finally:
                _thread.depth = depth
        return call
    return wrap


def _check_op(op):
    if op == Adasum:
        raise NotImplementedError("sqz.torch does not implement Adasum")
    if op not in _OP_TO_SQZ:
        raise ValueError("unknown reduction op %r" % (op,))


def _check_reducible(tensor):
    _check_device(tensor)
    if tensor.is_sparse:
        raise NotImplementedError("sqz.torch: sparse tensors are not supported; pass sparse_as_dense=True")
    if wire_dtype(tensor.dtype) not in _DTYPE_TO_SQZ:
        raise ValueError("Tensor type %s is not supported." % _type_name(tensor))


# ---------------------------------------------------------------- allreduce
class _Fused:
    """The tensors of one libsqz call: same wire dtype. A lone contiguous
    tensor is reduced where it lies (or straight into its output); others
    go through one flat buffer, packed when the job runs."""

    def __init__(self, inputs, outputs, prescale):
        self.inputs = [t.detach() for t in inputs]
        self.outputs = outputs
        self.send = None
        t, o = self.inputs[0], outputs[0]
        same = wire_dtype(t.dtype) == t.dtype and t.is_contiguous() and o.is_contiguous()
        if len(inputs) == 1 and same and o.data_ptr() == t.data_ptr():
            self.buf, self.copy_in, self.copy_out = t, False, False  # in place
        elif len(inputs) == 1 and same and o.dtype == t.dtype:
            self.buf, self.copy_out = o, False  # straight into the output
            self.copy_in = prescale != 1.0  # else the library reads the input itself
            self.send = None if self.copy_in else t
        else:
            self.buf = torch.empty(sum(x.numel() for x in inputs), dtype=wire_dtype(t.dtype), device=t.device)
            self.copy_in = self.copy_out = True

    def run(self, c, op, prescale, postscale, spec, state_key, stream):
        if self.copy_in:
            pack(self.inputs, self.buf)
        reduce_buffer(c, self.buf, op, prescale, postscale, spec=spec, state_key=state_key, stream=stream,
                      send=self.send)
        if self.copy_out:
            unpack(self.buf, self.outputs)


def _grouped_allreduce_async(tensors, outputs, name, op, prescale_factor, postscale_factor, process_set, spec=None,
                             state_key=None, result=None):
    """One job: the tensors grouped by wire dtype (in order of first
    appearance), one libsqz call per group, the first tagged with the
    description of them all. synchronize() returns `result`, or the list of
    outputs."""
    _check_process_set(process_set)
    _comm()
    _check_op(op)
    if len(tensors) == 0:
        raise ValueError("grouped_allreduce needs at least one tensor")
    for t in tensors:
        _check_reducible(t)
    if len({t.device for t in tensors}) > 1:
        raise ValueError("sqz.torch: the tensors of one grouped op must be on one device")
    desc = agreement.describe("ALLREDUCE", name, tensors, op, (prescale_factor, postscale_factor))
    groups = collections.OrderedDict()
    for i, t in enumerate(tensors):
        groups.setdefault(wire_dtype(t.dtype), []).append(i)
    fused = [_Fused([tensors[i] for i in idx], [outputs[i] for i in idx], prescale_factor)
             for idx in groups.values()]
    stream = _stream_of(tensors[0])
    c = _state.comm

    def run():
        with (torch.cuda.stream(stream) if stream is not None else _null()), torch.no_grad():
            for k, f in enumerate(fused):
                key = None if state_key is None else (state_key if len(fused) == 1 else "%s.%d" % (state_key, k))
                f.run(c, op, prescale_factor, postscale_factor, spec, key, stream)
            return _event_after(stream)

    # synchronize() returns Horovod's tuple of outputs (grouped_allreduce itself returns a list).
    return _submit("allreduce", name, desc, run, tuple(outputs) if result is None else result, (tensors, fused))


def _allreduce_async(tensor, output, name, op, prescale_factor, postscale_factor, process_set, spec=None,
                     state_key=None):
    return _grouped_allreduce_async([tensor], [output], name, op, prescale_factor, postscale_factor, process_set,
                                    spec, state_key, result=output)


@_paired("ALLREDUCE")
def allreduce_async(tensor, average=None, name=None, op=None, prescale_factor=1.0, postscale_factor=1.0,
                    process_set=global_process_set):
    """Asynchronous allreduce into a new tensor; returns a handle for poll()
    and synchronize(). The input is not modified."""
    op = handle_average_backwards_compatibility(op, average)
    output = torch.empty_like(tensor, memory_format=torch.contiguous_format)
    return _allreduce_async(tensor, output, name, op, prescale_factor, postscale_factor, process_set)


@_paired("ALLREDUCE")
def allreduce_async_(tensor, average=None, name=None, op=None, prescale_factor=1.0, postscale_factor=1.0,
                     process_set=global_process_set):
    """In-place asynchronous allreduce of `tensor`."""
    op = handle_average_backwards_compatibility(op, average)
    return _allreduce_async(tensor, tensor, name, op, prescale_factor, postscale_factor, process_set)


@_paired("ALLREDUCE")
def allreduce_(tensor, average=None, name=None, op=None, prescale_factor=1.0, postscale_factor=1.0,
               process_set=global_process_set):
    """In-place allreduce; returns `tensor`."""
    handle = allreduce_async_(tensor, average, name, op, prescale_factor, postscale_factor, process_set)
    return synchronize(handle)


def _remember_reduction(ctx, average, op, prescale_factor, postscale_factor, process_set):
    """What an allreduce's backward repeats (the same reduction of the gradients)."""
    ctx.average, ctx.op, ctx.process_set = average, op, process_set
    ctx.prescale_factor, ctx.postscale_factor = prescale_factor, postscale_factor


class HorovodAllreduce(torch.autograd.Function):
    """An autograd function that performs allreduce on a tensor."""

    @staticmethod
    def forward(ctx, tensor, average, name, op, prescale_factor, postscale_factor, process_set, spec=None):
        _remember_reduction(ctx, average, op, prescale_factor, postscale_factor, process_set)
        op = handle_average_backwards_compatibility(op, average)
        output = torch.empty_like(tensor, memory_format=torch.contiguous_format)
        state_key = None if name is None or spec is None else "allreduce." + str(name)
        handle = _allreduce_async(tensor, output, name, op, prescale_factor, postscale_factor, process_set,
                                  spec=spec, state_key=state_key)
        return synchronize(handle)

    @staticmethod
    def backward(ctx, grad_output):
        return allreduce(grad_output, average=ctx.average, op=ctx.op, prescale_factor=ctx.prescale_factor,
                         postscale_factor=ctx.postscale_factor,
                         process_set=ctx.process_set), None, None, None, None, None, None, None


@_paired("ALLREDUCE")
def allreduce(tensor, average=None, name=None, compression=Compression.none, op=None, prescale_factor=1.0,
              postscale_factor=1.0, process_set=global_process_set):
    """Allreduce into a new tensor (differentiable). `compression` follows
    Horovod's protocol (compress, allreduce, decompress); sqz's codecs
    (Compression.q8, .topk(0.01), ...) run inside libsqz with error
    feedback keyed by `name`."""
    spec = library_spec(compression)
    if spec is not None:
        return HorovodAllreduce.apply(tensor, average, name, op, prescale_factor, postscale_factor, process_set,
                                      spec)
    tensor_compressed, ctx = compression.compress(tensor)
    summed = HorovodAllreduce.apply(tensor_compressed, average, name, op, prescale_factor, postscale_factor,
                                    process_set, None)
    return compression.decompress(summed, ctx)


# ---------------------------------------------------------------- grouped allreduce
@_paired("ALLREDUCE")
def grouped_allreduce_async(tensors, average=None, name=None, op=None, prescale_factor=1.0, postscale_factor=1.0,
                            process_set=global_process_set):
    """Asynchronous allreduce of a list of tensors as one group (one
    negotiated call per dtype); synchronize() returns the list of outputs."""
    op = handle_average_backwards_compatibility(op, average)
    outputs = [torch.empty_like(t, memory_format=torch.contiguous_format) for t in tensors]
    return _grouped_allreduce_async(list(tensors), outputs, name, op, prescale_factor, postscale_factor, process_set)


@_paired("ALLREDUCE")
def grouped_allreduce_async_(tensors, average=None, name=None, op=None, prescale_factor=1.0, postscale_factor=1.0,
                             process_set=global_process_set):
    """In-place asynchronous grouped allreduce."""
    op = handle_average_backwards_compatibility(op, average)
    return _grouped_allreduce_async(list(tensors), list(tensors), name, op, prescale_factor, postscale_factor,
                                    process_set)


@_paired("ALLREDUCE")
def grouped_allreduce_(tensors, average=None, name=None, op=None, prescale_factor=1.0, postscale_factor=1.0,
                       process_set=global_process_set):
    """In-place grouped allreduce; returns the list of tensors."""
    handle = grouped_allreduce_async_(tensors, average, name, op, prescale_factor, postscale_factor, process_set)
    return synchronize(handle)


class HorovodGroupedAllreduce(torch.autograd.Function):
    """An autograd function that performs a grouped allreduce."""

    @staticmethod
    def forward(ctx, average, name, op, prescale_factor, postscale_factor, process_set, spec, *tensors):
        _remember_reduction(ctx, average, op, prescale_factor, postscale_factor, process_set)
        op = handle_average_backwards_compatibility(op, average)
        outputs = [torch.empty_like(t, memory_format=torch.contiguous_format) for t in tensors]
        state_key = None if name is None or spec is None else "grouped_allreduce." + str(name)
        handle = _grouped_allreduce_async(list(tensors), outputs, name, op, prescale_factor, postscale_factor,
                                          process_set, spec=spec, state_key=state_key)
        return tuple(synchronize(handle))

    @staticmethod
    def backward(ctx, *grad_output):
        grad_reduced = grouped_allreduce(list(grad_output), average=ctx.average, op=ctx.op,
                                         prescale_factor=ctx.prescale_factor, postscale_factor=ctx.postscale_factor,
                                         process_set=ctx.process_set)
        return (None, None, None, None, None, None, None, *grad_reduced)


@_paired("ALLREDUCE")
def grouped_allreduce(tensors, average=None, name=None, compression=Compression.none, op=None, prescale_factor=1.0,
                      postscale_factor=1.0, process_set=global_process_set):
    """Allreduce of a list of tensors as one group (differentiable); returns
    a list. Compression as in allreduce (per tensor, Horovod's protocol)."""
    tensors = list(tensors)
    spec = library_spec(compression)
    if spec is not None:  # sqz's codecs run inside the library, with error feedback keyed by `name`
        return list(HorovodGroupedAllreduce.apply(average, name, op, prescale_factor, postscale_factor, process_set,
                                                  spec, *tensors))
    compressed, ctxs = zip(*[compression.compress(t) for t in tensors])
    summed = HorovodGroupedAllreduce.apply(average, name, op, prescale_factor, postscale_factor, process_set, None,
                                           *compressed)
    return [compression.decompress(t, c) for t, c in zip(summed, ctxs)]


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
    _check_device(tensor)
    if tensor.dtype not in _DTYPE_CODES:
        raise ValueError("Tensor type %s is not supported." % _type_name(tensor))
    t = tensor.detach()
    if t.dim() == 0:
        raise ValueError("allgather needs a tensor with at least one dimension")
    stream = _stream_of(t)
    rest = tuple(t.shape[1:])
    # dtype and every dimension but the first are in the call's tag; the
    # first call exchanges the first dimensions.
    desc = agreement.describe("ALLGATHER", name, [t], gather=True)
    header = torch.tensor([t.shape[0]], dtype=torch.int64)
    src = t.contiguous()

    def run():
        with (torch.cuda.stream(stream) if stream is not None else _null()):
            every = torch.empty(c.size, dtype=torch.int64)
            c.allgather(header.data_ptr(), every.data_ptr(), 1, _lib.INT64)
            dims = every.tolist()
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
            output_holder.value = out
            return _event_after(stream)

    return _submit("allgather", name, desc, run, output_holder, (tensor, src, header))


@_paired("ALLGATHER")
def allgather_async(tensor, name=None, process_set=global_process_set):
    """Asynchronous allgather along dim 0 (sizes may differ per rank)."""
    return _allgather_async(tensor, _Later(), name, process_set)


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


@_paired("ALLGATHER")
def allgather(tensor, name=None, process_set=global_process_set):
    """Concatenation of every rank's tensor along dim 0 (differentiable)."""
    if tensor.dim() == 0:
        raise ValueError("allgather needs a tensor with at least one dimension")
    return HorovodAllgather.apply(tensor, name, process_set)


# ---------------------------------------------------------------- broadcast
def _broadcast_async(tensor, output, root_rank, name, process_set):
    _check_process_set(process_set)
    c = _comm()
    _check_device(tensor)
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
    desc = agreement.describe("BROADCAST", name, [tensor], root=root_rank)

    def run():
        with (torch.cuda.stream(stream) if stream is not None else _null()):
            c.broadcast(send_t.data_ptr(), recv_t.data_ptr(), count, dt, root_rank, _raw(stream))
            if not in_place:
                output.copy_(buf)
            return _event_after(stream)

    return _submit("broadcast", name, desc, run, output, (tensor, src, buf, send_t, recv_t))


@_paired("BROADCAST")
def broadcast_async(tensor, root_rank, name=None, process_set=global_process_set):
    """Asynchronous broadcast of root_rank's tensor into a new tensor."""
    output = torch.empty_like(tensor, memory_format=torch.contiguous_format)
    return _broadcast_async(tensor, output, root_rank, name, process_set)


@_paired("BROADCAST")
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


@_paired("BROADCAST")
def broadcast(tensor, root_rank, name=None, process_set=global_process_set):
    """root_rank's tensor, on every rank, as a new tensor (differentiable)."""
    return HorovodBroadcast.apply(tensor, root_rank, name, process_set)


@_paired("BROADCAST")
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
    """Waits for the operation behind `handle`; returns its output (raises
    HorovodInternalError when the operation failed, as Horovod does)."""
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
        e = job.error
        raise e if isinstance(e, HorovodInternalError) else HorovodInternalError(str(e)) from e
    if isinstance(job.result, torch.cuda.Event if torch.cuda.is_available() else ()):
        torch.cuda.current_stream().wait_event(job.result)
    if isinstance(output, _Later):
        return output.value
    return output


def join(device=-1):
    """This rank is out of data: until every rank has joined, it takes part
    in the other ranks' allreduces with zeros (Average still divides by
    size()). Returns the rank that joined last, on every rank. While a rank
    has joined, the others' broadcasts and allgathers fail (as Horovod's)."""
    c = _comm()
    if not isinstance(device, int):
        raise ValueError("join: device must be an int (-1: CPU), got %r" % (device,))
    holder = _Later()

    def run():
        holder.value = c.join()

    return synchronize(_submit("join", None, None, run, holder, None))


@_paired("BARRIER")
def barrier(process_set=global_process_set):
    """Returns once every rank has reached the barrier (after this rank's
    previously queued collectives)."""
    _check_process_set(process_set)
    c = _comm()
    synchronize(_submit("barrier", None, agreement.describe("BARRIER"), c.barrier, None, None))


def _submit_job(fn, name=None, prefix="collective", desc=None):
    """Runs fn() on the progress thread after everything queued before it;
    returns a handle (used by DistributedOptimizer)."""
    return _submit(prefix, name, desc, fn, None, None)


def _job_of(handle):
    with _state.lock:
        return _state.handles[handle][0]


# ---------------------------------------------------------------- not provided
def _not_provided(name, what):
    def fn(*args, **kwargs):
        raise NotImplementedError("sqz.torch does not provide %s (Horovod's %s); see the Horovod table in sqz's "
                                  "python/README.md" % (name, what))
    fn.__name__ = name
    fn.__doc__ = "Not provided by sqz.torch: raises NotImplementedError."
    return fn


sparse_allreduce_async = _not_provided("sparse_allreduce_async", "allgather-based sparse allreduce; pass "
                                       "sparse_as_dense=True to DistributedOptimizer")
grouped_allgather = _not_provided("grouped_allgather", "grouped allgather; call allgather per tensor")
grouped_allgather_async = _not_provided("grouped_allgather_async", "grouped allgather; call allgather_async per "
                                        "tensor")
alltoall = _not_provided("alltoall", "alltoall")
alltoall_async = _not_provided("alltoall_async", "alltoall")
reducescatter = _not_provided("reducescatter", "reducescatter")
reducescatter_async = _not_provided("reducescatter_async", "reducescatter")
grouped_reducescatter = _not_provided("grouped_reducescatter", "grouped reducescatter")
grouped_reducescatter_async = _not_provided("grouped_reducescatter_async", "grouped reducescatter")


class _NotProvidedModule(types.ModuleType):
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise NotImplementedError("sqz.torch does not provide Horovod's elastic training (hvd.elastic.%s); see the "
                                  "Horovod table in sqz's python/README.md" % attr)


elastic = _NotProvidedModule("sqz.torch.elastic", "Not provided: Horovod's elastic training.")

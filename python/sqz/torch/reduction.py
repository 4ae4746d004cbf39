"""One allreduce of a group of same-dtype tensors, with Horovod's
semantics: prescale, reduce, postscale, in the tensors' own dtype.

Horovod 0.28.1 (common/ops/collective_operations.cc, ScaleBuffer) scales
float32 by (float)factor in float, float64 in double, float16 through float
and back (round to nearest even), and integers through double, truncating
toward zero. Average is a Sum whose postscale is divided by the number of
ranks. A lossy sqz codec instead averages inside libsqz (sqzAvg: the
compressed float32 sum divided once), which is the library's business.
"""
import torch

from .. import _lib

# Reduction ops (Horovod's numbering: Average=0, Sum=1, Adasum=2, Min=3, Max=4, Product=5).
Average = 0
Sum = 1
Adasum = 2
Min = 3
Max = 4
Product = 5

OP_TO_SQZ = {Sum: _lib.SUM, Min: _lib.MIN, Max: _lib.MAX, Product: _lib.PROD, Average: _lib.AVG}

DTYPE_TO_SQZ = {
    torch.int8: _lib.INT8, torch.uint8: _lib.UINT8, torch.int32: _lib.INT32, torch.int64: _lib.INT64,
    torch.float16: _lib.FLOAT16, torch.float32: _lib.FLOAT32, torch.float64: _lib.FLOAT64,
    torch.bfloat16: _lib.BFLOAT16,
}


def wire_dtype(dtype):
    """The dtype the library reduces `dtype` in: int16 (not an sqz type)
    goes as int32 and wraps back to the same modular sum."""
    return torch.int32 if dtype == torch.int16 else dtype


def scale_(t, factor):
    """In place, as Horovod's ScaleBuffer: see the module's docstring."""
    if factor == 1.0:
        return t
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.copy_(t.float().mul_(factor))
    if t.is_floating_point():
        return t.mul_(factor)
    return t.copy_((t.double() * factor).to(t.dtype))


def library_op(op, prescale, postscale, nranks, lossy):
    """(sqz op, prescale, postscale) that give Horovod's `op` with its factors."""
    if op == Average and not lossy:
        return _lib.SUM, prescale, postscale / nranks
    return OP_TO_SQZ[op], prescale, postscale


def pack(tensors, flat):
    """Copies tensors, flattened, one after the other into `flat`."""
    off = 0
    for t in tensors:
        n = t.numel()
        flat[off:off + n].copy_(t.reshape(-1))
        off += n


def unpack(flat, outputs):
    """The inverse of pack: copies consecutive slices of `flat` into outputs."""
    off = 0
    for o in outputs:
        n = o.numel()
        o.copy_(flat[off:off + n].view(o.shape))
        off += n


def reduce_buffer(comm, buf, op, prescale, postscale, spec=None, state_key=None, stream=None, send=None):
    """Allreduces into the contiguous buffer `buf` (run on the progress
    thread): prescale, libsqz, postscale. The input is `buf` itself, or
    `send` (same size and dtype; only with prescale 1). `spec`: a library
    codec for float buffers (None: the communicator's policy)."""
    lossy = spec not in (None, "none") and buf.is_floating_point()
    sqz_op, pre, post = library_op(op, prescale, postscale, comm.size, lossy)
    if send is None:
        send = buf
        scale_(buf, pre)
    elif pre != 1.0:
        raise ValueError("reduce_buffer: a separate send buffer cannot be prescaled")
    comm.allreduce(send.data_ptr(), buf.data_ptr(), buf.numel(), DTYPE_TO_SQZ[buf.dtype], sqz_op,
                   None if stream is None else stream.cuda_stream,
                   spec=spec if buf.is_floating_point() else None, state_key=state_key)
    scale_(buf, post)
    return buf

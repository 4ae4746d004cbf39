"""Horovod's Compression namespace (horovod/torch/compression.py), plus
sqz's codecs.

Every compressor keeps Horovod's protocol: `compress(tensor)` returns the
tensor to send and a context, `decompress(tensor, ctx)` undoes it, and an
allreduce runs compress -> allreduce -> decompress. `Compression.fp16`
really casts to float16, as Horovod's does.

sqz's codecs (q8 .. q1, bf16, topk, randk, auto) cannot be written as a
cast: they run inside libsqz, fused with the collective, with error
feedback per tensor name. Their compress/decompress are the identity, and
their `spec` tells the allreduce which codec to ask the library for.
`library_spec` decides when the library codec runs: only while the
compressor's compress/decompress are the built-in ones. A subclass that
overrides them (a user's own Compressor, whatever its base) gets Horovod's
protocol, run in Python around an exact allreduce.
"""
import torch


class Compressor:
    """Interface for compressing and decompressing a given tensor."""
    spec = None

    @staticmethod
    def compress(tensor):
        """Compresses a tensor and returns it with the context needed to decompress it."""
        return tensor, None

    @staticmethod
    def decompress(tensor, ctx):
        """Decompress the tensor with the given context."""
        return tensor


class NoneCompressor(Compressor):
    """Default: no compression (Compressor's identity). Leaves the choice to
    the communicator's policy, which is SQZ_COMPRESSION (default "none"),
    so setting that variable compresses an unchanged Horovod script."""


class FP16Compressor(Compressor):
    """Compress all floating point gradients to 16-bit (Horovod's cast).
    In an allreduce or DistributedOptimizer, sqz runs this cast inside
    libsqz (codec "fp16": float16 on the wire, sums in float32)."""
    spec = "fp16"

    @staticmethod
    def compress(tensor):
        """Downcasts the tensor to 16-bit."""
        tensor_compressed = tensor
        if tensor.dtype.is_floating_point:
            # Only allow compression from other floating point types
            tensor_compressed = tensor.type(torch.float16)
        return tensor_compressed, tensor.dtype

    @staticmethod
    def decompress(tensor, ctx):
        """Upcasts the tensor to the initialization dtype."""
        tensor_decompressed = tensor
        dtype = ctx
        if dtype.is_floating_point:
            tensor_decompressed = tensor.type(dtype)
        return tensor_decompressed


class BF16Compressor(Compressor):
    """As FP16Compressor, with bfloat16 (sqz codec "bf16")."""
    spec = "bf16"

    @staticmethod
    def compress(tensor):
        """Downcasts floating-point tensors to bfloat16."""
        if tensor.dtype.is_floating_point:
            return tensor.type(torch.bfloat16), tensor.dtype
        return tensor, tensor.dtype

    @staticmethod
    def decompress(tensor, ctx):
        """Upcasts to the dtype the tensor had."""
        return tensor.type(ctx) if ctx.is_floating_point else tensor


class _LibraryCodec(Compressor):
    """A codec that exists only inside libsqz: compress/decompress are
    Compressor's identity here, and the allreduce runs `spec` in the
    library (its output is already decoded)."""
    spec = "none"

    def __repr__(self):
        return "Compression(%r)" % self.spec


def _codec(name, spec, doc):
    return type(name, (_LibraryCodec,), {"spec": spec, "__doc__": doc})


class Compression:
    """Optional gradient compression algorithm used during allreduce."""

    """Do not compress the gradients. This is the default."""
    none = NoneCompressor

    """Compress all floating point gradients to 16-bit."""
    fp16 = FP16Compressor
    bf16 = BF16Compressor
    q8 = _codec("Q8Compressor", "q8", "Blockwise 8-bit stochastic quantization with error feedback.")
    q4 = _codec("Q4Compressor", "q4", "Blockwise 4-bit stochastic quantization with error feedback.")
    q2 = _codec("Q2Compressor", "q2", "Blockwise 2-bit stochastic quantization with error feedback.")
    q1 = _codec("Q1Compressor", "q1", "Blockwise 1-bit stochastic quantization with error feedback.")
    sign = _codec("SignCompressor", "sign",
                  "Scaled sign: one bit per element, one scale per block of 256, with error feedback.")
    sign_rot = _codec("RotatedSignCompressor", "sign:rot",
                      "Scaled sign of each block after a random Hadamard rotation (libsqz's sign:rot).")
    auto = _codec("AutoCompressor", "auto", "Level chosen per call by libsqz's tuner.")

    @staticmethod
    def topk(ratio):
        """Top-K sparsification keeping `ratio` of the elements (0 < ratio <= 1)."""
        return _codec("TopKCompressor", "topk:%s" % _ratio(ratio), "Top-K sparsification.")

    @staticmethod
    def randk(ratio):
        """Random-K sparsification keeping `ratio` of the elements (shared seed)."""
        return _codec("RandKCompressor", "randk:%s" % _ratio(ratio), "Random-K sparsification.")

    @staticmethod
    def from_spec(spec):
        """The compressor for a libsqz spec string ("none", "q4", "topk:0.01", ...)."""
        if spec is None or spec == "":
            return Compression.none
        s = spec.strip().lower()
        if s.startswith("topk:"):
            return Compression.topk(float(s[5:]))
        if s.startswith("randk:"):
            return Compression.randk(float(s[6:]))
        if s == "none":
            return _codec("ExactCompressor", "none", "Exact (no compression), whatever SQZ_COMPRESSION says.")
        table = {"fp16": Compression.fp16, "bf16": Compression.bf16, "q8": Compression.q8, "q4": Compression.q4,
                 "q2": Compression.q2, "q1": Compression.q1, "sign": Compression.sign,
                 "sign:rot": Compression.sign_rot, "auto": Compression.auto}
        if s not in table:
            raise ValueError("unknown compression spec %r (none, fp16, bf16, q8, q4, q2, q1, sign, sign:rot, topk:R, "
                             "randk:R, auto)" % spec)
        return table[s]


def _ratio(ratio):
    r = float(ratio)
    if not 0.0 < r <= 1.0:
        raise ValueError("compression ratio must be in (0, 1], got %r" % (ratio,))
    return repr(r)


def _defining_class(compression):
    """The class in whose body `spec` is set (a built-in codec), or None."""
    cls = compression if isinstance(compression, type) else type(compression)
    for c in cls.__mro__:
        if "spec" in c.__dict__:
            return c
    return None


def library_spec(compression):
    """The libsqz codec spec the allreduce hands to the library, or None:
    None for Compression.none (the communicator's policy decides) and for
    any compressor whose compress or decompress is not the built-in one of
    the class that set its spec (Horovod's protocol then runs in Python)."""
    spec = getattr(compression, "spec", None)
    owner = _defining_class(compression)
    if spec is None or owner is None:
        return None
    for method in ("compress", "decompress"):
        if getattr(compression, method, None) is not getattr(owner, method):
            return None
    return spec


def runs_in_python(compression):
    """True when the allreduce must call compression.compress/decompress
    itself: a compressor with no library spec that is not the no-op default."""
    if library_spec(compression) is not None:
        return False
    cls = compression if isinstance(compression, type) else type(compression)
    return not (cls is NoneCompressor or (cls.compress is NoneCompressor.compress
                                          and cls.decompress is NoneCompressor.decompress))

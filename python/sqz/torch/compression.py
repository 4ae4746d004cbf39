"""Horovod's Compression namespace, mapped onto libsqz codec specs.

Horovod's compressors cast in Python (compress -> allreduce -> decompress).
sqz's run inside the library, fused with the collective and with error
feedback keyed by tensor name, so compress/decompress are the identity and
the compressor carries a `spec` string that the allreduce hands to
sqzAllReduceEx. A user-defined Horovod-style Compressor subclass (no
`spec`, or spec None) keeps working: its compress/decompress run in Python
around an uncompressed allreduce.
"""


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
    """Default: no compression. Leaves the choice to the communicator's
    policy, which is SQZ_COMPRESSION (default "none"), so setting that
    variable compresses an unchanged Horovod script."""
    spec = None


class _SpecCompressor(Compressor):
    spec = "none"

    def __repr__(self):
        return "Compression(%r)" % self.spec


def _spec_class(name, spec, doc):
    return type(name, (_SpecCompressor,), {"spec": spec, "__doc__": doc})


FP16Compressor = _spec_class("FP16Compressor", "fp16", "Sends float16 on the wire (inside libsqz).")
BF16Compressor = _spec_class("BF16Compressor", "bf16", "Sends bfloat16 on the wire (inside libsqz).")


class Compression:
    """Optional gradient compression algorithm used during allreduce."""

    none = NoneCompressor
    """Compress all floating point gradients to 16-bit."""
    fp16 = FP16Compressor
    bf16 = BF16Compressor
    q8 = _spec_class("Q8Compressor", "q8", "Blockwise 8-bit stochastic quantization with error feedback.")
    q4 = _spec_class("Q4Compressor", "q4", "Blockwise 4-bit stochastic quantization with error feedback.")
    q2 = _spec_class("Q2Compressor", "q2", "Blockwise 2-bit stochastic quantization with error feedback.")
    q1 = _spec_class("Q1Compressor", "q1", "Blockwise 1-bit stochastic quantization with error feedback.")
    auto = _spec_class("AutoCompressor", "auto", "Level chosen per call by libsqz's tuner.")

    @staticmethod
    def topk(ratio):
        """Top-K sparsification keeping `ratio` of the elements (0 < ratio <= 1)."""
        return _spec_class("TopKCompressor", "topk:%s" % _ratio(ratio), "Top-K sparsification.")

    @staticmethod
    def randk(ratio):
        """Random-K sparsification keeping `ratio` of the elements (shared seed)."""
        return _spec_class("RandKCompressor", "randk:%s" % _ratio(ratio), "Random-K sparsification.")

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
            return _spec_class("ExactCompressor", "none", "Exact (no compression), whatever SQZ_COMPRESSION says.")
        table = {"fp16": Compression.fp16, "bf16": Compression.bf16, "q8": Compression.q8, "q4": Compression.q4,
                 "q2": Compression.q2, "q1": Compression.q1, "auto": Compression.auto}
        if s not in table:
            raise ValueError("unknown compression spec %r (none, fp16, bf16, q8, q4, q2, q1, topk:R, randk:R, auto)"
                             % spec)
        return table[s]


def _ratio(ratio):
    r = float(ratio)
    if not 0.0 < r <= 1.0:
        raise ValueError("compression ratio must be in (0, 1], got %r" % (ratio,))
    return repr(r)


def spec_of(compression):
    """The libsqz spec a compressor stands for (None: communicator policy)."""
    return getattr(compression, "spec", None)

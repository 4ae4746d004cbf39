"""What the ranks agree on before a collective moves data, and the errors
they raise when they do not.

libsqz compares every call's header (collective, count, type, op, root)
across ranks and fails the call on every rank when they differ. What the C
arguments cannot show (a tensor's name and shape, the layout of a fused
buffer, the scale factors) goes into the header as a tag: a digest of the
call's description, so two tensors with the same element count and
different shapes are a mismatch too, fused or not. When a call fails that
way, every rank has failed the same call, so they can afford one more
exchange: their descriptions, from which each rank raises Horovod's message
("Mismatched ALLREDUCE tensor shapes: One rank sent a tensor of shape [2, 3],
but another rank sent a tensor of shape [3, 2].").
"""
import hashlib
import json

import torch

from .. import _lib

_DISAGREE = "ranks disagree on the collective call"
_JOINED = "is not supported while rank"


class HorovodInternalError(RuntimeError):
    """Raised when a collective fails: ranks that disagree on it, a dead
    peer, a timeout (as horovod.common.exceptions.HorovodInternalError)."""


def dtype_name(dtype):
    """Horovod's DataType_Name for a torch dtype (float32, int64, ...)."""
    return str(dtype).replace("torch.", "")


def describe(kind, name=None, tensors=(), op=None, factors=None, root=None, gather=False):
    """A call as every rank must agree on it. `gather`: the first dimension
    may differ (allgather)."""
    shapes = []
    for t in tensors:
        shape = list(t.shape)
        if gather and shape:
            shape[0] = -1
        shapes.append(shape)
    return {"kind": kind, "name": name, "dtypes": [dtype_name(t.dtype) for t in tensors], "shapes": shapes,
            "op": op, "factors": list(factors) if factors is not None else None, "root": root, "rejected": None}


def rejected(kind, name, error):
    """The description of an op this rank did not submit (it raised)."""
    d = describe(kind, name)
    d["rejected"] = "%s: %s" % (type(error).__name__, error)
    return d


def tag_of(desc):
    """The 64-bit call tag: equal descriptions, equal tags (nonzero)."""
    key = (desc["kind"], desc["name"], desc["dtypes"], desc["shapes"], desc["op"], desc["factors"], desc["root"],
           desc["rejected"] is not None)
    h = int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little")
    return h or 1


def run_agreed(comm, desc, fn):
    """Runs fn() (a job on the progress thread whose first libsqz call is
    the collective `desc` describes) with the description's tag; turns a
    disagreement into Horovod's error on every rank."""
    comm.set_call_tag(tag_of(desc))
    try:
        return fn()
    except _lib.SqzError as e:
        text = str(e)
        if e.code != _lib.INVALID_USAGE:
            raise
        if _DISAGREE in text:
            raise HorovodInternalError(_explain(comm, desc) or text) from e
        if _JOINED in text:
            raise HorovodInternalError("%s is not supported with Join at this time (%s)"
                                       % (desc["kind"].capitalize(), text)) from e
        raise


def _explain(comm, mine):
    """Every rank's description of the call that failed (one more exchange,
    which every rank makes since every rank failed), as Horovod's message;
    None if that exchange fails too."""
    try:
        data = torch.tensor(bytearray(json.dumps(mine).encode()), dtype=torch.uint8)
        n = comm.size
        length = torch.tensor([data.numel()], dtype=torch.int64)
        lengths = torch.zeros(n, dtype=torch.int64)
        comm.allgather(length.data_ptr(), lengths.data_ptr(), 1, _lib.INT64)
        width = int(lengths.max())
        send = torch.zeros(width, dtype=torch.uint8)
        send[:data.numel()] = data
        every = torch.empty(n * width, dtype=torch.uint8)
        comm.allgather(send.data_ptr(), every.data_ptr(), width, _lib.UINT8)
        descs = [json.loads(bytes(every[r * width:r * width + int(lengths[r])].tolist()).decode())
                 for r in range(n)]
    except Exception:  # the exchange failed (e.g. a rank has joined): the library's text stands
        return None
    return mismatch_message(descs)


def _shape(s):
    return "[" + ", ".join(str(d) for d in s) + "]"


def _factor(x):
    return "%g" % x  # as C++ streams a double


def mismatch_message(descs):
    """Horovod's message for the first way descriptions differ (its order:
    data types, operations, shapes, scale factors, reduction op, root)."""
    a = descs[0]
    r = next((q for q in range(1, len(descs)) if descs[q] != a), None)
    if r is None:
        return None
    b = descs[r]
    who = " (rank 0 and rank %d)" % r
    refused = [q for q, d in enumerate(descs) if d["rejected"] is not None]
    submitted = [q for q, d in enumerate(descs) if d["rejected"] is None]
    if refused and submitted:
        d = descs[refused[0]]
        return ("Mismatched operations: rank %d did not submit %s %r (it raised %s there), but rank %d did; the call "
                "failed on every rank, and later calls stay paired." % (refused[0], d["kind"], d["name"],
                                                                       d["rejected"], submitted[0]))
    if a["dtypes"] != b["dtypes"] and len(a["dtypes"]) == len(b["dtypes"]) == 1:
        return "Mismatched data types: One rank had type %s, but another rank had type %s.%s" % (
            a["dtypes"][0], b["dtypes"][0], who)
    if a["kind"] != b["kind"]:
        return "Mismatched operations: One rank did an %s, but another rank did an %s.%s" % (a["kind"], b["kind"], who)
    if a["name"] != b["name"]:
        return ("Mismatched tensor names: One rank submitted %s %r, but another rank submitted %s %r. sqz pairs "
                "collectives in the order each rank submits them: every rank must submit the same ones in the same "
                "order.%s" % (a["kind"], a["name"], b["kind"], b["name"], who))
    if a["shapes"] != b["shapes"] or a["dtypes"] != b["dtypes"]:
        if a["kind"] == "ALLGATHER":
            sa, sb = a["shapes"][0], b["shapes"][0]
            if len(sa) != len(sb):
                return ("Mismatched ALLGATHER tensor shapes: One rank sent a tensor of rank %d, but another rank sent "
                        "a tensor of rank %d.%s" % (len(sa), len(sb), who))
            dim = next(i for i in range(1, len(sa)) if sa[i] != sb[i])
            return ("Mismatched ALLGATHER tensor shapes: One rank sent a tensor with dimension %d equal to %d, but "
                    "another rank sent a tensor with dimension %d equal to %d.%s" % (dim, sa[dim], dim, sb[dim], who))
        if len(a["shapes"]) == 1 and len(b["shapes"]) == 1:
            return ("Mismatched %s tensor shapes: One rank sent a tensor of shape %s, but another rank sent a tensor "
                    "of shape %s.%s" % (a["kind"], _shape(a["shapes"][0]), _shape(b["shapes"][0]), who))
        fa = ", ".join("%s %s" % (t, _shape(s)) for t, s in zip(a["dtypes"], a["shapes"]))
        fb = ", ".join("%s %s" % (t, _shape(s)) for t, s in zip(b["dtypes"], b["shapes"]))
        return ("Mismatched %s tensor shapes: One rank sent the fused tensors [%s], but another rank sent [%s].%s"
                % (a["kind"], fa, fb, who))
    if a["factors"] != b["factors"]:
        return ("Mismatched prescale and/or postscale factors: One rank sent factors (%s, %s), but another rank sent "
                "factors (%s, %s).%s" % (_factor(a["factors"][0]), _factor(a["factors"][1]), _factor(b["factors"][0]),
                                          _factor(b["factors"][1]), who))
    if a["op"] != b["op"]:
        return ("Mismatched reduction operation: One rank sent reduction op %s, but another rank sent reduction op "
                "%s.%s" % (a["op"], b["op"], who))
    if a["root"] != b["root"]:
        return ("Mismatched %s root ranks: One rank specified root rank %s, but another rank specified root rank "
                "%s.%s" % (a["kind"], a["root"], b["root"], who))
    return None

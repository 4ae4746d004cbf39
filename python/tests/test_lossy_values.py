"""Lossy results from Python, call by call, within the bound of the codec
that sqzGetCallInfo says ran (the C++ tests' checker, lossy.py): `auto` on a
slow link, where it compresses, and the fixed specs; a zeroed result fails
the same check."""
import os

import pytest
import torch

import sqz
import sqz.torch as hvd
from sqz import _lib

from lossy import check_lossy, write_link_profile


def gradient(rank, call, count):
    g = torch.Generator().manual_seed(100 * call + rank)
    if call % 3 == 2:  # a sparse call now and then: the plan that fits changes
        t = torch.zeros(count)
        idx = torch.randint(0, count, (count // 500,), generator=g)
        t[idx] = 10 * torch.randn(idx.numel(), generator=g)
        return t
    return torch.randn(count, generator=g) * (1 + call)


@pytest.fixture(scope="module")
def slow_comm():
    """A communicator of its own whose tuner believes its link runs at 20 MB/s."""
    n, r = hvd.size(), hvd.rank()
    path = write_link_profile(1e-4, 20e6) if r == 0 else None
    path = hvd.broadcast_object(path, 0, name="lossy.profile")
    uid = hvd.broadcast_object(sqz.Communicator.unique_id() if r == 0 else None, 0, name="lossy.uid")
    saved = {k: os.environ.get(k) for k in ("SQZ_PROFILE", "SQZ_CALIBRATE", "SQZ_MIN_BYTES")}
    os.environ.update(SQZ_PROFILE=path, SQZ_CALIBRATE="off", SQZ_MIN_BYTES="0")
    comm = sqz.Communicator.init_rank(n, uid, r)
    yield comm
    comm.destroy()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    hvd.barrier()
    if r == 0:
        os.remove(path)


def reduce_and_check(comm, spec, key, g, op="sum"):
    n = hvd.size()
    out = torch.empty_like(g)
    comm.allreduce(g.data_ptr(), out.data_ptr(), g.numel(), _lib.FLOAT32, _lib.AVG if op == "avg" else _lib.SUM,
                   spec=spec, state_key=key)
    info = comm.last_call_info()
    inputs = list(hvd.allgather(g.view(1, -1), name="lossy.in.%s" % key).unbind(0))
    every = hvd.allgather(out.view(1, -1), name="lossy.out.%s" % key)
    assert all(torch.equal(every[0], every[q]) for q in range(n)), "ranks disagree"
    assert check_lossy(inputs, out, info, op=op) == "", (spec, info["plan"], check_lossy(inputs, out, info, op=op))
    assert check_lossy(inputs, torch.zeros_like(out), info, op=op) != "", (spec, info["plan"], "zeroed passed")
    return info


def test_auto_every_call_within_the_bound_of_what_ran(slow_comm):
    if hvd.size() == 1:
        pytest.skip("needs 2 ranks")
    r, count = hvd.rank(), 1 << 15
    plans = []
    for call in range(9):
        # A fresh state per call: what the call reduced is exactly its gradients.
        info = reduce_and_check(slow_comm, "auto", "auto.%d" % call, gradient(r, call, count))
        plans.append(info["plan"])
    lossy = [p for p in plans if not p.startswith(("@ring", "@direct", "@shm"))]
    assert len(lossy) >= 6, "auto hardly compressed on a 20 MB/s link: %s" % plans


@pytest.mark.parametrize("spec", ["bf16", "q8", "q4", "q1", "topk:0.05:int8", "randk:0.1:rescale"])
@pytest.mark.parametrize("op", ["sum", "avg"])
def test_fixed_specs_within_their_bound(slow_comm, spec, op):
    if hvd.size() == 1:
        pytest.skip("needs 2 ranks")
    info = reduce_and_check(slow_comm, spec, "fixed.%s.%s" % (spec, op), gradient(hvd.rank(), 0, 20011), op)
    assert info["exact"] == 0, info

"""Horovod 0.28.1's semantics where scripts rely on them: compressors,
prescale/postscale per dtype, optimizer state, mismatches, duplicate
names, join, grouped allreduce, ordering, and device safety.

Tests marked `horovod_reference` are run against real Horovod too
(SQZ_TEST_AGAINST=horovod with Horovod's venv, python/tests/tools/
build_horovod.sh): that run is what their expectations were checked with.
The others cover what Horovod does not do (it hangs, or returns garbage:
see each test) or what only sqz has.
"""
import copy
import os
import time

import numpy as np
import pytest
import torch

from conftest import AGAINST_HOROVOD, hvd

horovod_reference = pytest.mark.horovod_reference

# What Horovod 0.28.1's torch allreduce accepts (it raises "Tensor type ... is
# not supported" for uint8, int8, int16 and bfloat16, which sqz reduces too).
HOROVOD_TYPES = [torch.int32, torch.int64, torch.float16, torch.float32, torch.float64]
SQZ_TYPES = HOROVOD_TYPES + ([] if AGAINST_HOROVOD else [torch.uint8, torch.int8, torch.int16, torch.bfloat16])
NP = {torch.uint8: np.uint8, torch.int8: np.int8, torch.int16: np.int16, torch.int32: np.int32,
      torch.int64: np.int64, torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


def allgathered(t):
    """Every rank's copy of t, stacked (to check that replicas agree)."""
    return hvd.allgather(t.detach().reshape(1, -1))


def same_everywhere(t):
    every = allgathered(t)
    return all(torch.equal(every[0], every[q]) for q in range(hvd.size()))


# ---------------------------------------------------------------- 2. prescale / postscale
def rank_input(r, dtype):
    """Rank r's values: small enough that every sum is exact in every dtype
    (so the order of summation cannot matter), with quarters for floats."""
    v = np.array([r * 3 + 1, r + 3, 5, 20 - r, 2 * r + 1, 11, 17 - r, 4 * r], dtype=np.float64)
    if dtype.is_floating_point:
        v = v * 2 + 0.25 * ((v + r) % 4)
    return v


def horovod_scale(values, factor, dtype):
    """Horovod's ScaleBuffer (common/ops/collective_operations.cc): float16
    and float32 in float with (float)factor, float64 in double, integers in
    double truncated toward zero. bfloat16 (sqz only) as float16."""
    if dtype == torch.bfloat16:
        return (torch.tensor(values, dtype=torch.float32) * np.float32(factor)).bfloat16().double().numpy()
    if dtype in (torch.float16, torch.float32):
        return (values.astype(np.float32) * np.float32(factor)).astype(NP[dtype]).astype(np.float64)
    if dtype == torch.float64:
        return values * factor
    return np.trunc(values * factor)


def in_dtype(values, dtype):
    """values (float64 holding integers or exact floats) stored in dtype, as
    the wire type wraps them."""
    if dtype == torch.bfloat16:
        return torch.tensor(values, dtype=torch.float64).bfloat16().double().numpy()
    if dtype.is_floating_point:
        return values.astype(NP[dtype]).astype(np.float64)
    return values.astype(np.int64).astype(NP[dtype]).astype(np.float64)


def reference(dtype, op, pre, post, n):
    """What Horovod returns for rank_input on n ranks."""
    xs = [in_dtype(horovod_scale(rank_input(q, dtype), pre, dtype), dtype) for q in range(n)]
    if op in (hvd.Sum, hvd.Average):
        acc = in_dtype(np.sum(xs, axis=0), dtype)
    elif op == hvd.Min:
        acc = np.min(xs, axis=0)
    else:
        acc = np.max(xs, axis=0)
    return in_dtype(horovod_scale(acc, post / n if op == hvd.Average else post, dtype), dtype)


EXACT_PRE = [(1.0, 1.0), (0.5, 3.0), (2.0, 1 / 3), (0.25, 0.1), (1.0, 0.7)]  # prescaled floats stay exact
ROUNDING_PRE = [(1 / 3, 1.0), (2.5, 0.4), (0.1, 0.7), (-1.5, 1.0)]  # prescaling rounds (or truncates)


def cases(dtypes, ops=("Sum", "Average", "Min", "Max")):
    """(dtype, op, pre, post): floats sum only exactly prescaled values (so
    that any order of summation gives the same bits); no negative factor on
    uint8 (Horovod's cast of a negative double to uint8 is undefined)."""
    out = []
    for dtype in dtypes:
        for op_name in ops:
            op = getattr(hvd, op_name)
            factors = EXACT_PRE
            if not (dtype.is_floating_point and op in (hvd.Sum, hvd.Average)):
                factors = factors + ROUNDING_PRE
            for pre, post in factors:
                if dtype == torch.uint8 and pre < 0:
                    continue
                out.append((dtype, op, pre, post))
    return out


def run_scaled(api, dtype, op, pre, post, name):
    t = torch.tensor(rank_input(hvd.rank(), dtype)).to(dtype)
    kw = dict(op=op, prescale_factor=pre, postscale_factor=post, name=name)
    if api == "allreduce":
        return hvd.allreduce(t, **kw)
    if api == "allreduce_":
        return hvd.allreduce_(t, **kw)
    if api == "allreduce_async":
        return hvd.synchronize(hvd.allreduce_async(t, **kw))
    if api == "allreduce_async_":
        hvd.synchronize(hvd.allreduce_async_(t, **kw))
        return t
    if api == "grouped_allreduce":
        return hvd.grouped_allreduce([t], **kw)[0]
    if api == "grouped_allreduce_":
        return hvd.grouped_allreduce_([t], **kw)[0]
    if api == "grouped_allreduce_async":
        return hvd.synchronize(hvd.grouped_allreduce_async([t], **kw))[0]
    if api == "grouped_allreduce_async_":
        hvd.synchronize(hvd.grouped_allreduce_async_([t], **kw))
        return t
    raise AssertionError(api)


@horovod_reference
@pytest.mark.parametrize("api", ["allreduce", "allreduce_", "allreduce_async", "allreduce_async_",
                                 "grouped_allreduce", "grouped_allreduce_", "grouped_allreduce_async",
                                 "grouped_allreduce_async_"])
def test_prescale_postscale_match_horovod_for_every_dtype(api):
    n = hvd.size()
    every = cases(SQZ_TYPES)
    if api.endswith("_"):  # in-place forms: one factor pair that rounds, per dtype and op
        every = [c for c in every if (c[2], c[3]) in ((0.5, 3.0), (2.5, 0.4))]
    wrong = []
    for dtype, op, pre, post in every:
        out = run_scaled(api, dtype, op, pre, post, "scale.%s.%s.%s.%r.%r" % (api, dtype, op, pre, post))
        want = reference(dtype, op, pre, post, n)
        got = out.double().numpy()
        if out.dtype != dtype or not np.array_equal(got, want):
            wrong.append("%s op=%s pre=%r post=%r: got %s, want %s" % (dtype, op, pre, post, got.tolist(),
                                                                        want.tolist()))
    assert not wrong, "\n".join(wrong)


@horovod_reference
def test_grouped_allreduce_of_mixed_dtypes_scales_each_like_allreduce():
    n = hvd.size()
    for op in (hvd.Sum, hvd.Average):
        for pre, post in ((0.5, 3.0), (2.0, 1 / 3)):
            ts = [torch.tensor(rank_input(hvd.rank(), d)).to(d) for d in SQZ_TYPES]
            outs = hvd.grouped_allreduce(ts, op=op, prescale_factor=pre, postscale_factor=post)
            for d, o in zip(SQZ_TYPES, outs):
                assert o.dtype == d
                assert np.array_equal(o.double().numpy(), reference(d, op, pre, post, n)), (d, op, pre, post)


@horovod_reference
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_distributed_optimizer_gradient_predivide_factor_scales_like_horovod(dtype):
    """gradient_predivide_factor f: prescale 1/f, postscale f/size (Horovod's
    split of Average). f = 4 keeps the prescaled gradients exact; the
    postscale 4/size rounds in dtype as Horovod's does (f = 3 at 4 ranks)."""
    n, r = hvd.size(), hvd.rank()
    for f in (4.0, 3.0 if n in (2, 4) else 4.0):
        p = torch.nn.Parameter(torch.zeros(8, dtype=dtype))
        opt = hvd.DistributedOptimizer(torch.optim.SGD([p], lr=1.0), named_parameters=[("p", p)],
                                       gradient_predivide_factor=f)
        c = torch.tensor(rank_input(r, torch.float32) * 4, dtype=dtype)  # prescaled by 1/4: exact
        (p * c).sum().backward()
        opt.synchronize()
        xs = [horovod_scale(rank_input(q, torch.float32) * 4, 1 / f, dtype) for q in range(n)]
        want = horovod_scale(in_dtype(np.sum(xs, axis=0), dtype), f / n, dtype)
        if f == 3.0:  # 1/3 does not prescale exactly: compare with a tolerance, and replicas bitwise
            assert np.allclose(p.grad.double().numpy(), want, rtol=1e-6)
        else:
            assert np.array_equal(p.grad.double().numpy(), want)
        assert same_everywhere(p.grad)
        with opt.skip_synchronize():
            opt.step()


@horovod_reference
def test_gradient_predivide_factor_keeps_float16_sums_in_range():
    """What gradient_predivide_factor is for: float16 gradients of 40000
    whose sum overflows (65504 is float16's largest) stay finite when each
    rank divides by f = size() first, and postscale f / size() = 1 leaves
    the average exact. (Split differently, or not at all, the sum is inf.)"""
    n = hvd.size()
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float16))
    opt = hvd.DistributedOptimizer(torch.optim.SGD([p], lr=1.0), named_parameters=[("p16", p)],
                                   gradient_predivide_factor=float(n))
    (p * torch.full((4,), 40000.0, dtype=torch.float16)).sum().backward()
    opt.synchronize()
    assert torch.equal(p.grad, torch.full((4,), 40000.0, dtype=torch.float16)), p.grad
    with opt.skip_synchronize():
        opt.step()


# ---------------------------------------------------------------- 1. compressors
class Doubling(hvd.Compression.none):
    """A user's own compressor: float16 on the wire, values doubled (so the
    result shows that compress ran), cast back by decompress (so the dtype
    shows that decompress ran)."""
    calls = []

    @staticmethod
    def compress(tensor):
        Doubling.calls.append(("compress", tuple(tensor.shape), str(tensor.dtype)))
        return (tensor * 2).to(torch.float16), tensor.dtype

    @staticmethod
    def decompress(tensor, ctx):
        Doubling.calls.append(("decompress", tuple(tensor.shape), str(tensor.dtype)))
        return tensor.to(ctx)


@horovod_reference
def test_fp16_compressor_is_horovods_cast():
    t = torch.arange(6, dtype=torch.float64).view(2, 3) / 4
    c, ctx = hvd.Compression.fp16.compress(t)
    assert c.dtype == torch.float16 and ctx == torch.float64 and torch.equal(c.double(), t)
    d = hvd.Compression.fp16.decompress(c, ctx)
    assert d.dtype == torch.float64 and torch.equal(d, t)
    i = torch.arange(3, dtype=torch.int32)
    c, ctx = hvd.Compression.fp16.compress(i)
    assert c is i and ctx == torch.int32 and hvd.Compression.fp16.decompress(c, ctx) is c
    c, ctx = hvd.Compression.none.compress(t)
    assert c is t and ctx is None and hvd.Compression.none.decompress(c, ctx) is t


@horovod_reference
def test_users_compressor_runs_in_allreduce_and_optimizer():
    n, r = hvd.size(), hvd.rank()
    Doubling.calls.clear()
    t = torch.full((3,), 1.5 * (r + 1))
    out = hvd.allreduce(t, op=hvd.Sum, compression=Doubling, name="user.compressor")
    assert out.dtype == torch.float32 and torch.equal(out, torch.full((3,), 2 * 1.5 * n * (n + 1) / 2))
    assert Doubling.calls == [("compress", (3,), "torch.float32"), ("decompress", (3,), "torch.float16")]

    Doubling.calls.clear()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    exact = copy.deepcopy(model)
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                   named_parameters=model.named_parameters(), compression=Doubling)
    x = torch.full((4, 3), 0.25 * (r + 1))
    model(x).sum().backward()
    opt.synchronize()
    # Horovod compresses and decompresses each gradient, not a fused buffer.
    shapes = sorted(tuple(p.shape) for p in model.parameters())
    assert sorted(s for k, s, _ in Doubling.calls if k == "compress") == shapes
    assert sorted(s for k, s, _ in Doubling.calls if k == "decompress") == shapes
    assert all(d == "torch.float16" for k, _, d in Doubling.calls if k == "decompress")
    grads = []
    for q in range(n):
        m = copy.deepcopy(exact)
        m(torch.full((4, 3), 0.25 * (q + 1))).sum().backward()
        grads.append([p.grad for p in m.parameters()])
    for i, p in enumerate(model.parameters()):
        want = 2 * sum(g[i].half().float() for g in grads) / n  # doubled, summed in float16, averaged
        assert p.grad.dtype == torch.float32
        assert torch.allclose(p.grad, want, rtol=2e-3, atol=1e-3), (p.grad, want)
        assert same_everywhere(p.grad)
    with opt.skip_synchronize():
        opt.step()


def test_sqz_codecs_keep_the_protocol_and_a_subclass_that_overrides_it_gets_python():
    t = torch.randn(5)
    for comp in (hvd.Compression.q4, hvd.Compression.topk(0.1), hvd.Compression.auto, hvd.Compression.bf16):
        c, ctx = comp.compress(t)
        assert torch.is_tensor(c) and torch.equal(comp.decompress(c, ctx).float(), c.float())

    class Halving(hvd.Compression.q8):  # a user's override of a built-in: Horovod's protocol, in Python
        @staticmethod
        def compress(tensor):
            return tensor / 2, None

    n, r = hvd.size(), hvd.rank()
    out = hvd.allreduce(torch.full((4096,), float(r + 1)), op=hvd.Sum, compression=Halving, name="halving")
    assert torch.equal(out, torch.full((4096,), n * (n + 1) / 4))  # exact: no q8 ran, compress did


# ---------------------------------------------------------------- 3. optimizer state
def _make_optimizer(kind, params):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.5)
    return torch.optim.Adam(params, lr=0.01, weight_decay=0.1)


@horovod_reference
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "DistributedOptimizer"])
def test_broadcast_optimizer_state_initializes_missing_state(kind, wrapped):
    """A fresh optimizer whose model has a frozen parameter: Horovod gives
    every parameter that requires a gradient a zero one and takes one step
    (which applies weight decay), so every rank ends with the same state and
    parameters; the frozen parameter gets no state."""
    torch.manual_seed(11)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)
    ref = copy.deepcopy(model)
    ref_opt = _make_optimizer(kind, ref.parameters())
    for p in ref.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    ref_opt.step()

    opt = _make_optimizer(kind, model.parameters())
    if wrapped:
        opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters())
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    state, ref_state = opt.state_dict()["state"], ref_opt.state_dict()["state"]
    assert sorted(state) == sorted(ref_state) == [0, 2, 3]  # no state for the frozen bias (index 1)
    for pid in ref_state:
        for k, v in ref_state[pid].items():
            got = state[pid][k]
            assert torch.equal(torch.as_tensor(got), torch.as_tensor(v)), (pid, k)
            if torch.is_tensor(got):
                assert same_everywhere(got.float())
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.equal(p, q)
        assert same_everywhere(p)


def test_broadcast_optimizer_state_root_has_state_others_not():
    """Horovod 0.28.1 hangs here (the ranks broadcast different keys); sqz
    sends root's state to the fresh ranks, which take no step."""
    r = hvd.rank()
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1), torch.nn.Linear(3, 3))
    model[0].weight.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=0.1 * (r + 1))
    if r == 0:
        model[1](model[0](torch.ones(1, 3))).sum().backward()
        opt.step()
    before = [p.detach().clone() for p in model.parameters()]
    root = hvd.broadcast_object(opt.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == sorted(root["state"]) == [1, 2, 3]
    assert sd["param_groups"][0]["lr"] == 0.1
    for pid, st in root["state"].items():
        for k, v in st.items():
            assert torch.equal(torch.as_tensor(sd["state"][pid][k]), torch.as_tensor(v))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# ---------------------------------------------------------------- 4. mismatches
def either_order(template, a, b):
    """A regex for Horovod's "One rank ... a, but another rank ... b" in
    either order (Horovod's coordinator puts first whichever it saw first)."""
    return "(?:%s|%s)" % (template % (a, b), template % (b, a))


def _raises_everywhere(fn, pattern):
    with pytest.raises(hvd.HorovodInternalError, match=pattern):
        fn()
    n = hvd.size()
    assert torch.equal(hvd.allreduce(torch.ones(3), op=hvd.Sum, name="after.mismatch"), torch.full((3,), float(n)))


@horovod_reference
def test_mismatched_collectives_raise_on_every_rank_and_the_job_goes_on():
    if hvd.size() == 1:
        pytest.skip("needs 2 ranks")
    r = hvd.rank()
    start = time.monotonic()
    _raises_everywhere(lambda: hvd.allreduce(torch.ones(10 + r), name="m.count"),
                       either_order(r"Mismatched ALLREDUCE tensor shapes: One rank sent a tensor of shape \[%s\], but "
                                    r"another rank sent a tensor of shape \[%s\]", "10", "11"))
    _raises_everywhere(lambda: hvd.allreduce(torch.ones(2, 3) if r == 0 else torch.ones(3, 2), name="m.shape"),
                       either_order(r"Mismatched ALLREDUCE tensor shapes: One rank sent a tensor of shape \[%s\], but "
                                    r"another rank sent a tensor of shape \[%s\]", "2, 3", "3, 2"))
    _raises_everywhere(lambda: hvd.allreduce(torch.ones(4, dtype=torch.float32 if r == 0 else torch.float64),
                                             name="m.dtype"),
                       either_order(r"Mismatched data types: One rank had type %s, but another rank had type %s",
                                    "float32", "float64"))
    _raises_everywhere(lambda: hvd.broadcast(torch.ones(4), root_rank=0 if r == 0 else 1, name="m.root"),
                       either_order(r"Mismatched BROADCAST root ranks: One rank specified root rank %s, but another "
                                    r"rank specified root rank %s", "0", "1"))
    _raises_everywhere(lambda: hvd.allreduce(torch.ones(4), op=hvd.Sum if r == 0 else hvd.Max, name="m.op"),
                       either_order(r"Mismatched reduction operation: One rank sent reduction op %s, but another rank "
                                    r"sent reduction op %s", "1", "4"))
    _raises_everywhere(lambda: hvd.allreduce(torch.ones(4), prescale_factor=1.0 if r == 0 else 2.0, name="m.pre"),
                       either_order(r"Mismatched prescale and/or postscale factors: One rank sent factors \(%s\), but "
                                    r"another rank sent factors \(%s\)", "1, 1", "2, 1"))
    assert time.monotonic() - start < 30


@horovod_reference
def test_mismatch_among_ops_in_flight_together():
    """Horovod fuses ops in flight together: the mismatched one raises, the
    other completes."""
    if hvd.size() == 1:
        pytest.skip("needs 2 ranks")
    r, n = hvd.rank(), hvd.size()
    h1 = hvd.allreduce_async(torch.ones(2, 3) if r == 0 else torch.ones(3, 2), name="f.bad")
    h2 = hvd.allreduce_async(torch.ones(5), op=hvd.Sum, name="f.good")
    with pytest.raises(hvd.HorovodInternalError, match=r"Mismatched ALLREDUCE tensor shapes"):
        hvd.synchronize(h1)
    assert torch.equal(hvd.synchronize(h2), torch.full((5,), float(n)))


def test_mismatch_inside_a_fused_buffer():
    """The same element count split differently across ranks, inside one
    grouped allreduce and inside a DistributedOptimizer bucket. (Horovod's
    grouped_allreduce returns garbage here without an error.)"""
    if hvd.size() == 1:
        pytest.skip("needs 2 ranks")
    r = hvd.rank()
    pair = [torch.ones(6), torch.ones(4)] if r == 0 else [torch.ones(4), torch.ones(6)]
    _raises_everywhere(lambda: hvd.grouped_allreduce(pair, name="g.split"),
                       r"Mismatched ALLREDUCE tensor shapes: One rank sent the fused tensors \[float32 \[6\], "
                       r"float32 \[4\]\], but another rank sent \[float32 \[4\], float32 \[6\]\]")
    _raises_everywhere(lambda: hvd.grouped_allreduce([torch.ones(2, 3) if r == 0 else torch.ones(3, 2)],
                                                     name="g.shape"),
                       r"Mismatched ALLREDUCE tensor shapes: One rank sent a tensor of shape \[2, 3\]")
    model = torch.nn.Module()  # one bucket: [2, 3] + [4] on rank 0, [3, 2] + [4] elsewhere
    model.w = torch.nn.Parameter(torch.ones(2, 3) if r == 0 else torch.ones(3, 2))
    model.v = torch.nn.Parameter(torch.ones(4))
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                   named_parameters=model.named_parameters())
    (model.w.sum() + model.v.sum()).backward()
    _raises_everywhere(opt.step, r"Mismatched ALLREDUCE tensor shapes: One rank sent the fused tensors "
                                 r"\[float32 \[4\], float32 \[2, 3\]\], but another rank sent \[float32 \[4\], "
                                 r"float32 \[3, 2\]\]")


def test_objects_of_different_types_per_rank():
    """Names are compared, so broadcast_object / allgather_object do not
    name their calls after type(obj) as Horovod does (non-root ranks often
    pass None: under Horovod 0.28.1 the names then differ and it stalls)."""
    r, n = hvd.rank(), hvd.size()
    assert hvd.broadcast_object({"a": 1} if r == 0 else None, root_rank=0) == {"a": 1}
    assert hvd.allgather_object(r if r % 2 else str(r)) == [q if q % 2 else str(q) for q in range(n)]


# ---------------------------------------------------------------- 5. duplicate names
@horovod_reference
def test_duplicate_name_in_flight_raises_value_error():
    n = hvd.size()
    h = hvd.allreduce_async(torch.ones(5), name="dup.name", op=hvd.Sum)
    with pytest.raises(ValueError, match="same name as another tensor that is currently being processed"):
        hvd.allreduce_async(torch.ones(5), name="dup.name")
    assert torch.equal(hvd.synchronize(h), torch.full((5,), float(n)))
    assert torch.equal(hvd.allreduce(torch.ones(2), op=hvd.Sum, name="dup.name"), torch.full((2,), float(n)))


def test_duplicate_name_on_one_rank_does_not_leave_the_others_hanging():
    """Only rank 0 submits a duplicate. Its ValueError stays local; its
    refused op still takes its turn, so the others' op fails at once with
    an error naming rank 0's, and every later call stays paired. (Under
    Horovod the others' op would wait for rank 0's forever.)"""
    if hvd.size() == 1:
        pytest.skip("needs 2 ranks")
    r, n = hvd.rank(), hvd.size()
    start = time.monotonic()
    h = hvd.allreduce_async(torch.ones(4), name="dup.one", op=hvd.Sum)
    if r == 0:
        with pytest.raises(ValueError, match="same name"):
            hvd.allreduce_async(torch.ones(4), name="dup.one")
        h2 = None
    else:
        h2 = hvd.allreduce_async(torch.ones(4), name="dup.other")
    assert torch.equal(hvd.synchronize(h), torch.full((4,), float(n)))
    if h2 is not None:
        with pytest.raises(hvd.HorovodInternalError, match=r"rank 0 did not submit ALLREDUCE 'dup.one' \(it raised "
                                                           r"ValueError"):
            hvd.synchronize(h2)
    hvd.barrier()
    assert torch.equal(hvd.allreduce(torch.ones(3), op=hvd.Sum), torch.full((3,), float(n)))
    assert time.monotonic() - start < 30


def test_bad_argument_on_one_rank_keeps_ranks_paired():
    """The same for any op a rank raises on instead of submitting: a 0-d
    tensor to allgather, a CUDA-less device tensor, an unknown op."""
    if hvd.size() == 1:
        pytest.skip("needs 2 ranks")
    r, n = hvd.rank(), hvd.size()
    if r == 0:
        with pytest.raises(ValueError):
            hvd.allgather(torch.tensor(1.0))
    else:
        with pytest.raises(hvd.HorovodInternalError, match="rank 0 did not submit ALLGATHER"):
            hvd.allgather(torch.ones(1))
    if r == 1:
        with pytest.raises(ValueError):
            hvd.allreduce(torch.ones(2), op=17)
    else:
        with pytest.raises(hvd.HorovodInternalError, match="rank 1 did not submit ALLREDUCE"):
            hvd.allreduce(torch.ones(2))
    hvd.barrier()
    assert torch.equal(hvd.allgather(torch.ones(1, 2)), torch.ones(n, 2))


# ---------------------------------------------------------------- 6. join
@horovod_reference
def test_join_uneven_ranks_contribute_zeros_and_return_the_last():
    """Rank r runs r rounds, then joins: the ranks still in get sums and
    averages over all ranks with zeros from the joined ones (Average still
    divides by size()), and every rank learns that rank size-1 joined last."""
    n, r = hvd.size(), hvd.rank()
    for i in range(r):
        live = range(i + 1, n)  # ranks still in at round i
        s = hvd.allreduce(torch.full((3,), float(r + 1)), op=hvd.Sum, name="join.sum.%d" % i)
        assert torch.equal(s, torch.full((3,), float(sum(q + 1 for q in live))))
        a = hvd.allreduce(torch.full((3,), float(r + 1)), op=hvd.Average, prescale_factor=2.0, name="join.avg.%d" % i)
        assert torch.allclose(a, torch.full((3,), 2.0 * sum(q + 1 for q in live) / n))
        m = hvd.allreduce(torch.full((2,), -(r + 1), dtype=torch.int64), op=hvd.Max, name="join.max.%d" % i)
        assert torch.equal(m, torch.zeros(2, dtype=torch.int64))  # a joined rank's zero
    assert hvd.join() == n - 1
    assert torch.equal(hvd.allreduce(torch.ones(2), op=hvd.Sum, name="join.after"), torch.full((2,), float(n)))


@horovod_reference
def test_join_rank_zero_last_and_other_collectives_fail_while_joined():
    n, r = hvd.size(), hvd.rank()
    if n == 1:
        pytest.skip("needs 2 ranks")
    if r != 0:
        assert hvd.join() == 0
        return
    with pytest.raises(hvd.HorovodInternalError, match="Broadcast is not supported with Join"):
        hvd.broadcast(torch.ones(2), 0, name="join.bcast")
    with pytest.raises(hvd.HorovodInternalError, match="Allgather is not supported with Join"):
        hvd.allgather(torch.ones(2), name="join.ag")
    out = hvd.allreduce(torch.full((4,), 8.0), name="join.only")  # Average over all ranks, zeros included
    assert torch.equal(out, torch.full((4,), 8.0 / n))
    assert hvd.join() == 0


@horovod_reference
def test_join_with_distributed_optimizer_on_uneven_data():
    """Rank r has r + 1 batches; a rank out of batches joins. Every step
    averages the gradients of the ranks still in over all ranks; the rank
    that joined last has taken every step, and broadcasting its parameters
    (Horovod's pattern, the reason join returns that rank) makes the
    replicas identical again."""
    n, r = hvd.size(), hvd.rank()
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    ref = copy.deepcopy(model)
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                   named_parameters=model.named_parameters())
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)

    def batch(q, s):
        return torch.full((2, 3), float(q + 1 + s), dtype=torch.float64)

    for s in range(r + 1):
        opt.zero_grad()
        model(batch(r, s)).pow(2).sum().backward()
        opt.step()
    last = hvd.join()
    assert last == n - 1
    for s in range(n):
        ref_opt.zero_grad()
        grads = [torch.zeros_like(p) for p in ref.parameters()]
        for q in range(s, n):  # ranks with a batch at step s
            m = copy.deepcopy(ref)
            m(batch(q, s)).pow(2).sum().backward()
            for g, p in zip(grads, m.parameters()):
                g += p.grad
        for g, p in zip(grads, ref.parameters()):
            p.grad = g / n
        ref_opt.step()
    if r == last:
        for p, q in zip(model.parameters(), ref.parameters()):
            assert torch.allclose(p, q, rtol=1e-12, atol=1e-12)
    if AGAINST_HOROVOD:
        # Horovod 0.28.1 hangs in same_everywhere's allgather below: it names an unnamed op after its
        # handle, a count of this rank's ops, which differs after uneven data (python/README.md, join).
        return
    hvd.broadcast_parameters(model.state_dict(), root_rank=last)
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.allclose(p, q, rtol=1e-12, atol=1e-12)
        assert same_everywhere(p)


# ---------------------------------------------------------------- 7. grouped allreduce
@horovod_reference
def test_grouped_allreduce_forms_and_gradients():
    n, r = hvd.size(), hvd.rank()
    a = torch.full((3,), float(r + 1))
    b = torch.arange(4, dtype=torch.float64) * (r + 1)
    total = n * (n + 1) / 2
    outs = hvd.grouped_allreduce([a, b], name="grouped.avg")
    assert isinstance(outs, list)
    assert torch.allclose(outs[0], torch.full((3,), total / n))
    assert torch.allclose(outs[1], torch.arange(4, dtype=torch.float64) * total / n)
    h = hvd.grouped_allreduce_async([a, b], op=hvd.Sum, name="grouped.async")
    res = hvd.synchronize(h)
    assert isinstance(res, tuple) and len(res) == 2  # Horovod's synchronize gives a tuple here
    assert torch.equal(res[0], torch.full((3,), total)) and torch.equal(a, torch.full((3,), float(r + 1)))
    same = hvd.grouped_allreduce_([a, b], op=hvd.Sum, name="grouped.inplace")
    assert isinstance(same, tuple)
    assert same[0] is a and same[1] is b and torch.equal(b, torch.arange(4, dtype=torch.float64) * total)
    h = hvd.grouped_allreduce_async_([a], op=hvd.Max, name="grouped.inplace.async")
    while not hvd.poll(h):
        time.sleep(0.001)
    assert hvd.synchronize(h)[0] is a and torch.equal(a, torch.full((3,), total))

    x = torch.full((2,), float(r + 1), requires_grad=True)
    y = torch.full((3,), float(r), dtype=torch.float64, requires_grad=True)
    ox, oy = hvd.grouped_allreduce([x, y], op=hvd.Sum, name="grouped.grad")
    ((ox * 2).sum() + (oy * 3).sum()).backward()  # dense gradients: Horovod refuses a sum's expanded one
    assert torch.equal(x.grad, torch.full((2,), 2.0 * n))  # backward: the same grouped allreduce (Sum)
    assert torch.equal(y.grad, torch.full((3,), 3.0 * n, dtype=torch.float64))


# ---------------------------------------------------------------- 8. ordering
@horovod_reference
def test_synchronous_calls_run_after_this_ranks_async_ops():
    n, r = hvd.size(), hvd.rank()
    for k in range(3):
        hb = hvd.broadcast_async(torch.arange(4.0) * (r + 1), n - 1, name="ord.b.%d" % k)
        h1 = hvd.allgather_async(torch.full((r + 1, 2), float(r)), name="ord.g1.%d" % k)
        h2 = hvd.allgather_async(torch.full((1,), r, dtype=torch.int32), name="ord.g2.%d" % k)
        h3 = hvd.allreduce_async(torch.full((5,), float(r)), op=hvd.Sum, name="ord.r.%d" % k)
        hg = hvd.grouped_allreduce_async([torch.ones(2), torch.ones(3, dtype=torch.int32)], op=hvd.Sum,
                                         name="ord.grp.%d" % k)
        # Still in flight when barrier() is called: a barrier that did not
        # wait its turn would meet this allreduce on the other ranks.
        hbig = hvd.allreduce_async(torch.full((1 << 22,), float(r)), op=hvd.Sum, name="ord.big.%d" % k)
        hvd.barrier()
        s = hvd.allreduce(torch.ones(2), op=hvd.Sum, name="ord.sync.%d" % k)
        obj = hvd.broadcast_object({"k": k, "r": r}, root_rank=0)
        assert torch.equal(hvd.synchronize(hb), torch.arange(4.0) * n)
        assert torch.equal(hvd.synchronize(h1), torch.cat([torch.full((q + 1, 2), float(q)) for q in range(n)]))
        assert hvd.synchronize(h2).tolist() == list(range(n))
        assert torch.equal(hvd.synchronize(h3), torch.full((5,), float(n * (n - 1) // 2)))
        g = hvd.synchronize(hg)
        assert torch.equal(g[0], torch.full((2,), float(n))) and torch.equal(g[1], torch.full((3,), n,
                                                                                              dtype=torch.int32))
        assert torch.equal(hvd.synchronize(hbig), torch.full((1 << 22,), float(n * (n - 1) // 2)))
        assert torch.equal(s, torch.full((2,), float(n))) and obj == {"k": k, "r": 0}
    h = hvd.allreduce_async(torch.ones(2), op=hvd.Sum, name="ord.before.join")
    last = hvd.join()  # every rank joins after the same calls: which is last depends on timing
    assert torch.equal(hvd.synchronize(h), torch.full((2,), float(n)))
    assert 0 <= last < n and hvd.allgather(torch.tensor([last])).tolist() == [last] * n


# ---------------------------------------------------------------- 9. device safety
def test_non_cpu_tensors_are_refused_with_a_clear_error():
    """A tensor libsqz cannot read as host memory (here on torch's 'meta'
    device; a CUDA tensor takes the same check when libsqz has no CUDA) is a
    ValueError on every entry point, never a crash, and the ranks stay
    paired."""
    n = hvd.size()
    meta = torch.empty(4, device="meta")
    entry_points = [
        lambda: hvd.allreduce(meta), lambda: hvd.allreduce_(meta), lambda: hvd.allreduce_async(meta),
        lambda: hvd.grouped_allreduce([torch.ones(4), meta]), lambda: hvd.allgather(meta),
        lambda: hvd.broadcast(meta, 0), lambda: hvd.broadcast_(meta, 0),
    ]
    for call in entry_points:
        with pytest.raises(ValueError, match=r"Tensor type torch\.meta\.FloatTensor is not supported: sqz serves "
                                             r"CPU tensors"):
            call()
    assert torch.equal(hvd.allreduce(torch.ones(2), op=hvd.Sum), torch.full((2,), float(n)))


def test_cuda_built_tells_the_truth():
    """cuda_built() reports how libsqz was built (sqzGetFeatures), not a
    constant: .ci/python.sh says what it built (SQZ_EXPECT_CUDA_BUILT)."""
    expected = os.environ.get("SQZ_EXPECT_CUDA_BUILT")
    if expected is None:
        pytest.skip("SQZ_EXPECT_CUDA_BUILT not set (.ci/python.sh sets it from SQZ_CMAKE_ARGS)")
    assert hvd.cuda_built() is (expected == "1")
    assert hvd.nccl_built() == (1 if expected == "1" else 0)
    if expected == "0" and torch.cuda.is_available():  # a real CUDA tensor (on a GPU machine)
        with pytest.raises(ValueError, match="built without CUDA"):
            hvd.allreduce(torch.ones(2, device="cuda"))


def test_cuda_built_follows_the_library_features(monkeypatch):
    """cuda_built() and nccl_built() ask libsqz (sqzGetFeatures) each time:
    flip the library's answer and they follow it, as a constant would not."""
    from sqz import _lib
    lib = _lib.load()
    for bits, built in ((_lib.FEATURE_CUDA, True), (0, False)):
        monkeypatch.setattr(lib, "features", lambda bits=bits: bits)
        assert hvd.cuda_built() is built and hvd.nccl_built() == int(built)


# ---------------------------------------------------------------- the README's table
NOT_PROVIDED = ["sparse_allreduce_async", "grouped_allgather", "grouped_allgather_async", "alltoall", "alltoall_async",
                "reducescatter", "reducescatter_async", "grouped_reducescatter", "grouped_reducescatter_async",
                "add_process_set", "remove_process_set"]


@pytest.mark.parametrize("name", NOT_PROVIDED)
def test_not_provided_functions_say_so(name):
    with pytest.raises(NotImplementedError, match="sqz.torch does not provide"):
        getattr(hvd, name)(torch.ones(2))


def test_elastic_is_not_provided():
    with pytest.raises(NotImplementedError, match="elastic"):
        hvd.elastic.run  # noqa: B018 (the attribute access raises)


def test_horovod_variables_are_honoured_or_named_in_a_warning(monkeypatch, tmp_path):
    from sqz.torch import mpi_ops, optimizer
    for k in list(os.environ):
        if k.startswith("HOROVOD_") or k == "SQZ_TIMELINE":
            monkeypatch.delenv(k)
    monkeypatch.setenv("HOROVOD_CYCLE_TIME", "5")
    monkeypatch.setenv("HOROVOD_HIERARCHICAL_ALLREDUCE", "1")
    monkeypatch.setenv("HOROVOD_WITH_PYTORCH", "1")  # build time only: Horovod ignores it at run time too
    monkeypatch.setenv("HOROVOD_TIMELINE", str(tmp_path / "tl.json"))
    monkeypatch.setenv("HOROVOD_FUSION_THRESHOLD", "16")
    with pytest.warns(UserWarning) as caught:
        mpi_ops._horovod_environment()
    text = " ".join(str(w.message) for w in caught)
    assert "HOROVOD_CYCLE_TIME (sqz has no negotiation cycle" in text
    assert "HOROVOD_HIERARCHICAL_ALLREDUCE (libsqz's tuner" in text
    assert "HOROVOD_WITH_PYTORCH" not in text and "HOROVOD_TIMELINE" not in text
    assert "HOROVOD_FUSION_THRESHOLD" not in text
    assert os.environ["SQZ_TIMELINE"] == str(tmp_path / "tl.json")
    assert optimizer.fusion_threshold() == 16
    for k in ("RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOROVOD_RANK", "0")
    with pytest.raises(RuntimeError, match="horovodrun's Gloo launcher"):
        mpi_ops._horovod_environment()

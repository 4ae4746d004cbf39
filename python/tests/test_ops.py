"""Horovod's collective ops, against exact references computed from every
rank's (deterministic) input."""
import time

import pytest
import torch

import sqz.torch as hvd

from lossy import check_lossy

FLOAT_TYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
INT_TYPES = [torch.int32, torch.int64]
ALL_REDUCE_TYPES = INT_TYPES + FLOAT_TYPES + [torch.uint8, torch.int8, torch.int16]
ALL_TYPES = ALL_REDUCE_TYPES + [torch.bool]


def data(r, shape, dtype, scale=1):
    """Rank r's input: small integers, exact in every dtype."""
    g = torch.Generator().manual_seed(1000 + r)
    t = torch.randint(0, 7, shape, generator=g).to(torch.int64) * scale
    return t.to(dtype)


def test_basics():
    import os
    assert hvd.is_initialized()
    n, r = hvd.size(), hvd.rank()
    assert 0 <= r < n
    env_rank = os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("RANK", "0"))
    assert r == int(env_rank)
    assert hvd.local_size() * hvd.cross_size() == n  # one host here
    assert hvd.local_rank() == r and hvd.cross_rank() == 0
    hvd.init()  # idempotent
    assert hvd.size() == n


@pytest.mark.parametrize("dtype", ALL_REDUCE_TYPES)
@pytest.mark.parametrize("shape", [(17,), (3, 5, 2)])
def test_allreduce_sum(dtype, shape):
    n, r = hvd.size(), hvd.rank()
    t = data(r, shape, dtype)
    before = t.clone()
    out = hvd.allreduce(t, op=hvd.Sum, name="sum.%s.%d" % (dtype, len(shape)))
    ref = sum(data(q, shape, torch.int64) for q in range(n)).to(dtype)  # wraps like the wire types
    assert out.dtype == dtype and out.shape == t.shape
    assert torch.equal(out, ref)
    assert torch.equal(t, before), "out-of-place allreduce modified its input"


@pytest.mark.parametrize("dtype", INT_TYPES + FLOAT_TYPES)
def test_allreduce_average_default(dtype):
    n, r = hvd.size(), hvd.rank()
    t = data(r, (33,), dtype, scale=3)
    out = hvd.allreduce(t)  # Average is the default
    total = sum(data(q, (33,), torch.int64, scale=3) for q in range(n))
    if dtype.is_floating_point:
        ref = (total.double() / n).to(dtype)
        assert torch.allclose(out.double(), ref.double(), rtol=1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-6)
    else:
        ref = torch.div(total, n, rounding_mode="trunc").to(dtype)  # integer average truncates
        assert torch.equal(out, ref)


def test_allreduce_average_negative_ints_truncate():
    n, r = hvd.size(), hvd.rank()
    t = torch.tensor([-(r + 1) * 5 - 1, (r + 1) * 5 + 1], dtype=torch.int32)
    out = hvd.allreduce(t, op=hvd.Average)
    total = torch.stack([torch.tensor([-(q + 1) * 5 - 1, (q + 1) * 5 + 1]) for q in range(n)]).sum(0)
    assert torch.equal(out, torch.div(total, n, rounding_mode="trunc").to(torch.int32))


@pytest.mark.parametrize("op,fn", [(hvd.Min, lambda s: s.min(0).values), (hvd.Max, lambda s: s.max(0).values),
                                   (hvd.Product, lambda s: s.prod(0))])
@pytest.mark.parametrize("dtype", [torch.int32, torch.float32, torch.float64])
def test_allreduce_min_max_product(op, fn, dtype):
    n, r = hvd.size(), hvd.rank()
    t = data(r, (21,), dtype) + 1
    out = hvd.allreduce(t, op=op)
    ref = fn(torch.stack([data(q, (21,), torch.int64) + 1 for q in range(n)])).to(dtype)
    assert torch.equal(out, ref)


def test_average_keyword_compat():
    n, r = hvd.size(), hvd.rank()
    t = torch.full((4,), float(r + 1))
    with pytest.warns(DeprecationWarning):
        s = hvd.allreduce(t, average=False)
    assert torch.equal(s, torch.full((4,), float(n * (n + 1) // 2)))
    with pytest.warns(DeprecationWarning):
        a = hvd.allreduce(t, average=True)
    assert torch.allclose(a, torch.full((4,), (n + 1) / 2.0))
    with pytest.raises(ValueError):
        hvd.allreduce(t, average=True, op=hvd.Sum)


def test_prescale_postscale():
    n, r = hvd.size(), hvd.rank()
    t = torch.full((8,), float(r + 1), dtype=torch.float64)
    out = hvd.allreduce(t, op=hvd.Sum, prescale_factor=2.0, postscale_factor=0.25)
    assert torch.equal(out, torch.full((8,), n * (n + 1) / 2 * 2.0 * 0.25, dtype=torch.float64))
    out = hvd.allreduce(t, op=hvd.Average, prescale_factor=4.0, postscale_factor=0.5)
    assert torch.allclose(out, torch.full((8,), (n + 1) / 2 * 2.0, dtype=torch.float64))
    assert torch.equal(t, torch.full((8,), float(r + 1), dtype=torch.float64))
    ti = torch.full((3,), r + 1, dtype=torch.int32)
    out = hvd.allreduce(ti, op=hvd.Sum, prescale_factor=3.0)
    assert torch.equal(out, torch.full((3,), 3 * n * (n + 1) // 2, dtype=torch.int32))


def test_fp16_on_cpu_and_inplace():
    n, r = hvd.size(), hvd.rank()
    t = torch.full((1000,), 0.5 * (r + 1), dtype=torch.float16)
    same = hvd.allreduce_(t, op=hvd.Sum)
    assert same is t
    assert torch.equal(t, torch.full((1000,), 0.5 * n * (n + 1) / 2, dtype=torch.float16))
    nc = torch.arange(12.0).view(3, 4).t() * (r + 1)  # non-contiguous, in place
    hvd.allreduce_(nc, op=hvd.Sum)
    assert torch.equal(nc, torch.arange(12.0).view(3, 4).t() * (n * (n + 1) // 2))


def test_async_poll_in_flight():
    n, r = hvd.size(), hvd.rank()
    t = torch.full((1 << 16,), float(r))
    if r == 0:
        time.sleep(0.5)  # the others' allreduce cannot finish before rank 0 joins
    h = hvd.allreduce_async(t, name="async.poll", op=hvd.Sum)
    if r != 0 and n > 1:
        assert hvd.poll(h) is False
    out = hvd.synchronize(h)
    assert torch.equal(out, torch.full((1 << 16,), float(n * (n - 1) // 2)))
    h2 = hvd.allreduce_async_(t, name="async.poll", op=hvd.Max)  # the name is free again
    while not hvd.poll(h2):
        time.sleep(0.001)
    assert hvd.synchronize(h2) is t and torch.equal(t, torch.full((1 << 16,), float(n - 1)))


def test_many_async_in_order():
    n, r = hvd.size(), hvd.rank()
    hs = [hvd.allreduce_async(torch.full((i + 1,), float(r * i)), op=hvd.Sum) for i in range(20)]
    for i, h in enumerate(hs):
        assert torch.equal(hvd.synchronize(h), torch.full((i + 1,), float(i * n * (n - 1) // 2)))


def test_duplicate_name_value_error():
    t = torch.ones(5)
    h = hvd.allreduce_async(t, name="dup")
    with pytest.raises(ValueError):
        hvd.allreduce_async(t, name="dup")
    hb = hvd.broadcast_async(t, 0, name="dup")  # other op type: another name space, as Horovod
    hvd.synchronize(hb)
    assert torch.equal(hvd.synchronize(h), torch.ones(5))


def test_allreduce_shape_mismatch_error_then_works():
    n, r = hvd.size(), hvd.rank()
    if n == 1:
        pytest.skip("needs 2 ranks")
    with pytest.raises(RuntimeError):
        hvd.allreduce(torch.ones(10 + r))
    with pytest.raises(RuntimeError):
        hvd.allreduce(torch.ones(4, dtype=torch.float32 if r % 2 == 0 else torch.int32))
    assert torch.equal(hvd.allreduce(torch.ones(3), op=hvd.Sum), torch.full((3,), float(n)))


def test_broadcast_root_mismatch_error():
    n, r = hvd.size(), hvd.rank()
    if n == 1:
        pytest.skip("needs 2 ranks")
    with pytest.raises(RuntimeError):
        hvd.broadcast(torch.ones(4), root_rank=r)
    with pytest.raises(RuntimeError):
        hvd.broadcast(torch.ones(3 + r), root_rank=0)
    assert torch.equal(hvd.broadcast(torch.full((2,), float(r)), 0), torch.zeros(2))


@pytest.mark.parametrize("dtype", ALL_TYPES)
def test_allgather_variable_sizes(dtype):
    n, r = hvd.size(), hvd.rank()
    t = data(r, (r + 1, 3, 2), dtype)
    before = t.clone()
    out = hvd.allgather(t, name="ag.%s" % dtype)
    ref = torch.cat([data(q, (q + 1, 3, 2), dtype) for q in range(n)])
    assert out.dtype == dtype and torch.equal(out, ref)
    assert torch.equal(t, before)
    eq = hvd.allgather(data(r, (2, 2), dtype))  # equal sizes take the direct path
    assert torch.equal(eq, torch.cat([data(q, (2, 2), dtype) for q in range(n)]))


def test_allgather_empty_rank_and_errors():
    n, r = hvd.size(), hvd.rank()
    t = torch.full((r % 2, 3), float(r))
    out = hvd.allgather(t)
    assert torch.equal(out, torch.cat([torch.full((q % 2, 3), float(q)) for q in range(n)]))
    if n > 1:
        with pytest.raises(RuntimeError):
            hvd.allgather(torch.ones(2, 3 + r))
        with pytest.raises(RuntimeError):
            hvd.allgather(torch.ones(2, dtype=torch.float32 if r == 0 else torch.float64))


@pytest.mark.parametrize("dtype", ALL_TYPES)
def test_broadcast_all_types(dtype):
    n, r = hvd.size(), hvd.rank()
    root = n - 1
    t = data(r, (5, 3), dtype)
    before = t.clone()
    out = hvd.broadcast(t, root)
    assert torch.equal(out, data(root, (5, 3), dtype))
    assert torch.equal(t, before)
    same = hvd.broadcast_(t, root)
    assert same is t and torch.equal(t, data(root, (5, 3), dtype))


def test_autograd_allreduce_allgather_broadcast():
    n, r = hvd.size(), hvd.rank()
    x = torch.full((4,), float(r + 1), dtype=torch.float64, requires_grad=True)
    hvd.allreduce(x, op=hvd.Sum).sum().backward()
    assert torch.equal(x.grad, torch.full((4,), float(n), dtype=torch.float64))

    x = torch.ones(r + 1, 2, dtype=torch.float64, requires_grad=True)
    y = hvd.allgather(x)
    w = torch.arange(float(y.numel()), dtype=torch.float64).view_as(y) * (r + 1)
    (y * w).sum().backward()
    off = sum(q + 1 for q in range(r))
    base = torch.arange(float(y.numel()), dtype=torch.float64).view_as(y)[off:off + r + 1]
    assert torch.allclose(x.grad, base * (n + 1) / 2.0)  # averaged over ranks, as Horovod

    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    hvd.broadcast(x, 0).sum().backward()
    assert torch.equal(x.grad, torch.ones(3, dtype=torch.float64) * (1.0 if r == 0 else 0.0))


def test_objects():
    n, r = hvd.size(), hvd.rank()
    obj = {"rank": r, "t": (1, 2.5, None), "s": "x" * r}
    got = hvd.broadcast_object(obj, root_rank=n - 1)
    assert got == {"rank": n - 1, "t": (1, 2.5, None), "s": "x" * (n - 1)}
    every = hvd.allgather_object(obj)
    assert every == [{"rank": q, "t": (1, 2.5, None), "s": "x" * q} for q in range(n)]


def test_broadcast_parameters_state_dict_and_named():
    n, r = hvd.size(), hvd.rank()
    torch.manual_seed(r)
    m = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    m(torch.randn(8, 5))  # BatchNorm running stats differ per rank too
    hvd.broadcast_parameters(m.state_dict(), root_rank=0)
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    ref(torch.randn(8, 5))
    for (k, a), (_, b) in zip(sorted(m.state_dict().items()), sorted(ref.state_dict().items())):
        assert torch.equal(a, b), k
    with torch.no_grad():
        for p in m.parameters():
            p.add_(r)
    hvd.broadcast_parameters(list(m.named_parameters()), root_rank=0)
    for a, b in zip(m.parameters(), ref.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("opt_cls,kw", [(torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
                                        (torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.9)))])
def test_broadcast_optimizer_state_round_trip(opt_cls, kw):
    n, r = hvd.size(), hvd.rank()
    torch.manual_seed(7)
    m = torch.nn.Linear(4, 3)
    opt = opt_cls(m.parameters(), **kw)
    for g in opt.param_groups:  # rank-dependent hyperparameters
        g["lr"] = 0.1 * (r + 1)
        g["weight_decay"] = r  # an int on every rank
    for _ in range(r + 1):  # rank-dependent state
        opt.zero_grad()
        m(torch.randn(2, 4) * (r + 1)).sum().backward()
        opt.step()
    root_sd = hvd.broadcast_object(opt.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    sd = opt.state_dict()
    for g, rg in zip(sd["param_groups"], root_sd["param_groups"]):
        assert g == rg
        for k, v in g.items():
            assert type(v) is type(rg[k]), k
    assert type(sd["param_groups"][0]["weight_decay"]) is int
    assert sorted(sd["state"]) == sorted(root_sd["state"])
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                assert torch.equal(v, root_sd["state"][pid][k]), k
            else:
                assert v == root_sd["state"][pid][k] and type(v) is type(root_sd["state"][pid][k])


def test_broadcast_optimizer_state_fresh_ranks_get_roots_state():
    r = hvd.rank()
    m = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.5)
    if r == 0:
        m(torch.ones(1, 3)).sum().backward()
        opt.step()
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    assert len(opt.state_dict()["state"]) == 2


def test_barrier_and_misc():
    hvd.barrier()
    assert hvd.mpi_built() is False
    with pytest.raises(NotImplementedError):
        hvd.allreduce(torch.ones(2), op=hvd.Adasum)


@pytest.mark.parametrize("compression", [hvd.Compression.fp16, hvd.Compression.bf16])
def test_compression_casts(compression):
    n, r = hvd.size(), hvd.rank()
    t = torch.full((4096,), 0.25 * (r + 1))
    out = hvd.allreduce(t, op=hvd.Sum, compression=compression, name="cast.%s" % compression.spec)
    assert out.dtype == torch.float32
    assert torch.equal(out, torch.full((4096,), 0.25 * n * (n + 1) / 2))  # exact in 16 bits


@pytest.mark.parametrize("compression", [hvd.Compression.q8, hvd.Compression.q4, hvd.Compression.topk(0.1),
                                         hvd.Compression.randk(0.5), hvd.Compression.sign_rot, hvd.Compression.auto])
def test_compression_lossy(compression):
    """Inside the library: output identical on every rank; the first call
    (a fresh error-feedback state) within the bound of the codec that ran
    (lossy.py); and error feedback keeps the mean over steps close."""
    n, r = hvd.size(), hvd.rank()
    g = torch.Generator().manual_seed(r)
    t = torch.randn(1 << 16, generator=g)
    exact = sum(torch.randn(1 << 16, generator=torch.Generator().manual_seed(q)) for q in range(n))
    acc = torch.zeros_like(t)
    steps = 4
    for i in range(steps):
        out = hvd.allreduce(t, op=hvd.Sum, compression=compression, name="lossy.%s" % compression.spec)
        info = hvd.last_call_info()
        acc += out
        every = hvd.allgather(out.view(1, -1))
        assert all(torch.equal(every[0], every[q]) for q in range(n)), "ranks disagree"
        if i == 0:
            inputs = list(hvd.allgather(t.view(1, -1)).unbind(0))
            why = check_lossy(inputs, out, info)
            assert why == "", (compression.spec, info["plan"], why)
    assert torch.isfinite(acc).all()
    err = ((acc / steps - exact).norm() / exact.norm()).item()
    ran = "none" if info["exact"] else info["codec"]
    limit = {"none": 1e-6, "q8": 0.05, "q4": 0.5}.get(ran, 1.0)
    assert err < limit, (compression.spec, ran, err)


def test_compression_sign_sends_each_ranks_scaled_signs():
    """The plain sign's error is deterministic (the C++ checker has no
    statistical bound for it): a fresh state's output is the sum over ranks
    of each block's signs times sum(y^2) / sum(|y|), the sign library's
    scale (kernels/codec_math.h), here in float64, so within fp32 rounding."""
    n, r = hvd.size(), hvd.rank()
    count, block = (1 << 16) + 77, 256
    t = torch.randn(count, generator=torch.Generator().manual_seed(50 + r))
    out = hvd.allreduce(t, op=hvd.Sum, compression=hvd.Compression.sign, name="sign.fresh")
    info = hvd.last_call_info()
    if n == 1 or info["exact"]:
        pytest.skip("the call ran exact (%s)" % info["plan"])
    assert info["codec"] == "sign", info
    every = hvd.allgather(out.view(1, -1))
    assert all(torch.equal(every[0], every[q]) for q in range(n)), "ranks disagree"
    ref = torch.zeros(count, dtype=torch.float64)
    for q in range(n):
        y = torch.randn(count, generator=torch.Generator().manual_seed(50 + q)).double()
        pad = (-count) % block
        blocks = torch.cat([y, y.new_zeros(pad)]).view(-1, block)
        scale = (blocks * blocks).sum(1) / blocks.abs().sum(1)
        signs = torch.where(blocks >= 0, 1.0, -1.0).double()
        ref += (signs * scale[:, None]).reshape(-1)[:count]
    assert torch.allclose(out.double(), ref, rtol=1e-5, atol=1e-6), (out - ref).abs().max()
    # The tolerance rejects a scale 20% off.
    assert not torch.allclose(out.double() * 0.8, ref, rtol=1e-5, atol=1e-6)


def test_compression_sign_specs():
    assert hvd.Compression.from_spec("sign") is hvd.Compression.sign
    assert hvd.Compression.from_spec("SIGN:rot") is hvd.Compression.sign_rot
    assert hvd.Compression.sign.spec == "sign" and hvd.Compression.sign_rot.spec == "sign:rot"
    with pytest.raises(ValueError, match="sign:rot"):
        hvd.Compression.from_spec("sign:rotated")


def test_unknown_spec_is_an_error_not_a_downgrade():
    bad = hvd.Compression.from_spec("q8")
    bad = type("Bad", (bad,), {"spec": "q3"})
    with pytest.raises(RuntimeError, match="q3"):
        hvd.allreduce(torch.ones(1 << 12), compression=bad)

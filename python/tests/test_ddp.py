"""The DDP communication hook on gloo (CPU): with spec "none" a model ends
with the same parameters as plain DDP; with q8 (which must compress: asserted) the loss stays close."""
import copy
import datetime
import socket

import pytest
import torch
import torch.distributed as dist

import sqz.torch as hvd
import sqz.torch.ddp as sqz_ddp


@pytest.fixture(scope="module")
def gloo():
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    port = None
    if hvd.rank() == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    port = hvd.broadcast_object(port, 0, name="gloo.port")
    store = dist.TCPStore("127.0.0.1", port, hvd.size(), hvd.rank() == 0, timeout=datetime.timedelta(seconds=60))
    dist.init_process_group("gloo", store=store, rank=hvd.rank(), world_size=hvd.size())
    yield
    dist.destroy_process_group()


def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                               torch.nn.Linear(64, 4))


def train(model, steps, rank):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(rank)
    losses = []
    for _ in range(steps):
        x = torch.randn(16, 32, generator=g)
        y = x[:, :4] * 2 - x[:, 4:8]
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_hook_none_matches_plain_ddp(gloo):
    r = hvd.rank()
    plain = torch.nn.parallel.DistributedDataParallel(make(), bucket_cap_mb=0.01)
    hooked = torch.nn.parallel.DistributedDataParallel(make(), bucket_cap_mb=0.01)
    state = sqz_ddp.register(hooked, spec="none")
    try:
        lp = train(plain, 10, r)
        lh = train(hooked, 10, r)
        assert state.calls >= 10  # every step went through sqz
        for a, b in zip(plain.parameters(), hooked.parameters()):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
        assert lp == pytest.approx(lh, rel=1e-5, abs=1e-6)
    finally:
        state.close()


def test_hook_q8_loss_close(gloo, monkeypatch):
    r = hvd.rank()
    plain = torch.nn.parallel.DistributedDataParallel(make())
    hooked = torch.nn.parallel.DistributedDataParallel(make())
    # The model's one gradient bucket (6,532 floats, 26 KB) is below the
    # default SQZ_MIN_BYTES (64 KiB), under which nothing is compressed:
    # the hook's communicator (made here, reading it now) compresses from 0.
    monkeypatch.setenv("SQZ_MIN_BYTES", "0")
    state = sqz_ddp.register(hooked, spec="q8")
    try:
        lp = train(plain, 30, r)
        lh = train(hooked, 30, r)
        info = state.comm.last_call_info()
    finally:
        state.close()
    assert state.calls >= 30
    assert info["codec"] == "q8" and info["exact"] == 0 and info["compressionRatio"] > 2.5, info
    assert lh[-1] < lh[0] * 0.7  # it trains
    assert abs(sum(lh[-5:]) - sum(lp[-5:])) / sum(lp[-5:]) < 0.1
    flat = torch.cat([p.detach().view(-1) for p in hooked.parameters()]).view(1, -1)
    every = hvd.allgather(flat)
    assert all(torch.equal(every[0], every[q]) for q in range(hvd.size()))


def test_register_passes_the_optimizer(gloo, monkeypatch):
    # A DDP hook never sees the optimizer: register(optimizer=) tells the
    # hook's communicator its kind and momentum (auto's gain model).
    monkeypatch.delenv("SQZ_OPTIMIZER", raising=False)
    monkeypatch.delenv("SQZ_MOMENTUM", raising=False)
    from sqz.comm import Communicator
    seen = []
    real = Communicator.set_optimizer
    monkeypatch.setattr(Communicator, "set_optimizer", lambda self, k, m: seen.append((k, m)) or real(self, k, m))
    hooked = torch.nn.parallel.DistributedDataParallel(make())
    opt = torch.optim.Adam(hooked.parameters(), betas=(0.7, 0.999))
    state = sqz_ddp.register(hooked, spec="auto", optimizer=opt)
    state.close()
    assert seen == [("adam", 0.7)]

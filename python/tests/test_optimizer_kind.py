"""DistributedOptimizer tells the communicator the wrapped optimizer's kind
and momentum (what auto's gain model assumes: src/tuner/README.md section
7), and SQZ_OPTIMIZER / SQZ_MOMENTUM win when set."""
import pytest
import torch

import sqz.torch as hvd
from sqz import _lib
from sqz.torch import optimizer_kind


def params():
    return [torch.nn.Parameter(torch.zeros(3))]


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv("SQZ_OPTIMIZER", raising=False)
    monkeypatch.delenv("SQZ_MOMENTUM", raising=False)


def test_kinds_and_momentum():
    assert optimizer_kind.optimizer_settings(torch.optim.SGD(params(), lr=0.1, momentum=0.5)) == ("sgd", 0.5)
    assert optimizer_kind.optimizer_settings(torch.optim.SGD(params(), lr=0.1)) == ("sgd", 0.0)
    assert optimizer_kind.optimizer_settings(torch.optim.Adam(params(), betas=(0.8, 0.99))) == ("adam", 0.8)
    assert optimizer_kind.optimizer_settings(torch.optim.AdamW(params())) == ("adam", 0.9)
    assert optimizer_kind.optimizer_settings(torch.optim.RMSprop(params(), momentum=0.3)) == ("adam", 0.3)
    assert optimizer_kind.optimizer_settings(torch.optim.Adagrad(params())) == ("adam", 0.0)
    assert optimizer_kind.optimizer_settings(torch.optim.LBFGS(params())) is None


def test_environment_wins(monkeypatch):
    monkeypatch.setenv("SQZ_OPTIMIZER", "sgd")
    monkeypatch.setenv("SQZ_MOMENTUM", "0.25")
    assert optimizer_kind.optimizer_settings(torch.optim.Adam(params())) == ("sgd", 0.25)


def test_distributed_optimizer_sets_it(monkeypatch):
    comm = hvd.mpi_ops._comm()
    seen = []
    real = type(comm).set_optimizer
    monkeypatch.setattr(type(comm), "set_optimizer", lambda self, k, m: seen.append((k, m)) or real(self, k, m))
    model = torch.nn.Linear(4, 2)
    hvd.DistributedOptimizer(torch.optim.Adam(model.parameters(), betas=(0.85, 0.999)),
                             named_parameters=model.named_parameters())
    assert seen == [("adam", 0.85)]


def test_bad_values_are_rejected():
    comm = hvd.mpi_ops._comm()
    with pytest.raises(_lib.SqzError):
        comm.set_optimizer("lamb", 0.9)
    with pytest.raises(_lib.SqzError):
        comm.set_optimizer("adam", 1.5)
    assert comm.set_optimizer("sgd", 0.9)  # every rank alike: later calls still agree

"""Run under a launcher: `mpirun -np 4 python -m pytest -m "not launcher"`
(every rank runs the same tests in the same order, so their collectives
match), and once without one for the launcher tests: `pytest -m launcher`.
Plain `pytest` runs everything as a one-rank job.

SQZ_TEST_AGAINST=horovod runs the tests marked `horovod_reference` against
real Horovod (horovod.torch, built by python/tests/tools/build_horovod.sh)
instead of sqz.torch, and skips the rest: the reference semantics the
sqz tests expect, checked on Horovod itself."""
import importlib
import os

import pytest

torch = pytest.importorskip("torch")
AGAINST_HOROVOD = os.environ.get("SQZ_TEST_AGAINST") == "horovod"
hvd = importlib.import_module("horovod.torch" if AGAINST_HOROVOD else "sqz.torch")


def pytest_configure(config):
    config.addinivalue_line("markers", "launcher: starts its own ranks (run without mpirun)")
    config.addinivalue_line("markers", "horovod_reference: also runs against real Horovod (SQZ_TEST_AGAINST=horovod)")


def _launched():
    return any(k in os.environ for k in ("OMPI_COMM_WORLD_RANK", "RANK", "SLURM_PROCID"))


def pytest_collection_modifyitems(config, items):
    if _launched():
        skip = pytest.mark.skip(reason="starts its own ranks; run without mpirun")
        for item in items:
            if "launcher" in item.keywords:
                item.add_marker(skip)
    if AGAINST_HOROVOD:
        skip = pytest.mark.skip(reason="sqz only (SQZ_TEST_AGAINST=horovod)")
        for item in items:
            if "horovod_reference" not in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def hvd_init():
    os.environ.setdefault("SQZ_TIMEOUT", "60")
    hvd.init()
    yield
    hvd.barrier()


@pytest.fixture(autouse=True)
def in_step():
    """Every test starts and ends with the ranks in step, so a failed
    assertion on one rank cannot shift later collectives."""
    yield
    hvd.barrier()

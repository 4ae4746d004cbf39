"""What the Python side reads of the bootstrap's environment: SQZ_TIMEOUT
means what it means to libsqz (0 and overflow included), and the unique id
of a single-host mpirun job travels through a file that only this user can
reach. They make their own one-rank communicators, so they run once,
without mpirun (`pytest -m launcher`)."""
import os
import stat
import tempfile

import pytest

from sqz import _lib
from sqz.comm import Communicator
from sqz.env import timeout_seconds

pytestmark = pytest.mark.launcher

# Accepted values are long enough for a one-rank rendezvous under load.
TIMEOUTS = ["30", "2.5", "1e3", "1000000", "0", "0.0", "0.0005", "1000001", "-1", "inf", "nan", "1e30", "1e-9",
            "30s", " 30", "0x10", "+5", "1,5", "abc"]


def c_accepts_timeout(monkeypatch, text):
    """Whether libsqz creates a communicator with SQZ_TIMEOUT=text."""
    monkeypatch.setenv("SQZ_TIMEOUT", text)
    try:
        Communicator.init_rank(1, Communicator.unique_id(), 0).destroy()
        return True
    except _lib.SqzError as e:
        assert e.code == _lib.INVALID_ARGUMENT and "SQZ_TIMEOUT=" in str(e), str(e)
        return False


@pytest.mark.parametrize("text", TIMEOUTS)
def test_timeout_means_the_same_as_in_c(monkeypatch, text):
    try:
        value = timeout_seconds({"SQZ_TIMEOUT": text})
        python_accepts = True
    except ValueError as e:
        python_accepts = False
        assert "SQZ_TIMEOUT=%s: expected a number of seconds" % text in str(e)
    assert python_accepts == c_accepts_timeout(monkeypatch, text), text
    if python_accepts:
        assert value == float(text)
    assert timeout_seconds({}) == 300.0


def test_zero_timeout_is_an_error_not_an_instant_timeout(monkeypatch, tmp_path):
    """Rank 1 of a single-host mpirun job waits for rank 0's id; with
    SQZ_TIMEOUT=0 it says what is wrong with the value instead of timing out
    at once (and libsqz refuses 0 too)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PMIX_NAMESPACE", "sqz-timeout-test")
    monkeypatch.setenv("SQZ_TIMEOUT", "0")
    with pytest.raises(ValueError, match="SQZ_TIMEOUT=0: expected a number of seconds"):
        Communicator._init_via_file(1, 2)


def plant_links(tmp_path, job, victim):
    """Links at every name an id file of `job` had in the temp directory
    (the job's name with non-alphanumerics as '_'), pointing at victim."""
    uid = os.getuid()
    safe = "".join(c if c.isalnum() else "_" for c in job)
    names = ["sqz-uid-%d-%s" % (uid, safe), "sqz-uid-%d-%s.tmp" % (uid, safe)]
    for name in names:
        os.symlink(victim, os.path.join(str(tmp_path), name))


def test_id_file_never_writes_through_a_planted_link(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PMIX_NAMESPACE", "sqz-link-test")
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    plant_links(tmp_path, "sqz-link-test", str(victim))
    comm = Communicator._init_via_file(0, 1)
    comm.destroy()
    assert victim.read_bytes() == b"precious"
    private = tmp_path / ("sqz-%d" % os.getuid())
    assert stat.S_IMODE(os.lstat(str(private)).st_mode) == 0o700


def test_id_file_refuses_a_directory_others_can_enter(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PMIX_NAMESPACE", "sqz-dir-test")
    shared = tmp_path / ("sqz-%d" % os.getuid())
    shared.mkdir()
    os.chmod(str(shared), 0o777)
    with pytest.raises(RuntimeError, match="not a private directory"):
        Communicator._init_via_file(0, 1)
    os.rmdir(str(shared))
    os.symlink(str(tmp_path), str(shared))  # a link to a directory someone else controls
    with pytest.raises(RuntimeError, match="not a private directory"):
        Communicator._init_via_file(0, 1)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to make a file owned by another user")
def test_id_file_refuses_an_id_owned_by_someone_else(monkeypatch, tmp_path):
    """A reader takes an id only from a file of its own user: one planted by
    another user (at the old name or in the private directory) is refused."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PMIX_NAMESPACE", "sqz-owner-test")
    monkeypatch.setenv("SQZ_TIMEOUT", "2")
    fake = bytes(_lib.UNIQUE_ID_BYTES)
    private = tmp_path / ("sqz-%d" % os.getuid())
    private.mkdir(mode=0o700)
    for path in (tmp_path / ("sqz-uid-%d-sqz_owner_test" % os.getuid()), private / "uid-sqz_owner_test"):
        path.write_bytes(fake)
        os.chmod(str(path), 0o600)
        os.chown(str(path), 12345, 12345)
    with pytest.raises(RuntimeError, match="owned by uid 0"):
        Communicator._init_via_file(1, 2)

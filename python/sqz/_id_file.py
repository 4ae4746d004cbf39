"""Hands the unique id from rank 0 to the other ranks of a single-host
mpirun job through a file, for `mpirun -np 4 python x.py` without
MASTER_ADDR or SQZ_ROOT.

The id holds the job's secret, so the file lives in a directory only this
user can enter ($TMPDIR/sqz-<uid>, mode 0700, checked with lstat: not a
link, owned by us, no group or other bits), is created with
O_EXCL|O_NOFOLLOW under a temporary name and renamed into place, and is
read with O_NOFOLLOW only when it is a regular file owned by us that
nobody else may read or write."""
import os
import stat
import tempfile
import time


def private_dir():
    """This user's private directory for sqz's files, created if absent.
    Raises RuntimeError when the path exists but is not private to us."""
    path = os.path.join(tempfile.gettempdir(), "sqz-%d" % os.getuid())
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise RuntimeError("sqz: %s is not a private directory of this user (it must be a directory, not a link, "
                           "owned by uid %d, mode 0700; it is %s owned by uid %d, mode %o): remove it, or point "
                           "TMPDIR elsewhere" % (path, os.getuid(), "a directory" if stat.S_ISDIR(st.st_mode)
                                                 else "not a directory", st.st_uid, stat.S_IMODE(st.st_mode)))
    return path


def id_path(job):
    safe = "".join(c if c.isalnum() else "_" for c in job)
    return os.path.join(private_dir(), "uid-%s" % safe)


def publish(path, data):
    """Writes data to path atomically, never through a link or over a file
    that someone placed there."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_when_ready(path, size, timeout):
    """The `size` bytes at path once rank 0 has published them; waits at
    most `timeout` seconds. Refuses a file that is not ours alone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = None
        if fd is not None:
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
                    raise RuntimeError("sqz: refusing the unique id at %s: not a regular file owned by uid %d "
                                       "with mode 0600 (owned by uid %d, mode %o)"
                                       % (path, os.getuid(), st.st_uid, stat.S_IMODE(st.st_mode)))
                data = f.read(size + 1)
            if len(data) == size:
                return data
        if time.monotonic() > deadline:
            raise RuntimeError("sqz: no unique id appeared at %s within SQZ_TIMEOUT=%gs (rank 0 of this mpirun "
                               "job did not start?); set MASTER_ADDR/MASTER_PORT or SQZ_ROOT" % (path, timeout))
        time.sleep(0.01)

"""A libsqz communicator: framework-independent, raw pointers in.

Every collective is blocking for host memory (the library is synchronous
there); callers that want overlap run these from sqz.engine's progress
thread. Errors raise SqzError (a RuntimeError) carrying the library's code
and message; after a fatal one (timeout, dead peer) the communicator only
accepts abort/destroy, and says so on further calls.
"""
import ctypes
import os

from . import _id_file, _lib
from .env import timeout_seconds


class Communicator:
    def __init__(self, handle, lib):
        self._lib = lib
        self._handle = ctypes.c_void_p(handle)
        self._broken = None
        self._states = {}
        self._closed = False
        n = ctypes.c_int()
        r = ctypes.c_int()
        lib.check(lib.sqzCommCount(self._handle, ctypes.byref(n)), self._handle, "sqzCommCount")
        lib.check(lib.sqzCommUserRank(self._handle, ctypes.byref(r)), self._handle, "sqzCommUserRank")
        self.size = n.value
        self.rank = r.value

    def timeline_record(self, name, category, lane, start, duration, args_json):
        """Adds a complete event to libsqz's SQZ_TIMELINE file of this rank.
        Returns False when the library writes no timeline (or predates it)."""
        fn = self._lib.sqzTimelineRecord
        if fn is None:
            return False
        return fn(self._handle, name.encode(), category.encode(), lane, start, duration,
                  args_json.encode() if args_json else None) == 0

    # ---- construction -------------------------------------------------
    @staticmethod
    def unique_id():
        """A fresh unique id (128 bytes); starts the rendezvous root here."""
        lib = _lib.load()
        uid = _lib.UniqueId()
        lib.check(lib.sqzGetUniqueId(ctypes.byref(uid)), None, "sqzGetUniqueId")
        return ctypes.string_at(ctypes.addressof(uid), _lib.UNIQUE_ID_BYTES)

    @classmethod
    def init_rank(cls, nranks, unique_id, rank):
        lib = _lib.load()
        if len(unique_id) != _lib.UNIQUE_ID_BYTES:
            raise ValueError("unique id must be %d bytes, got %d" % (_lib.UNIQUE_ID_BYTES, len(unique_id)))
        uid = _lib.UniqueId()
        ctypes.memmove(ctypes.addressof(uid), bytes(unique_id), _lib.UNIQUE_ID_BYTES)
        h = ctypes.c_void_p()
        lib.check(lib.sqzCommInitRank(ctypes.byref(h), int(nranks), uid, int(rank)), None, "sqzCommInitRank")
        return cls(h.value, lib)

    @classmethod
    def init_from_env(cls):
        """torchrun / sqz.run / mpirun / SLURM environment. Under mpirun on
        one host without MASTER_ADDR or SQZ_ROOT, the unique id travels
        through a file named after the job in a directory private to this
        user (sqz/_id_file.py; so `mpirun -np 4 python x.py` works as is);
        across hosts set MASTER_ADDR/MASTER_PORT or SQZ_ROOT."""
        env = os.environ
        if ("RANK" not in env and "OMPI_COMM_WORLD_RANK" in env and not env.get("SQZ_ROOT")
                and not env.get("MASTER_ADDR")):
            size = int(env["OMPI_COMM_WORLD_SIZE"])
            local_size = int(env.get("OMPI_COMM_WORLD_LOCAL_SIZE", "-1"))
            if local_size == size:
                return cls._init_via_file(int(env["OMPI_COMM_WORLD_RANK"]), size)
        lib = _lib.load()
        h = ctypes.c_void_p()
        lib.check(lib.sqzCommInitFromEnv(ctypes.byref(h)), None, "sqzCommInitFromEnv")
        return cls(h.value, lib)

    @classmethod
    def _init_via_file(cls, rank, size):
        job = os.environ.get("PMIX_NAMESPACE") or os.environ.get("OMPI_MCA_orte_jobfam_session_dir") \
            or os.environ.get("OMPI_MCA_ess_base_jobid") or str(os.getppid())
        timeout = timeout_seconds()
        path = _id_file.id_path(job)
        if rank == 0:
            uid = cls.unique_id()
            _id_file.publish(path, uid)
        else:
            uid = _id_file.read_when_ready(path, _lib.UNIQUE_ID_BYTES, timeout)
        try:
            return cls.init_rank(size, uid, rank)
        finally:
            if rank == 0:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    # ---- teardown -----------------------------------------------------
    def destroy(self):
        if self._closed:
            return
        self._closed = True
        if self._lib.has("sqzStateDestroy"):
            for st in self._states.values():
                self._lib.sqzStateDestroy(st)
        self._states.clear()
        if self._broken is not None:
            self._lib.sqzCommAbort(self._handle)
        else:
            self._lib.sqzCommDestroy(self._handle)

    def abort(self):
        if self._closed:
            return
        self._closed = True
        self._states.clear()
        self._lib.sqzCommAbort(self._handle)

    @property
    def broken(self):
        return self._broken

    # ---- collectives --------------------------------------------------
    def _check(self, code, what):
        if code != _lib.SUCCESS:
            msg = self._lib.last_error(self._handle)
            text = "%s failed: %s%s" % (what, self._lib.error_string(code), (": " + msg) if msg else "")
            if code in _lib.FATAL_RESULTS:
                self._broken = text
            raise _lib.SqzError(code, text)

    def _usable(self, what):
        if self._closed:
            raise RuntimeError("sqz: %s on a communicator that was shut down" % what)
        if self._broken is not None:
            raise RuntimeError("sqz: %s: the communicator failed earlier and can no longer be used (%s)"
                               % (what, self._broken))

    def allreduce(self, send, recv, count, dtype, op, stream=None, spec=None, state_key=None):
        """spec None: the communicator's policy (SQZ_COMPRESSION); otherwise
        that spec. With state_key, one error-feedback state per (key, count,
        dtype) carries what the codec left out into the key's next call
        (sqzAllReduceEx, spec NULL for the policy); without, the call names no
        state and carries no residual (sqzAllReduce; src/implicit_states.h)."""
        self._usable("allreduce")
        if spec is None and (state_key is None or not self._lib.has("sqzAllReduceEx")):
            self._check(self._lib.sqzAllReduce(send, recv, count, dtype, op, self._handle, stream), "sqzAllReduce")
            return
        if not self._lib.has("sqzAllReduceEx"):
            raise _lib.SqzError(_lib.INVALID_ARGUMENT,
                                "sqz: compression %r needs sqzAllReduceEx, which %s does not export (this libsqz "
                                "build has no compressed collectives); use Compression.none / spec 'none'"
                                % (spec, self._lib.path))
        state = None
        if state_key is not None and count > 0:
            key = (state_key, count, dtype)
            state = self._states.get(key)
            if state is None:
                st = ctypes.c_void_p()
                self._check(self._lib.sqzStateCreate(self._handle, count, dtype, ctypes.byref(st)), "sqzStateCreate")
                state = self._states[key] = st
        code = self._lib.sqzAllReduceEx(send, recv, count, dtype, op, None if spec is None else spec.encode(), state,
                                        self._handle, stream)
        if code == _lib.INVALID_ARGUMENT and spec is not None:
            msg = self._lib.last_error(self._handle)
            raise _lib.SqzError(code, "sqzAllReduceEx rejected compression spec %r: %s" % (spec, msg))
        self._check(code, "sqzAllReduceEx(%s, state %r)" % ("policy" if spec is None else spec, state_key))

    def broadcast(self, send, recv, count, dtype, root, stream=None):
        self._usable("broadcast")
        self._check(self._lib.sqzBroadcast(send, recv, count, dtype, root, self._handle, stream), "sqzBroadcast")

    def allgather(self, send, recv, count, dtype, stream=None):
        self._usable("allgather")
        self._check(self._lib.sqzAllGather(send, recv, count, dtype, self._handle, stream), "sqzAllGather")

    def barrier(self):
        self._usable("barrier")
        self._check(self._lib.sqzBarrier(self._handle), "sqzBarrier")

    def set_call_tag(self, tag):
        """The next collective's call header carries `tag` (a 64-bit digest of
        what the C arguments do not show: names, shapes); ranks whose tags
        differ all fail that call (sqzCommSetCallTag)."""
        self._usable("set_call_tag")
        if self._lib.sqzCommSetCallTag is None:
            raise _lib.SqzError(_lib.INVALID_USAGE, "sqz: %s predates sqzCommSetCallTag; reinstall the package"
                                % self._lib.path)
        self._check(self._lib.sqzCommSetCallTag(self._handle, tag & 0xFFFFFFFFFFFFFFFF), "sqzCommSetCallTag")

    def join(self):
        """sqzJoin: serves the other ranks' allreduces with zeros until every
        rank has joined; returns the rank that joined last."""
        self._usable("join")
        if self._lib.sqzJoin is None:
            raise _lib.SqzError(_lib.INVALID_USAGE, "sqz: %s predates sqzJoin; reinstall the package" % self._lib.path)
        last = ctypes.c_int(-1)
        self._check(self._lib.sqzJoin(self._handle, ctypes.byref(last)), "sqzJoin")
        return last.value

    def set_compression(self, spec):
        self._usable("set_compression")
        self._check(self._lib.sqzCommSetCompression(self._handle, spec.encode()), "sqzCommSetCompression(%s)" % spec)

    def set_optimizer(self, kind, momentum):
        """What auto's gain model assumes of the optimizer (sqzCommSetOptimizer):
        kind "sgd" or "adam" (divides by a second moment), momentum SGD's
        momentum or Adam's beta1. Returns False when the loaded libsqz
        predates it."""
        self._usable("set_optimizer")
        if self._lib.sqzCommSetOptimizer is None:
            return False
        self._check(self._lib.sqzCommSetOptimizer(self._handle, kind.encode(), float(momentum)),
                    "sqzCommSetOptimizer(%s, %g)" % (kind, momentum))
        return True

    def async_error(self):
        """Raises the first error found after a device-buffer call returned
        (sqzCommGetAsyncError: such calls are enqueued on a CUDA stream and
        finish later); returns None when there is none, or when the library
        lacks the call."""
        if self._closed or not self._lib.has("sqzCommGetAsyncError"):
            return None
        err = ctypes.c_int(_lib.SUCCESS)
        self._check(self._lib.sqzCommGetAsyncError(self._handle, ctypes.byref(err)), "sqzCommGetAsyncError")
        self._check(err.value, "an enqueued collective (asynchronous error)")
        return None

    def last_call_info(self):
        """sqzGetCallInfo as a dict, or None when the library lacks it."""
        if not self._lib.has("sqzGetCallInfo"):
            return None
        info = _lib.CallInfo()
        if self._lib.sqzGetCallInfo(self._handle, ctypes.byref(info)) != _lib.SUCCESS:
            return None
        return info.as_dict()

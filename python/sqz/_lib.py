"""ctypes binding of libsqz's C API (include/sqz.h).

Only the C ABI is used, never torch's C++ ABI, so one build of the package
works with any torch. Library lookup order: $SQZ_LIBRARY, the copy bundled
into the package at build time (sqz/lib/libsqz.so), then the system loader.
"""
import ctypes
import os
import threading

UNIQUE_ID_BYTES = 128

# sqzResult_t
SUCCESS = 0
UNHANDLED_CUDA_ERROR = 1
SYSTEM_ERROR = 2
INTERNAL_ERROR = 3
INVALID_ARGUMENT = 4
INVALID_USAGE = 5
REMOTE_ERROR = 6
IN_PROGRESS = 7
TIMEOUT = 8

# sqzDataType_t
INT8, UINT8, INT32, UINT32, INT64, UINT64, FLOAT16, FLOAT32, FLOAT64, BFLOAT16 = range(10)
# sqzRedOp_t
SUM, PROD, MAX, MIN, AVG = range(5)
# sqzGetFeatures bits
FEATURE_CUDA = 1

# Results after which the communicator only accepts abort/destroy (README:
# "after that the communicator only accepts sqzCommAbort or sqzCommDestroy").
FATAL_RESULTS = (REMOTE_ERROR, TIMEOUT, SYSTEM_ERROR, INTERNAL_ERROR, UNHANDLED_CUDA_ERROR)


class UniqueId(ctypes.Structure):
    _fields_ = [("internal", ctypes.c_char * UNIQUE_ID_BYTES)]


class CallInfo(ctypes.Structure):
    _fields_ = [
        ("algorithm", ctypes.c_char * 32),
        ("codec", ctypes.c_char * 48),
        ("plan", ctypes.c_char * 128),
        ("exact", ctypes.c_int),
        ("count", ctypes.c_size_t),
        ("bytes", ctypes.c_size_t),
        ("wireBytes", ctypes.c_size_t),
        ("compressionRatio", ctypes.c_double),
        ("gain", ctypes.c_double),
        ("encodeSeconds", ctypes.c_double),
        ("transferSeconds", ctypes.c_double),
        ("decodeSeconds", ctypes.c_double),
        ("totalSeconds", ctypes.c_double),
    ]

    def as_dict(self):
        out = {}
        for name, _ in self._fields_:
            v = getattr(self, name)
            out[name] = v.decode() if isinstance(v, bytes) else v
        return out


class SqzError(RuntimeError):
    """A failed libsqz call. `code` is the sqzResult_t value."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


_c_comm = ctypes.c_void_p
_c_state = ctypes.c_void_p
_SIGNATURES = {
    "sqzGetVersion": [ctypes.POINTER(ctypes.c_int)],
    "sqzGetUniqueId": [ctypes.POINTER(UniqueId)],
    "sqzCommInitRank": [ctypes.POINTER(_c_comm), ctypes.c_int, UniqueId, ctypes.c_int],
    "sqzCommInitFromEnv": [ctypes.POINTER(_c_comm)],
    "sqzCommDestroy": [_c_comm],
    "sqzCommAbort": [_c_comm],
    "sqzCommCount": [_c_comm, ctypes.POINTER(ctypes.c_int)],
    "sqzCommUserRank": [_c_comm, ctypes.POINTER(ctypes.c_int)],
    "sqzCommSetCompression": [_c_comm, ctypes.c_char_p],
    "sqzCommSetOptimizer": [_c_comm, ctypes.c_char_p, ctypes.c_double],
    "sqzAllReduce": [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, _c_comm,
                     ctypes.c_void_p],
    "sqzBroadcast": [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, _c_comm,
                     ctypes.c_void_p],
    "sqzAllGather": [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, _c_comm, ctypes.c_void_p],
    "sqzStateCreate": [_c_comm, ctypes.c_size_t, ctypes.c_int, ctypes.POINTER(_c_state)],
    "sqzStateDestroy": [_c_state],
    "sqzAllReduceEx": [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_char_p, _c_state, _c_comm, ctypes.c_void_p],
    "sqzGetCallInfo": [_c_comm, ctypes.POINTER(CallInfo)],
    "sqzBarrier": [_c_comm],
    "sqzCommSetCallTag": [_c_comm, ctypes.c_uint64],
    "sqzJoin": [_c_comm, ctypes.POINTER(ctypes.c_int)],
    "sqzGetFeatures": [ctypes.POINTER(ctypes.c_int)],
    "sqzCommGetAsyncError": [_c_comm, ctypes.POINTER(ctypes.c_int)],
    "sqzTimelineRecord": [_c_comm, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_double, ctypes.c_double,
                          ctypes.c_char_p],
}


class Library:
    """The loaded libsqz with typed entry points. Functions the loaded build
    does not export (e.g. an older libsqz) are None; callers say so."""

    def __init__(self, path):
        self.path = path
        self._dll = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        for name, args in _SIGNATURES.items():
            fn = getattr(self._dll, name, None)
            if fn is not None:
                fn.argtypes = args
                fn.restype = ctypes.c_int
            setattr(self, name, fn)
        self._dll.sqzGetErrorString.argtypes = [ctypes.c_int]
        self._dll.sqzGetErrorString.restype = ctypes.c_char_p
        self._dll.sqzGetLastError.argtypes = [_c_comm]
        self._dll.sqzGetLastError.restype = ctypes.c_char_p

    def error_string(self, code):
        s = self._dll.sqzGetErrorString(code)
        return s.decode() if s else "unknown error %d" % code

    def last_error(self, comm):
        s = self._dll.sqzGetLastError(comm)
        return s.decode(errors="replace") if s else ""

    def has(self, name):
        return getattr(self, name, None) is not None

    def version(self):
        v = ctypes.c_int()
        self.check(self.sqzGetVersion(ctypes.byref(v)), None, "sqzGetVersion")
        return v.value

    def features(self):
        """sqzGetFeatures' bit set (FEATURE_CUDA, ...); 0 for a libsqz that
        predates the call (which had no CUDA path to serve Python)."""
        if self.sqzGetFeatures is None:
            return 0
        f = ctypes.c_int()
        self.check(self.sqzGetFeatures(ctypes.byref(f)), None, "sqzGetFeatures")
        return f.value

    def check(self, code, comm, what):
        if code != SUCCESS:
            msg = self.last_error(comm)
            raise SqzError(code, "%s failed: %s%s" % (what, self.error_string(code), (": " + msg) if msg else ""))


_lock = threading.Lock()
_library = None


def library_path_candidates():
    env = os.environ.get("SQZ_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    return [os.path.join(here, "lib", "libsqz.so"), "libsqz.so.0", "libsqz.so"]


def load():
    """Loads libsqz once per process."""
    global _library
    with _lock:
        if _library is None:
            errors = []
            for cand in library_path_candidates():
                if os.sep in cand and not os.path.exists(cand):
                    errors.append("%s: no such file" % cand)
                    continue
                try:
                    _library = Library(cand)
                    break
                except OSError as e:
                    errors.append("%s: %s" % (cand, e))
            if _library is None:
                raise ImportError("sqz: cannot load libsqz (set SQZ_LIBRARY=/path/to/libsqz.so, or reinstall the "
                                  "package so that it bundles the library): " + "; ".join(errors))
        return _library

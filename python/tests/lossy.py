"""Value checks of lossy results with the C++ tests' own checker
(tests/harness/lossy_check.h), from the test build's libsqz_test_checks_c
named by SQZ_TEST_CHECKS (.ci/python.sh builds it and sets it)."""
import ctypes
import os

import pytest
import torch

_TYPES = {torch.float32: 7, torch.float16: 6, torch.bfloat16: 9}
_OPS = {"sum": 0, "avg": 4}
_lib = None


def library():
    global _lib
    if _lib is None:
        path = os.environ.get("SQZ_TEST_CHECKS")
        if not path:
            pytest.skip("SQZ_TEST_CHECKS (the test build's libsqz_test_checks_c.so) is not set; .ci/python.sh sets it")
        if not os.path.exists(path):
            pytest.fail("SQZ_TEST_CHECKS=%s does not exist" % path)
        lib = ctypes.CDLL(path)
        lib.sqzTestCheckLossy.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                                          ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                                          ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        lib.sqzTestWriteLinkProfile.argtypes = [ctypes.c_double, ctypes.c_double, ctypes.c_char_p, ctypes.c_size_t]
        _lib = lib
    return _lib


def check_lossy(inputs, out, info, dtype=torch.float32, op="sum"):
    """'' when `out` is within the bound of the codec and plan `info`
    (sqzGetCallInfo as a dict) say ran, given what each rank contributed
    (`inputs`: one tensor per rank); else why not."""
    x = torch.stack([t.reshape(-1).float() for t in inputs]).contiguous()
    y = out.reshape(-1).float().contiguous()
    why = ctypes.create_string_buffer(512)
    lib = library()
    bad = lib.sqzTestCheckLossy(len(inputs), y.numel(), x.data_ptr(), y.data_ptr(), info["plan"].encode(),
                                info["codec"].encode(), int(info["exact"]), _TYPES[dtype], _OPS[op], why, len(why))
    return why.value.decode() if bad else ""


def write_link_profile(latency, bytes_per_second):
    """A tuner profile whose shared-memory link has this latency and
    bandwidth (for SQZ_PROFILE); returns its path."""
    path = ctypes.create_string_buffer(256)
    if library().sqzTestWriteLinkProfile(latency, bytes_per_second, path, len(path)) != 0:
        pytest.fail("could not write a tuner profile")
    return path.value.decode()

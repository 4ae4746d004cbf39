"""SQZ_TIMELINE: Python-side phases in chrome://tracing format.

Each collective the progress thread runs becomes two complete events on
this rank's row: "queue" (submission until the thread picks it up) and the
collective itself, with the plan the library chose (sqzGetCallInfo) in its
args when the library reports one. Written as a JSON array, one file per
rank: SQZ_TIMELINE with ".rank<N>" inserted before the extension (rank 0
of a one-rank job uses the path as given). When libsqz writes that file
itself (it does when SQZ_TIMELINE is set before the communicator is made),
these events go into it through sqzTimelineRecord, next to the library's
own (each allreduce with its plan and tune / encode / transfer / decode
times), so one trace shows both sides.
"""
import json
import os
import threading
import time

_lock = threading.Lock()
_file = None
_pid = 0
_first = True
_comm = None  # a Communicator whose libsqz writes the file (sqzTimelineRecord)


def now():
    return time.perf_counter()


def start(path, rank, size, comm=None):
    global _file, _pid, _first, _comm
    if not path:
        return
    if comm is not None and comm.timeline_record("timeline", "sqz.py", 3, now(), 0.0, None):
        _comm, _pid = comm, rank  # the library owns the file; send events there
        return
    if size > 1:
        root, ext = os.path.splitext(path)
        path = "%s.rank%d%s" % (root, rank, ext or ".json")
    with _lock:
        if _file is not None:
            return
        _file = open(path, "w")
        _file.write("[\n")
        _pid = rank
        _first = True
        _emit({"name": "process_name", "ph": "M", "pid": rank, "args": {"name": "sqz rank %d" % rank}})


def _emit(ev):
    global _first
    if _comm is not None:
        if ev.get("ph") == "X":
            _comm.timeline_record(ev["name"], ev.get("cat", "sqz.py"), ev.get("tid", 0), ev["ts"] / 1e6,
                                  ev["dur"] / 1e6, json.dumps(ev.get("args", {})))
        return
    _file.write(("" if _first else ",\n") + json.dumps(ev))
    _first = False


def record(name, t_queued, t_start, t_end, result=None):
    if _file is None and _comm is None:
        return
    args = result if isinstance(result, dict) else {}
    with _lock:
        if _file is None and _comm is None:
            return
        us = 1e6
        _emit({"name": "queue", "cat": "sqz.py", "ph": "X", "pid": _pid, "tid": 0,
               "ts": t_queued * us, "dur": max(0.0, (t_start - t_queued) * us), "args": {"tensor": name}})
        _emit({"name": name or "collective", "cat": "sqz.py", "ph": "X", "pid": _pid, "tid": 1,
               "ts": t_start * us, "dur": (t_end - t_start) * us, "args": args})


def phase(name, t_start, t_end, args=None):
    """A Python-side phase other than a collective (e.g. fusion copies)."""
    if _file is None and _comm is None:
        return
    with _lock:
        if _file is None and _comm is None:
            return
        _emit({"name": name, "cat": "sqz.py", "ph": "X", "pid": _pid, "tid": 2,
               "ts": t_start * 1e6, "dur": (t_end - t_start) * 1e6, "args": args or {}})


def stop():
    global _file, _comm
    with _lock:
        _comm = None
        if _file is not None:
            _file.write("\n]\n")
            _file.close()
            _file = None

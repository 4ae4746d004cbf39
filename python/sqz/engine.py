"""The progress thread: collectives queued by the caller run one at a time,
in submission order, on a background thread.

One thread and one FIFO is what keeps ranks in step without a coordinator:
if every rank submits the same sequence of collectives (which the Horovod
API's users already guarantee, and which DistributedOptimizer enforces by
submitting buckets in a fixed order), every rank issues the same sequence
to libsqz. The C calls release the GIL (ctypes), so Python keeps running
while a collective is on the wire.
"""
import queue
import threading

from . import timeline as _timeline


class Job:
    __slots__ = ("fn", "name", "done", "error", "result", "callbacks", "_lock", "t_queued")

    def __init__(self, fn, name):
        self.fn = fn
        self.name = name
        self.done = threading.Event()
        self.error = None
        self.result = None
        self.callbacks = []
        self._lock = threading.Lock()
        self.t_queued = _timeline.now()

    def add_done_callback(self, cb):
        """cb(job) runs on the progress thread when the job finishes (or
        right here if it already has)."""
        with self._lock:
            if not self.done.is_set():
                self.callbacks.append(cb)
                return
        cb(self)

    def wait(self, timeout=None):
        self.done.wait(timeout)
        return self.done.is_set()


class Engine:
    def __init__(self, name="sqz-progress"):
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopped = False
        self._thread.start()

    def submit(self, fn, name=""):
        if self._stopped:
            raise RuntimeError("sqz: the progress engine was shut down (call init() again)")
        job = Job(fn, name)
        self._queue.put(job)
        return job

    def _run(self):
        while True:
            job = self._queue.get()
            if job is None:
                return
            t0 = _timeline.now()
            try:
                job.result = job.fn()
            except BaseException as e:  # handed to whoever waits on the job
                job.error = e
            _timeline.record(job.name, job.t_queued, t0, _timeline.now(), job.result)
            with job._lock:
                job.done.set()
                callbacks, job.callbacks = job.callbacks, []
            for cb in callbacks:
                try:
                    cb(job)
                except BaseException:  # a callback must not kill the engine
                    import traceback
                    traceback.print_exc()

    def shutdown(self):
        """Runs what is queued, then stops the thread."""
        if self._stopped:
            return
        self._stopped = True
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()

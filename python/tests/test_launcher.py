"""`python -m sqz.run`: environment, failure propagation, signal forwarding,
and the example for a few steps. These start their own ranks, so they run
without mpirun (`pytest -m launcher`)."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.launcher

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_launcher(args, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "sqz.run"] + args, capture_output=True, text=True,
                          timeout=timeout, **kw)


def write(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return str(p)


def test_ranks_form_a_job(tmp_path):
    script = write(tmp_path, "job.py", """
        import os, torch, sqz.torch as hvd
        hvd.init()
        assert hvd.size() == 3 and hvd.rank() == int(os.environ["RANK"])
        assert os.environ["LOCAL_WORLD_SIZE"] == "3" and os.environ["SQZ_SECRET"]
        s = hvd.allreduce(torch.tensor([hvd.rank() + 1.0]), op=hvd.Sum)
        print("rank %d sum %d" % (hvd.rank(), int(s.item())))
        """)
    r = run_launcher(["-np", "3", script])
    assert r.returncode == 0, r.stderr
    # the ranks share stdout, so lines may interleave: match the records
    assert sorted(re.findall(r"rank \d sum \d+", r.stdout)) == ["rank %d sum 6" % q for q in range(3)]


def test_dying_rank_stops_the_others(tmp_path):
    marker = tmp_path / "pids"
    marker.mkdir()
    script = write(tmp_path, "die.py", """
        import os, sys, time
        open(os.path.join(%r, str(os.getpid())), "w").close()
        if os.environ["RANK"] == "2":
            time.sleep(0.5)
            sys.exit(7)
        time.sleep(120)
        """ % str(marker))
    t0 = time.monotonic()
    r = run_launcher(["-np", "4", "--grace", "2", script], timeout=60)
    assert r.returncode == 7
    assert time.monotonic() - t0 < 30
    assert "rank 2 exited with status 7" in r.stderr
    pids = [int(p.name) for p in marker.iterdir()]
    assert len(pids) == 4
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"


def test_killed_rank_in_a_collective_fails_the_job(tmp_path):
    script = write(tmp_path, "kill.py", """
        import os, signal, time, torch, sqz.torch as hvd
        hvd.init()
        hvd.allreduce(torch.ones(4))
        if hvd.rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        hvd.allreduce(torch.ones(4))
        time.sleep(60)
        """)
    t0 = time.monotonic()
    r = run_launcher(["-np", "3", "--grace", "2", script], timeout=90, env=dict(os.environ, SQZ_TIMEOUT="20"))
    assert r.returncode != 0
    assert "rank 1 killed by signal 9" in r.stderr
    assert time.monotonic() - t0 < 45


def test_sigterm_is_forwarded(tmp_path):
    marker = tmp_path / "ready"
    marker.mkdir()
    script = write(tmp_path, "wait.py", """
        import os, signal, sys, time
        def bye(*a):
            print("rank " + os.environ["RANK"] + " got SIGTERM", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        open(os.path.join(%r, os.environ["RANK"]), "w").close()
        time.sleep(120)
        """ % str(marker))
    proc = subprocess.Popen([sys.executable, "-m", "sqz.run", "-np", "2", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(list(marker.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "rank 0 got SIGTERM" in out and "rank 1 got SIGTERM" in out


def test_example_runs_a_few_steps():
    script = os.path.join(ROOT, "examples", "torch_fashion_mnist.py")
    if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
        pytest.skip("dataset-fashion-mnist is not installed")
    r = run_launcher(["-np", "2", script, "--epochs", "1", "--max-steps", "5", "--compression", "q8",
                      "--train-limit", "2000"], timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "accuracy" in r.stdout


def test_usage_errors():
    r = run_launcher(["-np", "0", "x.py"])
    assert r.returncode != 0
    r = run_launcher(["-np", "2"])
    assert r.returncode != 0


def test_timeline_records_python_phases_and_plan(tmp_path):
    import json
    script = write(tmp_path, "tl.py", """
        import torch, sqz.torch as hvd
        hvd.init()
        m = torch.nn.Linear(64, 64)
        opt = hvd.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1),
                                       named_parameters=m.named_parameters(), compression=hvd.Compression.q8)
        m(torch.randn(4, 64)).sum().backward()
        opt.step()
        hvd.allreduce(torch.ones(8), name="plain")
        """)
    tl = tmp_path / "tl.json"
    r = run_launcher(["-np", "2", script], env=dict(os.environ, SQZ_TIMELINE=str(tl)))
    assert r.returncode == 0, r.stderr
    for rank in range(2):
        events = json.load(open(tmp_path / ("tl.rank%d.json" % rank)))
        names = [e["name"] for e in events]
        assert "queue" in names and "fusion.pack" in names and "allreduce.plain" in names
        plans = [e["args"].get("plan") for e in events if e["name"].startswith("allreduce.bucket")]
        assert plans and all(plans), plans
        # The library's own events share the file: each allreduce with its phase times.
        lib = [e for e in events if e.get("cat") == "sqz" and e["name"] == "allreduce"]
        assert lib and all("encode_ms" in e["args"] and "plan" in e["args"] for e in lib), lib

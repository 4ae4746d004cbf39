"""Local launcher: `python -m sqz.run -np 4 script.py args...`

Starts N ranks on this host with the environment sqz.torch.init() (and
torchrun-style code) reads: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR, MASTER_PORT (sqz's rendezvous uses MASTER_PORT+1) and a fresh
SQZ_SECRET. Like `horovodrun -np 4` on one host. SIGINT/SIGTERM are
forwarded to every rank; when a rank exits non-zero (or is killed), the
others are terminated (SIGTERM, then SIGKILL after --grace seconds) and the
launcher exits with that rank's status. A command that is not a .py file
runs as given (`python -m sqz.run -np 2 python train.py` works too).

Across hosts use mpirun (-x MASTER_ADDR -x MASTER_PORT -x SQZ_SECRET),
torchrun or srun; see python/README.md.
"""
import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _free_port_pair(host):
    """A port P such that P and P+1 are both free now (torchrun's store
    convention: MASTER_PORT for the store, MASTER_PORT+1 for sqz). Drawn
    below the kernel's ephemeral range: a port from inside it can be taken
    by any outgoing connection (the ranks' own included) before rank 0
    binds it."""
    lo, _ = _ephemeral_range()
    top = lo - 2 if lo > 12000 else 65533
    rng = secrets.SystemRandom()
    for _ in range(200):
        port = rng.randint(10000, top)
        try:
            with socket.socket() as s, socket.socket() as s2:
                s.bind((host, port))
                s2.bind((host, port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("sqz.run: no free port pair found")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m sqz.run", description=__doc__.split("\n\n")[0])
    p.add_argument("-np", "--num-proc", dest="np", type=int, required=True, help="number of ranks")
    p.add_argument("--master-addr", default="127.0.0.1", help="address of the rendezvous (default 127.0.0.1)")
    p.add_argument("--master-port", type=int, default=0, help="port (sqz uses port+1); default: a free pair")
    p.add_argument("--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL on failure")
    p.add_argument("command", nargs=argparse.REMAINDER, help="script.py args... or a command")
    a = p.parse_args(argv)
    if a.np < 1:
        p.error("-np must be at least 1")
    if not a.command:
        p.error("no script or command given")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    cmd = list(a.command)
    if cmd[0].endswith(".py"):
        cmd = [sys.executable] + cmd
    port = a.master_port or _free_port_pair(a.master_addr)
    base = dict(os.environ)
    base.update({
        "WORLD_SIZE": str(a.np), "LOCAL_WORLD_SIZE": str(a.np),
        "MASTER_ADDR": a.master_addr, "MASTER_PORT": str(port),
        "SQZ_SECRET": os.environ.get("SQZ_SECRET") or secrets.token_hex(16),
        "GROUP_RANK": "0", "ROLE_RANK": "0", "ROLE_WORLD_SIZE": str(a.np),
    })
    procs = []
    for r in range(a.np):
        env = dict(base, RANK=str(r), LOCAL_RANK=str(r), ROLE_RANK=str(r))
        # Own process group per rank: signals reach the rank's children too.
        procs.append(subprocess.Popen(cmd, env=env, start_new_session=True))

    def signal_all(sig):
        for pr in procs:
            if pr.poll() is None:
                try:
                    os.killpg(pr.pid, sig)
                except ProcessLookupError:
                    pass

    received = []

    def forward(signum, _frame):
        received.append(signum)
        signal_all(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    failed = None
    try:
        while True:
            alive = 0
            for r, pr in enumerate(procs):
                rc = pr.poll()
                if rc is None:
                    alive += 1
                elif rc != 0 and failed is None:
                    failed = (r, rc)
            if failed is not None or alive == 0:
                break
            time.sleep(0.05)
        if failed is not None:
            r, rc = failed
            what = "killed by signal %d" % -rc if rc < 0 else "exited with status %d" % rc
            if not received:
                sys.stderr.write("sqz.run: rank %d %s; stopping the other ranks\n" % (r, what))
            signal_all(signal.SIGTERM)
            deadline = time.monotonic() + a.grace
            while time.monotonic() < deadline and any(pr.poll() is None for pr in procs):
                time.sleep(0.05)
            signal_all(signal.SIGKILL)
            status = rc if rc > 0 else 128 - rc
        for pr in procs:
            pr.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if status == 0 and received:
        status = 128 + received[0]
    return status


if __name__ == "__main__":
    sys.exit(main())

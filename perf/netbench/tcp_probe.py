#!/usr/bin/env python3
"""Bulk TCP throughput probe for `testbed.sh measure` (no iperf3 needed).

  tcp_probe.py recv --port P --seconds S   # prints "<Mbit/s> Mbit/s (<bytes> B in <s> s)"
  tcp_probe.py send --host H --port P --seconds S

The receiver times from the first byte to the end of the stream, so
connection setup is excluded; the tbf burst (256 KiB) is included but is
small against S seconds at the rates tested.
"""
import argparse
import socket
import sys
import time

CHUNK = 1 << 20


def recv(port, seconds):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    srv.settimeout(seconds + 30)
    conn, _ = srv.accept()
    conn.settimeout(seconds + 30)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    t0 = None
    t1 = None
    while True:
        n = conn.recv_into(view)
        if n == 0:
            break
        if t0 is None:
            t0 = time.monotonic()
        total += n
        t1 = time.monotonic()
    conn.close()
    srv.close()
    dt = (t1 - t0) if (t0 is not None and t1 > t0) else float("nan")
    mbit = total * 8 / dt / 1e6
    print(f"{mbit:.1f} Mbit/s ({total} B in {dt:.2f} s)")


def send(host, port, seconds):
    s = socket.create_connection((host, port), timeout=30)
    data = b"\0" * CHUNK
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["send", "recv"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5201)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    if a.mode == "recv":
        recv(a.port, a.seconds)
    else:
        send(a.host, a.port, a.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

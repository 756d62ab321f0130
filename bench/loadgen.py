"""A load generator for the line protocol of the example servers.

    python bench/loadgen.py PORT [--mode conn|ping] [--concurrency 8] [--seconds 3]

Two modes:

* ``conn`` -- connection per request, as the Perl figures were measured: each
  request is connect, ``PING`` -> ``PONG``, ``DONE`` -> ``OK``, and the server
  closes (the client reads end-of-file);
* ``ping`` -- one persistent connection per client, ``PING`` -> ``PONG`` over
  and over.

``--concurrency`` clients run as that many *processes* with blocking sockets
(forked from this one), so the generator is not one Python process's event
loop competing with the server: like the Perl figures, it shares the
machine's cores with the server.  Loopback only; every socket operation has
a timeout and the whole run is bounded (``--seconds`` plus a grace period;
clients still running then are killed).

The result (one JSON line) holds requests/s, p50/p99 latency of a request,
errors, and among them the connections reset by the server (ECONNRESET,
EPIPE, or an end-of-file before the reply).  A warm-up (``--warmup``) is run
but not counted.
"""

from __future__ import annotations

import argparse
import errno
import json
import marshal
import os
import select
import signal
import socket
import sys
import time
from array import array
from typing import Any

__all__ = ["LoadResult", "first_reply_latency", "run_load"]

HOST = "127.0.0.1"
TIMEOUT = 2.0  # per socket operation
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}

LoadResult = dict[str, Any]


class _Reset(Exception):
    """The server closed or reset the connection before the reply."""


def _read_line(sock: socket.socket, buf: bytearray) -> bytes:
    while True:
        end = buf.find(b"\n")
        if end >= 0:
            line = bytes(buf[: end + 1])
            del buf[: end + 1]
            return line.rstrip(b"\r\n")
        data = sock.recv(4096)
        if not data:
            raise _Reset("end of file before the reply")
        buf += data


def _expect(sock: socket.socket, buf: bytearray, want: bytes) -> None:
    line = _read_line(sock, buf)
    if line != want:
        raise ValueError(f"expected {want!r}, got {line!r}")


def one_request(port: int) -> float:
    """One connection-per-request exchange (raises on any error); returns
    the seconds from connect to the first reply (``PONG``)."""
    t0 = time.perf_counter()
    sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        sock.sendall(b"PING\r\n")
        _expect(sock, buf, b"PONG")
        first_reply = time.perf_counter() - t0
        sock.sendall(b"DONE\r\n")
        _expect(sock, buf, b"OK")
        # The server closes after OK: wait for its end-of-file.
        while sock.recv(4096):
            pass
    finally:
        sock.close()
    return first_reply


def _client(port: int, mode: str, start_at: float, count_from: float, stop_at: float) -> bytes:
    """One client process's loop; returns its marshalled result."""
    lat = array("d")
    errors = resets = 0
    kinds: dict[str, int] = {}
    clock = time.perf_counter
    while clock() < start_at:
        time.sleep(0.001)
    sock: socket.socket | None = None
    buf = bytearray()
    while True:
        t0 = clock()
        if t0 >= stop_at:
            break
        try:
            if mode == "conn":
                one_request(port)
            else:
                if sock is None:
                    sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buf = bytearray()
                sock.sendall(b"PING\r\n")
                _expect(sock, buf, b"PONG")
        except (OSError, _Reset, ValueError) as exc:
            if sock is not None:
                sock.close()
                sock = None
            if t0 < count_from:
                continue
            errors += 1
            kind = type(exc).__name__
            if isinstance(exc, _Reset) or (isinstance(exc, OSError) and exc.errno in _RESET_ERRNOS):
                resets += 1
            kinds[kind] = kinds.get(kind, 0) + 1
            time.sleep(0.001)  # a refused connect must not spin
            continue
        if t0 >= count_from:
            lat.append(clock() - t0)
    if sock is not None:
        sock.close()
    return marshal.dumps({"lat": lat.tobytes(), "errors": errors, "resets": resets, "kinds": kinds})


def run_load(
    port: int,
    mode: str = "conn",
    concurrency: int = 1,
    seconds: float = 3.0,
    warmup: float = 0.5,
) -> LoadResult:
    """Run ``concurrency`` client processes against ``port`` for ``seconds``
    (after ``warmup``); returns the summary (see the module doc)."""
    if mode not in ("conn", "ping"):
        raise ValueError(f"mode must be 'conn' or 'ping', not {mode!r}")
    start_at = time.perf_counter() + 0.05 + 0.01 * concurrency
    count_from = start_at + warmup
    stop_at = count_from + seconds
    pipes: dict[int, int] = {}
    for _ in range(concurrency):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the client process
            code = 1
            try:
                os.close(r)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                data = _client(port, mode, start_at, count_from, stop_at)
                with os.fdopen(w, "wb") as out:
                    out.write(data)
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        pipes[r] = pid
    chunks: dict[int, bytearray] = {r: bytearray() for r in pipes}
    open_fds = set(pipes)
    hard_deadline = stop_at + TIMEOUT + 3.0
    while open_fds:
        left = hard_deadline - time.perf_counter()
        if left <= 0:
            break
        ready, _, _ = select.select(list(open_fds), [], [], left)
        for fd in ready:
            data = os.read(fd, 1 << 16)
            if data:
                chunks[fd] += data
            else:
                open_fds.discard(fd)
    lat = array("d")
    errors = resets = 0
    kinds: dict[str, int] = {}
    lost = 0
    for fd, pid in pipes.items():
        if fd in open_fds:  # pragma: no cover - a client hung past the deadline
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
        try:
            part = marshal.loads(bytes(chunks[fd]))
        except (EOFError, ValueError, TypeError):
            lost += 1
            continue
        lat.frombytes(part["lat"])
        errors += part["errors"]
        resets += part["resets"]
        for kind, n in part["kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + n
    ordered = sorted(lat)

    def pct(q: float) -> float:
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000

    return {
        "mode": mode,
        "concurrency": concurrency,
        "seconds": seconds,
        "requests": len(ordered),
        "rate": len(ordered) / seconds,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "errors": errors,
        "resets": resets,
        "error_kinds": kinds,
        "lost_clients": lost,
    }


def first_reply_latency(port: int, samples: int, pause: float = 0.01) -> list[float]:
    """Seconds from connect to the first reply (``PING`` -> ``PONG``) on a
    fresh connection, ``samples`` times, one at a time, ``pause`` apart (so
    the server is idle again: a post-forked child was reaped, a pre-forked
    child is back waiting)."""
    out = []
    for _ in range(samples):
        out.append(one_request(port))
        time.sleep(pause)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--mode", choices=("conn", "ping"), default="conn")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    opts = parser.parse_args()
    result = run_load(opts.port, opts.mode, opts.concurrency, opts.seconds, opts.warmup)
    print(json.dumps(result))
    print(
        f"{result['rate']:,.0f} requests/s  p50 {result['p50_ms']:.3f} ms  "
        f"p99 {result['p99_ms']:.3f} ms  errors {result['errors']} "
        f"(resets {result['resets']})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

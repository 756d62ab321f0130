"""Server CPU per connection, layer by layer: where a pre-forked child's time goes.

Run: ``.venv/bin/python bench/layers.py [--connections 3000] [--repeats 3]``.

One server process and one client process (connection per request:
connect, PING, PONG, DONE, OK, close, one at a time); the figure is the
server's CPU time (``time.process_time``) per connection, best of R, for:

* ``bare``: blocking ``accept`` and ``bench/servers/bare.py``'s own
  connection loop (``recv``/``sendall``), no kernel;
* ``kernel``: the kernel with ``select_read`` on raw sockets and a handler
  that splits lines itself -- the event loop's own cost;
* ``wheels``: SocketFactory + ReadWrite + Line, the way ``examples/
  preforking.py`` serves a connection, without the Daemon.

A pre-forked Daemon child adds the Daemon's per-connection work on top of
``wheels`` (``update_status`` twice, the ``daemon_accept`` signal, the
scoreboard): ``bench/forkprofile.py --part prefork`` measures that whole.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import emit, table

VARIANTS = ("bare", "kernel", "wheels")


def client(port: int, n: int) -> None:
    """``n`` connections, one at a time."""
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for line, answer in ((b"PING\r\n", b"PONG\r\n"), (b"DONE\r\n", b"OK\r\n")):
                sock.sendall(line)
                buf = b""
                while not buf.endswith(answer):
                    chunk = sock.recv(64)
                    if not chunk:
                        raise ConnectionError("server closed early")
                    buf += chunk


def listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def start_client(port: int, n: int) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the client process
        code = 1
        try:
            client(port, n)
            code = 0
        finally:
            os._exit(code)
    return pid


def serve_bare(n: int) -> float:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "servers"))
    from bare import serve  # the bare pre-forking server's own connection loop

    sock = listener()
    pid = start_client(sock.getsockname()[1], n)
    start = time.process_time()
    for _ in range(n):
        conn, _addr = sock.accept()
        serve(conn)
    cpu = time.process_time() - start
    os.waitpid(pid, 0)
    return cpu / n


def serve_kernel(n: int) -> float:
    from kernelish import ARG0, HEAP, HandlerArgs, Session, poe_kernel

    out: dict[str, float] = {}

    def _start(_: HandlerArgs) -> None:
        heap = _[HEAP]
        heap.update(listener=listener(), served=0, bufs={})
        heap["listener"].setblocking(False)
        _.kernel.select_read(heap["listener"], "accept")
        heap["pid"] = start_client(heap["listener"].getsockname()[1], n)
        out["start"] = time.process_time()

    def accept(_: HandlerArgs) -> None:
        try:
            conn, _addr = _[HEAP]["listener"].accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        _[HEAP]["bufs"][conn.fileno()] = b""
        _.kernel.select_read(conn, "readable")

    def readable(_: HandlerArgs) -> None:
        heap, conn = _[HEAP], _[ARG0]
        data = conn.recv(4096)
        buf = heap["bufs"][conn.fileno()] + data
        if not data or b"DONE\r\n" in buf:
            if data:
                conn.send(b"OK\r\n")
            _.kernel.select_read(conn)
            del heap["bufs"][conn.fileno()]
            conn.close()
            heap["served"] += 1
            if heap["served"] == n:
                out["cpu"] = time.process_time() - out["start"]
                _.kernel.select_read(heap["listener"])
                heap["listener"].close()
                os.waitpid(heap["pid"], 0)
            return
        if b"PING\r\n" in buf:
            buf = buf.replace(b"PING\r\n", b"")
            conn.send(b"PONG\r\n")
        heap["bufs"][conn.fileno()] = buf

    Session.create(inline_states={"_start": _start, "accept": accept, "readable": readable})
    poe_kernel.run()
    return out["cpu"] / n


def serve_wheels(n: int) -> float:
    from kernelish import ARG0, ARG1, HEAP, HandlerArgs, Session, poe_kernel
    from kernelish.filters import Line
    from kernelish.wheels import ReadWrite, SocketFactory

    out: dict[str, float] = {}

    def _start(_: HandlerArgs) -> None:
        heap = _[HEAP]
        heap.update(served=0, wheels={}, closing=set())
        heap["listener"] = SocketFactory(
            BindAddress="127.0.0.1", BindPort=0, SuccessEvent="accept", FailureEvent="failed"
        )
        heap["pid"] = start_client(heap["listener"].getsockname()[1], n)
        out["start"] = time.process_time()

    def accept(_: HandlerArgs) -> None:
        wheel = ReadWrite(
            Handle=_[ARG0],
            Filter=Line(),
            InputEvent="input",
            ErrorEvent="gone",
            FlushedEvent="flushed",
        )
        _[HEAP]["wheels"][wheel.ID] = wheel

    def input_(_: HandlerArgs) -> None:
        heap, wheel_id = _[HEAP], _[ARG1]
        if _[ARG0] == "PING":
            heap["wheels"][wheel_id].put("PONG")
        else:
            heap["wheels"][wheel_id].put("OK")
            heap["closing"].add(wheel_id)

    def flushed(_: HandlerArgs) -> None:
        heap, wheel_id = _[HEAP], _[ARG0]
        if wheel_id in heap["closing"]:
            heap["closing"].discard(wheel_id)
            del heap["wheels"][wheel_id]
            heap["served"] += 1
            if heap["served"] == n:
                out["cpu"] = time.process_time() - out["start"]
                del heap["listener"]
                os.waitpid(heap["pid"], 0)

    def gone(_: HandlerArgs) -> None:
        _[HEAP]["wheels"].pop(_[ARG0 + 3], None)

    def failed(_: HandlerArgs) -> None:
        raise RuntimeError(f"listener failed: {_.args}")

    states: dict[str, Any] = {
        "_start": _start,
        "accept": accept,
        "input": input_,
        "flushed": flushed,
        "gone": gone,
        "failed": failed,
    }
    Session.create(inline_states=states)
    poe_kernel.run()
    return out["cpu"] / n


def run_variant(variant: str, n: int) -> float:
    """Seconds of server CPU per connection, in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, __file__, "--variant", variant, "--connections", str(n)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.variant:
        serve = {"bare": serve_bare, "kernel": serve_kernel, "wheels": serve_wheels}
        print(serve[opts.variant](opts.connections))
        return
    best = {v: float("inf") for v in VARIANTS}
    for _ in range(opts.repeats):  # interleaved: the machine's drift hits all alike
        for variant in VARIANTS:
            best[variant] = min(best[variant], run_variant(variant, opts.connections))
    for variant in VARIANTS:
        emit(
            f"server CPU per connection: {variant}",
            best[variant] * 1e6,
            "us",
            ratio_to_bare=round(best[variant] / best["bare"], 2),
            group="layers",
        )
    table(f"Server CPU per connection, best of {opts.repeats}, {opts.connections} connections")


if __name__ == "__main__":
    main()

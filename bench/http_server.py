"""ServerHTTP under the pre-forking Daemon against an asyncio HTTP server,
in the same run (issue 18).

Run: ``.venv/bin/python bench/http_server.py [--seconds 3] [--repeats 2]``

A hello-world handler (13 octets of ``text/plain``) on
``ServerHTTP(Daemon=True)`` under ``DaemonComponent`` with 4 pre-forked
children, against the baseline: the same answer from an ``asyncio``
streams server written here (HTTP/1.1 keep-alive and ``Connection:
close`` honoured, the request head read up to its blank line) in 4
processes forked after the listening socket is bound -- the shape of an
asyncio server behind a pre-forking master, without uvicorn's C parser.
(``http.server`` would be no fair baseline: a thread per connection and a
``readline`` per header.)

The load is ``wrk`` (Debian's package), 2 threads, 8 and 32 connections,
for ``--seconds`` each: with keep-alive, and without (``Connection:
close`` on every request, a new connection each time, gunicorn's sync
workers' way).  The two servers' runs are interleaved and each figure is
the best of ``--repeats``; the ratio is ServerHTTP's requests per second
over the baseline's.  gunicorn's comparison is the WSGI layer's
(``kernelish serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import emit, table, wrk  # noqa: E402

PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(HERE.parent)}
WORKERS = 4
BODY = b"Hello, world!"


# -- the servers (each run in its own process tree) ---------------------------------------


def serve_kernelish() -> None:
    """ServerHTTP(Daemon=True), 4 pre-forked children serving for good."""
    from kernelish import ARG1, poe_kernel
    from kernelish.components.daemon import Daemon, DaemonComponent
    from kernelish.components.server_http import ServerHTTP

    def hello(_: object) -> None:
        response = _[ARG1]  # type: ignore[index]
        response.content_type = "text/plain"
        response.content = BODY
        response.respond()

    server = ServerHTTP(Address="127.0.0.1", Daemon=True, Handler=hello, AccessLog=False)
    print(f"PORT={server.port}", flush=True)
    DaemonComponent.spawn(
        alias="Daemon",
        detach=False,
        start_children=WORKERS,
        max_children=WORKERS,
        min_spare=1,
        max_spare=WORKERS,
        requests=10**9,
    )
    poe_kernel.run()
    if Daemon.is_child():
        os._exit(0)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    date = ""
    stamp = -1
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            close = lines[0].endswith(b"HTTP/1.0")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"connection":
                    close = b"close" in value.lower()
                elif name == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            now = int(time.time())
            if now != stamp:
                stamp = now
                date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: %s\r\n"
                b"Content-Length: %d\r\n%s\r\n%s"
                % (date.encode(), len(BODY), b"Connection: close\r\n" if close else b"", BODY)
            )
            if close:
                break
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def serve_asyncio() -> None:
    """The baseline: asyncio streams, 4 processes forked on one socket."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(f"PORT={sock.getsockname()[1]}", flush=True)
    children = []
    for _ in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            try:

                async def main() -> None:
                    server = await asyncio.start_server(_handle, sock=sock)
                    await server.serve_forever()

                asyncio.run(main())
            finally:
                os._exit(0)
        children.append(pid)
    signal.sigwait({signal.SIGTERM})
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)


class Server:
    """One server's process tree, started by kind."""

    def __init__(self, kind: str) -> None:
        code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import http_server as h; "
        code += "h.serve_kernelish()" if kind == "kernelish" else "h.serve_asyncio()"
        self.proc = subprocess.Popen(
            [PY, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV, start_new_session=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT="):
            raise RuntimeError(f"{kind} did not start: {line!r}")
        self.port = int(line.split("=", 1)[1])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the children answer
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                time.sleep(0.05)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): nothing measured", flush=True)
        return
    cases = [(c, ka) for ka in (False, True) for c in (8, 32)]
    best: dict[tuple[str, int, bool], float] = {}
    for _ in range(args.repeats):
        for kind in ("kernelish", "asyncio"):
            server = Server(kind)
            try:
                for connections, keep_alive in cases:
                    rate = wrk(server.port, connections, args.seconds, keep_alive)
                    key = (kind, connections, keep_alive)
                    best[key] = max(best.get(key, 0.0), rate)
            finally:
                server.stop()
    for connections, keep_alive in cases:
        label = f"{connections} connections, {'keep-alive' if keep_alive else 'Connection: close'}"
        mine = best[("kernelish", connections, keep_alive)]
        base = best[("asyncio", connections, keep_alive)]
        extra = {"group": "http_server", "connections": connections, "keep_alive": keep_alive}
        emit(f"ServerHTTP, 4 children, {label}", mine, "req/s", **extra)
        emit(f"asyncio streams, 4 processes, {label}", base, "req/s", **extra)
        emit(f"ServerHTTP / asyncio, {label}", mine / base, "x", **extra)
    table("ServerHTTP under the pre-forking Daemon against asyncio streams (wrk, 2 threads)")


if __name__ == "__main__":
    main()

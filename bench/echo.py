"""Line echo round trips per second: kernelish (SocketFactory + ReadWrite +
Line) against an asyncio ``Protocol`` echo server, in the same run.

Run: ``.venv/bin/python bench/echo.py [--seconds 2] [--repeats 2]``

Each server runs alone in its own process; the client (this process) is the
same for both: plain non-blocking sockets on an epoll, keeping one line in
flight per connection.  Two scenarios: one connection (latency-bound
ping-pong) and 32 connections (throughput).  Prints one JSON line per figure,
a table, and the kernelish/asyncio ratio per scenario (target >= 1).
``guarded`` is the kernelish server with the protections the examples give
every connection (``InputTimeout``, ``HighMark``/``LowMark``/``Backpressure``),
against the plain one (target >= 0.95: they must not slow the echo path).
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import check, emit, table

PING = b"ping\n"


# -- servers (run in a child process) -----------------------------------------


#: The protections the examples give every connection (issue 13): an idle
#: timeout and backpressure.  ``--serve guarded`` measures what they cost.
GUARDS = {"InputTimeout": 60.0, "HighMark": 256 * 1024, "LowMark": 64 * 1024, "Backpressure": True}


def serve_kernelish(guarded: bool = False) -> None:
    from kernelish import ARG0, ARG1, ARG3, HEAP, HandlerArgs, Session, poe_kernel
    from kernelish.wheels import ReadWrite, SocketFactory

    guards = GUARDS if guarded else {}

    def start(_: HandlerArgs) -> None:
        heap = _[HEAP]
        heap["listener"] = SocketFactory(
            BindAddress="127.0.0.1",
            BindPort=0,
            Reuse="yes",
            SuccessEvent="accepted",
            FailureEvent="failed",
        )
        heap["clients"] = {}
        print("PORT", heap["listener"].getsockname()[1], flush=True)

    def accepted(_: HandlerArgs) -> None:
        wheel = ReadWrite(Handle=_[ARG0], InputEvent="line", ErrorEvent="error", **guards)
        _[HEAP]["clients"][wheel.ID] = wheel

    def line(_: HandlerArgs) -> None:
        _[HEAP]["clients"][_[ARG1]].put(_[ARG0])

    def error(_: HandlerArgs) -> None:
        _[HEAP]["clients"].pop(_[ARG3], None)

    def failed(_: HandlerArgs) -> None:
        raise SystemExit(f"listener failed: {_[ARG0:]}")

    Session.create(
        inline_states={
            "_start": start,
            "accepted": accepted,
            "line": line,
            "error": error,
            "failed": failed,
        }
    )
    poe_kernel.run()


def serve_asyncio() -> None:
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            data = self.buffer + data
            *lines, self.buffer = data.split(b"\n")
            if lines:
                self.transport.write(b"".join(line.rstrip(b"\r") + b"\r\n" for line in lines))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        print("PORT", server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


# -- the client ---------------------------------------------------------------


def round_trips(port: int, connections: int, seconds: float) -> float:
    """Round trips per second with ``connections`` lines in flight."""
    socks = []
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    by_fd = {s.fileno(): s for s in socks}
    ep = select.epoll()
    try:
        for s in socks:
            ep.register(s.fileno(), select.EPOLLIN)
        # warm up
        for s in socks:
            s.send(PING)
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        warm_until = start + min(0.3, seconds / 4)
        counting = False
        while True:
            for fd, _ev in ep.poll(1.0):
                s = by_fd[fd]
                data = s.recv(65536)
                if not data:
                    raise SystemExit("server closed the connection")
                n = data.count(b"\n")
                s.send(PING * n)
                count += n
            now = time.perf_counter()
            if not counting and now >= warm_until:
                counting, count, start = True, 0, now
            if now >= deadline:
                break
        return count / (now - start)
    finally:
        ep.close()
        for s in socks:
            s.close()


def run_server(kind: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "PORT":
        proc.kill()
        raise SystemExit(f"{kind} server did not start: {line}")
    return proc, int(line[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="best of")
    parser.add_argument(
        "--serve", choices=("kernelish", "guarded", "asyncio"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve in ("kernelish", "guarded"):
        serve_kernelish(guarded=args.serve == "guarded")
        return
    if args.serve == "asyncio":
        serve_asyncio()
        return
    results: dict[tuple[str, int], float] = {}
    kinds = ("kernelish", "guarded", "asyncio")
    for connections in (1, 32):
        rates = dict.fromkeys(kinds, 0.0)
        for _ in range(args.repeats):
            for kind in kinds:  # interleaved: each kind sees the same machine
                proc, port = run_server(kind)
                try:
                    rates[kind] = max(rates[kind], round_trips(port, connections, args.seconds))
                finally:
                    proc.terminate()
                    proc.wait(5)
        for kind in kinds:
            results[kind, connections] = rates[kind]
            emit(
                f"echo {kind}, {connections} connection(s)",
                rates[kind],
                "round trips/s",
                connections=connections,
                group="echo",
                baseline=kind == "asyncio",
            )
        ratio = results["kernelish", connections] / results["asyncio", connections]
        check(f"echo, {connections} connection(s) / asyncio Protocol", ratio, ">=", 1.0)
    # InputTimeout + Backpressure cost one clock read per read, no more.  With
    # one connection the figure depends on which cores the two processes got,
    # so the check is on 32.
    guarded = results["guarded", 32] / results["kernelish", 32]
    check("echo, 32 connections, guarded / plain", guarded, ">=", 0.95)
    table("line echo round trips per second")


if __name__ == "__main__":
    main()

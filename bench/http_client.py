"""ClientHTTP against an asyncio-streams client, the same requests to the same server, in
the same run (issue 18).

Run: ``.venv/bin/python bench/http_client.py [--seconds 2] [--repeats 3]``

The server is one process of its own: an asyncio Protocol that answers every request
with the same small response (``Content-Length``; it closes when asked with
``Connection: close``), cheap enough that the clients, not it, set the pace.  Each
client runs in a fresh interpreter, 1 and 8 requests in flight, with keep-alive (8
connections at most, one per request in flight) and without (a connection per request):

* kernelish: ``ClientHTTP.spawn(MaxPerHost=8, KeepAlive=15 or 0)`` and one session that
  posts the next request from each response event;
* the baseline: asyncio streams -- ``open_connection``, ``write``, ``readuntil`` the
  blank line, ``readexactly`` the ``Content-Length`` -- the least an asyncio program
  can do for the same exchange (no HTTP library: no aiohttp).

Each figure is requests per second, the best of ``--repeats``, the kinds interleaved so
each sees the same machine; every response is checked (status 200, the body).  Then the
cost of a name lookup: the median of 30 through ClientHTTP's resolver (a Run child per
name, uncached) against ``getaddrinfo`` of the same name in the process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import emit, table  # noqa: E402

PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(HERE.parent)}
BODY = b"Hello, World!"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
CLOSING = RESPONSE.replace(b"200 OK\r\n", b"200 OK\r\nConnection: close\r\n", 1)


# -- the server -----------------------------------------------------------------------------


class _Answer(asyncio.Protocol):
    """Answer each request head with RESPONSE (CLOSING, then close, if asked)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head, buffer = buffer[:end], buffer[end + 4 :]
            if b"close" in head.lower():
                self.transport.write(CLOSING)  # type: ignore[attr-defined]
                self.transport.close()
                return
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]
        self.buffer = buffer


def serve() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Answer, "127.0.0.1", 0, backlog=1024)
        print("PORT", server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


class Server:
    """The server process, for a ``with`` block."""

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            [PY, __file__, "--serve"], stdout=subprocess.PIPE, text=True, env=ENV
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# -- the clients ----------------------------------------------------------------------------


def client_kernelish(port: int, concurrency: int, keep_alive: bool, seconds: float) -> float:
    from kernelish import ARG1, KERNEL, HandlerArgs, Session, poe_kernel
    from kernelish.components.client_http import ClientHTTP
    from kernelish.http import Request

    url = f"http://127.0.0.1:{port}/"
    ClientHTTP.spawn(Alias="ua", MaxPerHost=8, KeepAlive=15 if keep_alive else 0)
    count, bad = [0], [0]
    stop_at = [0.0]

    def start(_: HandlerArgs) -> None:
        stop_at[0] = time.perf_counter() + seconds
        for _i in range(concurrency):
            _[KERNEL].post("ua", "request", "response", Request("GET", url))

    def response(_: HandlerArgs) -> None:
        (answer,) = _[ARG1]
        if answer.status != 200 or answer.body != BODY:
            bad[0] += 1
        count[0] += 1
        if time.perf_counter() < stop_at[0]:
            _[KERNEL].post("ua", "request", "response", Request("GET", url))
        elif count[0] >= 1 and _[KERNEL].call("ua", "pending_requests_count") == 0:
            _[KERNEL].post("ua", "shutdown")

    started = time.perf_counter()
    Session.create(inline_states={"_start": start, "response": response})
    poe_kernel.run()
    if bad[0]:
        raise SystemExit(f"kernelish: {bad[0]} bad responses")
    return count[0] / (time.perf_counter() - started)


def client_asyncio(port: int, concurrency: int, keep_alive: bool, seconds: float) -> float:
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: bench\r\n" % port
    request += b"\r\n" if keep_alive else b"Connection: close\r\n\r\n"

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"content-length:")
        length = int(head[at + 15 : head.index(b"\r\n", at)])
        body = await reader.readexactly(length)
        return head.startswith(b"HTTP/1.1 200 ") and body == BODY

    async def worker(stop_at: float, count: list[int]) -> None:
        connection = None
        while time.perf_counter() < stop_at:
            if connection is None:
                connection = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = connection
            if not await exchange(reader, writer):
                raise SystemExit("asyncio: a bad response")
            count[0] += 1
            if not keep_alive:
                writer.close()
                await writer.wait_closed()
                connection = None
        if connection is not None:
            connection[1].close()

    async def main() -> float:
        count = [0]
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds, count) for _ in range(concurrency)))
        return count[0] / (time.perf_counter() - started)

    return asyncio.run(main())


def lookups(count: int) -> tuple[float, float]:
    """Milliseconds per uncached name lookup through ClientHTTP's resolver (a Run child
    per name), and per ``getaddrinfo`` of the same name in the process (the baseline)."""
    import socket

    from kernelish import Session, poe_kernel
    from kernelish.components.client_http._resolver import Resolver

    host = socket.gethostname()  # in /etc/hosts: the lookup itself is quick
    resolver = Resolver(max_children=1, timeout=10)
    times: list[float] = []
    started = [0.0]

    def go(_: object) -> None:
        started[0] = time.perf_counter()
        resolver.lookup(host, answered)

    def answered(answer: object) -> None:
        times.append(time.perf_counter() - started[0])
        resolver._cache.clear()  # every lookup a new one
        if len(times) < count:
            poe_kernel.yield_("go")

    Session.create(
        inline_states={"_start": lambda _: _.kernel.yield_("go"), "go": go, **resolver.states()}
    )
    poe_kernel.run()
    started[0] = time.perf_counter()
    for _i in range(count):
        socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
    direct = (time.perf_counter() - started[0]) / count
    times.sort()
    return times[len(times) // 2] * 1e3, direct * 1e3


def run_client(kind: str, port: int, concurrency: int, keep_alive: bool, seconds: float) -> float:
    """One measurement in a fresh interpreter."""
    out = subprocess.run(
        [PY, __file__, "--client", kind, "--port", str(port), "--concurrency",
         str(concurrency), "--seconds", str(seconds)] + ([] if keep_alive else ["--close"]),
        capture_output=True, text=True, env=ENV, timeout=seconds + 60, check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def bench(seconds: float, repeats: int) -> None:
    with Server() as server:
        for keep_alive in (True, False):
            for concurrency in (1, 8):
                rates = {"kernelish": 0.0, "asyncio": 0.0}
                for _ in range(repeats):
                    for kind in rates:
                        rate = run_client(kind, server.port, concurrency, keep_alive, seconds)
                        rates[kind] = max(rates[kind], rate)
                how = "keep-alive" if keep_alive else "a connection each"
                where = f"{concurrency} in flight, {how}"
                emit(f"ClientHTTP, {where}", rates["kernelish"], "req/s", group="http_client")
                emit(
                    f"asyncio streams, {where}",
                    rates["asyncio"],
                    "req/s",
                    group="http_client",
                    baseline=True,
                )
                # No target was set for the client: the ratio is a figure, not a check.
                emit(
                    f"ClientHTTP / asyncio streams, {where}",
                    rates["kernelish"] / rates["asyncio"],
                    "x",
                    group="http_client",
                )


def bench_lookups() -> None:
    out = subprocess.run(
        [PY, __file__, "--lookups", "30"], capture_output=True, text=True, env=ENV, timeout=120,
        check=True,
    )  # fmt: skip
    child, direct = (float(x) for x in out.stdout.split())
    emit("a name looked up in a Run child (median)", child, "ms", group="http_client")
    emit("getaddrinfo in the process", direct, "ms", group="http_client", baseline=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="best of")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=("kernelish", "asyncio"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--close", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lookups", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve:
        serve()
        return
    if opts.lookups:
        print(*lookups(opts.lookups))
        return
    if opts.client:
        run = client_kernelish if opts.client == "kernelish" else client_asyncio
        print(run(opts.port, opts.concurrency, not opts.close, opts.seconds))
        return
    bench(opts.seconds, opts.repeats)
    bench_lookups()
    table("ClientHTTP against asyncio streams (requests/s)")


if __name__ == "__main__":
    main()

"""ServerTCP and ClientTCP against their baselines, in the same run (issue 16).

Run: ``.venv/bin/python bench/servers_tcp.py [--seconds 2] [--repeats 2] [--only NAME]``

* ``echo``: line echo round trips per second at 1 and 32 connections
  (the client of ``bench/echo.py``): ServerTCP against the hand-written
  SocketFactory + ReadWrite server of ``bench/echo.py`` (target: within
  15%, i.e. ratio >= 0.85) and against ``asyncio.start_server`` streams
  (target >= 1).
* ``daemon``: connections/s (``bench/loadgen.py``, connection per request)
  at 1 / 4 / 8 clients of ServerTCP(Daemon=True) under the pre-forking
  Daemon against the SocketFactory glue of ``examples/preforking.py``
  (``bench/servers/kernelish_server.py``), both with the example's Daemon
  settings (requests=1, start_children=1, min_spare=2, max_children=10) and
  with a pool of 8 children serving 1000 requests each: target within 10%
  (ratio >= 0.9).
* ``tls``: TLS handshakes per second (each: connect, handshake, one line
  echoed, close; 4 client processes) of a ServerTCP with ``SSLContext``
  against an asyncio TLS server (``loop.create_server(ssl=...)``), one
  process each: target within 20% (ratio >= 0.8).
* ``client``: connects + one round trip per second of ClientTCP against
  asyncio ``open_connection``, one at a time and 8 at once, against the
  same asyncio echo server: target >= 1.  ClientTCP reconnecting from its
  ``Disconnected`` (POE's idiom: one client session, a new connection each
  time), and -- also checked -- a new ClientTCP per connection.

Every server runs in its own process; every figure is a best of
``--repeats``, kinds interleaved so each sees the same machine.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import check, emit, table  # noqa: E402
from echo import round_trips, serve_asyncio, serve_kernelish  # noqa: E402
from loadgen import run_load  # noqa: E402
from pools import Server  # noqa: E402

PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(HERE.parent)}


# -- servers (each in its own process) -----------------------------------------


def serve_server_tcp(tls: str | None = None) -> None:
    """A ServerTCP line echo (``--serve servertcp``), with TLS if a cert dir."""
    from kernelish import ARG0, HEAP, poe_kernel
    from kernelish.components.server_tcp import ServerTCP

    extra: dict[str, Any] = {}
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(f"{tls}/cert.pem", f"{tls}/key.pem")
        extra["SSLContext"] = context
    server = ServerTCP(
        Address="127.0.0.1",
        ClientInput=lambda _: _[HEAP]["client"].put(_[ARG0]),
        ClientError=lambda _: None,
        **extra,
    )
    print("PORT", server.port, flush=True)
    poe_kernel.run()


def serve_streams(tls: str | None = None) -> None:
    """asyncio.start_server streams: the line echo (``--serve streams``)."""
    import asyncio

    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(f"{tls}/cert.pem", f"{tls}/key.pem")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(line.rstrip(b"\r\n") + b"\r\n")
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        print("PORT", server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


def serve_asyncio_tls(tls: str) -> None:
    """An asyncio TLS server: a Protocol line echo (``--serve asyncio-tls``)."""
    import asyncio

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(f"{tls}/cert.pem", f"{tls}/key.pem")

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            if lines:
                self.transport.write(b"".join(x.rstrip(b"\r") + b"\r\n" for x in lines))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=context)
        print("PORT", server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


SERVES = {
    "servertcp": lambda tls: serve_server_tcp(tls),
    "handwritten": lambda tls: serve_kernelish(),
    "streams": lambda tls: serve_streams(tls),
    "asyncio": lambda tls: serve_asyncio(),
    "asyncio-tls": lambda tls: serve_asyncio_tls(tls),
}


class EchoServer:
    """``bench/servers_tcp.py --serve KIND`` in a child process."""

    def __init__(self, kind: str, tls: str | None = None) -> None:
        argv = [PY, __file__, "--serve", kind] + (["--tls", tls] if tls else [])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=ENV)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.proc.kill()
            raise SystemExit(f"{kind} server did not start: {line}")
        self.port = int(line[1])

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- echo ------------------------------------------------------------------------


def bench_echo(seconds: float, repeats: int) -> None:
    kinds = ("servertcp", "handwritten", "streams")
    for connections in (1, 32):
        rates = dict.fromkeys(kinds, 0.0)
        for _ in range(repeats):
            for kind in kinds:
                with EchoServer(kind) as server:
                    rate = round_trips(server.port, connections, seconds)
                rates[kind] = max(rates[kind], rate)
        for kind in kinds:
            emit(
                f"echo {kind}, {connections} connection(s)",
                rates[kind],
                "round trips/s",
                group="tcp_echo",
                baseline=kind != "servertcp",
            )
        check(
            f"ServerTCP echo, {connections} conn / hand-written SocketFactory+ReadWrite",
            rates["servertcp"] / rates["handwritten"],
            ">=",
            0.85,
            group="tcp_echo",
        )
        check(
            f"ServerTCP echo, {connections} conn / asyncio.start_server streams",
            rates["servertcp"] / rates["streams"],
            ">=",
            1.0,
            group="tcp_echo",
        )


# -- under the pre-forking Daemon ------------------------------------------------------

#: examples/preforking.py's Daemon settings, and a pool that keeps its children.
SETTINGS = {
    "example settings": ["--requests", "1", "--start-children", "1", "--min-spare", "2",
                         "--max-children", "10"],
    "8 children, requests=1000": ["--requests", "1000", "--start-children", "8",
                                  "--min-spare", "2", "--max-spare", "10",
                                  "--max-children", "12"],
}  # fmt: skip


def best_rate(argv: list[str], clients: int, seconds: float, repeats: int, warm: int) -> float:
    best = 0.0
    for _ in range(repeats):
        with Server(*argv) as server:
            server.wait_children(warm)
            result = run_load(server.port, "conn", clients, seconds)
        best = max(best, result["rate"])
    return best


def bench_daemon(seconds: float, repeats: int) -> None:
    glue = str(HERE / "servers" / "kernelish_server.py")
    ours = str(HERE / "servers" / "server_tcp_server.py")
    for label, settings in SETTINGS.items():
        warm = 2 if "example" in label else 8
        for clients in (1, 4, 8):
            base = ours_rate = 0.0
            for _ in range(repeats):  # interleaved
                base = max(base, best_rate([glue, "prefork", *settings], clients, seconds, 1, warm))
                ours_rate = max(
                    ours_rate, best_rate([ours, "prefork", *settings], clients, seconds, 1, warm)
                )
            emit(
                f"prefork SocketFactory glue ({label}), {clients} clients",
                base,
                "conn/s",
                group="tcp_daemon",
                baseline=True,
            )
            emit(
                f"prefork ServerTCP(Daemon=True) ({label}), {clients} clients",
                ours_rate,
                "conn/s",
                group="tcp_daemon",
            )
            check(
                f"ServerTCP prefork ({label}), {clients} clients / the example's glue",
                ours_rate / base,
                ">=",
                0.9,
                group="tcp_daemon",
            )


# -- TLS handshakes ----------------------------------------------------------------------


def _tls_client(port: int, cafile: str, stop_at: float, out: int) -> None:
    context = ssl.create_default_context(cafile=cafile)
    done = 0
    while time.perf_counter() < stop_at:
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                tls.sendall(b"ping\r\n")
                got = b""
                while not got.endswith(b"\n"):
                    chunk = tls.recv(100)
                    if not chunk:
                        break
                    got += chunk
                done += 1
        except (OSError, ssl.SSLError):
            time.sleep(0.001)
    os.write(out, str(done).encode())


def handshakes(port: int, cafile: str, clients: int, seconds: float) -> float:
    """Handshakes (+ one echoed line) per second from ``clients`` processes."""
    stop_at = time.perf_counter() + seconds
    pipes = []
    for _ in range(clients):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the client process
            try:
                os.close(r)
                _tls_client(port, cafile, stop_at, w)
            finally:
                os._exit(0)
        os.close(w)
        pipes.append((r, pid))
    total = 0
    for r, pid in pipes:
        data = b""
        while chunk := os.read(r, 64):
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        total += int(data or b"0")
    return total / seconds


def make_certificate(directory: str) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{directory}/key.pem",
         "-out", f"{directory}/cert.pem", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def bench_tls(seconds: float, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as certs:
        make_certificate(certs)
        rates = {"servertcp": 0.0, "asyncio-tls": 0.0}
        for _ in range(repeats):
            for kind in rates:
                with EchoServer(kind, tls=certs) as server:
                    handshakes(server.port, f"{certs}/cert.pem", 4, 0.3)  # warm-up
                    rate = handshakes(server.port, f"{certs}/cert.pem", 4, seconds)
                rates[kind] = max(rates[kind], rate)
    emit("TLS handshakes, ServerTCP", rates["servertcp"], "handshakes/s", group="tcp_tls")
    emit(
        "TLS handshakes, asyncio TLS server",
        rates["asyncio-tls"],
        "handshakes/s",
        group="tcp_tls",
        baseline=True,
    )
    check(
        "ServerTCP TLS handshakes / asyncio TLS server",
        rates["servertcp"] / rates["asyncio-tls"],
        ">=",
        0.8,
        group="tcp_tls",
    )


# -- ClientTCP ------------------------------------------------------------------------------


def client_kernelish(port: int, concurrency: int, seconds: float, new: bool = False) -> float:
    """ClientTCP connects + one round trip per second.  ``concurrency``
    clients, each reconnecting from its Disconnected (POE's idiom: one
    client session, a new connection each time); with ``new``, a new
    ClientTCP per connection instead, made by a manager session."""
    from kernelish import HEAP, KERNEL, HandlerArgs, Session, poe_kernel
    from kernelish.components.client_tcp import ClientTCP

    count = [0]
    stop_at = time.perf_counter() + seconds

    def one() -> None:
        ClientTCP(
            RemoteAddress="127.0.0.1",
            RemotePort=port,
            Connected=lambda _: _[HEAP]["server"].put("ping"),
            ServerInput=lambda _: _[KERNEL].yield_("shutdown"),
            Disconnected=ended,
        )

    def ended(_: HandlerArgs) -> None:
        count[0] += 1
        if time.perf_counter() < stop_at:
            if new:
                _[KERNEL].post("manager", "next")
            else:
                _[KERNEL].yield_("reconnect")
        elif new:
            _[KERNEL].post("manager", "done")

    def start(_: HandlerArgs) -> None:
        _[KERNEL].alias_set("manager")
        for _i in range(concurrency):
            one()

    Session.create(
        inline_states={
            "_start": start,
            "next": lambda _: one(),
            "done": lambda _: _[KERNEL].alias_remove("manager"),
        }
    )
    started = time.perf_counter()
    poe_kernel.run()
    return count[0] / (time.perf_counter() - started)


def client_asyncio(port: int, concurrency: int, seconds: float) -> float:
    import asyncio

    async def worker(stop_at: float, count: list[int]) -> None:
        while time.perf_counter() < stop_at:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping\r\n")
            await reader.readline()
            writer.close()
            await writer.wait_closed()
            count[0] += 1

    async def main() -> float:
        count = [0]
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds, count) for _ in range(concurrency)))
        return count[0] / (time.perf_counter() - started)

    return asyncio.run(main())


def run_client(kind: str, port: int, concurrency: int, seconds: float) -> float:
    """One client measurement in a fresh interpreter."""
    out = subprocess.run(
        [PY, __file__, "--client", kind, "--port", str(port), "--concurrency",
         str(concurrency), "--seconds", str(seconds)],
        capture_output=True, text=True, env=ENV, timeout=seconds + 60, check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def bench_client(seconds: float, repeats: int) -> None:
    for concurrency in (1, 8):
        rates = {"kernelish": 0.0, "asyncio": 0.0, "kernelish-new": 0.0}
        with EchoServer("asyncio") as server:
            for _ in range(repeats):
                for kind in rates:
                    rate = run_client(kind, server.port, concurrency, seconds)
                    rates[kind] = max(rates[kind], rate)
        emit(
            f"ClientTCP connect + round trip, {concurrency} at a time",
            rates["kernelish"],
            "conn/s",
            group="tcp_client",
        )
        emit(
            f"ClientTCP, a new one per connection, {concurrency} at a time",
            rates["kernelish-new"],
            "conn/s",
            group="tcp_client",
        )
        emit(
            f"asyncio open_connection + round trip, {concurrency} at a time",
            rates["asyncio"],
            "conn/s",
            group="tcp_client",
            baseline=True,
        )
        check(
            f"ClientTCP, {concurrency} at a time / asyncio open_connection",
            rates["kernelish"] / rates["asyncio"],
            ">=",
            1.0,
            group="tcp_client",
        )
        check(
            f"ClientTCP, a new one per connection, {concurrency} at a time / asyncio",
            rates["kernelish-new"] / rates["asyncio"],
            ">=",
            1.0,
            group="tcp_client",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="best of")
    parser.add_argument("--only", action="append", choices=("echo", "daemon", "tls", "client"))
    parser.add_argument("--serve", choices=tuple(SERVES), help=argparse.SUPPRESS)
    parser.add_argument("--tls", help=argparse.SUPPRESS)
    parser.add_argument(
        "--client", choices=("kernelish", "kernelish-new", "asyncio"), help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve:
        SERVES[opts.serve](opts.tls)
        return
    if opts.client == "asyncio":
        print(client_asyncio(opts.port, opts.concurrency, opts.seconds))
        return
    if opts.client:
        new = opts.client == "kernelish-new"
        print(client_kernelish(opts.port, opts.concurrency, opts.seconds, new))
        return
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    only = set(opts.only or ("echo", "daemon", "tls", "client"))
    if "echo" in only:
        bench_echo(opts.seconds, opts.repeats)
        table("ServerTCP line echo (round trips/s)")
    if "daemon" in only:
        bench_daemon(opts.seconds, opts.repeats)
        table("ServerTCP under the pre-forking Daemon (connections/s)")
    if "tls" in only:
        bench_tls(opts.seconds, opts.repeats)
        table("TLS handshakes per second")
    if "client" in only:
        bench_client(opts.seconds, opts.repeats)
        table("ClientTCP connects + one round trip per second")


if __name__ == "__main__":
    main()

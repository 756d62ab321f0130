"""TLS on ServerTCP and ClientTCP (``SSLContext=``, kernelish; SSLify's
role in Perl): real TLS clients and servers, a certificate made by the
``openssl`` command, handshakes that never block the kernel."""

from __future__ import annotations

import errno
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from kernelish import ARG0, ARG1, ARG2, HEAP, KERNEL, HandlerArgs, poe_kernel
from kernelish.components.client_tcp import ClientTCP
from kernelish.components.server_tcp import ServerTCP

from ._tcp import Peer, Threaded, client_context, make_certificate, server_context
from ._wheels import run_until


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def echo(_: HandlerArgs) -> None:
    _[HEAP]["client"].put(_[ARG0])


def tls_server(certificate: tuple[Path, Path], **params: Any) -> ServerTCP:
    params.setdefault("ClientInput", echo)
    return ServerTCP(
        Address="127.0.0.1", Alias="tls", SSLContext=server_context(*certificate), **params
    )


def finish() -> None:
    poe_kernel.post("tls", "shutdown")
    poe_kernel.run()


def tls_client(port: int, cert: Path, lines: list[bytes]) -> tuple[str, list[bytes]]:
    """A blocking TLS client (the standard library's): send, read, close."""
    context = client_context(cert)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        version = tls.version() or ""
        got = b""
        for n, line in enumerate(lines, 1):
            tls.sendall(line + b"\r\n")
            while got.count(b"\r\n") < n:
                got += tls.recv(65536)
        return version, got.split(b"\r\n")[:-1]


def test_a_tls_echo_with_a_real_client(certificate: tuple[Path, Path]) -> None:
    trace: list[Any] = []
    server = tls_server(
        certificate,
        ClientConnected=lambda _: trace.append(
            ("connected", type(_[HEAP]["client"].get_input_handle()).__name__)
        ),
        ClientDisconnected=lambda _: trace.append(("disconnected",)),
    )
    client = Threaded(lambda: tls_client(server.port, certificate[0], [b"one", b"two"]))
    version, lines = client.wait()
    assert version.startswith("TLSv1.")
    assert lines == [b"one", b"two"]
    run_until(lambda: ("disconnected",) in trace, what="ClientDisconnected")
    assert trace == [("connected", "SSLSocket"), ("disconnected",)]
    finish()


def test_big_records_both_ways(certificate: tuple[Path, Path]) -> None:
    server = tls_server(certificate)
    big = b"b" * 300_000
    client = Threaded(lambda: tls_client(server.port, certificate[0], [big]))
    _version, lines = client.wait()
    assert lines == [big]
    finish()


def test_a_handshake_that_never_finishes_is_timed_out_without_blocking(
    certificate: tuple[Path, Path],
) -> None:
    errors: list[Any] = []
    server = tls_server(
        certificate,
        HandshakeTimeout=0.5,
        ClientError=lambda _: errors.append(_[ARG0 : ARG2 + 1]),
    )
    silent = Peer(server.port)  # connects, never says a word
    started = time.monotonic()
    half = Peer(server.port)
    half.send(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, and no more
    # Meanwhile the kernel serves others: a full TLS exchange completes.
    client = Threaded(lambda: tls_client(server.port, certificate[0], [b"meanwhile"]))
    assert client.wait()[1] == [b"meanwhile"]
    assert time.monotonic() - started < 0.5, "served while two handshakes hung"
    silent.wait_eof(3)
    half.wait_eof(3)
    assert time.monotonic() - started >= 0.45
    handshakes = [e for e in errors if e[0] == "handshake"]
    assert handshakes == [("handshake", errno.ETIMEDOUT, "Connection timed out")] * 2
    finish()


def test_a_plain_text_client_is_a_handshake_error(certificate: tuple[Path, Path]) -> None:
    errors: list[Any] = []
    server = tls_server(certificate, ClientError=lambda _: errors.append(_[ARG0 : ARG2 + 1]))
    plain = Peer(server.port)
    plain.send(b"GET / HTTP/1.0\r\n\r\n")
    plain.wait_eof()
    assert errors[0][0] == "handshake" and errors[0][1] > 0
    assert "HTTP_REQUEST" in errors[0][2] or "WRONG_VERSION" in errors[0][2]
    client = Threaded(lambda: tls_client(server.port, certificate[0], [b"still"]))
    assert client.wait()[1] == [b"still"], "the listener serves on"
    finish()


def test_client_tcp_over_tls(certificate: tuple[Path, Path]) -> None:
    server = tls_server(certificate)
    trace: list[Any] = []

    def connected(_: HandlerArgs) -> None:
        sock, address, port = _[ARG0], _[ARG1], _[ARG2]
        trace.append(("connected", isinstance(sock, ssl.SSLSocket), address, port))
        _[HEAP]["server"].put("hello tls")

    def server_input(_: HandlerArgs) -> None:
        trace.append(("input", _[ARG0]))
        _[KERNEL].yield_("shutdown")

    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=server.port,
        SSLContext=client_context(certificate[0]),
        ServerHostname="localhost",
        Connected=connected,
        ServerInput=server_input,
        Disconnected=lambda _: trace.append(("disconnected",)),
    )
    run_until(lambda: ("disconnected",) in trace, what="the TLS round trip")
    assert trace == [
        ("connected", True, "127.0.0.1", server.port),
        ("input", "hello tls"),
        ("disconnected",),
    ]
    finish()


def test_client_tcp_refuses_a_certificate_it_cannot_verify(
    certificate: tuple[Path, Path],
) -> None:
    server = tls_server(certificate, ClientError=lambda _: None)
    errors: list[Any] = []
    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=server.port,
        SSLContext=ssl.create_default_context(),  # the system's CAs: not ours
        ServerHostname="localhost",
        ServerInput=echo,
        ConnectError=lambda _: errors.append(_[ARG0 : ARG2 + 1]),
    )
    run_until(lambda: errors, what="ConnectError")
    assert errors[0][0] == "handshake"
    assert "CERTIFICATE_VERIFY_FAILED" in errors[0][2]
    finish()


def test_client_tcp_handshake_timeout(certificate: tuple[Path, Path]) -> None:
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen()  # accepts in the backlog, never answers a ClientHello
    errors: list[Any] = []
    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=mute.getsockname()[1],
        SSLContext=client_context(certificate[0]),
        ServerHostname="localhost",
        HandshakeTimeout=0.3,
        ServerInput=echo,
        ConnectError=lambda _: errors.append(_[ARG0 : ARG2 + 1]),
    )
    poe_kernel.run()
    assert errors == [("handshake", errno.ETIMEDOUT, "Connection timed out")]
    mute.close()

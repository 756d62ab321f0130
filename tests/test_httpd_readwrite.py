"""HTTPD under a real ReadWrite wheel over a real socketpair: pipelined requests answered in
order, a bad request answered with its 400 and nothing read after it, and an upgrade that
hands the octets after it to a new filter exactly."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httptools
import pytest

from kernelish import ARG0, HEAP, HandlerArgs
from kernelish.filters import HTTPD, Stream
from kernelish.http import Request, Response
from kernelish.wheels import ReadWrite

from ._wheels import run_until, session

H = b"Host: a\r\n"


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    mine, peer = socket.socketpair()
    peer.setblocking(False)
    yield mine, peer
    mine.close()
    peer.close()


class Client:
    """The peer: collects responses with httptools' response parser."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.responses: list[tuple[int, bytes]] = []
        self._body = b""
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.responses.append((self._parser.get_status_code(), self._body))
        self._body = b""

    def pump(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            if not data:
                self.closed = True
                return
            self._parser.feed_data(data)


def http_server(handle: socket.socket, log: list[Any], **states: Any) -> Any:
    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = ReadWrite(
            Handle=handle,
            Filter=HTTPD(),
            InputEvent="input",
            ErrorEvent="error",
            FlushedEvent="flushed",
        )

    def got(_: HandlerArgs) -> None:
        record = _[ARG0]
        log.append(record)
        wheel = _[HEAP]["wheel"]
        if isinstance(record, Response):  # POE's synopsis: send the error, then close
            wheel.put(record)
            _[HEAP]["closing"] = True
        else:
            wheel.put(Response(200, body=record.target.encode()))

    def flushed(_: HandlerArgs) -> None:
        if _[HEAP].get("closing"):
            del _[HEAP]["wheel"]
            handle.shutdown(socket.SHUT_RDWR)

    def error(_: HandlerArgs) -> None:
        log.append("error")
        _[HEAP].pop("wheel", None)

    return session(_start=start, input=got, flushed=flushed, error=error, **states)


def test_pipelined_requests_then_a_bad_one(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, peer = pair
    log: list[Any] = []
    http_server(mine, log)
    peer.sendall(
        b"GET /one HTTP/1.1\r\n" + H + b"\r\n"
        b"POST /two HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
        b"GET /three HTTP/1.1\nHost: a\n\n"  # bare LF
        b"GET /never HTTP/1.1\r\n" + H + b"\r\n"
    )
    client = Client(peer)

    def done() -> bool:
        client.pump()
        return client.closed

    run_until(done, what="three answers and the close")
    assert client.responses[:2] == [(200, b"/one"), (200, b"/two")]
    assert [status for status, _ in client.responses] == [200, 200, 400]
    assert [type(r) for r in log] == [Request, Request, Response]


def test_upgrade_hands_the_rest_to_the_new_filter(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    mine, peer = pair
    log: list[Any] = []

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = ReadWrite(
            Handle=mine, Filter=HTTPD(), InputEvent="input", ErrorEvent="error"
        )

    def got(_: HandlerArgs) -> None:
        record = _[ARG0]
        log.append(record)
        if isinstance(record, Request) and record.upgrade:
            wheel = _[HEAP]["wheel"]
            wheel.put(Response(101, headers=[("Upgrade", "echo"), ("Connection", "Upgrade")]))
            wheel.set_filter(Stream())

    session(_start=start, input=got, error=lambda _: _[HEAP].pop("wheel", None))
    # The upgrade, the new protocol's first octets and a pipelined request in one read:
    # after the switch they are the Stream filter's, however HTTPD parsed them.
    peer.sendall(
        b"GET /chat HTTP/1.1\r\n" + H + b"Upgrade: echo\r\nConnection: Upgrade\r\n\r\n"
        b"RAW\x00GET / HTTP/1.1\r\n\r\n"
    )
    run_until(lambda: b"".join(r for r in log if isinstance(r, bytes)).endswith(b"\r\n\r\n"))
    assert isinstance(log[0], Request) and log[0].upgrade
    assert b"".join(r for r in log[1:] if isinstance(r, bytes)) == (
        b"RAW\x00GET / HTTP/1.1\r\n\r\n"
    )
    assert not any(isinstance(r, Response) for r in log)

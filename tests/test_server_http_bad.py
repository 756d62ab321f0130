"""ServerHTTP against bad input and slow clients (issue 18's list, at the
server level): each gets the answer the RFCs and gunicorn give, is logged
once, and costs only its own connection -- another client is served
meanwhile and after."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from kernelish import ARG0, ARG1, HandlerArgs
from kernelish.components.server_http import ServerHTTP

from ._http import HTTPPeer
from ._wheels import run_until

LOGGER = "kernelish.components.server_http"


def hello(_: HandlerArgs) -> None:
    _[ARG1].content = b"hello " + _[ARG0].body
    _[ARG1].respond()


def serve(**params: Any) -> ServerHTTP:
    params.setdefault("Handler", hello)
    return ServerHTTP(Address="127.0.0.1", **params)


H = b"Host: t\r\n"
#: 17 chunks of 64 KiB: over MaxContent (1 MiB) as the body comes.
CHUNKS_OVER = (b"10000\r\n" + b"x" * 0x10000 + b"\r\n") * 17

BAD = [
    # request smuggling shapes
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    (b"GET / HTTP/1.1\nHost: t\n\n", 400),
    (b"GET / HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    # limits
    (b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 2000000\r\n\r\n", 413),
    (
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + (b"10000\r\n" + b"x" * 0x10000 + b"\r\n") * 17,
        413,
    ),
    # invalid UTF-8 (and any octet over 0x7E) in the target
    (b"GET /caf\xc3 HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET /\xff\xfe HTTP/1.1\r\n" + H + b"\r\n", 400),
    # no Host, an unknown version, garbage
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", 400),
]


@pytest.mark.parametrize(("wire", "status"), BAD, ids=[f"{i}-{s}" for i, (_, s) in enumerate(BAD)])
def test_bad_requests_are_answered_logged_once_and_closed(
    wire: bytes, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve()
    bystander = HTTPPeer(server.port)
    peer = HTTPPeer(server.port)
    with caplog.at_level(logging.INFO, LOGGER):
        peer.send(wire)
        peer.wait_eof()
    [reply] = peer.replies()
    assert reply.status == status and reply.header("Connection") == "close"
    logged = [r for r in caplog.records if r.name == LOGGER]
    assert len(logged) == 1 and logged[0].getMessage().split(": ", 1)[1].startswith(str(status))
    bystander.request("/", extra="Content-Length: 2\r\n")
    bystander.send(b"ok")
    [fine] = bystander.wait_replies(1)
    assert fine.body == b"hello ok", "another client is served meanwhile"


def test_an_earlier_pipelined_request_is_answered_before_the_refusal() -> None:
    server = serve()
    peer = HTTPPeer(server.port)
    peer.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi" + b"GET / HTTP/1.1\n\n")
    peer.wait_eof()
    first, second = peer.replies()
    assert (first.status, first.body, second.status) == (200, b"hello hi", 400)


def test_a_big_body_refused_early_is_still_read_by_the_client() -> None:
    """413 from Content-Length, while the client goes on sending: the server
    half-closes and drops input for a while (lingering close), so the
    answer is not lost to a reset."""
    server = serve(MaxContent=1000)
    peer = HTTPPeer(server.port)
    peer.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 500000\r\n\r\n")
    peer.wait_data(lambda d: b"\r\n\r\n" in d)
    try:
        peer.send(b"x" * 200_000)
    except OSError:
        pass
    peer.wait_eof()
    assert peer.replies()[0].status == 413


def _dribble(peer: HTTPPeer, data: bytes, every: float, until: float) -> float:
    """Send ``data`` an octet every ``every`` seconds until the server
    closes; the seconds it took."""
    start = time.monotonic()
    sent = [0, start]

    def closed() -> bool:
        peer.pump()
        now = time.monotonic()
        if not peer.eof and sent[0] < len(data) and now - sent[1] >= every:
            try:
                peer.send(data[sent[0] : sent[0] + 1])
            except OSError:
                return True
            sent[0] += 1
            sent[1] = now
        return peer.eof

    run_until(closed, until, "the server to cut the slow client")
    return time.monotonic() - start


def test_slowloris_headers_are_cut_at_the_header_timeout(caplog: pytest.LogCaptureFixture) -> None:
    server = serve(HeaderTimeout=0.4)
    peer = HTTPPeer(server.port)
    with caplog.at_level(logging.INFO, LOGGER):
        took = _dribble(peer, b"GET / HTTP/1.1\r\nHost: t\r\nX-A: " + b"a" * 100, 0.05, 5)
    assert 0.35 < took < 1.5, took
    assert peer.replies()[0].status == 408
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1
    other = HTTPPeer(server.port)
    other.request("/")
    assert other.wait_replies(1)[0].status == 200


def test_a_slow_body_gets_408_after_the_timeout() -> None:
    server = serve(Timeout=0.3)
    peer = HTTPPeer(server.port)
    peer.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nabc")
    start = time.monotonic()
    peer.wait_eof()
    assert 0.25 < time.monotonic() - start < 1.5
    assert peer.replies()[0].status == 408


def test_idle_connections_close_after_the_keep_alive_timeout_silently() -> None:
    server = serve(KeepAliveTimeout=0.3, HeaderTimeout=0.6)
    peer, silent = HTTPPeer(server.port), HTTPPeer(server.port)
    peer.request("/")
    peer.wait_replies(1)
    start = time.monotonic()
    peer.wait_eof()
    assert 0.25 < time.monotonic() - start < 1.2
    assert len(peer.replies()) == 1, "no answer to an idle close"
    silent.wait_eof()  # never sent a thing: cut at HeaderTimeout, silently
    assert silent.data == b""


def test_a_handler_that_never_answers_gets_503(caplog: pytest.LogCaptureFixture) -> None:
    late: list[Any] = []
    server = serve(Handler=lambda _: late.append(_[ARG1]), RequestTimeout=0.3)
    peer = HTTPPeer(server.port)
    with caplog.at_level(logging.WARNING, LOGGER):
        peer.request("/")
        peer.wait_eof()
    assert peer.replies()[0].status == 503
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1
    late[0].content = b"too late"
    late[0].respond()  # goes nowhere, raises nothing
    assert late[0].aborted


def test_a_client_that_pipelines_without_reading_is_bounded() -> None:
    """MaxPipeline requests answered ahead, then the connection is not read."""
    handled: list[int] = []

    def count(_: HandlerArgs) -> None:
        handled.append(1)
        _[ARG1].content = b"x" * 100_000
        _[ARG1].respond()

    server = serve(Handler=count, MaxPipeline=4, HighMark=4096, LowMark=1024, KeepAlive=1000)
    peer = HTTPPeer(server.port)
    peer.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 400)
    seen = [-1, 0]

    def stable() -> bool:
        seen[1] = seen[1] + 1 if len(handled) == seen[0] else 0
        seen[0] = len(handled)
        return seen[1] >= 20

    run_until(stable, what="the server to stop reading")
    assert len(handled) < 200, "the output's high-water mark stops the reading"

    def all_answered() -> bool:
        try:
            while peer.sock.recv(1 << 20):  # read and drop: 40 MB in all
                pass
        except BlockingIOError:
            pass
        return len(handled) == 400

    run_until(all_answered, timeout=20, what="every request answered once read")

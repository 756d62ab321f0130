"""ServerHTTP against real sockets on 127.0.0.1, in-process: routes,
keep-alive, pipelining in request order, bodies both ways, streaming with
backpressure, HEAD, 100-continue, the access log, handler failures, and
the parameters.  Bad input and timeouts: tests/test_server_http_bad.py;
the Daemon's pools and the status pages: tests/test_server_http_daemon.py."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from kernelish import ARG0, ARG1, HEAP, KERNEL, HandlerArgs, Session, poe_kernel
from kernelish._params import ParameterError
from kernelish.components.server_http import ServerHTTP, ServerResponse

from ._http import HTTPPeer
from ._wheels import run_until


def hello(_: HandlerArgs) -> None:
    request, response = _[ARG0], _[ARG1]
    response.content_type = "text/plain"
    response.content = b"hello " + request.path.encode() + b" " + request.body
    response.respond()


def serve(**params: Any) -> ServerHTTP:
    if "Handlers" not in params:
        params.setdefault("Handler", hello)
    return ServerHTTP(Address="127.0.0.1", **params)


def test_keep_alive_two_requests_on_one_connection() -> None:
    server = serve()
    peer = HTTPPeer(server.port)
    peer.request("/a")
    [first] = peer.wait_replies(1)
    peer.request("/b?x=1")
    first, second = peer.wait_replies(2)
    assert (first.status, first.body) == (200, b"hello /a ")
    assert second.body == b"hello /b "
    assert first.header("Content-Length") == "9" and first.header("Date")
    assert first.header("Server") == "kernelish" and first.header("Connection") is None
    assert not peer.eof, "HTTP/1.1 keeps the connection"
    poe_kernel.post(server, "shutdown")
    peer.wait_eof()
    poe_kernel.run()


def test_pipelined_answers_go_out_in_request_order() -> None:
    """The first request's handler answers later than the second's."""
    later: list[ServerResponse] = []

    def slow(_: HandlerArgs) -> None:
        later.append(_[ARG1])
        _[KERNEL].delay("answer", 0.05)

    def answer(_: HandlerArgs) -> None:
        response = later.pop()
        response.content = b"slow"
        response.respond()

    server = serve(Handlers=[("^/slow", slow), ("", hello)], InlineStates={"answer": answer})
    peer = HTTPPeer(server.port)
    peer.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
    replies = peer.wait_replies(2)
    assert [r.body for r in replies] == [b"slow", b"hello /fast "]


def test_bodies_by_content_length_and_chunked() -> None:
    server = serve()
    peer = HTTPPeer(server.port)
    peer.send(b"POST /cl HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde")
    peer.send(
        b"POST /ch HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nfoo\r\n4\r\nbarz\r\n0\r\n\r\n"
    )
    first, second = peer.wait_replies(2)
    assert first.body == b"hello /cl abcde"
    assert second.body == b"hello /ch foobarz"


def _numbers(closed: list[bool], n: int = 5) -> Iterator[bytes]:
    try:
        for i in range(n):
            yield b"part%d\n" % i
    finally:
        closed.append(True)


def test_streamed_iterable_chunked_to_1_1_and_close_delimited_to_1_0() -> None:
    closed: list[bool] = []

    def stream(_: HandlerArgs) -> None:
        response = _[ARG1]
        response.body = _numbers(closed)
        response.respond()

    server = serve(Handler=stream)
    peer = HTTPPeer(server.port)
    peer.request("/")
    [reply] = peer.wait_replies(1)
    assert reply.chunked and reply.body == b"".join(b"part%d\n" % i for i in range(5))
    old = HTTPPeer(server.port)
    old.send(b"GET / HTTP/1.0\r\n\r\n")
    old.wait_eof()
    [reply] = old.replies()
    assert reply.header("Transfer-Encoding") is None and reply.header("Connection") == "close"
    assert reply.body.endswith(b"part4\n")
    assert closed == [True, True], "the iterable's close() is called (PEP 3333)"


def test_parts_put_one_by_one_with_send_and_done() -> None:
    def push(_: HandlerArgs) -> None:
        response = _[ARG1]
        response.content_type = "text/plain"
        assert response.send(b"one,") == 0
        response.send("two,")
        _[KERNEL].delay_add("more", 0.02, response)  # delay() would replace the first

    def more(_: HandlerArgs) -> None:
        response = _[ARG0]
        response.send(b"three")
        response.done()
        response.done()  # twice is harmless

    server = serve(Handler=push, InlineStates={"more": more})
    peer = HTTPPeer(server.port)
    peer.request("/")
    peer.request("/")
    first, second = peer.wait_replies(2)
    assert first.body == second.body == b"one,two,three" and first.chunked


def test_head_sends_the_head_only() -> None:
    closed: list[bool] = []

    def stream(_: HandlerArgs) -> None:
        _[ARG1].body = _numbers(closed)
        _[ARG1].respond()

    server = serve(Handlers={"^/stream": stream, "": hello})
    peer = HTTPPeer(server.port)
    peer.request("/x", method="HEAD")
    peer.request("/stream", method="HEAD")
    peer.request("/after")
    peer.wait_data(lambda d: b"hello /after" in d)
    heads = re.findall(rb"HTTP/1.1 200 OK\r\n.*?\r\n\r\n", peer.data, re.S)
    assert len(heads) == 3
    assert b"Content-Length: 9\r\n" in heads[0], "a HEAD keeps the GET's Content-Length"
    assert peer.data.endswith(b"hello /after "), "no body after either HEAD"
    assert closed == [True]


def test_expect_100_continue_before_the_body() -> None:
    server = serve()
    peer = HTTPPeer(server.port)
    peer.send(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    peer.wait_data(lambda d: d.startswith(b"HTTP/1.1 100 Continue\r\n"))
    peer.send(b"abc")
    [reply] = peer.wait_replies(1)
    assert reply.body == b"hello /up abc"


def test_a_handler_that_raises_costs_only_its_request(caplog: pytest.LogCaptureFixture) -> None:
    def boom(_: HandlerArgs) -> None:
        raise ValueError("boom")

    server = serve(Handlers=[("^/boom", boom), ("", hello)])
    peer = HTTPPeer(server.port)
    with caplog.at_level(logging.ERROR, "kernelish.components.server_http"):
        peer.send(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n")
        failed, served = peer.wait_replies(2)
    assert failed.status == 500 and failed.header("Connection") is None
    assert served.body == b"hello /next "
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "ValueError: boom" in errors[0].getMessage()
    assert 'raise ValueError("boom")' in errors[0].getMessage(), "with its traceback"


def test_an_iterator_that_raises_halfway_closes_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def halfway() -> Iterator[bytes]:
        yield b"first part"
        raise RuntimeError("halfway")

    def early() -> Iterator[bytes]:
        raise RuntimeError("before any part")
        yield b""  # pragma: no cover

    def stream(_: HandlerArgs) -> None:
        _[ARG1].body = halfway() if _[ARG0].path == "/half" else early()
        _[ARG1].respond()

    server = serve(Handler=stream)
    with caplog.at_level(logging.ERROR, "kernelish.components.server_http"):
        before = HTTPPeer(server.port)
        before.request("/early")
        before.request("/early")
        first, second = before.wait_replies(2)
        assert first.status == second.status == 500, "nothing went out: a 500 in its place"
        peer = HTTPPeer(server.port)
        peer.request("/half")
        peer.wait_eof()
    [reply] = peer.replies()
    assert reply.status == 200 and not reply.complete, "no last chunk: the body is cut"
    assert reply.body == b"first part"
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 3


def test_a_client_that_resets_mid_response_costs_only_its_connection() -> None:
    closed: list[bool] = []

    def big(_: HandlerArgs) -> None:
        _[ARG1].body = _numbers(closed, 10**6)
        _[ARG1].respond()

    server = serve(Handlers={"^/big": big, "": hello})
    peer = HTTPPeer(server.port)
    peer.request("/big")
    peer.wait_data(lambda d: len(d) > 1000)
    peer.abort()
    run_until(lambda: closed, what="the iterable closed after the reset")
    other = HTTPPeer(server.port)
    other.request("/still")
    [reply] = other.wait_replies(1)
    assert reply.body == b"hello /still "


def test_a_client_that_reads_nothing_stops_the_stream_at_the_high_mark() -> None:
    pulled = [0]

    def parts() -> Iterator[bytes]:
        while True:
            pulled[0] += 1
            yield b"x" * 1024

    def big(_: HandlerArgs) -> None:
        _[ARG1].body = parts()
        _[ARG1].respond()

    server = serve(Handler=big, HighMark=64 * 1024, LowMark=16 * 1024)
    peer = HTTPPeer(server.port)
    peer.request("/")
    seen = [-1, 0]

    def stable() -> bool:  # the same count for 20 passes in a row
        seen[1] = seen[1] + 1 if pulled[0] == seen[0] else 0
        seen[0] = pulled[0]
        return seen[1] >= 20

    run_until(stable, what="the stream to stop")
    stalled = pulled[0]
    ticks = [0]
    run_until(lambda: ticks.__setitem__(0, ticks[0] + 1) or ticks[0] > 30, what="slices")
    assert pulled[0] == stalled, "nothing more is pulled while the client reads nothing"
    # What the kernel's socket buffers take, plus HighMark and one share.
    assert stalled * 1024 < 16 * 1024 * 1024

    def resumed() -> bool:
        peer.pump()
        return pulled[0] > stalled

    run_until(resumed, timeout=10, what="the stream to resume as the client reads")


def test_routes_in_order_404_and_a_poe_event_handler() -> None:
    seen: list[str] = []

    def worker(_: HandlerArgs) -> None:
        request, response = _[ARG0], _[ARG1]
        seen.append(request.path)
        response.content = b"from the worker"
        response.respond()

    Session.create(
        inline_states={"_start": lambda _: _[KERNEL].alias_set("worker1"), "root": worker}
    )
    server = serve(Handlers=[("^/$", "poe:worker1/root"), ("^/st", hello), ("onk", hello)])
    peer = HTTPPeer(server.port)
    for path in ("/", "/static", "/honk", "/nothing"):
        peer.request(path)
    root, static, honk, missing = peer.wait_replies(4)
    assert root.body == b"from the worker" and seen == ["/"]
    assert static.body == b"hello /static " and honk.body == b"hello /honk "
    assert missing.status == 404


def test_special_handlers_and_the_connection() -> None:
    events: list[Any] = []
    specials = {
        "on_connect": lambda _: events.append(("connect", _[ARG0].remote_ip)),
        "pre_request": lambda _: events.append(("pre", _[ARG0].path)),
        "post_request": lambda _: events.append(("post", _[ARG1].status)),
        "on_disconnect": lambda _: events.append(("disconnect", _[ARG0].ID)),
        "": lambda _: (events.append(("heap", _[HEAP]["remote_ip"])), _[ARG1].respond()),
    }
    server = serve(Handlers=specials)
    peer = HTTPPeer(server.port)
    peer.request("/p", extra="Connection: close\r\n")
    peer.wait_eof()
    run_until(lambda: len(events) == 5, what="every special")
    assert [e[0] for e in events] == ["connect", "pre", "heap", "post", "disconnect"]
    assert events[0][1] == events[2][1] == "127.0.0.1"


def test_the_access_log_in_common_log_format(caplog: pytest.LogCaptureFixture) -> None:
    server = serve()
    peer = HTTPPeer(server.port)
    with caplog.at_level(logging.INFO, "kernelish.components.server_http.access"):
        peer.request('/a"b?q=1')
        peer.wait_replies(1)
    [record] = [r for r in caplog.records if r.name.endswith(".access")]
    line = record.getMessage()
    pattern = r"\d+: 127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
    assert re.match(pattern + r'"GET /a\\"b\?q=1 HTTP/1\.1" 200 11\Z', line), line


def test_shutdown_answers_what_was_asked_then_closes() -> None:
    server = serve()
    idle, busy = HTTPPeer(server.port), HTTPPeer(server.port)
    busy.request("/last")
    run_until(lambda: len(server.server.conns) == 2, what="both connections")
    poe_kernel.post(server, "shutdown")
    idle.wait_eof()
    busy.wait_eof()
    [reply] = busy.replies()
    assert reply.body == b"hello /last "
    poe_kernel.run()  # returns: nothing is left


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"Handler": hello, "Bogus": 1}, "Bogus"),
        ({"Handlers": {"(": hello}}, "Handlers"),
        ({"Handlers": {"": 42}}, "Handlers"),
        ({"Handler": hello, "Handlers": {"": hello}}, "Handler"),
        ({"Handler": hello, "KeepAliveTimeout": 0}, "KeepAliveTimeout"),
        ({"Handler": hello, "header_timeout": -1}, "HeaderTimeout"),
        ({"Handler": hello, "Status": "server-status"}, "Status"),
        ({"Handler": hello, "MaxFieldSize": 10**6}, "MaxHeaderSize"),
        ({"Handler": hello, "InlineStates": {"http_server_stream": hello}}, "InlineStates"),
        ({}, "Handler"),
    ],
)
def test_bad_parameters_are_refused_naming_them(params: dict[str, Any], named: str) -> None:
    with pytest.raises(ParameterError) as refused:
        ServerHTTP(**params)
    assert named in refused.value.params or named in str(refused.value)

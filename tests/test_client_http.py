"""ClientHTTP against real servers on 127.0.0.1: POE's positions and states, the pool,
the framings, redirects, streaming, and each bad server costing only its own request."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernelish import HEAP, KERNEL, HandlerArgs, Session, poe_kernel
from kernelish._params import ParameterError
from kernelish.components.client_http import ClientHTTP
from kernelish.http import Request, Response

from ._http_client import Fetcher, Server
from ._tcp import client_context, make_certificate, server_context
from ._wheels import run_until


@pytest.fixture(autouse=True)
def close_servers() -> Iterator[None]:
    yield
    Server.close_all()


def ok(request: Request, _: HandlerArgs) -> Response:
    return Response(200, body=b"you asked for " + request.target.encode())


def errmsg(response: Response) -> str:
    return response.headers.get("X-PCCH-Errmsg") or ""


def test_a_response_comes_back_with_pois_positions() -> None:
    server = Server(ok)
    ClientHTTP.spawn(Alias="ua", Agent="tester/1")
    fetcher = Fetcher()
    request = Request("GET", server.url("/a?b=1"), headers={"X-Mine": "1"})
    fetcher.get(request, "my tag")
    fetcher.wait(1)
    (request_packet, response_packet) = fetcher.packets[0]
    assert request_packet == [request, "my tag"]  # ARG0: the request posted, and the tag
    assert len(response_packet) == 1
    response = response_packet[0]
    assert (response.code, response.content) == (200, b"you asked for /a?b=1")
    assert response.is_success and response.status_line == "200 OK"
    assert response.request.target == server.url("/a?b=1")  # the request as sent
    sent = server.requests[0]
    assert sent.headers.get("User-Agent") == "tester/1"
    assert sent.headers.get("Host") == f"127.0.0.1:{server.port}"
    assert sent.headers.get("X-Mine") == "1"
    assert "User-Agent" not in request.headers  # the user's request is not changed


def test_keep_alive_reuses_a_connection_and_lets_the_kernel_end() -> None:
    server = Server(ok)
    ClientHTTP.spawn(Alias="ua")
    fetcher = Fetcher()
    for i in range(3):
        fetcher.get(server.url(f"/{i}"), i)
        fetcher.wait(i + 1)
    assert server.connections == 1
    assert [tag for tag, _r in fetcher.answers] == [0, 1, 2]
    # An idle pooled connection holds no watcher: with the server gone, run() returns at
    # once (POE's would run until Client::Keepalive's 15 s timeout).
    server.close()
    started = time.monotonic()
    poe_kernel.run()
    assert time.monotonic() - started < 2.0


def test_without_keep_alive_each_request_has_its_connection() -> None:
    server = Server(ok)
    ClientHTTP.spawn(Alias="ua", KeepAlive=0)
    fetcher = Fetcher()
    for i in range(3):
        fetcher.get(server.url(f"/{i}"), i)
    fetcher.wait(3)
    assert server.connections == 3
    assert {r.headers.get("Connection") for r in server.requests} == {"close"}


def test_the_pool_bounds_connections_per_host_and_queues_the_rest() -> None:
    def slow(request: Request, _: HandlerArgs) -> None:
        _[KERNEL].delay("reply", 0.05, Response(200, body=request.target.encode()))

    server = Server(slow)
    ClientHTTP.spawn(Alias="ua", MaxPerHost=2)
    fetcher = Fetcher()
    for i in range(6):
        fetcher.get(server.url(f"/{i}"), i)
    assert fetcher.call("pending_requests_count") == 0  # nothing posted yet
    run_until(lambda: len(server.requests) >= 1, 5, "the first request")
    assert fetcher.call("pending_requests_count") == 6
    fetcher.wait(6)
    assert sorted(r.body for _t, r in fetcher.answers) == [f"/{i}".encode() for i in range(6)]
    assert server.most_open == 2
    assert fetcher.call("pending_requests_count") == 0


FRAMINGS = [
    ("Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    (
        "chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
    ),
    ("until the connection ends", b"HTTP/1.0 200 OK\r\n\r\nhello"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "raw"), FRAMINGS, ids=[f[0] for f in FRAMINGS])
def test_bodies_of_every_framing(name: str, raw: bytes) -> None:
    def answer(request: Request, _: HandlerArgs) -> bytes:
        if request.method == "HEAD":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        if raw.startswith(b"HTTP/1.0"):
            _[KERNEL].yield_("shutdown")
        return raw

    server = Server(answer)
    ClientHTTP.spawn(Alias="ua")
    fetcher = Fetcher()
    fetcher.get(server.url(), "get")
    fetcher.wait(1)
    fetcher.get(Request("HEAD", server.url()), "head")
    fetcher.wait(2)
    (_t1, got), (_t2, head) = fetcher.answers
    assert (got.status, got.body) == (200, b"hello")
    assert (head.status, head.body, head.headers.get("Content-Length")) == (200, b"", "5")


def test_streaming_posts_chunks_then_the_end() -> None:
    server = Server(lambda r, _: Response(200, body=b"0123456789"))
    ClientHTTP.spawn(Alias="ua", Streaming=4)
    fetcher = Fetcher()
    fetcher.get(server.url(), "t", "progress")
    fetcher.wait(1)
    packets = [p for _a, p in fetcher.packets]
    response = packets[0][0]
    assert all(p[0] is response for p in packets)
    assert [p[1] for p in packets] == [b"0123", b"4567", b"89", None]
    assert response.body == b""
    assert fetcher.progress == [[10, 10, b"0123456789"]]


def test_http_1_0_asks_for_no_keep_alive() -> None:
    server = Server(ok)
    ClientHTTP.spawn(Alias="ua", Protocol="HTTP/1.0")
    fetcher = Fetcher()
    for i in range(2):
        fetcher.get(server.url(f"/{i}"), i)
        fetcher.wait(i + 1)
    assert [r.version for r in server.requests] == ["1.0", "1.0"]
    assert server.connections == 2


def test_max_size_defaults_to_a_bound_unless_streaming() -> None:
    from kernelish.components.client_http import ClientHTTPParams

    assert ClientHTTPParams().body_limit() == 64 * 1024 * 1024
    assert ClientHTTPParams(Streaming=4096).body_limit() is None
    assert ClientHTTPParams(Streaming=4096, MaxSize=10).body_limit() == 10
    assert ClientHTTPParams(MaxSize=None).body_limit() is None


def redirector(request: Request, _: HandlerArgs) -> Response:
    path = request.path
    if path.startswith("/go/"):
        status = int(path.split("/")[2])
        return Response(status, headers={"Location": "/landed"})
    if path == "/loop":
        return Response(302, headers={"Location": "/loop"})
    if path == "/chain":
        return Response(303, headers={"Location": "/go/307"})
    return Response(200, body=f"{request.method} {request.body.decode()}".encode())


@pytest.mark.parametrize(
    ("status", "method"), [(301, "GET"), (302, "GET"), (303, "GET"), (307, "POST"), (308, "POST")]
)
def test_redirects_are_followed_with_the_method_rfc_9110_gives(status: int, method: str) -> None:
    server = Server(redirector)
    ClientHTTP.spawn(Alias="ua", FollowRedirects=2)
    fetcher = Fetcher()
    post = Request("POST", server.url(f"/go/{status}"), body=b"form")
    fetcher.get(post, "tag")
    (tag, response), *_ = fetcher.wait(1)
    body = b"POST form" if method == "POST" else b"GET "
    assert (tag, response.status, response.body) == ("tag", 200, body)
    assert response.request.target == server.url("/landed")
    assert response.previous is not None and response.previous.status == status
    assert response.previous.request.target == server.url(f"/go/{status}")
    assert fetcher.packets[0][0][0] is post  # ARG0 keeps the request posted


def test_a_streamed_redirect_posts_only_the_last_body() -> None:
    def answer(request: Request, _: HandlerArgs) -> Response:
        if request.path == "/moved":
            return Response(302, headers={"Location": "/here"}, body=b"not this")
        return Response(200, body=b"this one")

    server = Server(answer)
    ClientHTTP.spawn(Alias="ua", Streaming=100, FollowRedirects=1)
    fetcher = Fetcher()
    fetcher.get(server.url("/moved"), "t")
    fetcher.wait(1)
    assert [p[1] for _a, p in fetcher.packets] == [b"this one", None]
    assert fetcher.packets[0][1][0].previous.status == 302


def test_a_303_then_a_307_stays_a_get_without_the_body_fields() -> None:
    server = Server(redirector)
    ClientHTTP.spawn(Alias="ua", FollowRedirects=2)
    fetcher = Fetcher()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    fetcher.get(Request("POST", server.url("/chain"), headers=form, body=b"a=1"), "t")
    (_t, response), *_ = fetcher.wait(1)
    assert (response.status, response.body) == (200, b"GET ")
    assert [r.method for r in server.requests] == ["POST", "GET", "GET"]
    assert "Content-Type" not in server.requests[-1].headers


def test_redirects_are_bounded_and_off_by_default() -> None:
    server = Server(redirector)
    ClientHTTP.spawn(Alias="ua", FollowRedirects=3)
    ClientHTTP.spawn(Alias="plain")
    fetcher = Fetcher()
    fetcher.get(server.url("/loop"), "loop")
    (_tag, looped), *_ = fetcher.wait(1)
    assert looped.status == 302  # the last redirect is the answer, as POE and LWP give it
    assert looped.headers.get("Client-Warning") == "Redirect loop detected (FollowRedirects 3)"
    chain = 0
    while looped.previous is not None:
        looped, chain = looped.previous, chain + 1
    assert chain == 3 and len(server.requests) == 4

    plain = Fetcher(ua="plain")
    plain.get(server.url("/go/301"))
    (_tag, moved), *_ = plain.wait(1)
    assert (moved.status, moved.headers.get("Location")) == (301, "/landed")


def test_a_server_that_never_answers_times_out_with_408() -> None:
    server = Server(lambda r, _: None)
    ClientHTTP.spawn(Alias="ua", Timeout=0.3)
    fetcher = Fetcher()
    started = time.monotonic()
    fetcher.get(server.url(), "silent")
    (_tag, response), *_ = fetcher.wait(1)
    assert 0.25 < time.monotonic() - started < 2.0
    assert (response.status, errmsg(response)) == (408, "Request timed out")
    assert b"This is a client error" in response.body
    run_until(lambda: server.open == 0, 5, "the connection to close")


def test_unreachable_and_unsupported() -> None:
    closed = Server(ok, alias="gone")
    port = closed.port
    poe_kernel.post("gone", "shutdown")
    ClientHTTP.spawn(Alias="ua")
    fetcher = Fetcher()
    fetcher.get(f"http://127.0.0.1:{port}/", "refused")
    fetcher.get("ftp://127.0.0.1/", "ftp")
    fetcher.get("not a url", "junk")
    answers = dict(fetcher.wait(3))
    refused = answers["refused"]
    assert refused.status == 500
    assert errmsg(refused) == (
        f"Connection to 127.0.0.1:{port} failed: connect error 111: Connection refused"
    )
    assert (answers["ftp"].status, errmsg(answers["ftp"])) == (400, "Unsupported URI scheme")
    assert answers["junk"].status == 400


def bad_server(request: Request, _: HandlerArgs) -> bytes | Response | None:
    """A server whose answer is the request's path: /good, or one of the bad ones."""
    head = b"HTTP/1.1 200 OK\r\n"
    path = request.path
    if path == "/garbage":
        return b"I am not HTTP\r\n\r\n"
    if path == "/longer":
        return head + b"Content-Length: 3\r\n\r\nabcEXCESS"
    if path == "/huge":
        return head + b"Content-Length: 2000\r\n\r\n"
    if path == "/huge-chunked":
        return (
            head + b"Transfer-Encoding: chunked\r\n\r\n" + (b"100\r\n" + b"x" * 256 + b"\r\n") * 5
        )
    if path in ("/reset", "/short"):
        _[HEAP]["client"].put(head + b"Content-Length: 100\r\n\r\npartial")
        _[KERNEL].yield_("reset" if path == "/reset" else "shutdown")
        return None
    return Response(200, body=b"fine")


BAD = [
    ("/garbage", 400, "read error 71: HTTPClient: malformed response head"),
    ("/huge", 406, "Response content is longer than specified MaxSize of 1000"),
    ("/huge-chunked", 406, "Response content is longer than specified MaxSize of 1000"),
    ("/reset", 400, "read error"),
    ("/short", 400, "read error 71: the connection closed after 7 of the 100 octets"),
]


def test_each_bad_server_costs_only_its_request() -> None:
    server = Server(bad_server)
    ClientHTTP.spawn(Alias="ua", MaxSize=1000)
    fetcher = Fetcher()
    for path, _status, _message in BAD:
        fetcher.get(server.url(path), path)
        fetcher.get(server.url("/good"), "good " + path)
    answers = dict(fetcher.wait(2 * len(BAD)))
    for path, status, message in BAD:
        assert answers[path].status == status, path
        assert errmsg(answers[path]).startswith(message), (path, errmsg(answers[path]))
        good = answers["good " + path]
        assert (good.status, good.body) == (200, b"fine"), path


def test_a_body_longer_than_content_length_is_cut_and_its_connection_not_reused() -> None:
    server = Server(bad_server)
    ClientHTTP.spawn(Alias="ua")
    fetcher = Fetcher()
    fetcher.get(server.url("/longer"), "longer")
    fetcher.wait(1)
    fetcher.get(server.url("/good"), "good")
    answers = dict(fetcher.wait(2))
    assert (answers["longer"].status, answers["longer"].body) == (200, b"abc")
    assert answers["good"].body == b"fine"
    assert server.connections == 2


def test_a_keep_alive_connection_closed_under_a_request_is_retried_once() -> None:
    def second_request_dropped(request: Request, _: HandlerArgs) -> Response | None:
        heap = _[HEAP]
        heap["served"] = heap.get("served", 0) + 1
        if heap["served"] == 2:
            _[KERNEL].yield_("shutdown")  # the server's keep-alive timeout, at a bad moment
            return None
        return Response(200, body=request.target.encode())

    server = Server(second_request_dropped)
    ClientHTTP.spawn(Alias="ua")
    fetcher = Fetcher()
    fetcher.get(server.url("/1"), 1)
    fetcher.wait(1)
    fetcher.get(server.url("/2"), 2)
    fetcher.wait(2)
    assert [(t, r.status, r.body) for t, r in fetcher.answers] == [(1, 200, b"/1"), (2, 200, b"/2")]
    assert server.connections == 2
    fetcher.get(Request("POST", server.url("/3")), 3)  # not idempotent: never sent twice
    (_t, posted) = fetcher.wait(3)[2]
    assert posted.status == 400 and server.connections == 2


@pytest.mark.parametrize(
    ("hang_up", "idle"), [(0.0, 0.05), (0.2, 0.4)], ids=["while-watched", "once-cooled"]
)
def test_an_idle_connection_the_server_closed_is_not_reused(hang_up: float, idle: float) -> None:
    # Parked less than 0.1 s, a connection is watched: its end is seen at once; after,
    # it is not, and taking it again asks (MSG_PEEK).
    def answer_then_hang_up(request: Request, _: HandlerArgs) -> Response:
        _[KERNEL].delay("shutdown", hang_up)  # closes once the answer is written
        return Response(200, body=request.method.encode())

    server = Server(answer_then_hang_up)
    ClientHTTP.spawn(Alias="ua")
    fetcher = Fetcher()
    fetcher.get(server.url(), "first")
    fetcher.wait(1)
    until = time.monotonic() + idle
    run_until(lambda: time.monotonic() >= until, 5, "a while")
    # A POST is never sent twice: it succeeds only if it went on a new connection.
    fetcher.get(Request("POST", server.url(), body=b"x"), "second")
    answers = dict(fetcher.wait(2))
    assert (answers["second"].status, answers["second"].body) == (200, b"POST")
    assert server.connections == 2


def test_cancel_and_shutdown_answer_408() -> None:
    server = Server(lambda r, _: None)
    ua = ClientHTTP.spawn(Alias="ua")
    fetcher = Fetcher()
    waits = [Request("GET", server.url(f"/{i}")) for i in range(3)]
    for i, request in enumerate(waits):
        fetcher.get(request, i)
    run_until(lambda: len(server.requests) == 3, 5, "the requests to arrive")
    poe_kernel.post("ua", "cancel", waits[1])
    (tag, canceled), *_ = fetcher.wait(1)
    assert (tag, canceled.status) == (1, 408)
    assert errmsg(canceled) == "Request timed out (request canceled)"
    poe_kernel.post("ua", "shutdown")
    answers = dict(fetcher.wait(3))
    assert {errmsg(answers[t]) for t in (0, 2)} == {"Request timed out (component shut down)"}
    run_until(lambda: ua.session is None, 5, "the component to end")  # nothing holds it


def test_a_request_after_shutdown_is_answered_408_at_once() -> None:
    ua = ClientHTTP.spawn(Alias="ua")
    fetcher = Fetcher(ua=int(ua))
    poe_kernel.post("ua", "shutdown")
    fetcher.get("http://127.0.0.1:9/", "after")
    (_t, response), *_ = fetcher.wait(1)
    assert (response.status, errmsg(response)) == (408, "Request timed out (component shut down)")


def test_a_request_that_is_not_one_is_answered_400_and_the_component_goes_on() -> None:
    server = Server(ok)
    ClientHTTP.spawn(Alias="ua")
    fetcher = Fetcher()
    fetcher.get(42, "not a request")  # type: ignore[arg-type]
    fetcher.get(server.url(), "fine")
    answers = dict(fetcher.wait(2))
    assert answers["not a request"].status == 400
    assert "must be a Request or a URL, not int" in errmsg(answers["not a request"])
    assert answers["fine"].status == 200


def test_spawn_refuses_bad_parameters() -> None:
    with pytest.raises(ParameterError, match=r"Protocol must be 'HTTP/1\.1' or 'HTTP/1\.0'"):
        ClientHTTP.spawn(Protocol="HTTP/0.9")
    with pytest.raises(ParameterError, match="Timeout"):
        ClientHTTP.spawn(Timeout=0)
    with pytest.raises(ParameterError, match="Proxy"):
        ClientHTTP.spawn(Proxy="socks5://x:1")
    with pytest.raises(ParameterError, match="unknown parameter 'CookieJar'"):
        ClientHTTP.spawn(CookieJar=object())
    ClientHTTP.spawn(Alias="ua")
    with pytest.raises(ParameterError, match="Alias 'ua' is another session's"):
        ClientHTTP.spawn(Alias="ua")


def test_a_request_through_an_http_proxy() -> None:
    proxy = Server(lambda r, _: Response(200, body=r.target.encode()), alias="proxy")
    ClientHTTP.spawn(Alias="ua", Proxy=f"http://127.0.0.1:{proxy.port}/", NoProxy=["skip.test"])
    fetcher = Fetcher()
    fetcher.get("http://example.test/a?b", "proxied")
    (_t, response), *_ = fetcher.wait(1)
    assert response.body == b"http://example.test/a?b"  # absolute-form, to the proxy
    assert proxy.requests[0].headers.get("Host") == "example.test"


# -- TLS, names, connecting ------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def test_https_checks_the_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server = Server(ok, SSLContext=server_context(cert, key))
    ClientHTTP.spawn(Alias="ua", SSLContext=client_context(cert))
    ClientHTTP.spawn(Alias="default")  # ssl.create_default_context(): not this CA
    fetcher, strict = Fetcher(), Fetcher(ua="default")
    fetcher.get(server.url("/secret", "https"), "trusted")
    fetcher.get(f"https://localhost:{server.port}/by-name", "by name")
    strict.get(server.url("/secret", "https"), "untrusted")
    answers = dict(fetcher.wait(2))
    assert (answers["trusted"].status, answers["trusted"].body) == (200, b"you asked for /secret")
    assert answers["by name"].body == b"you asked for /by-name"
    (_t, refused), *_ = strict.wait(1)
    assert refused.status == 500
    assert "handshake error" in errmsg(refused) and "CERTIFICATE_VERIFY_FAILED" in errmsg(refused)
    assert server.connections == 2  # the two trusted requests shared one connection


def test_names_are_looked_up_in_a_child_and_addresses_tried_in_turn(procs: Any) -> None:
    del procs
    v6 = Server(ok, alias="v6", Address="::1", Domain=socket.AF_INET6)
    v4 = Server(ok, alias="v4")
    ClientHTTP.spawn(Alias="ua")
    fetcher = Fetcher()
    # localhost is 127.0.0.1 then ::1 without a lookup (RFC 6761); nothing listens on
    # 127.0.0.1 at v6's port, so the second address serves.
    fetcher.get(f"http://localhost:{v6.port}/six", "localhost")
    # The machine's own name is in /etc/hosts: getaddrinfo runs in a Run child.
    fetcher.get(f"http://{socket.gethostname()}:{v4.port}/named", "named")
    fetcher.get(f"http://{socket.gethostname()}:{v4.port}/again", "cached")
    answers = dict(fetcher.wait(3, timeout=10))
    assert answers["localhost"].body == b"you asked for /six"
    assert answers["named"].body == b"you asked for /named"
    assert answers["cached"].body == b"you asked for /again"


def test_a_connect_that_hangs_times_out(procs: Any) -> None:
    del procs
    # A listener whose backlog is full: the kernel drops further SYNs, the connect hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    ClientHTTP.spawn(Alias="ua", ConnectTimeout=0.3)
    fetcher = Fetcher()
    started = time.monotonic()
    fetcher.get(f"http://127.0.0.1:{port}/", "hang")
    (_t, response), *_ = fetcher.wait(1)
    took = time.monotonic() - started
    for sock in [*fillers, listener]:
        sock.close()
    assert (response.status, errmsg(response)) == (
        408,
        f"Connection to 127.0.0.1:{port} failed: timeout",
    )
    assert 0.25 < took < 2.0


def test_a_lookup_never_blocks_the_kernel() -> None:
    from kernelish.components.client_http._resolver import Resolver

    resolver = Resolver(max_children=2, timeout=5)
    answers: list[Any] = []
    immediate: list[Any] = []

    def start(_: HandlerArgs) -> None:
        immediate.append(resolver.lookup("LOCALHOST.", answers.append))
        immediate.append(resolver.lookup("::1", answers.append))
        immediate.append(resolver.lookup(socket.gethostname(), answers.append))
        immediate.append(resolver.lookup(socket.gethostname(), answers.append))  # shared
        immediate.append(resolver.running)

    Session.create(inline_states={"_start": start, **resolver.states()})
    assert immediate == [["127.0.0.1", "::1"], ["::1"], None, None, 1]
    run_until(lambda: len(answers) == 2, 10, "the lookup")
    assert answers[0] == answers[1] and "127.0.0.1" in answers[0]
    assert resolver.lookup(socket.gethostname(), answers.append) == answers[0]  # cached

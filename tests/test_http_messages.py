"""kernelish.http: Headers, Request, Response.prepare's framing table, the WSGI environ."""

from __future__ import annotations

from typing import Any

import pytest

from kernelish.http import Headers, Request, Response, http_date, reason_phrase, wsgi_environ


def test_headers_are_an_ordered_case_insensitive_multidict() -> None:
    h = Headers([("Set-Cookie", "a=1"), ("X-A", "x"), ("set-cookie", "b=2")])
    assert h.get_all("SET-COOKIE") == ["a=1", "b=2"]
    assert h["set-cookie"] == "a=1, b=2" and h.get("missing") is None
    assert "x-a" in h and "x-b" not in h and len(h) == 3
    h["X-A"] = "y"
    h["set-cookie"] = "c=3"  # replaces every line, in the first one's place
    assert list(h) == [("set-cookie", "c=3"), ("X-A", "y")]
    h.add("Vary", "Accept")
    del h["x-a"]
    assert h.items() == [("set-cookie", "c=3"), ("Vary", "Accept")]
    assert h.header_field_names() == ["set-cookie", "Vary"]
    with pytest.raises(KeyError):
        h["X-A"]
    seen: list[tuple[str, str]] = []
    h.scan(lambda n, v: seen.append((n, v)))
    assert seen == h.items()
    assert Headers({"Connection": "Keep-Alive, Upgrade"}).tokens("connection") == [
        "keep-alive",
        "upgrade",
    ]


KEEP_ALIVE = [
    ("1.1", None, True),
    ("1.1", "close", False),
    ("1.1", "Keep-Alive, Close", False),
    ("1.0", None, False),
    ("1.0", "keep-alive", True),
]


@pytest.mark.parametrize(("version", "connection", "keep"), KEEP_ALIVE)
def test_keep_alive(version: str, connection: str | None, keep: bool) -> None:
    headers = [] if connection is None else [("Connection", connection)]
    assert Request("GET", "/", version, headers).keep_alive is keep


def test_request_target_parts() -> None:
    r = Request("GET", "http://example.com:8080/a%20b?x=1#f", "1.1", [("Host", "other")])
    assert (r.path, r.query, r.host) == ("/a%20b", "x=1", "example.com:8080")
    r = Request("OPTIONS", "*", "1.1", [("Host", "h")])
    assert (r.path, r.query, r.host) == ("*", "", "h")


def _req(method: str = "GET", version: str = "1.1", **headers: str) -> Request:
    return Request(method, "/", version, [("Host", "h"), *headers.items()])


# (request, response body, status) -> (keep-alive, Content-Length, Transfer-Encoding,
# Connection, send_body)
FRAMING: list[tuple[str, Request | None, Any, int, tuple[Any, ...]]] = [
    ("bytes to 1.1", _req(), b"abc", 200, (True, "3", None, None, True)),
    ("bytes to 1.0", _req(version="1.0"), b"abc", 200, (False, "3", None, "close", True)),
    (
        "1.0 keep-alive",
        _req(version="1.0", Connection="keep-alive"),
        b"",
        200,
        (True, "0", None, "keep-alive", True),
    ),
    ("stream to 1.1", _req(), iter(()), 200, (True, None, "chunked", None, True)),
    ("stream to 1.0", _req(version="1.0"), iter(()), 200, (False, None, None, "close", True)),
    ("stream, no request", None, iter(()), 200, (False, None, None, "close", True)),
    ("HEAD", _req("HEAD"), b"abc", 200, (True, "3", None, None, False)),
    ("204", _req(), b"", 204, (True, None, None, None, False)),
    ("304", _req(), b"", 304, (True, None, None, None, False)),
    ("close wanted", _req(Connection="close"), b"", 200, (False, "0", None, "close", True)),
]


@pytest.mark.parametrize(
    ("name", "request_", "body", "status", "expected"), FRAMING, ids=[f[0] for f in FRAMING]
)
def test_prepare_framing(
    name: str, request_: Request | None, body: Any, status: int, expected: tuple[Any, ...]
) -> None:
    response = Response(status, body=body)
    keep = response.prepare(request_)
    h = response.headers
    got = (
        keep,
        h.get("Content-Length"),
        h.get("Transfer-Encoding"),
        h.get("Connection"),
        response.send_body,
    )
    assert got == expected
    assert response.close is not keep
    assert h["Date"] == http_date()


def test_prepare_keeps_a_streamed_content_length_and_the_apps_close() -> None:
    response = Response(200, headers=[("Content-Length", "10")], body=iter([b"x" * 10]))
    assert response.prepare(_req()) is True
    assert "Transfer-Encoding" not in response.headers
    closing = Response(200, headers=[("Connection", "close")])
    assert closing.prepare(_req()) is False


def test_error_response() -> None:
    request = _req()
    response = Response.error(413, "too big", request)
    assert (response.code, response.message) == (413, reason_phrase(413))
    assert response.close and response.request is request and response.detail == "too big"
    assert response.headers["Content-Length"] == str(len(bytes(response.body)))  # type: ignore[arg-type]


def test_head_bytes_refuse_what_would_split_the_response() -> None:
    assert Response(200, headers=[("X", "1")]).head_bytes() == b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\n"
    for bad in ([("X", "a\nb")], [("X Y", "1")], [("X", "\x00")], [("X", "\u20ac")]):
        with pytest.raises(ValueError):
            Response(200, headers=bad).head_bytes()
    with pytest.raises(ValueError):
        Response(200, "OK\r\nX: 1").head_bytes()


def test_wsgi_environ_follows_pep_3333() -> None:
    request = Request(
        "POST",
        "/app/caf%C3%A9/x%2Fy?q=%20a&b",
        "1.1",
        [
            ("Host", "example.com"),
            ("Content-Type", "text/plain"),
            ("Content-Length", "2"),
            ("X-Forwarded-For", "1.1.1.1"),
            ("X_Forwarded_For", "6.6.6.6"),
            ("Accept", "a"),
            ("accept", "b"),
        ],
        b"hi",
    )
    env = wsgi_environ(
        request,
        server_name="0.0.0.0",
        server_port=8080,
        remote_addr="127.0.0.1",
        remote_port=5555,
        script_name="/app",
    )
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/x/y"  # percent-decoded, then latin-1
    assert env["SCRIPT_NAME"] == "/app" and env["QUERY_STRING"] == "q=%20a&b"
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "2"
    assert env["HTTP_X_FORWARDED_FOR"] == "1.1.1.1"  # the underscored spoof is dropped
    assert env["HTTP_ACCEPT"] == "a,b" and env["HTTP_HOST"] == "example.com"
    assert env["SERVER_PORT"] == "8080" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REQUEST_METHOD"] == "POST" and env["RAW_URI"] == request.target
    assert env["wsgi.input"].read() == b"hi" and env["wsgi.url_scheme"] == "http"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_wsgi_environ_of_a_dechunked_body_has_its_length() -> None:
    request = Request("POST", "/", "1.1", [("Host", "h"), ("Transfer-Encoding", "chunked")], b"abc")
    env = wsgi_environ(request, server_name="h", server_port=80)
    assert env["CONTENT_LENGTH"] == "3"

"""The HTTPD filter: requests in, responses out, and every bad input of issue 18 answered
with the status the RFCs and gunicorn give -- whatever the split of the input into reads."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelish._params import ParameterError
from kernelish.filters import HTTPD, RecordTooLong
from kernelish.http import Request, Response

H = b"Host: a\r\n"


def describe(record: Any) -> Any:
    """A record as a comparable tuple."""
    if isinstance(record, Request):
        return ("req", record.method, record.target, record.version, record.body)
    if isinstance(record, Response):
        return ("resp", record.status)
    return ("part", bytes(record))


def feed(data: bytes, cuts: list[int], **params: Any) -> list[Any]:
    """Records of ``data`` cut into reads at ``cuts``, each read through ``get``."""
    filt = HTTPD(**params)
    records: list[Any] = []
    last = 0
    for cut in [*cuts, len(data)]:
        records += filt.get([data[last:cut]])
        last = cut
    return [describe(r) for r in records]


def every_split(data: bytes, **params: Any) -> list[Any]:
    """The records of ``data`` in one read; checked to be the same cut at every boundary
    and fed one octet at a time."""
    whole = feed(data, [], **params)
    for cut in range(1, len(data)):
        assert feed(data, [cut], **params) == whole, f"cut at {cut}"
    assert feed(data, list(range(1, len(data))), **params) == whole, "byte at a time"
    return whole


# -- good input -----------------------------------------------------------------------------

GOOD = [
    ("GET", b"GET /a?b=1 HTTP/1.1\r\n" + H + b"\r\n", [("req", "GET", "/a?b=1", "1.1", b"")]),
    ("HTTP/1.0 without Host", b"GET / HTTP/1.0\r\n\r\n", [("req", "GET", "/", "1.0", b"")]),
    (
        "POST with Content-Length",
        b"POST /p HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello",
        [("req", "POST", "/p", "1.1", b"hello")],
    ),
    (
        "chunked with an extension and a trailer",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
        [("req", "POST", "/", "1.1", b"abcde")],
    ),
    (
        "pipelined: GET, POST, GET",
        b"GET /1 HTTP/1.1\r\n" + H + b"\r\n"
        b"POST /2 HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi"
        b"GET /3 HTTP/1.1\r\n" + H + b"\r\n",
        [
            ("req", "GET", "/1", "1.1", b""),
            ("req", "POST", "/2", "1.1", b"hi"),
            ("req", "GET", "/3", "1.1", b""),
        ],
    ),
    (
        "empty lines before the request line",
        b"\r\n\r\nGET / HTTP/1.1\r\n" + H + b"\r\n",
        [("req", "GET", "/", "1.1", b"")],
    ),
    (
        "nothing read after Connection: close",
        b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\nGET /x HTTP/1.1\r\n" + H + b"\r\n",
        [("req", "GET", "/", "1.1", b"")],
    ),
]


@pytest.mark.parametrize(("name", "data", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_good_input_at_every_split(name: str, data: bytes, expected: list[Any]) -> None:
    assert every_split(data) == expected


def test_request_fields() -> None:
    [request] = HTTPD().get(
        [
            b"POST /x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n1\r\nz\r\n0\r\nX-Trailer: t\r\n\r\n"
        ]
    )
    assert request.headers.get_all("X-A") == ["1", "2"]
    assert request.header("x-a") == "1, 2"
    assert request.chunked and request.keep_alive
    assert request.trailers is not None and request.trailers["x-trailer"] == "t"
    assert request.protocol == "HTTP/1.1" and request.content == b"z"


# -- bad input ------------------------------------------------------------------------------

POST = b"POST / HTTP/1.1\r\n" + H
BAD = [
    ("Content-Length and Transfer-Encoding",
     POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("Content-Length twice, same value", POST + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\n",
     400),
    ("Content-Length twice, two values", POST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n",
     400),
    ("Content-Length: 3, 3", POST + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    ("Content-Length: -1", POST + b"Content-Length: -1\r\n\r\n", 400),
    ("Transfer-Encoding: gzip", POST + b"Transfer-Encoding: gzip\r\n\r\nabc", 400),
    ("Transfer-Encoding: chunked, gzip", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("Transfer-Encoding: gzip, chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ("Transfer-Encoding twice",
     POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("Transfer-Encoding in HTTP/1.0",
     b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("bare LF", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare LF after a field", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", 400),
    ("whitespace before the colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two Host fields", b"GET / HTTP/1.1\r\n" + H + b"Host: b\r\n\r\n", 400),
    ("control octet in the target", b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("invalid UTF-8 in the target", b"GET /a\xff\xfe HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("NUL in a value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400),
    ("TLS handshake", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ("a line of garbage", b"HELLO WORLD\r\n\r\n", 400),
    ("unknown method", b"BREW /pot HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("HTTP/0.9", b"GET /\r\n\r\n", 400),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    ("chunk size overflow",
     POST + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nab", 400),
    ("chunk size not hex", POST + b"Transfer-Encoding: chunked\r\n\r\n5x\r\nabcde\r\n", 400),
    ("chunk without its CRLF", POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX", 400),
    ("target over MaxRequestLine", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("field over MaxFieldSize",
     b"GET / HTTP/1.1\r\n" + H + b"X: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ("101 fields", b"GET / HTTP/1.1\r\n" + H + b"X: b\r\n" * 100 + b"\r\n", 431),
    ("head over MaxHeaderSize",
     b"GET / HTTP/1.1\r\n" + H + (b"X: " + b"a" * 8000 + b"\r\n") * 9 + b"\r\n", 431),
    ("endless field, never a blank line", b"GET / HTTP/1.1\r\n" + H + b"X: " + b"a" * 70000, 431),
    ("Content-Length over MaxContent", POST + b"Content-Length: 1048577\r\n\r\n", 413),
    ("Content-Length of 1 TiB", POST + b"Content-Length: 1099511627776\r\n\r\n", 413),
    ("chunked body over MaxContent",
     POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"100000\r\n" + b"a" * 0x100000 + b"\r\n"
     b"1\r\nb\r\n0\r\n\r\n", 413),
    ("trailers over MaxFields",
     POST + b"Transfer-Encoding: chunked\r\n\r\n0\r\n" + b"X: b\r\n" * 101 + b"\r\n", 431),
]  # fmt: skip

#: Cases short enough to cut at every octet boundary.
SHORT = [case for case in BAD if len(case[1]) < 400]


@pytest.mark.parametrize(("name", "data", "status"), SHORT, ids=[c[0] for c in SHORT])
def test_bad_input_at_every_split(name: str, data: bytes, status: int) -> None:
    assert every_split(data) == [("resp", status)]


@pytest.mark.parametrize(("name", "data", "status"), BAD, ids=[c[0] for c in BAD])
def test_bad_input_whole_and_in_reads(name: str, data: bytes, status: int) -> None:
    assert feed(data, []) == [("resp", status)]
    assert feed(data, list(range(1000, len(data), 1000))) == [("resp", status)]


def test_a_truncated_chunk_waits_and_holds_only_its_octets() -> None:
    filt = HTTPD()
    assert filt.get([POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab"]) == []
    assert filt.get_pending() is None  # the body being read is the request's, not pending


def test_after_an_error_input_is_discarded_not_held() -> None:
    filt = HTTPD()
    [answer] = filt.get([b"HELLO WORLD\r\n\r\n"])
    assert isinstance(answer, Response) and answer.close
    assert answer.headers["Connection"] == "close"
    for _ in range(100):
        assert filt.get([b"GET / HTTP/1.1\r\n" + H + b"\r\n" * 500]) == []
    assert filt.get_pending() is None


def test_error_keeps_the_request_when_its_head_was_read() -> None:
    filt = HTTPD(MaxContent=10)
    [answer] = filt.get([POST + b"Expect: 100-continue\r\nContent-Length: 11\r\n\r\n"])
    assert answer.status == 413 and answer.request is not None
    assert answer.request.expect_continue  # refused before the client sends the body
    assert b"413" in bytes(answer.body) and "MaxContent" in answer.detail


def test_error_page_does_not_echo_the_input() -> None:
    [answer] = HTTPD().get([b"GET /<script> HTTP/1.1\r\n\r\n"])
    assert answer.status == 400 and b"<script>" not in bytes(answer.body)


def test_max_buffer_bounds_what_get_one_start_holds() -> None:
    filt = HTTPD(MaxBuffer=100, MaxContent=50)
    filt.get_one_start([b"x" * 60])
    with pytest.raises(RecordTooLong):
        filt.get_one_start([b"y" * 60])
    assert filt.get_pending() is None


# -- streaming ------------------------------------------------------------------------------


def test_streaming_content_length() -> None:
    data = POST + b"Content-Length: 10\r\n\r\n0123456789GET / HTTP/1.1\r\n" + H + b"\r\n"
    records = HTTPD(Streaming=True).get([data[:60], data[60:75], data[75:]])
    first, *parts, end, last = records
    assert isinstance(first, Request) and first.body_follows and first.body == b""
    assert b"".join(parts) == b"0123456789" and end == b""
    assert isinstance(last, Request) and not last.body_follows


def test_streaming_chunked_is_not_held_and_ignores_max_content() -> None:
    filt = HTTPD(Streaming=True, MaxContent=4)
    head = filt.get([POST + b"Transfer-Encoding: chunked\r\n\r\n"])
    assert [type(r) for r in head] == [Request]
    parts: list[bytes] = []
    for _ in range(50):
        parts += filt.get([b"1000\r\n" + b"z" * 4096 + b"\r\n"])
    assert b"".join(parts) == b"z" * 4096 * 50
    assert filt.get([b"0\r\n\r\n"]) == [b""]


def test_chunk_framing_is_bounded() -> None:
    filt = HTTPD(MaxHeaderSize=8192, MaxFieldSize=8192)
    filt.get([POST + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX: "])
    records: list[Any] = []
    for _ in range(20):
        records += filt.get([b"a" * 1000])
    assert [describe(r) for r in records] == [("resp", 431)]


# -- upgrade --------------------------------------------------------------------------------


def test_upgrade_leaves_the_new_protocol_pending() -> None:
    upgrade = b"GET /ws HTTP/1.1\r\n" + H + b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    filt = HTTPD()
    filt.get_one_start([upgrade + b"\x81\x05hello"])
    [request] = filt.get_one()
    assert isinstance(request, Request) and request.upgrade
    assert filt.get_pending() == [b"\x81\x05hello"]


def test_a_declined_upgrade_goes_on_as_http() -> None:
    upgrade = b"GET / HTTP/1.1\r\n" + H + b"Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
    records = HTTPD().get([upgrade + b"GET /next HTTP/1.1\r\n" + H + b"\r\n"])
    assert [describe(r) for r in records] == [
        ("req", "GET", "/", "1.1", b""),
        ("req", "GET", "/next", "1.1", b""),
    ]


def test_an_upgrade_with_a_body_keeps_its_body() -> None:
    data = (
        b"POST / HTTP/1.1\r\n" + H + b"Upgrade: h2c\r\nConnection: Upgrade\r\n"
        b"Content-Length: 4\r\n\r\nbody"
    )
    assert every_split(data + b"GET / HTTP/1.1\r\n" + H + b"\r\n") == [
        ("req", "POST", "/", "1.1", b"body"),
        ("req", "GET", "/", "1.1", b""),
    ]


# -- put ------------------------------------------------------------------------------------


def test_put_frames_against_the_last_request() -> None:
    filt = HTTPD()
    filt.get([b"HEAD / HTTP/1.0\r\n\r\n"])
    [wire] = filt.put([Response(200, body=b"hello")])
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 5" in head and b"Connection: close" in head and b"Date: " in head
    assert body == b""  # HEAD


def test_put_streams_chunked_to_http11() -> None:
    filt = HTTPD(Server="kernelish")
    filt.get([b"GET / HTTP/1.1\r\n" + H + b"\r\n"])
    out = filt.put([Response(200, body=iter(())), b"ab", b"", b"raw"])
    assert b"Transfer-Encoding: chunked" in out[0] and b"Server: kernelish" in out[0]
    assert b"Connection" not in out[0]  # keep-alive is HTTP/1.1's default
    assert out[1:] == [b"2\r\nab\r\n", b"0\r\n\r\n", b"raw"]


def test_put_refuses_response_splitting_and_overlapping_bodies() -> None:
    filt = HTTPD()
    with pytest.raises(ValueError, match="X-A"):
        filt.put([Response(200, headers=[("X-A", "a\r\nSet-Cookie: x=1")])])
    filt.put([Response(200, body=iter(()))])
    with pytest.raises(ValueError, match="still open"):
        filt.put([Response(200)])
    filt.put([b""])
    filt.put([Response(100)])  # an interim response never conflicts
    with pytest.raises(TypeError):
        filt.put([42])


def test_put_an_error_record_as_is() -> None:
    filt = HTTPD()
    [answer] = filt.get([b"HELLO\r\n\r\n"])
    [wire] = filt.put([answer])
    assert wire.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"Connection: close" in wire


# -- the surface ----------------------------------------------------------------------------


def test_parameters_both_spellings_and_errors_name_the_field() -> None:
    assert HTTPD(max_content=5)._params.max_content == 5
    with pytest.raises(ParameterError, match="MaxFields"):
        HTTPD(MaxFields=0)
    with pytest.raises(ParameterError, match="MaxHeaderSize"):
        HTTPD(MaxHeaderSize=100)
    with pytest.raises(ParameterError, match="Bogus"):
        HTTPD(Bogus=1)


def test_clone_has_the_parameters_and_nothing_buffered() -> None:
    filt = HTTPD(MaxContent=3)
    filt.get([b"GET / HTTP/1.1\r\nHo"])
    assert filt.get_pending() == [b"GET / HTTP/1.1\r\nHo"]
    twin = filt.clone()
    assert twin.get_pending() is None
    assert [describe(r) for r in twin.get([POST + b"Content-Length: 4\r\n\r\n"])] == [("resp", 413)]


def test_importing_the_filters_does_not_import_the_parser() -> None:
    import subprocess
    import sys

    code = "import sys, kernelish.filters, kernelish.http; print('httptools' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "False", out.stderr


# -- random splits of valid pipelined streams ----------------------------------------------

_REQUESTS = st.sampled_from(
    [
        b"GET /a HTTP/1.1\r\n" + H + b"\r\n",
        b"POST /b HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nxyz",
        b"PUT /c HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        b"DELETE /d?q HTTP/1.1\r\n" + H + b"Cookie: k=v\r\nAccept: */*\r\n\r\n",
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    requests=st.lists(_REQUESTS, min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    streaming=st.booleans(),
)
def test_random_splits_of_pipelined_requests(
    requests: list[bytes], cuts: list[int], streaming: bool
) -> None:
    data = b"".join(requests)
    whole = feed(data, [], Streaming=streaming)
    split = feed(data, sorted({c for c in cuts if 0 < c < len(data)}), Streaming=streaming)
    if streaming:  # parts come as they arrive: compare the bodies they make up
        whole, split = _join_parts(whole), _join_parts(split)
    assert split == whole
    assert sum(1 for r in whole if r[0] == "req") == len(requests)


def _join_parts(records: list[Any]) -> list[Any]:
    joined: list[Any] = []
    for record in records:
        if record[0] == "part" and joined and joined[-1][0] == "part" and record[1]:
            joined[-1] = ("part", joined[-1][1] + record[1])
        else:
            joined.append(record)
    return joined

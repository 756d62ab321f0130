"""The HTTPClient filter: requests out, responses in, framed by the request each answers,
and every malformed or oversized response refused -- whatever the split into reads."""

from __future__ import annotations

from typing import Any

import pytest

from kernelish._params import ParameterError
from kernelish.filters import (
    BadResponse,
    ContentTooLong,
    FilterError,
    HTTPClient,
    IncompleteResponse,
    RecordTooLong,
)
from kernelish.http import Request, Response


def describe(record: Any) -> Any:
    if isinstance(record, Response):
        return ("resp", record.status, record.body, record.close)
    return ("part", bytes(record))


def feed(data: bytes, cuts: list[int], methods: list[str], **params: Any) -> list[Any]:
    """Records of ``data`` cut into reads at ``cuts``, answering ``methods``, then EOF."""
    filt = HTTPClient(**params)
    filt.put([Request(m, "http://h/") for m in methods])
    records: list[Any] = []
    last = 0
    for cut in [*cuts, len(data)]:
        records += filt.get([data[last:cut]])
        last = cut
    records += filt.finish()
    return [describe(r) for r in records]


def every_split(data: bytes, methods: list[str], **params: Any) -> list[Any]:
    """The records in one read, checked to be the same at every cut and a byte at a time."""
    whole = feed(data, [], methods, **params)
    for cut in range(1, len(data)):
        assert feed(data, [cut], methods, **params) == whole, f"cut at {cut}"
    assert feed(data, list(range(1, len(data))), methods, **params) == whole, "byte at a time"
    return whole


OK = b"HTTP/1.1 200 OK\r\n"

CL0 = b"Content-Length: 0\r\n\r\n"

GOOD = [
    ("Content-Length", OK + b"Content-Length: 3\r\n\r\nabc", ["GET"], [(200, b"abc", False)]),
    (
        "chunked, an extension, a trailer",
        OK + b"Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nab\r\r\n2\r\n\r\n\r\n0\r\nX-T: 1\r\n\r\n",
        ["GET"],
        [(200, b"ab\r\r\n", False)],
    ),
    (
        "ends with the connection",
        b"HTTP/1.0 200 OK\r\n\r\nuntil eof",
        ["GET"],
        [(200, b"until eof", True)],
    ),
    ("HEAD: no body", OK + b"Content-Length: 9\r\n\r\n", ["HEAD"], [(200, b"", False)]),
    (
        "204 and 304",
        b"HTTP/1.1 204 No\r\n\r\nHTTP/1.1 304 Not\r\n\r\n",
        ["GET", "GET"],
        [(204, b"", False), (304, b"", False)],
    ),
    (
        "100 Continue dropped",
        b"HTTP/1.1 100 Continue\r\n\r\n" + OK + b"Content-Length: 1\r\n\r\nx",
        ["POST"],
        [(200, b"x", False)],
    ),
    (
        "three in one read: chunked, length, head",
        OK + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
        + OK + b"Content-Length: 2\r\n\r\nbc"
        + OK + b"Content-Length: 5\r\n\r\n",
        ["GET", "GET", "HEAD"],
        [(200, b"a", False), (200, b"bc", False), (200, b"", False)],
    ),
    ("Connection: close", OK + b"Connection: close\r\n" + CL0, ["GET"], [(200, b"", True)]),
    (
        "HTTP/1.0 keep-alive",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n" + CL0,
        ["GET"],
        [(200, b"", False)],
    ),
    (
        "a blank line between responses",
        OK + CL0 + b"\r\n" + OK + CL0,
        ["GET", "GET"],
        [(200, b"", False), (200, b"", False)],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "methods", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_responses_whatever_the_reads(
    name: str, data: bytes, methods: list[str], expected: list[Any]
) -> None:
    want = [("resp", status, body, close) for status, body, close in expected]
    assert every_split(data, methods) == want


def test_a_response_knows_its_request_and_chunked_leaves_transfer_encoding() -> None:
    filt = HTTPClient()
    first, second = Request("GET", "http://h/1"), Request("GET", "http://h/2")
    filt.put([first, second])
    assert filt.outstanding == 2
    one, two = filt.get(
        [OK + CL0 + OK + b"Transfer-Encoding: gzip, chunked\r\n\r\n", b"0\r\nX-Trailer: t\r\n\r\n"]
    )
    assert (one.request, two.request) == (first, second)
    assert two.headers.get("Transfer-Encoding") == "gzip"
    assert two.headers.get("X-Trailer") == "t"  # merged, as POE's HTTPChunk does
    assert filt.idle and filt.outstanding == 0


def test_streaming_gives_the_head_then_the_body_then_an_empty_record() -> None:
    filt = HTTPClient(Streaming=True)
    filt.put([Request("GET", "http://h/"), Request("HEAD", "http://h/")])
    records = filt.get(
        [OK + b"Content-Length: 6\r\n\r\nabc", b"def" + OK + b"Content-Length: 3\r\n\r\n"]
    )
    assert [describe(r)[:2] for r in records] == [
        ("resp", 200), ("part", b"abcdef"), ("part", b""),
        ("resp", 200), ("part", b""),
    ]  # fmt: skip
    assert records[0].body == b""


def test_get_one_returns_one_record_at_a_time() -> None:
    filt = HTTPClient()
    filt.get_one_start([OK + b"Content-Length: 1\r\n\r\na" + OK + b"Content-Length: 1\r\n\r\nb"])
    assert [r.body for r in filt.get_one()] == [b"a"]
    assert [r.body for r in filt.get_one()] == [b"b"]
    assert filt.get_one() == []


# -- what goes out --------------------------------------------------------------------------


def test_requests_as_sent() -> None:
    filt = HTTPClient()
    get = Request("GET", "http://user@h.example:8080/a b/é?q=1#frag", headers=[("X-A", "1")])
    post = Request("POST", "https://h/p")
    put = Request("PUT", "/x", headers={"Host": "given"}, body=b"data")
    assert filt.put([get, post, put, b"raw"]) == [
        b"GET /a%20b/%C3%A9?q=1 HTTP/1.1\r\nHost: h.example:8080\r\nX-A: 1\r\n\r\n",
        b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        b"PUT /x HTTP/1.1\r\nHost: given\r\nContent-Length: 4\r\n\r\ndata",
        b"raw",
    ]
    proxied = HTTPClient(Proxy=True)
    assert proxied.put([Request("GET", "http://h:81/a?b#c")]) == [
        b"GET http://h:81/a?b HTTP/1.1\r\nHost: h:81\r\n\r\n"
    ]


@pytest.mark.parametrize(
    ("request_", "complaint"),
    [
        (Request("GET", "http://h/", headers=[("X", "a\r\nInjected: 1")]), "holds CR, LF"),
        (Request("GET", "http://h/", headers=[("X", "a\nb")]), "holds CR, LF"),
        (Request("GET", "http://h/", headers=[("X", "a\x00b")]), "holds CR, LF"),
        (Request("GET", "http://h/", headers=[("Bad Name", "v")]), "not a token"),
        (Request("GET /x", "http://h/"), "not a token"),
        (Request("GET", "http://h/a\nb"), "white space"),
    ],
)
def test_a_request_that_would_break_the_message_is_refused(
    request_: Request, complaint: str
) -> None:
    filt = HTTPClient()
    with pytest.raises(ValueError, match=complaint):
        filt.put([request_])
    assert filt.outstanding == 0


def test_parameters_are_checked() -> None:
    with pytest.raises(ParameterError, match="MaxContent"):
        HTTPClient(MaxContent=0)
    with pytest.raises(ParameterError, match="unknown parameter 'Bogus'"):
        HTTPClient(Bogus=1)
    with pytest.raises(TypeError, match="a Request or bytes"):
        HTTPClient().put([42])


# -- bad input ------------------------------------------------------------------------------

TE = b"Transfer-Encoding: chunked\r\n\r\n"

BAD = [
    ("not HTTP", b"garbage\r\n\r\n", BadResponse),
    ("Content-Length and Transfer-Encoding", OK + b"Content-Length: 3\r\n" + TE, BadResponse),
    ("two Content-Lengths", OK + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", BadResponse),
    ("a negative Content-Length", OK + b"Content-Length: -1\r\n\r\n", BadResponse),
    ("bare LF", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", BadResponse),
    ("obs-fold", OK + b"X: a\r\n b\r\n" + CL0, BadResponse),
    ("HTTP/2.0", b"HTTP/2.0 200 OK\r\n\r\n", BadResponse),
    ("101", b"HTTP/1.1 101 Switching Protocols\r\n\r\n", BadResponse),
    ("a bad chunk size", OK + TE + b"zz\r\n", BadResponse),
    ("a chunk size that overflows", OK + TE + b"ffffffffffffffffff\r\n", BadResponse),
    ("closed inside the head", OK + b"Content-Le", IncompleteResponse),
    ("closed inside a length body", OK + b"Content-Length: 5\r\n\r\nab", IncompleteResponse),
    ("closed inside a chunked body", OK + TE + b"5\r\nab", IncompleteResponse),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "error"), BAD, ids=[b[0] for b in BAD])
def test_bad_responses_are_refused(name: str, data: bytes, error: type[FilterError]) -> None:
    for cuts in ([], list(range(1, len(data)))):
        with pytest.raises(error) as caught:
            feed(data, cuts, ["GET"])
        assert type(caught.value) is error


def test_limits_refuse_before_buffering() -> None:
    filt = HTTPClient(MaxHeaderSize=1024)
    filt.put([Request("GET", "http://h/")])
    filt.get([OK + b"X: " + b"a" * 900])
    with pytest.raises(RecordTooLong, match="MaxHeaderSize"):
        filt.get([b"a" * 200])  # refused at 1024 octets, not once the head ends
    assert filt.get_pending() is None
    assert filt.get([b"\r\n\r\nmore"]) == []  # nothing is read after a refusal

    many = OK + b"".join(b"X-%d: v\r\n" % i for i in range(5)) + b"\r\n"
    with pytest.raises(RecordTooLong, match="MaxFields"):
        HTTPClient(MaxFields=4).get([many])

    with pytest.raises(ContentTooLong, match="Content-Length 11 over MaxContent"):
        HTTPClient(MaxContent=10).get([OK + b"Content-Length: 11\r\n\r\n"])
    chunked = HTTPClient(MaxContent=10, Streaming=True)
    parts = chunked.get([OK + b"Transfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n"])
    assert [describe(p)[:2] for p in parts] == [("resp", 200), ("part", b"abcdef")]
    with pytest.raises(ContentTooLong, match="body over MaxContent"):
        chunked.get([b"6\r\nghijkl\r\n"])

    framing = HTTPClient(MaxHeaderSize=100)
    with pytest.raises(BadResponse, match="chunk framing"):
        framing.get([OK + b"Transfer-Encoding: chunked\r\n\r\n1;" + b"x" * 300])


def test_an_error_behind_a_response_waits_for_the_next_call() -> None:
    filt = HTTPClient()
    records = filt.get([OK + b"Content-Length: 1\r\n\r\na" + b"junk junk\r\n\r\n"])
    assert [r.body for r in records] == [b"a"]
    assert filt.deferred_error is not None
    with pytest.raises(BadResponse):
        filt.get([])

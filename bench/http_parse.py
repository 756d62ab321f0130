"""The HTTP parser choice, measured: httptools against h11, and the HTTPD filter on top.

Run: ``.venv/bin/python bench/http_parse.py [--repeats 5] [--requests 20000]``
(needs ``pip install h11``: h11 is measured, not used).

Issue 18 asks for a parser from the package index, not one written by hand, chosen by
measurement.  Every figure is requests parsed per second, the best of R, in this process;
every ratio compares two figures of this run:

* a typical GET (a browser's request line and 8 headers), one request per feed, one
  parser per connection kept across requests;
* a POST with a 1 KiB body (``Content-Length``);
* pipelined batches: 16 GETs in one buffer;
* byte at a time: one GET fed one octet per call (a slow client, or a hostile one).

h11 is a protocol state machine, not a parser: a connection will not parse the next
request before a response is sent.  A filter has no response to send, so each request
gets a fresh ``h11.Connection`` that takes the previous one's ``trailing_data`` -- what a
filter built on h11 would do.  The raw parsers only collect the target, the header pairs
and the body; the ``HTTPD`` rows build kernelish's ``Request`` objects with their limits
and smuggling checks, so the HTTPD / httptools ratio is the filter's own cost.

Then the bad-input table: each shape of issue 18's list fed to each raw parser (rejects,
accepts, or waits for more) and the status of the ``HTTPD`` filter's answer; and the cost
of importing each parser (RSS and memory mappings added to a process that imported
kernelish, in a fresh interpreter, the median of R).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import h11
import httptools
from _common import best_of, emit, table

GET = (
    b"GET /static/css/site.css?v=42 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/css,*/*;q=0.1\r\n"
    b"Accept-Language: en-GB,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Referer: https://www.example.com/\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=8f14e45fceea167a5a36dedd4bea2543\r\n"
    b"\r\n"
)
POST = (
    b"POST /api/items HTTP/1.1\r\n"
    b"Host: api.example.com\r\n"
    b"User-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 1024\r\n"
    b"\r\n" + b"x" * 1024
)
PIPELINED = 16


# -- the raw parsers --------------------------------------------------------------------


class _Collect:
    """httptools' protocol: what any server needs from a request, nothing more."""

    __slots__ = ("body", "done", "headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.done = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done += 1
        self.url = b""
        self.headers = []
        self.body = []


def httptools_run(feeds: list[bytes], expect: int) -> Callable[[], None]:
    def run() -> None:
        proto = _Collect()
        feed = httptools.HttpRequestParser(proto).feed_data
        for data in feeds:
            feed(data)
        assert proto.done == expect, (proto.done, expect)

    return run


def h11_run(feeds: list[bytes], expect: int) -> Callable[[], None]:
    server, need, request, data_ev, end = (
        h11.SERVER,
        h11.NEED_DATA,
        h11.Request,
        h11.Data,
        h11.EndOfMessage,
    )
    connection = h11.Connection

    def run() -> None:
        conn = connection(server)
        done = 0
        for data in feeds:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is need:
                    break
                kind = type(event)
                if kind is end:
                    done += 1
                    rest = conn.trailing_data[0]
                    conn = connection(server)
                    if rest:
                        conn.receive_data(rest)
                elif kind is request or kind is data_ev:
                    continue
        assert done == expect, (done, expect)

    return run


def httpd_run(feeds: list[bytes], expect: int) -> Callable[[], None] | None:
    try:
        from kernelish.filters import HTTPD
    except ImportError:  # an older tree: the raw parsers only
        return None

    def run() -> None:
        get = HTTPD().get
        done = 0
        for data in feeds:
            done += len(get((data,)))
        assert done == expect, (done, expect)

    return run


def workloads(count: int) -> list[tuple[str, list[bytes], int]]:
    batches = max(1, count // PIPELINED)
    byte_requests = max(1, count // 50)
    return [
        ("GET, 8 headers", [GET] * count, count),
        ("POST, 1 KiB body", [POST] * count, count),
        (f"pipelined, {PIPELINED} GETs a feed", [GET * PIPELINED] * batches, batches * PIPELINED),
        ("GET byte at a time", [GET[i : i + 1] for i in range(len(GET))] * byte_requests,
         byte_requests),
    ]  # fmt: skip


# -- bad input ----------------------------------------------------------------------------

_H = b"Host: a\r\n"
BAD: list[tuple[str, bytes]] = [
    ("Content-Length and Transfer-Encoding",
     b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n"),
    ("Content-Length twice, same value",
     b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
    ("Content-Length twice, two values",
     b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
    ("Content-Length: 3, 3",
     b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 3, 3\r\n\r\nabc"),
    ("Content-Length: +3", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: +3\r\n\r\nabc"),
    ("Transfer-Encoding: gzip",
     b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: gzip\r\n\r\nabc"),
    ("Transfer-Encoding: chunked, gzip",
     b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: gzip, chunked",
     b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding twice",
     b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding in HTTP/1.0",
     b"POST / HTTP/1.0\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("bare LF line endings", b"GET / HTTP/1.1\nHost: a\n\n"),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + _H + b"X-A: b\r\n c\r\n\r\n"),
    ("whitespace before the colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
    ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n"),
    ("two Host fields", b"GET / HTTP/1.1\r\n" + _H + b"Host: b\r\n\r\n"),
    ("control octet in the target", b"GET /a\x01b HTTP/1.1\r\n" + _H + b"\r\n"),
    ("invalid UTF-8 in the target", b"GET /a\xff\xfe HTTP/1.1\r\n" + _H + b"\r\n"),
    ("NUL in a field value", b"GET / HTTP/1.1\r\n" + _H + b"X-A: a\x00b\r\n\r\n"),
    ("request line of garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
    ("no HTTP version (0.9)", b"GET /\r\n\r\n"),
    ("HTTP/2.0 in the request line", b"GET / HTTP/2.0\r\n" + _H + b"\r\n"),
    ("truncated chunk, then end of input",
     b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab"),
    ("chunk size overflow",
     b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"FFFFFFFFFFFFFFFFF1\r\nab"),
    ("chunk data without its CRLF",
     b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n"),
    ("field line of 64 KiB", b"GET / HTTP/1.1\r\n" + _H + b"X-A: " + b"a" * 65536 + b"\r\n\r\n"),
    ("200 fields", b"GET / HTTP/1.1\r\n" + _H + b"X-A: b\r\n" * 200 + b"\r\n"),
    ("Content-Length of 1 TiB",
     b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 1099511627776\r\n\r\n"),
]  # fmt: skip


def httptools_verdict(data: bytes) -> str:
    proto = _Collect()
    try:
        httptools.HttpRequestParser(proto).feed_data(data)
    except httptools.HttpParserUpgrade:
        return "accepts (upgrade)"
    except httptools.HttpParserError as exc:
        return f"rejects: {exc}"
    return "accepts" if proto.done else "waits for more"


def h11_verdict(data: bytes) -> str:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return "waits for more"
            if type(event) is h11.EndOfMessage:
                return "accepts"
    except h11.RemoteProtocolError as exc:
        return f"rejects: {exc}"[:60]


def httpd_verdict(data: bytes) -> str:
    try:
        from kernelish.filters import HTTPD
        from kernelish.http import Response
    except ImportError:
        return "n/a"
    records = HTTPD().get((data,))
    if not records:
        return "waits for more"
    first = records[0]
    if isinstance(first, Response):
        return f"{first.status} {first.reason}"
    return "request"


# -- import cost --------------------------------------------------------------------------

_MEASURE = """
import os, json
def now():
    rss = 0
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            rss = int(line.split()[1])
    return rss, sum(1 for _ in open('/proc/self/maps'))
import kernelish, kernelish.filters, kernelish.wheels
before = now()
import {module}
after = now()
print(json.dumps([after[0] - before[0], after[1] - before[1]]))
"""


def import_cost(module: str, repeats: int) -> tuple[float, float]:
    """(RSS KiB, mappings) that importing ``module`` adds, median of ``repeats``."""
    rss, maps = [], []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", _MEASURE.format(module=module)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        kib, mappings = json.loads(out.stdout)
        rss.append(kib)
        maps.append(mappings)
    return statistics.median(rss), statistics.median(maps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    opts = parser.parse_args()

    def measure(name: str, run: Callable[[], None] | None, expect: int, **extra: Any) -> float:
        if run is None:
            return float("nan")
        run()  # warm up, and check the count

        def once() -> float:
            start = time.perf_counter()
            run()
            return expect / (time.perf_counter() - start)

        value = best_of(opts.repeats, once)
        emit(name, value, "req/s", group="http_parse", **extra)
        return value

    for label, feeds, expect in workloads(opts.requests):
        fast = measure(f"httptools: {label}", httptools_run(feeds, expect), expect)
        slow = measure(f"h11: {label}", h11_run(feeds, expect), expect, baseline=True)
        ours = measure(f"HTTPD filter: {label}", httpd_run(feeds, expect), expect)
        emit(f"httptools / h11: {label}", fast / slow, "x", group="http_parse")
        if ours == ours:
            emit(f"HTTPD / httptools: {label}", ours / fast, "x", group="http_parse")

    for module in ("httptools", "h11"):
        kib, maps = import_cost(module, opts.repeats)
        emit(f"import {module}: RSS added", kib, "KiB", group="http_parse")
        emit(f"import {module}: mappings added", maps, "mappings", group="http_parse")
    table(f"HTTP parsing, {opts.requests:,} requests, best of {opts.repeats}")

    print("Bad input: each raw parser, and the HTTPD filter's answer")
    print("| input | httptools | h11 | HTTPD |")
    print("|---|---|---|---|")
    for label, data in BAD:
        row = (httptools_verdict(data), h11_verdict(data), httpd_verdict(data))
        print(f"| {label} | {' | '.join(row)} |")
        record = {"bad_input": label, "httptools": row[0], "h11": row[1], "httpd": row[2]}
        print(json.dumps(record))


if __name__ == "__main__":
    main()

"""The request reader behind HTTPD: httptools (llhttp) fed under limits.

Discussion
----------
The parsing is llhttp's (Node's HTTP parser, through httptools): a C state machine that
refuses the request-smuggling shapes RFC 9112 lets a server refuse -- ``Content-Length``
with ``Transfer-Encoding``, a repeated or comma-listed ``Content-Length``, a
``Transfer-Encoding`` whose last coding is not ``chunked``, bare LF, obs-fold, whitespace
before a colon, control octets, an overflowing chunk size.  ``bench/http_parse.py`` has the
table, and the measurements that chose it over h11.  What this module adds is what llhttp
leaves to its caller:

* **Limits before memory.**  httptools hands a field over only once the next one starts, and
  keeps the partial one in a ``bytes`` it extends with each feed: a field that never ends
  would grow without bound.  So the reader never feeds the parser past a head's end before
  it knows the head fits.  In the head, it looks for the blank line itself (one
  ``bytes.find``; llhttp in strict mode accepts no other end of head) and refuses the head
  with 431 as soon as it would pass ``MaxHeaderSize``; then it feeds exactly the head.  A
  ``Content-Length`` body is fed exactly its length.  The parser therefore stops at each
  message's end and the next head is measured from its first octet -- except behind a
  chunked body, whose end only the parser finds: a head that starts in the same read as the
  end of a chunked body is measured from the next read, so it may take up to one read
  (64 KiB with ReadWrite's driver) more than ``MaxHeaderSize`` before it is refused.  The
  target (414), one field line and the field count (431) are checked in the callbacks;
  ``MaxContent`` (413) before the body is read when ``Content-Length`` gives it, and as the
  chunks come otherwise.
* **What RFC 9112 asks beyond the grammar**: exactly one ``Host`` in HTTP/1.1 (400), no
  ``Transfer-Encoding`` in HTTP/1.0 (400), a last coding other than ``chunked`` (400),
  another coding before it (501: none is implemented), a method
  llhttp does not know in a well-formed request line (501, where llhttp says only "invalid
  method"), a version other than 1.x (505).
* **Where to stop.**  After an error, or after a request that ends the connection (HTTP/1.0
  without keep-alive, ``Connection: close``), nothing more is parsed: the server answers
  and closes (RFC 9112 9.6, 11.2), so what follows is discarded as it comes, never buffered.
  After an upgrade (``Upgrade`` + ``Connection: upgrade``, or CONNECT) llhttp stops at the
  octet where the new protocol starts; that octet is where the caller's ``get_pending``
  starts, so a server that switches filters hands the new one exactly the rest.  A server
  that declines the upgrade just goes on reading HTTP.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from kernelish.http import Headers, Request, Response

__all__ = ["Limits", "RequestReader"]

HEAD, BODY, CHUNKED, RAW_BODY, BAD_METHOD, STOPPED = range(6)

_httptools: Any = None

# A request line of the right shape (RFC 9112 3), to tell an unknown method (501) from
# garbage (400) when llhttp refuses the method.
_REQUEST_LINE = re.compile(rb"(?:\r\n)*[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e]+ HTTP/1\.[01]\r\n")


def _parser_module() -> Any:
    """httptools, imported the first time an HTTPD filter is built (never by ``import``)."""
    global _httptools
    if _httptools is None:
        import httptools

        _httptools = httptools
    return _httptools


@dataclass(frozen=True, slots=True)
class Limits:
    """The reader's bounds, in octets except ``max_fields``."""

    max_request_line: int
    max_field_size: int
    max_fields: int
    max_header_size: int
    max_content: int
    streaming: bool


class _Refusal(Exception):
    """Raised in a parser callback: the request is refused with ``status``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class RequestReader:
    """Feeds octets to one httptools parser per connection; appends records to ``out``.

    The callbacks (``on_url`` ...) are httptools' protocol and not for anyone else.
    """

    __slots__ = (
        "_body",
        "_body_len",
        "_chunked",
        "_chunks",
        "_fields",
        "_head_len",
        "_head_raw",
        "_head_tail",
        "_in_message",
        "_length",
        "_limits",
        "_out",
        "_overhead",
        "_parser",
        "_remaining",
        "_request",
        "_trailers",
        "_url",
        "head_exact",
        "last_request",
        "state",
    )

    def __init__(self, limits: Limits, out: deque[Any]) -> None:
        self._limits = limits
        self._out = out
        self._parser = _parser_module().HttpRequestParser(self)
        self.state = HEAD
        self.last_request: Request | None = None
        # The current head's octets fed so far (for get_pending), their count, and the last
        # three (a blank line may straddle two reads).
        self._head_raw: list[bytes] = []
        self._head_len = 0
        self._head_tail = b""
        #: False when a head began inside a chunked body's last read (see the Discussion).
        self.head_exact = True
        self._in_message = False
        self._remaining = 0
        self._reset_message()

    def _reset_message(self) -> None:
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._trailers: list[tuple[bytes, bytes]] | None = None
        self._body: list[bytes] = []
        self._body_len = 0
        self._request: Request | None = None
        self._length = 0
        self._chunked = False
        self._chunks = 0
        self._overhead = 0

    # -- what the filter calls --------------------------------------------------------------

    def pending_head(self) -> bytes:
        """The octets of a head not yet complete (what ``get_pending`` starts with)."""
        return b"".join(self._head_raw) if self.state == HEAD and self.head_exact else b""

    def step(self, buf: bytes, pos: int) -> int:
        """Parse from ``buf[pos:]`` up to the next natural stop; return the new position."""
        state = self.state
        size = len(buf)
        if state == HEAD:
            return self._step_head(buf, pos, size)
        if state == BODY:
            stop = pos + min(self._remaining, size - pos)
            self._remaining -= stop - pos
            return pos + self._feed(buf[pos:stop] if pos or stop < size else buf)
        if state == CHUNKED:
            return self._step_chunked(buf, pos)
        if state == RAW_BODY:
            stop = pos + min(self._remaining, size - pos)
            self._remaining -= stop - pos
            try:
                self.on_body(buf[pos:stop])
            except _Refusal as refusal:
                self._refuse(refusal.status, refusal.detail)
                return size
            if not self._remaining:
                self._finish_message()
                self._next_state()
            return stop
        if state == BAD_METHOD:
            self._head_raw.append(buf[pos:] if pos else buf)
            self._judge_method()
        return size  # STOPPED: discarded

    def _step_chunked(self, buf: bytes, pos: int) -> int:
        """Feed a chunked body.  Its framing and trailer section are not data: llhttp keeps
        a trailer field it has not finished in memory, so what is not data is bounded, at
        MaxHeaderSize plus 64 octets a chunk (a size line, an extension, two CRLFs)."""
        request, body_before = self._request, self._body_len
        piece = buf[pos:] if pos else buf
        used = self._feed(piece)
        if self.state == CHUNKED and self._request is request:
            self._overhead += used - (self._body_len - body_before)
            allowed = self._limits.max_header_size + 64 * self._chunks
            if self._overhead > allowed:
                self._refuse(431, f"chunk framing and trailers over {allowed} octets")
        return pos + used

    def _step_head(self, buf: bytes, pos: int, size: int) -> int:
        end = buf.find(b"\r\n\r\n", pos)
        complete = end >= 0
        stop = end + 4 if complete else size
        if not complete and self._head_len:
            # A blank line straddling the last read and this one.
            at = (self._head_tail + buf[pos : pos + 3]).find(b"\r\n\r\n")
            if at >= 0:
                complete = True
                stop = pos + at + 4 - len(self._head_tail)
        take = stop - pos
        limit = self._limits.max_header_size
        if self._head_len + take > limit:
            self._refuse(431, f"header section over MaxHeaderSize ({limit} octets)")
            return size
        piece = buf[pos:stop] if pos or stop < size else buf
        if complete:
            self._head_raw, self._head_len, self._head_tail = [], 0, b""
        else:
            # Kept for get_pending, and for a blank line straddling the next read.
            self._head_raw.append(piece)
            self._head_len += take
            self._head_tail = (self._head_tail + piece)[-3:]
        return pos + self._feed(piece)

    # -- feeding -----------------------------------------------------------------------------

    def _feed(self, piece: bytes) -> int:
        """Feed ``piece``; return how many of its octets were used (fewer at an upgrade)."""
        parser_module = _httptools
        try:
            self._parser.feed_data(piece)
        except parser_module.HttpParserUpgrade as exc:
            used = int(exc.args[0])
            self._upgraded()
            return used
        except parser_module.HttpParserError as exc:
            self._parser_failed(exc, piece)
            return len(piece)
        self._next_state()
        return len(piece)

    def _next_state(self) -> None:
        if self.state == STOPPED:
            return
        if not self._in_message or self._request is None:
            self.state = HEAD
        elif self._chunked:
            self.state = CHUNKED
        else:
            self.state = BODY
            self._remaining = self._length - self._body_len

    def _upgraded(self) -> None:
        """llhttp stopped where the new protocol starts; the request is complete, unless it
        announced a body, which llhttp skips on an upgrade and the reader takes itself."""
        self._parser = _httptools.HttpRequestParser(self)
        self._head_raw, self._head_len, self._head_tail = [], 0, b""
        request = self._request
        if self.state == STOPPED or request is None:
            return
        if self._chunked:
            self._refuse(501, "an upgrade request with a chunked body")
            return
        self._remaining = self._length
        if self._remaining:
            self.state = RAW_BODY
        else:
            self._finish_message()
            self.state = HEAD

    def _parser_failed(self, exc: Exception, piece: bytes) -> None:
        if self.state == STOPPED:
            return  # a limit already refused it (a callback raised)
        cause = exc.__context__
        if isinstance(cause, _Refusal):
            self._refuse(cause.status, cause.detail)
            return
        detail = str(exc) or type(exc).__name__
        status = 400
        if isinstance(exc, _httptools.HttpParserInvalidMethodError):
            # An unknown method (501) or garbage (400)?  The whole request line tells.
            if not self._head_raw or self._head_raw[-1] is not piece:
                self._head_raw.append(piece)
            self.state = BAD_METHOD
            self._judge_method()
            return
        if detail == "Invalid HTTP version":
            status = 505
        self._refuse(status, detail)

    def _judge_method(self) -> None:
        """Answer a request line llhttp refused for its method once the line is complete
        (or longer than any request line may be)."""
        head = b"".join(self._head_raw)
        end = head.find(b"\n")
        if end < 0 and len(head) <= self._limits.max_request_line + 64:
            return  # wait for the rest of the line
        line = head[: end + 1] if end >= 0 else head
        if _REQUEST_LINE.match(line):
            self._refuse(501, f"method {line.split(b' ', 1)[0][:40]!r} not implemented")
        else:
            self._refuse(400, "a request line of garbage")

    def _refuse(self, status: int, detail: str) -> None:
        self._out.append(Response.error(status, detail, self._request))
        self.state = STOPPED
        self._head_raw, self._head_len, self._head_tail = [], 0, b""

    # -- httptools' protocol -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._reset_message()
        if self.state == CHUNKED:
            self.head_exact = False  # this head started inside a chunked body's last read

    def on_url(self, url: bytes) -> None:
        self._url += url
        limit = self._limits.max_request_line
        if len(self._url) > limit:
            raise _Refusal(414, f"request-target over MaxRequestLine ({limit} octets)")

    def on_header(self, name: bytes, value: bytes) -> None:
        # The head's fields are bounded by MaxHeaderSize and checked once it is complete;
        # a trailer section is not, and is checked field by field.
        self._fields.append((name, value))
        if self._trailers is not None:
            self._check_fields(self._fields)

    def _check_fields(self, fields: list[tuple[bytes, bytes]]) -> None:
        limits = self._limits
        if len(fields) > limits.max_fields:
            raise _Refusal(431, f"more than MaxFields ({limits.max_fields}) fields")
        longest = max(len(n) + len(v) for n, v in fields) if fields else 0
        if longest > limits.max_field_size:
            raise _Refusal(431, f"a field line over MaxFieldSize ({limits.max_field_size} octets)")

    def on_headers_complete(self) -> None:
        parser = self._parser
        fields = self._fields
        self.head_exact = True
        self._check_fields(fields)
        headers = Headers.adopt([(n.decode("latin-1"), v.decode("latin-1")) for n, v in fields])
        request = Request(
            parser.get_method().decode("latin-1"),
            self._url.decode("latin-1"),
            parser.get_http_version(),
            headers,
        )
        self._request = request
        names = [n.lower() for n, _ in fields]
        # llhttp let through at most one Content-Length, of digits only.
        self._length = (
            int(fields[names.index(b"content-length")][1]) if b"content-length" in names else 0
        )
        self._chunked = b"transfer-encoding" in names
        # Fields from now on are the trailer section of a chunked body.
        self._fields = self._trailers = []
        self._check(request, fields, names)
        limits = self._limits
        if limits.streaming:
            request.body_follows = self._chunked or self._length > 0
            self._out.append(request)
        elif self._length > limits.max_content:
            raise _Refusal(
                413, f"Content-Length {self._length} over MaxContent ({limits.max_content} octets)"
            )

    def _check(
        self, request: Request, fields: list[tuple[bytes, bytes]], names: list[bytes]
    ) -> None:
        """RFC 9112's rules that llhttp leaves to its caller."""
        version = request.version
        if version != "1.1" and version != "1.0":
            if version == "0.9":
                raise _Refusal(400, "no HTTP version in the request line (HTTP/0.9)")
            raise _Refusal(505, f"HTTP/{version} is not supported")
        hosts = names.count(b"host")
        if hosts != 1 and (hosts or version == "1.1"):
            raise _Refusal(400, f"{hosts} Host fields (RFC 9112 3.2: exactly one)")
        if self._chunked:
            if version == "1.0":
                raise _Refusal(400, "Transfer-Encoding in an HTTP/1.0 request")
            value = fields[names.index(b"transfer-encoding")][1].lower().split(b",")
            codings = [coding.strip() for coding in value]
            if codings[-1] != b"chunked":
                # RFC 9112 6.3: the body's length cannot be known.
                raise _Refusal(400, "Transfer-Encoding whose last coding is not chunked")
            if len(codings) > 1:
                raise _Refusal(501, "a transfer coding other than chunked")
        request.upgrade = self._parser.should_upgrade()

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._limits.streaming:
            self._out.append(body)
            return
        if self._body_len > self._limits.max_content:
            raise _Refusal(413, f"body over MaxContent ({self._limits.max_content} octets)")
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = self._request
        if request is None:
            return
        if request.upgrade and self._length:
            return  # llhttp skipped the body: it follows raw (see _upgraded)
        self._finish_message()

    def _finish_message(self) -> None:
        request = self._request
        assert request is not None
        self._in_message = False
        if self._trailers:
            request.trailers = Headers.adopt(
                [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._trailers]
            )
        if self._limits.streaming:
            if request.body_follows:
                self._out.append(b"")
        else:
            body = self._body
            request.body = body[0] if len(body) == 1 else b"".join(body)
            self._out.append(request)
        self.last_request = request
        keep = self._parser.should_keep_alive()
        self._reset_message()
        if not keep and not request.upgrade:
            self.state = STOPPED  # the connection ends with this request's answer

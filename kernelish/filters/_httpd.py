"""HTTP server filter (POE::Filter::HTTPD): requests in, responses out."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self

from kernelish._params import parse_params
from kernelish.filters._base import Filter, RecordTooLong
from kernelish.filters._httpd_reader import STOPPED, Limits, RequestReader
from kernelish.http import Request, Response

if TYPE_CHECKING:
    from kernelish.filters._httpd_params import HTTPDParams

__all__ = ["HTTPD"]

# Output states: what a bytes record is while a streamed body is open.
_OUT_PLAIN = 0  # no body open: bytes pass through (POE's idiom of switching to Stream)
_OUT_RAW = 1  # a body with Content-Length, or ended by the close: parts as they are
_OUT_CHUNKED = 2  # parts chunk-encoded; b"" is the last chunk
_OUT_DROP = 3  # a HEAD response's streamed body: parts are dropped

# Bodies up to this size go out in one chunk with their head (one send); bigger ones as
# a second chunk, not copied.
_JOIN = 64 * 1024


class HTTPD(Filter[Request | Response | bytes]):
    """Parse HTTP/1.x requests into :class:`~kernelish.http.Request` records; serialize
    :class:`~kernelish.http.Response` records.

    Port of POE::Filter::HTTPD, parsing with llhttp (httptools).  Input records:

    * a :class:`~kernelish.http.Request` for each request, body included;
    * for a request that cannot be served, a :class:`~kernelish.http.Response` -- the
      answer to send (400, 413, 414, 431, 501, 505), with ``close`` set and
      ``response.request`` the request if its head was read, POE's convention.  After it
      the filter reads nothing more (it discards further input): send it, then close;
    * with ``Streaming=True``: the Request as soon as its head is complete (``body`` empty,
      ``body_follows`` set if a body comes), then the body as ``bytes`` records as they
      arrive, then ``b""`` at its end (POE has no end marker; an empty record is harmless
      to code written for POE, and ends a chunked body, whose length nobody knew).

    Output records: a Response (prepared with :meth:`Response.prepare` against the last
    request read unless you prepared it): its head and ``bytes`` body; or, for a streamed
    body (an iterable ``body``), the head only -- the parts follow as ``bytes`` records,
    chunk-encoded when the framing is chunked, and ``b""`` ends the body.  Between
    responses, ``bytes`` records pass through unchanged (POE's idiom of switching the
    output to a Stream filter also works).

    Parameters (POE's CamelCase, or snake_case), each limit answered with its status:
    ``MaxContent`` (POE, 1 MiB: a body over it, 413; ignored with ``Streaming``, as in
    POE), ``MaxBuffer`` (POE; 64 MiB here, 512 MiB in POE: unparsed octets held, over it
    :class:`~kernelish.filters.RecordTooLong`), ``Streaming`` (POE), ``MaxRequestLine``
    (8190: the request-target, 414), ``MaxFieldSize`` (8190: one field line, 431),
    ``MaxFields`` (100, 431), ``MaxHeaderSize`` (64 KiB: the whole head, 431), ``Server``
    (a ``Server`` field for responses it prepares).  gunicorn's defaults, for the first
    three new ones.
    """

    __slots__ = ("_buf", "_last", "_limits", "_out", "_params", "_pos", "_reader", "_ready")

    def __init__(self, **params: Any) -> None:
        from kernelish.filters._httpd_params import HTTPDParams  # pydantic: on first use

        self._configure(parse_params(HTTPDParams, "HTTPD", params))

    def _configure(self, params: HTTPDParams) -> None:
        self._params = params
        self._limits = Limits(
            max_request_line=params.max_request_line,
            max_field_size=params.max_field_size,
            max_fields=params.max_fields,
            max_header_size=params.max_header_size,
            max_content=params.max_content,
            streaming=params.streaming,
        )
        self._ready: deque[Any] = deque()
        self._reader = RequestReader(self._limits, self._ready)
        self._buf = b""
        self._pos = 0
        self._out = _OUT_PLAIN

    # -- input -------------------------------------------------------------------------------

    def get_one_start(self, chunks: Iterable[bytes]) -> None:
        """Buffer ``chunks`` (POE::Filter::HTTPD::get_one_start); discarded once the filter
        has stopped reading (after an error, or a request that ends the connection)."""
        if self._reader.state == STOPPED:
            self._buf, self._pos = b"", 0
            return
        data = b"".join(chunks)
        if not data:
            return
        if self._pos < len(self._buf):
            data = self._buf[self._pos :] + data
        limit = self._params.max_buffer
        if len(data) > limit:
            self._buf, self._pos = b"", 0
            raise RecordTooLong(f"HTTPD: buffer over MaxBuffer ({len(data)} > {limit} octets)")
        self._buf, self._pos = data, 0

    def get_one(self) -> list[Request | Response | bytes]:
        """Return ``[record]`` for the next record, or ``[]`` (POE::Filter::HTTPD::get_one)."""
        ready = self._ready
        if not ready:
            buf, step = self._buf, self._reader.step
            pos, size = self._pos, len(buf)
            while not ready and pos < size:
                pos = step(buf, pos)
            self._pos = pos
            if pos >= size:
                self._buf, self._pos = b"", 0
            if not ready:
                return []
        return [ready.popleft()]

    def get(self, chunks: Iterable[bytes]) -> list[Request | Response | bytes]:
        """Parse ``chunks`` and return every record (POE::Filter::HTTPD::get)."""
        self.get_one_start(chunks)
        buf, step = self._buf, self._reader.step
        pos, size = self._pos, len(buf)
        while pos < size:
            pos = step(buf, pos)
        self._buf, self._pos = b"", 0
        records = list(self._ready)
        self._ready.clear()
        return records

    def get_pending(self) -> list[bytes] | None:
        """The octets received and not yet part of a record: a head still incomplete and
        what follows, e.g. the first octets of the new protocol after an upgrade request
        (POE::Filter::HTTPD::get_pending).  A body being read is the request's, not
        pending; nothing is pending once the filter stopped reading."""
        if self._reader.state == STOPPED:
            return None
        data = self._reader.pending_head() + self._buf[self._pos :]
        return [data] if data else None

    # -- output ------------------------------------------------------------------------------

    def put(self, records: Iterable[Any]) -> list[bytes]:
        """Serialize responses and body parts (POE::Filter::HTTPD::put); see the class notes.

        Raises ``ValueError`` for a response whose fields would break the message (CR, LF
        or NUL in a value, a name that is not a token) and for a new response while a
        streamed body is still open; ``TypeError`` for a record that is neither a Response
        nor octets.
        """
        out: list[bytes] = []
        for record in records:
            if isinstance(record, Response):
                self._put_response(record, out)
            elif isinstance(record, bytes | bytearray | memoryview | str):
                data = record.encode() if isinstance(record, str) else bytes(record)
                state = self._out
                if state == _OUT_CHUNKED:
                    if data:
                        out.append(b"%x\r\n%s\r\n" % (len(data), data))
                    else:
                        out.append(b"0\r\n\r\n")
                elif data and state != _OUT_DROP:
                    out.append(data)
                if not data:
                    self._out = _OUT_PLAIN
            else:
                raise TypeError(f"HTTPD: cannot put a {type(record).__name__}: a Response or bytes")
        return out

    def _put_response(self, response: Response, out: list[bytes]) -> None:
        if self._out != _OUT_PLAIN and response.status >= 200:
            raise ValueError("HTTPD: a Response put while the last one's body is still open")
        if not response.prepared:
            request = response.request or self._reader.last_request
            response.prepare(request, server=self._params.server)
        head = response.head_bytes()
        if response.status < 200:
            out.append(head)
        elif not response.send_body:
            out.append(head)
            if response.streaming:
                self._out = _OUT_DROP
        elif response.streaming:
            out.append(head)
            chunked = "chunked" in response.headers.tokens("Transfer-Encoding")
            self._out = _OUT_CHUNKED if chunked else _OUT_RAW
        else:
            body = bytes(response.body)  # type: ignore[arg-type]
            if len(body) <= _JOIN:
                out.append(head + body)
            else:
                out += (head, body)

    def clone(self) -> Self:
        """A filter with the same parameters and nothing buffered (POE::Filter::clone)."""
        twin = type(self).__new__(type(self))
        twin._configure(self._params)
        return twin

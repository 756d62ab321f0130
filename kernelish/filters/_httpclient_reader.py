"""The response reader behind HTTPClient: httptools (llhttp) fed under limits.

Discussion
----------
A response's framing depends on the request it answers (a response to HEAD has no body,
whatever its ``Content-Length`` says), and llhttp's response parser cannot be told the
request's method.  So llhttp parses what only a real parser should -- the status line, the
fields, chunked framing -- and the reader decides the framing itself (RFC 9112 6.3):

* **The head** is collected until its blank line (one ``bytes.find``; a blank line split
  across two reads is found too) and refused once it would pass ``MaxHeaderSize``, so no
  field that never ends is ever held; then it is fed whole to a fresh parser (a parser
  costs about 0.2 microseconds).  llhttp refuses a repeated or malformed
  ``Content-Length``, one beside ``Transfer-Encoding``, bare LF, obs-fold and control
  octets: a response that a proxy and a client could frame differently never reaches the
  caller.  Interim (1xx) responses are read and dropped; ``101`` is refused (the reader
  cannot change protocols).
* **No body** for a response to HEAD and for 204 and 304.  **Chunked** (the last transfer
  coding): the same parser decodes it, fed up to each ``CRLF CRLF`` -- the only place a
  chunked body can end -- so it stops exactly at the end of the message and what follows
  (a pipelined response, or unsolicited octets) is left for the next head.  Its framing
  and trailer section are bounded (``MaxHeaderSize`` plus 64 octets a chunk), the trailer
  fields are merged into the response's, as POE's HTTPChunk filter does, and ``chunked``
  is taken off ``Transfer-Encoding``.  **Content-Length**: the reader counts the octets
  itself.  **Otherwise** the body ends with the connection (HTTP/1.0 without a length, or
  a transfer coding other than chunked last): :meth:`ResponseReader.finish` at end of file
  completes it.
* **MaxContent** bounds the body: a ``Content-Length`` over it is refused before the body
  is read, any other body as soon as it passes it.
* Whether the connection may carry another request (RFC 9112 9.3) is decided once, from
  the head: ``response.close`` is set for ``Connection: close``, an HTTP/1.0 response
  without ``keep-alive``, a body that ends with the connection, or a request that asked to
  close.
"""

from __future__ import annotations

import errno as _errno
from collections import deque
from dataclasses import dataclass
from typing import Any

from kernelish.filters._base import FilterError, RecordTooLong
from kernelish.http import Headers, Request, Response

__all__ = [
    "BadResponse",
    "ContentTooLong",
    "IncompleteResponse",
    "ResponseLimits",
    "ResponseReader",
]

HEAD, BODY, CHUNKED, UNTIL_CLOSE, FAILED = range(5)

_httptools: Any = None


def _parser_module() -> Any:
    """httptools, imported the first time an HTTPClient filter is built."""
    global _httptools
    if _httptools is None:
        import httptools

        _httptools = httptools
    return _httptools


class BadResponse(FilterError):
    """The server's octets are not an HTTP/1.x response (``errno`` EPROTO)."""

    errno = _errno.EPROTO


class IncompleteResponse(BadResponse):
    """The connection ended inside a response."""


class ContentTooLong(RecordTooLong):
    """A response's body is longer than the filter's ``MaxContent`` (``errno`` EFBIG)."""

    errno = _errno.EFBIG


@dataclass(frozen=True, slots=True)
class ResponseLimits:
    """The reader's bounds, in octets except ``max_fields``."""

    max_header_size: int
    max_fields: int
    max_content: int | None
    streaming: bool


class ResponseReader:
    """Reads responses from one connection; appends records to ``out``.

    ``requests`` holds the requests sent and not yet answered, oldest first, each with
    whether it asked to close the connection (the filter's ``put`` appends to it); a
    response with no request known is read as one to ``GET``.
    The callbacks (``on_status`` ...) are httptools' protocol and not for anyone else.
    """

    __slots__ = (
        "_body",
        "_body_len",
        "_chunks",
        "_done",
        "_fields",
        "_head",
        "_head_len",
        "_head_tail",
        "_limits",
        "_out",
        "_overhead",
        "_parser",
        "_reason",
        "_remaining",
        "_requests",
        "_response",
        "_tail",
        "_trailers",
        "state",
    )

    def __init__(
        self, limits: ResponseLimits, out: deque[Any], requests: deque[tuple[Request, bool]]
    ) -> None:
        self._limits = limits
        self._out = out
        self._requests = requests
        self.state = HEAD
        self._head: list[bytes] = []
        self._head_len = 0
        self._head_tail = b""
        self._parser: Any = None
        self._response: Response | None = None
        self._reset_message()
        _parser_module()

    def _reset_message(self) -> None:
        self._fields: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._trailers = False
        self._body: list[bytes] = []
        self._body_len = 0
        self._remaining = 0
        self._chunks = 0
        self._overhead = 0
        self._tail = b""
        self._done = False

    @property
    def idle(self) -> bool:
        """No response begun: nothing of one read, none being read."""
        return self.state == HEAD and not self._head_len

    def pending_head(self) -> bytes:
        """The octets of a head not yet complete."""
        return b"".join(self._head) if self.state == HEAD else b""

    # -- feeding ------------------------------------------------------------------------------

    def step(self, buf: bytes, pos: int) -> int:
        """Read from ``buf[pos:]`` up to the next natural stop; return the new position.
        Raises a :class:`~kernelish.filters.FilterError` for a response it refuses."""
        state = self.state
        if state == BODY:
            size = len(buf)
            stop = pos + min(self._remaining, size - pos)
            self._remaining -= stop - pos
            self._add_body(buf[pos:stop] if pos or stop < size else buf)
            if not self._remaining:
                self._complete()
            return stop
        if state == HEAD:
            return self._step_head(buf, pos)
        if state == CHUNKED:
            return self._step_chunked(buf, pos)
        if state == UNTIL_CLOSE:
            self._add_body(buf[pos:] if pos else buf)
            return len(buf)
        raise BadResponse("HTTPClient: input after a refused response")

    def finish(self) -> None:
        """The connection ended: complete a body that ends with it, or refuse what is
        incomplete (:class:`IncompleteResponse`).  Nothing happens between responses."""
        state = self.state
        if state == UNTIL_CLOSE:
            self._complete()
        elif state == HEAD and self._head_len:
            self._fail(IncompleteResponse("the connection closed inside a response head"))
        elif state == BODY:
            got = self._body_len
            self._fail(
                IncompleteResponse(
                    f"the connection closed after {got} of the "
                    f"{got + self._remaining} octets of Content-Length"
                )
            )
        elif state == CHUNKED:
            self._fail(IncompleteResponse("the connection closed inside a chunked body"))

    def _fail(self, error: FilterError) -> None:
        self.state = FAILED
        self._head, self._head_len = [], 0
        self._parser = None
        raise error

    # -- the head -----------------------------------------------------------------------------

    def _step_head(self, buf: bytes, pos: int) -> int:
        size = len(buf)
        if not self._head_len:
            while buf.startswith(b"\r\n", pos):  # blank lines between messages
                pos += 2
            if pos >= size:
                return size
        end = buf.find(b"\r\n\r\n", pos)
        complete = end >= 0
        stop = end + 4 if complete else size
        if self._head_len:
            # A blank line straddling the last read and this one.
            at = (self._head_tail + buf[pos : pos + 3]).find(b"\r\n\r\n")
            if at >= 0:
                complete = True
                stop = pos + at + 4 - len(self._head_tail)
        limit = self._limits.max_header_size
        if self._head_len + stop - pos > limit:
            self._fail(RecordTooLong(f"HTTPClient: response head over MaxHeaderSize ({limit})"))
        piece = buf[pos:stop] if pos or stop < size else buf
        if not complete:
            if b"\n\n" in self._head_tail + piece:
                # RFC 9112 2.2 lets a recipient take a bare LF for CRLF; llhttp does not.
                self._fail(BadResponse("HTTPClient: a response head ended with bare LFs"))
            self._head.append(piece)
            self._head_len += stop - pos
            self._head_tail = (self._head_tail + piece)[-3:]
            return stop
        if self._head:
            self._head.append(piece)
            piece = b"".join(self._head)
            self._head, self._head_len, self._head_tail = [], 0, b""
        self._read_head(piece)
        return stop

    def _read_head(self, head: bytes) -> None:
        httptools = _httptools
        parser = httptools.HttpResponseParser(self)
        self._reset_message()
        try:
            parser.feed_data(head)
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"HTTPClient: malformed response head: {exc}"))
        status = parser.get_status_code()
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            self._fail(BadResponse(f"HTTPClient: an HTTP/{version} response"))
        fields = self._fields
        if len(fields) > self._limits.max_fields:
            limit = self._limits.max_fields
            self._fail(RecordTooLong(f"HTTPClient: more than MaxFields ({limit}) fields"))
        if status < 200:
            if status == 101:
                self._fail(BadResponse("HTTPClient: 101 Switching Protocols (no upgrades)"))
            return  # an interim response: the final one follows
        requests = self._requests
        request, asked_close = requests[0] if requests else (None, False)
        headers = Headers.adopt([(n.decode("latin-1"), v.decode("latin-1")) for n, v in fields])
        response = Response(status, self._reason.decode("latin-1"), headers, b"", version=version)
        response.request = request
        self._response = response
        names = [n.lower() for n, _ in fields]
        close = asked_close or self._closes(response, names)
        if (request is not None and request.method == "HEAD") or status in (204, 304):
            response.close = close
            self._begin_body(response)
            self._complete()
            return
        if b"transfer-encoding" in names:
            codings = headers.tokens("Transfer-Encoding")
            if codings and codings[-1] == "chunked":
                del headers["Transfer-Encoding"]
                if len(codings) > 1:
                    headers["Transfer-Encoding"] = ", ".join(codings[:-1])
                self._parser = parser  # it reads the chunked body on
                self.state = CHUNKED
            else:
                close = True  # RFC 9112 6.3: the body ends with the connection
                self.state = UNTIL_CLOSE
        elif b"content-length" in names:
            # llhttp let through exactly one Content-Length, of digits only.
            length = int(fields[names.index(b"content-length")][1])
            most = self._limits.max_content
            if most is not None and length > most:
                self._fail(
                    ContentTooLong(f"HTTPClient: Content-Length {length} over MaxContent ({most})")
                )
            self._remaining = length
            self.state = BODY
        else:
            close = True
            self.state = UNTIL_CLOSE
        response.close = close
        self._begin_body(response)
        if self.state == BODY and not self._remaining:
            self._complete()

    @staticmethod
    def _closes(response: Response, names: list[bytes]) -> bool:
        """Whether the response ends the connection (RFC 9112 9.3)."""
        tokens = response.headers.tokens("Connection") if b"connection" in names else []
        if "close" in tokens:
            return True
        return response.version == "1.0" and "keep-alive" not in tokens

    def _begin_body(self, response: Response) -> None:
        if self._limits.streaming:
            self._out.append(response)

    # -- the body -----------------------------------------------------------------------------

    def _step_chunked(self, buf: bytes, pos: int) -> int:
        """Feed a chunked body up to the next CRLF CRLF, where alone it can end."""
        size = len(buf)
        end = buf.find(b"\r\n\r\n", pos)
        stop = end + 4 if end >= 0 else size
        tail = self._tail
        if tail:
            at = (tail + buf[pos : pos + 3]).find(b"\r\n\r\n")
            if at >= 0:
                stop = pos + at + 4 - len(tail)
        piece = buf[pos:stop] if pos or stop < size else buf
        body_before = self._body_len
        httptools = _httptools
        try:
            self._parser.feed_data(piece)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, FilterError):
                self._fail(cause)
            raise
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"HTTPClient: malformed chunked body: {exc}"))
        if self._done:
            self._complete()
            return stop
        self._tail = (tail + piece)[-3:]
        self._overhead += len(piece) - (self._body_len - body_before)
        allowed = self._limits.max_header_size + 64 * self._chunks
        if self._overhead > allowed:
            self._fail(BadResponse(f"HTTPClient: chunk framing and trailers over {allowed}"))
        return stop

    def _add_body(self, data: bytes) -> None:
        if not data:
            return
        self._body_len += len(data)
        limit = self._limits.max_content
        if limit is not None and self._body_len > limit:
            self._fail(ContentTooLong(f"HTTPClient: body over MaxContent ({limit})"))
        if self._limits.streaming:
            self._out.append(data)
        else:
            self._body.append(data)

    def _complete(self) -> None:
        response = self._response
        assert response is not None
        self._response = None
        self._parser = None
        self.state = HEAD
        if self._requests:
            self._requests.popleft()
        if self._limits.streaming:
            self._out.append(b"")
        else:
            body = self._body
            response.body = body[0] if len(body) == 1 else b"".join(body)
            self._out.append(response)
        self._reset_message()

    # -- httptools' protocol -----------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._trailers:
            response = self._response
            assert response is not None
            response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            if len(response.headers) > self._limits.max_fields:
                raise RecordTooLong(f"HTTPClient: more than MaxFields ({self._limits.max_fields})")
            return
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        self._trailers = True  # fields from now on are a chunked body's trailer section

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_body(self, body: bytes) -> None:
        self._add_body(body)

    def on_message_complete(self) -> None:
        self._done = True

"""HTTP client filter: requests out, responses in (the client side of POE::Filter::HTTPD)."""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from kernelish._params import parse_params
from kernelish.filters._base import Filter
from kernelish.filters._httpclient_reader import FAILED, ResponseLimits, ResponseReader
from kernelish.http import Request, Response

if TYPE_CHECKING:
    from kernelish.filters._httpclient_params import HTTPClientParams

__all__ = ["HTTPClient", "origin_form", "request_bytes"]

# RFC 9110 5.1 / 9.1: field names and methods are tokens; 5.5: no CR, LF or NUL in a value.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
# What a request-target may hold once non-ASCII is percent-encoded (RFC 9112 3.2).
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
# Characters quote() leaves alone in a target: the reserved set and '%' (already encoded).
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"
# Methods that define a meaning for content: an empty body is sent as Content-Length: 0.
_CONTENT_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The methods every client sends: tokens, no need to check them.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
# A field section every line of which is a token, ": ", a value without CR, LF or NUL.
_FIELDS = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [^\r\n\x00]*\r\n)*")
_NO_NAMES: frozenset[str] = frozenset()


@functools.lru_cache(maxsize=512)
def origin_form(target: str) -> tuple[str, str | None]:
    """``(origin-form target, authority)`` of an absolute-form target (``http://h:8/a?b``
    -> ``('/a?b', 'h:8')``); an origin-form target comes back as is, with None.  The
    last 512 targets' answers are remembered."""
    scheme_end = target.find("://")
    if target.startswith("/") or scheme_end < 0:
        return target, None
    rest = target[scheme_end + 3 :]
    cut = len(rest)
    for mark in "/?#":
        at = rest.find(mark)
        if 0 <= at < cut:
            cut = at
    authority = rest[:cut].rpartition("@")[2]
    path = rest[cut:].partition("#")[0]
    if not path.startswith("/"):
        path = "/" + path
    return path, authority


def request_bytes(request: Request, *, absolute: bool = False) -> bytes:
    """A request as sent: request line, fields, body (HTTP::Request ``as_string``, CRLFs).

    The target goes out in origin-form (``/path?query``) unless ``absolute`` (to a proxy);
    a ``Host`` field is added from an absolute target when there is none; a body gets a
    ``Content-Length`` unless it has one (or a ``Transfer-Encoding``), and so does an empty
    POST, PUT or PATCH.  Non-ASCII in the target is percent-encoded as UTF-8.  Raises
    ``ValueError`` naming what is wrong for a method that is not a token, a target with
    white space or control octets, or a field that would break the message.
    """
    return _serialize(request, absolute)[0]


def _serialize(request: Request, absolute: bool) -> tuple[bytes, bool]:
    """:func:`request_bytes`, and whether the request asks to close the connection."""
    method, target = request.method, request.target
    if method not in _METHODS and not _TOKEN.fullmatch(method):
        raise ValueError(f"HTTPClient: method {method!r} is not a token")
    if not target.isascii():
        target = quote(target, safe=_TARGET_SAFE)
    if absolute:
        authority = origin_form(target)[1]
        target = target.partition("#")[0]
    else:
        target, authority = origin_form(target)
    if not target or _BAD_TARGET.search(target):
        raise ValueError(f"HTTPClient: request-target {target!r} is empty or holds white space")
    headers = request.headers
    fields = "".join([f"{name}: {value}\r\n" for name, value in headers])
    # One line per field, each well formed: a CR LF inside a value would make two.
    if not _FIELDS.fullmatch(fields) or fields.count("\n") != len(headers):
        _refuse_fields(request)
    names = {name.lower() for name, _ in headers} if fields else _NO_NAMES
    head = f"{method} {target} HTTP/{request.version}\r\n"
    if authority is not None and "host" not in names:
        head += f"Host: {authority}\r\n"
    head += fields
    body = request.body
    if (body or method in _CONTENT_METHODS) and not (
        "content-length" in names or "transfer-encoding" in names
    ):
        head += f"Content-Length: {len(body)}\r\n"
    try:
        data = (head + "\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"HTTPClient: a header field does not fit ISO-8859-1: {exc}") from None
    closes = "connection" in names and "close" in headers.tokens("Connection")
    return (data + bytes(body) if body else data), closes


def _refuse_fields(request: Request) -> None:
    """Raise the ``ValueError`` naming the first field that would break the message."""
    for name, value in request.headers:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"HTTPClient: header field name {name!r} is not a token")
        if _BAD_VALUE.search(value):
            raise ValueError(f"HTTPClient: header field {name!r} holds CR, LF or NUL")


class HTTPClient(Filter[Response | bytes]):
    """Serialize :class:`~kernelish.http.Request` records; parse HTTP/1.x responses into
    :class:`~kernelish.http.Response` records.

    The client-side twin of :class:`~kernelish.filters.HTTPD` (POE's Client::HTTP reads
    with its internal HTTPHead and HTTPChunk filters), parsing with llhttp (httptools).
    Output: each Request as :func:`request_bytes` writes it; ``bytes`` records pass
    through.  The filter remembers the requests it wrote, oldest first, so that it frames
    each response by the request it answers (no body for HEAD) and sets
    ``response.request``.  Input records:

    * a :class:`~kernelish.http.Response` for each response, its body included
      (``Content-Length``, chunked, or ending with the connection: then it comes from
      :meth:`finish`); interim 1xx responses are dropped; ``response.close`` says whether
      the connection must end after it;
    * with ``Streaming=True``: the Response as soon as its head is read (``body`` empty),
      then the body as ``bytes`` records as they arrive, then ``b""`` at its end (every
      response has the ``b""``, an empty body too).

    Refused responses raise :class:`~kernelish.filters.FilterError` subclasses (a wheel
    reports them as a read error): :class:`BadResponse` (EPROTO: not HTTP/1.x, a
    malformed head or chunk, a ``Content-Length`` llhttp refuses, 101),
    :class:`IncompleteResponse` from :meth:`finish`, ``RecordTooLong`` for a head over
    ``MaxHeaderSize`` (64 KiB) or ``MaxFields`` (100), :class:`ContentTooLong` for a body
    over ``MaxContent`` (no limit by default).  ``Proxy=True`` writes absolute-form
    targets (to an HTTP proxy).
    """

    __slots__ = ("_buf", "_params", "_pos", "_reader", "_ready", "_requests")

    def __init__(self, **params: Any) -> None:
        from kernelish.filters._httpclient_params import HTTPClientParams  # pydantic: first use

        self._configure(parse_params(HTTPClientParams, "HTTPClient", params))

    def _configure(self, params: HTTPClientParams) -> None:
        self._params = params
        limits = ResponseLimits(
            max_header_size=params.max_header_size,
            max_fields=params.max_fields,
            max_content=params.max_content,
            streaming=params.streaming,
        )
        self._ready: deque[Any] = deque()
        self._requests: deque[tuple[Request, bool]] = deque()
        self._reader = ResponseReader(limits, self._ready, self._requests)
        self._buf = b""
        self._pos = 0

    # -- input -------------------------------------------------------------------------------

    def get_one_start(self, chunks: Iterable[bytes]) -> None:
        """Buffer ``chunks`` (POE::Filter::get_one_start); discarded after a refusal."""
        data = b"".join(chunks)
        if not data or self._reader.state == FAILED:
            return
        if self._pos < len(self._buf):
            data = self._buf[self._pos :] + data
        self._buf, self._pos = data, 0

    def get_one(self) -> list[Response | bytes]:
        """Return ``[record]`` for the next record, or ``[]`` (POE::Filter::get_one)."""
        self._raise_deferred()
        ready = self._ready
        if not ready:
            self._parse(until_record=True)
            if not ready:
                return []
        return [ready.popleft()]

    def get(self, chunks: Iterable[bytes]) -> list[Response | bytes]:
        """Parse ``chunks`` and return every record (POE::Filter::get).  An error behind
        complete records is raised by the next call, the records kept."""
        self._raise_deferred()
        self.get_one_start(chunks)
        self._parse(until_record=False)
        records = list(self._ready)
        self._ready.clear()
        return records

    def _parse(self, *, until_record: bool) -> None:
        buf, step, ready = self._buf, self._reader.step, self._ready
        pos, size = self._pos, len(buf)
        try:
            while pos < size and not (until_record and ready):
                pos = step(buf, pos)
        except Exception as exc:
            self._buf, self._pos = b"", 0
            if not ready:
                raise
            self._error = exc
            return
        if pos >= size:
            self._buf, self._pos = b"", 0
        else:
            self._pos = pos

    def finish(self) -> list[Response | bytes]:
        """The connection ended: the records that completes -- a body that ends with the
        connection -- or :class:`IncompleteResponse` if it ended inside a response
        (the end of file ``get`` cannot see; llhttp's ``llhttp_finish``)."""
        self._raise_deferred()
        self._parse(until_record=False)
        self._reader.finish()
        records = list(self._ready)
        self._ready.clear()
        return records

    @property
    def idle(self) -> bool:
        """Nothing buffered or begun: the connection is between responses."""
        return self._reader.idle and self._pos >= len(self._buf) and not self._ready

    @property
    def outstanding(self) -> int:
        """Requests written and not yet answered."""
        return len(self._requests)

    def get_pending(self) -> list[bytes] | None:
        """The octets received and not yet part of a record: a head still incomplete and
        what follows it (POE::Filter::get_pending)."""
        if self._reader.state == FAILED:
            return None
        data = self._reader.pending_head() + self._buf[self._pos :]
        return [data] if data else None

    # -- output ------------------------------------------------------------------------------

    def put(self, records: Iterable[Any]) -> list[bytes]:
        """Serialize requests (and pass ``bytes`` through): see :func:`request_bytes`."""
        out: list[bytes] = []
        absolute = self._params.proxy
        for record in records:
            if isinstance(record, Request):
                data, closes = _serialize(record, absolute)
                out.append(data)
                self._requests.append((record, closes))
            elif isinstance(record, bytes | bytearray | memoryview | str):
                data = record.encode() if isinstance(record, str) else bytes(record)
                if data:
                    out.append(data)
            else:
                raise TypeError(
                    f"HTTPClient: cannot put a {type(record).__name__}: a Request or bytes"
                )
        return out

    def clone(self) -> Self:
        """A filter with the same parameters and nothing buffered (POE::Filter::clone)."""
        twin = type(self).__new__(type(self))
        twin._configure(self._params)
        return twin

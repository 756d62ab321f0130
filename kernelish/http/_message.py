"""Requests and responses (HTTP::Request and HTTP::Response, as POE's HTTPD hands them over).

Discussion
----------
POE::Filter::HTTPD gives its handler an HTTP::Request (or, for a malformed request, an
HTTP::Response to send back) and serializes the HTTP::Response objects it is given.  Those
classes carry far more than a daemon needs; what is kept here is what a handler reads and a
server must decide: the request line, the fields, the body, and on the response side the
framing.  POE leaves framing to the application (its ``put`` writes ``HTTP/1.0`` and no
``Content-Length`` unless you set one, and its synopsis closes the connection after each
response).  :meth:`Response.prepare` makes the decisions RFC 9112 asks of a server, once, in
one place: ``Content-Length`` for a body in memory, chunked for a body streamed to an
HTTP/1.1 client, the end of the connection for one streamed to an HTTP/1.0 client, no body
at all for HEAD, 1xx, 204 and 304, and whether the connection stays open (section 9.3:
HTTP/1.1 persists unless a side says ``close``, HTTP/1.0 only with ``keep-alive``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from kernelish.http._headers import Headers

__all__ = ["Request", "Response", "http_date", "reason_phrase"]

HeadersLike = Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None
Body = bytes | bytearray | memoryview | Iterable[bytes]

_REASONS = {status.value: status.phrase for status in HTTPStatus}
# RFC 9110 5.1: a field name is a token; 5.5: CR, LF and NUL never appear in a value.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_date_cache: list[Any] = [-1, ""]


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` (HTTP::Status ``status_message``), or ``''``."""
    return _REASONS.get(status, "")


def http_date(now: float | None = None) -> str:
    """An IMF-fixdate for the ``Date`` field (RFC 9110 5.6.7), computed once a second."""
    second = int(time.time() if now is None else now)
    if second != _date_cache[0]:
        _date_cache[0] = second
        _date_cache[1] = formatdate(second, usegmt=True)
    return str(_date_cache[1])


class Request:
    """One HTTP request: request line, header fields, body (HTTP::Request).

    What :class:`~kernelish.filters.HTTPD` returns for each request it parses.  ``method``
    (``'GET'``), ``target`` (the request-target as sent, ``'/a%20b?x=1'``), ``version``
    (``'1.1'``), ``headers`` (:class:`Headers`), ``body`` (``bytes``; empty in the filter's
    streaming mode, where the body comes as separate records and ``body_follows`` is set).
    ``trailers`` holds the fields of a chunked body's trailer section (``None`` without),
    ``upgrade`` is set when the request asks to leave HTTP (``Upgrade`` with
    ``Connection: upgrade``, or ``CONNECT``): the octets after it are the filter's
    ``get_pending()``.  POE's accessors are there too: ``uri``, ``protocol``, ``content``,
    ``header(name)``.
    """

    __slots__ = (
        "body",
        "body_follows",
        "headers",
        "method",
        "target",
        "trailers",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        method: str = "GET",
        target: str = "/",
        version: str = "1.1",
        headers: HeadersLike = None,
        body: bytes = b"",
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body
        self.body_follows = False
        self.trailers: Headers | None = None
        self.upgrade = False

    # -- POE's accessors ---------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """The request-target (HTTP::Request ``uri``)."""
        return self.target

    @property
    def protocol(self) -> str:
        """``'HTTP/1.1'`` (HTTP::Request ``protocol``)."""
        return "HTTP/" + self.version

    @property
    def content(self) -> bytes:
        """The body (HTTP::Request ``content``)."""
        return self.body

    def header(self, name: str) -> str | None:
        """The field's values joined with ``", "``, or None (HTTP::Request ``header``)."""
        return self.headers.get(name)

    # -- what a server decides from --------------------------------------------------------------

    @property
    def path(self) -> str:
        """The target's path, still percent-encoded (``'/a%20b'``); an absolute-form target's
        path (``http://h/a`` -> ``'/a'``); ``'*'`` for ``OPTIONS *``."""
        target = self.target
        if not target.startswith("/") and "://" in target:
            rest = target.split("://", 1)[1]
            slash = rest.find("/")
            target = rest[slash:] if slash >= 0 else "/"
        end = target.find("?")
        path = target if end < 0 else target[:end]
        hash_at = path.find("#")
        return path if hash_at < 0 else path[:hash_at]

    @property
    def query(self) -> str:
        """The target's query, after ``?`` (``''`` if none), still percent-encoded."""
        _, _, query = self.target.partition("?")
        return query.partition("#")[0]

    @property
    def host(self) -> str | None:
        """The authority the request is for: an absolute-form target's, else ``Host``'s
        (RFC 9112 3.2.2); None if neither."""
        target = self.target
        if not target.startswith("/") and "://" in target:
            authority = target.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
            return authority.rpartition("@")[2]
        return self.headers.get("Host")

    @property
    def keep_alive(self) -> bool:
        """Whether the client will send more requests on this connection (RFC 9112 9.3):
        HTTP/1.1 unless ``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``."""
        tokens = self.headers.tokens("Connection")
        if self.version == "1.1":
            return "close" not in tokens
        return self.version == "1.0" and "keep-alive" in tokens and "close" not in tokens

    @property
    def expect_continue(self) -> bool:
        """``Expect: 100-continue`` on an HTTP/1.1 request: the client waits for a ``100
        Continue`` (or a final answer) before it sends the body (RFC 9110 10.1.1)."""
        return self.version == "1.1" and "100-continue" in self.headers.tokens("Expect")

    @property
    def content_length(self) -> int | None:
        """``Content-Length`` as a number (the filter checked it), or None."""
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def chunked(self) -> bool:
        """Whether the body came with the chunked transfer coding."""
        return "chunked" in self.headers.tokens("Transfer-Encoding")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} HTTP/{self.version}>"


class Response:
    """One HTTP response: status, reason, header fields, body (HTTP::Response).

    ``Response(status, reason, headers, body)`` in HTTP::Response->new's order, each by
    keyword too; ``reason`` defaults to the standard phrase.  ``body`` is ``bytes`` (sent
    with ``Content-Length``), or any iterable of ``bytes`` for a streamed body: the HTTPD
    filter's ``put`` then writes the head only, and the parts follow as ``bytes`` records,
    ended by ``b""`` (see the filter).  POE's accessors: ``code``, ``message``, ``content``,
    ``header``, ``push_header``, ``request`` (for a response the filter built, the request
    that failed, if it got that far).

    Call :meth:`prepare` with the request it answers before sending it (the HTTPD filter's
    ``put`` does, with the last request it parsed, if you did not): it sets the framing,
    ``Date``, and the keep-alive decision.  ``close`` is set when the connection must end
    after this response: every error response the filter builds has it.
    """

    __slots__ = (
        "body",
        "close",
        "detail",
        "headers",
        "prepared",
        "previous",
        "reason",
        "request",
        "send_body",
        "status",
        "version",
    )

    def __init__(
        self,
        status: int = 200,
        reason: str | None = None,
        headers: HeadersLike = None,
        body: Body = b"",
        *,
        version: str = "1.1",
    ) -> None:
        self.status = int(status)
        self.reason = reason_phrase(self.status) if reason is None else reason
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body
        self.version = version
        self.request: Request | None = None
        #: True: the connection ends after this response (an error, or the client's wish).
        self.close = False
        #: False for a HEAD response and for 1xx, 204 and 304: no body goes out.
        self.send_body = True
        self.prepared = False
        #: For an error the filter found: what was wrong, for the log (not sent).
        self.detail = ""
        #: The response this one follows after a redirect (HTTP::Response ``previous``).
        self.previous: Response | None = None

    @classmethod
    def error(cls, status: int, detail: str = "", request: Request | None = None) -> Response:
        """An error response as POE's HTTPD builds one (``_build_error``): a small HTML page
        naming the status, ``Connection: close`` (RFC 9112: after a malformed request the
        stream cannot be trusted).  ``detail`` is kept in :attr:`detail` for the log and
        not echoed to the client."""
        reason = reason_phrase(status) or "Unknown Error"
        page = (
            f"<html><head><title>Error {status}: {reason}</title></head>"
            f"<body><h1>Error {status}: {reason}</h1></body></html>"
        ).encode()
        response = cls(
            status,
            reason,
            [
                ("Content-Type", "text/html"),
                ("Content-Length", str(len(page))),
                ("Connection", "close"),
            ],
            page,
        )
        response.close = True
        response.request = request
        response.detail = detail
        return response

    # -- POE's accessors ---------------------------------------------------------------------

    @property
    def code(self) -> int:
        """The status code (HTTP::Response ``code``)."""
        return self.status

    @property
    def message(self) -> str:
        """The reason phrase (HTTP::Response ``message``)."""
        return self.reason

    @property
    def content(self) -> Body:
        """The body (HTTP::Response ``content``)."""
        return self.body

    @content.setter
    def content(self, body: Body) -> None:
        self.body = body

    def header(self, name: str, value: str | int | None = None) -> str | None:
        """Get a field (joined values), or with ``value`` set it (HTTP::Response ``header``)."""
        if value is not None:
            self.headers[name] = value
        return self.headers.get(name)

    def push_header(self, name: str, value: str | int) -> None:
        """Add a field line, keeping others of the name (HTTP::Response ``push_header``)."""
        self.headers.add(name, value)

    @property
    def is_error(self) -> bool:
        """4xx or 5xx (HTTP::Response ``is_error``)."""
        return self.status >= 400

    @property
    def is_success(self) -> bool:
        """2xx (HTTP::Response ``is_success``)."""
        return 200 <= self.status < 300

    @property
    def is_redirect(self) -> bool:
        """3xx (HTTP::Response ``is_redirect``)."""
        return 300 <= self.status < 400

    @property
    def is_info(self) -> bool:
        """1xx (HTTP::Response ``is_info``)."""
        return self.status < 200

    @property
    def status_line(self) -> str:
        """``'404 Not Found'`` (HTTP::Response ``status_line``)."""
        return f"{self.status} {self.reason or reason_phrase(self.status) or 'Unknown code'}"

    @property
    def streaming(self) -> bool:
        """The body is an iterable whose parts follow the head as separate records."""
        return not isinstance(self.body, bytes | bytearray | memoryview)

    # -- framing -----------------------------------------------------------------------------

    def prepare(
        self,
        request: Request | None = None,
        *,
        server: str | None = None,
        date: bool = True,
    ) -> bool:
        """Decide the framing for ``request`` and return whether the connection stays open.

        * no body for HEAD, 1xx, 204 and 304 (``send_body`` False; a HEAD response keeps the
          ``Content-Length`` the GET would have had);
        * a ``bytes`` body: ``Content-Length`` set to its length;
        * a streamed body: your ``Content-Length`` if you set one, else chunked to an
          HTTP/1.1 client, else (HTTP/1.0, or no request known) the body ends with the
          connection;
        * ``Connection: close`` when the client or the response (``close``, or your own
          ``Connection: close``) ends the connection, ``Connection: keep-alive`` to an
          HTTP/1.0 client that keeps it;
        * ``Date`` (unless ``date=False`` or already set) and ``Server`` (if given).

        Interim (1xx) responses are left alone except for ``Date`` and ``Server``.
        Preparing again recomputes the same result.
        """
        self.prepared = True
        headers = self.headers
        if date and "Date" not in headers:
            headers.add("Date", http_date())
        if server is not None and "Server" not in headers:
            headers.add("Server", server)
        status = self.status
        if status < 200:
            self.send_body = False
            return True
        self.request = request if request is not None else self.request
        head = request is not None and request.method == "HEAD"
        no_body = status in (204, 304) or head
        self.send_body = not no_body
        keep = request.keep_alive if request is not None else False
        if self.close or "close" in headers.tokens("Connection"):
            keep = False
        if status in (204, 304) or (
            status < 300 and request is not None and request.method == "CONNECT"
        ):
            del headers["Content-Length"]
            del headers["Transfer-Encoding"]
        elif not self.streaming:
            if not head or "Content-Length" not in headers:
                headers["Content-Length"] = len(self.body)  # type: ignore[arg-type]
            del headers["Transfer-Encoding"]
        elif "Content-Length" in headers:
            del headers["Transfer-Encoding"]
        elif request is not None and request.version == "1.1":
            if not head:
                headers["Transfer-Encoding"] = "chunked"
        else:
            keep = False  # the end of the body is the end of the connection
        tokens = [t for t in headers.tokens("Connection") if t not in ("close", "keep-alive")]
        if not keep:
            tokens.append("close")
        elif request is not None and request.version == "1.0":
            tokens.append("keep-alive")
        if tokens:
            headers["Connection"] = ", ".join(tokens)
        else:
            del headers["Connection"]
        self.close = not keep
        return keep

    def head_bytes(self) -> bytes:
        """The status line and header section as sent (CRLF line ends, ISO-8859-1).

        Raises ``ValueError`` naming the field if a name is not a token or a value holds
        CR, LF or NUL (a response-splitting attempt, or a bug), or does not fit ISO-8859-1.
        """
        reason = self.reason
        if _BAD_VALUE.search(reason):
            raise ValueError(f"reason phrase {reason!r} holds CR, LF or NUL")
        lines = [f"HTTP/{self.version} {self.status} {reason}\r\n"]
        for name, value in self.headers:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header field name {name!r} is not a token")
            if _BAD_VALUE.search(value):
                raise ValueError(f"header field {name!r} holds CR, LF or NUL")
            lines.append(f"{name}: {value}\r\n")
        lines.append("\r\n")
        try:
            return "".join(lines).encode("latin-1")
        except UnicodeEncodeError as exc:
            raise ValueError(f"a header field does not fit ISO-8859-1: {exc}") from None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"

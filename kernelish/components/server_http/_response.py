"""The response a handler is given (POEx::HTTP::Server::Response), and the
connection it came on (POEx::HTTP::Server::Connection).

A handler answers when it likes -- at once, from a later event, from
another session:

* ``respond()`` sends the response: a ``bytes`` body with its
  ``Content-Length``; an iterable body (a generator, a WSGI application's
  result) part by part as the client takes them, chunked to an HTTP/1.1
  client.  The head waits for the iterable's first non-empty part, so a
  WSGI ``start_response`` called from inside the generator is seen, and an
  iterable that raises before it gives a 500 instead.  The iterable's
  ``close()`` is called whatever happens (PEP 3333).
* ``send(part)`` sends the head (once) and a part, and ``done()`` ends the
  body: the parts are put one by one.  ``send`` returns 1 when the
  connection's output reached its high-water mark (wait for the
  ``stream_request`` special handler, called when it drained), 0 otherwise.
* ``done()`` alone is ``respond()``; after ``respond()`` it does nothing
  (POEx's ``respond(); done()`` ports unchanged).
* ``error(status, text)``: a short ``text/plain`` answer.

A response to a connection that is gone is ``aborted``; everything above
is then a no-op, so a late answer costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kernelish.http import Request, Response, reason_phrase

if TYPE_CHECKING:
    from ._connection import HTTPConnection

__all__ = ["Connection", "ServerResponse"]

# How a handler answered.
NOT_YET, RESPOND, SEND = 0, 1, 2


class Connection:
    """Who is at the other end (POEx::HTTP::Server::Connection): the
    connection session's ``ID``, ``remote_ip`` / ``remote_port``,
    ``local_ip`` / ``local_port``, and ``tls`` (served over TLS)."""

    __slots__ = ("ID", "local_ip", "local_port", "remote_ip", "remote_port", "tls")

    def __init__(
        self,
        ID: int,
        remote_ip: str,
        remote_port: int | None,
        local_ip: str,
        local_port: int | None,
        tls: bool,
    ) -> None:
        self.ID = ID
        self.remote_ip = remote_ip
        self.remote_port = remote_port
        self.local_ip = local_ip
        self.local_port = local_port
        self.tls = tls

    def __repr__(self) -> str:
        return f"<Connection {self.ID} from {self.remote_ip}:{self.remote_port}>"


class ServerResponse(Response):
    """The response to one request, bound to its connection (port of
    POEx::HTTP::Server::Response): ``respond``, ``send``, ``done``,
    ``error``, ``content_type``, ``aborted``; ``request`` is the request it
    answers and ``connection`` the :class:`Connection`.  Everything of
    :class:`kernelish.http.Response` (``status``, ``headers``, ``content``,
    ``header``, ``push_header``) is there to fill in first."""

    __slots__ = (
        "_answer",
        "_conn",
        "_ended",
        "_head_sent",
        "_parts",
        "_stream",
        "_waiting",
        "aborted",
        "connection",
        "octets",
        "started",
    )

    def __init__(
        self, conn: HTTPConnection | None, request: Request | None, connection: Connection
    ) -> None:
        super().__init__(200)
        self.request = request
        self.connection = connection
        self._conn = conn
        self._answer = NOT_YET
        self._ended = False
        self._head_sent = False
        self._parts: list[bytes] = []
        self._stream: Any = None
        #: send() said 1: stream_request is owed once the output drains.
        self._waiting = False
        #: The connection is gone: nothing more goes out (POEx's ``aborted``).
        self.aborted = False
        #: Body octets sent (the access log's ``%b``).
        self.octets = 0
        self.started = 0.0

    # -- POEx's methods ------------------------------------------------------------------------

    def respond(self) -> None:
        """Send the response: its ``bytes`` body, or its iterable body part
        by part (POEx ``respond``).  Once per response."""
        if self.aborted:
            return
        if self._answer != NOT_YET:
            raise RuntimeError(f"{self!r}: respond() after respond() or send()")
        self._answer = RESPOND
        self._ended = True
        if self._conn is not None:
            self._conn.ready(self)

    def send(self, part: bytes | str) -> int:
        """Send the head if not yet, then ``part`` of the body (POEx
        ``send``); ``done()`` ends the body.  Returns 1 when the connection's
        output is at its high-water mark (wait for ``stream_request``)."""
        if self.aborted:
            return 0
        if self._answer == RESPOND or self._ended:
            raise RuntimeError(f"{self!r}: send() after respond() or done()")
        data = part.encode() if isinstance(part, str) else bytes(part)
        if self._answer == NOT_YET:
            self._answer = SEND
            body = self.body
            if isinstance(body, bytes | bytearray | memoryview) and body:
                self._parts.append(bytes(body))
            self.body = ()  # streamed: chunked, or the Content-Length you set
        if data:
            self._parts.append(data)
        conn = self._conn
        return conn.ready(self) if conn is not None else 0

    def done(self) -> None:
        """End the request (POEx ``done``): after ``send``, the end of the
        body; alone, ``respond()``; after ``respond()``, nothing."""
        if self.aborted or self._ended:
            return
        if self._answer == NOT_YET:
            self.respond()
            return
        self._ended = True
        self._body_ended()

    def _body_ended(self) -> None:
        """After ``send``: the body's end goes to the connection."""
        if self._conn is not None:
            self._conn.ready(self)

    # POEx's instance method, in place of Response.error, the filter's factory.
    def error(self, status: int, text: str = "") -> None:  # type: ignore[override]
        """Answer with ``status`` and ``text`` as ``text/plain`` (POEx ``error``)."""
        if self.aborted or self._answer != NOT_YET:
            return
        self.status = int(status)
        self.reason = reason_phrase(self.status) or "Unknown"
        self.headers["Content-Type"] = "text/plain; charset=utf-8"
        self.body = (text or self.reason).encode()
        self.respond()

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` field (HTTP::Response ``content_type``)."""
        return self.headers.get("Content-Type")

    @content_type.setter
    def content_type(self, value: str) -> None:
        self.headers["Content-Type"] = value

    @property
    def answered(self) -> bool:
        """Whether the handler has answered (``respond``, ``send`` or ``done``)."""
        return self._answer != NOT_YET

    @property
    def head_sent(self) -> bool:
        """Whether the status line went out (a 500 can no longer replace it)."""
        return self._head_sent

    def __repr__(self) -> str:
        request = self.request
        what = f"{request.method} {request.target}" if request is not None else "-"
        return f"<ServerResponse {self.status} to {what}>"

"""A response written straight to a blocking socket: the building block of a
server that serves one connection at a time inside one event (the WSGI sync
worker, gunicorn's SyncWorker), where ServerHTTP's own responses go through
a connection session and its wheel."""

from __future__ import annotations

import socket

from kernelish.http import Request

from ._response import SEND, Connection, ServerResponse

__all__ = ["BlockingResponse"]


class BlockingResponse(ServerResponse):
    """A :class:`ServerResponse` whose ``send`` (a WSGI application's
    ``write()``) goes out at once on ``sock``, chunked to an HTTP/1.1 client
    unless the application gave a ``Content-Length``; ``close`` is set (one
    request per connection).  The server that owns the socket writes the rest
    of the answer itself and says so with :meth:`mark_head_sent`."""

    __slots__ = ("_chunked", "_sock")

    def __init__(self, sock: socket.socket, request: Request, connection: Connection) -> None:
        super().__init__(None, request, connection)
        self._sock = sock
        self._chunked = False
        self.close = True

    @property
    def streamed(self) -> bool:
        """Whether the application wrote (``send``): the answer is under way."""
        return self._answer == SEND

    def mark_head_sent(self) -> None:
        """The owner wrote the head (and the body) on the socket itself."""
        self._head_sent = True

    def send(self, part: bytes | str) -> int:
        if self.aborted:
            return 0
        data = part.encode() if isinstance(part, str) else bytes(part)
        sock = self._sock
        if not self._head_sent:
            self._answer = SEND
            self.body = ()  # streamed: chunked, or the application's Content-Length
            self.prepare(self.request)
            self._head_sent = True
            self._chunked = "chunked" in self.headers.tokens("Transfer-Encoding")
            sock.sendall(self.head_bytes())
        if data and self.send_body:
            self.octets += len(data)
            sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)
        return 0

    def _body_ended(self) -> None:
        if self._chunked and self.send_body:
            self._sock.sendall(b"0\r\n\r\n")

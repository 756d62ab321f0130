"""The states of a ServerHTTP connection session: ServerTCP's callbacks
(``ClientConnected``, ``ClientInput``, ``ClientError``, ``ClientHigh`` /
``ClientLow``, ``ClientDisconnected``) and the server's own
``http_server_*`` states, each a few lines over :class:`~._connection.HTTPConnection`.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kernelish import ARG0, ARG1, ARG2, HEAP, HandlerArgs

from ._connection import HTTPConnection

if TYPE_CHECKING:
    from ._response import ServerResponse
    from ._server import HTTPServer

__all__ = ["ConnectionStates", "is_reserved"]

_RESET = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ETIMEDOUT})


def is_reserved(name: str) -> bool:
    """A state name the server's connection sessions need for themselves."""
    return name.startswith(("http_server_", "tcp_server_")) or name in (
        "_start",
        "_stop",
        "_child",
        "shutdown",
    )


class ConnectionStates:
    """ServerTCP's callbacks and the connection's states for one server."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server

    def inline_states(self) -> dict[str, Callable[[HandlerArgs], Any]]:
        """The connection session's own states (beside ServerTCP's)."""
        return {
            "http_server_stream": self.stream,
            "http_server_stream_request": self.stream_request,
            "http_server_post_request": self.post_request,
            "http_server_flushed": self.flushed,
            "http_server_linger": _drop,
            "http_server_drain": self.drain,
        }

    # -- ServerTCP's callbacks --------------------------------------------------------------

    def connected(self, _: HandlerArgs) -> None:
        """ClientConnected: the connection's HTTP side; the sweep runs."""
        server = self.server
        conn = _[HEAP]["http"] = HTTPConnection(server, _)
        conns = server.conns
        conns[conn.session_id] = conn
        server.stats.connections += 1
        if not server.sweeping and server.session_id is not None:
            conn.kernel.call(server.session_id, "http_server_arm")
        on_connect = server.specials.get("on_connect") if server.specials else None
        if on_connect is not None:
            on_connect.invoke(_, conn.info)

    def input(self, _: HandlerArgs) -> None:
        """ClientInput: a record of the HTTPD filter (none once closed:
        records held back by the wheel may still come)."""
        conn = _[HEAP].get("http")
        if conn is not None:
            conn.input(_, _[ARG0])

    def error(self, _: HandlerArgs) -> None:
        """ClientError: end of input, a reset, a filter over its buffer."""
        conn: HTTPConnection | None = _[HEAP].get("http")
        if conn is None:
            return
        operation, errnum, errstr = _[ARG0], _[ARG1], _[ARG2]
        if operation == "read" and errnum == 0:
            conn.got_eof()
            return
        if errnum not in _RESET or conn.queue:
            self.server.client_error(conn, operation, errnum, errstr)
        conn.abort()

    def disconnected(self, _: HandlerArgs) -> None:
        """ClientDisconnected: what was under way is aborted."""
        heap = _[HEAP]
        conn: HTTPConnection | None = heap.pop("http", None)
        if conn is None:
            return
        server = self.server
        conn.gone()
        server.conns.pop(conn.session_id, None)
        if server.closing and not server.conns and server.session_id is not None:
            # The last one of a server that stops: no tick holds run() up.
            conn.kernel.call(server.session_id, "http_server_disarm")
        on_disconnect = server.specials.get("on_disconnect") if server.specials else None
        if on_disconnect is not None:
            on_disconnect.invoke(_, conn.info)

    def high(self, _: HandlerArgs) -> None:
        """ClientHigh: the output reached HighMark; streams wait."""
        conn = _[HEAP].get("http")
        if conn is not None:
            conn.high = True

    def low(self, _: HandlerArgs) -> None:
        """ClientLow: the output drained to LowMark; streams go on."""
        conn = _[HEAP].get("http")
        if conn is not None:
            conn.high = False
            conn.pump()

    # -- the server's own states ------------------------------------------------------------

    def stream(self, _: HandlerArgs) -> None:
        """``http_server_stream``: the next share of a streamed body."""
        conn = _[HEAP].get("http")
        if conn is not None:
            conn.pump()

    def stream_request(self, _: HandlerArgs) -> None:
        """``http_server_stream_request``: POEx's ``stream_request``."""
        response: ServerResponse = _[ARG0]
        special = self.server.specials.get("stream_request") if self.server.specials else None
        if special is not None and not response.aborted:
            special.invoke(_, response.request, response)

    def post_request(self, _: HandlerArgs) -> None:
        """``http_server_post_request``: POEx's ``post_request``."""
        response: ServerResponse = _[ARG0]
        special = self.server.specials.get("post_request")
        if special is not None:
            special.invoke(_, response.request, response)

    def flushed(self, _: HandlerArgs) -> None:
        """``http_server_flushed``: an error response is written; linger."""
        conn = _[HEAP].get("http")
        if conn is not None:
            conn.linger()

    def drain(self, _: HandlerArgs) -> None:
        """``http_server_drain``: the server stops; close when answered."""
        conn = _[HEAP].get("http")
        if conn is not None:
            conn.drain()


def _drop(_: HandlerArgs) -> None:
    """``http_server_linger``: input after an error, dropped."""


def now() -> float:
    """The sweep's clock."""
    return time.monotonic()

"""ListenAccept: accept connections on a listening socket the program made
(POE::Wheel::ListenAccept).

POE's ListenAccept watches a listening handle and calls ``accept()`` on it:
``AcceptEvent(socket, peer, wheel_id)`` for each connection -- ARG1 is what
``accept()`` returned, here Python's peer address (``(host, port)`` for
IPv4, ``(host, port, flowinfo, scope_id)`` for IPv6, the peer's path or
``''`` for UNIX sockets) -- and ``ErrorEvent('accept', errnum, errstr,
wheel_id)`` for a failure (POE-SEMANTICS 9).

Beyond POE, it shares SocketFactory's accept loop (:mod:`._accept`): up to
``AcceptBatch`` (16) connections per readiness (``AcceptBatch=1`` is POE's
one), accept errors that concern one dead connection skipped, resource
errors (``EMFILE``...) backed off and reported once, the watch exclusive
between processes sharing the socket, and ``pause_accept`` /
``resume_accept`` as SocketFactory has them.  The listening socket is made
non-blocking (a blocking one would stall the kernel in ``accept()`` when
another process took the connection first), and accepted sockets are
non-blocking and close-on-exec.  The handle is closed with the wheel
unless the program still holds it, as Perl closes a handle with its last
reference.
"""

from __future__ import annotations

import socket
from typing import Any

from .._params import parse_params
from ._accept import AcceptingWheel

__all__ = ["ListenAccept"]


class ListenAccept(AcceptingWheel):
    """Accept connections on a listening socket (port of
    POE::Wheel::ListenAccept).

    ``ListenAccept(Handle=listening_socket, AcceptEvent='on_accept',
    ErrorEvent='on_error')``: ``AcceptEvent(socket, peer, wheel_id)`` for
    each connection, ``ErrorEvent(operation, errnum, errstr, wheel_id)``
    for failures.  See the module notes for what it does beyond POE.
    """

    __slots__ = ("_accept_event",)

    def __init__(self, **params: Any) -> None:
        from ._listenaccept_params import ListenAcceptParams  # pydantic: on first use

        p = parse_params(ListenAcceptParams, "ListenAccept", params)
        super().__init__(p.error_event, p.accept_batch)
        self._accept_event: str = p.accept_event
        handle = p.handle
        sock = socket.socket(fileno=handle) if isinstance(handle, int) else handle
        sock.setblocking(False)
        self._socket = sock
        self.hold(sock)
        self._start_listening()

    def _accepted(self, conn: socket.socket, peer: Any) -> None:
        self.emit(self._accept_event, conn, peer, self._id)

    def event(self, **events: str | None) -> None:
        """Rename events: ``event(AcceptEvent='x', ErrorEvent='y')``
        (snake_case accepted; POE's ``event``).  ErrorEvent=None stops
        error events; AcceptEvent needs a name, as in POE."""
        for name, value in events.items():
            if name in ("AcceptEvent", "accept_event"):
                if value is None:
                    raise ValueError("ListenAccept.event: AcceptEvent requires an event name")
                self._accept_event = value
            elif name in ("ErrorEvent", "error_event"):
                self._failure_event = value
            else:
                raise TypeError(f"ListenAccept.event: unknown event parameter {name!r}")

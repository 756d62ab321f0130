"""The accept loop listeners share: SocketFactory's listening mode and
ListenAccept.

Discussion
----------
POE::Wheel::SocketFactory and POE::Wheel::ListenAccept each call
``accept()`` once per readiness and report every failure.  Both wheels here
run the same loop instead (see :mod:`._socketfactory`'s notes, "Accept
errors never kill a listener"): up to ``AcceptBatch`` connections per
readiness; errors about one dead connection skipped; running out of a
resource (``EMFILE``...) backs off, reported once per burst; anything else
reported as POE does.  The watch is *exclusive*, so a listener shared by
pre-forked children wakes one of them per connection.

:class:`AcceptingWheel` holds that loop and the pause/resume/backoff state;
a subclass says what one accepted connection becomes
(:meth:`AcceptingWheel._accepted`: the event and its arguments).
"""

from __future__ import annotations

import _socket
import errno
import logging
import os
import socket
from typing import Any

from ._base import MODE_READ, Wheel

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "AcceptingWheel"]

log = logging.getLogger("kernelish.wheels")

#: Seconds a listener stops accepting after a resource error (``EMFILE``...).
BACKOFF_FIRST = 0.1
#: The longest such pause; it doubles up to this while the error lasts.
BACKOFF_MAX = 1.0

#: Nothing (more) to accept.
_ACCEPT_EMPTY = frozenset({errno.EAGAIN, errno.EWOULDBLOCK})
#: One connection died before it was accepted: go on with the next one.
_ACCEPT_SKIP = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPROTO",
        "EPERM",
        "EINTR",
        "ESPIPE",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
    )
    if hasattr(errno, name)
)
#: Out of a resource: the connection stays queued; back off, then retry.
_ACCEPT_BACKOFF = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class AcceptingWheel(Wheel):
    """A wheel that accepts connections on a listening socket (the shared
    part of SocketFactory and ListenAccept; see the module notes)."""

    __slots__ = (
        "_accept_batch",
        "_backoff",
        "_backoff_timer",
        "_failure_event",
        "_listening",
        "_paused",
        "_socket",
    )

    def __init__(self, failure_event: str | None, accept_batch: int) -> None:
        super().__init__()
        self._failure_event = failure_event
        self._accept_batch = accept_batch
        self._socket: socket.socket | None = None
        self._listening = False
        self._paused = False
        # Seconds of the current accept backoff (0: none) and its timer.
        self._backoff = 0.0
        self._backoff_timer: int | None = None

    def _accepted(self, conn: socket.socket, peer: Any) -> None:
        """Report one accepted connection (the subclass's event)."""
        raise NotImplementedError

    def _start_listening(self) -> None:
        sock = self._socket
        assert sock is not None
        self._listening = True
        # One idle pre-forked child per connection (exclusive); a handler
        # that pauses or drops the wheel ends the accept batch.
        self.watch(
            sock,
            MODE_READ,
            AcceptingWheel._accept_one,
            paused=self._paused,
            exclusive=True,
            repeat=self._accept_batch,
        )

    def _accept_one(self) -> bool:
        """Accept one connection; False when the batch should stop."""
        sock = self._socket
        if sock is None or self._paused or not self._listening:
            return False
        try:
            new = _accept(sock)
        except OSError as exc:
            code = exc.errno
            if code in _ACCEPT_EMPTY:
                self._backoff = 0.0  # the backlog is empty: any burst is over
                return False
            if code in _ACCEPT_SKIP:
                return True
            if code in _ACCEPT_BACKOFF:
                self._back_off(exc)
                return False
            self.emit(self._failure_event, "accept", code, exc.strerror or str(exc), self._id)
            return False
        if self._backoff:
            self._backoff = 0.0  # the burst is over
        self._accepted(*new)
        return True

    def _back_off(self, exc: OSError) -> None:
        """Stop accepting for a while after a resource error (module notes)."""
        sock = self._socket
        assert sock is not None
        first = not self._backoff
        self._backoff = BACKOFF_FIRST if first else min(self._backoff * 2, BACKOFF_MAX)
        self._kernel.select_pause_read(sock)
        self.cancel(self._backoff_timer)
        self._backoff_timer = self.defer(AcceptingWheel._end_backoff, self._backoff)
        if first:
            errstr = exc.strerror or str(exc)
            log.warning(
                "%d: accept on %s: %s; not accepting for %gs (doubling to %gs while it lasts)",
                os.getpid(),
                _address_text(self.getsockname()),
                errstr,
                self._backoff,
                BACKOFF_MAX,
            )
            self.emit(self._failure_event, "accept", exc.errno, errstr, self._id)

    def _end_backoff(self) -> None:
        self._backoff_timer = None
        sock = self._socket
        if sock is not None and self._listening and not self._paused:
            self._kernel.select_resume_read(sock)

    # -- public methods -------------------------------------------------------

    def pause_accept(self) -> None:
        """Stop accepting; new connections wait in the listen backlog
        (``pause_accept``).  The paused socket still keeps the session alive."""
        self._paused = True
        if self._listening and self._socket is not None:
            self._kernel.select_pause_read(self._socket)

    def resume_accept(self) -> None:
        """Accept again after :meth:`pause_accept` (``resume_accept``); during
        an accept backoff, once it ends."""
        self._paused = False
        if self._listening and self._socket is not None and self._backoff_timer is None:
            self._kernel.select_resume_read(self._socket)

    def getsockname(self) -> Any:
        """The socket's own address (Python's form: ``(host, port)`` or a
        path), or None without a socket (``getsockname``; POE gives a packed
        sockaddr)."""
        sock = self._socket
        if sock is None:
            return None
        try:
            return sock.getsockname()
        except OSError:
            return None

    def get_handle(self) -> socket.socket | None:
        """The wheel's socket, or None."""
        return self._socket

    def _forget_handles(self) -> None:
        self._socket = None


# The C-level getters: plain ints (socket.socket's properties turn each into
# an enum member, some 3 us per accepted connection).
_raw_family: Any = _socket.socket.family.__get__
_raw_type: Any = _socket.socket.type.__get__


def _address_text(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
        return f"{host}:{address[1]}"
    return str(address)


def _accept(sock: socket.socket) -> tuple[socket.socket, Any]:
    """accept4() with close-on-exec, the new socket non-blocking."""
    fd, peer = sock._accept()  # type: ignore[attr-defined]
    conn = socket.socket(_raw_family(sock), _raw_type(sock), sock.proto, fileno=fd)
    conn.setblocking(False)
    return conn, peer

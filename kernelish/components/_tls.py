"""TLS for ServerTCP and ClientTCP, from the standard library's ``ssl``
(the role POE::Component::SSLify plays for Perl's components).

Discussion
----------
SSLify wraps the socket in a tied handle whose reads and writes block
inside OpenSSL until a record is through -- including the handshake, which
then stalls the whole kernel behind one slow peer.  Here nothing blocks:

* :class:`TLSHandshake` is a wheel that drives ``do_handshake()`` on a
  non-blocking ``ssl.SSLSocket`` from the kernel's watchers: OpenSSL says
  what it waits for (``SSLWantReadError``: the peer's next flight;
  ``SSLWantWriteError``: room in the send buffer) and the wheel watches the
  socket for exactly that.  One timer bounds the whole handshake: a peer
  that connects and never finishes (or never starts) is cut off after
  ``HandshakeTimeout`` seconds, with the failure event
  ``('handshake', ETIMEDOUT, 'Connection timed out', wheel_id)``.  A
  refused handshake (a plain-text client, no shared cipher, a certificate
  that does not verify) is ``('handshake', errnum, reason, wheel_id)``.
* :class:`TLSDriver` is a ReadWrite driver over the ``SSLSocket``: ``get``
  is one ``recv`` (plus whatever OpenSSL already decrypted: ``pending()``,
  which readiness of the descriptor cannot show), ``flush`` sends the queue
  record by record.  OpenSSL wants a write that would block retried with
  the *same* buffer, so the driver keeps the buffer of an unfinished write
  and retries exactly it.  A close without ``close_notify`` (a "ragged"
  EOF) reads as end of file, as it does for ``SSLSocket`` by default.
* :func:`close_notify` sends our ``close_notify`` before the component
  drops a connection (one non-blocking ``SSL_shutdown``; the peer's answer
  is not waited for).

What it costs: the handshake's crypto (about a millisecond for ECDSA P-256
on one core) dominates; past it, a record's encryption is a copy.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Any

from kernelish.drivers import Driver
from kernelish.wheels import MODE_READ, MODE_WRITE, Wheel

__all__ = ["TLSDriver", "TLSHandshake", "close_notify", "handshake_error", "no_delay"]

#: The most octets one TLS write carries (four records of 16 KiB).
_WRITE_CHUNK = 65536
#: ``recv`` errors that only mean "not now".
_NOT_NOW = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


def handshake_error(exc: BaseException) -> tuple[int, str]:
    """(errnum, errstr) for a failed handshake: OpenSSL's reason when it
    gave one (``WRONG_VERSION_NUMBER``, ``CERTIFICATE_VERIFY_FAILED``...)."""
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or exc.strerror or str(exc)
        return exc.errno or errno.EPROTO, str(reason)
    if isinstance(exc, OSError):
        code = exc.errno or errno.EPROTO
        return code, exc.strerror or os.strerror(code)
    return errno.EPROTO, str(exc)


class TLSHandshake(Wheel):
    """Drive a non-blocking TLS handshake from the kernel's watchers
    (kernelish; see the module notes).

    ``SuccessEvent(ssl_socket, wheel_id)`` once it is done (the socket is
    then the session's), ``FailureEvent('handshake', errnum, errstr,
    wheel_id)`` if it fails or takes longer than ``timeout`` seconds.
    """

    __slots__ = ("_failure_event", "_sock", "_success_event", "_timer", "_waiting")

    def __init__(
        self, sock: ssl.SSLSocket, success_event: str, failure_event: str, timeout: float
    ) -> None:
        super().__init__()
        self._sock: ssl.SSLSocket | None = sock
        self.hold(sock)
        self._success_event = success_event
        self._failure_event = failure_event
        self._waiting: int | None = None  # the mode watched
        self._timer = self.defer(TLSHandshake._timed_out, timeout)
        if sock.server_side:
            self._wait(MODE_READ)  # the client speaks first
        else:
            # The first step runs in the next dispatch pass: the constructor
            # returns before any event of the wheel's.
            self.defer(TLSHandshake._step)

    def _step(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._wait(MODE_READ)
            return
        except ssl.SSLWantWriteError:
            self._wait(MODE_WRITE)
            return
        except (ssl.SSLError, OSError, ValueError) as exc:
            self._fail(*handshake_error(exc))
            return
        self._finish()
        self.disown(sock)
        self.emit(self._success_event, sock, self._id)

    def _wait(self, mode: int) -> None:
        sock = self._sock
        assert sock is not None
        if self._waiting != mode:
            if self._waiting is not None:
                self.unwatch(sock, self._waiting)
            self.watch(sock, mode, TLSHandshake._step)
            self._waiting = mode

    def _finish(self) -> None:
        sock = self._sock
        self._sock = None
        self.cancel(self._timer)
        if sock is not None and self._waiting is not None:
            self.unwatch(sock, self._waiting)
        self._waiting = None

    def _fail(self, errnum: int, errstr: str) -> None:
        self._finish()
        self.emit(self._failure_event, "handshake", errnum, errstr, self._id)

    def _timed_out(self) -> None:
        if self._sock is not None:
            self._fail(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))

    def _forget_handles(self) -> None:
        self._sock = None


class TLSDriver(Driver):
    """A ReadWrite driver over a non-blocking ``ssl.SSLSocket`` (kernelish;
    POE's SSLify ties the handle instead).  The handle ReadWrite passes is
    ignored: the driver reads and writes its own SSL socket."""

    __slots__ = ("_block_size", "_current", "_octets", "_queue", "_sock")

    def __init__(self, sock: ssl.SSLSocket, block_size: int = 65536) -> None:
        # Weakly: the wheel closes the socket when it is dropped, if nothing
        # else holds it -- the driver must not be that something.
        self._sock = weakref.ref(sock)
        self._block_size = block_size
        self._queue: deque[bytes] = deque()
        #: The buffer of a write OpenSSL has not finished (retried as is).
        self._current: bytes | None = None
        self._octets = 0

    @property
    def block_size(self) -> int:
        """The most octets one :meth:`get` asks OpenSSL for."""
        return self._block_size

    def get(self, handle: Any) -> list[bytes] | None:
        """Read what one TLS record (or more, already decrypted) holds:
        ``[data]``, ``[]`` if none is complete yet, None at end of file."""
        sock = self._sock()
        if sock is None:
            return None
        try:
            data = sock.recv(self._block_size)
        except _NOT_NOW:
            return []
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return None
        if not data:
            return None
        pending = sock.pending()
        if not pending:
            return [data]
        chunks = [data]
        while pending:
            chunks.append(sock.recv(pending))
            pending = sock.pending()
        return chunks

    def put(self, chunks: Iterable[bytes | bytearray | memoryview]) -> int:
        """Queue the non-empty chunks; the octets queued in all."""
        queue = self._queue
        octets = self._octets
        for chunk in chunks:
            data = chunk if type(chunk) is bytes else bytes(chunk)
            if data:
                queue.append(data)
                octets += len(data)
        self._octets = octets
        return octets

    def flush(self, handle: Any) -> int:
        """Send queued records until done or OpenSSL would block; the octets
        left.  TLS errors raise (an ``OSError``), the queue kept."""
        sock = self._sock()
        if sock is None:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        while True:
            data = self._current
            if data is None:
                if not self._queue:
                    break
                data = self._current = self._take()
            try:
                written = sock.send(data)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                break
            except InterruptedError:
                continue
            self._octets -= written
            self._current = data[written:] if written < len(data) else None
        return self._octets

    def _take(self) -> bytes:
        """Join queued chunks into one write of at most _WRITE_CHUNK octets."""
        queue = self._queue
        first = queue.popleft()
        if len(first) >= _WRITE_CHUNK or not queue:
            return first
        parts, total = [first], len(first)
        while queue and total + len(queue[0]) <= _WRITE_CHUNK:
            chunk = queue.popleft()
            parts.append(chunk)
            total += len(chunk)
        return b"".join(parts)

    def get_out_messages_buffered(self) -> int:
        """Chunks still queued (an unfinished write counts as one)."""
        return len(self._queue) + (self._current is not None)

    def get_out_octets_buffered(self) -> int:
        """Octets still queued."""
        return self._octets


def close_notify(sock: Any) -> None:
    """Send our ``close_notify`` on a TLS socket, without waiting for the
    peer's (a no-op for anything else, or when it cannot be sent now)."""
    if isinstance(sock, ssl.SSLSocket):
        try:
            sock.unwrap()
        except (ssl.SSLError, OSError, ValueError):
            pass


def no_delay(sock: Any) -> None:
    """TCP_NODELAY on a socket about to carry TLS: a handshake flight, the
    session tickets and the first record are separate small writes, and
    Nagle's algorithm would hold each behind the peer's delayed ACK (40 ms
    on Linux) -- asyncio sets it on every TCP socket for the same reason."""
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass

"""One connection to a server: requests written, responses read (the wheel POE's
Client::HTTP gets from Client::Keepalive, a ReadWrite with its HTTPHead filter).

Discussion
----------
A keep-alive pool keeps connections between requests.  A ReadWrite would keep watching
each one, and a watched handle keeps its session -- and the kernel -- alive: a program
that made one request would run until the server or the pool timed the connection out
(POE's does: Client::Keepalive holds it for 15 s).  This wheel watches its socket while
a request is on it and for a moment after (:meth:`Connection.park`): a server that
closes an idle connection or sends something unasked has it closed at once, and a
burst of requests reuses the watch instead of adding and removing it each time.  The
pool then cools the connections idle longer than :data:`WARM` (0.1 s,
:meth:`Connection.cool`): a cool connection holds nothing but its descriptor, so a
ClientHTTP with nothing to do lets the program end.  Whether a parked connection is
still good is asked again when it is taken (:meth:`Connection.usable`: nothing
buffered, and a ``MSG_PEEK`` that would block).

Input: each read goes through the :class:`~kernelish.filters.HTTPClient` filter, and all
the records it yields come in one ``InputEvent(records, wheel_id)`` (one dispatch a
read, not one a record).  End of file asks the filter to finish (a body that ends with
the connection), then reports ``ErrorEvent('read', 0, '', wheel_id)``; a filter error is
``ErrorEvent('read', errnum, text, wheel_id)``.  Output is written at once, what the
socket does not take is queued and written when it is writable; a write error is
reported in the next dispatch pass as ``ErrorEvent('write', errnum, errstr, wheel_id)``,
never from :meth:`Connection.send`.  TLS goes through the components' non-blocking
:class:`~kernelish.components._tls.TLSDriver`.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import time
from typing import Any

from kernelish.drivers import Driver, SysRW
from kernelish.filters import FilterError, HTTPClient
from kernelish.http import Request
from kernelish.wheels import MODE_READ, MODE_WRITE, Wheel

from .._tls import TLSDriver, close_notify

__all__ = ["WARM", "Connection"]

#: Seconds a parked connection keeps its watch (see the module notes).
WARM = 0.1

#: The most octets one read takes.
_BLOCK = 65536
#: A parked connection's "still open, nothing unasked" answer to a peek.
_QUIET = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Connection(Wheel):
    """One HTTP connection, plain or TLS (kernelish; see the module notes).

    ``key`` is the pool's name for where it goes; ``call`` the request on it now (the
    component's business), ``sent`` how many requests it carried, ``pid`` the process
    that opened it (a connection is never used across a fork).
    """

    __slots__ = (
        "_broken",
        "_driver",
        "_error",
        "_error_event",
        "_fd",
        "_filter",
        "_input_event",
        "_reading",
        "_sock",
        "_tls",
        "_writing",
        "call",
        "idle_since",
        "key",
        "pid",
        "sent",
    )

    def __init__(
        self,
        sock: socket.socket,
        http_filter: HTTPClient,
        key: Any,
        *,
        input_event: str,
        error_event: str,
    ) -> None:
        super().__init__()
        self._sock: socket.socket | None = sock
        self.hold(sock)
        self._fd = sock.fileno()
        self._filter = http_filter
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._driver: Driver = TLSDriver(sock) if isinstance(sock, ssl.SSLSocket) else SysRW()
        self._input_event = input_event
        self._error_event = error_event
        self._reading = False
        self._writing = False
        self._error: tuple[str, int, str] | None = None
        self._broken = False
        self.key = key
        self.call: Any = None
        self.sent = 0
        self.idle_since = 0.0
        self.pid = os.getpid()

    @property
    def filter(self) -> HTTPClient:
        """The connection's HTTPClient filter."""
        return self._filter

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran (or the wheel never had a socket)."""
        return self._sock is None

    # -- output ------------------------------------------------------------------------------

    def send(self, request: Request) -> None:
        """Write ``request`` (through the filter, which raises ``ValueError`` for one
        that would break the message) and read what answers it."""
        sock = self._sock
        if sock is None:
            return
        data = b"".join(self._filter.put([request]))
        self.sent += 1
        if not self._reading:
            self._reading = True
            self.watch(sock, MODE_READ, Connection._on_read)
        driver = self._driver
        if self._writing or self._tls:
            driver.put((data,))
            self._flush()
            return
        try:
            written = sock.send(data)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError as exc:
            self._fail_later("write", exc)
            return
        if written < len(data):
            driver.put((data[written:],))
            self._writing = True
            self.watch(sock, MODE_WRITE, Connection._flush)

    def _flush(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            left = self._driver.flush(sock if self._tls else self._fd)
        except OSError as exc:
            self._stop_writing()
            self._fail_later("write", exc)
            return
        if left and not self._writing:
            self._writing = True
            self.watch(sock, MODE_WRITE, Connection._flush)
        elif not left:
            self._stop_writing()

    def _stop_writing(self) -> None:
        if self._writing and self._sock is not None:
            self.unwatch(self._sock, MODE_WRITE)
        self._writing = False

    def _fail_later(self, operation: str, exc: OSError) -> None:
        self._broken = True  # never reused, even if the report finds it parked
        code = exc.errno or errno.EPIPE
        self._error = (operation, code, exc.strerror or os.strerror(code))
        self.defer(Connection._report)

    def _report(self) -> None:
        error, self._error = self._error, None
        if error is not None and self._sock is not None:
            self.emit(self._error_event, *error, self._id)

    # -- input -------------------------------------------------------------------------------

    def _on_read(self) -> None:
        sock = self._sock
        if sock is None:
            return
        if self.call is None:  # parked: the server closed it, or sent something unasked
            self.close()
            return
        try:
            if self._tls:
                got = self._driver.get(sock)
                if got is None:
                    self._end()
                    return
                if not got:
                    return
                chunks = got
            else:
                data = os.read(self._fd, _BLOCK)
                if not data:
                    self._end()
                    return
                chunks = [data]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            code = exc.errno or errno.EIO
            self._stop_reading()
            self.emit(self._error_event, "read", code, exc.strerror or os.strerror(code), self._id)
            return
        filt = self._filter
        try:
            records = filt.get(chunks)
        except FilterError as exc:
            self._filter_failed(exc)
            return
        if records:
            self.emit(self._input_event, records, self._id)
            if filt.deferred_error is not None and self._sock is not None:
                try:
                    filt.get(())
                except FilterError as exc:
                    self._filter_failed(exc)

    def _end(self) -> None:
        """End of file: what the filter completes with it, then the error event."""
        self._stop_reading()
        try:
            records = self._filter.finish()
        except FilterError as exc:
            self._filter_failed(exc)
            return
        if records:
            self.emit(self._input_event, records, self._id)
        if self._sock is not None:
            self.emit(self._error_event, "read", 0, "", self._id)

    def _filter_failed(self, exc: FilterError) -> None:
        exc.__traceback__ = None  # its frames hold this wheel
        self._stop_reading()
        self.emit(self._error_event, "read", exc.errno, str(exc), self._id)

    def _stop_reading(self) -> None:
        if self._reading and self._sock is not None:
            self.unwatch(self._sock, MODE_READ)
        self._reading = False

    # -- the pool's questions ----------------------------------------------------------------

    def park(self) -> None:
        """Between requests: keep watching, for now (see the module notes)."""
        self.call = None
        self.idle_since = time.monotonic()

    @property
    def warm(self) -> bool:
        """Parked and still watched."""
        return self._reading and self.call is None

    def cool(self) -> None:
        """Parked a while: watch nothing any more."""
        if self.call is None:
            self._stop_reading()

    def usable(self) -> bool:
        """Whether a parked connection can carry another request: this process opened
        it, nothing is buffered or queued, and the server has neither closed it nor
        sent anything unasked (a cool connection is asked with a ``MSG_PEEK``)."""
        sock = self._sock
        if (
            sock is None
            or self._broken
            or self.pid != os.getpid()
            or self._writing
            or not self._filter.idle
            or self._filter.outstanding
        ):
            return False
        if self._reading:
            return True  # still watched: a close or stray octets would have closed it
        try:
            # b"": the server closed it; anything else was sent unasked.
            sock.recv(1) if self._tls else sock.recv(1, socket.MSG_PEEK)
        except _QUIET:
            return True
        except (OSError, ValueError):
            return False
        return False

    def close(self) -> None:
        """Close the connection now (a TLS one with our ``close_notify``)."""
        sock = self._sock
        if sock is None:
            return
        self._stop_reading()
        self._stop_writing()
        self._sock = None
        self.disown(sock)
        if self._tls and self.pid == os.getpid():
            close_notify(sock)
        sock.close()

    def _forget_handles(self) -> None:
        self._sock = None

"""systemd's notification protocol (``sd_notify``), with the standard library only.

The service manager passes the address of a datagram socket in ``NOTIFY_SOCKET``
(a path, or ``@name`` for the abstract namespace); a service sends newline
separated ``KEY=VALUE`` assignments to it: ``READY=1``, ``RELOADING=1``,
``STOPPING=1``, ``STATUS=...``, ``MAINPID=...``, ``WATCHDOG=1``.  When
``WATCHDOG_USEC`` is set (and ``WATCHDOG_PID`` names this process or is unset)
the service must send ``WATCHDOG=1`` more often than that; we send it at half
the interval, as sd_watchdog_enabled(3) advises.

:meth:`Notifier.from_environ` *consumes* the variables (``os.environ.pop``) so
that forked children and programs they run do not find them and speak for the
daemon; the component closes its notifier in every child, so a child never
sends anything.

Sending never raises: the service manager may have gone away or the socket may
be full, and neither is a reason for a daemon to die.  A failure is logged once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import MutableMapping

from ._process import log

__all__ = ["Notifier", "notify_address"]


def notify_address(value: str) -> str | bytes:
    """The ``sendto`` address for a ``NOTIFY_SOCKET`` value: a filesystem path,
    or, for ``@name``, the abstract-namespace address ``b'\\0name'``."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """One service's channel to systemd: ``notify('READY=1', 'STATUS=...')``.

    ``address`` is a ``NOTIFY_SOCKET`` value.  ``watchdog_usec`` is the watchdog
    interval in microseconds (0: no watchdog).
    """

    def __init__(self, address: str, watchdog_usec: int = 0) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
        )
        self._failed = False
        self._status: str | None = None

    @classmethod
    def from_environ(
        cls, enabled: bool | None = None, environ: MutableMapping[str, str] | None = None
    ) -> Notifier | None:
        """A notifier for ``NOTIFY_SOCKET``, or None.

        ``enabled`` is the Daemon's ``notify`` parameter: None means "if
        ``NOTIFY_SOCKET`` is set", False never, True always (without the
        variable there is nobody to notify: None, and a warning).  The
        variables are removed from ``environ`` (``os.environ``) in every case,
        so that children cannot misuse them.
        """
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", None)
        usec_text = env.pop("WATCHDOG_USEC", None)
        watchdog_pid = env.pop("WATCHDOG_PID", None)
        if enabled is False:
            return None
        if not address or address[0] not in "/@":
            if enabled:
                log.warning("%d: notify=True but NOTIFY_SOCKET is not set", os.getpid())
            return None
        usec = 0
        if usec_text:
            try:
                usec = max(int(usec_text), 0)
            except ValueError:
                log.warning("%d: ignoring WATCHDOG_USEC=%r", os.getpid(), usec_text)
            if watchdog_pid and watchdog_pid != str(os.getpid()):
                usec = 0  # the watchdog is meant for another process
        return cls(address, usec)

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None."""
        if not self.watchdog_usec:
            return None
        return self.watchdog_usec / 2_000_000

    @property
    def closed(self) -> bool:
        return self._sock is None

    def notify(self, *assignments: str) -> bool:
        """Send ``assignments`` as one datagram; True if it was sent."""
        sock = self._sock
        if sock is None or not assignments:
            return False
        data = "\n".join(assignments).encode()
        try:
            sock.sendto(data, notify_address(self.address))
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("%d: sd_notify to %s failed: %s", os.getpid(), self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` with ``MAINPID`` = this process (the detached daemon)."""
        lines = ["READY=1", f"MAINPID={os.getpid()}"]
        if status is not None:
            self._status = status
            lines.append(f"STATUS={status}")
        return self.notify(*lines)

    def status(self, text: str) -> bool:
        """``STATUS=text``, only if it differs from the last one sent."""
        if text == self._status:
            return False
        self._status = text
        return self.notify(f"STATUS={text}")

    def reloading(self) -> bool:
        """``RELOADING=1`` (with ``MONOTONIC_USEC``, as Type=notify-reload wants)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """``STOPPING=1``."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """``WATCHDOG=1``."""
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        """Forget the socket (in a child: it must never speak for the daemon)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

"""The keep-alive pool: connections per host, bounded (POE::Component::Client::Keepalive).

Discussion
----------
Client::Keepalive keeps at most ``max_per_host`` connections to one host and
``max_open`` in all, reuses an idle one for ``keep_alive`` seconds, and queues requests
beyond the bounds until a connection frees.  This pool does the same book-keeping, with
two differences:

* An idle connection is watched only for a moment (see :mod:`._connection`), and holds
  no timer: it is checked when it is taken, and connections idle past ``KeepAlive`` are
  closed when the pool is next used (:meth:`Pool.sweep`) -- never later than the next
  request, and ``shutdown`` closes them all.  The last idle one taken is the first
  reused (the one most likely still open at the server).
* When ``MaxOpen`` is reached and another host's connection is idle, it is closed to
  make room, rather than making the request wait for a connection that will not come.

Bounds: at most ``MaxOpen`` descriptors, ``MaxPerHost`` to one host; the requests waiting
are bounded by what the program posts (each is its Request and a small record).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from ._connection import Connection

__all__ = ["Pool"]


class _Host:
    """One destination's connections: those in use or opening, the idle ones, the
    requests waiting for one."""

    __slots__ = ("busy", "idle", "waiters")

    def __init__(self) -> None:
        self.busy = 0
        self.idle: list[Connection] = []
        self.waiters: deque[Any] = deque()


class Pool:
    """Connections by destination (``key``), within ``max_per_host`` and ``max_open``;
    an idle one is kept ``keep_alive`` seconds (0: never kept)."""

    def __init__(self, *, max_per_host: int, max_open: int, keep_alive: float) -> None:
        self._max_per_host = max_per_host
        self._max_open = max_open
        self._keep_alive = keep_alive
        self._hosts: dict[Hashable, _Host] = {}
        self._open = 0
        self._waiting = 0

    def _host(self, key: Hashable) -> _Host:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host()
        return host

    def _tidy(self, key: Hashable, host: _Host) -> None:
        if not host.busy and not host.idle and not host.waiters:
            self._hosts.pop(key, None)

    # -- taking and giving back --------------------------------------------------------------

    def take(self, key: Hashable) -> Connection | None:
        """An idle connection to ``key`` that is still good, now in use; else None."""
        host = self._hosts.get(key)
        if host is None:
            return None
        deadline = time.monotonic() - self._keep_alive
        while host.idle:
            conn = host.idle.pop()
            if conn.idle_since >= deadline and conn.usable():
                host.busy += 1
                return conn
            conn.close()
            self._open -= 1
        return None

    def may_open(self, key: Hashable) -> bool:
        """Whether a new connection to ``key`` fits the bounds (closing another host's
        idle connection to make room under ``MaxOpen``)."""
        host = self._hosts.get(key)
        if host is not None and host.busy + len(host.idle) >= self._max_per_host:
            return False
        if self._open < self._max_open:
            return True
        oldest: tuple[float, Hashable, _Host] | None = None
        for other_key, other in self._hosts.items():
            if other.idle and (oldest is None or other.idle[0].idle_since < oldest[0]):
                oldest = (other.idle[0].idle_since, other_key, other)
        if oldest is None:
            return False
        _, other_key, other = oldest
        other.idle.pop(0).close()
        self._open -= 1
        self._tidy(other_key, other)
        return True

    def opening(self, key: Hashable) -> None:
        """A connection to ``key`` is being opened (counted from now)."""
        self._host(key).busy += 1
        self._open += 1

    def lost(self, key: Hashable) -> None:
        """A connection in use (or being opened) is gone."""
        host = self._host(key)
        host.busy -= 1
        self._open -= 1
        self._tidy(key, host)

    def park(self, conn: Connection) -> None:
        """``conn`` is idle: keep it (or close it, without keep-alive)."""
        host = self._host(conn.key)
        host.busy -= 1
        if self._keep_alive > 0:
            conn.park()
            host.idle.append(conn)
        else:
            conn.close()
            self._open -= 1
            self._tidy(conn.key, host)

    # -- waiting -----------------------------------------------------------------------------

    def wait(self, key: Hashable, call: Any) -> None:
        """Queue ``call`` until a connection to ``key`` frees."""
        self._host(key).waiters.append(call)
        self._waiting += 1

    def unwait(self, key: Hashable, call: Any) -> None:
        """Take ``call`` off the queue (cancelled, timed out)."""
        host = self._hosts.get(key)
        if host is not None and call in host.waiters:
            host.waiters.remove(call)
            self._waiting -= 1
            self._tidy(key, host)

    def next_waiter(self, key: Hashable) -> Any:
        """The oldest request waiting for ``key``, taken off the queue; else None."""
        host = self._hosts.get(key)
        if host is None or not host.waiters:
            return None
        self._waiting -= 1
        return host.waiters.popleft()

    def startable(self) -> list[Any]:
        """Waiting requests that fit the bounds now, taken off their queues (after a
        connection was lost: its slot may serve another host)."""
        started: list[Any] = []
        if not self._waiting:
            return started
        for key, host in list(self._hosts.items()):
            while host.waiters and self.may_open(key):
                started.append(host.waiters.popleft())
                self._waiting -= 1
                self.opening(key)
        return started

    # -- housekeeping ------------------------------------------------------------------------

    def cool(self, idle_before: float) -> int:
        """Stop watching the idle connections parked before ``idle_before``; return how
        many idle ones are still watched."""
        warm = 0
        for host in self._hosts.values():
            for conn in host.idle:
                if conn.warm:
                    if conn.idle_since < idle_before:
                        conn.cool()
                    else:
                        warm += 1
        return warm

    def sweep(self) -> None:
        """Close the idle connections kept past ``KeepAlive``."""
        deadline = time.monotonic() - self._keep_alive
        for key, host in list(self._hosts.items()):
            keep = [conn for conn in host.idle if conn.idle_since >= deadline]
            if len(keep) < len(host.idle):
                for conn in host.idle:
                    if conn.idle_since < deadline:
                        conn.close()
                        self._open -= 1
                host.idle = keep
                self._tidy(key, host)

    def close_all(self, each_waiter: Callable[[Any], None] | None = None) -> None:
        """Close the idle connections; hand each waiting request to ``each_waiter``."""
        for host in self._hosts.values():
            for conn in host.idle:
                conn.close()
                self._open -= 1
            host.idle = []
            waiters, host.waiters = host.waiters, deque()
            self._waiting -= len(waiters)
            if each_waiter is not None:
                for call in waiters:
                    each_waiter(call)
        for key, host in list(self._hosts.items()):
            self._tidy(key, host)

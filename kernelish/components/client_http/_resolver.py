"""Name lookups that never block the kernel: addresses as they are, a cache, and a
``getaddrinfo`` in a child process for the rest.

Discussion
----------
``getaddrinfo`` blocks: a lookup waits on the system's resolver (``/etc/hosts``,
nsswitch, a DNS server that may take its 5 s timeout several times over).  POE's
Client::HTTP asks POE::Component::Client::DNS, a DNS client of its own that reads no
``/etc/hosts`` and no nsswitch; asyncio and Node hand ``getaddrinfo`` to a thread.
Neither fits: a DNS protocol client of our own would answer differently from every other
program on the machine, and the kernel runs no threads.  So the lookup runs where
blocking is harmless -- in a child process, as Squid's ``dnsserver`` helpers did:

* **No lookup at all** for an address (``127.0.0.1``, ``::1``) and for ``localhost``
  (RFC 6761 6.3: loopback, ``127.0.0.1`` then ``::1``, whatever ``/etc/hosts`` says).
* **A cache** of answers, for ``CacheSeconds`` (60: getaddrinfo gives no TTL; Java's
  default is 30), at most :data:`CACHE_ENTRIES` names, the oldest dropped first.
  Failures are not cached.  Two requests for a name being looked up share the lookup.
* **A Run child per lookup** (a callable: the child is a fork, so it runs the same
  Python and resolver configuration; it prints one address a line and exits).  A fork of
  a large daemon costs its page tables -- about a millisecond per 100 MB here --
  which the cache pays once a minute per name.  A long-lived helper process would save
  that but must be restarted after the daemon forks, and would keep the kernel from
  ever being idle.  At most ``MaxResolvers`` (8) children run at once; further names
  wait.  A lookup that takes longer than its timeout is killed (KILL) and fails with
  ETIMEDOUT; each child is reaped through ``sig_child``.

The resolver lives in the ClientHTTP session: its events are that session's states
(:meth:`Resolver.states`), and it answers through the callbacks it was given.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from kernelish import ARG0, ARG1, KERNEL, HandlerArgs, current_kernel
from kernelish.filters import Line
from kernelish.wheels import Run

from ._url import is_literal

__all__ = ["CACHE_ENTRIES", "Lookup", "Resolver"]

log = logging.getLogger("kernelish.components.client_http")

#: The most names the cache holds.
CACHE_ENTRIES = 512

#: A lookup's answer: the addresses, or (errnum, errstr).
Answer = list[str] | tuple[int, str]
Lookup = Callable[[Answer], None]

_LOOPBACK = ["127.0.0.1", "::1"]


def _lookup_child(host: str) -> None:
    """The child's work: getaddrinfo, one address a line; ``!errnum errstr`` if none."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        sys.stdout.write(f"!{exc.errno or 0} {exc.strerror or exc}\n")
    else:
        seen = []
        for info in infos:
            address = str(info[4][0])
            if address not in seen:
                seen.append(address)
        sys.stdout.write("".join(f"{address}\n" for address in seen))
    sys.stdout.flush()


class _Pending:
    """One name being looked up: who waits, the child, what it printed."""

    __slots__ = ("addresses", "error", "host", "timer", "waiters", "wheel")

    def __init__(self, host: str) -> None:
        self.host = host
        self.waiters: list[Lookup] = []
        self.wheel: Run | None = None
        self.timer: int | None = None
        self.addresses: list[str] = []
        self.error: tuple[int, str] | None = None


class Resolver:
    """Addresses for host names, without blocking (see the module notes)."""

    def __init__(self, *, max_children: int, timeout: float, cache_seconds: float = 60.0) -> None:
        self._max = max_children
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()
        self._pending: dict[str, _Pending] = {}
        self._by_wheel: dict[int, _Pending] = {}
        self._queue: deque[_Pending] = deque()

    def states(self) -> dict[str, Callable[[HandlerArgs], Any]]:
        """The session states the resolver's children and timers report to."""
        return {
            "got_dns_line": self._got_line,
            "got_dns_close": self._got_close,
            "got_dns_reaped": _ignore,
            "got_dns_timeout": self._got_timeout,
        }

    @property
    def running(self) -> int:
        """Lookup children running now."""
        return len(self._by_wheel)

    def lookup(self, host: str, answer: Lookup) -> Answer | None:
        """The addresses of ``host`` now if known (an address, ``localhost``, a cached
        name); else None, and ``answer(addresses or (errnum, errstr))`` is called later,
        from one of the resolver's states."""
        host = host.lower().rstrip(".")
        if is_literal(host):
            return [host]
        if host == "localhost" or host.endswith(".localhost"):
            return list(_LOOPBACK)
        cached = self._cache.get(host)
        if cached is not None:
            if cached[0] > time.monotonic():
                return list(cached[1])
            del self._cache[host]
        pending = self._pending.get(host)
        if pending is None:
            pending = self._pending[host] = _Pending(host)
            if self.running < self._max:
                self._start(pending)
            else:
                self._queue.append(pending)
        pending.waiters.append(answer)
        return None

    def _start(self, pending: _Pending) -> None:
        kernel = current_kernel()
        try:
            wheel = Run(
                Program=_lookup_child,
                ProgramArgs=[pending.host],
                StdoutEvent="got_dns_line",
                CloseEvent="got_dns_close",
                StdoutFilter=Line(Literal="\n"),
                NoStdin=True,
            )
        except OSError as exc:
            self._finish(pending, (exc.errno or errno.EAGAIN, f"cannot fork a lookup: {exc}"))
            return
        pending.wheel = wheel
        self._by_wheel[wheel.ID] = pending
        kernel.sig_child(wheel.PID, "got_dns_reaped")
        pending.timer = kernel.delay_set("got_dns_timeout", self._timeout, wheel.ID)

    # -- the children's events -----------------------------------------------------------------

    def _got_line(self, _: HandlerArgs) -> None:
        pending = self._by_wheel.get(_[ARG1])
        line = str(_[ARG0]).strip()
        if pending is None or not line:
            return
        if line.startswith("!"):
            code, _sep, text = line[1:].partition(" ")
            pending.error = (int(code) if code.lstrip("-").isdigit() else 0, text)
        elif len(pending.addresses) < 64 and is_literal(line):
            pending.addresses.append(line)

    def _got_close(self, _: HandlerArgs) -> None:
        pending = self._by_wheel.pop(_[ARG0], None)
        if pending is None:
            return
        if pending.timer is not None:
            _[KERNEL].alarm_remove(pending.timer)
        pending.wheel = None
        if pending.addresses:
            self._remember(pending.host, pending.addresses)
            self._finish(pending, list(pending.addresses))
        else:
            error = pending.error or (0, "no address")
            self._finish(pending, (error[0], f"cannot resolve {pending.host}: {error[1]}"))
        self._next()

    def _got_timeout(self, _: HandlerArgs) -> None:
        pending = self._by_wheel.pop(_[ARG0], None)
        if pending is None:
            return
        if pending.wheel is not None:
            pending.wheel.kill("KILL")  # its sig_child watch reaps it
            pending.wheel = None
        code = errno.ETIMEDOUT
        self._finish(pending, (code, f"cannot resolve {pending.host}: {os.strerror(code)}"))
        self._next()

    # -- answers -------------------------------------------------------------------------------

    def _remember(self, host: str, addresses: list[str]) -> None:
        cache = self._cache
        cache[host] = (time.monotonic() + self._cache_seconds, list(addresses))
        cache.move_to_end(host)
        while len(cache) > CACHE_ENTRIES:
            cache.popitem(last=False)

    def _finish(self, pending: _Pending, answer: Answer) -> None:
        self._pending.pop(pending.host, None)
        waiters, pending.waiters = pending.waiters, []
        for waiter in waiters:
            waiter(answer)

    def _next(self) -> None:
        while self._queue and self.running < self._max:
            self._start(self._queue.popleft())

    def shutdown(self) -> None:
        """Kill the lookups still running; forget those waiting."""
        for pending in list(self._by_wheel.values()):
            if pending.wheel is not None:
                pending.wheel.kill("KILL")
        self._queue.clear()
        for pending in self._pending.values():
            pending.waiters.clear()


def _ignore(_: HandlerArgs) -> None:
    """A reaped lookup child: nothing to do (its answer came on its stdout)."""

"""The kernel's selector: epoll, with standing exclusive watches for
listening sockets that pre-forked children share (see :class:`KernelSelector`).

Linux only, as the rest of the Daemon (epoll, ``prctl``, ``/proc``).
"""

from __future__ import annotations

import logging
import math
import os
import select
import selectors
from typing import Any

__all__ = ["KernelSelector", "make_exclusive", "new_selector"]

_EVENT_READ = selectors.EVENT_READ

log = logging.getLogger("kernelish")

_EPOLLEXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)


def make_exclusive(selector: selectors.BaseSelector, fd: int) -> None:
    """Turn an epoll read registration into an exclusive one (Linux >= 4.5).

    ``selectors`` keeps its own key for ``fd``; only the kernel-side entry is
    replaced.  Where epoll or the flag is missing, the watch stays as it was.
    """
    epoll = getattr(selector, "_selector", None)
    if not _EPOLLEXCLUSIVE or not isinstance(epoll, select.epoll):
        return
    try:
        epoll.unregister(fd)
        epoll.register(fd, select.EPOLLIN | _EPOLLEXCLUSIVE)
    except OSError as exc:
        log.debug("%d: fd %d stays non-exclusive: %s", os.getpid(), fd, exc)
        epoll.register(fd, select.EPOLLIN)


class KernelSelector(selectors.EpollSelector):
    """The kernel's selector: epoll, plus exclusive read watches for
    listening sockets that pre-forked children share.

    Discussion
    ----------
    With ``EPOLLEXCLUSIVE`` a new connection wakes one process waiting in
    ``epoll_wait``, the first in the listener's wait queue.  Pausing a
    listener by removing it from the epoll set and resuming it by adding
    it again -- what POE's pause does, and what a pre-forked child does
    for every request -- puts the child at the *end* of that queue, so
    connections go round every child in turn, each with cold caches:
    measured at half the throughput of one child at one client.

    So a listener's exclusive watch *stands*: it sits in a second epoll
    set (``standing``) with this selector's own epoll fd, registered once.
    While some standing watch is active the selector waits on that set
    (and collects the main set's events when its fd is ready); while all
    are paused it waits on the main set alone, so a paused child is not a
    waiter there and a connection passes it by for an idle one.  Pause
    and resume cost no system call, the queue order never changes, and
    the first idle child takes the next connection: the warm one.
    A paused watch stays in the standing set only while no other is
    active, so a wakeup is never swallowed by a paused listener.
    Under asyncio (which watches one fd) watches do not stand.
    """

    standing = True

    def __init__(self) -> None:
        super().__init__()
        self._standing: select.epoll | None = None
        #: fd -> (key, active) of each standing exclusive watch
        self._stand: dict[int, list[Any]] = {}
        self._active = 0

    def _standing_set(self) -> select.epoll:
        if self._standing is None:
            standing = select.epoll()
            try:
                standing.register(self._selector.fileno(), select.EPOLLIN)  # type: ignore[attr-defined]
            except BaseException:
                standing.close()
                raise
            self._standing = standing
        return self._standing

    def exclusive_read(self, fd: int, data: Any, active: bool) -> None:
        """Watch ``fd`` for reading, exclusive and standing; ``active``
        False pauses it."""
        entry = self._stand.get(fd)
        if entry is None:
            self._standing_set().register(fd, select.EPOLLIN | _EPOLLEXCLUSIVE)
            entry = self._stand[fd] = [selectors.SelectorKey(fd, fd, _EVENT_READ, data), False]
        elif entry[0].data is not data:
            entry[0] = entry[0]._replace(data=data)
        if active is entry[1]:
            return
        entry[1] = active
        if active:
            self._active += 1
            for other, (_key, on) in list(self._stand.items()):
                if not on:  # would swallow wakeups while we wait on the set
                    self.exclusive_drop(other)
        else:
            self._active -= 1
            if self._active:
                self.exclusive_drop(fd)

    def exclusive_drop(self, fd: int) -> None:
        """Stop the standing watch of ``fd`` (a no-op if there is none)."""
        entry = self._stand.pop(fd, None)
        if entry is None:
            return
        if entry[1]:
            self._active -= 1
        if self._standing is not None:
            try:
                self._standing.unregister(fd)
            except OSError:
                pass

    def unstand(self) -> list[Any]:
        """Drop every standing watch and stop standing; returns the data
        of each, for the caller to register again."""
        self.standing = False
        dropped = [entry[0].data for entry in self._stand.values()]
        for fd in list(self._stand):
            self.exclusive_drop(fd)
        return dropped

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Ready keys, as ``selectors`` gives them; from the standing set
        while a standing watch is active (see the class notes)."""
        if not self._active or self._standing is None:
            return super().select(timeout)
        if timeout is None:
            wait = -1.0
        elif timeout <= 0:
            wait = 0.0
        else:
            wait = math.ceil(timeout * 1e3) * 1e-3
        try:
            events = self._standing.poll(wait, len(self._stand) + 1)
        except InterruptedError:
            return []
        ready: list[tuple[selectors.SelectorKey, int]] = []
        main = False
        for fd, _mask in events:
            entry = self._stand.get(fd)
            if entry is None:
                main = True  # this selector's own epoll fd
            elif entry[1]:
                ready.append((entry[0], _EVENT_READ))
        if main:
            ready += super().select(0)
        return ready

    def close(self) -> None:
        """Close both epoll sets."""
        if self._standing is not None:
            self._standing.close()
            self._standing = None
        self._stand.clear()
        self._active = 0
        super().close()

    def register_exclusive(self, fd: int, data: Any) -> selectors.SelectorKey:
        """Watch ``fd`` for reading with ``EPOLLEXCLUSIVE`` in one
        ``epoll_ctl`` (a listener resumed for every connection)."""
        key = selectors._BaseSelectorImpl.register(self, fd, _EVENT_READ, data)
        try:
            self._selector.register(key.fd, select.EPOLLIN | _EPOLLEXCLUSIVE)  # type: ignore[attr-defined]
        except BaseException:
            selectors._BaseSelectorImpl.unregister(self, fd)
            raise
        return key


def new_selector() -> selectors.BaseSelector:
    """A fresh selector for the kernel (after a fork too): a
    :class:`KernelSelector` where Linux has ``EPOLLEXCLUSIVE`` (4.5+)."""
    return KernelSelector() if _EPOLLEXCLUSIVE else selectors.DefaultSelector()

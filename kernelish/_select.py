"""I/O watchers: ``select_read`` and friends on the ``selectors`` module (1.9).

Discussion
----------
A watched handle (a socket, a file with ``fileno()``, or a raw fd) belongs to
one session per mode and keeps that session alive -- paused too, since POE's
pause only touches the OS-level watch.  Readiness callbacks run at once,
synchronously, in the I/O phase of the timeslice (read before write), with
ARG0 = the handle, ARG1 = the mode (0 read, 1 write) and SENDER = the session.

The registration is level-triggered: a handle that is not drained fires
again next slice.  Where POE keeps the *old* event when a handle is watched
again with a new one (a surprise, see POE-SEMANTICS 1.9), we replace it.

Wheels register a callable instead of a state name; the kernel runs it as
the session, with the same exception rule as a handler.
"""

from __future__ import annotations

import os
import selectors
import socket
from collections.abc import Callable
from typing import Any

from ._core import KernelCore
from ._session import Session, _Node

__all__ = ["MODE_READ", "MODE_WRITE", "SelectAPI"]

MODE_READ = 0
MODE_WRITE = 1
_MASKS = (selectors.EVENT_READ, selectors.EVENT_WRITE)


class _ModeWatch:
    __slots__ = ("event", "extra", "paused")

    def __init__(self, event: str | Callable[..., Any], extra: tuple[Any, ...]) -> None:
        self.event = event
        self.extra = extra
        self.paused = False


class FdWatch:
    """Everything watched on one file descriptor."""

    __slots__ = ("fd", "handle", "mask", "modes", "session")

    def __init__(self, fd: int, handle: Any, session: _Node) -> None:
        self.fd = fd
        self.handle = handle
        self.session = session
        self.modes: list[_ModeWatch | None] = [None, None]
        self.mask = 0


def fileno_of(handle: Any) -> int:
    """The file descriptor of a socket, file object or raw fd."""
    if isinstance(handle, int):
        return handle
    return int(handle.fileno())


class SelectAPI(KernelCore):
    """The I/O watcher calls of POE::Kernel."""

    _selector: selectors.BaseSelector
    _fd_watch: dict[int, FdWatch]

    def _watch(
        self, handle: Any, mode: int, event: str | Callable[..., Any] | None, extra: tuple[Any, ...]
    ) -> int:
        session = self._active_session
        fd = fileno_of(handle)
        watch = self._fd_watch.get(fd)
        if event is None:
            if watch is not None and watch.modes[mode] is not None:
                watch.modes[mode] = None
                self._update_mask(watch)
                if watch.modes == [None, None]:
                    self._drop_fd(watch)
            return 0
        if watch is None:
            if isinstance(handle, socket.socket):
                handle.setblocking(False)
            else:
                os.set_blocking(fd, False)
            watch = self._fd_watch[fd] = FdWatch(fd, handle, session)
            session._fds[fd] = 1
            session._refs += 1
        elif watch.session is not session:
            raise RuntimeError(
                f"fd {fd} is already watched by {watch.session!r}; {session!r} cannot watch it too"
            )
        watch.modes[mode] = _ModeWatch(event, extra)
        self._update_mask(watch)
        return 0

    def _drop_fd(self, watch: FdWatch) -> None:
        del self._fd_watch[watch.fd]
        session = watch.session
        if session._fds.pop(watch.fd, None) is not None:
            self._unref(session)

    def _update_mask(self, watch: FdWatch) -> None:
        mask = 0
        for mode, mw in enumerate(watch.modes):
            if mw is not None and not mw.paused:
                mask |= _MASKS[mode]
        if mask == watch.mask:
            return
        try:
            if watch.mask == 0:
                self._selector.register(watch.fd, mask, watch)
            elif mask == 0:
                self._selector.unregister(watch.fd)
            else:
                self._selector.modify(watch.fd, mask, watch)
        except (OSError, ValueError, KeyError):
            # A closed handle: forget the OS-level watch, keep the bookkeeping.
            try:
                self._selector.unregister(watch.fd)
            except (KeyError, ValueError, OSError):
                pass
            mask = 0
        watch.mask = mask

    def _pause(self, handle: Any, mode: int, paused: bool) -> int:
        watch = self._fd_watch.get(fileno_of(handle))
        if watch is None:
            return 0
        mw = watch.modes[mode]
        if mw is None:
            return 0
        mw.paused = paused
        self._update_mask(watch)
        return 1

    def select_read(
        self, handle: Any, event: str | Callable[..., Any] | None = None, *extra: Any
    ) -> int:
        """Watch ``handle`` for reading (``$kernel->select_read``); without
        ``event``, stop.  ARG0 = handle, ARG1 = 0, ARG2.. = ``extra``."""
        return self._watch(handle, MODE_READ, event, extra)

    def select_write(
        self, handle: Any, event: str | Callable[..., Any] | None = None, *extra: Any
    ) -> int:
        """Watch ``handle`` for writing (``$kernel->select_write``)."""
        return self._watch(handle, MODE_WRITE, event, extra)

    def select_pause_read(self, handle: Any) -> int:
        """Stop the OS-level read watch, keep the bookkeeping; 1 if watched."""
        return self._pause(handle, MODE_READ, True)

    def select_resume_read(self, handle: Any) -> int:
        """Resume a paused read watch; 1 if watched."""
        return self._pause(handle, MODE_READ, False)

    def select_pause_write(self, handle: Any) -> int:
        """Stop the OS-level write watch; 1 if watched."""
        return self._pause(handle, MODE_WRITE, True)

    def select_resume_write(self, handle: Any) -> int:
        """Resume a paused write watch; 1 if watched."""
        return self._pause(handle, MODE_WRITE, False)

    def select(
        self, handle: Any, ev_read: str | None = None, ev_write: str | None = None, *extra: Any
    ) -> int:
        """Set or clear the read and write watches at once (``select``)."""
        self._watch(handle, MODE_READ, ev_read, extra)
        self._watch(handle, MODE_WRITE, ev_write, extra)
        return 0

    def _dispatch_ready(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        """Run the I/O callbacks of one select, read before write."""
        fd_watch = self._fd_watch
        for key, mask in ready:
            watch: FdWatch | None = key.data
            if watch is None:
                self._drain_wakeup()
                continue
            for mode in (MODE_READ, MODE_WRITE):
                if not mask & _MASKS[mode] or fd_watch.get(watch.fd) is not watch:
                    continue
                mw = watch.modes[mode]
                if mw is None or mw.paused:
                    continue
                event = mw.event
                session = watch.session
                if callable(event):
                    self._invoke_callable(session, event, watch.handle, mode)
                else:
                    self._invoke(
                        session,
                        event,
                        (watch.handle, mode, *mw.extra),
                        session,
                        None,
                        None,
                        None,
                        0,
                    )
        if self._marked:
            self._sweep()

    def _drain_wakeup(self) -> None:  # pragma: no cover - SignalsAPI's
        raise NotImplementedError

    def _release_session_resources(self, session: Session) -> None:
        for fd in list(session._fds):
            watch = self._fd_watch.get(fd)
            if watch is not None and watch.session is session:
                watch.modes = [None, None]
                self._update_mask(watch)
                del self._fd_watch[fd]
        session._fds.clear()
        super()._release_session_resources(session)

    def _new_selector(self) -> None:
        """A fresh selector with every current watch (after a fork: an epoll
        set must never be shared with the parent)."""
        self._selector = selectors.DefaultSelector()
        for watch in self._fd_watch.values():
            watch.mask = 0
            self._update_mask(watch)

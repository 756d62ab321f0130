"""I/O watchers: ``select_read`` and friends on the ``selectors`` module (1.9).

Discussion
----------
A watched handle (a socket, a file with ``fileno()``, or a raw fd) belongs to
one session per mode and keeps that session alive -- paused too, since POE's
pause only touches the OS-level watch.  As in POE (3.1) a session holds one
reference per distinct fd it watches, whatever the modes.  Two sessions may
watch one fd in different modes; the same fd and mode in two sessions is an
error, as in POE.  Readiness callbacks run at once, synchronously, in the I/O
phase of the timeslice (read before write), with ARG0 = the handle, ARG1 = the
mode (0 read, 1 write) and SENDER = the session.

The registration is level-triggered: a handle that is not drained fires
again next slice.  Where POE keeps the *old* event when a handle is watched
again with a new one (a surprise, see POE-SEMANTICS 1.9), we replace it.

A handle closed while still watched leaves a stale entry behind (the OS drops
the fd from the epoll set by itself).  When a *different* handle object later
arrives with the same fd number and the old one is closed, the stale entry is
forgotten instead of raising: that is fd reuse, not a conflict.

Wheels register a callable instead of a state name; the kernel runs it as
the session that created the wheel (``_watch_as``), with the same exception
rule as a handler, and a wheel removes only its own watch (``_unwatch_if``),
so a new wheel on a reused fd is never disturbed by an old wheel's cleanup.
"""

from __future__ import annotations

import math
import os
import select
import selectors
import socket
import weakref
from collections.abc import Callable
from typing import Any

from ._core import KernelCore
from ._session import Session, _Node

__all__ = ["MODE_READ", "MODE_WRITE", "SelectAPI", "fileno_of"]

MODE_READ = 0
MODE_WRITE = 1
_EVENT_READ = selectors.EVENT_READ
_EVENT_WRITE = selectors.EVENT_WRITE
_MASKS = (_EVENT_READ, _EVENT_WRITE)

Event = str | Callable[..., Any]


class _ModeWatch:
    """One mode of one fd, watched by one session."""

    __slots__ = ("event", "extra", "handle", "owner", "paused", "session")

    def __init__(
        self,
        session: _Node,
        handle: Any,
        event: Event,
        extra: tuple[Any, ...],
        owner: weakref.ref[Any] | None = None,
    ) -> None:
        self.session = session
        self.handle = handle
        self.event = event
        self.extra = extra
        self.paused = False
        #: for a weak watch (``handle`` is then the fd): the handle object
        self.owner = owner

    def stale(self, handle: Any) -> bool:
        """Whether this watch belongs to a closed (or freed) handle other
        than ``handle``."""
        if self.owner is not None:
            held = self.owner()
            return held is not handle and (held is None or _is_closed(held))
        return self.handle is not handle and _is_closed(self.handle)


class FdWatch:
    """Everything watched on one file descriptor."""

    __slots__ = ("exclusive", "fd", "mask", "modes")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.modes: list[_ModeWatch | None] = [None, None]
        self.mask = 0
        #: read readiness wakes only one of the processes watching this fd
        #: (``EPOLLEXCLUSIVE``): set for listening sockets, which forked
        #: children share -- else every idle child wakes for each connection.
        self.exclusive = False

    @property
    def handle(self) -> Any:
        """The handle of the first watched mode (for introspection)."""
        for mw in self.modes:
            if mw is not None:
                return mw.handle
        return None

    @property
    def session(self) -> _Node | None:
        """The session of the first watched mode (for introspection)."""
        for mw in self.modes:
            if mw is not None:
                return mw.session
        return None


def fileno_of(handle: Any) -> int:
    """The file descriptor of a socket, file object or raw fd."""
    if isinstance(handle, int):
        return handle
    return int(handle.fileno())


def _is_closed(handle: Any) -> bool:
    if isinstance(handle, int):
        return False
    try:
        return int(handle.fileno()) < 0
    except (OSError, ValueError):
        return True


class SelectAPI(KernelCore):
    """The I/O watcher calls of POE::Kernel."""

    _selector: selectors.BaseSelector
    _fd_watch: dict[int, FdWatch]
    _standing_exclusive = True

    # -- bookkeeping ------------------------------------------------------

    def _watch_as(
        self,
        session: _Node,
        handle: Any,
        mode: int,
        event: Event | None,
        extra: tuple[Any, ...] = (),
        *,
        weak: bool = False,
        paused: bool = False,
    ) -> None:
        """Watch (or, with ``event`` None, stop watching) ``handle`` in
        ``mode`` for ``session``; ``paused`` starts it paused (no OS-level
        watch yet).  ``weak``: keep only the fd and a weak
        reference to ``handle`` (wheels: the kernel must not keep a dropped
        wheel's socket open)."""
        fd = fileno_of(handle)
        watch = self._fd_watch.get(fd)
        if event is None:
            if watch is not None:
                mw = watch.modes[mode]
                if mw is not None:
                    self._drop_mode(watch, mode)
            return
        if fd < 0:
            raise ValueError(f"cannot watch a closed handle: {handle!r}")
        fresh = watch is None
        if watch is None:
            watch = self._fd_watch[fd] = FdWatch(fd)
        else:
            self._forget_stale(watch, handle)
        old = watch.modes[mode]
        if old is not None and old.session is not session:
            raise RuntimeError(
                f"fd {fd} is already watched for {('read', 'write')[mode]} by "
                f"{old.session!r}; {session!r} cannot watch it too"
            )
        if old is None:
            if fresh:  # once per fd, not per mode: it is one ioctl each time
                if isinstance(handle, socket.socket):
                    if handle.getblocking():  # Python's own flag: no syscall
                        handle.setblocking(False)
                else:
                    os.set_blocking(fd, False)
            count = session._fds.get(fd, 0)
            session._fds[fd] = count + 1
            if not count:
                session._refs += 1
        if weak and not isinstance(handle, int):
            mw = _ModeWatch(session, fd, event, extra, weakref.ref(handle))
        else:
            mw = _ModeWatch(session, handle, event, extra)
        mw.paused = paused
        watch.modes[mode] = mw
        self._update_mask(watch)

    def _forget_stale(self, watch: FdWatch, handle: Any) -> None:
        """Drop modes left behind by a handle closed while watched (fd reuse)."""
        for mode, mw in enumerate(watch.modes):
            if mw is not None and mw.stale(handle):
                self._drop_mode(watch, mode)
        if watch.fd not in self._fd_watch:
            self._fd_watch[watch.fd] = watch

    def _drop_mode(self, watch: FdWatch, mode: int) -> None:
        mw = watch.modes[mode]
        assert mw is not None
        watch.modes[mode] = None
        self._update_mask(watch)
        if watch.modes[0] is None and watch.modes[1] is None:
            del self._fd_watch[watch.fd]
        session = mw.session
        fd = watch.fd
        count = session._fds.get(fd, 0) - 1
        if count > 0:
            session._fds[fd] = count
        elif session._fds.pop(fd, None) is not None:
            self._unref(session)

    def _unwatch_if(self, fd: int, mode: int, event: Event) -> None:
        """Stop watching ``fd`` in ``mode`` if ``event`` is still its event
        (a wheel's cleanup: it never removes someone else's watch)."""
        watch = self._fd_watch.get(fd)
        if watch is not None:
            mw = watch.modes[mode]
            if mw is not None and mw.event is event:
                self._drop_mode(watch, mode)

    def _update_mask(self, watch: FdWatch) -> None:
        mask = 0
        r, w = watch.modes
        if r is not None and not r.paused:
            mask = _EVENT_READ
        if w is not None and not w.paused:
            mask |= _EVENT_WRITE
        selector = self._selector
        if watch.exclusive and w is None and getattr(selector, "standing", False):
            # A listener: its standing exclusive watch is paused and resumed
            # without a system call (see KernelSelector).
            try:
                if r is None:
                    selector.exclusive_drop(watch.fd)  # type: ignore[attr-defined]
                else:
                    selector.exclusive_read(watch.fd, watch, not r.paused)  # type: ignore[attr-defined]
            except (OSError, ValueError):
                selector.exclusive_drop(watch.fd)  # type: ignore[attr-defined]
                mask = 0
            watch.mask = mask
            return
        if mask == watch.mask:
            return
        try:
            if watch.exclusive and watch.mask and mask:
                # An exclusive epoll entry cannot be modified, only replaced.
                selector.unregister(watch.fd)
                watch.mask = 0
            if watch.mask == 0:
                if watch.exclusive and mask == _EVENT_READ and isinstance(selector, KernelSelector):
                    selector.register_exclusive(watch.fd, watch)
                else:
                    selector.register(watch.fd, mask, watch)
                    if watch.exclusive and mask == _EVENT_READ:
                        _make_exclusive(selector, watch.fd)
            elif mask == 0:
                selector.unregister(watch.fd)
            else:
                selector.modify(watch.fd, mask, watch)
        except (OSError, ValueError, KeyError):
            # A closed handle: forget the OS-level watch, keep the bookkeeping.
            try:
                selector.unregister(watch.fd)
            except (KeyError, ValueError, OSError):
                pass
            mask = 0
        watch.mask = mask

    def _set_exclusive(self, handle: Any) -> None:
        """Wake one watcher, not all, when ``handle`` becomes readable
        (a listening socket shared by pre-forked children)."""
        watch = self._fd_watch.get(fileno_of(handle))
        if watch is None or watch.exclusive:
            return
        if getattr(self._selector, "standing", False) and watch.modes[1] is None:
            if watch.mask:  # leave the main epoll set for the standing one
                try:
                    self._selector.unregister(watch.fd)
                except (KeyError, ValueError, OSError):
                    pass
                watch.mask = 0
            watch.exclusive = True
            self._update_mask(watch)
            return
        watch.exclusive = True
        if watch.mask == _EVENT_READ:
            _make_exclusive(self._selector, watch.fd)

    def _pause(self, handle: Any, mode: int, paused: bool) -> int:
        watch = self._fd_watch.get(fileno_of(handle))
        if watch is None:
            return 0
        mw = watch.modes[mode]
        if mw is None:
            return 0
        if mw.paused is not paused:
            mw.paused = paused
            self._update_mask(watch)
        return 1

    # -- the public calls ---------------------------------------------------

    def select_read(self, handle: Any, event: Event | None = None, *extra: Any) -> int:
        """Watch ``handle`` for reading (``$kernel->select_read``); without
        ``event``, stop.  ARG0 = handle, ARG1 = 0, ARG2.. = ``extra``.
        Returns 0, as POE's does."""
        self._watch_as(self._active_session, handle, MODE_READ, event, extra)
        return 0

    def select_write(self, handle: Any, event: Event | None = None, *extra: Any) -> int:
        """Watch ``handle`` for writing (``$kernel->select_write``); returns 0."""
        self._watch_as(self._active_session, handle, MODE_WRITE, event, extra)
        return 0

    def select_pause_read(self, handle: Any) -> int:
        """Stop the OS-level read watch, keep the bookkeeping (and the
        session's reference); 1 if watched for reading, else 0."""
        return self._pause(handle, MODE_READ, True)

    def select_resume_read(self, handle: Any) -> int:
        """Resume a paused read watch; 1 if watched for reading, else 0."""
        return self._pause(handle, MODE_READ, False)

    def select_pause_write(self, handle: Any) -> int:
        """Stop the OS-level write watch; 1 if watched for writing, else 0."""
        return self._pause(handle, MODE_WRITE, True)

    def select_resume_write(self, handle: Any) -> int:
        """Resume a paused write watch; 1 if watched for writing, else 0."""
        return self._pause(handle, MODE_WRITE, False)

    def select(
        self, handle: Any, ev_read: Event | None = None, ev_write: Event | None = None, *extra: Any
    ) -> int:
        """Set or clear the read and write watches at once (``select``);
        returns 0."""
        session = self._active_session
        self._watch_as(session, handle, MODE_READ, ev_read, extra)
        self._watch_as(session, handle, MODE_WRITE, ev_write, extra)
        return 0

    # -- dispatch -----------------------------------------------------------

    def _dispatch_ready(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        """Run the I/O callbacks of one select, read before write."""
        fd_watch = self._fd_watch
        for key, mask in ready:
            watch: FdWatch | None = key.data
            if watch is None:
                self._drain_wakeup()
                continue
            if mask & _EVENT_READ:
                mw = watch.modes[0]
                if mw is not None and not mw.paused and fd_watch.get(watch.fd) is watch:
                    self._fire(mw, MODE_READ)
            if mask & _EVENT_WRITE:
                mw = watch.modes[1]
                if mw is not None and not mw.paused and fd_watch.get(watch.fd) is watch:
                    self._fire(mw, MODE_WRITE)
        if self._marked:
            self._sweep()

    def _fire(self, mw: _ModeWatch, mode: int) -> None:
        event = mw.event
        session = mw.session
        if isinstance(event, str):
            self._invoke(session, event, (mw.handle, mode, *mw.extra), session, None, None, None, 0)
        else:
            self._invoke_callable(session, event, mw.handle, mode)

    def _drain_wakeup(self) -> None:  # pragma: no cover - SignalsAPI's
        raise NotImplementedError

    def _release_session_resources(self, session: Session) -> None:
        for fd in list(session._fds):
            watch = self._fd_watch.get(fd)
            if watch is None:
                continue
            for mode, mw in enumerate(watch.modes):
                if mw is not None and mw.session is session:
                    watch.modes[mode] = None
            self._update_mask(watch)
            if watch.modes[0] is None and watch.modes[1] is None:
                del self._fd_watch[fd]
        session._fds.clear()
        super()._release_session_resources(session)

    def _new_selector(self) -> None:
        """A fresh selector with every current watch (after a fork: an epoll
        set must never be shared with the parent)."""
        self._selector = new_selector()
        if not self._standing_exclusive and isinstance(self._selector, KernelSelector):
            self._selector.standing = False
        for watch in self._fd_watch.values():
            watch.mask = 0
            self._update_mask(watch)

    def _no_standing_exclusive(self) -> None:
        """Keep exclusive watches in the selector's one epoll set, paused by
        removing them (the asyncio bridge watches that set's fd alone)."""
        self._standing_exclusive = False
        selector = self._selector
        if isinstance(selector, KernelSelector) and selector.standing:
            for watch in selector.unstand():
                watch.mask = 0
                self._update_mask(watch)


_EPOLLEXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)


def _make_exclusive(selector: selectors.BaseSelector, fd: int) -> None:
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
    except OSError:
        epoll.register(fd, select.EPOLLIN)


if hasattr(selectors, "EpollSelector"):

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
        """A fresh selector for the kernel (after a fork too)."""
        return KernelSelector() if _EPOLLEXCLUSIVE else selectors.DefaultSelector()

else:  # pragma: no cover - not Linux

    class KernelSelector:  # type: ignore[no-redef]
        """Placeholder where epoll does not exist."""

    def new_selector() -> selectors.BaseSelector:
        """A fresh selector for the kernel."""
        return selectors.DefaultSelector()

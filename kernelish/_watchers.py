"""I/O watchers: what ``select_read`` and friends watch (POE-SEMANTICS 1.9).

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

Wheels register a callable instead of a state name (``weak=True``: only the
fd and a weak reference to the handle are kept, so the kernel never keeps a
dropped wheel's socket open), and a wheel removes only its own watch
(:meth:`Watchers.unwatch`), so a new wheel on a reused fd is never disturbed
by an old wheel's cleanup.

:class:`Watchers` is one of the kernel's collaborators: it owns the selector
and the table of watches, and is given at construction the three things it
needs from the kernel -- run a state, run a callable as a session, drop a
session's reference -- plus what to do when the signal wakeup pipe is ready.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from ._selector import KernelSelector, make_exclusive, new_selector
from ._session import Node

__all__ = ["MODE_READ", "MODE_WRITE", "FdWatch", "Watchers", "fileno_of"]

MODE_READ = 0
MODE_WRITE = 1
_EVENT_READ = selectors.EVENT_READ
_EVENT_WRITE = selectors.EVENT_WRITE

log = logging.getLogger("kernelish")

#: What a watch runs: a state name, or a callable ``(handle, mode)``.
WatchEvent = str | Callable[..., Any]


class ModeWatch:
    """One mode of one fd, watched by one session."""

    __slots__ = ("event", "extra", "handle", "owner", "paused", "session")

    def __init__(
        self,
        session: Node,
        handle: Any,
        event: WatchEvent,
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
        self.modes: list[ModeWatch | None] = [None, None]
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
    def session(self) -> Node | None:
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


class Watchers:
    """The kernel's I/O watchers: the selector and every watched fd.

    ``run_state(session, state, args)`` runs a session's state (a watch made
    with a state name), ``run_callable(session, func, *args)`` runs a
    callable as the session, ``unref(session)`` drops one of the session's
    references, ``on_wakeup()`` drains the signal wakeup pipe whose fd is
    given to :meth:`watch_wakeup`.
    """

    def __init__(
        self,
        *,
        run_state: Callable[[Node, str, tuple[Any, ...]], Any],
        run_callable: Callable[..., Any],
        unref: Callable[[Node], None],
        on_wakeup: Callable[[], None],
    ) -> None:
        self._run_state = run_state
        self._run_callable = run_callable
        self._unref = unref
        self._on_wakeup = on_wakeup
        self._selector: selectors.BaseSelector = new_selector()
        self._fds: dict[int, FdWatch] = {}
        self._wakeup_fd = -1
        #: Listeners' exclusive watches stand in their own epoll set (see
        #: KernelSelector) unless the asyncio bridge drives the kernel.
        self._standing = True

    # -- the selector ---------------------------------------------------------

    @property
    def selector(self) -> selectors.BaseSelector:
        """The selector (its fd is what the asyncio bridge watches)."""
        return self._selector

    def watch_wakeup(self, fd: int) -> None:
        """Watch the signal wakeup pipe's read end (``on_wakeup`` when ready)."""
        self._wakeup_fd = fd
        self._selector.register(fd, _EVENT_READ, None)

    def poll(self, timeout: float) -> list[tuple[selectors.SelectorKey, int]]:
        """Wait up to ``timeout`` seconds for readiness."""
        return self._selector.select(timeout)

    def renew_selector(self, wakeup_fd: int) -> None:
        """A fresh selector with every current watch (after a fork: an epoll
        set must never be shared with the parent; our copy of its fd is
        closed, which never unregisters anything in the shared set)."""
        try:
            self._selector.close()
        except OSError:  # pragma: no cover
            pass
        self._selector = new_selector()
        if not self._standing and isinstance(self._selector, KernelSelector):
            self._selector.standing = False
        for watch in self._fds.values():
            watch.mask = 0
            self._update_mask(watch)
        self.watch_wakeup(wakeup_fd)

    def no_standing_exclusive(self) -> None:
        """Keep exclusive watches in the selector's one epoll set, paused by
        removing them (the asyncio bridge watches that set's fd alone)."""
        self._standing = False
        selector = self._selector
        if isinstance(selector, KernelSelector) and selector.standing:
            for watch in selector.unstand():
                watch.mask = 0
                self._update_mask(watch)

    # -- watching -------------------------------------------------------------

    def watch(
        self,
        session: Node,
        handle: Any,
        mode: int,
        event: WatchEvent,
        extra: tuple[Any, ...] = (),
        *,
        weak: bool = False,
        paused: bool = False,
        exclusive: bool = False,
    ) -> None:
        """Watch ``handle`` in ``mode`` for ``session``: readiness runs
        ``event`` (a state, with ARG0 = handle, ARG1 = mode, ARG2.. =
        ``extra``; or a callable ``(handle, mode)``) as the session.

        ``weak``: keep only the fd and a weak reference to ``handle`` (a
        wheel's watch).  ``paused``: registered, not yet armed.
        ``exclusive``: a readable handle wakes one of the processes that
        share it (``EPOLLEXCLUSIVE``; listeners of pre-forked children).
        """
        fd = fileno_of(handle)
        if fd < 0:
            raise ValueError(f"cannot watch a closed handle: {handle!r}")
        watch = self._fds.get(fd)
        fresh = watch is None
        if watch is None:
            watch = self._fds[fd] = FdWatch(fd)
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
            mw = ModeWatch(session, fd, event, extra, weakref.ref(handle))
        else:
            mw = ModeWatch(session, handle, event, extra)
        mw.paused = paused
        watch.modes[mode] = mw
        self._update_mask(watch)
        if exclusive and mode == MODE_READ:
            self._set_exclusive(watch)

    def forget(self, handle: Any, mode: int) -> None:
        """Stop watching ``handle`` in ``mode`` (``select_read($handle)``)."""
        watch = self._fds.get(fileno_of(handle))
        if watch is not None and watch.modes[mode] is not None:
            self._drop_mode(watch, mode)

    def unwatch(self, fd: int, mode: int, callback: WatchEvent) -> None:
        """Stop watching ``fd`` in ``mode`` if ``callback`` is still its
        watcher (a wheel's cleanup: never someone else's watch of a reused fd)."""
        watch = self._fds.get(fd)
        if watch is not None:
            mw = watch.modes[mode]
            if mw is not None and mw.event is callback:
                self._drop_mode(watch, mode)

    def pause(self, handle: Any, mode: int, paused: bool) -> int:
        """Pause or resume the OS-level watch of ``handle`` in ``mode``,
        keeping the bookkeeping (and the session's reference); 1 if watched."""
        watch = self._fds.get(fileno_of(handle))
        if watch is None:
            return 0
        mw = watch.modes[mode]
        if mw is None:
            return 0
        if mw.paused is not paused:
            mw.paused = paused
            self._update_mask(watch)
        return 1

    def release(self, session: Node) -> None:
        """Drop every watch of a stopping session (its references go with
        the session)."""
        for fd in list(session._fds):
            watch = self._fds.get(fd)
            if watch is None:
                continue
            for mode, mw in enumerate(watch.modes):
                if mw is not None and mw.session is session:
                    watch.modes[mode] = None
            self._update_mask(watch)
            if watch.modes[0] is None and watch.modes[1] is None:
                del self._fds[fd]
        session._fds.clear()

    # -- introspection -------------------------------------------------------

    def __len__(self) -> int:
        """Number of watched fds (any watch means the kernel is not idle)."""
        return len(self._fds)

    def is_watched(self, handle: Any, mode: int) -> bool:
        """Whether ``handle`` is watched in ``mode``."""
        watch = self._fds.get(fileno_of(handle))
        return watch is not None and watch.modes[mode] is not None

    def __iter__(self) -> Iterator[FdWatch]:
        """Every watched fd."""
        return iter(list(self._fds.values()))

    # -- dispatch -----------------------------------------------------------

    def fire(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        """Run the I/O callbacks of one poll, read before write."""
        fds = self._fds
        for key, mask in ready:
            watch: FdWatch | None = key.data
            if watch is None:
                self._on_wakeup()
                continue
            if mask & _EVENT_READ:
                mw = watch.modes[0]
                if mw is not None and not mw.paused and fds.get(watch.fd) is watch:
                    self._fire(mw, MODE_READ)
            if mask & _EVENT_WRITE:
                mw = watch.modes[1]
                if mw is not None and not mw.paused and fds.get(watch.fd) is watch:
                    self._fire(mw, MODE_WRITE)

    def _fire(self, mw: ModeWatch, mode: int) -> None:
        event = mw.event
        if isinstance(event, str):
            self._run_state(mw.session, event, (mw.handle, mode, *mw.extra))
        else:
            self._run_callable(mw.session, event, mw.handle, mode)

    # -- bookkeeping ----------------------------------------------------------

    def _forget_stale(self, watch: FdWatch, handle: Any) -> None:
        """Drop modes left behind by a handle closed while watched (fd reuse)."""
        for mode, mw in enumerate(watch.modes):
            if mw is not None and mw.stale(handle):
                self._drop_mode(watch, mode)
        if watch.fd not in self._fds:
            self._fds[watch.fd] = watch

    def _drop_mode(self, watch: FdWatch, mode: int) -> None:
        mw = watch.modes[mode]
        assert mw is not None
        watch.modes[mode] = None
        self._update_mask(watch)
        if watch.modes[0] is None and watch.modes[1] is None:
            del self._fds[watch.fd]
        session = mw.session
        fd = watch.fd
        count = session._fds.get(fd, 0) - 1
        if count > 0:
            session._fds[fd] = count
        elif session._fds.pop(fd, None) is not None:
            self._unref(session)

    def _update_mask(self, watch: FdWatch) -> None:
        mask = 0
        r, w = watch.modes
        if r is not None and not r.paused:
            mask = _EVENT_READ
        if w is not None and not w.paused:
            mask |= _EVENT_WRITE
        selector = self._selector
        if (
            watch.exclusive
            and w is None
            and isinstance(selector, KernelSelector)
            and selector.standing
        ):
            # A listener: its standing exclusive watch is paused and resumed
            # without a system call (see KernelSelector).
            try:
                if r is None:
                    selector.exclusive_drop(watch.fd)
                else:
                    selector.exclusive_read(watch.fd, watch, not r.paused)
            except (OSError, ValueError):
                selector.exclusive_drop(watch.fd)
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
                        make_exclusive(selector, watch.fd)
            elif mask == 0:
                selector.unregister(watch.fd)
            else:
                selector.modify(watch.fd, mask, watch)
        except (OSError, ValueError, KeyError) as exc:
            # A closed handle: forget the OS-level watch, keep the bookkeeping.
            log.debug("%d: fd %d left the selector: %s", os.getpid(), watch.fd, exc)
            try:
                selector.unregister(watch.fd)
            except (KeyError, ValueError, OSError):
                pass  # it was never registered: logged above
            mask = 0
        watch.mask = mask

    def _set_exclusive(self, watch: FdWatch) -> None:
        """Wake one watcher, not all, when the fd becomes readable."""
        if watch.exclusive:
            return
        selector = self._selector
        if isinstance(selector, KernelSelector) and selector.standing and watch.modes[1] is None:
            if watch.mask:  # leave the main epoll set for the standing one
                try:
                    selector.unregister(watch.fd)
                except (KeyError, ValueError, OSError) as exc:
                    log.debug("%d: fd %d left the main set: %s", os.getpid(), watch.fd, exc)
                watch.mask = 0
            watch.exclusive = True
            self._update_mask(watch)
            return
        watch.exclusive = True
        if watch.mask == _EVENT_READ:
            make_exclusive(selector, watch.fd)

    def close(self) -> None:
        """Close the selector (the kernel is being thrown away)."""
        self._selector.close()

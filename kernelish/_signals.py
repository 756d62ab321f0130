"""Signals: POE's named-signal broadcast and OS signal delivery (section 4).

Discussion
----------
POE has one notion of "signal" for both OS signals (``TERM``) and names users
invent (``daemon_child``).  A signal goes to a target session and all of its
descendants (deepest first; ``DIE`` also climbs to the ancestors); watchers run
synchronously with ``(name, signal args..., watcher extras...)`` and
SENDER = the kernel.  An unhandled *terminal* signal stops every session it
touched; one ``sig_handled()`` anywhere saves them all; a *nonmaskable* one
stops them even when handled.

The watcher registry is a pyee ``EventEmitter`` (:attr:`Kernel.events`): a
session's watcher is a :class:`SessionWatcher` listener, and code that is not
a session may subscribe a plain callable, ``kernel.events.on('daemon_child',
fn)``; such callables hear every dispatch of that signal name, after the
session watchers, with ``(name, *args)``.  The kernel walks the listeners
itself (it never calls ``emit``) because POE's order is by the session tree,
not by registration.

OS signals never run code in the Python signal handler: the handler is a
no-op and CPython's C-level handler writes the signal number into the wakeup
pipe (``signal.set_wakeup_fd``), which the selector watches.  The loop drains
the pipe and queues one ``_signal`` to the kernel per distinct signal in the
drain -- a burst of the same signal coalesces as the OS coalesces pending
signals.
"""

from __future__ import annotations

import enum
import os
import signal as _signal
from typing import Any

from pyee import EventEmitter

from ._core import ESRCH, KernelCore, log
from ._event import ET_SIGNAL
from ._session import Handler, Lifecycle, Session, _Node

__all__ = ["SessionWatcher", "SignalClass", "SignalsAPI", "WakeupPipe", "signal_type"]

_ALIVE = Lifecycle.ALIVE


class SignalClass(enum.IntEnum):
    """POE's signal classes (Peek's ``get_signal_type`` numbers)."""

    BENIGN = 0
    TERMINAL = 1
    NONMASKABLE = 2


_TERMINAL = frozenset({"INT", "TERM", "HUP", "QUIT", "KILL", "IDLE", "DIE"})
_NONMASKABLE = frozenset({"ZOMBIE", "UIDESTROY"})
# Signals the OS never lets a process catch.
_UNCATCHABLE = frozenset({"KILL", "STOP"})


def signal_type(name: str) -> SignalClass:
    """The class of a signal name: terminal, nonmaskable or benign."""
    if name in _TERMINAL:
        return SignalClass.TERMINAL
    if name in _NONMASKABLE:
        return SignalClass.NONMASKABLE
    return SignalClass.BENIGN


def os_signal_number(name: str) -> int | None:
    """The OS number of a POE signal name (``'TERM'``), or None."""
    if name in _UNCATCHABLE or name == "CLD":
        return None
    num = getattr(_signal, "SIG" + name, None)
    return int(num) if isinstance(num, int) else None


class SessionWatcher:
    """A session's watcher of one signal: a listener on the pyee bus."""

    __slots__ = ("event", "extra", "session")

    def __init__(self, session: _Node, event: str, extra: tuple[Any, ...]) -> None:
        self.session = session
        self.event = event
        self.extra = extra

    def __call__(self, *args: Any) -> None:
        """Does nothing: the kernel dispatches session watchers in tree order."""

    def __repr__(self) -> str:
        return f"<SessionWatcher {self.session!r} -> {self.event!r}>"


class WakeupPipe:
    """The self-pipe CPython's C signal handler writes signal numbers to."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._installed = False
        self._previous = -1

    def install(self) -> None:
        """Point ``signal.set_wakeup_fd`` at this pipe (main thread only)."""
        if not self._installed:
            self._previous = _signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)
            self._installed = True

    def uninstall(self) -> None:
        """Give the wakeup fd back to whoever had it before."""
        if self._installed:
            _signal.set_wakeup_fd(self._previous)
            self._installed = False

    def drain(self) -> list[int]:
        """Signal numbers received since the last drain, each once, in order."""
        seen: dict[int, None] = {}
        while True:
            try:
                data = os.read(self.r, 4096)
            except BlockingIOError:
                break
            if not data:
                break
            for num in data:
                seen[num] = None
        return list(seen)

    def close(self) -> None:
        """Close both ends (after a fork, or when the kernel is done)."""
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


def _ignore_signal(signum: int, frame: object) -> None:
    """The Python-level handler: the wakeup pipe already carries the news."""


class SignalsAPI(KernelCore):
    """The signal calls of POE::Kernel, and the dispatch of one signal."""

    events: EventEmitter
    _wakeup: WakeupPipe
    _os_handlers: dict[int, Any]

    # -- registration -------------------------------------------------------

    def sig(self, name: str, event: str | Handler | None = None, *extra: Any) -> None:
        """Watch signal ``name`` with state ``event`` (``$kernel->sig``).

        ``event`` may also be a callable, which then runs as this session's
        handler.  ``sig(name)`` stops watching.  The name has no ``SIG``
        prefix.  Watchers do not keep a session alive (POE 1.370).
        """
        session = self._active_session
        if session is self:
            log.warning("%d: sig(%r) called outside any session; ignored", os.getpid(), name)
            return
        old = session._sig_watchers.pop(name, None)
        if old is not None:
            self.events.remove_listener(name, old)
            if old.event.startswith("<sig "):
                session._states.pop(old.event, None)
        if event is not None:
            if callable(event):
                state = f"<sig {name}>"
                session._states[state] = (event, None)
                event = state
            watcher = SessionWatcher(session, event, extra)
            session._sig_watchers[name] = watcher
            self.events.add_listener(name, watcher)
        self._signal_interest_changed(name)

    def sig_handled(self) -> None:
        """Mark the signal being dispatched as handled (``sig_handled``)."""
        self._sig_handled_count += 1

    def signal(self, dest: Any, name: str, *args: Any) -> bool:
        """Queue signal ``name`` for ``dest`` and its descendants; the kernel
        as ``dest`` is a broadcast (``$kernel->signal``).  False + ESRCH when
        ``dest`` does not resolve."""
        target = self._resolve(dest)
        if target is None:
            self.last_error = ESRCH
            return False
        self._enqueue(target, self._active_session, "_signal", (name, *args), ET_SIGNAL)
        return True

    def signal_watchers(self, name: str) -> dict[_Node, str]:
        """Sessions watching ``name`` and their events (Peek's
        ``signal_watchers``; the seed's ``expedite_signal`` calls them)."""
        return {
            w.session: w.event
            for w in self.events.listeners(name)
            if type(w) is SessionWatcher and w.session._lifecycle is _ALIVE
        }

    def _watched(self, name: str) -> bool:
        return any(type(w) is SessionWatcher for w in self.events.listeners(name))

    def _resolve(self, dest: Any) -> _Node | None:  # pragma: no cover - Kernel's
        raise NotImplementedError

    # -- OS signals ---------------------------------------------------------

    def _signal_interest_changed(self, name: str) -> None:
        if name in ("CHLD", "CLD"):
            self._child_interest_changed()
            return
        num = os_signal_number(name)
        if num is None:
            return
        self._set_os_handler(num, self._watched(name))

    def _set_os_handler(self, num: int, wanted: bool) -> None:
        if wanted and num not in self._os_handlers:
            try:
                self._wakeup.install()
                self._os_handlers[num] = _signal.signal(num, _ignore_signal)
            except ValueError as exc:  # not the main thread
                log.warning("%d: cannot watch signal %d: %s", os.getpid(), num, exc)
        elif not wanted and num in self._os_handlers:
            previous = self._os_handlers.pop(num)
            _signal.signal(num, previous if previous is not None else _signal.SIG_DFL)
            if not self._os_handlers:
                self._wakeup.uninstall()

    def _child_interest_changed(self) -> None:  # pragma: no cover - ChildrenAPI's
        raise NotImplementedError

    def _drain_wakeup(self) -> None:
        """Turn the signals the wakeup pipe carried into queued ``_signal``s."""
        for num in self._wakeup.drain():
            if num == _signal.SIGCHLD:
                self._reap_needed = True
                continue
            try:
                name = _signal.Signals(num).name[3:]
            except ValueError:
                continue
            self._enqueue(self, self, "_signal", (name,), ET_SIGNAL)

    _reap_needed: bool

    def _restore_os_signals(self) -> None:
        for num in list(self._os_handlers):
            self._set_os_handler(num, False)

    # -- dispatch -----------------------------------------------------------

    def _dispatch_signal(self, target: _Node, name: str, args: tuple[Any, ...], etype: int) -> None:
        """Deliver one signal to ``target``'s tree (POE-SEMANTICS 4.2)."""
        if target is self:
            if not self._kernel_alive:
                return
        elif target._lifecycle is not _ALIVE:
            return
        touched: list[_Node] = [target, *self._descendants(target)]
        if name == "DIE":
            ancestors: list[_Node] = []
            parent = target._parent
            while parent is not None and parent is not self:
                ancestors.append(parent)
                parent = parent._parent
            touched = ancestors[::-1] + touched
        listeners = self.events.listeners(name)
        by_session = {w.session: w for w in listeners if type(w) is SessionWatcher}
        saved = self._sig_handled_count
        self._sig_handled_count = 0
        try:
            if by_session:
                for node in reversed(touched):
                    watcher = by_session.get(node)
                    if watcher is not None and node._lifecycle is _ALIVE:
                        self._invoke(
                            node,
                            watcher.event,
                            (name, *args, *watcher.extra),
                            self,
                            None,
                            None,
                            None,
                            etype,
                        )
            for func in listeners:
                if type(func) is not SessionWatcher:
                    try:
                        func(name, *args)
                    except Exception:
                        log.exception("%d: signal subscriber %r failed", os.getpid(), func)
            if name == "IDLE" and target is self and self._is_idle():
                # The kernel's own IDLE watcher, which runs last (3.4).
                self._enqueue(self, self, "_signal", ("ZOMBIE",), ET_SIGNAL)
            handled = self._sig_handled_count
        finally:
            self._sig_handled_count = saved
        kind = signal_type(name)
        if kind is SignalClass.NONMASKABLE or (kind is SignalClass.TERMINAL and not handled):
            for node in reversed(touched):
                if node is self:
                    self._stop_kernel()
                else:
                    self._stop_session(node, self)  # type: ignore[arg-type]
            if name == "DIE" and args and isinstance(args[0], dict):
                error = args[0].get("error")
                if isinstance(error, BaseException):
                    self._store_error(error)

    def _is_idle(self) -> bool:  # pragma: no cover - Kernel's
        raise NotImplementedError

    def _stop_kernel(self) -> None:  # pragma: no cover - Kernel's
        raise NotImplementedError

    def _release_session_resources(self, session: Session) -> None:
        for name, watcher in list(session._sig_watchers.items()):
            self.events.remove_listener(name, watcher)
            self._signal_interest_changed(name)
        session._sig_watchers.clear()
        super()._release_session_resources(session)

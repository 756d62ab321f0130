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

The watcher registry is a pyee ``EventEmitter`` (:class:`SignalBus`,
:attr:`Kernel.events`): a session's watcher is a :class:`SessionWatcher`
listener, and code that is not a session may subscribe a plain callable,
``kernel.events.on('daemon_child', fn)`` (or ``once``); such callables hear
every dispatch of that signal name, after the session watchers, with
``(name, *args)``.  The kernel runs the session watchers itself, because POE's
order is by the session tree, not by registration; then it calls ``emit`` for
the callables (a failing one is logged, the others still hear the signal).

OS signals never run code in the Python signal handler: the handler is a
no-op and CPython's C-level handler writes the signal number into the wakeup
pipe (``signal.set_wakeup_fd``), which the selector watches.  The loop drains
the pipe and queues one ``_signal`` to the kernel per distinct signal in the
drain -- a burst of the same signal coalesces as the OS coalesces pending
signals.  Only signals the kernel watches are queued: CPython writes every
signal caught by *any* Python handler to the one wakeup fd, and a HUP some
library handles must not become an unhandled, terminal HUP here.  The pipe is
also drained just before the kernel would call itself idle, so a signal that
arrived while a handler ran is never beaten by the IDLE that ends ``run()``.
"""

from __future__ import annotations

import enum
import os
import signal as _signal
from typing import Any

from pyee import EventEmitter

from ._core import ESRCH, KernelCore, log
from ._event import ET_SIGNAL
from ._handlers import as_handler
from ._session import Handler, Lifecycle, Session, _Node

__all__ = [
    "SessionWatcher",
    "SignalBus",
    "SignalClass",
    "SignalsAPI",
    "WakeupPipe",
    "os_signal_number",
    "signal_type",
]

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


class SignalBus(EventEmitter):
    """The pyee bus of named signals (:attr:`Kernel.events`).

    Sessions' watchers are :class:`SessionWatcher` listeners, which the kernel
    dispatches itself in tree order; plain callables are run by ``emit`` (so
    pyee's ``once`` works) with ``(name, *args)``.  A failing subscriber is
    logged and does not keep the others from hearing the signal."""

    def _emit_run(self, f: Any, args: Any, kwargs: Any) -> None:
        try:
            f(*args, **kwargs)
        except Exception:
            log.exception("%d: signal subscriber %r failed", os.getpid(), f)


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

    events: SignalBus
    _wakeup: WakeupPipe
    #: The signal whose watchers are running now (None outside a dispatch);
    #: ``Daemon.peek`` writes to stderr when called from a watcher.
    _dispatching_signal: str | None = None
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
                session._states[state] = (as_handler(event), None)
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
        self._kick_async()
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

    def _kick_async(self) -> None:  # pragma: no cover - AsyncioAPI's
        """Wake ``run_async`` after asyncio code queued work."""

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
        watched = self._os_handlers
        for num in self._wakeup.drain():
            if num not in watched:
                # Another Python handler's signal (CPython writes every
                # caught signal to the one wakeup fd): not ours to broadcast.
                continue
            if num == _signal.SIGCHLD:
                self._reap_needed = True
                continue
            try:
                name = _signal.Signals(num).name[3:]
            except ValueError:
                continue
            self._enqueue(self, self, "_signal", (name,), ET_SIGNAL)

    _reap_needed: bool

    def _poll_wakeup(self) -> bool:
        """Drain the wakeup pipe now, before the kernel calls itself idle.

        The idle check comes before the selector poll in a timeslice; without
        this, a signal already written to the pipe (sent by a handler, or
        arriving while one ran) would lose the race to the IDLE signal that
        ends the program.  True if that queued anything."""
        queue = self._queue
        before = len(queue)
        self._drain_wakeup()
        if self._reap_needed:
            self._reap()
        return len(queue) != before

    def _reap(self) -> None:  # pragma: no cover - ChildrenAPI's
        raise NotImplementedError

    def _restore_os_signals(self) -> None:
        for num in list(self._os_handlers):
            self._set_os_handler(num, False)
        self._chld_handler_installed = False

    _chld_handler_installed: bool

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
        saved_signal = self._dispatching_signal
        self._sig_handled_count = 0
        self._dispatching_signal = name
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
            if len(by_session) != len(listeners):
                # Plain callables on the bus, after the sessions.
                self.events.emit(name, name, *args)
            if name == "IDLE" and target is self and self._is_idle():
                # The kernel's own IDLE watcher, which runs last (3.4).
                self._enqueue(self, self, "_signal", ("ZOMBIE",), ET_SIGNAL)
            handled = self._sig_handled_count
        finally:
            self._sig_handled_count = saved
            self._dispatching_signal = saved_signal
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

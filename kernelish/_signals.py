"""Signals: who watches which named signal, and OS signal delivery (section 4).

Discussion
----------
POE has one notion of "signal" for both OS signals (``TERM``) and names users
invent (``daemon_child``).  A signal goes to a target session and all of its
descendants (deepest first; ``DIE`` also climbs to the ancestors); watchers run
synchronously with ``(name, signal args..., watcher extras...)`` and
SENDER = the kernel.  An unhandled *terminal* signal stops every session it
touched; one ``sig_handled()`` anywhere saves them all; a *nonmaskable* one
stops them even when handled.  That delivery walks the session tree, so the
kernel's dispatcher does it (:mod:`._dispatch`); this module is the
:class:`SignalHub`, which keeps the registry of watchers and the OS side.

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
import logging
import os
import signal as _signal
from collections.abc import Callable
from typing import Any

from pyee import EventEmitter

from ._session import Node

__all__ = [
    "SessionWatcher",
    "SignalBus",
    "SignalClass",
    "SignalHub",
    "WakeupPipe",
    "os_signal_number",
    "signal_type",
]

log = logging.getLogger("kernelish")


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

    def __init__(self, session: Node, event: str, extra: tuple[Any, ...]) -> None:
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
        self.installed = False
        self.previous = -1

    def install(self) -> None:
        """Point ``signal.set_wakeup_fd`` at this pipe (main thread only)."""
        if not self.installed:
            self.previous = _signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)
            self.installed = True

    def uninstall(self) -> None:
        """Give the wakeup fd back to whoever had it before."""
        if self.installed:
            _signal.set_wakeup_fd(self.previous)
            self.installed = False

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


class SignalHub:
    """Signal watchers and the OS side of signals: one of the kernel's
    collaborators.

    ``child_interest_changed()`` is called when ``CHLD`` gains or loses its
    last session watcher (the child reaper decides about SIGCHLD).
    """

    def __init__(self, *, child_interest_changed: Callable[[], None]) -> None:
        self._child_interest_changed = child_interest_changed
        #: The pyee bus of named signals (:attr:`Kernel.events`).
        self.events = SignalBus()
        self.wakeup = WakeupPipe()
        #: OS signal number -> the Python handler it had before we watched it
        self._os_handlers: dict[int, Any] = {}

    # -- watchers ---------------------------------------------------------------

    def watch(self, session: Node, name: str, event: str | None, extra: tuple[Any, ...]) -> None:
        """Set (``event`` given) or clear ``session``'s watcher of ``name``."""
        old = session._sig_watchers.pop(name, None)
        if old is not None:
            self.events.remove_listener(name, old)
        if event is not None:
            watcher = SessionWatcher(session, event, extra)
            session._sig_watchers[name] = watcher
            self.events.add_listener(name, watcher)
        self._interest_changed(name)

    def watchers(self, name: str) -> dict[Node, SessionWatcher]:
        """``{session: watcher}`` for every session watching ``name``."""
        return {w.session: w for w in self.events.listeners(name) if type(w) is SessionWatcher}

    def has_callables(self, name: str, session_watchers: int) -> bool:
        """Whether plain callables listen to ``name`` too."""
        return len(self.events.listeners(name)) != session_watchers

    def emit_to_callables(self, name: str, args: tuple[Any, ...]) -> None:
        """Run the plain callables subscribed to ``name`` (after the sessions)."""
        self.events.emit(name, name, *args)

    def watched(self, name: str) -> bool:
        """Whether any session watches ``name``."""
        return any(type(w) is SessionWatcher for w in self.events.listeners(name))

    def release(self, session: Node) -> None:
        """Drop every watcher of a stopping session."""
        for name, watcher in list(session._sig_watchers.items()):
            self.events.remove_listener(name, watcher)
            self._interest_changed(name)
        session._sig_watchers.clear()

    # -- the OS side ----------------------------------------------------------

    def _interest_changed(self, name: str) -> None:
        if name in ("CHLD", "CLD"):
            self._child_interest_changed()
            return
        num = os_signal_number(name)
        if num is not None:
            self.set_os_handler(num, self.watched(name))

    def set_os_handler(self, num: int, wanted: bool) -> None:
        """Catch OS signal ``num`` (into the wakeup pipe), or stop catching it."""
        if wanted and num not in self._os_handlers:
            try:
                self.wakeup.install()
                self._os_handlers[num] = _signal.signal(num, _ignore_signal)
            except ValueError as exc:  # not the main thread
                log.warning("%d: cannot watch signal %d: %s", os.getpid(), num, exc)
        elif not wanted and num in self._os_handlers:
            previous = self._os_handlers.pop(num)
            _signal.signal(num, previous if previous is not None else _signal.SIG_DFL)
            if not self._os_handlers:
                self.wakeup.uninstall()

    def caught(self) -> frozenset[int]:
        """The OS signals caught now."""
        return frozenset(self._os_handlers)

    def drain(self) -> tuple[list[str], bool]:
        """The names of the watched signals the wakeup pipe carried since the
        last drain, and whether SIGCHLD was among them."""
        names: list[str] = []
        chld = False
        watched = self._os_handlers
        for num in self.wakeup.drain():
            if num not in watched:
                # Another Python handler's signal (CPython writes every
                # caught signal to the one wakeup fd): not ours to broadcast.
                continue
            if num == _signal.SIGCHLD:
                chld = True
                continue
            try:
                names.append(_signal.Signals(num).name[3:])
            except ValueError:
                continue
        return names, chld

    def restore(self) -> None:
        """Give every caught signal back its old handler (``run()`` ended)."""
        for num in list(self._os_handlers):
            self.set_os_handler(num, False)

    def close(self) -> None:
        """Close the wakeup pipe (the kernel is thrown away)."""
        self.wakeup.uninstall()
        self.wakeup.close()

    def renew_wakeup(self) -> int:
        """A forked child's own wakeup pipe (a signal byte written by one
        process must never be read by the other); returns its read fd."""
        old = self.wakeup
        old.close()
        self.wakeup = WakeupPipe()
        self.wakeup.previous = old.previous
        if old.installed:
            try:
                _signal.set_wakeup_fd(self.wakeup.w, warn_on_full_buffer=False)
                self.wakeup.installed = True
            except ValueError:  # pragma: no cover - not the main thread
                log.warning("%d: cannot install the wakeup fd after fork", os.getpid())
        return self.wakeup.r

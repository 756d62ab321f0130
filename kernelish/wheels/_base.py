"""What every wheel shares: its ID, its session, its watchers and its death.

Discussion
----------
A POE wheel is an object living in a session's heap that adds private states
to the session and watches handles for it (POE-SEMANTICS 7.0).  Dropping the
last reference to it (``del heap['wheel']``) runs its DESTROY, which removes
the watchers at once: a session whose only wheel goes then stops.

Python needs three things for that to hold:

* The kernel must hold the wheel only *weakly*.  A wheel registers a small
  closure with the kernel that keeps a ``weakref`` to the wheel and calls the
  wheel's method while the wheel lives.
* The wheel must not sit in a reference cycle, or only the cyclic garbage
  collector (not ``del``) would free it.  So a wheel keeps a weak reference to
  its session (the session's heap usually holds the wheel), and nothing the
  wheel owns points back at it.
* The release lives in a separate :class:`_Resources` record, run from
  ``__del__`` (the moment CPython frees the wheel): it removes exactly the
  watches and timers this wheel made (never a newer wheel's watch on a reused
  fd), frees the wheel ID, and closes the wheel's handles if nothing else
  references them -- Perl closes a handle with its last reference, so a
  socket held only by a dropped wheel is closed, while a socket handed on to
  a new wheel (the POE "wheel swap" idiom) stays open.

Wheel IDs come from one process-wide counter starting at 1, shared by every
wheel class, skipping IDs still in use, freed on destruction (POE's
``allocate_wheel_id``).

The wheel interface
-------------------
Every wheel -- ours and a user's own -- is written against these methods
only: :meth:`Wheel.watch` / :meth:`Wheel.unwatch` (a handle's readiness calls
a method of the wheel), :meth:`Wheel.emit` (an event to the wheel's session,
POE's ``$poe_kernel->call($session, $event, ...)``), :meth:`Wheel.defer` /
:meth:`Wheel.cancel` (a method run later, in the next dispatch pass or after
a delay), :meth:`Wheel.hold` / :meth:`Wheel.disown` (handles closed with the
wheel), and :attr:`Wheel.kernel` / :attr:`Wheel.session`.  Underneath they use
the kernel's extension interface (``kernel.io``, ``kernel.deliver``,
``kernel.run_as``, ``kernel.defer``), never its private parts.

Events are delivered as POE's ``call()`` from the wheel's session to itself:
synchronously, SENDER = the session.  When the session is the active one
(inside the wheel's own I/O callback, or a handler of that session calling a
wheel method) the handler is run directly, as POE's self-call does; an
exception then propagates to the wheel callback, and through the kernel's
funnel becomes POE's DIE signal.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any, Self

from .._kernel import Kernel
from .._runtime import current_kernel
from .._session import Session
from .._watchers import MODE_READ, MODE_WRITE, fileno_of

__all__ = ["MODE_READ", "MODE_WRITE", "Wheel", "allocate_wheel_id", "free_wheel_id"]

_ids_in_use: set[int] = set()
_last_id = 0


def allocate_wheel_id() -> int:
    """The next free wheel ID (POE::Wheel::allocate_wheel_id)."""
    global _last_id
    while True:
        _last_id += 1
        if _last_id not in _ids_in_use:
            _ids_in_use.add(_last_id)
            return _last_id


def free_wheel_id(wheel_id: int) -> None:
    """Give a wheel ID back (POE::Wheel::free_wheel_id)."""
    _ids_in_use.discard(wheel_id)


def _refs_of_popped() -> int:
    """The reference count of an object held only by one local variable
    (measured the way :func:`_close_orphans` measures)."""
    held = [object()]
    obj = held.pop()
    return sys.getrefcount(obj)


_ORPHAN_REFS = _refs_of_popped()


def _close_orphans(handles: list[Any]) -> None:
    """Close the handles nothing but this list references -- Perl closes a
    handle when its last reference goes, and a Python socket left to the
    garbage collector would warn (ResourceWarning).  Raw fds are the
    caller's and are never closed."""
    while handles:
        handle = handles.pop()
        if not isinstance(handle, int) and sys.getrefcount(handle) <= _ORPHAN_REFS:
            try:
                handle.close()
            except OSError:  # pragma: no cover - close() reporting a late error
                pass


class _Resources:
    """What a wheel's cleanup needs, held apart from the wheel itself."""

    __slots__ = ("handles", "kernel", "timers", "watches", "wheel_id")

    def __init__(self, kernel: Kernel, wheel_id: int) -> None:
        self.kernel = kernel
        self.wheel_id = wheel_id
        #: (fd, mode) -> the callable registered with the kernel
        self.watches: dict[tuple[int, int], Callable[..., Any]] = {}
        #: IDs of the wheel's deferred calls still queued
        self.timers: set[int] = set()
        #: the handles the wheel holds; closed on release if nothing else does
        self.handles: list[Any] = []

    def release(self) -> None:
        kernel = self.kernel
        watches = self.watches
        io = kernel.io
        while watches:
            (fd, mode), callback = watches.popitem()
            io.unwatch(fd, mode, callback)
        timers = self.timers
        while timers:
            kernel.cancel_deferred(timers.pop())
        _close_orphans(self.handles)
        free_wheel_id(self.wheel_id)


def _watcher(
    ref: weakref.ref[Any], method: Callable[[Any], Any], name: str, repeat: int
) -> Callable[[Any, int], Any]:
    """A kernel callback calling ``method(wheel)`` while the wheel lives.

    With ``repeat`` > 1, a method that returns true is called again at once,
    up to ``repeat`` times in all -- the wheel is looked up anew each time,
    so a handler that drops the wheel ends the batch."""
    if repeat == 1:

        def on_ready(handle: Any, mode: int) -> Any:
            wheel = ref()
            if wheel is not None:
                return method(wheel)
            return None

    else:

        def on_ready(handle: Any, mode: int) -> Any:
            for _ in range(repeat):
                wheel = ref()
                if wheel is None or not method(wheel):
                    return None
                del wheel
            return None

    on_ready.__name__ = on_ready.__qualname__ = name
    return on_ready


class Wheel:
    """Base of every wheel (port of POE::Wheel): an ID, the session that
    created it, its I/O watches and timers, and the release of them on
    destruction.  A wheel of your own subclasses it and uses the methods
    below (see the module notes)."""

    __slots__ = ("__weakref__", "_id", "_kernel", "_resources", "_session_ref")

    def __init__(self) -> None:
        kernel = current_kernel()
        self._kernel = kernel
        self._session_ref: weakref.ref[Any] = weakref.ref(kernel.get_active_session())
        self._id = allocate_wheel_id()
        self._resources = _Resources(kernel, self._id)

    def __del__(self) -> None:
        """POE's DESTROY: release the watches, the timers, the ID, and the
        handles no one else holds."""
        try:
            resources = self._resources
        except AttributeError:  # __init__ failed before the wheel had any
            return
        self._forget_handles()
        resources.release()

    def _forget_handles(self) -> None:
        """Drop the wheel's own references to its handles (subclasses), so
        that :func:`_close_orphans` can tell whether anyone else holds them."""

    @property
    def ID(self) -> int:
        """The wheel's unique ID (``$wheel->ID``)."""
        return self._id

    @property
    def kernel(self) -> Kernel:
        """The kernel the wheel was made on."""
        return self._kernel

    @property
    def session(self) -> Session | None:
        """The session that made the wheel (None once it is gone)."""
        session = self._session_ref()
        return session if isinstance(session, Session) else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self._id})>"

    # -- handles ------------------------------------------------------------

    def hold(self, handle: Any) -> None:
        """Close ``handle`` with the wheel, unless something else still
        holds it then (Perl closes a handle with its last reference)."""
        self._resources.handles.append(handle)

    def disown(self, handle: Any) -> None:
        """Stop holding ``handle`` (it was handed to the session)."""
        handles = self._resources.handles
        for index, held in enumerate(handles):
            if held is handle:
                del handles[index]
                return

    # -- watching ---------------------------------------------------------

    def watch(
        self,
        handle: Any,
        mode: int,
        method: Callable[[Self], Any],
        *,
        paused: bool = False,
        exclusive: bool = False,
        repeat: int = 1,
    ) -> None:
        """Watch ``handle`` in ``mode`` (:data:`MODE_READ` or
        :data:`MODE_WRITE`) for the wheel's session; readiness calls
        ``method(wheel)``, as the session.

        ``paused``: registered (the session is kept alive) but not armed
        until ``select_resume_*``.  ``exclusive``: a readable handle wakes
        only one of the processes watching it (a listener shared by forked
        children).  ``repeat``: a method returning true is called again at
        once, up to ``repeat`` times per readiness (an accept loop).
        The kernel holds the wheel weakly: dropping the wheel ends the watch.
        """
        session = self._session_ref()
        if session is None:
            return
        fd = fileno_of(handle)
        key = (fd, mode)
        io = self._kernel.io
        old = self._resources.watches.get(key)
        if old is not None:
            io.unwatch(fd, mode, old)
        what = "read" if mode == MODE_READ else "write"
        callback = _watcher(weakref.ref(self), method, f"{self!r} -> select {what}", repeat)
        io.watch(session, handle, mode, callback, weak=True, paused=paused, exclusive=exclusive)
        self._resources.watches[key] = callback

    def unwatch(self, handle: Any, mode: int) -> None:
        """Stop this wheel's watch of ``handle`` in ``mode`` (a closed
        handle: every watch of the wheel in that mode)."""
        try:
            fd = fileno_of(handle)
        except (OSError, ValueError):
            fd = -1
        watches = self._resources.watches
        io = self._kernel.io
        for key in [k for k in watches if k[1] == mode and (fd < 0 or k[0] == fd)]:
            io.unwatch(key[0], mode, watches.pop(key))

    def watching(self, handle: Any, mode: int) -> bool:
        """Whether this wheel watches ``handle`` in ``mode``."""
        try:
            return (fileno_of(handle), mode) in self._resources.watches
        except (OSError, ValueError):
            return False

    # -- deferred calls -------------------------------------------------------

    def defer(self, method: Callable[[Self], Any], seconds: float | None = None) -> int | None:
        """Run ``method(wheel)`` as the wheel's session in the next dispatch
        pass, or ``seconds`` from now; returns an ID for :meth:`cancel`
        (None without a session).  Dropping the wheel cancels it."""
        session = self._session_ref()
        if session is None:
            return None
        ref = weakref.ref(self)
        timers = self._resources.timers

        def deferred() -> Any:
            timers.discard(timer_id)
            wheel = ref()
            if wheel is not None:
                return method(wheel)
            return None

        deferred.__name__ = deferred.__qualname__ = f"{self!r} -> {method.__name__}"
        timer_id = self._kernel.defer(session, deferred, seconds)
        timers.add(timer_id)
        return timer_id

    def cancel(self, timer_id: int | None) -> None:
        """Cancel a call :meth:`defer` queued (a no-op once it ran)."""
        if timer_id is not None and timer_id in self._resources.timers:
            self._resources.timers.discard(timer_id)
            self._kernel.cancel_deferred(timer_id)

    # -- events -----------------------------------------------------------

    def emit(self, event: str | None, *args: Any) -> Any:
        """Call ``event`` in the wheel's session now, with ``args`` as ARG0..
        (POE's ``$poe_kernel->call($session, $event, @args)``); None when the
        event is None or the session is gone.  Returns the handler's value."""
        if event is None:
            return None
        session = self._session_ref()
        if session is None:
            return None
        return self._kernel.deliver(session, event, args)

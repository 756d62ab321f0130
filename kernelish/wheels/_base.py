"""What every wheel shares: its ID, its session, its watchers and its death.

Discussion
----------
A POE wheel is an object living in a session's heap that adds private states
to the session and watches handles for it (POE-SEMANTICS 7.0).  Dropping the
last reference to it (``del heap['wheel']``) runs its DESTROY, which removes
the watchers at once: a session whose only wheel goes then stops.

Python needs three things for that to hold:

* The kernel must hold the wheel only *weakly*.  A wheel registers a small
  closure (``_Watcher``) with the kernel that keeps a ``weakref`` to the wheel
  and calls the wheel's handler while the wheel lives.
* The wheel must not sit in a reference cycle, or only the cyclic garbage
  collector (not ``del``) would free it.  So a wheel keeps a weak reference to
  its session (the session's heap usually holds the wheel), and nothing the
  wheel owns points back at it.
* The release lives in a separate :class:`_Resources` record, run from
  ``__del__`` (the moment CPython frees the wheel): it removes exactly the
  watches this wheel made (never a newer wheel's watch on a reused fd), frees
  the wheel ID, and closes the wheel's handles if nothing else references
  them -- Perl closes a handle with its last reference, so a socket held only
  by a dropped wheel is closed, while a socket handed on to a new wheel (the
  POE "wheel swap" idiom) stays open.

Wheel IDs come from one process-wide counter starting at 1, shared by every
wheel class, skipping IDs still in use, freed on destruction (POE's
``allocate_wheel_id``).

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
from typing import Any

from .._core import find_handler
from .._event import ET_CALL
from .._handler_args import HandlerArgs
from .._kernel import Kernel, poe_kernel
from .._select import MODE_READ, fileno_of
from .._session import Lifecycle, Session, _Node

__all__ = ["Wheel", "allocate_wheel_id", "free_wheel_id"]

_ids_in_use: set[int] = set()
_last_id = 0

_ALIVE = Lifecycle.ALIVE
_STOPPING = Lifecycle.STOPPING


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

    __slots__ = ("handles", "kernel", "watches", "wheel_id")

    def __init__(self, kernel: Kernel, wheel_id: int) -> None:
        self.kernel = kernel
        self.wheel_id = wheel_id
        #: (fd, mode) -> the callable registered with the kernel
        self.watches: dict[tuple[int, int], Callable[..., Any]] = {}
        #: the handles the wheel holds; closed on release if nothing else does
        self.handles: list[Any] = []

    def release(self) -> None:
        kernel = self.kernel
        watches = self.watches
        while watches:
            (fd, mode), callback = watches.popitem()
            kernel._unwatch_if(fd, mode, callback)
        _close_orphans(self.handles)
        free_wheel_id(self.wheel_id)


def _watcher(
    ref: weakref.ref[Any], method: Callable[[Any], Any], name: str
) -> Callable[[Any, int], Any]:
    """A kernel callback calling ``method(wheel)`` while the wheel lives."""

    def on_ready(handle: Any, mode: int) -> Any:
        wheel = ref()
        if wheel is not None:
            return method(wheel)
        return None

    on_ready.__name__ = on_ready.__qualname__ = name
    return on_ready


class Wheel:
    """Base of every wheel (port of POE::Wheel): an ID, the session that
    created it, its I/O watches, and the release of them on destruction."""

    __slots__ = ("__weakref__", "_id", "_kernel", "_resources", "_session_ref")

    def __init__(self) -> None:
        kernel = poe_kernel
        self._kernel = kernel
        self._session_ref: weakref.ref[_Node] = weakref.ref(kernel._active_session)
        self._id = allocate_wheel_id()
        self._resources = _Resources(kernel, self._id)

    def __del__(self) -> None:
        """POE's DESTROY: release the watches, the ID, and the handles no
        one else holds."""
        try:
            resources = self._resources
        except AttributeError:  # __init__ failed before the wheel had any
            return
        self._forget_handles()
        resources.release()

    def _forget_handles(self) -> None:
        """Drop the wheel's own references to its handles (subclasses), so
        that :func:`_close_orphans` can tell whether anyone else holds them."""

    def _hold(self, handle: Any) -> None:
        """Remember ``handle`` for the close-if-orphaned rule at destruction."""
        self._resources.handles.append(handle)

    @property
    def ID(self) -> int:
        """The wheel's unique ID (``$wheel->ID``)."""
        return self._id

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self._id})>"

    # -- watching ---------------------------------------------------------

    def _watch(
        self, handle: Any, mode: int, method: Callable[[Any], Any], *, paused: bool = False
    ) -> None:
        """Watch ``handle`` in ``mode`` for the wheel's session, calling
        ``method(self)`` on readiness (``paused``: registered, not yet armed)."""
        session = self._session_ref()
        if session is None:
            return
        fd = fileno_of(handle)
        key = (fd, mode)
        old = self._resources.watches.get(key)
        if old is not None:
            self._kernel._unwatch_if(fd, mode, old)
        what = "read" if mode == MODE_READ else "write"
        callback = _watcher(weakref.ref(self), method, f"{self!r} -> select {what}")
        self._kernel._watch_as(session, handle, mode, callback, weak=True, paused=paused)
        self._resources.watches[key] = callback

    def _unwatch(self, handle: Any, mode: int) -> None:
        """Stop this wheel's watch of ``handle`` in ``mode``."""
        try:
            fd = fileno_of(handle)
        except (OSError, ValueError):
            fd = -1
        watches = self._resources.watches
        for key in [k for k in watches if k[1] == mode and (fd < 0 or k[0] == fd)]:
            self._kernel._unwatch_if(key[0], mode, watches.pop(key))

    def _watching(self, handle: Any, mode: int) -> bool:
        try:
            return (fileno_of(handle), mode) in self._resources.watches
        except (OSError, ValueError):
            return False

    # -- events -----------------------------------------------------------

    def _emit(self, event: str | None, *args: Any) -> Any:
        """Call ``event`` in the wheel's session (POE's ``$k->call($me, ...)``)."""
        if event is None:
            return None
        session = self._session_ref()
        if session is None or not isinstance(session, Session):
            return None
        state = session._lifecycle
        if state is not _ALIVE and state is not _STOPPING:
            return None
        kernel = self._kernel
        if kernel._active_session is not session:
            return kernel._invoke(
                session, event, args, session, None, None, kernel._active_event, ET_CALL
            )
        # A call to the active session: POE runs the handler directly.
        found = find_handler(session, event, args)
        if found is None:
            return None
        func, obj, name, args = found
        prev = kernel._active_event
        kernel._active_event = name
        try:
            return func(
                HandlerArgs(
                    obj, session, kernel, session.heap, name, session, None, None, prev, args
                )
            )
        finally:
            kernel._active_event = prev

    def _session_alive(self) -> bool:
        session = self._session_ref()
        return session is not None and session._lifecycle is _ALIVE

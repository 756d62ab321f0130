"""Timers: ``alarm*`` and ``delay*`` with POE's return values (POE-SEMANTICS 1.3).

Timers are queue items of the active session, due at a time on the kernel's
monotonic clock; ``alarm*`` calls speak wall-clock epochs and are converted at
the edge (the calls that add a timer are ``Kernel``'s own few lines over
:meth:`Timers.add`).  Each session indexes its own timers by name, so ``delay(name, s)``
clears that session's timers of that name without looking at anyone else's:
O(k log n) for its k timers of that name.

Return values, as POE: the name-based calls return 0 or an errno (EINVAL) *as
the value*; ``alarm_set``/``delay_set`` return an ID or ``None`` with
``kernel.last_error`` set; ``alarm_remove`` returns ``(name, due_epoch, args)``.

A wheel's deferred call with a delay (``kernel.defer``) is a timer of the
wheel's session too, of type ``ET_DEFERRED``: it is purged with the session,
but it is not one of the user's timers (``alarm_remove_all`` leaves it alone).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._dispatch import Dispatcher
from ._event import ET_ALARM, ET_DEFERRED, Event
from ._session import Node

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = ["Timers"]

EINVAL = errno.EINVAL
EPERM = errno.EPERM
ESRCH = errno.ESRCH


class Timers:
    """The timer calls of POE::Kernel: one of the kernel's collaborators."""

    def __init__(self, kernel: Kernel, core: Dispatcher) -> None:
        self._kernel = kernel
        self._core = core
        self._queue = core.queue
        self._clock = core.clock

    def epoch_offset(self) -> float:
        """Wall-clock epoch minus the kernel's clock (for ``alarm*``)."""
        return time.time() - self._clock()

    def add(
        self, session: Node, name: str, due: float, args: tuple[Any, ...], etype: int = ET_ALARM
    ) -> Event:
        """Queue a timer of ``session`` due at ``due`` (kernel clock)."""
        core = self._core
        queue = self._queue
        event = Event()  # new_event, inlined: 100k timers set in a loop pay for a frame each
        event.priority = due
        event.id = event_id = next(queue.ids)
        event.dest = event.source = session
        event.name = name
        event.args = args
        event.etype = etype
        event.file = event.line = None
        event.from_state = core.active_event
        event.cancelled = False
        queue.timer_entries[event_id] = event
        queue.pending.append(event)
        if not session._to:
            core.table.marked.pop(session, None)
        session._to += 1
        named = session._timers_by_name.get(name)
        if named is None:
            session._timers_by_name[name] = {event_id: event}
        else:
            named[event_id] = event
        return event

    def remove(self, event: Event) -> None:
        """Take a queued timer out, releasing its session."""
        self._queue.cancel_timer(event)
        event.dest._unfile_timer(event.name, event.id)
        self._core.table.release(event)

    def _move(self, event: Event, due: float) -> Event:
        """Give a queued timer a new due time (same ID)."""
        if due == event.priority:
            return event
        moved = self._queue.reschedule_timer(event, due)
        named = event.dest._timers_by_name.get(event.name)
        if named is not None:
            named[event.id] = moved
        return moved

    def clear_named(self, name: str) -> None:
        """Remove the active session's timers named ``name`` (``delay(name)``)."""
        named = self._core.active_session._timers_by_name.pop(name, None)
        if named:
            for event in named.values():
                self._queue.cancel_timer(event)
                self._core.table.release(event)

    def _own_timer(self, timer_id: int | None) -> Event | None:
        if timer_id is None:
            self._kernel.last_error = EINVAL
            return None
        event = self._queue.timer_entries.get(timer_id)
        if event is None:
            self._kernel.last_error = ESRCH
            return None
        if event.dest is not self._core.active_session:
            self._kernel.last_error = EPERM
            return None
        return event

    def alarm_remove(self, timer_id: int) -> tuple[str, float, list[Any]] | None:
        """``alarm_remove``: ``(name, due_epoch, args)`` of the removed timer."""
        event = self._own_timer(timer_id)
        if event is None:
            return None
        self.remove(event)
        return event.name, event.priority + self.epoch_offset(), list(event.args)

    def alarm_adjust(self, timer_id: int, delta: float) -> float | None:
        """``alarm_adjust``: move a timer by ``delta``; its new due epoch."""
        event = self._own_timer(timer_id)
        if event is None:
            return None
        if delta:
            event = self._move(event, event.priority + delta)
        return event.priority + self.epoch_offset()

    def delay_adjust(self, timer_id: int, seconds: float) -> float | None:
        """``delay_adjust``: reschedule to ``seconds`` from now; the due epoch."""
        event = self._own_timer(timer_id)
        if event is None:
            return None
        event = self._move(event, self._clock() + seconds)
        return event.priority + self.epoch_offset()

    def alarm_remove_all(self) -> list[tuple[Any, ...]]:
        """``alarm_remove_all``: ``(name, due_epoch, *args)`` of each timer of
        the active session (POE reports 0 as the due time of ``delay()``
        timers, we report the real one)."""
        session = self._core.active_session
        offset = self.epoch_offset()
        timers = [
            e
            for named in session._timers_by_name.values()
            for e in named.values()
            if e.etype == ET_ALARM
        ]
        for event in timers:
            self.remove(event)
        return [(e.name, e.priority + offset, *e.args) for e in timers]

    # -- a wheel's deferred calls ----------------------------------------------

    def defer(self, session: Node, func: Callable[[], Any], seconds: float) -> int:
        """A deferred call ``seconds`` from now (see :meth:`Kernel.defer`)."""
        label = getattr(func, "__name__", "<deferred>")
        return self.add(session, label, self._clock() + seconds, (func,), ET_DEFERRED).id

    def cancel_deferred(self, deferred_id: int) -> None:
        """Cancel a deferred call with a delay (a no-op once it ran)."""
        event = self._queue.timer_entries.get(deferred_id)
        if event is not None and event.etype & ET_DEFERRED:
            self.remove(event)

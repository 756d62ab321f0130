"""Timers: ``alarm*`` and ``delay*`` with POE's return values (POE-SEMANTICS 1.3).

Timers are queue items of the active session, due at a time on the kernel's
monotonic clock; ``alarm*`` calls speak wall-clock epochs and are converted at
the edge.  Each session indexes its own timers by name, so ``delay(name, s)``
clears that session's timers of that name without looking at anyone else's:
O(k log n) for its k timers of that name.

Return values, as POE: the name-based calls return 0 or an errno (EINVAL) *as
the value*; ``alarm_set``/``delay_set`` return an ID or ``None`` with
:attr:`last_error` set; ``alarm_remove`` returns ``(name, due_epoch, args)``.
"""

from __future__ import annotations

import time
from typing import Any

from ._core import EINVAL, EPERM, ESRCH, KernelCore
from ._event import ET_ALARM, Event

__all__ = ["TimersAPI"]


class TimersAPI(KernelCore):
    """The timer calls of POE::Kernel."""

    def _epoch_offset(self) -> float:
        return time.time() - self._clock()

    def _add_timer(self, name: str, due: float, args: tuple[Any, ...]) -> Event:
        session = self._active_session
        queue = self._queue
        event = Event(
            queue.next_id(),
            due,
            session,
            session,
            name,
            args,
            ET_ALARM,
            None,
            None,
            self._active_event,
        )
        queue.push_timer(event)
        session._to += 1
        named = session._timers_by_name.get(name)
        if named is None:
            session._timers_by_name[name] = {event.id: event}
        else:
            named[event.id] = event
        return event

    def _remove_timer(self, event: Event) -> None:
        self._queue.cancel_timer(event)
        named = event.dest._timers_by_name.get(event.name)
        if named is not None:
            named.pop(event.id, None)
            if not named:
                del event.dest._timers_by_name[event.name]
        self._release(event)

    def _clear_named(self, name: str) -> None:
        named = self._active_session._timers_by_name.pop(name, None)
        if named:
            for event in named.values():
                self._queue.cancel_timer(event)
                self._release(event)

    # -- name-based calls ---------------------------------------------------

    def alarm(self, name: str, epoch: float | None = None, *args: Any) -> int:
        """Clear this session's timers named ``name``, then set one at ``epoch``
        (``$kernel->alarm``).  Returns 0, or EINVAL when ``name`` is None."""
        if name is None:
            return EINVAL
        self._clear_named(name)
        if epoch is not None:
            self._add_timer(name, epoch - self._epoch_offset(), args)
        return 0

    def alarm_add(self, name: str, epoch: float, *args: Any) -> int:
        """Add a timer at ``epoch`` without clearing others (``alarm_add``)."""
        if name is None or epoch is None:
            return EINVAL
        self._add_timer(name, epoch - self._epoch_offset(), args)
        return 0

    def delay(self, name: str, seconds: float | None = None, *args: Any) -> int:
        """Clear this session's timers named ``name``, then set one ``seconds``
        from now (``$kernel->delay``); without ``seconds`` only clears."""
        if name is None:
            return EINVAL
        self._clear_named(name)
        if seconds is not None:
            self._add_timer(name, self._clock() + seconds, args)
        return 0

    def delay_add(self, name: str, seconds: float, *args: Any) -> int:
        """Add a timer ``seconds`` from now without clearing others."""
        if name is None or seconds is None:
            return EINVAL
        self._add_timer(name, self._clock() + seconds, args)
        return 0

    # -- ID-based calls -----------------------------------------------------

    def alarm_set(self, name: str, epoch: float, *args: Any) -> int | None:
        """Add a timer at ``epoch``; returns its ID (``alarm_set``)."""
        if name is None or epoch is None:
            self.last_error = EINVAL
            return None
        return self._add_timer(name, epoch - self._epoch_offset(), args).id

    def delay_set(self, name: str, seconds: float, *args: Any) -> int | None:
        """Add a timer ``seconds`` from now; returns its ID (``delay_set``)."""
        if name is None or seconds is None:
            self.last_error = EINVAL
            return None
        return self._add_timer(name, self._clock() + seconds, args).id

    def _own_timer(self, timer_id: int | None) -> Event | None:
        if timer_id is None:
            self.last_error = EINVAL
            return None
        entry = self._queue.timer_entries.get(timer_id)
        if entry is None:
            self.last_error = ESRCH
            return None
        event: Event = entry[2]  # type: ignore[assignment]
        if event.dest is not self._active_session:
            self.last_error = EPERM
            return None
        return event

    def alarm_remove(self, timer_id: int) -> tuple[str, float, list[Any]] | None:
        """Remove a timer by ID; returns ``(name, due_epoch, args)``."""
        event = self._own_timer(timer_id)
        if event is None:
            return None
        self._remove_timer(event)
        return event.name, event.priority + self._epoch_offset(), list(event.args)

    def alarm_adjust(self, timer_id: int, delta: float) -> float | None:
        """Move a timer by ``delta`` seconds; returns its new due epoch."""
        event = self._own_timer(timer_id)
        if event is None:
            return None
        if delta:
            self._queue.reschedule_timer(event, event.priority + delta)
        return event.priority + self._epoch_offset()

    def delay_adjust(self, timer_id: int, seconds: float) -> float | None:
        """Reschedule a timer to ``seconds`` from now; returns the due epoch."""
        event = self._own_timer(timer_id)
        if event is None:
            return None
        self._queue.reschedule_timer(event, self._clock() + seconds)
        return event.priority + self._epoch_offset()

    def alarm_remove_all(self) -> list[tuple[Any, ...]]:
        """Remove every timer of this session; returns ``(name, due_epoch,
        *args)`` for each (``alarm_remove_all``; POE reports 0 as the due time
        of ``delay()`` timers, we report the real one)."""
        session = self._active_session
        offset = self._epoch_offset()
        removed = [
            (e.name, e.priority + offset, *e.args)
            for named in session._timers_by_name.values()
            for e in named.values()
        ]
        for named in list(session._timers_by_name.values()):
            for event in list(named.values()):
                self._remove_timer(event)
        return removed

    def get_next_event_time(self) -> float | None:
        """Due epoch of the next queued event, or None (undocumented POE)."""
        head = self._queue.head_priority()
        return None if head is None else head + self._epoch_offset()

    def get_event_count(self) -> int:
        """Number of queued events (undocumented POE ``get_event_count``)."""
        return len(self._queue)

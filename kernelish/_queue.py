"""The event queue: one time-ordered queue, as POE's POE::Queue::Array.

Discussion
----------
POE keeps every event in one array sorted by priority, where the priority is a
time: posts get "now" (bumped so posts stay strictly FIFO), timers get their
due time, so a timer that is due overtakes posts queued after its due time.
Inserting into that array is O(n); 100k timers take POE 1.67 s to set.

We keep the same order with two structures:

* posts, yields and signals go to a deque -- their priorities only grow, so
  the deque *is* sorted, and append/popleft are O(1);
* timers go to a binary heap of ``[due, id, event]`` entries, O(log n) to set
  and to fire, with an id -> entry map so ``alarm_remove`` and ``delay(name)``
  cancel lazily (the entry's event slot is set to ``None``).  The heap is
  rebuilt when dead entries outnumber live ones.

The kernel's dispatch pass merges the two heads by ``(priority, id)``, which is
exactly POE's order (equal priorities keep insertion order).  We do not copy
POE's 1 microsecond FIFO bump: POE gives a burst of posts priorities in the
future, so a burst of 10,000 posts would be spread over 10 ms of wall time.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterator

from ._event import Event

__all__ = ["EventQueue"]


class EventQueue:
    """Posts in a FIFO deque, timers in a heap; one ID sequence for both."""

    __slots__ = ("_dead_fifo", "_dead_timers", "_ids", "fifo", "timer_entries", "timers")

    def __init__(self) -> None:
        self.fifo: deque[Event] = deque()
        self.timers: list[list[object]] = []
        self.timer_entries: dict[int, list[object]] = {}
        self._dead_fifo = 0
        self._dead_timers = 0
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """A fresh queue item ID (POE's global, never reused sequence)."""
        return next(self._ids)

    def push_timer(self, event: Event) -> None:
        """Queue a timer at its due time: O(log n)."""
        entry: list[object] = [event.priority, event.id, event]
        self.timer_entries[event.id] = entry
        heapq.heappush(self.timers, entry)

    def pop_timer(self) -> Event | None:
        """Pop the heap's head; None if it was a cancelled entry."""
        entry = heapq.heappop(self.timers)
        event = entry[2]
        if event is None:
            self._dead_timers -= 1
            return None
        del self.timer_entries[event.id]  # type: ignore[attr-defined]
        return event  # type: ignore[return-value]

    def drop_dead_timer_heads(self) -> None:
        """Discard cancelled entries at the head so ``timers[0]`` is live."""
        timers = self.timers
        while timers and timers[0][2] is None:
            heapq.heappop(timers)
            self._dead_timers -= 1

    def cancel_timer(self, event: Event) -> None:
        """Remove a queued timer lazily (O(1)); compact when mostly dead."""
        entry = self.timer_entries.pop(event.id, None)
        if entry is None:
            return
        entry[2] = None
        event.cancelled = True
        self._dead_timers += 1
        if self._dead_timers > 64 and self._dead_timers > len(self.timer_entries):
            self._compact_timers()

    def reschedule_timer(self, event: Event, priority: float) -> None:
        """Move a queued timer to a new due time."""
        entry = self.timer_entries.pop(event.id)
        entry[2] = None
        self._dead_timers += 1
        event.priority = priority
        self.push_timer(event)

    def cancel_fifo(self, event: Event) -> None:
        """Mark a posted event dead; the dispatch pass skips it."""
        if not event.cancelled:
            event.cancelled = True
            self._dead_fifo += 1

    def fifo_popped_dead(self) -> None:
        """Account for a dead FIFO event the dispatch pass skipped."""
        self._dead_fifo -= 1

    def _compact_timers(self) -> None:
        # In place: the dispatch pass holds a reference to this list.
        self.timers[:] = [e for e in self.timers if e[2] is not None]
        heapq.heapify(self.timers)
        self._dead_timers = 0

    def __len__(self) -> int:
        return len(self.fifo) - self._dead_fifo + len(self.timer_entries)

    def head_priority(self) -> float | None:
        """Due time of the next live event, or None when the queue is empty."""
        self.drop_dead_timer_heads()
        fifo = self.fifo
        while fifo and fifo[0].cancelled:
            fifo.popleft()
            self._dead_fifo -= 1
        best: float | None = fifo[0].priority if fifo else None
        if self.timers:
            due: float = self.timers[0][0]  # type: ignore[assignment]
            if best is None or due < best:
                best = due
        return best

    def __iter__(self) -> Iterator[Event]:
        """Live events in dispatch order (for introspection; not a hot path)."""
        live_fifo = [e for e in self.fifo if not e.cancelled]
        live_timers = sorted(
            (e for e in self.timer_entries.values() if e[2] is not None),
            key=lambda e: (e[0], e[1]),
        )
        merged = heapq.merge(
            ((e.priority, e.id, e) for e in live_fifo),
            ((t[0], t[1], t[2]) for t in live_timers),
            key=lambda x: (x[0], x[1]),
        )
        for _prio, _id, event in merged:
            yield event  # type: ignore[misc]

    def clear(self) -> None:
        """Forget everything (the kernel has stopped)."""
        self.fifo.clear()
        self.timers.clear()
        self.timer_entries.clear()
        self._dead_fifo = 0
        self._dead_timers = 0

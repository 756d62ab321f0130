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
* timers go to a binary heap of events (an event list starts with its
  priority and ID, so it is its own heap entry), O(log n) to set and to fire,
  with an id -> event map so ``alarm_remove`` and ``delay(name)`` cancel
  lazily (the event's ``EV_CANCELLED`` flag is set).  The heap is rebuilt
  when dead entries outnumber live ones.

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

from ._event import EV_CANCELLED, EV_ID, EV_PRIORITY, Event

__all__ = ["EventQueue"]


class EventQueue:
    """Posts in a FIFO deque, timers in a heap; one ID sequence for both."""

    __slots__ = ("_dead_fifo", "_dead_timers", "_ids", "fifo", "timer_entries", "timers")

    def __init__(self) -> None:
        self.fifo: deque[Event] = deque()
        self.timers: list[Event] = []
        self.timer_entries: dict[int, Event] = {}
        self._dead_fifo = 0
        self._dead_timers = 0
        #: ``next(queue._ids)`` is a fresh queue item ID (POE's global, never
        #: reused sequence); the hot path calls it directly.
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """A fresh queue item ID."""
        return next(self._ids)

    def push_timer(self, event: Event) -> None:
        """Queue a timer at its due time: O(log n)."""
        self.timer_entries[event[EV_ID]] = event
        heapq.heappush(self.timers, event)

    def pop_timer(self) -> Event | None:
        """Pop the heap's head; None if it was a cancelled entry."""
        event = heapq.heappop(self.timers)
        if event[EV_CANCELLED]:
            self._dead_timers -= 1
            return None
        del self.timer_entries[event[EV_ID]]
        return event

    def drop_dead_timer_heads(self) -> None:
        """Discard cancelled entries at the head so ``timers[0]`` is live."""
        timers = self.timers
        while timers and timers[0][EV_CANCELLED]:
            heapq.heappop(timers)
            self._dead_timers -= 1

    def cancel_timer(self, event: Event) -> None:
        """Remove a queued timer lazily (O(1)); compact when mostly dead."""
        if self.timer_entries.pop(event[EV_ID], None) is None:
            return
        event[EV_CANCELLED] = True
        self._dead_timers += 1
        if self._dead_timers > 64 and self._dead_timers > len(self.timer_entries):
            self._compact_timers()

    def reschedule_timer(self, event: Event, priority: float) -> Event:
        """Move a queued timer to a new due time; returns the event now
        queued (a copy: the old entry stays in the heap, cancelled)."""
        moved = event.copy()
        moved[EV_PRIORITY] = priority
        event[EV_CANCELLED] = True
        self._dead_timers += 1
        self.push_timer(moved)
        return moved

    def cancel_fifo(self, event: Event) -> None:
        """Mark a posted event dead; the dispatch pass skips it."""
        if not event[EV_CANCELLED]:
            event[EV_CANCELLED] = True
            self._dead_fifo += 1

    def _compact_timers(self) -> None:
        # In place: the dispatch pass holds a reference to this list.
        self.timers[:] = [e for e in self.timers if not e[EV_CANCELLED]]
        heapq.heapify(self.timers)
        self._dead_timers = 0

    def __len__(self) -> int:
        return len(self.fifo) - self._dead_fifo + len(self.timer_entries)

    def head_priority(self) -> float | None:
        """Due time of the next live event, or None when the queue is empty."""
        self.drop_dead_timer_heads()
        fifo = self.fifo
        while fifo and fifo[0][EV_CANCELLED]:
            fifo.popleft()
            self._dead_fifo -= 1
        best: float | None = fifo[0][EV_PRIORITY] if fifo else None
        if self.timers:
            due: float = self.timers[0][EV_PRIORITY]
            if best is None or due < best:
                best = due
        return best

    def __iter__(self) -> Iterator[Event]:
        """Live events in dispatch order (for introspection; not a hot path)."""
        live_fifo = [e for e in self.fifo if not e[EV_CANCELLED]]
        live_timers = sorted(self.timer_entries.values(), key=lambda e: (e[0], e[1]))
        yield from heapq.merge(live_fifo, live_timers, key=lambda e: (e[0], e[1]))

    def clear(self) -> None:
        """Forget everything (the kernel has stopped)."""
        self.fifo.clear()
        self.timers.clear()
        self.timer_entries.clear()
        self._dead_fifo = 0
        self._dead_timers = 0

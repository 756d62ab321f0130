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
* timers go to binary heaps of ``(due, id)`` entries, O(log n) to set and to
  fire, with ``timer_entries``, an id -> event map, the truth of which
  timers are queued: a heap entry is live while that map holds its ID with
  that due time, so ``alarm_remove`` and ``delay(name)`` cancel lazily (the
  ID leaves the map) and a rescheduled timer leaves a dead entry behind.
  A tuple of a float and an int compares in C, never calling Python, and
  once the garbage collector has seen it, it is no longer tracked: a million
  queued timers are a million objects for the collector to walk (the
  events), not two.  The heaps are rebuilt when dead entries outnumber live
  ones.

The timers due soon are not in one heap but in one small heap per 1/256 s
of due time (a *bucket*), with a heap of bucket keys above them;
``timer_head`` is the earliest bucket.  One heap of 100k entries made each
pop walk 17 levels of entries scattered over the whole process (cache misses
all the way down), 6-7 us per pop on the reference machine; a bucket holds the
timers of a few milliseconds, whose heap stays in the cache while they
fire: 1.3 us per pop (``bench/timers.py``).  Bucket keys only ever grow with
the due time, so the order is the same as one heap's.

Buckets pay off where timers are dense; a timer due in an hour would sit
alone in its bucket (a list and a dict entry more, about 150 bytes).  So
only timers due before a *horizon* -- 2 s after the earliest timer when it
was set -- go to buckets; later ones wait in one plain heap of events
(``_far``), and move to buckets when the buckets have run dry and the
horizon moves on.  Every timer in ``_far`` is due at or after the horizon,
every bucketed one before it, so the head bucket always holds the next
timer.

A new timer is not filed at once: it joins ``pending``, and the next look at
the head (the dispatch pass, the timeout of the poll) files the batch,
sorted first by due time.  A handler that sets 100k timers then pays for an
``append`` each, and the sorting (C, float keys) happens once, between
handlers; the sort is stable and IDs grow, so equal due times keep their
order.

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
from operator import attrgetter

from ._event import Event

__all__ = ["EventQueue", "TimerEntry"]

#: A timer in a heap: its due time and its ID (the event is in ``timer_entries``).
TimerEntry = tuple[float, int]

#: Buckets per second of due time (see the module's discussion).
BUCKETS_PER_SECOND = 256
#: How far past the earliest timer the buckets reach, in bucket keys (2 s).
NEAR_KEYS = 2 * BUCKETS_PER_SECOND


class EventQueue:
    """Posts in a FIFO deque, timers in buckets and a far heap; one ID
    sequence for both."""

    __slots__ = (
        "_bucket_keys",
        "_buckets",
        "_far",
        "_horizon",
        "_no_timers",
        "dead_fifo",
        "dead_timers",
        "fifo",
        "ids",
        "pending",
        "timer_entries",
        "timer_head",
    )

    def __init__(self) -> None:
        self.fifo: deque[Event] = deque()
        #: The earliest bucket: a heap whose head is the next timer (an
        #: empty list when no timer is queued), once :meth:`file_pending`
        #: ran.  The dispatch pass pops it with ``heappop`` and calls
        #: :meth:`next_bucket` when it empties.
        self.timer_head: list[TimerEntry] = []
        self._no_timers = self.timer_head
        #: Timers set since the last look at the head, not yet filed (the
        #: list is only ever cleared in place: the dispatch pass holds it).
        self.pending: list[Event] = []
        self._buckets: dict[int, list[TimerEntry]] = {}
        self._bucket_keys: list[int] = []
        #: Timers due at or after the horizon (a bucket key), in one heap.
        self._far: list[TimerEntry] = []
        self._horizon = 0
        #: Every queued timer by ID.
        self.timer_entries: dict[int, Event] = {}
        #: Cancelled events still in the FIFO / the timer heaps.
        self.dead_fifo = 0
        self.dead_timers = 0
        #: Queue item IDs: POE's one global, never reused sequence
        #: (``next(queue.ids)``).
        self.ids = itertools.count(1)

    def push_timer(self, event: Event) -> None:
        """Queue a timer at its due time (filed at the next look at the head)."""
        self.timer_entries[event.id] = event
        self.pending.append(event)

    def file_pending(self) -> None:
        """File the timers set since the last call: into their buckets when
        due before the horizon, else into the far heap."""
        pending = self.pending
        if len(pending) > 1:
            pending.sort(key=_due)
        if not self._bucket_keys and not self._far:
            # Nothing queued: the earliest new timer places the horizon.
            for event in pending:
                if not event.cancelled:
                    self._horizon = int(event.priority * BUCKETS_PER_SECOND) + NEAR_KEYS
                    break
        buckets = self._buckets
        keys = self._bucket_keys
        horizon = self._horizon
        heappush = heapq.heappush
        later: list[TimerEntry] = []
        for event in pending:
            if event.cancelled:
                self.dead_timers -= 1
                continue
            due = event.priority
            entry = (due, event.id)
            # int() truncates toward zero, so two buckets around 0 merge into
            # one: harmless, the key only has to grow with the due time.
            key = int(due * BUCKETS_PER_SECOND)
            if key >= horizon:
                later.append(entry)
                continue
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = [entry]
                heappush(keys, key)
            else:
                heappush(bucket, entry)
        pending.clear()
        if later:
            far = self._far
            if len(later) * 4 > len(far):
                # A large batch: one O(n) heapify in C beats a push each.
                far += later
                heapq.heapify(far)
            else:
                for entry in later:
                    heappush(far, entry)
        self._head()

    def next_bucket(self) -> None:
        """The head bucket is empty: the next one becomes the head."""
        del self._buckets[heapq.heappop(self._bucket_keys)]
        self._head()

    def _head(self) -> None:
        """Point ``timer_head`` at the earliest bucket, moving the horizon on
        (and the far heap's next timers into buckets) when none is left."""
        keys = self._bucket_keys
        far = self._far
        while not keys and far:
            buckets = self._buckets
            horizon = self._horizon = int(far[0][0] * BUCKETS_PER_SECOND) + NEAR_KEYS
            entries = self.timer_entries
            while far and int(far[0][0] * BUCKETS_PER_SECOND) < horizon:
                entry = heapq.heappop(far)
                live = entries.get(entry[1])
                if live is None or live.priority != entry[0]:
                    self.dead_timers -= 1
                    continue
                key = int(entry[0] * BUCKETS_PER_SECOND)
                bucket = buckets.get(key)
                if bucket is None:
                    buckets[key] = [entry]
                    heapq.heappush(keys, key)
                else:
                    heapq.heappush(bucket, entry)
        self.timer_head = self._buckets[keys[0]] if keys else self._no_timers

    def drop_dead_timer_heads(self) -> None:
        """File pending timers, then discard cancelled entries at the head,
        so ``timer_head[0]`` is the next live timer."""
        if self.pending:
            self.file_pending()
        head = self.timer_head
        entries = self.timer_entries
        while head and not _live(entries, head[0]):
            heapq.heappop(head)
            self.dead_timers -= 1
            if not head:
                self.next_bucket()
                head = self.timer_head

    def cancel_timer(self, event: Event) -> None:
        """Remove a queued timer lazily (O(1)); compact when mostly dead."""
        if self.timer_entries.pop(event.id, None) is None:
            return
        event.cancelled = True
        self.dead_timers += 1
        if self.dead_timers > 64 and self.dead_timers > len(self.timer_entries):
            self._compact_timers()

    def reschedule_timer(self, event: Event, priority: float) -> Event:
        """Move a queued timer to a new due time; returns the event now
        queued (a copy with the same ID: the old heap entry is dead)."""
        moved = event.moved(priority)
        event.cancelled = True
        self.dead_timers += 1
        self.push_timer(moved)
        return moved

    def cancel_fifo(self, event: Event) -> None:
        """Mark a posted event dead; the dispatch pass skips it."""
        if not event.cancelled:
            event.cancelled = True
            self.dead_fifo += 1

    def _compact_timers(self) -> None:
        # Each heap filtered where it is: the structure stays as it was.
        buckets = self._buckets
        entries = self.timer_entries
        for key, bucket in list(buckets.items()):
            live = [e for e in bucket if _live(entries, e)]
            if live:
                heapq.heapify(live)
                buckets[key] = live
            else:
                del buckets[key]
        self._bucket_keys[:] = buckets
        heapq.heapify(self._bucket_keys)
        self._far[:] = [e for e in self._far if _live(entries, e)]
        heapq.heapify(self._far)
        self.pending[:] = [e for e in self.pending if not e.cancelled]
        self.dead_timers = 0
        self._head()

    def __len__(self) -> int:
        return len(self.fifo) - self.dead_fifo + len(self.timer_entries)

    def has_live_post(self) -> bool:
        """Whether the FIFO's head is a live event (a post waits now)."""
        fifo = self.fifo
        return bool(fifo) and not fifo[0].cancelled

    def head_priority(self) -> float | None:
        """Due time of the next live event, or None when the queue is empty."""
        self.drop_dead_timer_heads()
        fifo = self.fifo
        while fifo and fifo[0].cancelled:
            fifo.popleft()
            self.dead_fifo -= 1
        best: float | None = fifo[0].priority if fifo else None
        if self.timer_head:
            due: float = self.timer_head[0][0]
            if best is None or due < best:
                best = due
        return best

    def __iter__(self) -> Iterator[Event]:
        """Live events in dispatch order (for introspection; not a hot path)."""
        live_fifo = [e for e in self.fifo if not e.cancelled]
        live_timers = sorted(self.timer_entries.values(), key=_order)
        yield from heapq.merge(live_fifo, live_timers, key=_order)

    def clear(self) -> None:
        """Forget everything (the kernel has stopped)."""
        self.fifo.clear()
        self.pending.clear()
        self._buckets.clear()
        self._bucket_keys.clear()
        self._far.clear()
        self.timer_head = self._no_timers
        self.timer_entries.clear()
        self.dead_fifo = 0
        self.dead_timers = 0


_due = attrgetter("priority")


def _live(entries: dict[int, Event], entry: TimerEntry) -> bool:
    """Whether a heap entry is a queued timer (not cancelled, not moved)."""
    event = entries.get(entry[1])
    return event is not None and event.priority == entry[0]


def _order(event: Event) -> tuple[float, int]:
    return event.priority, event.id

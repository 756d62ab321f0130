"""One queued event: POE's queue item, with its kind.

Discussion
----------
Every posted, yielded, signalled and timed event is an :class:`Event`, built
by its one constructor :func:`new_event` (``post`` and ``yield_`` keep an
inlined copy of it: they are the hottest paths).  A slotted class with typed
fields and no ``__init__``: ``Event()`` costs no Python frame, so an event
with its eleven fields stored is built in about 80 ns on the reference
machine -- faster than the 11-item list the kernel used before (list display
plus the object.__new__ of the handler's argument), and what a compiler
such as mypyc turns into a C struct.  Timers sit in heaps as
``(due, id)`` tuples, the event in the queue's ``timer_entries`` (see
:mod:`._queue`), so the heap compares floats and ints in C, never calls
Python, and the collector need not track its entries.

Every event's ``id`` comes from one process-wide sequence shared by every
kind (POE's item IDs), so the ID ``delay_set`` returns is an ordinary queue
item ID.

The caller site (``CALLER_FILE``/``CALLER_LINE``) of a post is recorded
cheaply: ``file`` holds the caller's code object and ``line`` its
instruction offset; :func:`caller_site` turns them into a file name and a
line number when a handler asks (``frame.f_lineno`` costs 200 ns per post,
the offset 10 ns).  Events queued by the kernel itself hold ``None`` or a
plain file name and line.
"""

from __future__ import annotations

import enum
from types import CodeType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._session import Node

__all__ = [
    "ET_ALARM",
    "ET_CALL",
    "ET_CHILD",
    "ET_DEFERRED",
    "ET_GC",
    "ET_PARENT",
    "ET_POST",
    "ET_SIGCLD",
    "ET_SIGDIE",
    "ET_SIGNAL",
    "ET_START",
    "ET_STOP",
    "Event",
    "EventType",
    "caller_site",
    "new_event",
]


class EventType(enum.IntFlag):
    """POE's internal event type bits (``ET_*`` in POE::Kernel)."""

    POST = 0x1
    CALL = 0x2
    START = 0x4
    STOP = 0x8
    SIGNAL = 0x10
    GC = 0x20
    PARENT = 0x40
    CHILD = 0x80
    ALARM = 0x200
    SELECT = 0x400
    SIGCLD = 0x800
    SIGDIE = 0x1000

    def peek_name(self) -> str:
        """The type string POE::API::Peek's ``event_queue_dump`` shows."""
        for bit, text in _PEEK_TYPE_NAMES:
            if self & bit:
                return text
        return "Unknown"


# Plain ints for the dispatch hot path (IntFlag arithmetic is slow).
ET_POST = 0x1
ET_CALL = 0x2
ET_START = 0x4
ET_STOP = 0x8
ET_SIGNAL = 0x10
ET_GC = 0x20
ET_PARENT = 0x40
ET_CHILD = 0x80
ET_ALARM = 0x200
ET_SIGCLD = 0x800
ET_SIGDIE = 0x1000
#: A deferred call of a wheel (``args[0]`` is a callable run as the session);
#: Peek shows it as "File Activity", as POE's select events.
ET_DEFERRED = 0x400

_PEEK_TYPE_NAMES = (
    (EventType.START, "_start"),
    (EventType.STOP, "_stop"),
    (EventType.SIGNAL, "_signal"),
    (EventType.GC, "_garbage_collect"),
    (EventType.PARENT, "_parent"),
    (EventType.CHILD, "_child"),
    (EventType.ALARM, "Alarm"),
    (EventType.SELECT, "File Activity"),
    (EventType.POST, "User"),
    (EventType.CALL, "User (not enqueued)"),
)


class Event:
    """A queued event (POE's queue item): when, to whom, from whom, what.

    Build one with :func:`new_event`.  The class has no ``__init__`` of its
    own on purpose: ``Event()`` then runs no Python frame, and the two
    hottest paths (``post``/``yield_``) fill the fields in place -- the
    documented inlined copies of :func:`new_event`.
    """

    __slots__ = (
        "args",
        "cancelled",
        "dest",
        "etype",
        "file",
        "from_state",
        "id",
        "line",
        "name",
        "priority",
        "source",
    )

    #: due time on the kernel's monotonic clock ("now" for a post)
    priority: float
    #: queue item ID (one process-wide sequence)
    id: int
    #: destination session (or the kernel)
    dest: Node
    #: sending session (or the kernel)
    source: Node
    #: event name ("_signal" for signals)
    name: str
    args: tuple[Any, ...]
    #: ``ET_*`` bits
    etype: int
    #: the caller's code object, a file name, or None (see caller_site)
    file: CodeType | str | None
    #: an instruction offset in that code, a line number, or None
    line: int | None
    #: the event that was active when this one was queued
    from_state: str | None
    #: removed from the queue (lazy cancellation)
    cancelled: bool

    def moved(self, priority: float) -> Event:
        """A copy due at ``priority`` (a rescheduled timer keeps its ID)."""
        return new_event(
            priority,
            self.id,
            self.dest,
            self.source,
            self.name,
            self.args,
            self.etype,
            self.file,
            self.line,
            self.from_state,
        )

    def __repr__(self) -> str:
        return f"<Event {self.id} {self.name!r} due={self.priority:.6f}>"


def new_event(
    priority: float,
    event_id: int,
    dest: Node,
    source: Node,
    name: str,
    args: tuple[Any, ...],
    etype: int,
    file: CodeType | str | None,
    line: int | None,
    from_state: str | None,
) -> Event:
    """The one constructor of an :class:`Event` (not yet cancelled)."""
    event = Event()
    event.priority = priority
    event.id = event_id
    event.dest = dest
    event.source = source
    event.name = name
    event.args = args
    event.etype = etype
    event.file = file
    event.line = line
    event.from_state = from_state
    event.cancelled = False
    return event


_line_tables: dict[CodeType, dict[int, int | None]] = {}


def caller_site(file: str | CodeType | None, where: int | None) -> tuple[str | None, int | None]:
    """``(file, line)`` of an event's caller site (its ``file``, ``line``)."""
    if not isinstance(file, CodeType) or where is None:
        return file, where  # type: ignore[return-value]
    code = file
    table = _line_tables.get(code)
    if table is None:
        # One table per code object, built on first use: offset -> line.
        table = {}
        for start, end, line in code.co_lines():
            for offset in range(start, end, 2):
                table[offset] = line
        _line_tables[code] = table
    return code.co_filename, table.get(where)

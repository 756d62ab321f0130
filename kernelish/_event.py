"""One queued event: POE's queue item, with its kind.

Discussion
----------
Every posted, yielded, signalled and timed event is a plain ``list`` laid out
as below, indexed with the ``EV_*`` constants.  A list, not a class, because
an event is built for every post and read once when it is dispatched: a list
display costs a third of a slotted ``__init__`` (measured: 100 ns against
600-700 ns on the reference machine), and the dispatch loop is the kernel's
hot path (see ``bench/dispatch.py``).  ``[priority, id, ...]`` also makes the
event its own heap entry: timers sit in the heap as events, ordered by due
time and then by ID (IDs are unique, so comparison never looks further).

Every event's ``id`` comes from one process-wide sequence shared by every
kind (POE's item IDs), so the ID ``delay_set`` returns is an ordinary queue
item ID.

The caller site (``CALLER_FILE``/``CALLER_LINE``) of a post is recorded
cheaply: ``EV_FILE`` holds the caller's code object and ``EV_LINE`` its
instruction offset; :func:`caller_site` turns them into a file name and a
line number when a handler asks (``frame.f_lineno`` costs 200 ns per post,
the offset 10 ns).  Events queued by the kernel itself hold ``None`` or a
plain file name and line.
"""

from __future__ import annotations

import enum
from types import CodeType
from typing import Any

__all__ = [
    "ET_ALARM",
    "ET_CALL",
    "ET_CHILD",
    "ET_GC",
    "ET_PARENT",
    "ET_POST",
    "ET_SELECT",
    "ET_SIGCLD",
    "ET_SIGDIE",
    "ET_SIGNAL",
    "ET_START",
    "ET_STOP",
    "EV_ARGS",
    "EV_CANCELLED",
    "EV_DEST",
    "EV_FILE",
    "EV_FROM_STATE",
    "EV_ID",
    "EV_LINE",
    "EV_NAME",
    "EV_PRIORITY",
    "EV_SOURCE",
    "EV_TYPE",
    "Event",
    "EventType",
    "caller_site",
    "describe",
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
    SCPOLL = 0x100
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
#: A wheel's deferred I/O step (``args[0]`` is a callable run as the session);
#: Peek shows it as "File Activity", as POE's select events.
ET_SELECT = 0x400

_PEEK_TYPE_NAMES = (
    (EventType.START, "_start"),
    (EventType.STOP, "_stop"),
    (EventType.SIGNAL, "_signal"),
    (EventType.GC, "_garbage_collect"),
    (EventType.PARENT, "_parent"),
    (EventType.CHILD, "_child"),
    (EventType.SCPOLL, "_sigchld_poll"),
    (EventType.ALARM, "Alarm"),
    (EventType.SELECT, "File Activity"),
    (EventType.POST, "User"),
    (EventType.CALL, "User (not enqueued)"),
)

#: A queued event (see the layout below).
Event = list[Any]

# The layout of an event.  Priority and ID first: the heap orders by them.
EV_PRIORITY = 0  # due time on the kernel's monotonic clock
EV_ID = 1  # queue item ID (one global sequence)
EV_DEST = 2  # destination session (or the kernel)
EV_SOURCE = 3  # sending session (or the kernel)
EV_NAME = 4  # event name ("_signal" for signals)
EV_ARGS = 5  # tuple of arguments
EV_TYPE = 6  # ET_* bits
EV_FILE = 7  # caller's code object, file name, or None
EV_LINE = 8  # instruction offset in that code, line number, or None
EV_FROM_STATE = 9  # the event that was active when this one was queued
EV_CANCELLED = 10  # removed from the queue (lazy cancellation)


_line_tables: dict[CodeType, dict[int, int | None]] = {}


def caller_site(file: str | CodeType | None, where: int | None) -> tuple[str | None, int | None]:
    """``(file, line)`` of an event's caller site (``EV_FILE``, ``EV_LINE``)."""
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


def describe(event: Event) -> str:
    """A short text for logs and reprs."""
    return f"<Event {event[EV_ID]} {event[EV_NAME]!r} due={event[EV_PRIORITY]:.6f}>"

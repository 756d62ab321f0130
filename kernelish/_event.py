"""One queued event: POE's queue item, with its kind.

Every posted, yielded, signalled and timed event is an :class:`Event`.  Its
``id`` comes from one process-wide sequence shared by every kind (POE's item
IDs), so the ID ``delay_set`` returns is an ordinary queue item ID.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "ET_ALARM",
    "ET_CALL",
    "ET_CHILD",
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


class Event:
    """A queued event: destination, source, name, arguments and due time."""

    __slots__ = (
        "args",
        "cancelled",
        "dest",
        "file",
        "from_state",
        "id",
        "line",
        "name",
        "priority",
        "source",
        "type",
    )

    def __init__(
        self,
        id: int,
        priority: float,
        dest: Any,
        source: Any,
        name: str,
        args: tuple[Any, ...],
        type: int,
        file: str | None,
        line: int | None,
        from_state: str | None,
    ) -> None:
        self.id = id
        self.priority = priority
        self.dest = dest
        self.source = source
        self.name = name
        self.args = args
        self.type = type
        self.file = file
        self.line = line
        self.from_state = from_state
        self.cancelled = False

    def __repr__(self) -> str:
        return f"<Event {self.id} {self.name!r} due={self.priority:.6f}>"
